"""The bare-Temporal baseline of ``bench/program_scale.py``: the same shape, empty bodies.

Each application is a workflow the client starts itself (as the project's web
form does), which runs its share of empty activities (local ones locally) and
timers and takes one "approve" update; like the project's, it sends the parent nothing.
As in the project, the approval answers a request: the application's first activity
asks for it (the project's emails the manager a link), and the client approves only
once it holds that request (the project's client reads the link from the mail
catcher). The request is the application's id, appended to a file the client reads,
the least a request can be. The parent
waits for the window to be closed (an update, as HR's reschedule is in the
project), for one update per organisation and one confirmation, and runs its
own share of empty activities by each of these steps as the project's program
did (``BareProgramInput.by_phase``, read from its history), the last ones side by
side where the project's ran so. It continues as new at the same history length as
``ProgramWorkflow``. The counts come from the project's run of the same size,
so both sides run the same number of workflows, activities and timers.

Run as a worker:  python bench/bare_program.py both|workflows|activities ADDRESS TASK_QUEUE
                                               REQUESTS_FILE
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

# Passed through, as the project's workflows import it: otherwise the sandbox runs
# mentorflow.models (and its pydantic models) again for every workflow it creates.
with workflow.unsafe.imports_passed_through():
    from mentorflow.models import participant_task_queue
    from mentorflow.settings import Settings

CONTINUE_AS_NEW_AFTER = 4_000  # ProgramInput's default
LONG = timedelta(days=30)


class Share(BaseModel):
    """How many empty activities and timers one workflow runs."""

    activities: int = 0
    local_activities: int = 0
    timers: int = 0


class BareProgramInput(BaseModel):
    own: Share  # the parent's activities and timers in all its runs together
    organisations: int
    # Groups of the project's program's activities that ran at the same time: as many here.
    side_by_side: list[int] = Field(default_factory=list)
    # How many of them the project's program had scheduled by the moment HR closed the
    # window, made the last capacity decision, confirmed the pairs: as many here by then.
    by_phase: list[int] = Field(default_factory=lambda: [0, 0, 0])
    # Carried over continue-as-new:
    decisions: int = 0
    done: Share = Field(default_factory=Share)
    window_closed: bool = False
    confirmed: bool = False


class BareApplicationInput(BaseModel):
    application_id: str
    share: Share


class BareStatus(BaseModel):
    phase: str


@activity.defn
async def nothing() -> None:
    """An empty activity body."""


class Requests:
    """Where an application's request for approval goes: a line in a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @activity.defn
    async def ask(self, application_id: str) -> None:
        """The least an approval request can be: the application's id, one line."""
        with self.path.open("a") as requests:
            requests.write(f"{application_id}\n")


def _long() -> bool:
    return workflow.info().get_current_history_length() >= CONTINUE_AS_NEW_AFTER


async def run_nothing() -> None:
    await workflow.execute_activity(
        nothing, start_to_close_timeout=timedelta(seconds=30), retry_policy=RetryPolicy()
    )


async def run_nothing_locally() -> None:
    await workflow.execute_local_activity(
        nothing, start_to_close_timeout=timedelta(seconds=30), retry_policy=RetryPolicy()
    )


@workflow.defn
class BareApplication:
    def __init__(self) -> None:
        self._approved = False

    @workflow.run
    async def run(self, input: BareApplicationInput) -> None:
        share = input.share
        # The first activity asks for the approval, as the project's first emails do.
        before = (share.activities + 1) // 2
        local_before = share.local_activities // 2
        for done in range(before):
            if done == 0:
                await workflow.execute_activity(
                    "ask",
                    input.application_id,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RetryPolicy(),
                )
            else:
                await run_nothing()
        for _ in range(local_before):
            await run_nothing_locally()
        timers = share.timers
        if timers and not self._approved:  # a wait already over starts no timer
            timers -= 1
            await workflow.wait_condition(lambda: self._approved, timeout=LONG)
        else:
            await workflow.wait_condition(lambda: self._approved)
        for _ in range(share.local_activities - local_before):
            await run_nothing_locally()
        for _ in range(share.activities - before):
            await run_nothing()
        for left in range(timers, 0, -1):
            # The project's last timer stays open (withdrawal possible until the start).
            await workflow.sleep(LONG if left == 1 else timedelta(milliseconds=1))

    @workflow.update
    async def approve(self, _: object = None) -> None:
        self._approved = True


