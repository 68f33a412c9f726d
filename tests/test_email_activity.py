"""The email activity against a real SMTP server (aiosmtpd) and a real database."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.message
import email.policy
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.utils import format_datetime
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtplib.email import flatten_message
from sqlalchemy import create_engine, text
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.email as email_activity
import activities.heartbeat as activities_heartbeat
from activities.email import EMAIL_IN_FLIGHT, TEMPORARY_SMTP_FAILURE, EmailActivities
from mentorflow import people
from mentorflow.definition import Contact, Language, load_definition
from mentorflow.mail.catcher import CatchingHandler, MailCatcher
from mentorflow.mail.message import MessageTemplate, build_message, email_key, message_id
from mentorflow.mail.render import RenderedEmail, render
from mentorflow.models import EmailBatch, EmailBatches, EmailFacts, OutcomeNoticesInput
from mentorflow.store import Store, sync_url
from tests.conftest import email_activities, free_port, set_connections
from tests.programs import record_application, record_program

# The database matters here: these run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.database

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


@contextlib.contextmanager
def smtp_server(
    tmp_path: Path, handler: CatchingHandler, store: Store, database_url: str
) -> Iterator[tuple[MailCatcher, EmailActivities]]:
    """A real SMTP server on a port of its own, answered by ``handler``, until the block
    ends; and the email activities that send to it."""
    port = free_port()
    catcher = MailCatcher(tmp_path / "mail", port=port, handler=handler)
    catcher.start()
    try:
        yield catcher, email_activities(store, database_url, port)
    finally:
        catcher.stop()


class GreetingCountingHandler(CatchingHandler):
    """Counts EHLOs: one per SMTP connection the activities open."""

    def __init__(self, maildir: Path) -> None:
        super().__init__(maildir)
        self.greetings = 0

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.greetings += 1
        session.host_name = hostname
        return responses


async def test_deliveries_one_after_another_share_one_smtp_connection(
    tmp_path: Path, store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An application's emails went out on a connection of their own: TCP, greeting, EHLO
    and QUIT for one or two emails. A clean delivery now leaves its connection open for the
    next, for a while; one that failed closes it."""
    handler = GreetingCountingHandler(tmp_path / "mail")
    env = ActivityEnvironment()
    with smtp_server(tmp_path, handler, store, database_url) as (catcher, activities):
        for i in range(3):
            result = await env.run(activities.send_email_batch, batch([f"a{i}@example.org"]))
            assert result.sent == 1
        assert handler.greetings == 1
        # Idle longer than a connection is kept: a new one.
        monkeypatch.setattr(email_activity, "IDLE_CONNECTION", 0.0)
        await env.run(activities.send_email_batch, batch(["b@example.org"]))
        assert handler.greetings == 2
        monkeypatch.undo()
        # Two deliveries at once each take a connection (the second a new one); both are
        # kept for the deliveries after.
        connections = activities._connections
        first, second = await connections.take(), await connections.take()
        await first.ehlo()
        await second.ehlo()
        assert first is not second and handler.greetings == 4
        await connections.give(first, clean=True)
        await connections.give(second, clean=True)
        await asyncio.gather(
            *(env.run(activities.send_email_batch, batch([f"c{i}@example.org"])) for i in range(2))
        )
        await env.run(activities.send_email_batch, batch(["d@example.org"]))
        assert handler.greetings == 4
        # A delivery that failed closes its connection instead of giving it back.
        failed = await connections.take()
        await connections.give(failed, clean=False)
        assert not failed.is_connected
        assert [smtp for smtp, _ in connections._idle] == [first if failed is second else second]
        assert len(catcher.messages()) == 7


