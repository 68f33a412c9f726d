"""``mentorflow dev`` and the HR CLI, end to end, as a person would use them.

The stack runs as a child process on free ports; the CLI is run as commands;
the Temporal UI's own HTTP API and the inbox page are read over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from mentorflow.children import PIDFILE, ProcessRecord, identify, is_same
from mentorflow.dev import worker_environment
from mentorflow.mail.catcher import CatchingHandler
from mentorflow.settings import Settings
from tests.conftest import free_port, links_in, wait_for
from tests.programs import demo_application, fast_definition, mentorflow, spawn_mentorflow
from worker.kinds import WorkerKind

# The managers the form and the CSV file below name.
MANAGERS = ("kim@example.org", "robin@example.org")
# Ctrl-C or SIGTERM must stop `mentorflow dev`, and every process it started, within this.
STOP_SECONDS = 15


def children_of(pid: int) -> list[ProcessRecord]:
    """The running children of ``pid``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            record = identify(int(entry.name))
            if record is not None:
                found.append(record)
    return found


def role_of(child: ProcessRecord) -> str:
    """What a child of ``mentorflow dev`` is, from its command line."""
    if Path(child.command[0]).name == "temporal":
        return "temporal"
    if child.command[-4:-2] == ["mentorflow", "worker"] and child.command[-2] == "--only":
        return f"{child.command[-1]} worker"
    return " ".join(child.command)


