"""Shared fixtures: real Temporal servers, a real SMTP server, SQLite and PostgreSQL.

Every server here is a real process or socket started by the tests: the
time-skipping test server and the dev server come from the pip-installed
binaries, the SMTP server is aiosmtpd, PostgreSQL is this machine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailActivities
from mentorflow.codec import compact_data_converter
from mentorflow.definition import ProgramDefinition
from mentorflow.mail.catcher import CatchingHandler, CaughtMessage, MailCatcher
from mentorflow.models import (
    WORKFLOW_ID_PREFIX,
    ProgramPhase,
    ProgramResult,
    ProgramStatus,
    program_id_of,
)
from mentorflow.programs import start_program
from mentorflow.settings import Settings
from mentorflow.store import Store, migrate
from mentorflow.temporal import DEV_SERVER_TUNING, binary, register_search_attributes
from tests.keys import TEST_SECRET_KEY
from tests.postgres import CONTAINER_IMAGE, DEFAULT_URL, Use, choose_postgres
from tests.programs import mentorflow
from worker.main import create_worker
from workflows.program import ProgramWorkflow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- Temporal ------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server per test: its clock only moves forward."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=compact_data_converter,
        test_server_existing_path=str(binary("temporal-test-server")),
    )
    await register_search_attributes(env.client, "default")
    async with env:
        yield env


@pytest_asyncio.fixture(scope="session")
async def dev_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WorkflowEnvironment]:
    from mentorflow import search_attributes

    env = await WorkflowEnvironment.start_local(
        data_converter=compact_data_converter,
        dev_server_existing_path=str(binary("temporal")),
        dev_server_database_filename=str(tmp_path_factory.mktemp("temporal") / "temporal.db"),
        search_attributes=list(search_attributes.ALL),
        dev_server_extra_args=DEV_SERVER_TUNING,
    )
    async with env:
        yield env


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


# --- SMTP ----------------------------------------------------------------------------------


class ReadMessage(CaughtMessage):
    """A caught message whose headers and parts are decoded once: it never changes,
    and a test polls the same messages many times."""

    @functools.cached_property
    def recipients(self) -> list[str]:
        return super().recipients

    @functools.cached_property
    def caught_at_ns(self) -> int:
        return super().caught_at_ns

    @functools.cached_property
    def subject(self) -> str:
        return super().subject

    @functools.cached_property
    def message_id(self) -> str:
        return super().message_id

    @functools.cached_property
    def calendar(self) -> str | None:
        return super().calendar

    def body(self, subtype: str = "plain") -> str:
        bodies: dict[str, str] = self.__dict__.setdefault("_bodies", {})
        if subtype not in bodies:
            bodies[subtype] = super().body(subtype)
        return bodies[subtype]


class ReadingOnce(CatchingHandler):
    """The mail catcher's own handler, that parses each caught message once when read
    back: ``messages()`` costs what arrived since the last call, not everything again."""

    def __init__(self, maildir: Path) -> None:
        super().__init__(maildir)
        self._read: dict[str, ReadMessage] = {}

    def messages(self) -> list[CaughtMessage]:
        with self._lock:
            self._box.clean()
            keys = list(self._box.iterkeys())
            new = {key: self._box.get_bytes(key) for key in keys if key not in self._read}
        for key, raw in new.items():
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            self._read[key] = ReadMessage(key, parsed)
        self._read = {key: self._read[key] for key in keys}  # what was cleared goes
        return sorted(self._read.values(), key=lambda m: m.caught_at_ns)


@pytest.fixture
def mail_catcher(tmp_path: Path) -> Iterator[MailCatcher]:
    """The real SMTP server (aiosmtpd) keeping messages in a Maildir, read back by tests."""
    maildir = tmp_path / "mail"
    catcher = MailCatcher(maildir, port=free_port(), handler=ReadingOnce(maildir))
    catcher.start()
    yield catcher
    catcher.stop()


# --- Databases -----------------------------------------------------------------------------


def _unreachable(url: str) -> str | None:
    """Why the PostgreSQL server at ``url`` does not answer, or None when it does."""
    try:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as error:
        return f"{error.__class__.__name__}: {str(error).splitlines()[0]}"
    return None


def _docker_answers() -> bool:
    """Whether a Docker engine answers, found as testcontainers finds it (DOCKER_HOST,
    ~/.testcontainers.properties, the local socket)."""
    try:
        from testcontainers.core.docker_client import DockerClient

        return bool(DockerClient(timeout=5).client.ping())
    except Exception:
        return False


# Each test database's server, by database name: set_connections needs its admin URL.
_ADMIN_URLS: dict[str, str] = {}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The admin URL of this session's PostgreSQL server: MENTORFLOW_TEST_POSTGRES_URL's,
    the local default, or a container; or every test that needs one is skipped (locally)
    or fails (in CI). ``tests/postgres.py`` chooses."""
    env_url = os.environ.get("MENTORFLOW_TEST_POSTGRES_URL") or None
    ci = bool(os.environ.get("CI"))
    problem = _unreachable(env_url or DEFAULT_URL)
    docker = env_url is None and problem is not None and _docker_answers()
    choice = choose_postgres(env_url, problem is None, docker, ci)
    if choice.use is Use.CONTAINER:
        from testcontainers.community.postgres import PostgresContainer

        container = PostgresContainer(
            CONTAINER_IMAGE,
            username="postgres",
            password="postgres",
            dbname="test",
            driver="psycopg",
        )
        try:
            container.start()
        except Exception as error:
            with contextlib.suppress(Exception):
                container.stop()  # whatever part of it did start
            # As if no Docker engine had answered: skipped locally, failed in CI.
            reason = f"PostgreSQL unreachable at {DEFAULT_URL}: {problem}; and a container"
            reason += f" of {CONTAINER_IMAGE} did not start: {error}"
            if choose_postgres(None, False, False, ci).use is Use.FAIL:
                pytest.fail(f"PostgreSQL is required in CI; {reason}")
            pytest.skip(reason)
        try:
            yield container.get_connection_url()
        finally:
            container.stop()
        return
    if choice.use is Use.FAIL:
        pytest.fail(f"{choice.reason}: {problem}")
    if choice.use is Use.SKIP:
        pytest.skip(f"{choice.reason}: {problem}")
    assert choice.url is not None
    yield choice.url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'mentorflow.db'}"
        migrate(url)
        yield url
        return
    server: str = request.getfixturevalue("postgres_server")
    name = f"mentorflow_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    _ADMIN_URLS[name] = server
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        _ADMIN_URLS.pop(name, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """PostgreSQL variants only where the database matters (``@pytest.mark.database``:
    the store, the email ledger, the activities, one whole program, the web's forms).

    The workflows' logic does not depend on the database, and a second run of every
    scenario on PostgreSQL was two fifths of the suite's time.
    ``MENTORFLOW_TEST_ALL_DATABASES=1`` runs every variant.
    """
    if not os.environ.get("MENTORFLOW_TEST_ALL_DATABASES"):
        kept, dropped = [], []
        for item in items:
            callspec = getattr(item, "callspec", None)
            on_postgres = (
                callspec is not None and callspec.params.get("database_url") == "postgresql"
            )
            if on_postgres and item.get_closest_marker("database") is None:
                dropped.append(item)
            else:
                kept.append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
    workers = getattr(config.option, "numprocesses", None)
    if isinstance(workers, int) and workers > 1:
        items[:] = spread_slowest(items, workers)


# The slowest tests (a minute or more each on two cores), slowest first: each of
# pytest-xdist's workers starts with its share of them, not the last one alone at the end.
SLOWEST = (
    "test_dev_stack.py::test_dev_stack_runs_a_program_through_the_cli",
    "test_stall.py::",
    "test_faults.py::test_worker_killed_mid_phase",
    "test_closing.py::test_a_whole_program_reports_to_hr",
    "test_faults.py::test_dev_server_restarted_mid_program",
    "test_continue_as_new.py::test_many_applications",
    "test_faults.py::test_database_briefly_down",
    "test_meetings.py::test_postponed_start",
    "test_faults.py::test_smtp_outage",
    "test_meetings.py::test_a_withdrawal_closes_the_pair",
    "test_applications.py::test_twenty_applicants",
)


def spread_slowest(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """The order for ``--dist worksteal``, which first hands each worker a contiguous,
    even share of the list (in order): the slowest tests dealt round-robin to the
    starts of those shares, the rest after them. Stealing then takes from the ends."""

    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("/")[-1]
        return next((i for i, p in enumerate(SLOWEST) if path.startswith(p)), len(SLOWEST))

    slowest = sorted((i for i in items if rank(i) < len(SLOWEST)), key=rank)
    rest = [i for i in items if rank(i) == len(SLOWEST)]
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for n, item in enumerate(slowest):
        shares[n % workers].append(item)
    # Each share as long as worksteal's split makes it: len(pending) // workers left.
    left, ordered = len(items), []
    for k, share in enumerate(shares):
        take = max(left // (workers - k) - len(share), 0)
        share += rest[:take]
        del rest[:take]
        ordered += share
        left -= len(share)
    return ordered + rest


def set_connections(database_url: str, *, allowed: bool) -> None:
    """Open or close a PostgreSQL database to new connections; closing also drops the open ones."""
    name = make_url(database_url).database
    admin = create_engine(_ADMIN_URLS[str(name)], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
            if not allowed:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
    finally:
        admin.dispose()


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = Store(database_url)
    yield store
    await store.close()


@pytest.fixture
def worker_settings(task_queue: str, database_url: str, mail_catcher: MailCatcher) -> Settings:
    """Settings for an in-test worker and web app: own task queue, database, SMTP, port."""
    port = free_port()
    return settings_for(
        task_queue=task_queue,
        database_url=database_url,
        smtp_port=mail_catcher.port,
        web_port=port,
        public_base_url=f"http://127.0.0.1:{port}",
    )


def settings_for(
    *, task_queue: str, database_url: str, smtp_port: int, **overrides: object
) -> Settings:
    return Settings(
        temporal_task_queue=task_queue,
        database_url=database_url,
        smtp_port=smtp_port,
        # Every workflow the tests run runs in Temporal's sandbox, which refuses a
        # non-deterministic call; the shipped default leaves it off (worker_sandbox).
        **{"secret_key": SecretStr(TEST_SECRET_KEY), "worker_sandbox": True, **overrides},  # type: ignore[arg-type]
    )


def email_activities(store: Store, database_url: str, smtp_port: int) -> EmailActivities:
    """The email activities, run outside a worker, sending to the SMTP server at ``smtp_port``."""
    return EmailActivities(
        store, settings_for(task_queue="-", database_url=database_url, smtp_port=smtp_port)
    )


# --- The web app ---------------------------------------------------------------------------


@dataclass
class Web:
    http: httpx.AsyncClient
    base: str


@pytest_asyncio.fixture
async def web(
    time_skipping_env: WorkflowEnvironment, worker_settings: Settings, store: Store
) -> AsyncIterator[Web]:
    """The web app under uvicorn on its own port, talking to the time-skipping server."""
    async with serving(worker_settings, time_skipping_env.client, store) as web:
        yield web


@contextlib.asynccontextmanager
async def serving(settings: Settings, temporal: Client, store: Store) -> AsyncIterator[Web]:
    """The web app under uvicorn at ``settings.public_base_url``, until the block ends."""
    from mentorflow.web.app import serve

    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop, temporal=temporal, store=store))
    try:
        async with httpx.AsyncClient(base_url=settings.public_base_url, timeout=30) as http:
            await wait_for(lambda: is_healthy(http), within=20)
            yield Web(http, settings.public_base_url)
    finally:
        stop.set()
        await server


async def is_healthy(http: httpx.AsyncClient) -> bool:
    """Whether the web app behind ``http`` answers ``/health`` with 200 yet."""
    try:
        return (await http.get("/health")).status_code == 200
    except httpx.TransportError:
        return False


def links_in(catcher: MailCatcher | CatchingHandler, recipient: str, kind: str) -> list[str]:
    """The links of one kind (a, w, c, r) in the emails ``recipient`` received, oldest first."""
    found = []
    for message in catcher.messages():
        if recipient in message.recipients:
            found += re.findall(rf"http://127\.0\.0\.1:\d+/{kind}/[\w.\-]+", message.body("plain"))
    return found


async def wait_for(predicate: object, within: float = 30.0, interval: float = 0.1) -> None:
    """Poll ``predicate`` (sync or async) until it is truthy, in real time."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while True:
        value = predicate()  # type: ignore[operator]
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > end:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


async def until_phase(handle: Any, phase: Any, within: float = 60.0) -> Any:
    """Wait (in real time) until the program's status shows ``phase``; return the status."""

    async def reached() -> bool:
        return bool((await handle.query(ProgramWorkflow.status)).phase is phase)

    await wait_for(reached, within=within, interval=0.2)
    return await handle.query(ProgramWorkflow.status)


async def until_completed(env: Any, handle: Any, within: float = 120.0) -> Any:
    """Skip time (a week at a step) until the program has completed: its report made, its
    personal data not yet purged (that waits for the retention period). Its status back."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while True:
        status = await handle.query(ProgramWorkflow.status)
        if status.phase.value in ("completed", "purged", "cancelled"):
            return status
        assert loop.time() < end, f"still {status.phase.value} after {within} s"
        await env.sleep(timedelta(days=7))
        await asyncio.sleep(0.2)


async def run_histories(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """The history of every run of a workflow, first to last, following continue-as-new."""
    latest = await client.get_workflow_handle(workflow_id).fetch_history()
    start = latest.events[0].workflow_execution_started_event_attributes
    histories = []
    run_id: str | None = start.first_execution_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else None
        )
    return histories


HISTORIES = Path(__file__).parent / "histories"


async def keep_histories(client: Client, program: Any, scenario: str) -> None:
    """With ``MENTORFLOW_RECORD_HISTORIES=1``: keep the histories ``test_replay`` replays.

    Writes the program's runs and its children's (applications, pairs) to
    ``tests/histories/<scenario>/``, one file per distinct shape (sequence of
    event types), so each path through the code is kept once.
    """
    if not os.environ.get("MENTORFLOW_RECORD_HISTORIES"):
        return
    folder = HISTORIES / scenario
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    runs = await run_histories(client, program.id)
    children = {
        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for history in runs
        for event in history.events
        if event.HasField("start_child_workflow_execution_initiated_event_attributes")
    }
    # Applications are started by the clients that took them, not by the program.
    from tests.privacy import every_run  # lists on the time-skipping server too

    program_id = program.id.removeprefix(WORKFLOW_ID_PREFIX)
    for run in await every_run(client):
        if program_id_of(run.workflow_id) == program_id:
            children.add(run.workflow_id)
    shapes: set[tuple[int, ...]] = set()
    for workflow_id in [program.id, *sorted(children)]:
        for history in await run_histories(client, workflow_id):
            shape = tuple(event.event_type for event in history.events)
            if shape in shapes:
                continue
            shapes.add(shape)
            kind = workflow_id.split("-", 1)[0]
            compact = json.dumps(json.loads(history.to_json()), separators=(",", ":"))
            (folder / f"{len(shapes):03d}-{kind}.json").write_text(compact)


def cli_env(env: WorkflowEnvironment, database_url: str) -> dict[str, str]:
    """What the ``mentorflow`` command needs to reach a test's Temporal server and database."""
    return {
        "MENTORFLOW_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "MENTORFLOW_DATABASE_URL": database_url,
    }


# --- The whole stack -----------------------------------------------------------------------

ProgramHandle = WorkflowHandle[ProgramWorkflow, ProgramResult]


@contextlib.asynccontextmanager
async def program_running(
    client: Client,
    settings: Settings,
    store: Store,
    definition: ProgramDefinition,
    **start: Any,
) -> AsyncIterator[ProgramHandle]:
    """An in-test worker on the settings' task queue until the block ends, and the
    program started on it (``start``: more of ``start_program``'s options)."""
    async with create_worker(client, settings, store):
        yield await start_program(
            client, definition, store=store, task_queue=settings.temporal_task_queue, **start
        )


@dataclass
class Stack:
    """Everything an end-to-end test runs against: the time-skipping Temporal server, the
    worker's settings, the SMTP server, the database (its store and URL), the task queue
    and the web app. The database is the ``database_url`` fixture's: SQLite, PostgreSQL."""

    env: WorkflowEnvironment
    worker_settings: Settings
    mail_catcher: MailCatcher
    store: Store
    task_queue: str
    web: Web
    database_url: str

    def worker(self) -> contextlib.AbstractAsyncContextManager[None]:
        """The in-test worker, until the block ends."""
        return create_worker(self.env.client, self.worker_settings, self.store)

    def running(
        self, definition: ProgramDefinition
    ) -> contextlib.AbstractAsyncContextManager[ProgramHandle]:
        """The worker until the block ends, and ``definition``'s program started on it."""
        return program_running(self.env.client, self.worker_settings, self.store, definition)

    def cli_env(self) -> dict[str, str]:
        return cli_env(self.env, self.database_url)

    async def mentorflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The ``mentorflow`` command, run as a child process against this stack; in a
        thread, so this loop (and the worker) keeps going meanwhile."""
        return await asyncio.to_thread(mentorflow, *args, env=self.cli_env())

    async def sleep_until(self, moment: datetime) -> None:
        """Skip the server's time to ``moment``."""
        await self.env.sleep(moment - await self.env.get_current_time())

    async def phase_at(
        self, program: ProgramHandle, moment: datetime, phase: ProgramPhase
    ) -> ProgramStatus:
        """Skip to ``moment``, then wait until the program shows ``phase``; its status."""
        await self.sleep_until(moment)
        status: ProgramStatus = await until_phase(program, phase)
        return status

    def links(self, recipient: str, kind: str) -> list[str]:
        """The links of one kind in the emails ``recipient`` received, oldest first."""
        return links_in(self.mail_catcher, recipient, kind)

    async def recorded(self, definition: ProgramDefinition) -> None:
        """Wait until the program's row is in the database."""
        await wait_for(lambda: self.store.program(definition.id), within=20)

    async def apply(
        self, definition: ProgramDefinition, profile: str, form: dict[str, Any]
    ) -> httpx.Response:
        """An application through the web form, as ``profile``."""
        return await self.web.http.post(
            f"/programs/{definition.id}/apply", params={"profile": profile}, data=form
        )


@pytest.fixture
def stack(
    time_skipping_env: WorkflowEnvironment,
    worker_settings: Settings,
    mail_catcher: MailCatcher,
    store: Store,
    task_queue: str,
    web: Web,
    database_url: str,
) -> Stack:
    """The whole stack, for a test that runs a program end to end."""
    return Stack(
        time_skipping_env, worker_settings, mail_catcher, store, task_queue, web, database_url
    )


__all__ = [
    "Client",
    "ProgramHandle",
    "Stack",
    "Web",
    "cli_env",
    "email_activities",
    "free_port",
    "is_healthy",
    "keep_histories",
    "links_in",
    "program_running",
    "run_histories",
    "serving",
    "settings_for",
    "until_phase",
    "wait_for",
]
