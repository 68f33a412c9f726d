"""Faults on the real dev server, in real time: a killed worker, a restarted server,
an SMTP outage, the database gone for a while.

The worker runs as its own process (``mentorflow worker``), exactly as ops run
it, so it can be killed with SIGKILL mid-phase.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from mentorflow import search_attributes
from mentorflow.codec import compact_data_converter
from mentorflow.mail.catcher import MailCatcher
from mentorflow.models import ProgramPhase
from mentorflow.programs import handle_for
from mentorflow.settings import Settings
from mentorflow.store import Store
from mentorflow.temporal import binary
from tests.conftest import (
    free_port,
    program_running,
    run_histories,
    set_connections,
    settings_for,
    until_phase,
    wait_for,
)
from tests.programs import fast_program, spawn_mentorflow, start_with_database
from workflows.program import ProgramWorkflow


def worker_env(
    env: WorkflowEnvironment, task_queue: str, database_url: str, smtp_port: int
) -> dict[str, str]:
    return {
        "MENTORFLOW_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "MENTORFLOW_TEMPORAL_TASK_QUEUE": task_queue,
        "MENTORFLOW_DATABASE_URL": database_url,
        "MENTORFLOW_SMTP_PORT": str(smtp_port),
    }


def kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def assert_each_email_once(
    catcher: MailCatcher, recipients: list[str], kinds: dict[str, int]
) -> None:
    caught = catcher.messages()
    assert all(n == 1 for n in Counter(m.message_id for m in caught).values())
    by_kind = Counter((m.recipients[0], m.subject.split(":")[0]) for m in caught)
    for recipient in recipients:
        for kind, count in kinds.items():
            assert by_kind[(recipient, kind)] == count, (recipient, kind, by_kind)
    assert len(caught) == len(recipients) * sum(kinds.values())


async def test_worker_killed_mid_phase_loses_and_duplicates_nothing(
    dev_env: WorkflowEnvironment,
    mail_catcher: MailCatcher,
    database_url: str,
    task_queue: str,
    tmp_path: Path,
) -> None:
    # Reminders at +16 s and +38 s, the deadline at +44 s. The first task after the
    # kill goes to the dead worker's sticky queue and waits out its 10 s timeout
    # before the new worker gets it, so the second reminder is far enough away not
    # to be due by then (when two are due at once, the program rightly sends only
    # the latest).
    definition = fast_program(tmp_path, opens=2, deadline=44, reminders=(28, 6))
    program_id = definition.id
    recipients = list(definition.announcement.recipients)
    env_vars = worker_env(dev_env, task_queue, database_url, mail_catcher.port)
    log = tmp_path / "worker.log"

    first = spawn_mentorflow("worker", env=env_vars, log=log)
    try:
        handle = await start_with_database(
            dev_env.client, definition, database_url, task_queue=task_queue
        )
        # Kill the worker at a random moment after the announcement went out,
        # before the first reminder.
        await wait_for(lambda: len(mail_catcher.messages()) >= len(recipients), within=30)
        await asyncio.sleep(random.uniform(0.0, 2.0))
    finally:
        kill(first)
    status = await handle.describe()
    assert status.status is not None and status.status.name == "RUNNING"

    await asyncio.sleep(3)
    second = spawn_mentorflow("worker", env=env_vars, log=log)
    try:
        status = await until_phase(handle, ProgramPhase.RUNNING, within=150)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert status.counts["reminders_sent"] == 2
    assert_each_email_once(mail_catcher, recipients, {"Applications are open": 1, "Reminder": 2})
    store = Store(database_url)
    try:
        ledger = await store.emails(program_id)
        assert len(ledger) == 3 * len(recipients)
        assert {e.status for e in ledger} == {"sent"}
        program = await store.program(program_id)
        assert program is not None and program.phase == "running"
    finally:
        await store.close()


async def test_smtp_outage_delays_emails_but_loses_none(
    dev_env: WorkflowEnvironment, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    port = free_port()
    # SMTP is back by the announcement's third attempt (about +16 s, retries back off
    # from 5 s); the reminder falls due at +18 s, before the deadline at +25 s.
    definition = fast_program(tmp_path, opens=1, deadline=25, reminders=(7,))
    program_id = definition.id
    recipients = list(definition.announcement.recipients)
    settings = settings_for(task_queue=task_queue, database_url=database_url, smtp_port=port)
    store = Store(database_url)
    catcher = MailCatcher(tmp_path / "mail", port=port)
    try:
        async with program_running(dev_env.client, settings, store, definition) as handle:

            async def announcement_failed() -> bool:
                entries = await store.emails(program_id)
                return bool(entries) and all(e.last_error for e in entries[:1])

            # SMTP is down when the window opens: the announcement fails and is retried.
            await wait_for(announcement_failed, within=20)
            await asyncio.sleep(6)
            catcher.start()
            await until_phase(handle, ProgramPhase.RUNNING, within=90)
        ledger = await store.emails(program_id)
    finally:
        catcher.stop()
        await store.close()
    assert_each_email_once(catcher, recipients, {"Applications are open": 1, "Reminder": 1})
    announcement = [e for e in ledger if e.step == "announcement"]
    assert all(e.status == "sent" for e in announcement)
    # The first recipient was attempted during the outage, and the ledger keeps why it was late.
    assert max(e.attempts for e in announcement) >= 2
    assert any("Connect" in (e.last_error or "") for e in announcement)


async def announced(handle: Any, recipients: int) -> bool:
    """Whether the program has the announcement's sending on record."""
    status = await handle.query(ProgramWorkflow.status)
    return bool(status.counts["announcement_recipients"] == recipients)


