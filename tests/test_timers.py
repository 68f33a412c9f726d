"""The workflow clock against a case the SDK gets wrong (``workflows/timers.py``).

A worker that does not hold a workflow in its cache, answering a query that was
waiting for it, applies a timer that fired meanwhile with the *previous* task's
time, and the next task then completes with what the workflow decided on that
stale time (temporalio 1.35, dev server 1.32). Re-planning with
``workflow.now()`` alone, the workflow waits again for a deadline that has
passed, and the replay of that history fails: the program stuck on a
nondeterminism error. Whether the query or the task reaches the new worker first
is up to the server, so the test runs twenty workflows at once.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from mentorflow.codec import compact_data_converter
from tests.clock_workflows import DeadlineWithClock, Wakeups
from tests.conftest import wait_for

DEADLINE = 3.0
WORKFLOWS = 20


async def test_a_deadline_reached_stays_reached_when_the_sdk_reports_a_stale_time(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    client = dev_env.client
    handles: list[WorkflowHandle[DeadlineWithClock, Wakeups]] = []
    # No cache, so no sticky queue: the next tasks may go to any worker.
    async with Worker(
        client, task_queue=task_queue, workflows=[DeadlineWithClock], max_cached_workflows=0
    ):
        for i in range(WORKFLOWS):
            handles.append(
                await client.start_workflow(
                    DeadlineWithClock.run,
                    DEADLINE,
                    id=f"clock-{task_queue}-{i}",
                    task_queue=task_queue,
                )
            )

        async def all_waiting() -> bool:
            for handle in handles:
                history = await handle.fetch_history()
                if not any(e.HasField("timer_started_event_attributes") for e in history.events):
                    return False
            return True

        await wait_for(all_waiting, within=30)
    # No worker now: each query waits for one, and meanwhile the timers fire.
    patience = timedelta(seconds=30)
    queries = [
        asyncio.create_task(handle.query(DeadlineWithClock.wakeups, rpc_timeout=patience))
        for handle in handles
    ]
    await asyncio.sleep(DEADLINE + 1)
    async with Worker(client, task_queue=task_queue, workflows=[DeadlineWithClock]):
        answers = await asyncio.gather(*queries)
        results = await asyncio.gather(*(handle.result() for handle in handles))
    stale = 0
    replayer = Replayer(workflows=[DeadlineWithClock], data_converter=compact_data_converter)
    for handle, answer, result in zip(handles, answers, results, strict=True):
        assert result.deadline is not None
        if answer.workflow_now[-1] < result.deadline:
            # The SDK's case: woken by the timer, the workflow was told a time before
            # the deadline it waited for; the clock said the deadline had come.
            stale += 1
            assert answer.clock_now[-1] == result.deadline
        # Either way the workflow finished on its second wake-up, as its replay (with
        # the true times) does.
        assert len(result.workflow_now) == 2
        await replayer.replay_workflow(await handle.fetch_history())
    assert stale > 0, "the SDK's stale-time case did not happen: no proof either way"
