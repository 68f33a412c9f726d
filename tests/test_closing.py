"""A whole program, announcement to report, then its purge: the seed-000 pilot's shape.

Twelve leaders apply through the web form, six pairs run from October to March,
one participant withdraws, pairs answer check-ins, the closing evaluation opens
at the closing session, participants answer it through their links (once),
reminders go to the rest, the program reports to HR, and HR purges it. The
time-skipping Temporal server, the real web app over HTTP, the real SMTP
server and the real database; the report's figures are checked against counts
made here, from the database directly and from what the test itself did, and
the report page is opened in Debian's Chromium.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from sqlalchemy import text

from mentorflow.definition import ProgramDefinition, parse_definition
from mentorflow.models import ProgramPhase
from mentorflow.store import Store
from mentorflow.store.tables import Base
from tests.conftest import Stack, keep_histories, links_in, wait_for
from tests.test_meetings import (
    ADEPTS,
    DEFINITIONS,
    MENTORS,
    PARTICIPANTS,
    apply_in_the_window,
    form,
    local,
    subjects,
)

# The database matters here: these run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.database

COORDINATOR = "program@handelskammaren.example.org"
BAR_BLUE = (0x2B, 0x6C, 0xB0)  # the report's bar colour (.bar in report.html)
# What the participants answer: (overall 1-5, recommend 0-10, grow yes/no, comment).
VALUES: list[tuple[int, int, str, str]] = [
    (5, 10, "yes", "Jag lärde mig mycket om hur beslut fattas."),
    (4, 9, "yes", ""),
    (4, 7, "no", "Fler gemensamma träffar, tack."),
    (5, 9, "yes", "Nya perspektiv på digitalisering."),
    (3, 5, "no", ""),
    (4, 8, "yes", ""),
]


def closing_pilot() -> ProgramDefinition:
    """The pilot with a free-text question and a cost; approval and review by policy."""
    data = yaml.safe_load((DEFINITIONS / "lighting-pilot-2027.yaml").read_text(encoding="utf-8"))
    data["approval"] = {"required": False}
    data["capacity"]["when_undecided"] = "accept_up_to_cap"
    data["matching"]["hr_review"] = False
    data["evaluation"]["questions"].append(
        {"id": "learned", "text": "Vad tar du med dig?", "kind": "text", "required": False}
    )
    data["cost"] = {"per_person": 4000, "currency": "SEK"}
    data["retention"] = {"personal_data_after_end": "P180D"}
    return parse_definition(data, file="lighting-pilot-2027.yaml")


def evaluation_form(answers: tuple[int, int, str, str]) -> dict[str, str]:
    overall, recommend, grow, comment = answers
    return {"overall": str(overall), "recommend": str(recommend), "next": grow, "learned": comment}


async def rows(store: Store, sql: str, **values: Any) -> list[Any]:
    async with store.engine.connect() as conn:
        return list(await conn.execute(text(sql), values))


async def everything_stored(store: Store) -> str:
    """Every value of every row of every table, as one string to search in."""
    dump = []
    async with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in await conn.execute(table.select()):
                dump.append(json.dumps([str(v) for v in row], ensure_ascii=False))
    return "\n".join(dump)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing; scripts/test installs it (apt-get)")
        pytest.skip("no chromium here (scripts/test installs it as root: apt-get install chromium)")
    return found


async def screenshot(url: str, path: Path) -> str:
    """Load ``url`` in headless Chromium; save a screenshot to ``path``; return the DOM."""
    browser = chromium()
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]

    def run(*args: str) -> str:
        done = subprocess.run(
            [*common, *args], capture_output=True, text=True, timeout=90, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    # One page load: the DOM is printed, the screenshot written, by the same browser.
    return await asyncio.to_thread(
        run, f"--screenshot={path}", "--window-size=1100,2600", "--dump-dom", url
    )


async def test_a_whole_program_reports_to_hr_and_is_purged(stack: Stack, tmp_path: Path) -> None:
    mail_catcher, store, web = stack.mail_catcher, stack.store, stack.web
    definition = closing_pilot()
    async with stack.running(definition) as program:
        await apply_in_the_window(stack, definition, PARTICIPANTS)
        status = await stack.phase_at(program, local("2027-10-02T10:00"), ProgramPhase.RUNNING)
        assert status.pairs == {"active": 6}
        assert len(subjects(mail_catcher, COORDINATOR, "Rapport")) == 0

        # Pairs meet: the first two check-ins answered "yes" by some, "not yet" by one.
        await stack.sleep_until(local("2027-10-29T12:00"))
        await wait_for(lambda: all(links_in(mail_catcher, p, "k") for p in PARTICIPANTS))
        for person in (MENTORS[0], MENTORS[1], ADEPTS[3]):
            answered = await web.http.post(
                links_in(mail_catcher, person, "k")[0], data={"choice": "yes"}
            )
            assert answered.status_code == 200
        not_yet = links_in(mail_catcher, MENTORS[2], "k")[0]
        assert (await web.http.post(not_yet, data={"choice": "not_yet"})).status_code == 200
        await stack.sleep_until(local("2027-11-12T12:00"))
        await wait_for(lambda: len(set(links_in(mail_catcher, MENTORS[0], "k"))) >= 2)
        second = list(dict.fromkeys(links_in(mail_catcher, MENTORS[0], "k")))[1]
        assert (await web.http.post(second, data={"choice": "yes"})).status_code == 200

        # One participant leaves in December; their pair closes (nobody re-matched).
        leaver = ADEPTS[5]
        left = await stack.mentorflow(
            "pair", "withdraw", definition.id, leaver, "--reason", "Ny tjänst"
        )
        assert left.returncode == 0, left.stderr

        # The evaluation opens on 20 March, before the end: everyone in a pair that ran.
        await stack.sleep_until(local("2028-03-20T12:00"))
        await wait_for(
            lambda: sum(bool(links_in(mail_catcher, p, "e")) for p in PARTICIPANTS) == 10,
            within=60,
        )
        invited = [p for p in PARTICIPANTS if links_in(mail_catcher, p, "e")]
        assert leaver not in invited and len(invited) == 10
        # Three mentors and three adepts answer (which ones depends on the matching).
        mentors_in = [p for p in invited if p in MENTORS]
        adepts_in = [p for p in invited if p in ADEPTS]
        answering = dict(zip(mentors_in[:3] + adepts_in[:3], VALUES, strict=True))
        first_person = mentors_in[0]

        # Once open, the survey's opening cannot move (its closing date still can).
        refused = await stack.mentorflow(
            "program", "reschedule", definition.id, "--evaluation-opens", "2028-03-25 09:00"
        )
        assert refused.returncode == 1 and "the evaluation is already open" in refused.stderr

        # Through the links: a GET shows the form; a missing answer is asked again (422);
        # the answer is recorded once; a reused link shows the first answer (409).
        first_link = links_in(mail_catcher, first_person, "e")[0]
        shown = await web.http.get(first_link)
        assert shown.status_code == 200 and "Hur väl uppfyllde programmet" in shown.text
        assert "stänger fredag 31 mars 2028 kl. 17:00" in shown.text
        incomplete = await web.http.post(first_link, data={"overall": "9", "next": "yes"})
        assert incomplete.status_code == 422 and "Välj ett värde från 1 till 5" in incomplete.text
        for person, answers in answering.items():
            link = links_in(mail_catcher, person, "e")[0]
            sent = await web.http.post(link, data=evaluation_form(answers))
            assert sent.status_code == 200 and "Tack för dina svar" in sent.text, sent.text
        again = await web.http.post(first_link, data=evaluation_form((1, 0, "no", "Ändrat")))
        assert again.status_code == 409 and "Du har svarat" in again.text
        assert "Jag lärde mig mycket" in (await web.http.get(first_link)).text
        forged = await web.http.get(first_link[:-3] + "abc")
        assert forged.status_code == 400

        # Three days before the close, a reminder to the four who have not answered.
        await stack.sleep_until(local("2028-03-28T18:00"))
        silent = [p for p in invited if p not in answering]
        await wait_for(
            lambda: all(subjects(mail_catcher, p, "Påminnelse: slututvärdering") for p in silent)
        )
        assert not any(subjects(mail_catcher, p, "Påminnelse: slututvärdering") for p in answering)

        # The end, the close, the report.
        status = await stack.phase_at(program, local("2028-04-01T12:00"), ProgramPhase.COMPLETED)
        late = await web.http.post(
            links_in(mail_catcher, silent[0], "e")[0], data=evaluation_form((2, 2, "no", ""))
        )
        assert late.status_code == 410 and "Utvärderingen är stängd" in late.text
        await wait_for(lambda: subjects(mail_catcher, COORDINATOR, "Rapport"))
        (report_email,) = subjects(mail_catcher, COORDINATOR, "Rapport")
        (report_link,) = links_in(mail_catcher, COORDINATOR, "report")
        page = await web.http.get(report_link)
        assert page.status_code == 200
        csv_before = (await web.http.get(report_link + "/report.csv")).text
        figures = {
            (section, group, measure): value
            for section, group, measure, value in (
                line.split(",", 3) for line in csv_before.strip().splitlines()[1:]
            )
        }

        # Counted here, independently: from the database and from what the test did.
        pid = {"p": definition.id}
        applied = await rows(
            store,
            "SELECT organisation_id, profile_id, count(*) FROM applications"
            " WHERE program_id = :p GROUP BY organisation_id, profile_id",
            **pid,
        )
        for organisation, profile, count in applied:
            assert figures["participation", f"{organisation}/{profile}", "applied"] == str(count)
        in_pairs = await rows(
            store,
            "SELECT mentor_application_id, adept_application_id, status FROM pairs"
            " WHERE program_id = :p",
            **pid,
        )
        matched = {person for mentor, adept, _ in in_pairs for person in (mentor, adept)}
        completed = {
            person for mentor, adept, s in in_pairs if s == "ended" for person in (mentor, adept)
        }
        withdrawn = await rows(
            store,
            "SELECT count(*) FROM applications WHERE program_id = :p AND status = 'withdrawn'",
            **pid,
        )
        assert figures["participation", "total", "applied"] == str(len(PARTICIPANTS))
        assert figures["participation", "total", "matched"] == str(len(matched)) == "12"
        assert figures["participation", "total", "completed"] == str(len(completed)) == "10"
        assert figures["participation", "total", "withdrawn"] == str(withdrawn[0][0]) == "1"
        met = await rows(
            store,
            "SELECT c.pair_id, count(DISTINCT c.number) FROM check_ins c"
            " JOIN pairs p ON p.id = c.pair_id WHERE p.program_id = :p"
            " AND c.answer = 'yes' AND c.number <> 'pulse' GROUP BY c.pair_id",
            **pid,
        )
        per_pair = sorted([n for _, n in met] + [0] * (len(in_pairs) - len(met)))
        assert [int(figures["meetings", f"pair {i}", "meetings"]) for i in range(1, 7)] == per_pair
        pair_of = dict(
            await rows(
                store,
                "SELECT a.email, p.id FROM applications a JOIN pairs p"
                " ON a.id IN (p.mentor_application_id, p.adept_application_id)"
                " WHERE a.program_id = :p",
                **pid,
            )
        )
        said_yes = {(pair_of[person], 1) for person in (MENTORS[0], MENTORS[1], ADEPTS[3])}
        assert sum(per_pair) == len(said_yes | {(pair_of[MENTORS[0]], 2)})
        responses = await rows(
            store, "SELECT answers FROM evaluation_responses WHERE program_id = :p", **pid
        )
        stored = [a if isinstance(a, dict) else json.loads(a) for (a,) in responses]
        assert len(stored) == len(answering)
        assert figures["evaluation", "total", "invited"] == "10"
        assert figures["evaluation", "total", "responses"] == "6"
        assert figures["evaluation", "total", "response_rate"] == "0.6"
        overall = Counter(a[0] for a in answering.values())
        for value in range(1, 6):
            assert figures["evaluation", "overall", f"answer:{value}"] == str(overall[value])
        assert Counter(s["overall"] for s in stored) == overall
        recommend = [a[1] for a in answering.values()]
        nps = 100 * (sum(v >= 9 for v in recommend) - sum(v <= 6 for v in recommend)) / 6
        assert float(figures["evaluation", "recommend", "nps"]) == round(nps, 1) == 33.3
        assert figures["evaluation", "next", "answer:yes"] == "4"
        assert figures["evaluation", "next", "answer:no"] == "2"
        people_by_org = await rows(
            store,
            "SELECT organisation_id, count(*) FROM applications WHERE program_id = :p"
            " GROUP BY organisation_id",
            **pid,
        )
        for organisation, count in people_by_org:
            assert figures["cost", organisation, "cost"] == f"{count * 4000:g}"
        assert figures["cost", "total", "SEK"] == f"{12 * 4000:g}"
        # The email carries the headline figures; the page the free text, without names.
        assert "Matchade: 12. Fullföljde: 10. Avbröt: 1." in report_email.body("plain")
        assert "6 av 10 svarade" in report_email.body("plain")
        assert "Jag lärde mig mycket om hur beslut fattas." in page.text
        assert form(first_person)["name"] not in page.text and first_person not in page.text

        # The page in a real browser: a screenshot, and the charts drawn in it.
        shot = tmp_path / "report.png"
        dom = await screenshot(report_link, shot)
        assert dom.count('class="chart"') == 2 + 3  # participation, meetings, three questions
        image = Image.open(shot).convert("RGB")
        colours = {colour: count for count, colour in image.getcolors(maxcolors=1 << 24) or []}
        blue = colours.get(BAR_BLUE, 0)
        assert blue > 20_000, f"only {blue} bar pixels in {shot}"
        saved = Path(os.environ.get("MENTORFLOW_SCREENSHOTS", tmp_path)) / "report.png"
        saved.parent.mkdir(parents=True, exist_ok=True)
        if saved != shot:
            shutil.copy(shot, saved)

        # A person's own data, on request, before the purge.
        exported = await stack.mentorflow("person", "export", first_person)
        assert exported.returncode == 0, exported.stderr
        record = json.loads(exported.stdout)["records"][0]
        assert record["application"]["email"] == first_person
        assert record["evaluation"]["answers"]["learned"].startswith("Jag lärde mig")
        own = await stack.mentorflow("person", "export", MENTORS[0])
        check_ins = json.loads(own.stdout)["records"][0]["check_ins"]
        assert [(c["number"], c["role"], c["answer"]) for c in check_ins] == [
            ("1", "mentor", "yes"),
            ("2", "mentor", "yes"),
        ]  # their own answers only, not their partner's

        # HR purges now (the retention date is in September): no personal data remains.
        early = await stack.mentorflow("program", "purge", definition.id, "--yes")
        assert early.returncode == 0, early.stderr
        assert "Purged lighting-pilot-2027: 12 applications, 6 evaluation answers" in early.stdout
        result = await program.result()
        assert result.phase is ProgramPhase.PURGED
        again_purged = await stack.mentorflow("program", "purge", definition.id, "--yes")
        assert again_purged.returncode == 1 and "already been purged" in again_purged.stderr

        stored_now = await everything_stored(store)
        for person in PARTICIPANTS:
            assert person not in stored_now
            assert form(person)["name"] not in stored_now
            assert f"chef-{person}" not in stored_now  # their manager
        for _, _, _, comment in answering.values():
            if comment:
                assert comment not in stored_now
        assert "Digital omställning" not in stored_now  # application answers
        # The figures are unchanged; the page says where the free text went.
        csv_after = (await web.http.get(report_link + "/report.csv")).text
        assert csv_after == csv_before
        after = await web.http.get(report_link)
        assert "Fritextsvaren togs bort" in after.text
        assert "Jag lärde mig mycket" not in after.text
        written = tmp_path / "report.csv"
        by_cli = await stack.mentorflow("program", "report", definition.id, "-o", str(written))
        assert by_cli.returncode == 0, by_cli.stderr
        assert written.read_text(encoding="utf-8") == csv_before
        nothing = await stack.mentorflow("person", "export", first_person)
        assert json.loads(nothing.stdout)["records"] == []
    await keep_histories(stack.env.client, program, "whole-program")
