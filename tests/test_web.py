"""The web app served by uvicorn, over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from mentorflow.settings import Settings
from mentorflow.store import Store
from mentorflow.web.app import serve
from tests.conftest import free_port, wait_for


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
