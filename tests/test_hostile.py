"""Hostile input, misconfiguration and outages get a clear answer, never a crash (issue 21).

The corpus is in ``tests/hostile/``: broken definitions (each says on its first line
the field its message must name), hostile values for the application form
(``forms.json``) and hostile CSV files (``csv.json``); ``<<text*count>>`` in a value
stands for ``text`` repeated ``count`` times. Everything runs in this process (the
CLI through typer's runner), so the whole corpus takes seconds; a few cases also run
as real child processes, to see what a person sees on the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from mentorflow import cli, limits
from mentorflow.applications import check_application
from mentorflow.codec import compact_data_converter
from mentorflow.definition import (
    DefinitionError,
    Language,
    ProgramDefinition,
    definition_from_text,
    load_definition,
)
from mentorflow.links import LinkSigner, Purpose
from mentorflow.settings import DEVELOPMENT_SECRET_KEY, Settings, with_local_signing_key
from mentorflow.store import Store
from mentorflow.temporal import binary
from mentorflow.web import outage
from mentorflow.web.app import serve
from tests.conftest import free_port
from tests.programs import DEMO, demo_application, record_pair, record_program
from tests.test_web import AbortingTemporal, BusyTemporal

# The database matters here: these run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.database

HOSTILE = Path(__file__).parent / "hostile"
DEFINITIONS = sorted((HOSTILE / "definitions").glob("*.yaml"))
FORMS: list[dict[str, str]] = json.loads((HOSTILE / "forms.json").read_text(encoding="utf-8"))
CSVS: list[dict[str, Any]] = json.loads((HOSTILE / "csv.json").read_text(encoding="utf-8"))
PATIENCE = 5.0  # seconds: every hostile input is answered within this


def expand(text: str) -> str:
    """``<<text*count>>`` written out."""
    return re.sub(r"<<(.+?)\*(\d+)>>", lambda m: m.group(1) * int(m.group(2)), text)


def expected_field(path: Path) -> str:
    first = path.read_text(encoding="utf-8", errors="replace").splitlines()[0]
    match = re.fullmatch(r"# field: (.+)", first)
    assert match, f"{path.name}: the first line names the field its message must name"
    return match.group(1)


def invoke(*args: str, env: dict[str, str | None] | None = None) -> tuple[Result, float]:
    """The command in this process; (its result, how long it took)."""
    started = time.monotonic()
    result = CliRunner().invoke(cli.app, list(args), env=env)
    return result, time.monotonic() - started


def assert_one_clear_answer(result: Result) -> None:
    """Refused as the command's ``main`` refuses: exit 1 (or a ``Failure``, which ``main``
    prints as one line), never another exception, never a traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit | cli.Failure), repr(
        result.exception
    )
    if result.exception is None or isinstance(result.exception, SystemExit):
        assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output


# --- Definitions ------------------------------------------------------------------------------


def test_the_corpus_is_as_large_as_promised() -> None:
    assert len(DEFINITIONS) + len(GENERATED) >= 50
    assert len(FORMS) + len(CSVS) >= 30


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.stem)
def test_a_broken_definition_is_refused_quickly_naming_its_field(path: Path) -> None:
    field = expected_field(path)
    result, took = invoke("validate", str(path))
    assert took < PATIENCE
    assert_one_clear_answer(result)
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}: "), result.stderr
    assert any(line.startswith(f"  - {field}") and "Fix: " in line for line in lines[1:]), (
        result.stderr
    )


