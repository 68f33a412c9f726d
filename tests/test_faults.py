"""Faults on the real dev server, in real time: a killed worker, an SMTP outage.

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

from temporalio.testing import WorkflowEnvironment

from mentorflow.definition import load_definition
from mentorflow.mail.catcher import MailCatcher
from mentorflow.models import ProgramPhase
from mentorflow.programs import start_program
from mentorflow.store import Store
from tests.conftest import free_port, settings_for, until_phase, wait_for
from tests.programs import fast_definition, spawn_mentorflow
from worker.main import create_worker


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
    # Reminders at +16 s and +40 s. The first task after the kill goes to the dead
    # worker's sticky queue and waits out its 10 s timeout before the new worker
    # gets it, so the second reminder is far enough away not to be due by then
    # (when two are due at once, the program rightly sends only the latest).
    file, program_id = fast_definition(tmp_path, opens=2, deadline=56, reminders=(40, 16))
    definition = load_definition(file)
    recipients = list(definition.announcement.recipients)
    env_vars = worker_env(dev_env, task_queue, database_url, mail_catcher.port)
    log = tmp_path / "worker.log"

    first = spawn_mentorflow("worker", env=env_vars, log=log)
    try:
        handle = await start_program(dev_env.client, definition, task_queue=task_queue)
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
    file, program_id = fast_definition(tmp_path, opens=1, deadline=30, reminders=(10,))
    definition = load_definition(file)
    recipients = list(definition.announcement.recipients)
    settings = settings_for(task_queue=task_queue, database_url=database_url, smtp_port=port)
    store = Store(database_url)
    catcher = MailCatcher(tmp_path / "mail", port=port)
    try:
        async with create_worker(dev_env.client, settings, store):
            handle = await start_program(dev_env.client, definition, task_queue=task_queue)

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
