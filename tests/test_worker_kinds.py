"""The two worker kinds, the workflow task times they are judged by, and what the CLI says
about a program whose workflow task keeps failing.

- ``mentorflow worker --only workflows|activities``: each kind polls both task
  queues, for its own kind of task only (read from the SDK's poller metrics), and
  takes only a few workflow tasks at once (its slots, from the same metrics);
- ``worker.metrics``: the SDK's ``temporal_workflow_task_execution_latency`` read
  from a metric buffer and summarised (p50, p99, max), for benchmarks;
- ``mentorflow program status`` (and ``program reschedule``) on a program whose every
  workflow task fails: one line saying so, with the Temporal UI link and what the
  database recorded.
"""

from __future__ import annotations

import asyncio
import gc
import uuid

import pytest
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from mentorflow.definition import load_definition
from mentorflow.models import participant_task_queue, program_workflow_id
from mentorflow.settings import Settings
from mentorflow.store import Store
from mentorflow.temporal import binary
from tests.conftest import cli_env, wait_for
from tests.programs import DEMO, mentorflow, record_program
from tests.task_workflows import BrokenProgram, Ticks
from worker.kinds import WorkerKind
from worker.main import create_worker, run_worker
from worker.metrics import WORKFLOW_TASK_DEADLINE_MS, WorkflowTaskTimes, summarise


def test_summaries_are_nearest_rank_percentiles() -> None:
    hundred = summarise(float(ms) for ms in range(100, 0, -1))
    assert (hundred.count, hundred.p50_ms, hundred.p99_ms, hundred.max_ms) == (100, 50, 99, 100)
    assert str(hundred) == "100 workflow tasks: p50 50 ms, p99 99 ms, max 100 ms"
    assert not hundred.over_deadline
    assert summarise([2500.0]).over_deadline
    empty = summarise([])
    assert empty.count == 0 and str(empty) == "no workflow tasks"


