"""Build and run the worker that hosts every workflow and activity of mentorflow."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.applications import ApplicationRecordActivities
from activities.email import EmailActivities
from activities.matching import MatchingActivities
from activities.pairs import PairActivities
from activities.records import ProgramRecordActivities
from activities.reports import ReportActivities
from mentorflow.models import participant_task_queue
from mentorflow.settings import Settings
from mentorflow.store import Store, migrate
from workflows.application import ApplicationWorkflow
from workflows.pair import PairWorkflow
from workflows.program import ProgramWorkflow

log = logging.getLogger(__name__)

WORKFLOWS: Sequence[type] = (ProgramWorkflow, ApplicationWorkflow, PairWorkflow)


def activities_for(store: Store, settings: Settings) -> list[Any]:
    email = EmailActivities(store, settings)
    records = ProgramRecordActivities(store)
    applications = ApplicationRecordActivities(store)
    matching = MatchingActivities(store)
    pairs = PairActivities(store)
    reports = ReportActivities(store)
    return [
        email.send_email_batch,
        email.send_outcome_notices,
        email.send_calendar_emails,
        email.send_pair_email,
        email.send_evaluation_emails,
        reports.make_report,
        reports.purge_personal_data,
        pairs.open_pairs,
        pairs.record_pair,
        records.register_program,
        records.record_event,
        applications.record_application,
        matching.record_selections,
        matching.propose_matches,
        matching.confirm_matches,
    ]


@contextlib.asynccontextmanager
async def create_worker(
    client: Client,
    settings: Settings,
    store: Store,
    activities: Sequence[Callable[..., Any]] | None = None,
) -> AsyncIterator[None]:
    """Run, until the block ends, the workers of the settings' task queue (programs) and
    of its participants' queue (applications and pairs), with every workflow and
    activity on each: workflows started before the queues were split run on.
    ``activities`` replaces ``activities_for(store, settings)`` (tests wrap one)."""
    if activities is None:
        activities = activities_for(store, settings)
    queues = (settings.temporal_task_queue, participant_task_queue(settings.temporal_task_queue))
    async with contextlib.AsyncExitStack() as workers:
        for queue in queues:
            await workers.enter_async_context(
                Worker(
                    client,
                    task_queue=queue,
                    workflows=list(WORKFLOWS),
                    activities=activities,
                    # A program keeps one workflow per application and per pair running
                    # for weeks; past the SDK's default of 1,000 cached runs the worker
                    # would evict and, on the next task, replay whole histories.
                    max_cached_workflows=settings.worker_cached_workflows,
                    # Let the running attempt of an email batch finish on a clean shutdown.
                    graceful_shutdown_timeout=timedelta(seconds=10),
                )
            )
        yield


async def run_worker(settings: Settings, client: Client, stop: asyncio.Event) -> None:
    """Migrate the database, then run the worker until ``stop`` is set."""
    url = settings.effective_database_url
    await asyncio.to_thread(migrate, url)
    store = Store(url)
    try:
        await store.ping()
        async with create_worker(client, settings, store):
            log.info(
                "worker polling task queues %s and %s",
                settings.temporal_task_queue,
                participant_task_queue(settings.temporal_task_queue),
            )
            await stop.wait()
    finally:
        await store.close()
