"""HR's capacity decision and matching, end to end: closed applications → HR decides
on the emailed page (and by CLI) → matching → HR reviews with a lock and a forbid →
confirmed → everyone is told. The time-skipping Temporal server, the real web app
over HTTP, the real SMTP server and the real database; every link is taken from an
email that arrived.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from mentorflow import people
from mentorflow.definition import parse_definition
from mentorflow.mail.catcher import MailCatcher
from mentorflow.models import ProgramPhase
from tests.conftest import Stack, keep_histories, links_in, until_phase, wait_for
from workflows.program import ProgramWorkflow

DEFINITIONS = Path(__file__).parent.parent / "definitions"
STOCKHOLM = ZoneInfo("Europe/Stockholm")
COORDINATOR = "mentorskap@ei.example.org"


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM)


def definition_without_manager_approval() -> Any:
    """The cross-agency program with approval switched off, so HR's phase comes at once.

    Manager approval has its own end-to-end test; here every application is
    approved by policy when it arrives.
    """
    data = yaml.safe_load((DEFINITIONS / "cross-agency-2027.yaml").read_text(encoding="utf-8"))
    data["approval"] = {"required": False}
    return parse_definition(data, file="cross-agency-2027.yaml")


# (email, organisation, profile, years of experience, interests)
PEOPLE = [
    ("m1@ei.example.org", "ei", "junior-mentor", 3, ["Digitala verktyg", "Hållbarhet"]),
    ("m2@ei.example.org", "ei", "junior-mentor", 4, ["Ledarskap"]),
    ("m3@ei.example.org", "ei", "junior-mentor", 2, ["Kommunikation"]),
    ("m4@ei.example.org", "ei", "junior-mentor", 5, ["Hållbarhet"]),
    ("m5@ei.example.org", "ei", "junior-mentor", 1, ["Ledarskap"]),
    ("a1@ei.example.org", "ei", "senior-adept", 30, ["Digitala verktyg"]),
    ("m6@nv.example.org", "naturvardsverket", "junior-mentor", 3, ["Digitala verktyg"]),
    ("m7@nv.example.org", "naturvardsverket", "junior-mentor", 2, ["Ledarskap"]),
    ("a2@nv.example.org", "naturvardsverket", "senior-adept", 25, ["Hållbarhet"]),
    ("a3@nv.example.org", "naturvardsverket", "senior-adept", 28, ["Ledarskap"]),
    ("a4@nv.example.org", "naturvardsverket", "senior-adept", 31, ["Kommunikation"]),
    ("a5@skv.example.org", "skatteverket", "senior-adept", 27, ["Hållbarhet"]),
    ("a6@skv.example.org", "skatteverket", "senior-adept", 29, ["Ledarskap"]),
]


def person_form(email: str, organisation: str, years: int, interests: list[str]) -> dict[str, Any]:
    name = email.split("@")[0].upper()
    return {
        "name": f"Person {name}",
        "email": email,
        "organisation": organisation,
        "department": "Analys",
        "manager_name": f"Chef {name}",
        "manager_email": f"chef-{email}",
        "eligible_0": "yes",
        "eligible_1": "yes",
        "q_motivation": "Jag vill lära mig om ledarskap och hållbarhet.",
        "q_years": str(years),
        "q_multi_interests": interests,
    }


def subjects_to(catcher: MailCatcher, recipient: str) -> list[str]:
    """The subjects of what ``recipient`` got, calendar invitations left out."""
    return [
        m.subject for m in catcher.messages() if recipient in m.recipients and m.calendar is None
    ]


async def test_hr_decides_reviews_pairs_and_everyone_is_told(stack: Stack) -> None:
    mail_catcher, store, web = stack.mail_catcher, stack.store, stack.web
    definition = definition_without_manager_approval()
    async with stack.running(definition) as program:
        await stack.recorded(definition)
        await stack.sleep_until(local("2027-02-16T10:00"))
        for email, organisation, profile, years, interests in PEOPLE:
            response = await stack.apply(
                definition, profile, person_form(email, organisation, years, interests)
            )
            assert response.status_code == 200, response.text
        ids = {row.email: row.id for row in await store.applications(definition.id)}
        assert len(ids) == len(PEOPLE)
        accepted_emails = {
            "m1@ei.example.org",
            "m2@ei.example.org",
            "m3@ei.example.org",
            "m4@ei.example.org",
            "a1@ei.example.org",
            "m6@nv.example.org",
            "m7@nv.example.org",
            "a2@nv.example.org",
            "a3@nv.example.org",
        }

        def rows_selected(email: str) -> bool:
            return email in accepted_emails

        # The window closes; approvals are in (by policy); each organisation's HR is asked.
        await stack.sleep_until(local("2027-04-09T09:00"))
        status = await program.query(ProgramWorkflow.status)
        assert status.phase is ProgramPhase.AWAITING_HR_DECISION
        assert status.undecided == ["ei", "naturvardsverket", "skatteverket"]
        hr = {o.id: o.hr_contacts[0].email for o in definition.organisations}
        await wait_for(lambda: all(links_in(mail_catcher, hr[o], "c") for o in hr), within=30)
        ei_request = next(m for m in mail_catcher.messages() if hr["ei"] in m.recipients)
        assert "Junior mentor: 5 godkända, plats för högst 4" in ei_request.body("plain")

        # ei's HR opens its link: a page only shows (GET and HEAD change nothing).
        ei_link = links_in(mail_catcher, hr["ei"], "c")[0]
        assert (await web.http.head(ei_link)).status_code == 200
        page = await web.http.get(ei_link)
        assert page.status_code == 200
        assert "Person M1" in page.text and "Plats för högst 4; 5 godkända." in page.text
        assert (await program.query(ProgramWorkflow.status)).decisions == {}
        # Another organisation's link does not open ei's decision, and a forged one is refused.
        forged = ei_link[:-3] + ("xyz" if not ei_link.endswith("xyz") else "abc")
        assert (await web.http.get(forged)).status_code == 400

        # Above the cap: refused, with the cap shown, and nothing recorded.
        everyone = {f"sel_{ids[e]}": "accepted" for e, o, *_ in PEOPLE if o == "ei"}
        over = await web.http.post(ei_link, data=everyone)
        assert over.status_code == 422
        assert "För många antagna" in over.text and "the cap for ei is 4" in over.text
        assert (await program.query(ProgramWorkflow.status)).decisions == {}
        assert all(r.selection is None for r in await store.applications(definition.id))

        # Within the cap: four mentors and the adept accepted, one mentor wait-listed.
        decided = await web.http.post(
            ei_link, data={**everyone, f"sel_{ids['m5@ei.example.org']}": "waitlisted"}
        )
        assert decided.status_code == 200, decided.text
        assert "Antagna: 5. På reservlistan: 1. Inte antagna: 0." in decided.text

        # Naturvårdsverket decides with the CLI; an unknown email is refused first.
        base = ("capacity", "decide", definition.id, "--organisation", "naturvardsverket")
        # The CLI runs as a child process; a thread keeps this loop (and the worker) going.
        wrong = await stack.mentorflow(*base, "--accept", "nobody@nv.example.org")
        assert wrong.returncode == 1
        assert "not an approved applicant of naturvardsverket: nobody@nv.example.org" in (
            wrong.stderr
        )
        cli = await stack.mentorflow(
            *base,
            "--accept",
            "m6@nv.example.org,m7@nv.example.org,a2@nv.example.org,a3@nv.example.org",
            "--decline",
            "a4@nv.example.org",
            "--by",
            "hr@naturvardsverket.example.org",
        )
        assert cli.returncode == 0, cli.stderr
        assert "accepted 4, wait-listed 0, not selected 1" in cli.stdout

        # Skatteverket stays silent: a reminder two days before the deadline, to it alone.
        await stack.sleep_until(local("2027-04-21T09:00"))
        await wait_for(lambda: len(subjects_to(mail_catcher, hr["skatteverket"])) == 2)
        assert subjects_to(mail_catcher, hr["skatteverket"])[1].startswith("Påminnelse")
        assert len(subjects_to(mail_catcher, hr["ei"])) == 1
        status = await program.query(ProgramWorkflow.status)
        assert status.undecided == ["skatteverket"]
        assert status.decisions["ei"].channel == "hr_link"
        assert status.decisions["naturvardsverket"].channel == "cli"

        # At the deadline the definition's policy wait-lists the undecided organisation,
        # and the matcher proposes pairs for HR's review.
        await stack.sleep_until(local("2027-04-22T17:05"))
        status = await program.query(ProgramWorkflow.status)
        assert status.phase is ProgramPhase.MATCH_REVIEW
        assert status.decisions["skatteverket"].decided_by == "policy: waitlist_all"
        await wait_for(lambda: links_in(mail_catcher, COORDINATOR, "r"), within=30)
        review = links_in(mail_catcher, COORDINATOR, "r")[0]
        first = await store.proposal(definition.id)
        assert first is not None
        proposal, pairs = first
        # Six accepted mentors and three accepted adepts (ei's, and two of Naturvårdsverket's).
        assert len(pairs) == 3 and len(proposal.report["unmatched"]) == 3
        page = await web.http.get(review)
        assert page.status_code == 200 and "Förslag 1: 3 par" in page.text
        # Why three mentors were left out, in the program's language.
        assert page.text.count("alla adepter som passar är redan parade") == 3
        assert (await store.proposal(definition.id)) is not None
        shown = (await program.query(ProgramWorkflow.status)).matching
        assert shown is not None and shown.proposal == 1  # showing the page changed nothing

        # HR locks one pair and forbids another; each makes a new proposal at once.
        keep, drop = pairs[0], pairs[1]
        locked = await web.http.post(
            review,
            data={
                "action": "lock",
                "pair": f"{keep.mentor_application_id}:{keep.adept_application_id}",
            },
            follow_redirects=False,
        )
        assert locked.status_code == 303
        forbid_ref = f"{drop.mentor_application_id}:{drop.adept_application_id}"
        forbidden = await web.http.post(
            review, data={"action": "forbid", "pair": forbid_ref}, follow_redirects=False
        )
        assert forbidden.status_code == 303
        latest = await store.proposal(definition.id)
        assert latest is not None and latest[0].number == 3
        now_pairs = {(p.mentor_application_id, p.adept_application_id): p for p in latest[1]}
        assert now_pairs[(keep.mentor_application_id, keep.adept_application_id)].locked
        assert (drop.mentor_application_id, drop.adept_application_id) not in now_pairs
        assert drop.adept_application_id in {p.adept_application_id for p in latest[1]}

        # A lock that breaks a hard rule is refused, with the rule and the people named.
        held = {
            x
            for p in latest[1]
            if p.locked
            for x in (p.mentor_application_id, p.adept_application_id)
        }
        rule_mentor, rule_adept = next(
            (m, a)
            for m, om, pm, *_ in PEOPLE
            for a, oa, pa, *_ in PEOPLE
            if om == oa
            and pm == "junior-mentor"
            and pa == "senior-adept"
            and rows_selected(m)
            and rows_selected(a)
            and ids[m] not in held
            and ids[a] not in held
        )
        rule = await web.http.post(
            review, data={"action": "lock", "pair": f"{ids[rule_mentor]}:{ids[rule_adept]}"}
        )
        assert rule.status_code == 409
        assert "breaks a hard rule: same organisation" in rule.text
        # Shown with the names HR knows, not the application ids.
        names = [f"Person {e.split('@')[0].upper()}" for e in (rule_mentor, rule_adept)]
        assert " + ".join(names) in rule.text

        # HR swaps the mentors of the two pairs with Naturvårdsverket's adepts.
        nv_adepts = {ids["a2@nv.example.org"], ids["a3@nv.example.org"]}
        first_nv, second_nv = [p for p in latest[1] if p.adept_application_id in nv_adepts]
        swapped = await web.http.post(
            review,
            data={
                "action": "swap",
                "pair": f"{first_nv.mentor_application_id}:{first_nv.adept_application_id}",
                "other": f"{second_nv.mentor_application_id}:{second_nv.adept_application_id}",
            },
            follow_redirects=False,
        )
        assert swapped.status_code == 303
        latest = await store.proposal(definition.id)
        assert latest is not None and latest[0].number == 4
        now_pairs = {(p.mentor_application_id, p.adept_application_id): p for p in latest[1]}
        assert now_pairs[(first_nv.mentor_application_id, second_nv.adept_application_id)].locked
        assert now_pairs[(second_nv.mentor_application_id, first_nv.adept_application_id)].locked
        assert (drop.mentor_application_id, drop.adept_application_id) not in now_pairs

        # Contradictions are refused, named, and change nothing.
        contradiction = await web.http.post(review, data={"action": "lock", "pair": forbid_ref})
        assert contradiction.status_code == 409
        assert "the pair is forbidden; allow it before locking it" in contradiction.text
        stale = await web.http.post(review, data={"action": "confirm", "proposal": "1"})
        assert stale.status_code == 409 and "replaced by proposal" in stale.text
        refused_at = await store.proposal(definition.id)
        assert refused_at is not None and refused_at[0].number == 4

        # Confirming tells everyone at once: the page asks first, and nothing is sent yet.
        asked = await web.http.post(review, data={"action": "confirm", "proposal": "4"})
        assert asked.status_code == 200 and "Bekräfta paren och meddela alla?" in asked.text
        assert "förslag 4" in asked.text and "Det går inte att ångra." in asked.text
        still = await store.proposal(definition.id)
        assert still is not None and still[0].status == "proposed"
        confirmed = await web.http.post(
            review, data={"action": "confirm", "proposal": "4", "choice": "yes"}
        )
        assert confirmed.status_code == 200 and "Paren är bekräftade" in confirmed.text
        # Told and running: the pairs meet from here on (tests/test_meetings.py).
        status = await until_phase(program, ProgramPhase.RUNNING)

    # The workflow knows the coordinator by reference only; the database by address.
    assert status.confirmed_by == people.reference_of(definition, COORDINATOR)

    # The database: the confirmed proposal, every hard rule kept, every decision recorded.
    final = await store.proposal(definition.id)
    assert final is not None
    confirmed_proposal, confirmed_pairs = final
    assert confirmed_proposal.number == 4 and confirmed_proposal.status == "confirmed"
    assert confirmed_proposal.confirmed_by == COORDINATOR
    rows = {r.id: r for r in await store.applications(definition.id)}
    experience = {ids[e]: y for e, _, _, y, _ in PEOPLE}
    for pair in confirmed_pairs:
        mentor, adept = rows[pair.mentor_application_id], rows[pair.adept_application_id]
        assert mentor.organisation_id != adept.organisation_id
        assert experience[adept.id] - experience[mentor.id] >= 10
        assert mentor.selection == adept.selection == "accepted"
        assert pair.score == round(sum(pair.breakdown.values()), 6)
    selections = Counter(r.selection for r in rows.values())
    assert selections == {"accepted": 9, "waitlisted": 3, "declined": 1}
    channels = {r.email: r.selection_channel for r in rows.values()}
    assert channels["m1@ei.example.org"] == "hr_link"
    assert channels["a2@nv.example.org"] == "cli"
    assert channels["a5@skv.example.org"] == "policy"

    # Everyone is told once, in Swedish: pair introductions naming the partner, a kind
    # word to the others, and every manager informed.
    partner = {}
    for pair in confirmed_pairs:
        partner[pair.mentor_application_id] = rows[pair.adept_application_id]
        partner[pair.adept_application_id] = rows[pair.mentor_application_id]

    async def everyone_told() -> bool:
        return all(
            len(subjects_to(mail_catcher, e)) == 2 and subjects_to(mail_catcher, f"chef-{e}")
            for e, *_ in PEOPLE
        )

    await wait_for(everyone_told, within=30)
    for email, *_ in PEOPLE:
        row = rows[ids[email]]
        told = [m for m in mail_catcher.messages() if email in m.recipients and m.calendar is None][
            -1
        ]
        body = told.body("plain")
        if row.id in partner:
            assert told.subject.startswith("Välkommen till")
            assert partner[row.id].name in body and partner[row.id].email in body
            assert "Boka ert första möte" in body and "Kick-off" in body
        elif row.selection == "declined":
            assert told.subject.startswith("Om din ansökan") and "inte erbjuda dig" in body
        elif row.selection == "accepted":
            assert "kunde inte hitta någon som passar dig" in body
        else:
            assert "står på reservlistan" in body
        (manager_mail,) = [m for m in mail_catcher.messages() if f"chef-{email}" in m.recipients]
        expected = "deltar" if row.id in partner else "reservlistan"
        if row.selection == "declined":
            expected = "inte antagen"
        assert expected in str(manager_mail.subject)
    for message in mail_catcher.messages():  # a subject is one line, never the greeting too
        assert "Hej" not in str(message.subject) and "Hello" not in str(message.subject)
    ids_sent = Counter(m.message_id for m in mail_catcher.messages())
    assert all(count == 1 for count in ids_sent.values())
    events = {e.key for e in await store.events(definition.id)}
    assert {"phase-match_review", "matching-confirmed", "outcome-notices"} <= events
    assert re.search(r"capacity-ei-\d+", " ".join(events))
    # One batch of notices per organisation, sent side by side.
    batches = [
        e.activity_task_scheduled_event_attributes.activity_id
        async for e in program.fetch_history_events()
        if e.activity_task_scheduled_event_attributes.activity_type.name == "send_outcome_notices"
    ]
    assert len(batches) == len(definition.organisations) > 1
    await keep_histories(stack.env.client, program, "capacity-and-review")


async def test_without_review_the_policy_accepts_up_to_the_cap_and_pairs_are_confirmed(
    stack: Stack,
) -> None:
    """No manager approval, HR silent (accept up to the cap), no review: pairs go out."""
    mail_catcher, store = stack.mail_catcher, stack.store
    start = await stack.env.get_current_time()
    data = yaml.safe_load((DEFINITIONS / "demo.yaml").read_text(encoding="utf-8"))
    data["approval"] = {"required": False}
    data["capacity"]["when_undecided"] = "accept_up_to_cap"
    data["capacity"]["rules"] = [{"profile": "mentor", "max_participants": 1}]
    data["matching"] = {"criteria": [{"name": "themes", "question": "motivation"}]}
    data["matching"]["hr_review"] = False
    definition = parse_definition(data, file="demo.yaml", reference_time=start)
    async with stack.running(definition) as program:
        await stack.env.sleep(timedelta(minutes=1))
        for email, profile in (
            ("first-mentor@example.org", "mentor"),
            ("second-mentor@example.org", "mentor"),
            ("adept@example.org", "adept"),
        ):
            response = await stack.apply(
                definition,
                profile,
                {
                    "name": email.split("@")[0],
                    "email": email,
                    "organisation": "demo-company",
                    "manager_name": "Boss",
                    "manager_email": f"boss-{email}",
                    "eligible_0": "yes",
                    "q_motivation": "Curious about new tools and ways of working",
                },
            )
            assert response.status_code == 200, response.text
        # Through HR's deadline and the matching to the start; the pairs run from here
        # on (tests/test_meetings.py).
        status = await stack.phase_at(program, definition.schedule.start, ProgramPhase.RUNNING)

    assert status.decisions["demo-company"].decided_by == "policy: accept_up_to_cap"
    assert status.confirmed_by == "policy: confirmed without review"
    assert not links_in(mail_catcher, "hr@demo.example.org", "r")  # nobody was asked to review
    rows = {r.email: r for r in await store.applications(definition.id)}
    # First come, first served within the cap of one mentor; adepts have no cap.
    assert rows["first-mentor@example.org"].selection == "accepted"
    assert rows["second-mentor@example.org"].selection == "waitlisted"
    assert rows["adept@example.org"].selection == "accepted"
    final = await store.proposal(definition.id)
    assert final is not None and final[0].status == "confirmed"
    (pair,) = final[1]
    assert pair.mentor_application_id == rows["first-mentor@example.org"].id
    assert pair.adept_application_id == rows["adept@example.org"].id
    assert pair.breakdown["motivation"] > 0

    async def told() -> bool:
        return all(len(subjects_to(mail_catcher, e)) == 2 for e in rows)

    await wait_for(told, within=30)
    assert subjects_to(mail_catcher, "adept@example.org")[-1].startswith("Meet your partner")
    assert subjects_to(mail_catcher, "second-mentor@example.org")[-1].startswith(
        "You are on the wait-list"
    )
