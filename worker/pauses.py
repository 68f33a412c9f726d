"""Garbage collections long enough to starve workflow activations, made visible.

A full collection holds the interpreter: in a workflows worker every activation
running meanwhile waits, and the SDK fails an activation that has not yielded
within 2 s (TMPRL1101). The longest collections are logged, and what the worker
imported at start is frozen out of every later collection.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Well under the SDK's 2 s deadlock limit, and far above an ordinary collection.
LONG_PAUSE_SECONDS = 0.1


def watch_collections(longer_than: float = LONG_PAUSE_SECONDS) -> Callable[[], None]:
    """Log each garbage collection that takes longer than ``longer_than`` seconds;
    returns a function that stops watching."""
    began: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[:] = [time.perf_counter()]
        elif began:
            took = time.perf_counter() - began[0]
            if took > longer_than:
                log.warning(
                    "garbage collection of generation %s held the worker for %.0f ms"
                    " (%s objects collected)",
                    info.get("generation"),
                    took * 1000,
                    info.get("collected"),
                )

    gc.callbacks.append(callback)
    return lambda: gc.callbacks.remove(callback)


def freeze_what_is_loaded() -> None:
    """Leave everything alive now (modules, the workflows' definitions, the sandbox's
    templates) out of later collections: it lives as long as the process."""
    gc.collect()
    gc.freeze()