async def dev_server_at(port: int, database: Path) -> WorkflowEnvironment:
    """A dev server on a fixed port with a persistent database, so it can be restarted."""
    return await WorkflowEnvironment.start_local(
        port=port,
        data_converter=compact_data_converter,
        dev_server_existing_path=str(binary("temporal")),
        dev_server_database_filename=str(database),
        search_attributes=list(search_attributes.ALL),
    )


# The database plays no part in a server restart: SQLite only, to keep CI short.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_dev_server_restarted_mid_program_loses_nothing(
    mail_catcher: MailCatcher, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    port, database = free_port(), tmp_path / "temporal.db"
    # The reminder falls due (+12 s) while the server is down; the deadline (+48 s) leaves
    # time for the restart and the worker's reconnection before it, even on a busy machine
    # (at +36 s, a CI run beside a whole stack under test reached the deadline first).
    definition = fast_program(tmp_path, opens=2, deadline=48, reminders=(36,))
    program_id = definition.id
    recipients = list(definition.announcement.recipients)
    env = await dev_server_at(port, database)
    worker = spawn_mentorflow(
        "worker",
        env=worker_env(env, task_queue, database_url, mail_catcher.port),
        log=tmp_path / "w",
    )
    try:
        handle = await start_with_database(
            env.client, definition, database_url, task_queue=task_queue
        )
        # Down once the announcement is on record: an activity whose completion
        # cannot be reported is retried only after its timeout (65 s), past the
        # deadline, and the program would then rightly skip the reminder.
        await wait_for(lambda: announced(handle, len(recipients)), within=30)
        await env.shutdown()
        await asyncio.sleep(10)  # the worker keeps polling a server that is not there
        assert worker.poll() is None
        env = await dev_server_at(port, database)
        handle = handle_for(env.client, program_id)
        status = await until_phase(handle, ProgramPhase.RUNNING, within=120)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        await env.shutdown()
    assert status.counts["reminders_sent"] == 1
    assert_each_email_once(mail_catcher, recipients, {"Applications are open": 1, "Reminder": 1})
    store = Store(database_url)
    try:
        assert {e.status for e in await store.emails(program_id)} == {"sent"}
        kinds = [e.kind for e in await store.events(program_id)]
    finally:
        await store.close()
    assert kinds.count("phase") >= 3 and "reminder" in kinds


@pytest.mark.database
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_database_briefly_down_activities_retry_and_nothing_is_lost(
    dev_env: WorkflowEnvironment,
    worker_settings: Settings,
    mail_catcher: MailCatcher,
    store: Store,
    database_url: str,
    tmp_path: Path,
) -> None:
    # The reminder falls due (+12 s) while the database refuses every connection; its
    # email, retried (backing off from 5 s), goes out before the deadline (+32 s).
    definition = fast_program(tmp_path, opens=2, deadline=32, reminders=(20,))
    recipients = list(definition.announcement.recipients)
    async with program_running(dev_env.client, worker_settings, store, definition) as handle:
        # Down once the announcement is on record (not between its send and its
        # ledger mark, which would hold the reminder back past the deadline).
        await wait_for(lambda: announced(handle, len(recipients)), within=30)
        set_connections(database_url, allowed=False)
        try:
            await asyncio.sleep(15)
            assert len(mail_catcher.messages()) == len(recipients)  # the reminder waits
        finally:
            set_connections(database_url, allowed=True)
        status = await until_phase(handle, ProgramPhase.RUNNING, within=120)
        ledger = await store.emails(definition.id)
        histories = await run_histories(dev_env.client, handle.id)
    assert status.counts["reminders_sent"] == 1
    assert_each_email_once(mail_catcher, recipients, {"Applications are open": 1, "Reminder": 1})
    assert {e.status for e in ledger} == {"sent"} and len(ledger) == 2 * len(recipients)
    retried = set()
    for history in histories:  # event ids count per run
        scheduled = {
            event.event_id: event.activity_task_scheduled_event_attributes.activity_type.name
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        }
        retried |= {
            scheduled[event.activity_task_started_event_attributes.scheduled_event_id]
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and event.activity_task_started_event_attributes.attempt > 1
        }
    # What reached the database while it was down was tried again until it was back:
    # the reminder's email (its ledger row), or the window's count of applications
    # before it (the loop then sent the reminder once the count was through).
    assert retried & {"send_email_batch", "tally_on_record"}, retried
