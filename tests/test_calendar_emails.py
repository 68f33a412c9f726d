"""The joint events' calendar emails, from the activity to a real SMTP server and database.

What a participant sees of an event: its calendar entry names the program, the
update says when it was and when it is now, and it comes from a real contact of
the program, never from one of the references the workflows carry.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar  # type: ignore[import-untyped]
import pytest
from temporalio.testing import ActivityEnvironment

from mentorflow import people
from mentorflow.definition import Contact, Event, Language, ProgramDefinition, load_definition
from mentorflow.invitations import event_summary
from mentorflow.mail.catcher import CaughtMessage, MailCatcher
from mentorflow.models import (
    CalendarEmailInput,
    CalendarEmailKind,
    CalendarEntry,
    DeliveryCounts,
    EmailFacts,
)
from mentorflow.store import Store
from tests.conftest import email_activities
from tests.programs import record_application, record_program

# The database matters here: these run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.database

DEFINITIONS = Path(__file__).parent.parent / "definitions"
STOCKHOLM = ZoneInfo("Europe/Stockholm")
NOW = datetime(2027, 9, 1, 8, 0, tzinfo=UTC)
PROGRAM_NAME = "Omvänt mentorskap 2027"
PARTICIPANTS = {
    "kim.ek@ei.example.org": "Kim Ek",
    "asa.oberg@skatteverket.example.org": "Åsa Öberg",
}


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM)


KICKOFF = Event(
    id="kickoff",
    title="Kick-off",
    starts=local("2027-10-19T08:30"),
    duration=timedelta(hours=2),
    place="Stora salen, Naturvårdsverket",
)


def program(language: Language = Language.SV, *, contacts: bool = True) -> ProgramDefinition:
    """The cross-agency program; without its own contacts, its organisers' HR coordinate it."""
    definition = load_definition(DEFINITIONS / "cross-agency-2027.yaml")
    return definition.model_copy(
        update={
            "name": PROGRAM_NAME,
            "language": language,
            **({} if contacts else {"contacts": []}),
        }
    )


async def running(store: Store, definition: ProgramDefinition) -> None:
    """The program as the database has it once its one pair runs."""
    await record_program(store, definition, "running", next_deadline=None, at=NOW)
    ids = []
    for number, (address, name) in enumerate(PARTICIPANTS.items()):
        row = await record_application(
            store,
            definition.id,
            address,
            NOW,
            new_id=f"application-{number}",
            name=name,
            organisation_id=definition.organisations[2 * number].id,
            department="Ledning",
            profile_id=definition.profiles[number].id,
            manager_email=f"chef.{number}@example.org",
            manager_name="Chef",
            channel="web",
        )
        ids.append(row.id)
    await store.open_pairs(
        program_id=definition.id, pairs=[("pair-1", ids[0], ids[1])], source="test", at=NOW
    )


def request(
    definition: ProgramDefinition,
    entry: CalendarEntry,
    kind: CalendarEmailKind = "invitation",
    *,
    organizer: Contact | None = None,
) -> CalendarEmailInput:
    """What the program's workflow asks for: its facts and its first coordinator, as references."""
    plan = people.without_people(definition)
    return CalendarEmailInput(
        program_id=definition.id,
        entry=entry,
        kind=kind,
        facts=EmailFacts(
            program_name=plan.name,
            organisers=plan.organisers,
            contacts=plan.contacts,
            language=plan.language,
            timezone=plan.timezone,
            opens=plan.application.opens,
            deadline=plan.application.deadline,
            start=plan.schedule.start,
            end=plan.schedule.end,
        ),
        organizer=organizer or plan.coordinators()[0],
        reminder_key="P1D" if kind == "reminder" else "",
        time_left=timedelta(days=1) if kind == "reminder" else None,
        at=NOW,
    )


async def send(
    store: Store, database_url: str, catcher: MailCatcher, calendar_request: CalendarEmailInput
) -> DeliveryCounts:
    return await ActivityEnvironment().run(
        email_activities(store, database_url, catcher.port).send_calendar_emails, calendar_request
    )


def event_of(message: CaughtMessage) -> Any:
    assert message.calendar is not None
    (event,) = icalendar.Calendar.from_ical(message.calendar).walk("VEVENT")
    return event


def everything_in(message: CaughtMessage) -> str:
    """Every header and every part of a message, decoded, as a mail client shows them."""
    found = [f"{name}: {value}" for name, value in message.message.items()]
    for part in message.message.walk():
        found += [f"{name}: {value}" for name, value in part.items()]
        if not part.is_multipart():
            found.append(str(part.get_content()))
    return "\n".join(found)


def html_text(message: CaughtMessage) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", message.body("html")).split())


# Each language's words for the four emails of an event, and its two times below.
SUBJECTS = {
    Language.SV: (
        ("Inbjudan", "Ändrat", "Påminnelse", "Inställt"),
        ("tisdag 19 oktober 2027 kl. 08:30", "tisdag 26 oktober 2027 kl. 08:30"),
    ),
    Language.EN: (
        ("Invitation", "Updated", "Reminder", "Cancelled"),
        ("Tuesday 19 October 2027 at 08:30", "Tuesday 26 October 2027 at 08:30"),
    ),
}