@workflow.defn
class BareApproval:
    """The baseline of ``bench/link_clicks.py``: a workflow whose update returns at once."""

    def __init__(self) -> None:
        self._approved = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._approved)

    @workflow.update
    def approve(self) -> None:
        self._approved = True


@workflow.defn
class BareProgram:
    @workflow.init
    def __init__(self, input: BareProgramInput) -> None:
        self._state = input
        self._phase = "application_window"

    @workflow.run
    async def run(self, input: BareProgramInput) -> None:
        s = self._state
        in_window, by_decisions, by_review = s.by_phase
        if s.done.activities == 0:
            await self._activity()
        while not s.window_closed and s.done.activities < in_window:
            await self._activity()  # the announcement, the phase's records
        while not s.window_closed:
            await self._wait(lambda: s.window_closed)
        while s.done.activities < by_decisions - (s.organisations - s.decisions):
            await self._activity()  # counting the applications, asking HR
        self._phase = "awaiting_hr_decision"
        while s.decisions < s.organisations:
            await self._wait(lambda: s.decisions >= s.organisations)
        while s.done.activities < by_review:
            await self._activity()  # the selections, the matching
        self._phase = "match_review"
        while not s.confirmed:
            await self._wait(lambda: s.confirmed)
        # The rest of its timers wait on dates while the last steps run, and are cancelled
        # after them, as the project's deadlines are: started, never fired.
        deadlines = [
            asyncio.create_task(workflow.sleep(LONG)) for _ in range(s.own.timers - s.done.timers)
        ]
        s.done.timers += len(deadlines)
        for size in s.side_by_side:
            size = min(size, s.own.activities - s.done.activities)
            await asyncio.gather(*(self._activity() for _ in range(size)))
        while s.done.activities < s.own.activities:
            await self._activity()
        while s.done.local_activities < s.own.local_activities:
            s.done.local_activities += 1
            await run_nothing_locally()
        for deadline in deadlines:
            deadline.cancel()
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._phase = "running"

    async def _activity(self) -> None:
        self._state.done.activities += 1
        await run_nothing()

    async def _wait(self, condition: Callable[[], bool]) -> None:
        """One updatable-timer wait, then continue as new if the history is long."""
        if not (condition() or _long()):  # a wait already over starts no timer
            self._state.done.timers += 1
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: condition() or _long(), timeout=LONG)
        if _long():
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(self._state)

    @workflow.query
    def status(self) -> BareStatus:
        return BareStatus(phase=self._phase)

    @workflow.update
    def close_window(self) -> None:
        self._state.window_closed = True

    @workflow.update
    async def decide(self, organisation: str) -> None:
        await self._activity()
        self._state.decisions += 1

    @workflow.update
    async def confirm(self) -> None:
        await self._activity()
        self._state.confirmed = True


WORKFLOWS = [BareProgram, BareApplication, BareApproval]


async def main(kind: str, address: str, task_queue: str, requests: Path) -> None:
    """Run the bare worker: ``kind`` "both" in one process, "workflows" (with their local
    activities) or "activities", as the project's ``mentorflow worker --only``."""
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    activities: list[Callable[..., Any]] = [nothing, Requests(requests).ask]
    # Two queues in one process, as the project's worker: programs and participants.
    async with contextlib.AsyncExitStack() as workers:
        for queue in (task_queue, participant_task_queue(task_queue)):
            await workers.enter_async_context(
                Worker(
                    client,
                    task_queue=queue,
                    workflows=[] if kind == "activities" else WORKFLOWS,
                    activities=[nothing] if kind == "workflows" else activities,
                    # A workflows-only worker runs its activities as local ones only.
                    no_remote_activities=kind == "workflows",
                    # As the project's worker, with its default setting.
                    max_cached_workflows=Settings.model_fields["worker_cached_workflows"].default,
                    max_concurrent_workflow_tasks=Settings.model_fields[
                        "worker_workflow_tasks"
                    ].default,
                )
            )
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])))
