"""Garbage collections that cannot starve a workflow activation.

A full collection holds the interpreter, and it grows with the workflow runs a
worker keeps cached: about 0.25 MB and 400 objects per application, so at 2,000
cached runs one took 530 ms, and at 5,000 it nears the SDK's 2 s deadlock limit
(TMPRL1101), which counts from the moment an activation is handed to its thread.
So a workflows worker never lets the interpreter start a full collection on its
own: ``collect_between_activations`` runs one, about every minute, at a moment
when no activation is running or waiting for a thread (``Activations`` counts
them), and no deadline is running. Young-generation collections stay automatic
(they are short). Every collection over 100 ms is logged, and what the worker
imported at start is frozen out of later collections.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# Well under the SDK's 2 s deadlock limit, and far above an ordinary collection.
LONG_PAUSE_SECONDS = 0.1
# Full collections free only reference cycles; a minute of them is little memory.
FULL_COLLECTION_EVERY_SECONDS = 60.0
# A worker that is never idle still collects, rather than grow without bound.
FULL_COLLECTION_AT_THE_LATEST_SECONDS = 600.0
# Gen-1 collections before the interpreter would consider a full one on its own: never.
_NO_AUTOMATIC_FULL_COLLECTION = 2**31 - 1


class Activations(concurrent.futures.ThreadPoolExecutor):
    """The thread pool of a process's workflow workers (``workflow_task_executor``),
    counting the activations handed to it that have not finished.

    ``observe`` is given each activation's duration in milliseconds, from the moment
    it is handed over until it is done: the span the SDK's two-second deadline
    counts. (The SDK's ``workflow_task_execution_latency`` times a whole workflow
    task, local activities included; an activation is one turn of workflow code.)
    """

    def __init__(self, max_workers: int, observe: Callable[[float], None] | None = None) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="activation")
        self._lock = threading.Lock()
        self._running = 0
        self._observe = observe

    @property
    def running(self) -> int:
        """Activations running or waiting for a thread."""
        return self._running

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        with self._lock:
            self._running += 1
        began = time.perf_counter()
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._finished()
            raise
        if self._observe is not None:
            observe = self._observe
            future.add_done_callback(lambda _: observe((time.perf_counter() - began) * 1000))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not handed out by an event loop
            future.add_done_callback(self._finished)
            return future
        # Counted done only once the loop has seen the result: the SDK's 2 s timer for it
        # may still be set, and it is harmless only once the result is there. So the
        # count drops on the loop, after the callback that delivers the result there
        # (run_in_executor adds that one as soon as this returns). Done also when
        # cancelled before it ran, as asyncio.wait_for's timeout does to a waiting one.
        loop.call_soon(future.add_done_callback, lambda _: self._finished_on(loop))
        return future

    def _finished_on(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.call_soon_threadsafe(self._finished)
        except RuntimeError:  # the loop has closed: nothing will wait on it any more
            self._finished()

    def _finished(self, _: object = None) -> None:
        with self._lock:
            self._running -= 1


async def collect_between_activations(
    activations: Activations,
    *,
    every: float = FULL_COLLECTION_EVERY_SECONDS,
    at_the_latest: float = FULL_COLLECTION_AT_THE_LATEST_SECONDS,
    look_every: float = 0.02,
    collect: Callable[[], object] = gc.collect,
) -> None:
    """Run full collections only while ``activations`` has none running, about every
    ``every`` seconds (or after ``at_the_latest`` however busy); until cancelled, when
    the interpreter's own full collections resume."""
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, _NO_AUTOMATIC_FULL_COLLECTION)
    last = time.monotonic()
    try:
        while True:
            waited = time.monotonic() - last
            await asyncio.sleep(max(every - waited, look_every))
            waited = time.monotonic() - last
            if waited < every or (activations.running and waited < at_the_latest):
                continue
            # On the event loop, which hands out the activations: none can start meanwhile.
            collect()
            last = time.monotonic()
    finally:
        gc.set_threshold(young, middle, full)


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
