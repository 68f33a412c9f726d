"""Benchmark: emails per second through the project's email activity vs a bare aiosmtplib loop.

Run:  .venv/bin/python bench/emails.py [--emails 1000] [--repeat 3] [--database-url URL]

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
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosmtplib
from stack import free_port, wait_port
from temporalio.testing import ActivityEnvironment

from activities.email import EmailActivities
from mentorflow.definition import Language
from mentorflow.mail.message import build_message, email_key, message_id
from mentorflow.mail.render import render
from mentorflow.models import EmailBatch, EmailFacts
from mentorflow.settings import Settings
from mentorflow.store import Store, migrate

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


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


def batch(program_id: str, recipients: list[str]) -> EmailBatch:
    return EmailBatch(
        program_id=program_id,
        step="announcement",
        revision="1",
        template="announcement",
        recipients=recipients,
        facts=EmailFacts(
            program_name="Omvänt mentorskap 2027",
            description="Ett program där yngre medarbetare blir mentorer.",
            organisers=["Myndigheten"],
            language=Language.SV,
            timezone="Europe/Stockholm",
            opens=NOW,
            deadline=NOW + timedelta(days=30),
            start=NOW + timedelta(days=77),
            end=NOW + timedelta(days=288),
        ),
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    args = parser.parse_args()

    port = free_port()
    sink = start_sink(port)
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        migrate(url)
        store = Store(url)
        settings = Settings(smtp_port=port, database_url=url)
        recipients = [f"person{i}@example.org" for i in range(args.emails)]
        bare, ours, retries = [], [], []
        try:
            for _ in range(args.repeat):
                # A new program id each round: the ledger starts empty for it.
                request = batch(f"bench-{uuid.uuid4().hex[:8]}", recipients)
                bare.append(await baseline(settings, request))
                sent, retried = await project(store, settings, request)
                ours.append(sent)
                retries.append(retried)
        finally:
            await store.close()
            sink.terminate()
            sink.wait()

    n = args.emails
    b, o, r = statistics.median(bare), statistics.median(ours), statistics.median(retries)
    database = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"{n} emails, median of {args.repeat} rounds, ledger in {database}:")
    print(f"  bare aiosmtplib loop   {b:7.2f} s  {n / b:8.0f} emails/s")
    print(f"  send_email_batch       {o:7.2f} s  {n / o:8.0f} emails/s")
    print(f"  ratio (project / bare) {o / b:7.2f}")
    print(f"  retry of the batch     {r:7.2f} s  (nothing sent: every email already in the ledger)")


if __name__ == "__main__":
    asyncio.run(main())
