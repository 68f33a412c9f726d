"""Kick-off, joint sessions and pair meetings, end to end, on the seed-000 pilot's shape:
six young leaders and six senior leaders, six months from October, a joint
kick-off; the start is postponed after the invitations went out. The
time-skipping Temporal server, the real web app over HTTP, the real SMTP server
and the real database; every link is taken from an email that arrived.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar  # type: ignore[import-untyped]
import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from mentorflow.definition import ProgramDefinition, parse_definition
from mentorflow.mail.catcher import CaughtMessage, MailCatcher
from mentorflow.models import PairStatus, ProgramPhase, pair_workflow_id
from tests.conftest import Stack, keep_histories, links_in, run_histories, until_completed, wait_for
from workflows.pair import PairWorkflow
from workflows.program import ProgramWorkflow

DEFINITIONS = Path(__file__).parent.parent / "definitions"
STOCKHOLM = ZoneInfo("Europe/Stockholm")
MENTORS = [f"ung{i}@handelskammaren.example.org" for i in range(6)]
ADEPTS = [f"chef{i}@fagerhult.example.org" for i in range(6)]
PARTICIPANTS = MENTORS + ADEPTS
COORDINATOR = "program@handelskammaren.example.org"


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM)


def pilot() -> ProgramDefinition:
    """The pilot with one more joint session and a kick-off reminder.

    Manager approval, HR's decision and the review have their own tests; here
    applications are approved by policy, HR's silence accepts up to the caps,
    and the pairs are confirmed without review, so the running period comes at once.
    """
    data = yaml.safe_load((DEFINITIONS / "lighting-pilot-2027.yaml").read_text(encoding="utf-8"))
    data["approval"] = {"required": False}
    data["capacity"]["when_undecided"] = "accept_up_to_cap"
    data["matching"]["hr_review"] = False
    data["schedule"]["kickoff"]["reminders_before"] = ["P1D"]
    data["schedule"]["sessions"] = [
        {
            "id": "halfway",
            "title": "Halvtidsträff",
            "starts": "2028-01-18 13:00",
            "duration": "PT2H",
            "place": "Fagerhult, Habo",
        }
    ]
    return parse_definition(data, file="lighting-pilot-2027.yaml")


def form(email: str) -> dict[str, Any]:
    mentor = email in MENTORS
    return {
        "name": f"Person {email.split('@')[0].upper()}",
        "email": email,
        "organisation": "handelskammaren" if mentor else "fagerhult",
        "department": "Ledning",
        "manager_name": "Chef",
        "manager_email": f"chef-{email}",
        "eligible_0": "yes",
        "q_perspective" if mentor else "q_goal": "Digital omställning och hållbart ledarskap.",
        "q_multi_themes": ["Digitalisering", "Hållbarhet"],
    }


def profile_of(email: str) -> str:
    return "young-leader" if email in MENTORS else "senior-leader"


async def apply_in_the_window(
    stack: Stack, definition: ProgramDefinition, emails: list[str]
) -> None:
    """Each of ``emails`` applies through the web form, the day after the window opens."""
    await stack.recorded(definition)
    await stack.sleep_until(local("2027-08-17T10:00"))
    for email in emails:
        response = await stack.apply(definition, profile_of(email), form(email))
        assert response.status_code == 200, response.text


def invitations(catcher: MailCatcher, recipient: str) -> list[CaughtMessage]:
    return [m for m in catcher.messages() if recipient in m.recipients and m.calendar]


def event_of(message: CaughtMessage) -> tuple[Any, Any]:
    """(calendar, event) of an invitation, parsed by the icalendar library."""
    assert message.calendar is not None
    calendar = icalendar.Calendar.from_ical(message.calendar)
    (event,) = calendar.walk("VEVENT")
    return calendar, event


def subjects(catcher: MailCatcher, recipient: str, start: str) -> list[CaughtMessage]:
    return [
        m for m in catcher.messages() if recipient in m.recipients and m.subject.startswith(start)
    ]


async def check_in_times(client: Client, workflow_id: str) -> dict[str, datetime]:
    """When each check-in email of a pair was scheduled, by the workflow's own clock."""
    found = {}
    for history in await run_histories(client, workflow_id):
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                data = json.loads(attributes.input.payloads[0].data)
                if data.get("template") == "check_in":
                    number = data["facts"]["check_in_number"]
                    found[number] = event.event_time.ToDatetime().replace(tzinfo=ZoneInfo("UTC"))
    return found


