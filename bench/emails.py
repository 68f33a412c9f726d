"""Benchmark: emails per second through the project's email activity vs a bare aiosmtplib loop.

Run:  .venv/bin/python bench/emails.py [--emails 1000] [--repeat 3] [--database-url URL]
      .venv/bin/python bench/emails.py --applications 500 [--repeat 3] [--database-url URL]

Both send the same messages to the same local SMTP server (aiosmtpd's Sink, in
its own process), on one connection each:

- **project**: ``EmailActivities.send_email_batch`` run as an activity — resolves
  and renders the batch, claims its emails in the ledger (SQLite by default, or
  ``--database-url``) a chunk at a time, sends each with aiosmtplib and records it
  sent before the next one can be accepted (exactly once, as in production);
- **baseline**: the already-built messages sent in a bare ``send_message`` loop
  (building them is not timed).

Printed, all measured in this run: each side's median wall time and rate, their
ratio, and what a retry of the whole batch costs (every email already in the
ledger, nothing sent).

``--applications N``: what an application's first emails cost instead, the work
a program does once per applicant. For each of N applications (saved in the
database beforehand) the project runs ``send_email_batches`` with its two batches
as ``ApplicationWorkflow`` sends them (the applicant's confirmation with its
withdrawal link and the manager's request with the approval link, names and
addresses read from the database by id), one activity per application; the
baseline sends the same two messages, built and written out beforehand, on one
kept connection: the SMTP conversation alone.
Printed: the CPU of this process per application on each side (the SMTP server's
is not counted), median of the rounds, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosmtplib
from aiosmtplib.email import flatten_message
from stack import free_port, wait_port
from temporalio.testing import ActivityEnvironment

from activities.email import EmailActivities
from mentorflow import people
from mentorflow.definition import Language, load_definition
from mentorflow.mail.message import build_message, email_key, message_id
from mentorflow.mail.render import render
from mentorflow.models import EmailBatch, EmailBatches, EmailFacts, LinkRequest
from mentorflow.settings import Settings
from mentorflow.store import Store, migrate

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DEMO = Path(__file__).resolve().parent.parent / "definitions" / "demo.yaml"


def start_sink(port: int) -> subprocess.Popen[bytes]:
    """aiosmtpd with its Sink handler (accepts and drops), in its own process."""
    listen = f"127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", listen, "-c", "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, "the SMTP sink", process, within=15)
    return process


@contextlib.asynccontextmanager
async def sink_and_store(database_url: str | None) -> AsyncIterator[tuple[Store, Settings, str]]:
    """The SMTP sink in its own process, and the store (a fresh SQLite file unless
    ``database_url``), with settings that send to the one and record in the other."""
    port = free_port()
    sink = start_sink(port)
    try:
        with tempfile.TemporaryDirectory() as folder:
            url = database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
            migrate(url)
            store = Store(url)
            try:
                yield store, Settings(smtp_port=port, database_url=url), url
            finally:
                await store.close()
    finally:
        sink.terminate()
        sink.wait()


def facts(**more: object) -> EmailFacts:
    """A Swedish program's facts, as its workflow passes them (``more``: an email's own)."""
    return EmailFacts(
        program_name="Omvänt mentorskap 2027",
        description="Ett program där yngre medarbetare blir mentorer.",
        organisers=["Myndigheten"],
        language=Language.SV,
        timezone="Europe/Stockholm",
        opens=NOW,
        deadline=NOW + timedelta(days=30),
        start=NOW + timedelta(days=77),
        end=NOW + timedelta(days=288),
        **more,
    )


def batch(program_id: str, recipients: list[str]) -> EmailBatch:
    return EmailBatch(
        program_id=program_id,
        step="announcement",
        revision="1",
        template="announcement",
        recipients=recipients,
        facts=facts(),
    )


async def baseline(settings: Settings, request: EmailBatch) -> float:
    """Seconds to send the same messages, built beforehand, in a bare aiosmtplib loop."""
    rendered = render(request.template, request.facts)
    messages = []
    for recipient in request.recipients:
        key = email_key(request.program_id, request.step, recipient, request.revision)
        messages.append(
            build_message(
                sender=settings.mail_from,
                recipient=recipient,
                rendered=rendered,
                message_id=message_id(key, settings.mail_from),
                language=request.facts.language,
                key=key,
            )
        )
    began = time.perf_counter()
    smtp = aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port)
    await smtp.connect()
    for message in messages:
        await smtp.send_message(message)
    await smtp.quit()
    return time.perf_counter() - began


async def project(store: Store, settings: Settings, request: EmailBatch) -> tuple[float, float]:
    """Seconds for the activity to send the batch, then for a retry that sends nothing."""
    activities = EmailActivities(store, settings)
    began = time.perf_counter()
    first = await ActivityEnvironment().run(activities.send_email_batch, request)
    sent = time.perf_counter() - began
    began = time.perf_counter()
    again = await ActivityEnvironment().run(activities.send_email_batch, request)
    retried = time.perf_counter() - began
    assert first.sent == len(request.recipients) and again.already_sent == first.sent
    return sent, retried


def first_emails(program_id: str, application_id: str) -> EmailBatches:
    """An application's confirmation and its manager's request, as its workflow asks."""
    answer_by = NOW + timedelta(days=40)
    first = facts(profile_title="Mentor", answer_by=answer_by)

    def one(template: str, step: str, recipient: str, link: LinkRequest) -> EmailBatch:
        return EmailBatch(
            program_id=program_id,
            step=f"{application_id}/{step}",
            revision="1",
            template=template,
            recipients=[recipient],
            facts=first,
            links=[link],
            application_id=application_id,
            name_manager=True,
        )

    return EmailBatches(
        batches=[
            one(
                "application_received",
                "application-received",
                people.applicant(application_id),
                LinkRequest(
                    name="withdraw_url",
                    purpose="withdrawal",
                    application_id=application_id,
                    expires_at=first.start,
                    path="/w/",
                ),
            ),
            one(
                "approval_request",
                "approval-request",
                people.manager(application_id),
                LinkRequest(
                    name="approve_url",
                    purpose="approval",
                    application_id=application_id,
                    expires_at=answer_by,
                    path="/a/",
                ),
            ),
        ]
    )


async def applications_round(store: Store, settings: Settings, n: int) -> tuple[float, float]:
    """CPU seconds per application: the project's first-emails activity, the bare sends."""
    definition = load_definition(DEMO)
    program_id = f"bench-{uuid.uuid4().hex[:8]}"
    await store.save_program(
        program_id=program_id,
        name=definition.name,
        workflow_id=f"program-{program_id}",
        definition=definition.model_copy(update={"id": program_id}).model_dump(
            mode="json", by_alias=True
        ),
        phase="application_window",
        revision=1,
        next_deadline=None,
        at=NOW,
    )
    ids = []
    for i in range(n):
        row, _ = await store.save_application(
            new_id=uuid.uuid4().hex[:16],
            program_id=program_id,
            email=f"person{i}@example.org",
            name=f"Åsa Person {i}",
            organisation_id="demo-company",
            department="Ekonomi",
            profile_id="mentor",
            manager_email=f"boss{i}@example.org",
            manager_name=f"Göran Boss {i}",
            answers={},
            eligibility_confirmed=True,
            channel="web_form",
            at=NOW,
        )
        ids.append(row.id)
    activities = EmailActivities(store, settings)
    began = time.process_time()
    for application_id in ids:
        sent = await ActivityEnvironment().run(
            activities.send_email_batches, first_emails(program_id, application_id)
        )
        assert [r.sent for r in sent.results] == [1, 1], sent
    ours = (time.process_time() - began) / n
    # The baseline: the same two messages per application (names and a link of a
    # link's length in them), built beforehand.
    messages = []
    for i, application_id in enumerate(ids):
        for each, recipient in zip(
            first_emails(program_id, application_id).batches,
            (f"person{i}@example.org", f"boss{i}@example.org"),
            strict=True,
        ):
            named = each.facts.model_copy(
                update={"applicant_name": f"Åsa Person {i}", "manager_name": f"Göran Boss {i}"}
            )
            wanted = each.links[0]
            link = {wanted.name: f"{settings.public_base_url}{wanted.path}{'x' * 120}"}
            key = email_key(program_id, each.step, recipient, "1")
            built = build_message(
                sender=settings.mail_from,
                recipient=recipient,
                rendered=render(each.template, named, links=link),
                message_id=message_id(key, settings.mail_from),
                language=Language.SV,
                key=key,
            )
            messages.append((recipient, flatten_message(built)))
    began = time.process_time()
    smtp = aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port)
    await smtp.connect()
    for recipient, raw in messages:
        await smtp.sendmail(settings.mail_from, [recipient], raw)
    await smtp.quit()
    bare = (time.process_time() - began) / n
    return ours, bare


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    parser.add_argument(
        "--applications",
        type=int,
        default=0,
        help="instead: CPU of N applications' first emails (one activity each) vs bare sends",
    )
    args = parser.parse_args()
    if args.applications:
        await first_emails_benchmark(args.applications, args.repeat, args.database_url)
        return

    recipients = [f"person{i}@example.org" for i in range(args.emails)]
    bare, ours, retries = [], [], []
    async with sink_and_store(args.database_url) as (store, settings, url):
        for _ in range(args.repeat):
            # A new program id each round: the ledger starts empty for it.
            request = batch(f"bench-{uuid.uuid4().hex[:8]}", recipients)
            bare.append(await baseline(settings, request))
            sent, retried = await project(store, settings, request)
            ours.append(sent)
            retries.append(retried)

    n = args.emails
    b, o, r = statistics.median(bare), statistics.median(ours), statistics.median(retries)
    database = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"{n} emails, median of {args.repeat} rounds, ledger in {database}:")
    print(f"  bare aiosmtplib loop   {b:7.2f} s  {n / b:8.0f} emails/s")
    print(f"  send_email_batch       {o:7.2f} s  {n / o:8.0f} emails/s")
    print(f"  ratio (project / bare) {o / b:7.2f}")
    print(f"  retry of the batch     {r:7.2f} s  (nothing sent: every email already in the ledger)")


async def first_emails_benchmark(n: int, repeat: int, database_url: str | None) -> None:
    ours, bare = [], []
    async with sink_and_store(database_url) as (store, settings, url):
        for _ in range(repeat):
            o, b = await applications_round(store, settings, n)
            ours.append(o)
            bare.append(b)
    o, b = statistics.median(ours), statistics.median(bare)
    database = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"{n} applications' first emails (two each), median of {repeat} rounds, {database}:")
    print(f"  bare aiosmtplib sends        {b * 1000:6.2f} ms of CPU an application")
    print(f"  send_email_batches activity  {o * 1000:6.2f} ms of CPU an application")
    print(f"  ratio (project / bare)       {o / b:6.2f}")


if __name__ == "__main__":
    asyncio.run(main())
