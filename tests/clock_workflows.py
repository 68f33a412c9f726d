"""A workflow that waits for a deadline with the project's clock, for ``test_timers``.

In their own module because the workflow sandbox re-imports the module that
defines a workflow, and test modules import half the world.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from workflows.timers import Clock


class Wakeups(BaseModel):
    """What the workflow saw each time it woke: ``workflow.now()`` and the clock's time."""

    deadline: datetime | None = None
    workflow_now: list[datetime] = []
    clock_now: list[datetime] = []


@workflow.defn
class DeadlineWithClock:
    """Waits until ``seconds`` after it started, re-planning after each wake-up."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.seen = Wakeups()

    @workflow.query
    def wakeups(self) -> Wakeups:
        return self.seen

    @workflow.run
    async def run(self, seconds: float) -> Wakeups:
        deadline = self.seen.deadline = self.clock.now() + timedelta(seconds=seconds)
        while True:
            self.seen.workflow_now.append(workflow.now())
            self.seen.clock_now.append(self.clock.now())
            if self.clock.now() >= deadline:
                return self.seen
            await self.clock.sleep_until(deadline, lambda: False, "the deadline")
