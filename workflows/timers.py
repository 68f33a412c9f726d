"""The updatable timer and the workflow clock, shared by the workflows.

A deadline is state, not a sleep: a workflow waits for "the current value of
the date, or a change to it", and after waking it re-plans from its state. So
a moved date just reschedules, and nothing is cancelled or replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from temporalio import workflow


class Clock:
    """``workflow.now()``, but never earlier than a moment a timer has already waited for.

    Why not ``workflow.now()`` alone: a worker that answers a query for a
    workflow it does not hold in its cache can apply a timer that fired
    meanwhile with the time of the *previous* workflow task (seen with
    temporalio 1.35; reproduced in ``tests/test_timers.py``, written up in
    ``docs/findings/README.md``). Re-planning with that time, the workflow would
    wait for a moment that has already come, and the replay of the next task
    would disagree with it: a nondeterminism error, the program stuck. A timer
    that fired proves its moment has come, so ``now()`` is at least that moment.
    In every other case the two are the same, so histories replay unchanged.
    """

    def __init__(self) -> None:
        self._reached: datetime | None = None

    def now(self) -> datetime:
        now = workflow.now()
        if self._reached is not None and now < self._reached:
            return self._reached
        return now

    async def sleep_until(self, moment: datetime, wake: Callable[[], bool], summary: str) -> None:
        """Wait until ``moment`` or until ``wake()`` holds, whichever comes first.

        ``summary`` names the timer in the Temporal UI.
        """
        remaining = moment - self.now()
        if remaining <= timedelta(0):
            return
        try:
            await workflow.wait_condition(wake, timeout=remaining, timeout_summary=summary)
        except TimeoutError:
            self.reached(moment)

    def reached(self, moment: datetime) -> None:
        """Note that a timer set for ``moment`` has fired."""
        moment = moment.astimezone(UTC)
        if self._reached is None or moment > self._reached:
            self._reached = moment
