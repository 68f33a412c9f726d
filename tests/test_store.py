"""The state store, run on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from activities.applications import ApplicationRecordActivities
from mentorflow.models import ApplicationRecordInput, ProgramApplications
from mentorflow.store import EmailClaim, Store, migrate, sync_url
from mentorflow.store.migrate import alembic_config
from tests.programs import record_application

# The database matters here: these run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.database

AT = datetime(2027, 2, 15, 8, 0, tzinfo=timezone(timedelta(hours=1)))


async def save(
    store: Store,
    phase: str = "scheduled",
    revision: int = 0,
    *,
    name: str = "Program",
    next_deadline: datetime | None = AT + timedelta(days=1),
    at: datetime = AT,
) -> None:
    await store.save_program(
        program_id="p1",
        name=name,
        workflow_id="program-p1",
        definition={"id": "p1"},
        phase=phase,
        revision=revision,
        next_deadline=next_deadline,
        at=at,
    )


def email_to_a(key: str, step: str, message_id: str, subject: str) -> dict[str, str]:
    """What a claim of program p1's email of ``step`` to a@example.org names."""
    return {
        "key": key,
        "program_id": "p1",
        "step": step,
        "revision": "1",
        "recipient": "a@example.org",
        "template": step,
        "message_id": message_id,
        "subject": subject,
    }


async def test_program_upsert_keeps_creation_time(store: Store) -> None:
    await save(store)
    await save(
        store,
        "application_window",
        1,
        name="Renamed",
        next_deadline=None,
        at=AT + timedelta(hours=3),
    )
    program = await store.program("p1")
    assert program is not None
    assert (program.name, program.phase, program.revision) == ("Renamed", "application_window", 1)
    # Aware datetimes come back aware, in UTC, on both databases.
    assert program.created_at == AT and program.created_at.tzinfo is not None
    assert program.updated_at == AT + timedelta(hours=3)
    assert program.next_deadline is None


async def test_events_are_recorded_once_and_move_the_phase(store: Store) -> None:
    await save(store)

    async def record() -> bool:
        return await store.record_event(
            program_id="p1",
            key="phase-open",
            kind="phase",
            phase="application_window",
            revision=0,
            at=AT,
        )

    assert await record()
    assert not await record()
    assert [e.key for e in await store.events("p1")] == ["phase-open"]
    program = await store.program("p1")
    assert program is not None and program.phase == "application_window"


async def test_concurrent_claims_of_one_email_make_one_ledger_entry(store: Store) -> None:
    email = email_to_a(
        "p1/announcement/a@example.org/1", "announcement", "<x@example.org>", "Hello"
    )

    async def claim(lease: timedelta = timedelta(minutes=1)) -> EmailClaim:
        return await store.claim_email(**email, lease=lease)

    # Five attempts at once (a slow attempt and its retries): one may send.
    claims = await asyncio.gather(*(claim() for _ in range(5)))
    assert sorted(c.status for c in claims) == ["busy"] * 4 + ["claimed"]
    assert {c.message_id for c in claims} == {"<x@example.org>"}
    entries = await store.emails("p1")
    assert len(entries) == 1 and entries[0].attempts == 1 and entries[0].status == "sending"
    # A temporary failure gives it back; the next attempt may send.
    await store.release_email("p1/announcement/a@example.org/1", "SMTP timeout")
    assert (await claim()).status == "claimed"
    await store.mark_email("p1/announcement/a@example.org/1", "sent")
    assert (await claim()).status == "sent"
    (entry,) = await store.emails("p1")
    assert entry.attempts == 2 and entry.sent_at is not None and entry.lease_until is None
    assert entry.last_error == "SMTP timeout"
    assert entry.sent_at.tzinfo is not None
    assert abs(entry.sent_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_an_expired_lease_lets_a_later_attempt_send(store: Store) -> None:
    kwargs = email_to_a("k", "reminder", "<k@example.org>", "Hi")
    # The attempt that claimed it died mid-send; its lease runs out. (Two seconds: a
    # lease of 50 ms ran out before the next claim on a busy machine.)
    first = await store.claim_email(**kwargs, lease=timedelta(seconds=2))
    assert first.status == "claimed"
    assert (await store.claim_email(**kwargs, lease=timedelta(minutes=1))).status == "busy"
    await asyncio.sleep(2.2)
    retry = await store.claim_email(**kwargs, lease=timedelta(minutes=1))
    assert retry.status == "claimed" and retry.attempts == 2


async def test_migrations_go_down_and_up_again(database_url: str) -> None:
    def tables() -> set[str]:
        engine = create_engine(sync_url(database_url))
        try:
            return set(inspect(engine).get_table_names())
        finally:
            engine.dispose()

    assert {"programs", "program_events", "email_ledger"} <= tables()
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "base")
    assert not {"programs", "program_events", "email_ledger"} & tables()
    await asyncio.to_thread(migrate, database_url)
    await asyncio.to_thread(migrate, database_url)  # idempotent
    assert {"programs", "program_events", "email_ledger"} <= tables()


async def test_the_program_counts_its_applications_on_record(store: Store) -> None:
    """What the program reads instead of its applications' signals: the tally by
    organisation, profile, status and HR's selection, and, after a decision's record,
    how many are still without an answer (the last answer tells the program)."""

    await save(store)
    rows = [
        await record_application(store, "p1", f"p{i}@example.org", AT, profile_id=profile)
        for i, profile in enumerate(["mentor", "mentor", "adept"])
    ]
    records = ApplicationRecordActivities(store)
    for row in rows:
        await records.record_application(
            ApplicationRecordInput(application_id=row.id, status="awaiting_approval", at=AT)
        )

    async def decide(row_id: str, decision: str) -> int | None:
        recorded = await records.record_application(
            ApplicationRecordInput(
                application_id=row_id,
                status=decision,
                decision=decision,
                decided_by="hr",
                channel="cli",
                key="decision",
                at=AT,
                count_undecided_in="p1",
            )
        )
        return recorded.undecided if recorded is not None else None

    assert await decide(rows[0].id, "approved") == 2
    assert await decide(rows[1].id, "declined") == 1
    assert await decide(rows[2].id, "approved") == 0  # the last answer: none left
    await store.record_selections(
        program_id="p1",
        selections={rows[0].id: "accepted"},
        decided_by="hr",
        channel="cli",
        at=AT,
    )

    tally = await records.tally_on_record(ProgramApplications(program_id="p1"))
    assert tally.totals() == {
        "applied": 3,
        "approved": 2,
        "declined": 1,
        "withdrawn": 0,
        "pending": 0,
        "accepted": 1,
        "waitlisted": 0,
        "not_selected": 0,
    }
    assert tally.approved_by_profile("demo-company") == {"mentor": 1, "adept": 1}