class DevStack:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        ports = {name: free_port() for name in ("temporal", "ui", "smtp", "web")}
        self.web = f"http://127.0.0.1:{ports['web']}"
        self.ui = f"http://127.0.0.1:{ports['ui']}"
        self.env = {
            "MENTORFLOW_DATA_DIR": str(data_dir),
            "MENTORFLOW_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
            "MENTORFLOW_TEMPORAL_UI_URL": self.ui,
            "MENTORFLOW_SMTP_PORT": str(ports["smtp"]),
            "MENTORFLOW_WEB_PORT": str(ports["web"]),
            "MENTORFLOW_PUBLIC_BASE_URL": self.web,
        }
        self.log = data_dir.parent / "dev.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.seen: dict[int, ProcessRecord] = {}  # every child seen, for the checks and cleanup

    def spawn(self) -> None:
        self.process = spawn_mentorflow("dev", env=self.env, log=self.log)

    async def start(self) -> None:
        banner = "mentorflow dev is running"
        before = self.output().count(banner)
        self.spawn()
        await wait_for(lambda: self.output().count(banner) > before, within=90)

    def children(self) -> list[ProcessRecord]:
        """The stack's running children (the Temporal dev server, the workers)."""
        assert self.process is not None
        found = children_of(self.process.pid)
        self.seen.update((child.pid, child) for child in found)
        return found

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Stop the stack with ``sig``; it must be gone within STOP_SECONDS with its children."""
        assert self.process is not None
        self.children()
        started = time.monotonic()
        self.process.send_signal(sig)
        code = self.process.wait(60)
        took = time.monotonic() - started
        self.process = None
        assert took < STOP_SECONDS, f"mentorflow dev took {took:.1f} s to stop"
        left = [role_of(child) for child in self.seen.values() if is_same(child)]
        assert not left, f"still running after mentorflow dev stopped: {left}"
        return code

    def kill_leftovers(self) -> None:
        for child in self.seen.values():
            if is_same(child):
                os.kill(child.pid, signal.SIGKILL)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return mentorflow(*args, env=self.env)

    async def inbox_subjects(self) -> list[str]:
        async with httpx.AsyncClient(base_url=self.web) as http:
            page = await http.get("/inbox")
            page.raise_for_status()
        links = page.text.split('<a href="/inbox/')[1:]
        return [html.unescape(link.split(">", 1)[1].split("</a>", 1)[0]) for link in links]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DevStack]:
    stack = DevStack(tmp_path / "data")
    yield stack
    try:
        if stack.process is not None:
            stack.stop()
    finally:
        stack.kill_leftovers()


async def test_dev_stack_runs_a_program_through_the_cli_and_resumes_after_restart(
    stack: DevStack, tmp_path: Path
) -> None:
    await stack.start()
    assert stack.ui in stack.output() and f"{stack.web}/inbox" in stack.output()
    # The workers run as two processes of their own, as in production.
    children = {role_of(child): child for child in stack.children()}
    assert set(children) == {"temporal", "workflows worker", "activities worker"}
    assert str(stack.data_dir / "temporal.db") in children["temporal"].command
    # Temporal's own SQLite file in write-ahead-log mode (mentorflow.temporal.WRITE_AHEAD_LOG).
    with contextlib.closing(sqlite3.connect(stack.data_dir / "temporal.db")) as temporal_db:
        assert temporal_db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    async with httpx.AsyncClient() as http:
        health = await http.get(f"{stack.web}/health")
    assert health.status_code == 200
    assert health.json() | {"version": None} == {
        "status": "ok",
        "database": "ok",
        "temporal": "ok",
        "version": None,
    }
    assert health.headers["referrer-policy"] == "no-referrer"
    assert health.headers["cache-control"] == "no-store"

    # A deadline far enough away that nothing before the move races it, however slowly
    # this machine starts the stack; the move below brings it near.
    file, program_id = fast_definition(
        tmp_path, opens=3, deadline=600, reminders=(20, 10), approval_gap=60
    )
    started = stack.cli("program", "start", str(file))
    assert started.returncode == 0, started.stderr
    assert f"Started program {program_id}" in started.stdout
    again = stack.cli("program", "start", str(file))
    assert again.returncode == 1
    assert "already exists" in again.stderr and "nothing was started" in again.stderr
    assert "Traceback" not in again.stderr

    # A move into the past is refused at once, with the reason; nothing changes.
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    refused = stack.cli("program", "reschedule", program_id, "--deadline", past)
    assert refused.returncode == 1 and "in the past" in refused.stderr
    assert "nothing was changed" in refused.stderr

    # The Temporal UI lists the program with its phase (read through the UI's own API).
    async def ui_shows_phase(phase: str) -> bool:
        async with httpx.AsyncClient() as http:
            response = await http.get(
                f"{stack.ui}/api/v1/namespaces/default/workflows",
                params={"query": f"ProgramId = '{program_id}' AND ProgramPhase = '{phase}'"},
            )
        return response.status_code == 200 and f"program-{program_id}" in response.text

    await wait_for(lambda: ui_shows_phase("application_window"), within=30, interval=0.5)

    async def has(subject_start: str, count: int) -> bool:
        return sum(s.startswith(subject_start) for s in await stack.inbox_subjects()) >= count

    await wait_for(lambda: has("Applications are open", 2), within=30)

    # One person applies through the form; HR imports another from a CSV file.
    async with httpx.AsyncClient(base_url=stack.web) as http:
        form = await http.get(f"/programs/{program_id}/apply", params={"profile": "mentor"})
        assert form.status_code == 200 and "Why do you want to be a mentor?" in form.text
        applied = await http.post(
            f"/programs/{program_id}/apply",
            params={"profile": "mentor"},
            data=demo_application("Alex", "alex@example.org", "kim@example.org"),
        )
    assert applied.status_code == 200 and "Thank you for your application" in applied.text
    csv_file = tmp_path / "collected.csv"
    csv_file.write_text(
        "name,email,organisation,department,profile,manager_name,manager_email,q_motivation\n"
        "Sam,sam@example.org,demo-company,IT,adept,Robin,robin@example.org,Curious\n"
        "Bad,not-an-email,demo-company,IT,adept,Robin,robin@example.org,\n",
        encoding="utf-8",
    )
    imported = stack.cli("applications", "import", str(csv_file), "--program", program_id)
    assert imported.returncode == 1  # one row is refused, the other imported
    assert f"{csv_file}:2: imported" in imported.stdout
    assert f"{csv_file}:3: email: This is not a valid email address." in imported.stderr
    assert f"{csv_file}:3: q_motivation: Please fill this in." in imported.stderr

    # Each application is its own workflow, found from its program by search attribute.
    async def ui_lists_applications(count: int) -> bool:
        async with httpx.AsyncClient() as http:
            response = await http.get(
                f"{stack.ui}/api/v1/namespaces/default/workflows",
                params={
                    "query": f"ProgramId = '{program_id}' AND WorkflowType = 'ApplicationWorkflow'"
                },
            )
        if response.status_code != 200:
            return False
        # Started by the web form and the import, not by the program: no parent.
        return len(response.json().get("executions", [])) == count

    await wait_for(lambda: ui_lists_applications(2), within=30, interval=0.5)

    # Both managers decline by the links in their emails, read from the catcher's maildir.
    def approval_links() -> list[str]:
        caught = CatchingHandler(stack.data_dir / "mail")
        return [link for manager in MANAGERS for link in links_in(caught, manager, "a")]

    await wait_for(lambda: len(approval_links()) == 2, within=30)
    async with httpx.AsyncClient(base_url=stack.web, timeout=30) as http:
        for link in approval_links():
            page = await http.get(link)
            assert page.status_code == 200 and "decline" in page.text.lower()
            declined = await http.post(link, data={"choice": "decline"})
            assert declined.status_code == 200, declined.text

    # Once the answers are on record and the applicants told, the whole stack stops
    # mid-window; the program resumes when it starts again. (Stopped while a task was
    # on its way to a worker, that task waits out its timeout, up to a minute.)
    def told() -> bool:
        status = stack.cli("program", "status", program_id, "--json")
        return status.returncode == 0 and json.loads(status.stdout)["counts"]["declined"] == 2

    await wait_for(told, within=60, interval=1)
    await wait_for(lambda: has("About your application", 2), within=30)
    assert stack.stop() == 0
    assert "stopped" in stack.output()
    await asyncio.sleep(2)
    await stack.start()

    # The deadline moves to thirty seconds from now: the running workflow's timers follow,
    # the reminders (20 s and 10 s before it) come, and the program moves on at once then,
    # since every application has its answer.
    later = (datetime.now(UTC) + timedelta(seconds=30)).isoformat(timespec="seconds")
    moved = stack.cli("program", "reschedule", program_id, "--deadline", later)
    assert moved.returncode == 0, moved.stderr
    assert "moved deadline" in moved.stdout

    status = stack.cli("program", "status", program_id, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["phase"] == "application_window"

    await wait_for(lambda: ui_shows_phase("running"), within=90, interval=1)
    listed = stack.cli("program", "list")
    assert program_id in listed.stdout and "running" in listed.stdout
    final = stack.cli("program", "status", program_id)
    assert "pairs meet and check in" in final.stdout  # what comes next
    assert f"{stack.web}/programs/{program_id}/apply" in final.stdout
    # Both managers declined.
    assert "applied: 2" in final.stdout and "declined: 2" in final.stdout
    assert re.search(r"demo-company/adept: +applied: 1, approved: 0, declined: 1", final.stdout)

    caught = CatchingHandler(stack.data_dir / "mail").messages()
    assert all(n == 1 for n in Counter(m.message_id for m in caught).values())
    subjects = Counter(s.split(":")[0] for s in await stack.inbox_subjects())
    # Two recipients: one announcement each, one notice of the moved deadline, and
    # each reminder of the final deadline (20 s and 10 s before it).
    assert subjects["Applications are open"] == 2
    assert subjects["New dates for Reverse mentoring demo"] == 2
    assert subjects["Reminder"] >= 4
    assert subjects["We received your application"] == 2
    assert subjects["Please approve or decline"] == 2

    # A message opens in the inbox with its text and its sandboxed HTML.
    async with httpx.AsyncClient(base_url=stack.web) as http:
        inbox = (await http.get("/inbox")).text
        key = inbox.split('<a href="/inbox/')[1].split('"')[0]
        message = await http.get(f"/inbox/{key}")
        body = await http.get(f"/inbox/{key}/html")
    assert message.status_code == 200 and "Plain text" in message.text
    assert body.status_code == 200 and "sandbox" in body.headers["content-security-policy"]


async def test_dev_stack_stops_in_any_state_and_starts_again_after_being_killed(
    stack: DevStack,
) -> None:
    # Ctrl-C while it starts (the Temporal dev server is up, the rest may not be).
    stack.spawn()
    await wait_for(lambda: "temporal" in map(role_of, stack.children()), within=30)
    assert stack.stop() == 0

    # Killed outright: its children go with it, and the next start takes the ports back.
    await stack.start()
    first = {role_of(child): child for child in stack.children()}
    assert set(first) == {"temporal", "workflows worker", "activities worker"}
    assert stack.process is not None
    stack.process.kill()
    stack.process.wait()
    await stack.start()
    assert "is taken" not in stack.output()
    assert not [role for role, child in first.items() if is_same(child)]
    again = {role_of(child): child for child in stack.children()}
    assert set(again) == set(first)
    assert {child.pid for child in again.values()}.isdisjoint(c.pid for c in first.values())

    # SIGTERM, as a service manager stops it, once it runs.
    assert stack.stop(signal.SIGTERM) == 0
    assert not (stack.data_dir / PIDFILE).exists()


def test_the_workers_get_the_stacks_own_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        secret_key=SecretStr("s3cret"),
        previous_secret_keys=[SecretStr("old")],
        smtp_tls=True,
        metrics_address="127.0.0.1:9464",
    )
    # Set in this process but not in the stack's settings: the workers must not see it.
    monkeypatch.setenv("MENTORFLOW_DATABASE_URL", "sqlite:////elsewhere.db")
    for kind in WorkerKind:
        environment = worker_environment(settings, kind)
        assert "MENTORFLOW_DATABASE_URL" not in environment
        with monkeypatch.context() as worker:
            for name in [name for name in os.environ if name.startswith("MENTORFLOW_")]:
                worker.delenv(name)
            for name, value in environment.items():
                worker.setenv(name, value)
            read = Settings(_env_file=None)
        # Each worker serves its metrics on a port of its own.
        port = 9464 if kind is WorkerKind.WORKFLOWS else 9465
        expected = settings.model_copy(update={"metrics_address": f"127.0.0.1:{port}"})
        assert read.model_dump() == expected.model_dump()
        assert read.effective_database_url == settings.effective_database_url


async def test_cli_explains_unreachable_temporal_and_broken_definitions(tmp_path: Path) -> None:
    env = {"MENTORFLOW_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    listed = mentorflow("program", "list", env=env)
    assert listed.returncode == 1
    assert listed.stderr.startswith(
        f"error: cannot reach Temporal at {env['MENTORFLOW_TEMPORAL_ADDRESS']}"
    )
    assert len(listed.stderr.strip().splitlines()) == 1

    dead_db = f"postgresql://mentorflow:secret@127.0.0.1:{free_port()}/mentorflow"
    upgrade = mentorflow("db", "upgrade", env={"MENTORFLOW_DATABASE_URL": dead_db})
    assert upgrade.returncode == 1
    assert upgrade.stderr.startswith(
        "error: cannot reach the database at postgresql://mentorflow:***@"
    )
    assert len(upgrade.stderr.strip().splitlines()) == 1 and "secret" not in upgrade.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text(
        (Path(__file__).parent.parent / "definitions" / "demo.yaml")
        .read_text(encoding="utf-8")
        .replace("deadline: +PT4M", "deadline: +PT40M"),
        encoding="utf-8",
    )
    for command in (("validate", str(broken)), ("program", "start", str(broken))):
        result = mentorflow(*command, env=env)
        assert result.returncode == 1
        assert f"{broken}: " in result.stderr
        assert "application.deadline" in result.stderr and "Fix:" in result.stderr
        assert "Traceback" not in result.stderr
    ok = mentorflow(
        "validate",
        *map(str, (Path(__file__).parent.parent / "definitions").glob("*.yaml")),
        env=env,
    )
    assert ok.returncode == 0 and ok.stdout.count(": ok") == 3
