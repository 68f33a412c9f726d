"""Every page a person reaches from an email, on a phone: 390 px wide, nothing runs off.

One program (the seed-000 pilot's shape, in Swedish) runs from before its window
opens to its report, with manager approval, HR's capacity decision and HR's
review of the pairs: the time-skipping Temporal server, the worker, the real web
app over HTTP, the real SMTP server and SQLite; every link is taken from an email
that arrived. On the way, each page is checked for what it says (the question
on a check-in, the answer once given, scores in words, what HR's silence does,
Swedish numbers), and opened in Debian's Chromium at 390 px: neither the page
nor any element on it may be wider than the phone. One email's HTML is opened
the same way, and the report is also checked as it prints.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``),
so nothing but the browser is needed. The screenshot of every page opened is kept
in ``test-artifacts/phone/`` when the test fails (a folder git ignores: it holds
its own ``.gitignore``); ``MENTORFLOW_SCREENSHOTS`` names another folder.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from mentorflow.definition import ProgramDefinition, parse_definition
from mentorflow.models import ProgramPhase
from mentorflow.store import migrate
from tests.conftest import Stack, links_in, until_completed, wait_for
from tests.test_meetings import (
    ADEPTS,
    COORDINATOR,
    DEFINITIONS,
    MENTORS,
    form,
    local,
    profile_of,
    subjects,
)
from workflows.program import ProgramWorkflow

PHONE = 390  # px: an iPhone 12-15's width in CSS pixels
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts" / "phone"
PEOPLE = MENTORS[:2] + ADEPTS[:3]  # two pairs, and an adept left without a mentor

# What a page at the phone's width measures: its scroll width, and every element whose
# right edge is beyond the phone's (hidden ones, of no size, left out).
MEASURE = """(() => {
  const limit = PHONE + 0.5;
  const wide = [];
  for (const el of document.querySelectorAll("body, body *")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.right > limit) {
      const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
        + (typeof el.className === "string" && el.className ? "." + el.className : "");
      const text = (el.textContent || "").trim().replace(/\\s+/g, " ").slice(0, 60);
      wide.push(name + " right=" + Math.round(box.right) + " «" + text + "»");
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, wide: wide.slice(0, 15),
          title: document.title};
})()""".replace("PHONE", str(PHONE))


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the pages are what is checked here, not the database."""
    url = f"sqlite:///{tmp_path / 'mentorflow.db'}"
    migrate(url)
    return url


def phone_pilot() -> ProgramDefinition:
    """The pilot as it comes (manager approval, HR's decision and review, the mid-point
    pulse, the closing evaluation), with a cost per person to show a grouped number."""
    data = yaml.safe_load((DEFINITIONS / "lighting-pilot-2027.yaml").read_text(encoding="utf-8"))
    data["cost"] = {"per_person": 15000, "currency": "SEK"}
    return parse_definition(data, file="lighting-pilot-2027.yaml")


# --- The browser ---------------------------------------------------------------------------


def chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("CI"):
        pytest.fail("Debian's chromium is missing; scripts/test installs it (apt-get)")
    return found


