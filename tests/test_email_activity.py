"""The email activity against a real SMTP server (aiosmtpd) and a real database."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.email import EMAIL_IN_FLIGHT, TEMPORARY_SMTP_FAILURE, EmailActivities
from mentorflow.definition import Language
from mentorflow.mail.catcher import CatchingHandler, MailCatcher
from mentorflow.models import EmailBatch, EmailFacts
from mentorflow.store import Store
from tests.conftest import free_port, set_connections, settings_for

NOW = datetime(2027, 2, 15, 8, 0, tzinfo=UTC)


def batch(
    recipients: list[str],
    *,
    name: str = "Omvänt mentorskap",
    step: str = "announcement",
    language: Language = Language.SV,
) -> EmailBatch:
    return EmailBatch(
        program_id="p1",
        step=step,
        revision="1",
        template="announcement",
        recipients=recipients,
        facts=EmailFacts(
            program_name=name,
            description="<b>bold</b> & <script>alert(1)</script>",
            organisers=["Myndigheten"],
            language=language,
            timezone="Europe/Stockholm",
            opens=NOW,
            deadline=datetime(2027, 4, 8, 21, 59, tzinfo=UTC),
            start=NOW + timedelta(days=77),
            end=NOW + timedelta(days=288),
        ),
    )


class RefusingHandler(CatchingHandler):
    """Refuses one mailbox for good (550), like a server that knows no such user."""

    refused = "gone@example.org"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address == self.refused:
            return "550 5.1.1 No such user"
        return await super().handle_RCPT(server, session, envelope, address, options)


async def test_sends_each_recipient_once_with_a_stable_message_id(
    mail_catcher: MailCatcher, store: Store, database_url: str
) -> None:
    settings = settings_for(task_queue="-", database_url=database_url, smtp_port=mail_catcher.port)
    activities = EmailActivities(store, settings)
    env = ActivityEnvironment()
    recipients = ["a@example.org", "b@example.org"]

    first = await env.run(activities.send_email_batch, batch(recipients))
    again = await env.run(activities.send_email_batch, batch(recipients))

    assert (first.sent, first.already_sent) == (2, 0)
    assert (again.sent, again.already_sent) == (0, 2)
    caught = mail_catcher.messages()
    assert sorted(m.recipients[0] for m in caught) == recipients
    ledger = {e.recipient: e for e in await store.emails("p1")}
    for message in caught:
        entry = ledger[message.recipients[0]]
        assert entry.status == "sent" and entry.message_id == message.message_id
        assert message.message["Content-Language"] == "sv"
        assert message.message.get_content_type() == "multipart/alternative"
        # Swedish dates in the program's timezone (08 April 23:59 CEST).
        assert "torsdag 8 april 2027 kl. 23:59" in message.body("plain")


async def test_html_part_escapes_everything_typed_by_people(
    mail_catcher: MailCatcher, store: Store, database_url: str
) -> None:
    settings = settings_for(task_queue="-", database_url=database_url, smtp_port=mail_catcher.port)
    env = ActivityEnvironment()
    await env.run(
        EmailActivities(store, settings).send_email_batch,
        batch(["a@example.org"], name="<img src=x onerror=alert(1)>", language=Language.EN),
    )
    (message,) = mail_catcher.messages()
    html = message.body("html")
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Thursday 8 April 2027 at 23:59" in message.body("plain")


async def test_smtp_down_fails_temporarily_then_sends_once(
    tmp_path: Path, store: Store, database_url: str
) -> None:
    port = free_port()
    settings = settings_for(task_queue="-", database_url=database_url, smtp_port=port)
    activities = EmailActivities(store, settings)
    env = ActivityEnvironment()
    recipients = ["a@example.org", "b@example.org"]

    with pytest.raises(ApplicationError) as failure:
        await env.run(activities.send_email_batch, batch(recipients))
    assert failure.value.type == TEMPORARY_SMTP_FAILURE and not failure.value.non_retryable
    assert f"127.0.0.1:{port}" in str(failure.value)
    pending = await store.emails("p1")
    assert [e.status for e in pending] == ["pending"]  # released for the retry
    assert pending[0].last_error

    catcher = MailCatcher(tmp_path / "mail", port=port)
    catcher.start()
    try:
        result = await env.run(activities.send_email_batch, batch(recipients))
        await env.run(activities.send_email_batch, batch(recipients))
    finally:
        catcher.stop()
    assert result.sent == 2
    assert sorted(m.recipients[0] for m in catcher.messages()) == recipients
    assert {e.status for e in await store.emails("p1")} == {"sent"}


async def test_permanent_refusal_is_recorded_and_not_retried(
    tmp_path: Path, store: Store, database_url: str
) -> None:
    port = free_port()
    catcher = MailCatcher(tmp_path / "mail", port=port, handler=RefusingHandler(tmp_path / "mail"))
    catcher.start()
    try:
        settings = settings_for(task_queue="-", database_url=database_url, smtp_port=port)
        activities = EmailActivities(store, settings)
        env = ActivityEnvironment()
        recipients = ["a@example.org", RefusingHandler.refused, "not an address", "c@example.org"]
        result = await env.run(activities.send_email_batch, batch(recipients))
        again = await env.run(activities.send_email_batch, batch(recipients))
    finally:
        catcher.stop()
    assert result.sent == 2
    assert {r.recipient for r in result.rejected} == {RefusingHandler.refused, "not an address"}
    assert "550" in next(
        r.reason for r in result.rejected if r.recipient == RefusingHandler.refused
    )
    assert again.sent == 0 and again.already_sent == 4
    statuses = {e.recipient: e.status for e in await store.emails("p1")}
    assert statuses[RefusingHandler.refused] == "rejected"
    assert statuses["a@example.org"] == statuses["c@example.org"] == "sent"
    assert sorted(m.recipients[0] for m in catcher.messages()) == ["a@example.org", "c@example.org"]


async def test_two_attempts_at_once_never_send_one_email_twice(
    mail_catcher: MailCatcher, store: Store, database_url: str
) -> None:
    """A slow attempt still running when Temporal starts its retry (a "zombie")."""
    settings = settings_for(task_queue="-", database_url=database_url, smtp_port=mail_catcher.port)
    activities = EmailActivities(store, settings)
    recipients = [f"p{i}@example.org" for i in range(20)]
    outcomes = await asyncio.gather(
        ActivityEnvironment().run(activities.send_email_batch, batch(recipients)),
        ActivityEnvironment().run(activities.send_email_batch, batch(recipients)),
        return_exceptions=True,
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, ApplicationError) and outcome.type == EMAIL_IN_FLIGHT
    # Whatever the interleaving, a retry after the leases completes the batch.
    await ActivityEnvironment().run(activities.send_email_batch, batch(recipients))
    caught = sorted(m.recipients[0] for m in mail_catcher.messages())
    assert caught == sorted(recipients)


class DatabaseLostOnAcceptHandler(CatchingHandler):
    """Accepts each message, but the first time closes the database just before
    saying so, for ``outage`` seconds: the email is out, and the ledger cannot say so."""

    def __init__(self, maildir: Path, database_url: str, outage: float) -> None:
        super().__init__(maildir)
        self.database_url = database_url
        self.outage = outage
        self.struck = False

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        if not self.struck:
            self.struck = True
            set_connections(self.database_url, allowed=False)
            threading.Timer(
                self.outage, set_connections, (self.database_url,), {"allowed": True}
            ).start()
        return answer


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_database_lost_after_the_server_accepted_never_sends_twice(
    tmp_path: Path, store: Store, database_url: str
) -> None:
    port = free_port()
    handler = DatabaseLostOnAcceptHandler(tmp_path / "mail", database_url, outage=4.0)
    catcher = MailCatcher(tmp_path / "mail", port=port, handler=handler)
    catcher.start()
    try:
        settings = settings_for(task_queue="-", database_url=database_url, smtp_port=port)
        activities = EmailActivities(store, settings)
        env = ActivityEnvironment()
        heartbeats: list[object] = []
        env.on_heartbeat = lambda *details: heartbeats.append(details)
        recipients = ["a@example.org", "b@example.org"]
        result = await env.run(activities.send_email_batch, batch(recipients))
        # A later attempt (a retry of the workflow's, or a duplicate) finds both on record.
        again = await ActivityEnvironment().run(activities.send_email_batch, batch(recipients))
    finally:
        catcher.stop()
        set_connections(database_url, allowed=True)
    assert handler.struck
    # The attempt waited out the outage, heartbeating, instead of failing with the
    # first email out but not on record (which a retry after the lease would resend).
    assert len(heartbeats) > len(recipients)
    assert (result.sent, result.already_sent) == (2, 0)
    assert (again.sent, again.already_sent) == (0, 2)
    assert sorted(m.recipients[0] for m in catcher.messages()) == recipients
    assert {e.status for e in await store.emails("p1")} == {"sent"}
