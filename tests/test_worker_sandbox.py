"""Temporal's sandbox: off in the shipped workers (``worker_sandbox``), on in every test.

The sandbox refuses a non-deterministic call (the clock, randomness, I/O) as it
happens; without it the call goes through. The tests' settings turn it on, so any
workflow code a test runs is checked; the recorded histories replay in it too
(tests/test_replay.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import (
    RestrictedWorkflowAccessError,
    SandboxedWorkflowRunner,
)

from mentorflow.settings import Settings
from tests.conftest import settings_for
from tests.task_workflows import ReadsTheMachinesClock
from worker.main import workflow_runner


def test_the_shipped_workers_run_workflows_outside_the_sandbox() -> None:
    assert isinstance(workflow_runner(Settings(_env_file=None)), UnsandboxedWorkflowRunner)
    on = Settings(_env_file=None, worker_sandbox=True)
    assert isinstance(workflow_runner(on), SandboxedWorkflowRunner)


@pytest.mark.parametrize("sandbox", [True, False])
async def test_the_tests_workers_refuse_the_machines_clock(
    time_skipping_env: WorkflowEnvironment, sandbox: bool
) -> None:
    tests = settings_for(task_queue="-", database_url="sqlite://", smtp_port=25)
    assert tests.worker_sandbox  # what every test's worker runs with
    settings = tests.model_copy(update={"worker_sandbox": sandbox})
    queue = f"sandbox-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[ReadsTheMachinesClock],
        workflow_runner=workflow_runner(settings),
        # The refusal fails the run at once, where it would otherwise retry the task.
        workflow_failure_exception_types=[RestrictedWorkflowAccessError],
    ):
        handle = await time_skipping_env.client.start_workflow(
            ReadsTheMachinesClock.run, id=f"clock-{queue}", task_queue=queue
        )
        if sandbox:
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()
            assert "datetime.datetime.now" in str(failure.value.cause)
        else:
            assert datetime.fromisoformat(await handle.result()).year >= 2026
