"""ProgramWorkflow on the time-skipping server, with the real SMTP server and database."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import CancelledError
from temporalio.worker import Replayer

from mentorflow import refusals
from mentorflow.codec import compact_data_converter
from mentorflow.definition import ProgramDefinition, load_definition
from mentorflow.models import (
    ProgramPhase,
    RescheduleRequest,
)
from mentorflow.store import Store
from tests.conftest import Stack, until_completed, wait_for
from tests.programs import record_application
from workflows.program import ProgramWorkflow

DEFINITIONS = Path(__file__).parent.parent / "definitions"
STOCKHOLM = ZoneInfo("Europe/Stockholm")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM)


def at_about(expected: datetime, actual: datetime) -> bool:
    """Timers fire a few milliseconds after their time."""
    return timedelta(0) <= actual - expected < timedelta(seconds=2)


async def test_seed_001_program_window_with_deadline_moved_twice(stack: Stack) -> None:
    env, mail_catcher, store = stack.env, stack.mail_catcher, stack.store
    definition = load_definition(DEFINITIONS / "cross-agency-2027.yaml")
    recipients = definition.announcement.recipients
    assert len(recipients) == 3

    async with stack.running(definition) as handle:
        status = await handle.query(ProgramWorkflow.status)
        assert status.phase is ProgramPhase.SCHEDULED
        assert status.next_deadline == definition.application.opens

        # The window opens on 15 February: the announcement goes out.
        await stack.sleep_until(local("2027-02-16T12:00"))
        status = await handle.query(ProgramWorkflow.status)
        assert status.phase is ProgramPhase.APPLICATION_WINDOW
        assert status.counts["announcement_recipients"] == 3

        # Refused moves leave the program as it was.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                ProgramWorkflow.reschedule,
                RescheduleRequest(deadline=local("2027-01-10T12:00")),
            )
        assert "in the past" in str(refused.value.cause)
        assert refusals.of(refused.value).kind == "invalid"  # typed: clients match on it
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                ProgramWorkflow.reschedule,
                RescheduleRequest(deadline=local("2027-04-20T23:59")),
            )
        assert "managers must answer after the application deadline" in str(refused.value.cause)
        assert (await handle.query(ProgramWorkflow.status)).revision == 0

        # First move: earlier, to 25 March.
        result = await handle.execute_update(
            ProgramWorkflow.reschedule,
            RescheduleRequest(
                deadline=local("2027-03-25T23:59"),
                reason=await note(store, definition, "Tidigare start"),
            ),
        )
        assert result.revision == 1 and result.moved == ["deadline"]
        # Past the 14-day reminder of the new deadline (11 March).
        await stack.sleep_until(local("2027-03-13T12:00"))

        # Second move: later, to 11 April.
        await handle.execute_update(
            ProgramWorkflow.reschedule, RescheduleRequest(deadline=local("2027-04-11T23:59"))
        )
        final = await until_completed(env, handle)
        history = await handle.fetch_history()

    # The recorded history replays deterministically with today's code.
    await Replayer(
        workflows=[ProgramWorkflow], data_converter=compact_data_converter
    ).replay_workflow(history)

    # (Search attributes are checked on the dev server: the time-skipping server
    # keeps an unset Datetime attribute as null, which the SDK cannot decode.)
    assert final.phase is ProgramPhase.COMPLETED
    assert final.next_deadline == final.purge_at == final.dates.end + timedelta(days=365)

    # Reminders and closing happened at the moved times (the workflow's own clock).
    events = {e.key: e for e in await store.events(definition.id)}
    reminders = sorted(e.occurred_at for e in events.values() if e.kind == "reminder")
    expected = [
        local("2027-03-11T23:59"),  # 14 days before the first moved deadline
        local("2027-03-28T23:59"),  # 14 days before the second moved deadline
        local("2027-04-08T23:59"),  # 3 days before it
    ]
    assert len(reminders) == len(expected)
    assert all(at_about(e, a) for e, a in zip(expected, reminders, strict=True)), reminders
    assert at_about(local("2027-04-11T23:59"), events["phase-awaiting_approvals"].occurred_at)
    assert at_about(local("2027-02-15T08:00"), events["phase-application_window"].occurred_at)
    assert [e.key for e in events.values() if e.kind == "rescheduled"] == [
        "rescheduled-1",
        "rescheduled-2",
    ]
    program = await store.program(definition.id)
    assert program is not None and program.phase == "completed"
    assert program.revision == 2

    # Every email arrived exactly once, counted at the SMTP server.
    caught = mail_catcher.messages()
    per_message_id = Counter(m.message_id for m in caught)
    assert all(count == 1 for count in per_message_id.values()), per_message_id
    per_recipient_subject = Counter((m.recipients[0], m.subject.split(":")[0]) for m in caught)
    for recipient in recipients:
        assert per_recipient_subject[(recipient, "Nu kan du ansöka")] == 1
        assert per_recipient_subject[(recipient, "Påminnelse")] == 3
        assert per_recipient_subject[(recipient, f"Nya datum för {definition.name}")] == 2
    # ... plus the report to the program's coordinator once it completed.
    (report,) = [m for m in caught if m.subject.startswith("Rapport:")]
    assert report.recipients == ["mentorskap@ei.example.org"]
    assert len(caught) == 3 * 6 + 1

    # ... and the ledger agrees with what the server received.
    ledger = await store.emails(definition.id)
    assert {e.message_id for e in ledger if e.status == "sent"} == set(per_message_id)
    assert all(e.attempts == 1 for e in ledger)


async def test_seed_000_pilot_opening_moves_start_postponed_then_cancelled(
    stack: Stack,
) -> None:
    env, mail_catcher, store = stack.env, stack.mail_catcher, stack.store
    definition = load_definition(DEFINITIONS / "lighting-pilot-2027.yaml")
    recipients = definition.announcement.recipients
    async with stack.running(definition) as handle:
        # Before anyone was told: the opening moves two days later, silently.
        await handle.execute_update(
            ProgramWorkflow.reschedule, RescheduleRequest(opens=local("2027-08-18T08:00"))
        )
        await stack.sleep_until(local("2027-08-17T12:00"))
        assert (await handle.query(ProgramWorkflow.status)).phase is ProgramPhase.SCHEDULED
        assert mail_catcher.messages() == []
        await stack.sleep_until(local("2027-08-18T09:00"))
        assert (await handle.query(ProgramWorkflow.status)).phase is ProgramPhase.APPLICATION_WINDOW

        # A postponed start past the kick-off is refused, naming the kick-off ...
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                ProgramWorkflow.reschedule, RescheduleRequest(start=local("2027-10-08T09:00"))
            )
        assert "schedule.kickoff.starts" in str(refused.value.cause)
        # ... and one before it is taken and told to everyone already announced to.
        await handle.execute_update(
            ProgramWorkflow.reschedule,
            RescheduleRequest(
                start=local("2027-10-04T09:00"),
                reason=await note(store, definition, "Senarelagt startdatum"),
            ),
        )
        status = await handle.query(ProgramWorkflow.status)
        assert status.dates.start == local("2027-10-04T09:00")
        assert status.dates.deadline == definition.application.deadline

        await env.sleep(timedelta(days=1))
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as ended:
            await handle.result()
        assert isinstance(ended.value.cause, CancelledError)
        final = await handle.query(ProgramWorkflow.status)
    assert final.phase is ProgramPhase.CANCELLED

    subjects = Counter((m.recipients[0], m.subject.split(":")[0]) for m in mail_catcher.messages())
    for recipient in recipients:
        assert subjects[(recipient, "Nu kan du ansöka")] == 1
        assert subjects[(recipient, f"Nya datum för {definition.name}")] == 1
        assert subjects[(recipient, "Inställt")] == 1
    # The program's HR contacts are told of the cancellation too (once each).
    hr = {
        str(c.email)
        for c in [
            *definition.coordinators(),
            *(c for o in definition.organisations for c in o.hr_contacts),
        ]
    } - set(recipients)
    for contact in hr:
        assert subjects[(contact, "Inställt")] == 1
    assert len(mail_catcher.messages()) == 3 * len(recipients) + len(hr)
    notice = next(m for m in mail_catcher.messages() if m.subject.startswith("Nya datum"))
    assert "Programstart: måndag 4 oktober 2027 kl. 09:00" in notice.body("plain")
    assert "tidigare fredag 1 oktober 2027 kl. 09:00" in notice.body("plain")
    assert "Senarelagt startdatum" in notice.body("plain")
    events = [e.kind for e in await store.events(definition.id)]
    assert events == ["rescheduled", "phase", "rescheduled", "cancelled"]
    program = await store.program(definition.id)
    assert program is not None and program.phase == "cancelled"


async def note(store: Store, definition: ProgramDefinition, text: str) -> str:
    """HR's reason as the CLI keeps it: in the database, its key to the workflow."""
    return await store.save_note(definition.id, text, "hr", datetime.now(UTC))


