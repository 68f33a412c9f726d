"""Workflows for ``test_worker_kinds``: a few short tasks to time, and a program whose
workflow task fails on every attempt once it is tripped; and for ``test_worker_sandbox``,
one that reads the machine's clock.

In their own module because the workflow sandbox re-imports the module that
defines a workflow, and test modules import half the world.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow


@workflow.defn
class Ticks:
    """Sleeps a second ``count`` times: one workflow task per wake-up."""

    @workflow.run
    async def run(self, count: int) -> int:
        for _ in range(count):
            await workflow.sleep(timedelta(seconds=1))
        return count


class Tripped(Exception):
    """Not an ApplicationError: the SDK fails the workflow task, not the workflow, and the
    server retries the task for as long as the workflow runs, as with a bug or a
    nondeterminism error in a deployed worker."""


@workflow.defn(name="ProgramWorkflow")
class BrokenProgram:
    """Stands in for a program (same type, same ``status`` query) whose every workflow task
    fails after the ``trip`` signal."""

    def __init__(self) -> None:
        self.tripped = False

    @workflow.signal
    def trip(self) -> None:
        self.tripped = True

    @workflow.query
    def status(self) -> str:
        return "fine"

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.tripped)
        raise Tripped("this program's code is broken")


@workflow.defn
class ReadsTheMachinesClock:
    """The mistake the sandbox is there for: the machine's clock, not ``workflow.now()``."""

    @workflow.run
    async def run(self) -> str:
        return datetime.now().isoformat()  # the mistake itself
