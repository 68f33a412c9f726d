"""The web app served by uvicorn, over HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from temporalio.service import RPCError, RPCStatusCode

from mentorflow import temporal as temporal_module
from mentorflow.definition import Language, load_definition
from mentorflow.settings import Settings
from mentorflow.store import Store
from mentorflow.web.app import serve
from tests.conftest import free_port, serving, wait_for
from tests.programs import DEMO, record_program

# The database matters here: these run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.database


async def test_health_reports_an_unreachable_database_with_its_address(tmp_path: Path) -> None:
    port, dead_port = free_port(), free_port()
    url = f"postgresql://mentorflow:secret@127.0.0.1:{dead_port}/nowhere"
    settings = Settings(web_port=port, database_url=url, data_dir=tmp_path)
    stop = asyncio.Event()
    store = Store(url)
    server = asyncio.create_task(serve(settings, stop, store=store))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def up() -> bool:
                try:
                    await http.get("/")
                except httpx.TransportError:
                    return False
                return True

            await wait_for(up, within=20)
            health = await http.get("/health")
            home = await http.get("/")
            inbox = await http.get("/inbox")
    finally:
        stop.set()
        await server
        await store.close()
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "unavailable"
    assert f"127.0.0.1:{dead_port}" in body["database"] and "secret" not in body["database"]
    assert home.status_code == 200 and "mentorflow" in home.text
    assert "Inbox" not in home.text  # no mail catcher outside the local stack
    assert inbox.status_code == 404
    for response in (health, home):
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        assert "default-src 'self'" in response.headers["content-security-policy"]


class BusyTemporal:
    """A Temporal client whose server refuses every query as overloaded, as it does
    when many queries reach one busy workflow ("consistent query buffer is full")."""

    class service_client:
        @staticmethod
        async def check_health() -> bool:
            return True

    id = "program-busy"  # the client doubles as the handle it returns

    def get_workflow_handle_for(self, *args: object, **kwargs: object) -> BusyTemporal:
        return self

    async def query(self, *args: object, **kwargs: object) -> None:
        raise RPCError("consistent query buffer is full", RPCStatusCode.RESOURCE_EXHAUSTED, b"")


async def test_an_overloaded_server_does_not_close_the_application_form(
    tmp_path: Path, store: Store
) -> None:
    definition = load_definition(DEMO)
    for program_id, phase in (("open", "application_window"), ("closed", "awaiting_approvals")):
        await record_program(store, definition.model_copy(update={"id": program_id}), phase)
    port = free_port()
    settings = Settings(web_port=port, public_base_url=f"http://127.0.0.1:{port}")
    async with serving(settings, BusyTemporal(), store) as web:  # type: ignore[arg-type]
        form = await web.http.get("/programs/open/apply", params={"profile": "mentor"})
        closed = await web.http.get("/programs/closed/apply", params={"profile": "mentor"})
    # The recorded phase and deadline answer for the workflow.
    assert form.status_code == 200 and "1 March 2027" in form.text
    assert closed.status_code == 410


async def test_a_program_without_its_definition_here_is_an_unknown_program(
    tmp_path: Path, store: Store
) -> None:
    # As when `program start` saved the definition in another database: the workflow's
    # own registration makes the row, without a definition.
    await store.save_program(
        program_id="elsewhere",
        name="Started elsewhere",
        workflow_id="program-elsewhere",
        definition=None,
        phase="application_window",
        revision=1,
        next_deadline=None,
        at=datetime.now(UTC),
    )
    port = free_port()
    settings = Settings(web_port=port, public_base_url=f"http://127.0.0.1:{port}")
    async with serving(settings, BusyTemporal(), store) as web:  # type: ignore[arg-type]
        form = await web.http.get("/programs/elsewhere/apply", params={"profile": "mentor"})
        sent = await web.http.post(
            "/programs/elsewhere/apply", params={"profile": "mentor"}, data={"name": "x"}
        )
    assert form.status_code == 404 and sent.status_code == 404


class AbortingTemporal(BusyTemporal):
    """A Temporal client whose server keeps aborting updates, as an overloaded one does
    ("workflow update was aborted"), until ``busy`` is cleared."""

    def __init__(self) -> None:
        self.busy = True
        self.updates = 0

    async def execute_update(self, *args: object, **kwargs: object) -> None:
        self.updates += 1
        if self.busy:
            raise RPCError("workflow update was aborted", RPCStatusCode.UNAVAILABLE, b"")


async def test_an_application_the_busy_program_cannot_take_is_saved_and_the_applicant_told(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(temporal_module, "UPDATE_PATIENCE_SECONDS", 0.5)
    definition = load_definition(DEMO).model_copy(update={"language": Language.SV})
    await record_program(store, definition)
    form = {
        "name": "Kim Busy",
        "email": "kim@example.org",
        "organisation": "demo-company",
        "manager_name": "Chef",
        "manager_email": "chef@example.org",
        "eligible_0": "yes",
        "q_motivation": "Nyfiken",
    }
    temporal = AbortingTemporal()
    port = free_port()
    settings = Settings(web_port=port, public_base_url=f"http://127.0.0.1:{port}")
    path = f"/programs/{definition.id}/apply"
    async with serving(settings, temporal, store) as web:  # type: ignore[arg-type]
        busy = await web.http.post(path, params={"profile": "mentor"}, data=form)
        saved = await store.applications(definition.id)
        tries = temporal.updates
        temporal.busy = False
        again = await web.http.post(path, params={"profile": "mentor"}, data=form)
    # A polite "send it again", in the program's language; no traceback, no 500.
    assert busy.status_code == 503 and busy.headers["retry-after"] == "60"
    assert "Skicka formuläret igen om en minut" in busy.text and "Traceback" not in busy.text
    assert tries > 1  # the aborted update was tried again for the patience's length
    # Nothing lost: the application is saved, and sending again hands over the same one.
    assert [(a.email, a.status) for a in saved] == [("kim@example.org", "submitted")]
    assert again.status_code == 200
    assert [a.id for a in await store.applications(definition.id)] == [saved[0].id]


async def test_an_idle_connection_outlives_the_clients_keep_alive(tmp_path: Path) -> None:
    """The server keeps an idle connection open past a client's 5 s keep-alive, so a
    request on a reused connection is never sent just as the server closes it."""
    port = free_port()
    settings = Settings(web_port=port, data_dir=tmp_path)
    stop = asyncio.Event()
    started = asyncio.Event()
    store = Store(f"sqlite:///{tmp_path / 'web.db'}")
    server = asyncio.create_task(serve(settings, stop, store=store, started=started))
    try:
        await asyncio.wait_for(started.wait(), timeout=20)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        statuses = []
        for pause in (0, 6):  # httpx keeps an idle connection 5 s; uvicorn's default too
            await asyncio.sleep(pause)
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
            )
            await reader.readexactly(length)
            statuses.append(head.split(b" ")[1])
        writer.close()
    finally:
        stop.set()
        await server
        await store.close()
    assert statuses == [b"200", b"200"]
