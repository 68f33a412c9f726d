"""Clicks that race: one approval link clicked many times at once, before and after the
workflow has seen its email's send return.

Real web app over HTTP, real SMTP server, real database, the dev server in real
time. Only the email activity is slowed down after it has sent, as a busy
worker or server would: the manager has the link in the inbox while the
application's workflow does not yet know who the email went to.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailActivities
from mentorflow import people
from mentorflow.mail.catcher import MailCatcher
from mentorflow.models import (
    ApplicationResult,
    ApplicationStatus,
    EmailBatch,
    EmailBatchResult,
    ProgramPhase,
    application_workflow_id,
)
from mentorflow.people import Resolver
from mentorflow.programs import start_program
from mentorflow.settings import Settings
from mentorflow.store import Store
from tests.conftest import links_in, serving, until_phase, wait_for
from tests.programs import demo_application, fast_program
from worker.main import activities_for, create_worker
from workflows.application import ApplicationWorkflow

# The database matters here: these run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.database

MANAGER = "manager.race@demo.example.org"


def slow_to_report(store: Store, settings: Settings, release: asyncio.Event) -> list[object]:
    """The email activities, except that an approval request reports back only on
    ``release`` (sent alone, or in one activity with the applicant's confirmation)."""

    class SlowToReport(EmailActivities):
        # Where both activities send each batch.
        async def _send_batch(self, batch: EmailBatch, resolver: Resolver) -> EmailBatchResult:
            result = await super()._send_batch(batch, resolver)
            if batch.template == "approval_request":
                await release.wait()
            return result

    slow = SlowToReport(store, settings)
    return [slow.send_email_batch, slow.send_email_batches]


async def click_all(http: httpx.AsyncClient, path: str, times: int) -> list[asyncio.Task[int]]:
    async def click() -> int:
        return (await http.post(path, data={"choice": "approve"})).status_code

    return [asyncio.create_task(click()) for _ in range(times)]


# PostgreSQL, where concurrent requests really write at once (SQLite takes one
# writer at a time); one database keeps CI short.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_one_link_clicked_many_times_at_once_makes_exactly_one_decision(
    dev_env: WorkflowEnvironment,
    worker_settings: Settings,
    mail_catcher: MailCatcher,
    store: Store,
    task_queue: str,
    tmp_path: Path,
) -> None:
    definition = fast_program(tmp_path, opens=1, deadline=90, reminders=(60,))
    program_id = definition.id
    release = asyncio.Event()
    activities = [
        *(
            a
            for a in activities_for(store, worker_settings, dev_env.client)
            if a.__name__ not in ("send_email_batch", "send_email_batches")
        ),
        *slow_to_report(store, worker_settings, release),
    ]
    worker = create_worker(dev_env.client, worker_settings, store, activities)
    async with worker, serving(worker_settings, dev_env.client, store) as web:
        program = await start_program(
            dev_env.client, definition, store=store, task_queue=task_queue
        )
        await until_phase(program, ProgramPhase.APPLICATION_WINDOW, within=30)
        applied = await web.http.post(
            f"/programs/{program_id}/apply",
            params={"profile": "mentor"},
            data=demo_application("Applicant Race", "applicant.race@demo.example.org", MANAGER),
        )
        assert applied.status_code == 200, applied.text
        await wait_for(lambda: links_in(mail_catcher, MANAGER, "a"), within=30)
        (link,) = links_in(mail_catcher, MANAGER, "a")
        path = httpx.URL(link).path

        # Twenty clicks while the workflow still waits for the send to report back:
        # none is turned away as "not your link"; they wait.
        early = await click_all(web.http, path, 20)
        await asyncio.sleep(1.5)
        assert not any(task.done() for task in early)
        release.set()
        statuses = Counter(await asyncio.gather(*early))
        # Ten more once the answer is on record.
        late = Counter(await asyncio.gather(*await click_all(web.http, path, 10)))

        (application,) = await store.applications(program_id)
        handle: WorkflowHandle[ApplicationWorkflow, ApplicationResult] = (
            dev_env.client.get_workflow_handle_for(
                ApplicationWorkflow.run, application_workflow_id(program_id, application.id)
            )
        )
        status: ApplicationStatus = await handle.query(ApplicationWorkflow.status)
        decisions = await store.decisions(application.id)

    assert statuses == {200: 1, 409: 19}
    assert late == {409: 10}
    # The workflow knows the manager by reference; the database records the address.
    assert status.state == "approved" and status.decided_by == people.manager(application.id)
    assert [(d.decision, d.decided_by, d.channel) for d in decisions] == [
        ("approved", MANAGER, "email_link")
    ]
    assert application.status == "approved"