async def test_a_kept_connection_the_server_dropped_is_replaced_and_nothing_is_lost(
    tmp_path: Path, store: Store, database_url: str
) -> None:
    """The mail server restarts between two deliveries: the connection kept from the
    first is gone, the second opens a new one and its email goes out once."""
    port = free_port()
    first = GreetingCountingHandler(tmp_path / "mail")
    catcher = MailCatcher(tmp_path / "mail", port=port, handler=first)
    catcher.start()
    activities = email_activities(store, database_url, port)
    env = ActivityEnvironment()
    try:
        assert (await env.run(activities.send_email_batch, batch(["a@example.org"]))).sent == 1
    finally:
        catcher.stop()
    second = GreetingCountingHandler(tmp_path / "mail")
    catcher = MailCatcher(tmp_path / "mail", port=port, handler=second)
    catcher.start()
    try:
        result = await env.run(activities.send_email_batch, batch(["b@example.org"]))
    finally:
        catcher.stop()
    assert result.sent == 1 and (first.greetings, second.greetings) == (1, 1)
    assert sorted(m.recipients[0] for m in catcher.messages()) == ["a@example.org", "b@example.org"]


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
    activities = email_activities(store, database_url, mail_catcher.port)
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


async def test_batches_in_one_activity_each_go_once_and_a_retry_sends_none(
    mail_catcher: MailCatcher, store: Store, database_url: str
) -> None:
    # An application's confirmation and its manager's request share one activity.
    activities = email_activities(store, database_url, mail_catcher.port)
    request = EmailBatches(
        batches=[
            batch(["applicant@example.org"], step="app-1/application-received"),
            batch(["manager@example.org"], step="app-1/approval-request"),
        ]
    )
    first = await ActivityEnvironment().run(activities.send_email_batches, request)
    retry = await ActivityEnvironment().run(activities.send_email_batches, request)

    assert [(r.sent, r.already_sent) for r in first.results] == [(1, 0), (1, 0)]
    assert [(r.sent, r.already_sent) for r in retry.results] == [(0, 1), (0, 1)]
    # Each result names its own recipient, in the order of the batches.
    assert [list(r.fingerprints) for r in first.results] == [
        ["applicant@example.org"],
        ["manager@example.org"],
    ]
    caught = [m.recipients[0] for m in mail_catcher.messages()]
    assert sorted(caught) == ["applicant@example.org", "manager@example.org"]


async def test_a_short_batch_sends_no_heartbeat_and_a_long_one_does(
    mail_catcher: MailCatcher, store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each heartbeat is a write on the Temporal server: an attempt within QUIET of its
    # start sends none (the heartbeat timeout still counts from its start).
    activities = email_activities(store, database_url, mail_catcher.port)
    beats: list[tuple[object, ...]] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)

    quick = await env.run(activities.send_email_batch, batch(["a@example.org", "b@example.org"]))
    assert (quick.sent, beats) == (2, [])

    monkeypatch.setattr(activities_heartbeat, "QUIET", timedelta(0))  # as if past it
    later = await env.run(activities.send_email_batch, batch(["c@example.org", "d@example.org"]))
    assert (later.sent, beats) == (2, [(0,), (1,)])


