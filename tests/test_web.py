"""The web app served by uvicorn, over HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
from temporalio.service import RPCError, RPCStatusCode

from mentorflow.definition import load_definition
from mentorflow.settings import Settings
from mentorflow.store import Store
from mentorflow.web.app import serve
from tests.conftest import free_port, serving, wait_for
from tests.programs import DEMO


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

    def get_workflow_handle_for(self, *args: object, **kwargs: object) -> BusyTemporal:
        return self

    async def query(self, *args: object, **kwargs: object) -> None:
        raise RPCError("consistent query buffer is full", RPCStatusCode.RESOURCE_EXHAUSTED, b"")


async def test_an_overloaded_server_does_not_close_the_application_form(
    tmp_path: Path, store: Store
) -> None:
    definition = load_definition(DEMO)
    deadline = datetime(2027, 3, 1, 16, 0, tzinfo=UTC)
    for program_id, phase in (("open", "application_window"), ("closed", "awaiting_approvals")):
        await store.save_program(
            program_id=program_id,
            name=definition.name,
            workflow_id=f"program-{program_id}",
            definition=definition.model_copy(update={"id": program_id}).model_dump(
                mode="json", by_alias=True
            ),
            phase=phase,
            revision=1,
            next_deadline=deadline,
            at=datetime.now(UTC),
        )
    port = free_port()
    settings = Settings(web_port=port, public_base_url=f"http://127.0.0.1:{port}")
    async with serving(settings, BusyTemporal(), store) as web:  # type: ignore[arg-type]
        form = await web.http.get("/programs/open/apply", params={"profile": "mentor"})
        closed = await web.http.get("/programs/closed/apply", params={"profile": "mentor"})
    # The recorded phase and deadline answer for the workflow.
    assert form.status_code == 200 and "1 March 2027" in form.text
    assert closed.status_code == 410