@pytest.mark.parametrize("language", list(SUBJECTS))
async def test_the_calendar_entry_and_every_subject_name_the_program(
    mail_catcher: MailCatcher, store: Store, database_url: str, language: Language
) -> None:
    definition = program(language)
    await running(store, definition)
    title = f"Kick-off — {PROGRAM_NAME}"
    entry = CalendarEntry(event=KICKOFF)
    moved = CalendarEntry(
        event=KICKOFF.model_copy(update={"starts": local("2027-10-26T08:30")}), sequence=1
    )
    gone = moved.model_copy(update={"sequence": 2, "cancelled": True})
    for calendar_request in (
        request(definition, entry),
        request(definition, moved),
        request(definition, moved, "reminder"),
        request(definition, gone),
    ):
        result = await send(store, database_url, mail_catcher, calendar_request)
        assert result.sent == len(PARTICIPANTS)

    (invitation, update, reminder, cancelled), (first, then) = SUBJECTS[language]
    for address in PARTICIPANTS:
        mine = [m for m in mail_catcher.messages() if m.recipients == [address]]
        assert [m.subject for m in mine] == [
            f"{invitation}: {title}, {first}",
            f"{update}: {title}, {then}",
            f"{reminder}: {title}, {then}",
            f"{cancelled}: {title}, {then}",
        ]
        # In the participant's calendar, every version of the entry says whose event it is.
        assert [str(event_of(m)["summary"]) for m in mine if m.calendar] == [title] * 3


def test_a_title_that_names_its_program_keeps_its_own_words() -> None:
    assert event_summary("Kick-off", PROGRAM_NAME) == f"Kick-off — {PROGRAM_NAME}"
    own = f"Avslutning av {PROGRAM_NAME.lower()}"
    assert event_summary(own, PROGRAM_NAME) == own


@pytest.mark.parametrize(
    ("language", "said"),
    [
        pytest.param(
            Language.SV,
            "Tidigare: tisdag 19 oktober 2027 kl. 08:30 — nu: tisdag 2 november 2027 kl. 09:15",
            id="sv",
        ),
        pytest.param(
            Language.EN,
            "Was: Tuesday 19 October 2027 at 08:30 — now: Tuesday 2 November 2027 at 09:15",
            id="en",
        ),
    ],
)
async def test_the_update_says_when_the_event_was_and_when_it_is_now(
    mail_catcher: MailCatcher, store: Store, database_url: str, language: Language, said: str
) -> None:
    """In the program's timezone: the move crosses the end of summer time (CEST to CET)."""
    definition = program(language)
    await running(store, definition)
    first = CalendarEntry(event=KICKOFF)
    await send(store, database_url, mail_catcher, request(definition, first))
    moved = CalendarEntry(
        event=KICKOFF.model_copy(update={"starts": local("2027-11-02T09:15")}),
        sequence=1,
        previous_starts=KICKOFF.starts.astimezone(UTC),
    )
    result = await send(store, database_url, mail_catcher, request(definition, moved))

    assert result.sent == len(PARTICIPANTS)
    for address in PARTICIPANTS:
        invited, updated = [m for m in mail_catcher.messages() if m.recipients == [address]]
        assert said in updated.body("plain").split("\n")
        assert said in html_text(updated)
        assert event_of(updated).decoded("dtstart") == local("2027-11-02T09:15")
        # The first invitation has nothing to compare with.
        was = said.partition(":")[0]
        assert f"{was}:" not in invited.body("plain") and f"{was}:" not in html_text(invited)


@pytest.mark.parametrize(
    ("contacts", "given"),
    [
        # What the workflow passes: its first coordinator, by reference.
        pytest.param(True, None, id="reference"),
        pytest.param(False, None, id="reference-to-an-organisers-hr"),
        # A run from before the references carries the real person.
        pytest.param(
            True,
            Contact(name="Programkontor", email="mentorskap@ei.example.org"),
            id="real-address",
        ),
        # A reference the stored definition does not know.
        pytest.param(
            True,
            Contact(name="person.42", email=f"person.42@{people.DOMAIN}"),
            id="unknown-reference",
        ),
    ],
)
async def test_the_organizer_is_a_real_contact_of_the_program(
    mail_catcher: MailCatcher,
    store: Store,
    database_url: str,
    contacts: bool,
    given: Contact | None,
) -> None:
    definition = program(contacts=contacts)
    await running(store, definition)
    coordinator = definition.coordinators()[0]
    program_contacts = {
        (c.name, str(c.email).lower())
        for c in [
            *definition.contacts,
            *(c for o in definition.organisations for c in o.hr_contacts),
        ]
    }
    entry = CalendarEntry(event=KICKOFF)
    moved = CalendarEntry(
        event=KICKOFF.model_copy(update={"starts": local("2027-10-26T08:30")}),
        sequence=1,
        previous_starts=KICKOFF.starts,
    )
    gone = moved.model_copy(update={"sequence": 2, "cancelled": True})
    for version in (entry, moved, gone):
        await send(store, database_url, mail_catcher, request(definition, version, organizer=given))
    await send(
        store, database_url, mail_catcher, request(definition, moved, "reminder", organizer=given)
    )

    caught = mail_catcher.messages()
    assert len(caught) == 4 * len(PARTICIPANTS)
    for message in caught:
        assert people.DOMAIN not in everything_in(message)
        assert people.DOMAIN not in message.message.as_string()
        if message.calendar is None:
            continue
        organizer = event_of(message)["organizer"]
        assert str(organizer) == f"mailto:{coordinator.email}"
        assert str(organizer.params["CN"]) == coordinator.name
        name, address = str(organizer.params["CN"]), str(organizer).removeprefix("mailto:")
        assert (name, address.lower()) in program_contacts