async def test_approvals_wait_for_the_answers_the_database_lacks(stack: Stack) -> None:
    # Applications send the program nothing: it counts them in the database. Here one
    # application is on record with no workflow at all: when the deadline passes, the
    # program does not ask HR to decide until the database has its answer.
    env, store = stack.env, stack.store
    start = await env.get_current_time()
    definition = load_definition(DEFINITIONS / "demo.yaml", reference_time=start)
    deadline = definition.application.deadline
    async with stack.running(definition) as handle:
        await stack.recorded(definition)
        late = await record_application(store, definition.id, "late@example.org", start)

        await stack.sleep_until(deadline + timedelta(minutes=1))
        status = await handle.query(ProgramWorkflow.status)
        assert status.phase is ProgramPhase.AWAITING_APPROVALS
        assert status.counts["applied"] == status.counts["pending"] == 1  # as on record

        await stack.sleep_until(deadline + timedelta(minutes=2))
        assert (await handle.query(ProgramWorkflow.status)).phase is ProgramPhase.AWAITING_APPROVALS
        await store.set_application_status(late.id, "declined", await env.get_current_time())
        # The application whose answer leaves none open says so, as its workflow would:
        # the program counts again then; not at its next look (its looks are 15 s, 30 s,
        # 1 min and 2 min apart: the one after 2 min comes at 3 min 45 s), nor when the
        # answers are due (4 min).
        await handle.signal("answers_in")

        async def moved_on() -> bool:
            phase = (await handle.query(ProgramWorkflow.status)).phase
            return phase not in (ProgramPhase.APPLICATION_WINDOW, ProgramPhase.AWAITING_APPROVALS)

        await wait_for(moved_on, within=20)
        assert await env.get_current_time() < deadline + timedelta(minutes=3)
        status = await handle.query(ProgramWorkflow.status)
        assert status.counts["declined"] == 1 and status.counts["pending"] == 0