def test_program_start_refuses_every_broken_definition_before_connecting() -> None:
    # No Temporal anywhere: each is refused while it is read.
    env: dict[str, str | None] = {"MENTORFLOW_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    for path in DEFINITIONS:
        result, took = invoke("program", "start", str(path), env=env)
        assert took < PATIENCE, path.name
        assert_one_clear_answer(result)
        assert "Nothing was started." in result.stderr, (path.name, result.output)


def _demo() -> str:
    return DEMO.read_text(encoding="utf-8")


def _huge_description() -> str:
    # program start used to fail on it with "RPCError: Blob data size exceeds limit".
    return _demo().replace("description: A short", "description: " + "x" * 4 * 1024 * 1024)


def _huge_name() -> str:
    return _demo().replace("name: Reverse mentoring demo", "name: " + "N" * 200_000)


def _heavy_payload() -> str:
    # Every field within its own limit, but together past what the workflow may carry.
    data = yaml.safe_load(_demo())
    session = dict(data["schedule"]["kickoff"], description="d" * limits.TEXT_LIMIT)
    data["schedule"]["sessions"] = [
        dict(session, id=f"session-{i}", title="T" * limits.NAME_LIMIT) for i in range(100)
    ]
    data["schedule"]["kickoff"]["starts"] = data["schedule"]["start"] = "+PT10M"
    for profile in data["profiles"]:
        profile["description"] = "p" * limits.DESCRIPTION_LIMIT
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


GENERATED = {
    "four-megabyte-description": (_huge_description, "(file)"),
    "name-of-200000-characters": (_huge_name, "name"),
    "past-the-workflow-payload": (_heavy_payload, "(file)"),
}


@pytest.mark.parametrize("case", sorted(GENERATED))
def test_a_generated_monster_is_refused_by_validate_and_program_start(
    case: str, tmp_path: Path
) -> None:
    make, field = GENERATED[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(make(), encoding="utf-8")
    for command in (["validate"], ["program", "start"]):
        result, took = invoke(*command, str(path))
        assert took < PATIENCE
        assert_one_clear_answer(result)
        assert f"  - {field}" in result.stderr, result.stderr


def test_paths_that_are_not_definition_files_get_the_right_fix(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: Sjöberg\n".encode("latin-1"))
    expected = {
        tmp_path: "is a folder, not a file. Fix: give the path of a definition file",
        fifo: "is not a regular file",
        Path("/dev/zero"): "is not a regular file",
        latin: "is not UTF-8 text (byte 0xf6 at position 8). Fix: save it as UTF-8 text",
        tmp_path / "missing.yaml": "the file does not exist. Fix: check the path",
    }
    for path, says in expected.items():
        result, took = invoke("validate", str(path))
        assert took < PATIENCE
        assert_one_clear_answer(result)
        assert says in result.stderr, result.stderr
    # The "save it as UTF-8 text" hint only where it fits.
    assert "UTF-8" not in invoke("validate", str(tmp_path))[0].stderr


def test_the_terminal_shows_one_message_and_no_traceback(tmp_path: Path) -> None:
    """As a person runs it: a child process, its real stderr."""
    bomb, brackets = (next(p for p in DEFINITIONS if n in p.name) for n in ("bomb", "brackets"))
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "mentorflow", "validate", str(bomb), str(brackets)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert time.monotonic() - started < 2 * PATIENCE
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and "RecursionError" not in run.stderr
    assert f"{bomb}: 1 problem" in run.stderr and f"{brackets}: 1 problem" in run.stderr


# Structural mutations of the demo definition's text: lines removed, repeated, moved,
# re-indented, cut, and hostile YAML put in (aliases, tags, anchors, brackets, documents).
_DEMO_LINES = _demo().splitlines()
_SNIPPETS = [
    "&a",
    "*a",
    "&a [*a]",
    "!!python/object/apply:os.system [ls]",
    "!!binary 'AAAA'",
    "!!set {a, b}",
    "[" * 60,
    "]",
    "{",
    "}",
    "- ",
    "? [a, b]",
    ": :",
    "<<: *a",
    "<<: {name: merged}",
    "---",
    "...",
    "%YAML 1.1",
    "'",
    '"',
    "|",
    ">",
    "\t",
    "\u202e",
    "\\0",
    '"\\0"',
    '"\\ud800"',
    "9" * 5000,
    "1",
    "true",
    "null",
    "~",
    ".inf",
    "PT0.000001S",
    "P1M",
    "+P999999999D",
    "0001-01-01 00:00",
    "language: sv",
    "id: demo",
    'a: &x ["l","l","l","l","l","l","l","l","l"]',
    "b: &y [*x,*x,*x,*x,*x,*x,*x,*x,*x]",
    "c: &z [*y,*y,*y,*y,*y,*y,*y,*y,*y]",
    "d: [*z,*z,*z,*z,*z,*z,*z,*z,*z]",
]


@st.composite
def _mutated_text(draw: st.DrawFn) -> str:
    lines = list(_DEMO_LINES)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        operation = draw(
            st.sampled_from(
                ["delete", "repeat", "swap", "indent", "dedent", "insert", "value", "cut", "char"]
            )
        )
        if not lines:
            lines = [draw(st.sampled_from(_SNIPPETS))]
        elif operation == "delete":
            del lines[at]
        elif operation == "repeat":
            lines.insert(at, lines[at])
        elif operation == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif operation == "indent":
            lines[at] = "  " * draw(st.integers(1, 3)) + lines[at]
        elif operation == "dedent":
            lines[at] = lines[at][2:] if lines[at].startswith("  ") else lines[at]
        elif operation == "insert":
            indent = "  " * draw(st.integers(0, 2))
            lines.insert(at, indent + draw(st.sampled_from(_SNIPPETS)))
        elif operation == "value":
            key, sep, _ = lines[at].partition(": ")
            lines[at] = f"{key}{sep or ': '}{draw(st.sampled_from(_SNIPPETS))}"
        elif operation == "cut":
            text = "\n".join(lines)
            lines = text[: draw(st.integers(0, len(text)))].splitlines()
        else:
            line = lines[at]
            where = draw(st.integers(0, len(line)))
            character = draw(st.sampled_from(["\x00", "\x07", "\u202e", "\t", "#", "&", "*", "!"]))
            lines[at] = line[:where] + character + line[where:]
    return "\n".join(lines) + "\n"


@settings(
    max_examples=300,
    deadline=timedelta(seconds=PATIENCE),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=_mutated_text())
def test_structural_mutations_fail_only_with_a_clear_definition_error(text: str) -> None:
    try:
        definition_from_text(text, file="mutated.yaml")
    except DefinitionError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.field and problem.problem and problem.fix
        assert len(error.render()) < 100_000


# --- The application form ---------------------------------------------------------------------


def _form_with(case: dict[str, str]) -> dict[str, Any]:
    form: dict[str, Any] = demo_application("Kim Doe", "kim@example.org", "chef@example.org")
    form[case["field"]] = expand(case["value"]).strip()
    return form


@pytest.mark.parametrize("case", FORMS, ids=lambda c: c["case"])
def test_a_hostile_form_value_gets_a_field_error(case: dict[str, str]) -> None:
    definition = load_definition(DEMO)
    started = time.monotonic()
    errors = check_application(definition, "mentor", _form_with(case))
    assert time.monotonic() - started < PATIENCE
    assert case["field"] in errors, errors
    assert case["says"].lower() in errors[case["field"]].lower(), errors[case["field"]]


def test_the_field_errors_are_in_the_programs_language() -> None:
    definition = load_definition(DEMO).model_copy(update={"language": Language.SV})
    form = demo_application("K" * 300, "kim@example.org", "chef@example.org")
    form["q_motivation"] = "Nyfiken\u202e"
    errors = check_application(definition, "mentor", form)
    assert errors["name"] == "Korta av texten till högst 200 tecken (den har 300)."
    assert "U+202E" in errors["q_motivation"] and "Skriv in texten igen" in errors["q_motivation"]
    errors = check_application(definition, "mentor", {**form, "q_motivation": "x" * 10_001})
    assert (
        errors["q_motivation"]
        == "Korta av texten till högst 10\u00a0000 tecken (den har 10\u00a0001)."
    )


@contextlib.asynccontextmanager
async def web_app(
    settings_: Settings, temporal: Any, store: Store
) -> AsyncIterator[httpx.AsyncClient]:
    """The web app under uvicorn, whether or not its /health is happy."""
    stop, started = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(
        serve(settings_, stop, temporal=temporal, store=store, started=started)
    )
    try:
        await asyncio.wait_for(started.wait(), timeout=20)
        async with httpx.AsyncClient(base_url=settings_.public_base_url, timeout=60) as http:
            yield http
    finally:
        stop.set()
        await server


def web_settings(**overrides: Any) -> Settings:
    port = free_port()
    return Settings(web_port=port, public_base_url=f"http://127.0.0.1:{port}", **overrides)


async def test_hostile_form_posts_get_the_form_back_and_nothing_is_stored(store: Store) -> None:
    """Over HTTP, on SQLite and PostgreSQL (where a NUL was a psycopg.DataError, a 500)."""
    definition = load_definition(DEMO).model_copy(update={"id": f"forms-{uuid.uuid4().hex[:8]}"})
    await record_program(store, definition)
    path = f"/programs/{definition.id}/apply"
    async with web_app(web_settings(), BusyTemporal(), store) as http:
        for case in FORMS:
            started = time.monotonic()
            answer = await http.post(path, params={"profile": "mentor"}, data=_form_with(case))
            assert time.monotonic() - started < PATIENCE, case["case"]
            assert answer.status_code == 422, (case["case"], answer.status_code)
            assert f'id="{case["field"]}-error"' in answer.text, case["case"]
            assert "Traceback" not in answer.text
        # A hostile address: a NUL in the program id, no profile, no such page.
        nul = await http.get("/programs/%00/apply")
        no_profile = await http.post(path, data=_form_with(FORMS[0]))
        nowhere = await http.get("/programs/x/nowhere")
    assert await store.applications(definition.id) == []
    assert nul.status_code == 404 and "There is no such program" in nul.text
    # FastAPI would answer these in JSON; people get the program's page.
    assert no_profile.status_code == 400 and no_profile.headers["content-type"].startswith(
        "text/html"
    )
    assert "This link is not valid" in no_profile.text and definition.name in no_profile.text
    assert nowhere.status_code == 404 and "Page not found" in nowhere.text


async def test_an_oversized_request_gets_the_programs_page_not_json(store: Store) -> None:
    definition = load_definition(DEMO).model_copy(
        update={"id": f"big-{uuid.uuid4().hex[:8]}", "language": Language.SV}
    )
    await record_program(store, definition)
    path = f"/programs/{definition.id}/apply"
    big = "x" * (limits.REQUEST_LIMIT_BYTES + 1)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"name=" + b"x" * limits.REQUEST_LIMIT_BYTES

    async with web_app(web_settings(), BusyTemporal(), store) as http:
        declared = await http.post(path, params={"profile": "mentor"}, files={"name": big})
        streamed = await http.post(
            path,
            params={"profile": "mentor"},
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    for answer in (declared, streamed):
        assert answer.status_code == 413, answer.text[:300]
        assert answer.headers["content-type"].startswith("text/html")
        assert "Formuläret är för stort" in answer.text and definition.name in answer.text
    assert await store.applications(definition.id) == []


# --- The CSV import ---------------------------------------------------------------------------


class ClosedTemporal(AbortingTemporal):
    """A program whose workflow refuses every application: its window has closed."""

    async def execute_update(self, *args: object, **kwargs: object) -> None:
        self.updates += 1
        raise WorkflowUpdateFailedError(ApplicationError("closed: the deadline has passed"))


def import_csv(
    monkeypatch: pytest.MonkeyPatch, temporal: Any, database_url: str, file: Path, program: str
) -> tuple[Result, float]:
    async def connect(*args: object, **kwargs: object) -> Any:
        return temporal

    monkeypatch.setattr(cli, "connect", connect)
    return invoke(
        "applications",
        "import",
        str(file),
        "--program",
        program,
        env={"MENTORFLOW_DATABASE_URL": database_url},
    )


async def test_hostile_csv_files_are_refused_row_by_row_naming_the_field(
    tmp_path: Path, database_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    definition = load_definition(DEMO)
    temporal = AbortingTemporal()
    temporal.busy = False
    for case in CSVS:
        program = definition.model_copy(update={"id": f"csv-{uuid.uuid4().hex[:8]}"})
        await record_program(store, program)
        file = tmp_path / f"{case['case']}.csv"
        file.write_text(expand(case["csv"]), encoding="utf-8", newline="")
        # The command runs its own event loop, so it gets a thread of its own.
        result, took = await asyncio.to_thread(
            import_csv, monkeypatch, temporal, database_url, file, program.id
        )
        assert took < PATIENCE, case["case"]
        assert_one_clear_answer(result)
        said = result.stderr + (str(result.exception) if result.exception else "")
        for fragment in case["says"]:
            assert fragment in said, (case["case"], said[:2000])
        stored = await store.applications(program.id)
        assert all("\x00" not in row.name for row in stored)
        if case["case"] == "same-email-three-times":
            assert [row.name for row in stored] == ["Sam"]  # the first row, and only it
        else:
            assert stored == [], case["case"]


async def test_a_closed_program_refuses_an_import_once_not_per_row(
    tmp_path: Path, database_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    definition = load_definition(DEMO)
    await record_program(store, definition)
    file = tmp_path / "late.csv"
    file.write_text(
        "name,email,organisation,department,profile,manager_name,manager_email,q_motivation\n"
        + "".join(
            f"P{i},p{i}@example.org,demo-company,IT,adept,Robin,robin@example.org,Curious\n"
            for i in range(3)
        ),
        encoding="utf-8",
    )
    temporal = ClosedTemporal()
    result, _ = await asyncio.to_thread(
        import_csv, monkeypatch, temporal, database_url, file, definition.id
    )
    assert_one_clear_answer(result)
    assert temporal.updates == 1
    assert result.stderr.count("no longer takes applications") == 1
    assert f"{file}: the 2 row(s) after it were not tried" in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"{file}: 0 imported, 0 updated, 3 refused")


@pytest.mark.parametrize(
    "command",
    [
        ["pair", "withdraw", "demo", "kim@example.org"],
        ["program", "reschedule", "demo", "--deadline", "2027-05-01"],
        ["program", "purge", "demo", "--yes"],
    ],
    ids=["withdraw", "reschedule", "purge"],
)
@pytest.mark.parametrize(
    ("reason", "says"),
    [("x" * (limits.REASON_LIMIT + 1), "at most 2,000 characters"), ("a\x00b", "U+0000")],
    ids=["long", "nul"],
)
def test_a_hostile_reason_is_refused_before_anything_is_done(
    command: list[str], reason: str, says: str
) -> None:
    # No Temporal and no database: the option is refused while it is read.
    env: dict[str, str | None] = {
        "MENTORFLOW_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "MENTORFLOW_DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none",
    }
    result, took = invoke(*command, "--reason", reason, env=env)
    assert took < PATIENCE
    assert result.exit_code == 2 and "Traceback" not in result.output  # a usage error
    assert "--reason" in result.stderr and says in result.stderr, result.stderr


# --- The signing key --------------------------------------------------------------------------

PRODUCTION = {"MENTORFLOW_PUBLIC_BASE_URL": "https://mentorflow.example.org"}


@pytest.mark.parametrize("command", ["worker", "web"])
@pytest.mark.parametrize(
    ("key", "says"),
    [
        (None, "is the development key written in mentorflow's source"),
        (DEVELOPMENT_SECRET_KEY, "is the development key written in mentorflow's source"),
        ("s3cret", "is 6 bytes long, shorter than 32"),
    ],
    ids=["unset", "default", "short"],
)
def test_the_worker_and_the_web_app_refuse_a_key_anyone_can_know(
    command: str, key: str | None, says: str
) -> None:
    env: dict[str, str | None] = {**PRODUCTION, "MENTORFLOW_SECRET_KEY": key}
    result, took = invoke(command, env=env)
    assert took < PATIENCE
    assert isinstance(result.exception, cli.Failure), result.output
    message = str(result.exception)
    assert message.startswith(f"MENTORFLOW_SECRET_KEY {says}: anyone could sign")
    assert "import secrets; print(secrets.token_urlsafe(48))" in message
    assert "\n" not in message


def test_a_weak_previous_key_is_refused_too_and_a_strong_key_passes() -> None:
    strong = secrets.token_urlsafe(48)
    weak_previous = Settings(secret_key=strong, previous_secret_keys=[DEVELOPMENT_SECRET_KEY])
    problem = weak_previous.signing_key_problem()
    assert problem is not None and problem.startswith("MENTORFLOW_PREVIOUS_SECRET_KEYS is the")
    assert Settings(secret_key=strong).signing_key_problem() is None


@pytest.mark.parametrize("command", ["worker", "web"])
def test_the_refusal_is_one_line_on_the_terminal(command: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MENTORFLOW_SECRET_KEY"}
    run = subprocess.run(
        [sys.executable, "-m", "mentorflow", command],
        env={**env, **PRODUCTION, "MENTORFLOW_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("error: MENTORFLOW_SECRET_KEY is the development key")
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_the_local_stack_makes_and_keeps_a_key_of_its_own(tmp_path: Path) -> None:
    from mentorflow.dev import worker_environment
    from worker.kinds import WorkerKind

    settings_ = Settings(_env_file=None, data_dir=tmp_path / "data")
    local = with_local_signing_key(settings_)
    key = local.secret_key.get_secret_value()
    assert local.signing_key_problem() is None
    # Kept for the next start (links in the inbox keep working), for its owner only.
    assert with_local_signing_key(settings_).secret_key.get_secret_value() == key
    assert (tmp_path / "data" / "signing-key").stat().st_mode & 0o777 == 0o600
    # The workers the stack starts sign with it, so they pass their own check.
    for kind in WorkerKind:
        assert worker_environment(local, kind)["MENTORFLOW_SECRET_KEY"] == key
    # A key set in the environment is used as it is.
    own = Settings(_env_file=None, secret_key="k" * 40, data_dir=tmp_path / "other")
    assert with_local_signing_key(own) is own


# --- Outages ----------------------------------------------------------------------------------


async def program_with_people(
    store: Store, signer: LinkSigner, language: Language = Language.SV
) -> tuple[ProgramDefinition, dict[str, str], str]:
    """A recorded program with a mentor and an adept in a pair; (definition, a token for
    each kind of link, the mentor's application id)."""
    definition = load_definition(DEMO).model_copy(
        update={"id": f"outage-{uuid.uuid4().hex[:8]}", "language": language}
    )
    await record_program(store, definition)
    now = datetime.now(UTC)
    pair, *ids = await record_pair(
        store,
        definition.id,
        now,
        pair_id=f"pair-{uuid.uuid4().hex[:8]}",
        department="IT",
        answers={"motivation": "Curious"},
    )

    def token(purpose: Purpose, about: str, email: str) -> str:
        return signer.make(
            program_id=definition.id,
            application_id=about,
            purpose=purpose,
            email=email,
            expires_at=now + timedelta(days=7),
        )

    hr = "hr@demo.example.org"
    tokens = {
        "a": token(Purpose.APPROVAL, ids[0], "boss-of-mentor@example.org"),
        "w": token(Purpose.WITHDRAWAL, ids[0], "mentor@example.org"),
        "c": token(Purpose.CAPACITY, "demo-company", hr),
        "r": token(Purpose.REVIEW, definition.id, hr),
        "k": token(Purpose.CHECK_IN, f"{pair}/1", "mentor@example.org"),
        "e": token(Purpose.EVALUATION, ids[0], "mentor@example.org"),
        "report": token(Purpose.REPORT, definition.id, hr),
    }
    return definition, tokens, ids[0]


def every_page(
    definition: ProgramDefinition, tokens: dict[str, str], mentor: str
) -> list[tuple[str, str, dict[str, str] | None, bool]]:
    """(method, path, form, whether the page needs Temporal) for every page of a program."""
    forms: dict[str, dict[str, str]] = {
        "a": {"choice": "approve"},
        "w": {},
        "c": {f"sel_{mentor}": "accepted"},
        "r": {"action": "rerun"},
        "k": {"choice": "yes"},
        "e": {"overall": "4", "recommend": "9"},
    }
    apply = f"/programs/{definition.id}/apply?profile=mentor"
    pages: list[tuple[str, str, dict[str, str] | None, bool]] = [
        ("GET", apply, None, True),
        ("HEAD", apply, None, True),
        ("POST", apply, demo_application("Kim", "kim@example.org", "chef@example.org"), True),
    ]
    for kind, token in tokens.items():
        # Check-ins, the evaluation and the report are answered from the database.
        needs_temporal = kind in ("a", "w", "c", "r")
        pages += [
            ("GET", f"/{kind}/{token}", None, needs_temporal),
            ("HEAD", f"/{kind}/{token}", None, needs_temporal),
        ]
        if kind in forms:
            pages.append(("POST", f"/{kind}/{token}", forms[kind], needs_temporal or kind == "k"))
    return pages


def assert_polite_503(answer: httpx.Response, *, swedish: bool, english: bool) -> None:
    assert answer.status_code == 503, (answer.request.method, answer.request.url, answer.text[:500])
    assert answer.headers["retry-after"] == "60"
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-store"  # the security headers too
    if answer.request.method != "HEAD":
        assert ("Försök igen om några minuter" in answer.text) is swedish
        assert ("Please try again in a few minutes" in answer.text) is english
        assert "Traceback" not in answer.text


async def test_every_page_answers_while_temporal_is_down(store: Store) -> None:
    """The pages that need Temporal answer the program's polite 503 (GET had been a 500, a
    POST a reset connection); the ones the database answers alone keep working."""
    down = await Client.connect(
        f"127.0.0.1:{free_port()}", lazy=True, data_converter=compact_data_converter
    )
    settings_ = web_settings()
    definition, tokens, mentor = await program_with_people(store, LinkSigner(settings_.secret_keys))
    async with web_app(settings_, down, store) as http:
        for method, path, form, needs_temporal in every_page(definition, tokens, mentor):
            started = time.monotonic()
            answer = await http.request(method, path, data=form)
            assert time.monotonic() - started < PATIENCE, (method, path)
            if needs_temporal:
                assert_polite_503(answer, swedish=True, english=False)
            else:
                assert answer.status_code == 200, (method, path, answer.text[:500])
    # The POST to the form saved nothing it could not hand over.
    assert {a.email for a in await store.applications(definition.id)} == {
        "mentor@example.org",
        "adept@example.org",
    }


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_every_page_answers_while_the_database_is_down(
    database: str, tmp_path: Path, store: Store
) -> None:
    """Pages whose program cannot be read say so in both languages; a program whose
    page was seen before keeps its own language."""
    settings_ = web_settings()
    definition, tokens, mentor = await program_with_people(store, LinkSigner(settings_.secret_keys))
    dead = (
        f"sqlite:///{tmp_path}/no/such/folder/mentorflow.db"
        if database == "sqlite"
        else f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone"
    )
    unreachable = Store(dead)
    try:
        async with web_app(settings_, BusyTemporal(), unreachable) as http:
            for method, path, form, _ in every_page(definition, tokens, mentor):
                answer = await http.request(method, path, data=form)
                assert_polite_503(answer, swedish=True, english=True)
            outage.remember(definition)  # as when its page was seen before the outage
            seen = await http.get(f"/a/{tokens['a']}")
            home = await http.get("/")
    finally:
        await unreachable.close()
    assert_polite_503(seen, swedish=True, english=False)
    assert home.status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_stopped_temporal_server_gets_the_polite_503_not_a_500_or_a_reset(
    store: Store,
) -> None:
    env = await WorkflowEnvironment.start_local(
        data_converter=compact_data_converter, dev_server_existing_path=str(binary("temporal"))
    )
    settings_ = web_settings()
    definition, tokens, _ = await program_with_people(
        store, LinkSigner(settings_.secret_keys), Language.EN
    )
    try:
        async with web_app(settings_, env.client, store) as http:
            await env.shutdown()
            answers = [
                await http.get(f"/a/{tokens['a']}"),
                await http.post(f"/a/{tokens['a']}", data={"choice": "approve"}),
                await http.post(
                    f"/programs/{definition.id}/apply?profile=mentor",
                    data=demo_application("Kim", "kim@example.org", "chef@example.org"),
                ),
            ]
    finally:
        with contextlib.suppress(Exception):
            await env.shutdown()
    for answer in answers:
        assert_polite_503(answer, swedish=False, english=True)