async def test_postponed_start_moves_calendars_and_check_ins_of_a_six_month_pilot(
    stack: Stack,
) -> None:
    env, mail_catcher, store, web = stack.env, stack.mail_catcher, stack.store, stack.web
    definition = pilot()
    async with stack.running(definition) as program:
        await apply_in_the_window(stack, definition, PARTICIPANTS)

        # HR's deadline passes (accepting up to the caps), pairs are confirmed and told,
        # and the kick-off and the session go into every participant's calendar.
        status = await stack.phase_at(program, local("2027-09-25T10:00"), ProgramPhase.RUNNING)
        assert status.pairs == {"active": 6}
        await wait_for(lambda: all(len(invitations(mail_catcher, p)) == 2 for p in PARTICIPANTS))
        first = {
            p: {event_of(m)[1]["uid"]: m for m in invitations(mail_catcher, p)}
            for p in PARTICIPANTS
        }

        # A move the program cannot take is refused with the reason, and changes nothing.
        refused = await stack.mentorflow(
            "program", "reschedule", definition.id, "--start", "2027-10-15 09:00"
        )
        assert refused.returncode == 1
        assert "is outside the program" in refused.stderr and "Gemensam kick-off" in refused.stderr

        # The postponed start, decided after the invitations went out: the kick-off moves too.
        moved = await stack.mentorflow(
            "program", "reschedule", definition.id,
            "--start", "2027-10-15 09:00", "--event", "kickoff=2027-10-19 08:30",
            "--reason", "Senarelagd start",
        )  # fmt: skip
        assert moved.returncode == 0, moved.stderr
        assert "moved start, event:kickoff" in moved.stdout
        await wait_for(lambda: all(len(invitations(mail_catcher, p)) == 3 for p in PARTICIPANTS))
        # Everyone in a pair, and HR, is told of the new start and why, once.
        await wait_for(
            lambda: all(
                len(subjects(mail_catcher, p, "Nya datum")) == 1
                for p in [*PARTICIPANTS, COORDINATOR]
            )
        )
        (notice,) = subjects(mail_catcher, MENTORS[0], "Nya datum")
        assert "Programstart: fredag 15 oktober 2027 kl. 09:00 (tidigare" in notice.body("plain")
        assert "Senarelagd start" in notice.body("plain")

        # Check-ins follow the new start: none two weeks after the old one ...
        await stack.sleep_until(local("2027-10-28T12:00"))
        assert not any(subjects(mail_catcher, p, "Har ni träffats?") for p in PARTICIPANTS)
        # ... the first one two weeks after the new start.
        await stack.sleep_until(local("2027-10-29T12:00"))
        await wait_for(
            lambda: all(
                len(subjects(mail_catcher, p, "Har ni träffats?")) == 1 for p in PARTICIPANTS
            )
        )
        (check_in,) = subjects(mail_catcher, MENTORS[0], "Har ni träffats?")
        assert "träffas igen senast 12 november 2027" in check_in.body("plain")

        # The links, through the web app: a GET only asks; the button answers once.
        rows = {row.email: row for row in await store.applications(definition.id)}
        pairs = {p.mentor_application_id: p for p in await store.pairs(definition.id)}
        first_pair = pairs[rows[MENTORS[0]].id]
        adept_of_first = next(e for e in ADEPTS if rows[e].id == first_pair.adept_application_id)
        link = links_in(mail_catcher, MENTORS[0], "k")[0]
        page = await web.http.get(link)
        assert page.status_code == 200 and "Har ni träffats?" in page.text
        assert page.text.count('name="choice"') == 3
        chosen = await web.http.get(link, params={"answer": "yes"})
        assert chosen.status_code == 200 and chosen.text.count('name="choice"') == 1
        assert "Bekräfta ditt svar" in chosen.text
        answered = await web.http.post(link, data={"choice": "yes"})
        assert answered.status_code == 200 and "Fortsätt i samma takt" in answered.text
        again = await web.http.post(link, data={"choice": "not_yet"})
        assert again.status_code == 409 and "Ja, vi har träffats" in again.text
        forged = await web.http.get(link[:-3] + "abc")
        assert forged.status_code == 400
        # The adept of the same pair needs help: HR hears of it at once.
        help_link = links_in(mail_catcher, adept_of_first, "k")[0]
        needs = await web.http.post(help_link, data={"choice": "need_help"})
        assert needs.status_code == 200 and "HR-kontakter har fått veta" in needs.text
        await wait_for(lambda: subjects(mail_catcher, COORDINATOR, "Ett par i"))
        (call,) = subjects(mail_catcher, COORDINATOR, "Ett par i")
        assert "ber om stöd" in call.subject and adept_of_first in call.body("plain")
        # Another participant has not met yet.
        other = links_in(mail_catcher, MENTORS[1], "k")[0]
        not_yet = await web.http.post(other, data={"choice": "not_yet"})
        assert not_yet.status_code == 200 and "Boka gärna en tid" in not_yet.text
        first_handle: WorkflowHandle[PairWorkflow, PairStatus] = env.client.get_workflow_handle_for(
            PairWorkflow.run, pair_workflow_id(definition.id, first_pair.id)
        )
        pair_status = await first_handle.query(PairWorkflow.status)
        assert pair_status.answers == {"1": {"mentor": "yes", "adept": "need_help"}}

        # To the end of the program, and of every pair.
        done = await until_completed(env, program)
        handles: dict[str, WorkflowHandle[PairWorkflow, PairStatus]] = {
            pair_id: env.client.get_workflow_handle_for(
                PairWorkflow.run, pair_workflow_id(definition.id, pair_id)
            )
            for pair_id in (p.id for p in pairs.values())
        }
        ended = {pair_id: await handle.result() for pair_id, handle in handles.items()}
        times = {
            pair_id: await check_in_times(env.client, handle.id)
            for pair_id, handle in handles.items()
        }
        final = await program.query(ProgramWorkflow.status)

    assert done.phase is ProgramPhase.COMPLETED
    assert final.dates.start == local("2027-10-15T09:00")
    # A check-in link after the pair has ended is refused politely.
    late = await web.http.post(links_in(mail_catcher, MENTORS[2], "k")[-1], data={"choice": "yes"})
    assert late.status_code == 410 and "Paret har avslutats" in late.text
    assert all(status.status == "ended" for status in ended.values())

    # Every calendar part parses, in Europe/Stockholm, with its VTIMEZONE.
    calendar_parts = [m for m in mail_catcher.messages() if m.calendar]
    assert len(calendar_parts) == 3 * len(PARTICIPANTS)
    for message in calendar_parts:
        calendar, event = event_of(message)
        assert calendar["method"] == "REQUEST"
        assert event["dtstart"].params["TZID"] == "Europe/Stockholm"
        assert event.decoded("dtstart").tzinfo.key == "Europe/Stockholm"
        assert [tz["tzid"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/Stockholm"]
        (attendee,) = [event["attendee"]]
        assert str(attendee) == f"mailto:{message.recipients[0]}"
        assert str(event["organizer"]) == f"mailto:{COORDINATOR}"

    # Exactly one update per moved event: the kick-off, same UID, higher SEQUENCE, new time;
    # the session did not move and was not sent again.
    for person in PARTICIPANTS:
        by_uid: dict[str, list[Any]] = defaultdict(list)
        for message in invitations(mail_catcher, person):
            by_uid[str(event_of(message)[1]["uid"])].append(event_of(message)[1])
        assert set(by_uid) == set(first[person])
        [kickoff] = [v for uid, v in by_uid.items() if uid.startswith(f"{definition.id}.kickoff@")]
        [session] = [v for uid, v in by_uid.items() if uid.startswith(f"{definition.id}.halfway@")]
        assert [e["sequence"] for e in kickoff] == [0, 1]
        assert kickoff[0].decoded("dtstart") == local("2027-10-05T08:30")
        assert kickoff[1].decoded("dtstart") == local("2027-10-19T08:30")
        assert [e["sequence"] for e in session] == [0]
        updated = [m for m in invitations(mail_catcher, person) if m.subject.startswith("Ändrat")]
        assert len(updated) == 1 and "tisdag 19 oktober 2027 kl. 08:30" in updated[0].subject
        # The kick-off reminder came once, a day before the new time.
        (reminder,) = subjects(mail_catcher, person, "Påminnelse: Gemensam kick-off")
        assert "19 oktober 2027 kl. 08:30" in reminder.subject

    # Check-ins on the cadence counted from the new start, 09:00 local across the DST change:
    # every other week for eight weeks, then monthly, until the end.
    expected = [
        local(t)
        for t in (
            "2027-10-29T09:00", "2027-11-12T09:00", "2027-11-26T09:00", "2027-12-10T09:00",
            "2028-01-10T09:00", "2028-02-10T09:00", "2028-03-10T09:00",
        )
    ]  # fmt: skip
    for pair_id, sent in times.items():
        assert sorted(sent, key=int) == [str(n) for n in range(1, 8)], pair_id
        for number, at in sent.items():
            assert abs(at - expected[int(number) - 1]) < timedelta(minutes=1), (number, at)
    for person in PARTICIPANTS:
        assert len(subjects(mail_catcher, person, "Har ni träffats?")) == 7
        assert len(subjects(mail_catcher, person, "Halvvägs")) == 1

    # Silent pairs were flagged to HR; the database holds the answers given.
    ledger = await store.emails(definition.id)
    flagged = Counter(e.step.split("/")[1] for e in ledger if "/stalled/" in e.step)
    assert set(flagged) == set(handles)
    answers = await store.check_ins(first_pair.id)
    assert {(a.number, a.role, a.answer) for a in answers} == {
        ("1", "mentor", "yes"),
        ("1", "adept", "need_help"),
    }
    assert (await store.pair(first_pair.id)).last_met_at is not None  # type: ignore[union-attr]
    # Nothing was sent twice.
    assert all(n == 1 for n in Counter(m.message_id for m in mail_catcher.messages()).values())
    assert not re.search(r"None|\{\{", " ".join(m.body("plain") for m in mail_catcher.messages()))
    await keep_histories(env.client, program, "postponed-start")


async def test_a_withdrawal_closes_the_pair_and_hr_rematches_from_the_wait_list(
    stack: Stack,
) -> None:
    env, mail_catcher, store = stack.env, stack.mail_catcher, stack.store
    definition = pilot()
    late_adept = "chef6@fagerhult.example.org"  # the seventh adept: over the cap of six
    async with stack.running(definition) as program:
        await apply_in_the_window(stack, definition, [*PARTICIPANTS, late_adept])
        await stack.phase_at(program, local("2027-10-02T10:00"), ProgramPhase.RUNNING)
        await wait_for(lambda: all(len(invitations(mail_catcher, p)) == 2 for p in PARTICIPANTS))
        rows = {row.email: row for row in await store.applications(definition.id)}
        assert rows[late_adept].selection == "waitlisted"
        pair = next(p for p in await store.pairs(definition.id) if p.status == "active")
        leaving = next(e for e, r in rows.items() if r.id == pair.adept_application_id)
        remaining = next(e for e, r in rows.items() if r.id == pair.mentor_application_id)

        # HR records the withdrawal: the pair closes; the partner and HR are told.
        withdrawn = await stack.mentorflow(
            "pair", "withdraw", definition.id, leaving, "--reason", "Ny tjänst"
        )
        assert withdrawn.returncode == 0, withdrawn.stderr
        assert "is closed" in withdrawn.stdout
        await wait_for(lambda: subjects(mail_catcher, remaining, "Ert par i"))
        await wait_for(lambda: subjects(mail_catcher, COORDINATOR, "Ett par i"))
        (to_hr,) = subjects(mail_catcher, COORDINATOR, "Ett par i")
        assert "Ny tjänst" in to_hr.body("plain") and leaving in to_hr.body("plain")
        assert not subjects(mail_catcher, leaving, "Ert par i")
        again = await stack.mentorflow("pair", "withdraw", definition.id, leaving)
        assert again.returncode == 1 and "is not in a running pair" in again.stderr

        async def one_closed() -> bool:
            pairs = (await program.query(ProgramWorkflow.status)).pairs
            return pairs == {"active": 5, "closed": 1}

        await wait_for(one_closed, within=10)

        # Someone who is not on the wait-list is refused, with the reason.
        wrong = await stack.mentorflow(
            "pair", "rematch", definition.id, "--remaining", remaining, "--with", ADEPTS[1]
        )
        assert wrong.returncode == 1 and "is not on the wait-list" in wrong.stderr
        rematched = await stack.mentorflow(
            "pair", "rematch", definition.id, "--remaining", remaining, "--with", late_adept
        )
        assert rematched.returncode == 0, rematched.stderr

        # Both are introduced; the newcomer gets the joint events in the calendar, nobody twice.
        await wait_for(lambda: len(invitations(mail_catcher, late_adept)) == 2)
        intro = [
            m
            for m in mail_catcher.messages()
            if late_adept in m.recipients and m.subject.startswith("Välkommen till")
        ]
        assert len(intro) == 1 and remaining in intro[0].body("plain")
        status = await program.query(ProgramWorkflow.status)
        assert status.pairs == {"active": 6, "closed": 1}
        assert (await store.application(rows[late_adept].id)).selection == "accepted"  # type: ignore[union-attr]

        # The new pair runs: its first check-in comes two weeks after the start.
        await stack.sleep_until(local("2027-10-15T12:00"))
        await wait_for(lambda: subjects(mail_catcher, late_adept, "Har ni träffats"))

        # HR cancels the session: it leaves every current participant's calendar.
        cancelled = await stack.mentorflow(
            "program", "reschedule", definition.id, "--cancel-event", "halfway"
        )
        assert cancelled.returncode == 0, cancelled.stderr
        everyone = [p for p in [*PARTICIPANTS, late_adept] if p != leaving]
        await wait_for(lambda: all(len(invitations(mail_catcher, p)) == 3 for p in everyone))

    for person in everyone:
        *_, last = invitations(mail_catcher, person)
        calendar, event = event_of(last)
        assert calendar["method"] == "CANCEL" and event["status"] == "CANCELLED"
        assert str(event["uid"]).startswith(f"{definition.id}.halfway@")
        assert event["sequence"] == 1 and last.subject.startswith("Inställt: Halvtidsträff")
    assert len(invitations(mail_catcher, leaving)) == 2  # who left is not written to again
    assert all(n == 1 for n in Counter(m.message_id for m in mail_catcher.messages()).values())
    await keep_histories(env.client, program, "withdrawal-and-rematch")