def _above_four(fd: int) -> int:
    """``fd`` moved to a number above 4 (so that giving it as fd 3 or 4 cannot clash)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Browser:
    """Headless Chromium, one tab at the phone's width, spoken to over the DevTools
    protocol on a pipe: each message a JSON object ended by a NUL byte (fds 3 and 4)."""

    def __init__(self, executable: str, profile: Path) -> None:
        # The browser's ends, above the fds 3 and 4 a small launcher gives them as.
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        to_browser, from_browser = (_above_four(fd) for fd in (to_browser, from_browser))
        launcher = (
            "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4);"
            " os.close(int(sys.argv[1])); os.close(int(sys.argv[2]));"
            " os.execvp(sys.argv[3], sys.argv[3:])"
        )
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                launcher,
                str(to_browser),
                str(from_browser),
                executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={PHONE},844",
                "about:blank",
            ],
            pass_fds=(to_browser, from_browser),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self._next = 0
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=PHONE,
            height=844,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _send(self, message: dict[str, Any]) -> None:
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise ConnectionError("Chromium closed its pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def _call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self._send(message)
        deadline = time.monotonic() + 60
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            if "method" in answer:
                self._events.append(answer)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the tab."""
        return self._call(method, self._session, **params)

    def open(self, url: str) -> None:
        """Load ``url`` in the tab and wait until it has loaded."""
        self._events.clear()
        navigated = self.call("Page.navigate", url=url)
        assert "errorText" not in navigated, f"{url}: {navigated['errorText']}"
        deadline = time.monotonic() + 60
        while not any(e["method"] == "Page.loadEventFired" for e in self._events):
            message = self._receive(deadline)
            if "method" in message:
                self._events.append(message)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        """The whole page, as wide as it really is (so an overflow shows)."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": max(size["width"], PHONE), "height": size["height"]}
        shot = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={**clip, "scale": 1},
        )
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call("Browser.close")
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, 9)
            self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


class Phone:
    """Opens pages at the phone's width and notes every one that does not fit.

    Without Chromium (outside CI) it only counts what it could not open."""

    def __init__(self, browser: Browser | None, shots: Path) -> None:
        self.browser = browser
        self.shots = shots
        self.opened: list[str] = []
        self.problems: list[str] = []

    async def check(self, name: str, url: str) -> None:
        self.opened.append(name)
        if self.browser is not None:
            await asyncio.to_thread(self._check, self.browser, name, url)

    def _check(self, browser: Browser, name: str, url: str) -> None:
        browser.open(url)
        measured = browser.evaluate(MEASURE)
        browser.screenshot(self.shots / f"{name}.png")
        if measured["scrollWidth"] > PHONE or measured["wide"]:
            self.problems.append(
                f"{name} ({measured['title']}): {measured['scrollWidth']} px wide;"
                f" beyond {PHONE} px: {measured['wide']}"
            )

    async def prints_without_the_header(self) -> bool | None:
        """Whether the page now open hides its dark header on paper (None: no browser)."""
        browser = self.browser
        if browser is None:
            return None

        def printed() -> bool:
            browser.call("Emulation.setEmulatedMedia", media="print")
            try:
                shown = browser.evaluate(
                    "getComputedStyle(document.querySelector('header')).display"
                )
            finally:
                browser.call("Emulation.setEmulatedMedia", media="")
            return bool(shown == "none")

        return await asyncio.to_thread(printed)


@contextlib.contextmanager
def phone(tmp_path: Path) -> Iterator[Phone]:
    """A phone for the test; on a failure, every screenshot it took is kept."""
    executable = chromium()
    shots = tmp_path / "phone"
    shots.mkdir()
    browser = Browser(executable, Path(tempfile.mkdtemp(dir=tmp_path))) if executable else None
    try:
        yield Phone(browser, shots)
    except BaseException:
        keep_screenshots(shots, Path(os.environ.get("MENTORFLOW_SCREENSHOTS") or ARTIFACTS))
        raise
    else:
        if os.environ.get("MENTORFLOW_SCREENSHOTS"):  # asked for: kept after a pass too
            keep_screenshots(shots, Path(os.environ["MENTORFLOW_SCREENSHOTS"]))
    finally:
        if browser is not None:
            browser.close()


def keep_screenshots(shots: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS.parent / ".gitignore"  # test-artifacts/ keeps itself out of git
    if folder.is_relative_to(ARTIFACTS.parent) and not ignore.exists():
        ignore.write_text("*\n")
    for shot in shots.glob("*.png"):
        shutil.copy(shot, folder / shot.name)


# --- The program ---------------------------------------------------------------------------


async def skip_to_phase(
    env: WorkflowEnvironment, handle: Any, phase: ProgramPhase, until: datetime
) -> None:
    """Skip time a day at a step until the program shows ``phase`` (by ``until`` at most)."""
    while (await handle.query(ProgramWorkflow.status)).phase is not phase:
        now = await env.get_current_time()
        assert now < until, f"not {phase.value} by {until}"
        await env.sleep(timedelta(days=1))
        await asyncio.sleep(0.2)


def text_of(html: str) -> str:
    """A page's visible text, roughly: tags, styles and scripts out, runs of spaces made
    one (a no-break space, as between "15" and "000" in Swedish, kept)."""
    html = re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"[ \t\r\n]+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


async def test_every_page_says_what_it_does_and_fits_a_phone(stack: Stack, tmp_path: Path) -> None:
    env, mail_catcher, store, web = stack.env, stack.mail_catcher, stack.store, stack.web
    definition = phone_pilot()
    http = web.http
    with phone(tmp_path) as screen:
        async with stack.running(definition) as program:
            await stack.recorded(definition)

            # Before the window opens, the form says when it opens (not that the
            # deadline "was" a date still to come).
            apply_url = f"{web.base}/programs/{definition.id}/apply"
            early = await http.get(apply_url)
            assert "Ansökan öppnar måndag 16 augusti 2027 kl. 08:00" in early.text, early.text
            assert "fredag 10 september 2027 kl. 17:00" in early.text
            assert "Sista ansökningsdag var" not in early.text
            await screen.check("apply-not-open", apply_url)

            # The window: the form, then five people apply.
            await stack.sleep_until(local("2027-08-17T10:00"))
            await screen.check("apply", f"{apply_url}?profile=young-leader")
            for email in PEOPLE:
                applied = await stack.apply(definition, profile_of(email), form(email))
                assert applied.status_code == 200, applied.text

            # Each manager approves from the emailed link.
            await wait_for(lambda: all(links_in(mail_catcher, f"chef-{e}", "a") for e in PEOPLE))
            approval = links_in(mail_catcher, f"chef-{PEOPLE[0]}", "a")[0]
            await screen.check("approval", approval)
            for email in PEOPLE:
                link = links_in(mail_catcher, f"chef-{email}", "a")[0]
                answered = await http.post(link, data={"choice": "approve"})
                assert answered.status_code == 200, answered.text

            # HR's decision: the page says what HR's silence would do, in words.
            await stack.sleep_until(local("2027-09-11T09:00"))
            await skip_to_phase(
                env, program, ProgramPhase.AWAITING_HR_DECISION, local("2027-09-18T18:00")
            )
            hr = {o.id: o.hr_contacts[0].email for o in definition.organisations}
            await wait_for(lambda: all(links_in(mail_catcher, hr[o], "c") for o in hr))
            capacity = links_in(mail_catcher, hr["fagerhult"], "c")[0]
            page = await http.get(capacity)
            assert page.status_code == 200, page.text
            shown = text_of(page.text)
            assert "Plats för högst 6; 3 godkända." in shown
            assert "alla godkända sökande sätts på reservlistan." in shown
            assert "Om inget beslut har skickats senast fredag 24 september 2027" in shown
            # Each choice is named as its column is (not by the value the form sends).
            rows = {r.email: r for r in await store.applications(definition.id)}
            adept = rows[ADEPTS[0]]
            assert f'aria-label="{adept.name}: Reservlista"' in page.text
            assert f'aria-label="{adept.name}: waitlisted"' not in page.text
            await screen.check("capacity", capacity)
            # Once sent, the page shows what was recorded, person by person.
            decided = await http.post(
                capacity, data={f"sel_{rows[e].id}": "accepted" for e in ADEPTS[:3]}
            )
            assert decided.status_code == 200, decided.text
            recorded = text_of(decided.text)
            assert "Antagna: 3. På reservlistan: 0. Inte antagna: 0." in recorded
            assert "Det här registrerades" in recorded
            assert f"{adept.name} (Senior ledare (adept)): antagen" in recorded
            chamber = links_in(mail_catcher, hr["handelskammaren"], "c")[0]
            decided = await http.post(
                chamber, data={f"sel_{rows[e].id}": "accepted" for e in MENTORS[:2]}
            )
            assert decided.status_code == 200, decided.text

            # The review: scores in words, criteria by their question, buttons that say
            # which pair they act on, and only what the page can do offered as such.
            await skip_to_phase(env, program, ProgramPhase.MATCH_REVIEW, local("2027-09-25T18:00"))
            await wait_for(lambda: links_in(mail_catcher, COORDINATOR, "r"))
            review = links_in(mail_catcher, COORDINATOR, "r")[0]
            page = await http.get(review)
            assert page.status_code == 200, page.text
            shown = text_of(page.text)
            assert "Förslag 1: 2 par" in shown
            # Each criterion by its question, with how far the two agree, in words.
            assert "themes" not in shown
            assert "”Vilka teman vill du prata om?”: samma svar (2,00 av 2)" in shown
            assert not re.search(r"\d\.\d\d", shown)  # decimal commas, in Swedish
            for number in (1, 2):
                assert re.search(rf'aria-label="Lås par {number}: [^"]+ och [^"]+"', page.text)
                assert re.search(rf'aria-label="Uteslut par {number}: [^"]+ och [^"]+"', page.text)
            assert "ingen mentorsplats kvar" in shown  # why the third adept is not paired
            assert "låt en mentor ta fler adepter" not in shown  # not something this page does
            assert "sätt de oparade adepterna på reservlistan" not in shown
            await screen.check("review", review)
            latest = await store.proposal(definition.id)
            assert latest is not None
            confirmed = await http.post(
                review,
                data={"action": "confirm", "proposal": str(latest[0].number), "choice": "yes"},
            )
            assert confirmed.status_code == 200, confirmed.text

            # The first check-in: the question, always; once answered, the answer.
            await stack.sleep_until(local("2027-10-16T12:00"))
            paired = [e for e in PEOPLE if e in MENTORS]
            await wait_for(lambda: all(links_in(mail_catcher, e, "k") for e in paired))
            question = "har du och"
            check_in = links_in(mail_catcher, paired[0], "k")[0]
            asked = await http.get(check_in)
            assert question in asked.text and asked.text.count('name="choice"') == 3
            await screen.check("check-in", check_in)
            chosen = await http.get(check_in, params={"answer": "yes"})
            assert question in chosen.text and "träffats sedan förra avstämningen?" in chosen.text
            assert "Bekräfta ditt svar" in chosen.text and chosen.text.count('name="choice"') == 1
            assert (await http.post(check_in, data={"choice": "yes"})).status_code == 200
            again = await http.get(check_in)
            assert again.status_code == 200 and question in again.text
            assert "Du svarade" in again.text and "Ja, vi har träffats" in again.text
            assert 'name="choice"' not in again.text
            await screen.check("check-in-answered", check_in)

            # The mid-point pulse: its question, then the answer given.
            await stack.sleep_until(local("2028-01-05T12:00"))
            await wait_for(lambda: subjects(mail_catcher, paired[0], "Halvvägs"))
            (pulse_mail,) = subjects(mail_catcher, paired[0], "Halvvägs")
            (pulse,) = set(re.findall(r"http://127\.0\.0\.1:\d+/k/[\w.\-]+", pulse_mail.body()))
            asked = await http.get(pulse)
            assert "hur värdefulla är dina möten med" in asked.text
            assert asked.text.count('name="choice"') == 5
            await screen.check("pulse", pulse)
            assert (await http.post(pulse, data={"choice": "4"})).status_code == 200
            again = await http.get(pulse)
            assert "hur värdefulla är dina möten med" in again.text and "Du svarade" in again.text
            assert 'name="choice"' not in again.text and "<li>4</li>" in again.text

            # The closing evaluation.
            await stack.sleep_until(local("2028-03-21T12:00"))
            await wait_for(lambda: links_in(mail_catcher, paired[0], "e"))
            evaluation = links_in(mail_catcher, paired[0], "e")[0]
            await screen.check("evaluation", evaluation)
            sent = await http.post(
                evaluation, data={"overall": "4", "recommend": "9", "next": "yes"}
            )
            assert sent.status_code == 200, sent.text

            # The end: the report, in Swedish numbers, on a phone and on paper.
            done = await until_completed(env, program)
            assert done.phase is ProgramPhase.COMPLETED
            await wait_for(lambda: links_in(mail_catcher, COORDINATOR, "report"))
            (report,) = links_in(mail_catcher, COORDINATOR, "report")
            page = await http.get(report)
            shown = text_of(page.text)
            assert "15\u00a0000 SEK per deltagare" in shown
            assert "(2 par, 1 träff, i snitt 0,5 per par)" in shown
            assert "1 av 4 svarade (25\u00a0%)" in shown
            await screen.check("report", report)
            assert await screen.prints_without_the_header() in (True, None)

            # One email's HTML, as a phone's mail app would show it.
            (introduction,) = subjects(mail_catcher, paired[0], "Välkommen till")
            html_file = tmp_path / "pair-introduction.html"
            html_file.write_text(introduction.body("html"), encoding="utf-8")
            await screen.check("email-pair-introduction", html_file.as_uri())

        assert screen.opened == [
            "apply-not-open",
            "apply",
            "approval",
            "capacity",
            "review",
            "check-in",
            "check-in-answered",
            "pulse",
            "evaluation",
            "report",
            "email-pair-introduction",
        ]
        assert not screen.problems, "\n".join(screen.problems)
    if screen.browser is None:
        pytest.skip("no chromium here: the pages were read, not measured at 390 px")
