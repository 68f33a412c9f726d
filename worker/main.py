"""Build and run the workers that host mentorflow's workflows and activities.

A process can host both kinds (the default) or only one (``mentorflow worker
--only workflows|activities``): a workflow task must finish within the SDK's two
seconds, so production runs the workflows in processes where no activity's CPU
work or payload (de)serialisation can hold the event loop (docs/ops.md, "The two
worker kinds").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.applications import ApplicationControlActivities, ApplicationRecordActivities
from activities.email import EmailActivities
from activities.matching import MatchingActivities
from activities.pairs import PairActivities
from activities.records import ProgramRecordActivities
from activities.reports import ReportActivities
from mentorflow.models import participant_task_queue
from mentorflow.settings import Settings
from mentorflow.store import Store, migrate
from worker import bytecode, metrics, pauses
from worker.kinds import WorkerKind, hosts_activities, hosts_workflows
from workflows.application import ApplicationWorkflow
from workflows.legacy.program_v1 import ProgramWorkflowV1
from workflows.pair import PairWorkflow
from workflows.program import ProgramWorkflow

log = logging.getLogger(__name__)

# ProgramWorkflowV1 runs the programs started before the thin program, until they end.
WORKFLOWS: Sequence[type] = (ProgramWorkflow, ProgramWorkflowV1, ApplicationWorkflow, PairWorkflow)


def local_activities_for(store: Store) -> list[Any]:
    """The activities workflows run as local activities, in the worker that runs them:
    short database writes whose round trip through the server would cost more than
    they do (an application's records)."""
    return [ApplicationRecordActivities(store).record_application]


def activities_for(store: Store, settings: Settings, client: Client) -> list[Any]:
    """The activity functions of every activity class, bound to their store, settings
    and Temporal client."""
    email = EmailActivities(store, settings)
    records = ProgramRecordActivities(store)
    applications = ApplicationRecordActivities(store)
    control = ApplicationControlActivities(store, client)
    matching = MatchingActivities(store)
    pairs = PairActivities(store)
    reports = ReportActivities(store)
    return [
        email.send_email_batch,
        email.send_email_batches,
        email.send_outcome_notices,
        email.send_calendar_emails,
        email.send_pair_email,
        email.send_evaluation_emails,
        reports.make_report,
        reports.purge_personal_data,
        pairs.open_pairs,
        pairs.check_rematch,
        pairs.record_pair,
        records.register_program,
        records.record_event,
        applications.record_application,
        applications.selection_of,
        applications.undecided_applications,
        applications.tally_on_record,
        control.close_applications,
        matching.record_selections,
        matching.decide_selections,
        matching.propose_matches,
        matching.confirm_matches,
    ]


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """Temporal's sandbox when ``worker_sandbox`` is on (the tests), else none: the
    sandbox guards code being changed, and costs a workflows worker about a quarter of
    its CPU on every run and payload (docs/ops.md, "Outside the sandbox, as shipped")."""
    return SandboxedWorkflowRunner() if settings.worker_sandbox else UnsandboxedWorkflowRunner()


@contextlib.asynccontextmanager
async def create_worker(
    client: Client,
    settings: Settings,
    store: Store,
    activities: Sequence[Callable[..., Any]] | None = None,
    *,
    kind: WorkerKind | None = None,
    activations: pauses.Activations | None = None,
) -> AsyncIterator[None]:
    """Run, until the block ends, the workers of the settings' task queue (programs) and
    of its participants' queue (applications and pairs): workflows started before the
    queues were split run on, so each queue gets every workflow and activity.

    ``kind`` None hosts both; ``WorkerKind.WORKFLOWS`` only the workflows and their
    local activities (``local_activities_for``: a few short database writes, so it needs
    the store too) and polls for no activity task; ``WorkerKind.ACTIVITIES`` only the
    activities. ``activities`` replaces ``activities_for(...)`` (tests wrap one).
    ``activations``: the thread pool both queues' workflow tasks run on (more than
    twice ``worker_workflow_tasks`` threads); by default each worker has its own.
    """
    if not hosts_activities(kind):
        activities = local_activities_for(store)
    elif activities is None:
        activities = activities_for(store, settings, client)
    workflows = list(WORKFLOWS) if hosts_workflows(kind) else []
    queues = (settings.temporal_task_queue, participant_task_queue(settings.temporal_task_queue))
    async with contextlib.AsyncExitStack() as workers:
        for queue in queues:
            await workers.enter_async_context(
                Worker(
                    client,
                    task_queue=queue,
                    workflows=workflows,
                    activities=activities,
                    # A workflows-only worker runs its few activities as local ones only.
                    no_remote_activities=not hosts_activities(kind),
                    # A program keeps one workflow per application and per pair running
                    # for weeks; past the SDK's default of 1,000 cached runs the worker
                    # would evict and, on the next task, replay whole histories.
                    max_cached_workflows=settings.worker_cached_workflows,
                    # Activations run on threads that take turns at the interpreter lock:
                    # the SDK's default of 100 tasks at once (per queue) let a burst of
                    # signals or clicks stretch a trivial activation past 2 s (TMPRL1101).
                    max_concurrent_workflow_tasks=settings.worker_workflow_tasks,
                    workflow_task_executor=activations,
                    workflow_runner=workflow_runner(settings),
                    # Let the running attempt of an email batch finish on a clean shutdown.
                    graceful_shutdown_timeout=timedelta(seconds=10),
                )
            )
        yield


async def run_worker(
    settings: Settings, client: Client, stop: asyncio.Event, *, kind: WorkerKind | None = None
) -> None:
    """Run the worker(s) of ``kind`` (None: both kinds) until ``stop`` is set.

    A worker hosting activities migrates the database first; a workflows-only
    worker opens it for its local activities and leaves the schema to the other kind
    (or ``mentorflow setup``).
    """
    activations: pauses.Activations | None = None
    collector: asyncio.Task[None] | None = None
    sandboxed = hosts_workflows(kind) and settings.worker_sandbox
    if sandboxed and not await asyncio.to_thread(bytecode.compile_workflow_modules):
        log.info("the workflow modules' bytecode could not be written: each run compiles them")
    if hosts_workflows(kind):
        # One pool for both queues' activations: full collections wait until it is idle.
        # A thread for every slot of both queues, and spare ones for evictions.
        activations = pauses.Activations(
            max_workers=2 * settings.worker_workflow_tasks + 4,
            observe=metrics.activation_histogram(client).record,
        )
    url = settings.effective_database_url
    if hosts_activities(kind):
        await asyncio.to_thread(migrate, url)
    store = Store(url)
    try:
        await store.ping()
        async with create_worker(client, settings, store, kind=kind, activations=activations):
            pauses.freeze_what_is_loaded()
            stop_watching = pauses.watch_collections()
            if activations is not None:
                collector = asyncio.create_task(pauses.collect_between_activations(activations))
            log.info(
                "worker (%s) polling task queues %s and %s",
                kind.value if kind else "workflows and activities",
                settings.temporal_task_queue,
                participant_task_queue(settings.temporal_task_queue),
            )
            await stop.wait()
            stop_watching()
    finally:
        if collector is not None:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
        if activations is not None:
            activations.shutdown(wait=False)
        await store.close()
