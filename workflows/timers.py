"""The updatable timer, shared by the workflows.

A deadline is state, not a sleep: a workflow waits for "the current value of
the date, or a change to it", and after waking it re-plans from its state. So
a moved date just reschedules, and nothing is cancelled or replaced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow


async def sleep_until(moment: datetime, wake: Callable[[], bool], summary: str) -> None:
    """Wait until ``moment`` or until ``wake()`` holds, whichever comes first.

    ``summary`` names the timer in the Temporal UI.
    """
    remaining = moment - workflow.now()
    if remaining <= timedelta(0):
        return
    with contextlib.suppress(TimeoutError):
        await workflow.wait_condition(wake, timeout=remaining, timeout_summary=summary)