async def test_html_part_escapes_everything_typed_by_people(
    mail_catcher: MailCatcher, store: Store, database_url: str
) -> None:
    env = ActivityEnvironment()
    await env.run(
        email_activities(store, database_url, mail_catcher.port).send_email_batch,
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
    activities = email_activities(store, database_url, port)
    env = ActivityEnvironment()
    recipients = ["a@example.org", "b@example.org"]

    with pytest.raises(ApplicationError) as failure:
        await env.run(activities.send_email_batch, batch(recipients))
    assert failure.value.type == TEMPORARY_SMTP_FAILURE and not failure.value.non_retryable
    assert f"127.0.0.1:{port}" in str(failure.value)
    pending = await store.emails("p1")
    # Claimed together, released together for the retry, each with why it is late.
    assert [e.status for e in pending] == ["pending", "pending"]
    assert all(e.last_error and "Connect" in e.last_error for e in pending)

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
    handler = RefusingHandler(tmp_path / "mail")
    with smtp_server(tmp_path, handler, store, database_url) as (catcher, activities):
        env = ActivityEnvironment()
        recipients = ["a@example.org", RefusingHandler.refused, "not an address", "c@example.org"]
        result = await env.run(activities.send_email_batch, batch(recipients))
        again = await env.run(activities.send_email_batch, batch(recipients))
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
    activities = email_activities(store, database_url, mail_catcher.port)
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
    tmp_path: Path, store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The attempt heartbeats from its start here, not after QUIET: the outage is short.
    monkeypatch.setattr(activities_heartbeat, "QUIET", timedelta(0))
    handler = DatabaseLostOnAcceptHandler(tmp_path / "mail", database_url, outage=4.0)
    try:
        with smtp_server(tmp_path, handler, store, database_url) as (catcher, activities):
            env = ActivityEnvironment()
            heartbeats: list[object] = []
            env.on_heartbeat = lambda *details: heartbeats.append(details)
            recipients = ["a@example.org", "b@example.org"]
            result = await env.run(activities.send_email_batch, batch(recipients))
            # A later attempt (a retry of the workflow's, or a duplicate) finds both on record.
            again = await ActivityEnvironment().run(activities.send_email_batch, batch(recipients))
    finally:
        set_connections(database_url, allowed=True)
    assert handler.struck
    # The attempt waited out the outage, heartbeating, instead of failing with the
    # first email out but not on record (which a retry after the lease would resend).
    assert len(heartbeats) > len(recipients)
    assert (result.sent, result.already_sent) == (2, 0)
    assert (again.sent, again.already_sent) == (0, 2)
    assert sorted(m.recipients[0] for m in catcher.messages()) == recipients
    assert {e.status for e in await store.emails("p1")} == {"sent"}


class LedgerWatchingHandler(CatchingHandler):
    """At each DATA, before accepting, notes how many emails it accepted earlier that
    the ledger does not yet hold as sent: the emails a crash right then would resend."""

    def __init__(self, maildir: Path, database_url: str, delay: float = 0.0) -> None:
        super().__init__(maildir)
        self.engine = create_engine(sync_url(database_url))
        self.delay = delay
        self.accepted: list[str] = []
        self.unrecorded: list[int] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message_id = str(email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"])
        with self.engine.connect() as conn:
            sent = set(
                conn.execute(
                    text("SELECT message_id FROM email_ledger WHERE status = 'sent'")
                ).scalars()
            )
        self.unrecorded.append(sum(1 for m in self.accepted if m not in sent))
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = await super().handle_DATA(server, session, envelope)
        self.accepted.append(message_id)
        return answer


async def test_each_accepted_email_is_on_record_before_the_next_is_accepted(
    tmp_path: Path, store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records overlap the next envelope, never the next acceptance: a crash at
    any moment finds at most the one email on the wire unrecorded."""
    monkeypatch.setattr(email_activity, "CLAIM_CHUNK", 4)
    monkeypatch.setattr(email_activity, "LARGEST_CLAIM", 8)
    handler = LedgerWatchingHandler(tmp_path / "mail", database_url)
    try:
        with smtp_server(tmp_path, handler, store, database_url) as (catcher, activities):
            recipients = [f"p{i}@example.org" for i in range(30)]
            # The same person twice in one batch gets the email once.
            result = await ActivityEnvironment().run(
                activities.send_email_batch, batch([*recipients, recipients[3]])
            )
    finally:
        handler.engine.dispose()
    assert (result.sent, result.already_sent) == (30, 1)
    assert len(handler.unrecorded) == 30 and max(handler.unrecorded) == 0
    assert sorted(m.recipients[0] for m in catcher.messages()) == sorted(recipients)
    assert {e.status for e in await store.emails("p1")} == {"sent"}


async def test_claims_that_run_short_are_given_back_and_taken_again(
    tmp_path: Path, store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow server: a chunk's claims would outlive what their lease covers, so the
    rest of the chunk goes back to the ledger and is claimed again, in smaller chunks."""
    # Claims usable for 0.3 s; the server takes 0.1 s per email.
    monkeypatch.setattr(email_activity, "LEASE_MARGIN", timedelta(seconds=5.3))
    monkeypatch.setattr(email_activity, "START_MARGIN", timedelta(seconds=5))
    handler = LedgerWatchingHandler(tmp_path / "mail", database_url, delay=0.1)
    try:
        with smtp_server(tmp_path, handler, store, database_url) as (catcher, activities):
            recipients = [f"p{i}@example.org" for i in range(12)]
            result = await ActivityEnvironment().run(activities.send_email_batch, batch(recipients))
    finally:
        handler.engine.dispose()
    assert result.sent == 12 and max(handler.unrecorded) == 0
    assert sorted(m.recipients[0] for m in catcher.messages()) == sorted(recipients)
    ledger = await store.emails("p1")
    assert {e.status for e in ledger} == {"sent"}
    assert max(e.attempts for e in ledger) >= 2  # given back, then claimed again


def built_for_kim(sender: str, rendered: RenderedEmail, key: str) -> email.message.EmailMessage:
    """The email package's message (no fast path) to kim.ek@example.org, in Swedish."""
    return build_message(
        sender=sender,
        recipient="kim.ek@example.org",
        rendered=rendered,
        message_id=message_id(key, sender),
        language="sv",
        key=key,
    )


CALENDAR = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
    "SUMMARY:Uppstart för Omvänt mentorskap\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.mark.parametrize("cte_type", ["8bit", "7bit"])
@pytest.mark.parametrize(
    "variant", ["as rendered", "a calendar", "a long line", "a control character", "no break"]
)
def test_a_message_built_once_per_batch_is_the_one_build_message_makes(
    cte_type: str, variant: str
) -> None:
    facts = batch([]).facts
    rendered = render("announcement", facts)
    if variant == "a calendar":
        rendered = replace(rendered, calendar=CALENDAR, calendar_method="REQUEST")
    elif variant == "a long line":  # quoted-printable, as the email package would choose
        rendered = replace(rendered, text=rendered.text + "\n" + "Välkommen! " * 40)
    elif variant == "a control character":
        rendered = replace(rendered, text=rendered.text + "\x0c\x1bslut\r\nmer")
    elif variant == "no break":
        rendered = replace(rendered, text="Hej", html="<p>Hej</p>")
    sender = "Mentorflöw <noreply@mentorflow.example>"
    template = MessageTemplate(sender=sender, rendered=rendered, language="sv", cte_type=cte_type)
    key = email_key("p1", "announcement", "kim.ek@example.org", "1")
    date = format_datetime(datetime.now(UTC))
    raw = template.fill(
        recipient="kim.ek@example.org", message_id=message_id(key, sender), key=key, date=date
    )
    assert raw is not None
    built = built_for_kim(sender, rendered, key)
    del built["Date"]
    built["Date"] = date

    def parts(message: email.message.EmailMessage) -> tuple[list[tuple[str, str]], list[str]]:
        headers = sorted((k, str(v).partition("; boundary")[0]) for k, v in message.items())
        bodies = [
            f"{p.get_content_type()}: {p.get_content()}".replace("\r\n", "\n")
            for p in message.walk()
            if isinstance(p, email.message.EmailMessage) and not p.is_multipart()
        ]
        return headers, bodies

    filled = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(filled, email.message.EmailMessage)
    assert parts(filled) == parts(built)
    assert not filled.defects and all(not p.defects for p in filled.walk())
    head, _, body = raw.partition(b"\r\n\r\n")
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert all(len(line) <= 998 for line in body.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    if cte_type == "7bit":
        assert raw.isascii()
    # What the email package must encode is left to it.
    assert (
        template.fill(recipient="åsa@example.org", message_id="<x@y>", key=key, date=date) is None
    )


# Subjects with Swedish names, as the email package once folded them: two encoded-words
# met at a fold with the space outside both, and mail clients showed "Björn Häll haransökt".
SUBJECTS = [
    "Björn Häll har ansökt",  # short: one line
    "Godkänn eller avslå: Björn Häll har ansökt till Omvänt mentorskap",  # the name in the middle
    "Godkänn eller avslå: Linnéa Jönsson har ansökt till Omvänt mentorskap för chefer",
    "Ö Å har ansökt till Omvänt mentorskap i Västra Götaland för chefer",  # at the start
    "Ny ansökan till Omvänt mentorskap för chefer och medarbetare i Västra Götaland 2027"
    " från Björn Häll",  # at the end
    "Örjan Ärlig-Åkesson, Björn Häll och Linnéa Jönsson har ansökt till Omvänt mentorskap"
    " för chefer i Västra Götalandsregionen 2027",  # folded twice
    "Please approve or decline: Anna Karlsson applied to Reverse mentoring for managers 2027",
]
SENDER = "Mentorflöw <noreply@mentorflow.example>"


def read_as_a_mail_client(raw: bytes) -> tuple[email.message.EmailMessage, list[str]]:
    """The message as Python's modern parser reads it, and its subject as the older
    API does (unfold, decode_header, make_header); checks that every header line
    keeps to RFC 5322's 78 characters."""
    head = raw.partition(b"\r\n\r\n")[0].decode("utf-8")
    assert all(len(line) <= 78 for line in head.split("\r\n")), head
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    subjects = [str(parsed["Subject"])]
    folded = email.message_from_string(raw.decode("utf-8"))["Subject"]  # SMTPUTF8: raw UTF-8
    assert folded is not None
    unfolded = re.sub(r"\r?\n(?=[ \t])", "", str(folded))
    subjects.append(str(make_header(decode_header(unfolded))))
    return parsed, subjects


@pytest.mark.parametrize("path", ["template-8bit", "template-7bit", "built", "built-smtputf8"])
@pytest.mark.parametrize("subject", SUBJECTS)
def test_a_subject_with_swedish_names_decodes_to_exactly_the_rendered_subject(
    subject: str, path: str
) -> None:
    rendered = replace(render("announcement", batch([]).facts), subject=subject)
    key = email_key("p1", "announcement", "kim.ek@example.org", "1")
    if path.startswith("template"):  # the fast path: one flattened message, filled per recipient
        template = MessageTemplate(
            sender=SENDER, rendered=rendered, language="sv", cte_type=path.partition("-")[2]
        )
        raw = template.fill(
            recipient="kim.ek@example.org",
            message_id=message_id(key, SENDER),
            key=key,
            date=format_datetime(NOW),
        )
        assert raw is not None
    else:  # the email package's path, as aiosmtplib flattens it
        message = built_for_kim(SENDER, rendered, key)
        assert str(message["Subject"]) == subject
        raw = flatten_message(message, utf8=path.endswith("smtputf8"), cte_type="7bit")
    _, subjects = read_as_a_mail_client(raw)
    assert subjects == [subject, subject]


class RawKeepingHandler(CatchingHandler):
    """Keeps each message's bytes as they came over the wire."""

    def __init__(self, maildir: Path) -> None:
        super().__init__(maildir)
        self.raw: dict[str, bytes] = {}

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        self.raw[envelope.rcpt_tos[0]] = raw
        return await super().handle_DATA(server, session, envelope)


async def test_the_announcement_replies_to_the_programs_contact_and_carries_hrs_message(
    tmp_path: Path, store: Store, database_url: str
) -> None:
    """Its subject as rendered, Reply-To the first contact (a reference in the workflow,
    the real person on the wire), the contacts at the foot of both parts, and the
    definition's announcement message: in the fast path and in the email package's."""
    demo = load_definition(Path(__file__).parent.parent / "definitions" / "demo.yaml")
    contact = Contact(
        name="Linnéa Jönsson", email="linnea.jonsson@myndigheten.example", role="HR-strateg"
    )
    message = "Välkommen att söka!\n<Anmäl> dig & sprid ordet.\n\nHälsningar\nHR"
    definition = demo.model_copy(
        update={
            "contacts": [contact],
            "announcement": demo.announcement.model_copy(update={"message": message}),
        }
    )
    await record_program(store, definition, next_deadline=None, at=NOW)
    references = people.without_people(definition).contacts
    assert people.parse(str(references[0].email)) is not None
    name = "Björn Häll och Linnéa Jönsson bjuder in till omvänt mentorskap för chefer"
    request = batch([], name=name)
    request = request.model_copy(
        update={
            "program_id": definition.id,
            # One the database does not know goes nowhere; the program's contact goes on.
            "facts": request.facts.model_copy(
                update={"contacts": [*references, Contact(name="x", email=people.applicant("x"))]}
            ),
            # Plain, so the fast path; quoted, so the email package's.
            "recipients": ["kim.ek@example.org", '"kim ek"@example.org'],
        }
    )
    handler = RawKeepingHandler(tmp_path / "mail")
    with smtp_server(tmp_path, handler, store, database_url) as (_, activities):
        result = await ActivityEnvironment().run(activities.send_email_batch, request)
    assert result.sent == 2 and sorted(handler.raw) == sorted(request.recipients)
    for raw in handler.raw.values():
        parsed, subjects = read_as_a_mail_client(raw)
        assert subjects == [f"Nu kan du ansöka: {name}"] * 2
        assert parsed["Reply-To"].addresses == (
            Address("Linnéa Jönsson", addr_spec="linnea.jonsson@myndigheten.example"),
        )
        assert people.DOMAIN.encode() not in raw
        plain = parsed.get_body(preferencelist=("plain",))
        html = parsed.get_body(preferencelist=("html",))
        assert plain is not None and html is not None
        text, markup = (str(p.get_content()).replace("\r\n", "\n") for p in (plain, html))
        assert "Välkommen att söka!\n<Anmäl> dig & sprid ordet.\n\nHälsningar\nHR\n" in text
        assert "<p>Välkommen att söka!<br>\n&lt;Anmäl&gt; dig &amp; sprid ordet.</p>" in markup
        assert text.endswith(
            "\n\nFrågor? Kontakta:\n"
            "- Linnéa Jönsson (HR-strateg): linnea.jonsson@myndigheten.example\n"
        )
        assert 'href="mailto:linnea.jonsson@myndigheten.example"' in markup


async def test_a_batch_for_applicants_reaches_those_still_in_the_program_once(
    mail_catcher: MailCatcher, store: Store, database_url: str
) -> None:
    """A move after the window: the thin program does not know its applicants, the
    activity reads them (by status) and adds them to the people it names, once each."""
    definition = load_definition(Path(__file__).parent.parent / "definitions" / "demo.yaml")
    await record_program(store, definition, "awaiting_hr_decision")
    ids = {}
    for name, status in [("ann", "approved"), ("bo", "declined"), ("cy", "awaiting_approval")]:
        row = await record_application(
            store,
            definition.id,
            f"{name}@example.org",
            NOW,
            new_id=f"{name:x<16}"[:16],
            manager_email=f"boss.{name}@example.org",
        )
        await store.set_application_status(row.id, status, NOW)
        ids[name] = row.id
    request = batch([people.applicant(ids["ann"]), "hr@example.org"]).model_copy(
        update={"program_id": definition.id, "applicants": ["approved", "awaiting_approval"]}
    )
    result = await ActivityEnvironment().run(
        email_activities(store, database_url, mail_catcher.port).send_email_batch, request
    )
    assert (result.sent, result.rejected) == (3, [])
    assert sorted(m.recipients[0] for m in mail_catcher.messages()) == [
        "ann@example.org",
        "cy@example.org",
        "hr@example.org",
    ]


async def test_outcome_notices_for_one_organisation_reach_only_its_people(
    mail_catcher: MailCatcher, store: Store, database_url: str
) -> None:
    """The program sends one batch per organisation, side by side: a batch reads every
    application (a partner may be elsewhere) and tells only its own organisation's."""
    definition = load_definition(Path(__file__).parent.parent / "definitions" / "demo.yaml")
    await record_program(store, definition, "running")
    ids = {}
    for name, organisation in [("ann", "demo-company"), ("bo", "other-agency")]:
        row = await record_application(
            store,
            definition.id,
            f"{name}@example.org",
            NOW,
            organisation_id=organisation,
            manager_email=f"boss.{name}@example.org",
        )
        await store.set_application_status(row.id, "approved", NOW)
        ids[name] = row.id
    await store.record_selections(
        program_id=definition.id,
        selections={ids["ann"]: "waitlisted", ids["bo"]: "waitlisted"},
        decided_by="hr",
        channel="cli",
        at=NOW,
    )
    notices = OutcomeNoticesInput(
        program_id=definition.id,
        proposal=1,
        facts=batch([]).facts,
        profile_titles={"mentor": "Mentor"},
        organisation_names={"demo-company": "Demo", "other-agency": "Other"},
        organisation_id="other-agency",
    )
    activities = email_activities(store, database_url, mail_catcher.port)
    counts = await ActivityEnvironment().run(activities.send_outcome_notices, notices)

    assert (counts.sent, counts.rejected) == (2, 0)
    assert sorted(m.recipients[0] for m in mail_catcher.messages()) == [
        "bo@example.org",
        "boss.bo@example.org",
    ]
