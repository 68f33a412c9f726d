"""Applications and manager approval, end to end: the real web app over HTTP, the
real SMTP server, the real database, and the time-skipping Temporal server.

Every link a person clicks here is taken from an email that actually arrived.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from mentorflow.definition import load_definition
from mentorflow.links import LinkSigner, Purpose
from mentorflow.models import (
    ApplicationResult,
    ProgramPhase,
    application_workflow_id,
    participant_task_queue,
)
from mentorflow.store.tables import ApprovalDecision
from tests.conftest import Stack, keep_histories, links_in, until_completed, wait_for
from workflows.application import ApplicationWorkflow
from workflows.program import ProgramWorkflow

DEFINITIONS = Path(__file__).parent.parent / "definitions"
STOCKHOLM = ZoneInfo("Europe/Stockholm")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM)


def form_for(
    i: int, organisation: str, profile_questions: Mapping[str, object]
) -> dict[str, object]:
    return {
        "name": f"Applicant <{i}>",
        "email": f"applicant{i}@example.org",
        "organisation": organisation,
        "department": "Analys",
        "manager_name": f"Chef {i}",
        "manager_email": f"manager{i}@example.org",
        "eligible_0": "yes",
        "eligible_1": "yes",
        **profile_questions,
    }


async def test_twenty_applicants_managers_answer_by_email_link(stack: Stack) -> None:
    env, mail_catcher, store, web = stack.env, stack.mail_catcher, stack.store, stack.web
    definition = load_definition(DEFINITIONS / "cross-agency-2027.yaml")
    organisations = [o.id for o in definition.organisations]
    answers = {
        "q_motivation": "<script>alert('x')</script> Jag vill lära mig.",
        "q_years": "12",
        "q_multi_interests": ["Hållbarhet", "Ledarskap"],
    }
    async with stack.running(definition) as program:
        await stack.recorded(definition)

        # Before the window opens, the form says applications are closed.
        closed = await web.http.get(f"/programs/{definition.id}/apply")
        assert closed.status_code == 410 and "8 april 2027" in closed.text

        await stack.sleep_until(local("2027-02-16T10:00"))
        chooser = await web.http.get(f"/programs/{definition.id}/apply")
        assert chooser.status_code == 200 and "Junior mentor" in chooser.text

        # A broken form comes back with the errors by the fields and the values kept.
        broken = await stack.apply(
            definition,
            "junior-mentor",
            {
                "name": "Ann <b>",
                "email": "not-an-email",
                "organisation": "ei",
                "manager_email": "",
                "q_motivation": "Hej",
            },
        )
        assert broken.status_code == 422
        assert "Det här är inte en giltig e-postadress." in broken.text
        assert 'value="Ann &lt;b&gt;"' in broken.text and "Bekräfta detta." in broken.text
        assert await store.applications(definition.id) == []

        # Twenty people apply through the form.
        for i in range(20):
            profile = "junior-mentor" if i % 2 == 0 else "senior-adept"
            response = await stack.apply(
                definition, profile, form_for(i, organisations[i % 3], answers)
            )
            assert response.status_code == 200, response.text
            assert "Tack för din ansökan" in response.text
        # Applying again with the same email updates, never duplicates.
        again = await stack.apply(
            definition,
            "junior-mentor",
            form_for(0, organisations[0], {**answers, "q_motivation": "Uppdaterad"}),
        )
        assert again.status_code == 200 and "har uppdaterats" in again.text

        async def all_asked() -> bool:
            return all(links_in(mail_catcher, f"manager{i}@example.org", "a") for i in range(20))

        await wait_for(all_asked, within=60)
        rows = await store.applications(definition.id)
        assert len(rows) == 20
        assert (
            next(r for r in rows if r.email == "applicant0@example.org").answers["motivation"]
            == "Uppdaterad"
        )

        # Scanners and people open links: GET and HEAD never change anything.
        for i in range(20):
            link = links_in(mail_catcher, f"manager{i}@example.org", "a")[0]
            assert (await web.http.head(link)).status_code == 200
            page = await web.http.get(link)
            assert page.status_code == 200
            assert f"Chef {i}" in page.text and "Applicant &lt;" in page.text
            assert page.headers["referrer-policy"] == "no-referrer"
            assert page.headers["cache-control"] == "no-store"
        for i in range(20):
            handle: WorkflowHandle[ApplicationWorkflow, ApplicationResult] = (
                env.client.get_workflow_handle_for(
                    ApplicationWorkflow.run, application_workflow_id(definition.id, rows[i].id)
                )
            )
            assert (await handle.query(ApplicationWorkflow.status)).state == "awaiting_manager"
            assert await store.decisions(rows[i].id) == []
        # Applications run on their own queue, so the program's tasks never wait behind them.
        assert (await handle.describe()).task_queue == participant_task_queue(stack.task_queue)
        assert {r.status for r in await store.applications(definition.id)} == {"awaiting_approval"}

        # Managers 0-7 approve, 8-12 decline; 13 and 14 withdraw; 15-19 stay silent.
        by_email = {r.email: r for r in await store.applications(definition.id)}
        for i in range(13):
            link = links_in(mail_catcher, f"manager{i}@example.org", "a")[0]
            choice = "approve" if i < 8 else "decline"
            answer = await web.http.post(link, data={"choice": choice})
            assert answer.status_code == 200, answer.text
        # A double POST is one decision; the second click is told it was answered.
        link0 = links_in(mail_catcher, "manager0@example.org", "a")[0]
        second = await web.http.post(link0, data={"choice": "decline"})
        assert second.status_code == 409 and "godkänd" in second.text
        for i in (13, 14):
            withdraw = links_in(mail_catcher, f"applicant{i}@example.org", "w")[0]
            assert (await web.http.get(withdraw)).status_code == 200
            done = await web.http.post(withdraw, data={"choice": "withdraw"})
            assert done.status_code == 200 and "återkallad" in done.text.lower()

        # Reminders to the silent managers 3 days and 1 day before answer-by (15 April 17:00).
        async def reminders(i: int) -> int:
            handle: WorkflowHandle[ApplicationWorkflow, ApplicationResult] = (
                env.client.get_workflow_handle_for(
                    ApplicationWorkflow.run,
                    application_workflow_id(
                        definition.id, by_email[f"applicant{i}@example.org"].id
                    ),
                )
            )
            return (await handle.query(ApplicationWorkflow.status)).reminders_sent

        await stack.sleep_until(local("2027-04-12T16:00"))
        assert [await reminders(i) for i in range(15, 20)] == [0] * 5
        await stack.sleep_until(local("2027-04-12T18:00"))
        assert [await reminders(i) for i in range(15, 20)] == [1] * 5
        await stack.sleep_until(local("2027-04-14T18:00"))
        assert [await reminders(i) for i in range(15, 20)] == [2] * 5
        assert [await reminders(i) for i in range(13)] == [0] * 13

        # At answer-by, silence escalates to the organisation's HR (the definition says so).
        await stack.sleep_until(local("2027-04-15T18:00"))
        hr = definition.organisations[15 % 3].hr_contacts[0].email
        hr_links = links_in(mail_catcher, hr, "a")
        assert hr_links, "HR got no escalation"
        # A manager's link no longer answers an escalated application.
        stale = links_in(mail_catcher, "manager15@example.org", "a")[0]
        assert (await web.http.post(stale, data={"choice": "approve"})).status_code == 403
        # HR approves one of them (applicant 15); the rest stay silent until HR's deadline.
        target = by_email["applicant15@example.org"].id
        escalated = [link for link in hr_links if (await web.http.get(link)).status_code == 200]
        mine = None
        for link in escalated:
            if "Applicant &lt;15&gt;" in (await web.http.get(link)).text:
                mine = link
        assert mine is not None
        assert (await web.http.post(mine, data={"choice": "approve"})).status_code == 200

        status = await until_completed(env, program)
        # After the deadline the form says applications are closed, with the deadline.
        late = await web.http.get(f"/programs/{definition.id}/apply", params={"profile": "x"})
        assert late.status_code == 410 and "Ansökan är stängd" in late.text
        assert "torsdag 8 april 2027 kl. 23:59" in late.text
        refused = await stack.apply(
            definition, "junior-mentor", form_for(99, organisations[0], answers)
        )
        assert refused.status_code == 410

    assert status.phase is ProgramPhase.COMPLETED
    totals = {
        k: status.counts[k] for k in ("applied", "approved", "declined", "withdrawn", "pending")
    }
    assert totals == {"applied": 20, "approved": 9, "declined": 9, "withdrawn": 2, "pending": 0}

    # The counts agree with the database, organisation by organisation.
    rows = await store.applications(definition.id)
    from_db: dict[str, Counter[str]] = {}
    for row in rows:
        from_db.setdefault(f"{row.organisation_id}/{row.profile_id}", Counter())[row.status] += 1
    for key, counts in status.applications.items():
        assert counts["applied"] == sum(from_db[key].values())
        for outcome in ("approved", "declined", "withdrawn"):
            assert counts[outcome] == from_db[key][outcome], (key, outcome)
    decisions = await store.decisions(target)
    assert [(d.decision, d.channel, d.decided_by) for d in decisions] == [
        ("approved", "hr_link", hr)
    ]
    first = await store.decisions(by_email["applicant0@example.org"].id)
    assert [(d.decision, d.channel, d.decided_by) for d in first] == [
        ("approved", "email_link", "manager0@example.org")
    ]
    silent = await store.decisions(by_email["applicant16@example.org"].id)
    assert [(d.decision, d.channel) for d in silent] == [("declined", "policy")]

    # Each declined applicant (by the manager, or by silence and HR's silence) is told
    # once, kindly, in the program's language; nobody else is.
    def subjects_to(i: int) -> list[str]:
        return [
            m.subject
            for m in mail_catcher.messages()
            if f"applicant{i}@example.org" in m.recipients
        ]

    status_of = {row.email: row.status for row in rows}
    declined = [i for i in range(20) if status_of[f"applicant{i}@example.org"] == "declined"]
    assert declined == [8, 9, 10, 11, 12, 16, 17, 18, 19]
    for i in range(20):
        told = [s for s in subjects_to(i) if s.startswith("Om din ansökan")]
        assert len(told) == (1 if i in declined else 0), (i, subjects_to(i))

    # Every email once; nothing anyone typed turned into markup.
    caught = mail_catcher.messages()
    assert all(n == 1 for n in Counter(m.message_id for m in caught).values())
    assert not any("<script>" in m.body("html") for m in caught)
    assert not any("Applicant <" in m.body("html") for m in caught)
    await keep_histories(env.client, program, "manager-answers")


async def test_every_bad_link_is_refused_politely_and_changes_nothing(stack: Stack) -> None:
    env, mail_catcher, store, web = stack.env, stack.mail_catcher, stack.store, stack.web
    start = await env.get_current_time()
    definition = load_definition(DEFINITIONS / "demo.yaml", reference_time=start)

    async def apply(i: int, manager: str) -> httpx.Response:
        return await stack.apply(
            definition,
            "mentor",
            {
                "name": f"Person {i}",
                "email": f"p{i}@example.org",
                "organisation": "demo-company",
                "manager_name": manager.split("@")[0],
                "manager_email": manager,
                "eligible_0": "yes",
                "q_motivation": "Curious",
            },
        )

    def first_link(recipient: str, kind: str) -> str:
        return stack.links(recipient, kind)[0]

    async with stack.running(definition) as program:
        await env.sleep(timedelta(seconds=30))  # the window opens 20 s after the start
        for i in range(4):
            assert (await apply(i, f"boss{i}@example.org")).status_code == 200

        async def asked() -> bool:
            return all(links_in(mail_catcher, f"boss{i}@example.org", "a") for i in range(4))

        await wait_for(asked, within=30)
        rows = {r.email: r for r in await store.applications(definition.id)}

        async def decisions(i: int) -> list[ApprovalDecision]:
            return await store.decisions(rows[f"p{i}@example.org"].id)

        async def recorded(i: int, expected: list[str]) -> bool:
            return [d.decision for d in await decisions(i)] == expected

        # Forged: a changed signature, on GET and POST alike.
        good = first_link("boss0@example.org", "a")
        forged = good[:-3] + ("xyz" if not good.endswith("xyz") else "abc")
        for method in ("GET", "POST"):
            response = await web.http.request(method, forged, data={"choice": "approve"})
            assert response.status_code == 400 and "This link is not valid" in response.text
        # Wrong purpose: applicant 0's withdrawal token used as an approval link.
        token = first_link("p0@example.org", "w").rsplit("/", 1)[1]
        wrong = await web.http.post(f"/a/{token}", data={"choice": "approve"})
        assert wrong.status_code == 400
        assert await decisions(0) == []

        # Reused: the second POST of an answered link is told the answer; one decision.
        assert (await web.http.post(good, data={"choice": "approve"})).status_code == 200
        reused = await web.http.post(good, data={"choice": "decline"})
        assert reused.status_code == 409 and "already been answered: approved" in reused.text
        # A click returns once the workflow took the answer; it records it just after.
        await wait_for(lambda: recorded(0, ["approved"]))
        assert [d.decision for d in await decisions(0)] == ["approved"]

        # After withdrawal, the manager's link says so and changes nothing.
        withdraw = first_link("p1@example.org", "w")
        assert (await web.http.post(withdraw, data={"choice": "withdraw"})).status_code == 200
        after = await web.http.post(
            first_link("boss1@example.org", "a"), data={"choice": "approve"}
        )
        assert after.status_code == 409 and "withdrawn by the applicant" in after.text
        assert [d.decision for d in await decisions(1)] == ["withdrawn"]

        # Another approver's token: applicant 2 names a new manager; the old link stops.
        assert (await apply(2, "newboss2@example.org")).status_code == 200
        await wait_for(lambda: links_in(mail_catcher, "newboss2@example.org", "a"), within=30)
        # The applicant is told the change was saved (and who is asked now), once.
        await wait_for(
            lambda: [
                m
                for m in mail_catcher.messages()
                if "p2@example.org" in m.recipients and "application is updated" in m.subject
            ],
            within=30,
        )
        old = await web.http.post(first_link("boss2@example.org", "a"), data={"choice": "approve"})
        assert old.status_code == 403 and "not for you" in old.text
        assert await decisions(2) == []
        new = await web.http.post(
            first_link("newboss2@example.org", "a"), data={"choice": "decline"}
        )
        assert new.status_code == 200
        await wait_for(lambda: recorded(2, ["declined"]))
        assert [(d.decision, d.decided_by) for d in await decisions(2)] == [
            ("declined", "newboss2@example.org")
        ]

        # Expired: boss 3's link, as it would be after its answer-by time. (The web app
        # checks expiry on the wall clock, which the time-skipping server does not move,
        # so the expired twin of the emailed link is signed here with the app's keys.)
        emailed = LinkSigner(stack.worker_settings.secret_keys).check(
            first_link("boss3@example.org", "a").rsplit("/", 1)[1], Purpose.APPROVAL
        )
        stale_token = LinkSigner(stack.worker_settings.secret_keys).make(
            program_id=emailed.program_id,
            application_id=emailed.application_id,
            purpose=Purpose.APPROVAL,
            email="boss3@example.org",
            expires_at=datetime.now(UTC) - timedelta(minutes=1),
        )
        for method in ("GET", "POST"):
            expired = await web.http.request(
                method, f"/a/{stale_token}", data={"choice": "approve"}
            )
            assert expired.status_code == 410 and "This link has expired" in expired.text
            assert "hr@demo.example.org" in expired.text  # who gives a new link or a decision
        assert await decisions(3) == []

        # After the program is cancelled, a click says the program is closed.
        await program.cancel()
        await wait_for(lambda: _closed(env, definition.id, rows["p0@example.org"].id), within=30)
        closed = await web.http.post(first_link("p0@example.org", "w"), data={"choice": "withdraw"})
        assert closed.status_code == 410 and "The program is closed" in closed.text
        assert [d.decision for d in await decisions(0)] == ["approved"]
        await wait_for(lambda: _closed(env, definition.id, rows["p3@example.org"].id), within=30)
        boss3 = first_link("boss3@example.org", "a")
        for method in ("GET", "POST"):
            late = await web.http.request(method, boss3, data={"choice": "approve"})
            assert late.status_code == 410 and "The program is closed" in late.text
        assert await decisions(3) == []


async def _closed(env: WorkflowEnvironment, program_id: str, application_id: str) -> bool:
    handle: WorkflowHandle[ApplicationWorkflow, ApplicationResult] = (
        env.client.get_workflow_handle_for(
            ApplicationWorkflow.run, application_workflow_id(program_id, application_id)
        )
    )
    return (await handle.query(ApplicationWorkflow.status)).program_closed


async def test_an_approved_applicant_may_withdraw_after_the_program_moved_on(
    stack: Stack,
) -> None:
    env, mail_catcher, store, web = stack.env, stack.mail_catcher, stack.store, stack.web
    start = await env.get_current_time()
    definition = load_definition(DEFINITIONS / "demo.yaml", reference_time=start)
    async with stack.running(definition) as program:
        await env.sleep(timedelta(seconds=30))
        applied = await stack.apply(
            definition,
            "adept",
            {
                "name": "Vera",
                "email": "vera@example.org",
                "organisation": "demo-company",
                "manager_name": "Boss",
                "manager_email": "boss@example.org",
                "eligible_0": "yes",
                "q_motivation": "New views",
            },
        )
        assert applied.status_code == 200
        await wait_for(lambda: links_in(mail_catcher, "boss@example.org", "a"), within=30)
        approve = links_in(mail_catcher, "boss@example.org", "a")[0]
        assert (await web.http.post(approve, data={"choice": "approve"})).status_code == 200
        # Every answer is in: after the deadline (+4 min) the program moves on and ends.
        # (Sleep exactly; awaiting the result would let the server skip past the start.)
        await env.sleep(start + timedelta(minutes=5) - await env.get_current_time())
        status = await program.query(ProgramWorkflow.status)
        assert status.phase is ProgramPhase.AWAITING_HR_DECISION
        # The program starts later (+10 min), so the applicant may still withdraw.
        withdraw = links_in(mail_catcher, "vera@example.org", "w")[0]
        done = await web.http.post(withdraw, data={"choice": "withdraw"})
        assert done.status_code == 200 and "withdrawn" in done.text
        (row,) = await store.applications(definition.id)
        assert row.status == "withdrawn"
        assert [d.decision for d in await store.decisions(row.id)] == ["approved", "withdrawn"]
        handle: WorkflowHandle[ApplicationWorkflow, ApplicationResult] = (
            env.client.get_workflow_handle_for(
                ApplicationWorkflow.run, application_workflow_id(definition.id, row.id)
            )
        )
        assert (await handle.result()).outcome.value == "withdrawn"


async def test_a_cancelled_program_ends_its_applications_and_tells_everyone_once(
    stack: Stack,
) -> None:
    """Seen before: after `program cancel`, managers got reminders minutes later and the
    applications were recorded as declined by policy; only the announcement list was told."""
    env, mail_catcher, store, web = stack.env, stack.mail_catcher, stack.store, stack.web
    definition = load_definition(DEFINITIONS / "cross-agency-2027.yaml")
    organisations = [o.id for o in definition.organisations]
    answers = {"q_motivation": "Hej.", "q_years": "3", "q_multi_interests": ["Ledarskap"]}
    async with stack.running(definition) as program:
        await stack.sleep_until(local("2027-02-16T10:00"))
        for i in range(2):
            response = await stack.apply(
                definition, "junior-mentor", form_for(i, organisations[0], answers)
            )
            assert response.status_code == 200, response.text
        await wait_for(
            lambda: all(links_in(mail_catcher, f"manager{i}@example.org", "a") for i in range(2))
        )
        # Manager 1 approves; manager 0 has not answered when HR cancels the program.
        link = links_in(mail_catcher, "manager1@example.org", "a")[0]
        assert (await web.http.post(link, data={"choice": "approve"})).status_code == 200
        rows = {r.email: r for r in await store.applications(definition.id)}

        async def recorded_approved() -> bool:
            row = await store.application(rows["applicant1@example.org"].id)
            return row is not None and row.status == "approved"

        await wait_for(recorded_approved)
        await program.cancel()
        with pytest.raises(WorkflowFailureError):
            await program.result()
        status = await program.query(ProgramWorkflow.status)

        async def applications_ended() -> bool:
            for row in rows.values():
                handle = env.client.get_workflow_handle(
                    application_workflow_id(definition.id, row.id)
                )
                described = await handle.describe()
                if described.status is None or described.status.name != "COMPLETED":
                    return False
            return True

        await wait_for(applications_ended)
        # Past every reminder and answer-by: nothing more is sent, nothing is decided.
        before = len(mail_catcher.messages())
        await stack.sleep_until(local("2027-04-20T12:00"))
        late = mail_catcher.messages()[before:]

    assert status.phase is ProgramPhase.CANCELLED
    assert [(m.recipients, m.subject) for m in late] == []
    assert {r.status for r in await store.applications(definition.id)} == {"cancelled"}
    assert [d.decision for d in await store.decisions(rows["applicant0@example.org"].id)] == []

    def cancelled_to(address: str) -> int:
        return sum(
            1
            for m in mail_catcher.messages()
            if address in m.recipients and m.subject.startswith("Inställt:")
        )

    # Once each: the applicants, the manager still asked, HR; not the manager who answered.
    assert cancelled_to("applicant0@example.org") == 1
    assert cancelled_to("manager0@example.org") == 1
    assert cancelled_to("applicant1@example.org") == 1
    assert cancelled_to("manager1@example.org") == 0
    for contact in [*definition.coordinators(), *definition.organisations[0].hr_contacts]:
        assert cancelled_to(str(contact.email)) == 1, contact.email
    await keep_histories(env.client, program, "cancelled-program")