async def test_workflow_task_durations_are_read_from_the_sdks_metrics(task_queue: str) -> None:
    times = WorkflowTaskTimes()
    env = await WorkflowEnvironment.start_time_skipping(
        runtime=times.runtime, test_server_existing_path=str(binary("temporal-test-server"))
    )
    async with env, Worker(env.client, task_queue=task_queue, workflows=[Ticks]):
        ran = await env.client.execute_workflow(
            Ticks.run, 3, id=f"ticks-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
    assert ran == 3
    summary = times.summary("Ticks")
    # The first task, then one per wake-up (the last one completes the workflow).
    assert summary.count >= 4, summary
    assert 0 <= summary.p50_ms <= summary.p99_ms <= summary.max_ms < WORKFLOW_TASK_DEADLINE_MS
    assert set(times.by_workflow_type()) == {"Ticks"}
    assert times.summary() == summary
    times.reset()
    assert times.summary().count == 0


async def _polled(
    env: WorkflowEnvironment, settings: Settings, store: Store, kind: WorkerKind | None
) -> set[tuple[str, str]]:
    """(task queue, "workflow" or "activity") of every poller a worker of ``kind`` ran."""
    buffer = MetricBuffer(100_000)
    client = await type(env.client).connect(
        env.client.service_client.config.target_host,
        runtime=Runtime(telemetry=TelemetryConfig(metrics=buffer)),
    )
    seen: set[tuple[str, str]] = set()

    def read() -> bool:
        for update in buffer.retrieve_updates():
            if update.metric.name == "temporal_num_pollers" and update.value:
                poller = str(update.attributes["poller_type"])
                kind_of_task = "activity" if poller.startswith("activity") else "workflow"
                seen.add((str(update.attributes["task_queue"]), kind_of_task))
        return len(seen) >= (4 if kind is None else 2)

    async with create_worker(client, settings, store, kind=kind):
        await wait_for(read, within=10)
        await asyncio.sleep(0.5)  # a poller of the wrong kind would have started by now
        read()
    return seen


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_each_worker_kind_polls_both_queues_for_its_own_tasks_only(
    dev_env: WorkflowEnvironment, worker_settings: Settings, store: Store
) -> None:
    programs = worker_settings.temporal_task_queue
    participants = participant_task_queue(programs)
    workflows_only = await _polled(dev_env, worker_settings, store, WorkerKind.WORKFLOWS)
    assert workflows_only == {(programs, "workflow"), (participants, "workflow")}
    activities_only = await _polled(dev_env, worker_settings, store, WorkerKind.ACTIVITIES)
    assert activities_only == {(programs, "activity"), (participants, "activity")}
    both = await _polled(dev_env, worker_settings, store, None)
    assert both == workflows_only | activities_only


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_worker_takes_only_a_few_workflow_tasks_at_once(
    dev_env: WorkflowEnvironment, worker_settings: Settings, store: Store
) -> None:
    """Activations take turns at one interpreter lock: the worker asks the server for at
    most ``worker_workflow_tasks`` at once per queue (the SDK's default is 100)."""
    buffer = MetricBuffer(100_000)
    client = await type(dev_env.client).connect(
        dev_env.client.service_client.config.target_host,
        runtime=Runtime(telemetry=TelemetryConfig(metrics=buffer)),
    )
    settings = worker_settings.model_copy(update={"worker_workflow_tasks": 3})
    slots: dict[str, int] = {}

    def read() -> bool:
        for update in buffer.retrieve_updates():
            if (
                update.metric.name == "temporal_worker_task_slots_available"
                and update.attributes.get("worker_type") == "WorkflowWorker"
            ):
                slots[str(update.attributes["task_queue"])] = int(update.value)
        return len(slots) == 2

    async with create_worker(client, settings, store, kind=WorkerKind.WORKFLOWS):
        await wait_for(read, within=10)
    programs = settings.temporal_task_queue
    assert slots == {programs: 3, participant_task_queue(programs): 3}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_workflows_worker_leaves_full_collections_to_its_idle_moments(
    dev_env: WorkflowEnvironment, worker_settings: Settings
) -> None:
    """The interpreter starts no full collection on its own while the worker runs
    (worker/pauses.py collects between activations); it does again once it stopped."""
    before = gc.get_threshold()
    stop = asyncio.Event()
    running = asyncio.create_task(
        run_worker(worker_settings, dev_env.client, stop, kind=WorkerKind.WORKFLOWS)
    )
    try:
        await wait_for(lambda: gc.get_threshold()[2] > 10**9, within=10)
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        gc.unfreeze()  # the worker froze what was alive: this test process lives on
    assert gc.get_threshold() == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_status_of_a_program_whose_workflow_task_fails_is_one_line(
    dev_env: WorkflowEnvironment, database_url: str, store: Store, task_queue: str
) -> None:
    definition = load_definition(DEMO).model_copy(update={"id": f"broken-{uuid.uuid4().hex[:8]}"})
    await record_program(store, definition)  # phase application_window, deadline 1 March
    client = dev_env.client
    workflow_id = program_workflow_id(definition.id)
    async with Worker(client, task_queue=task_queue, workflows=[BrokenProgram]):
        # Started by type name: given this no-argument run method, mypy (1.x) later solves
        # every get_workflow_handle_for(X.run, ...) of the suite to Never.
        handle = await client.start_workflow(
            "ProgramWorkflow", id=workflow_id, task_queue=task_queue
        )
        assert await handle.query(BrokenProgram.status) == "fine"
        await handle.signal(BrokenProgram.trip)

        async def failing() -> bool:
            description = await handle.describe()
            return description.raw_description.pending_workflow_task.attempt >= 2

        await wait_for(failing, within=30, interval=0.3)
        env = cli_env(dev_env, database_url)
        status = await asyncio.to_thread(mentorflow, "program", "status", definition.id, env=env)
        # HR's commands on it say the same in one line, and change nothing.
        moved = await asyncio.to_thread(
            mentorflow, "program", "reschedule", definition.id, "--deadline", "2099-03-01", env=env
        )
        await handle.terminate("test over")

    for answer in (status, moved):
        assert answer.returncode == 1, answer.stdout
        assert "Traceback" not in answer.stderr + answer.stdout and answer.stdout == ""
    (line,) = status.stderr.strip().splitlines()
    assert line.startswith(
        f"error: program {definition.id!r}: its workflow is not answering"
        " (its workflow task is failing: "
    ), line
    (refused,) = moved.stderr.strip().splitlines()
    assert refused.startswith(f"error: program {definition.id!r}: its workflow is not answering"), (
        refused
    )
    link = f"http://127.0.0.1:8233/namespaces/default/workflows/{workflow_id}"
    assert f"; see the Temporal UI: {link}); " in line, line
    assert (
        "; the database last recorded phase application_window, next deadline"
        " Monday 1 March 2027 at 17:00 CET (at "
    ) in line, line
