"""The FastAPI app, and serving it with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from pathlib import Path

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from mentorflow import __version__, limits
from mentorflow.codec import codec_for
from mentorflow.mail.catcher import CatchingHandler
from mentorflow.settings import Settings
from mentorflow.store import Store, StoreUnavailable
from mentorflow.web import notices
from mentorflow.web.links import LinkRefused, show_refusal, use_links
from mentorflow.web.outage import Guard, program_of
from mentorflow.web.pages import render_notice

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
_URL = re.compile(r"https?://[^\s<>\"']+")


def _linkify(text: str) -> Markup:
    """Escape text, then make its URLs clickable (the inbox shows emails' plain text)."""
    escaped = str(escape(text))
    return Markup(_URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped))


TEMPLATES.env.filters["linkify"] = _linkify

SECURITY_HEADERS = {
    # Links in emails carry tokens: never leak them to another site, never cache them.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
        " frame-src 'self'; form-action 'self'; base-uri 'none'"
    ),
}


class SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every response that does not set its
    own. Plain ASGI: as ``@app.middleware("http")`` it ran each request in a task of its
    own, with streams between it and the app, a tenth of the web app's CPU."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(
    settings: Settings,
    store: Store,
    *,
    temporal: Client | None = None,
    inbox: CatchingHandler | None = None,
) -> FastAPI:
    """The web app. ``inbox`` (the dev mail catcher) adds the /inbox pages."""
    from mentorflow.links import LinkSigner

    app = FastAPI(title="mentorflow", version=__version__, docs_url=None, redoc_url=None)
    signer = LinkSigner(settings.secret_keys)
    # Added first, so it runs inside the security headers: its pages get them too.
    app.add_middleware(Guard, store=store, temporal=temporal, signer=signer)

    async def refused_request(request: Request, error: Exception) -> Response:
        """A wrong address, method or request gets a page in the program's language
        (FastAPI would answer JSON); the machine-facing endpoints keep their JSON."""
        if request.url.path.startswith(("/codec", "/health")):
            if isinstance(error, RequestValidationError):
                return await request_validation_exception_handler(request, error)
            assert isinstance(error, StarletteHTTPException)
            return await http_exception_handler(request, error)
        status = error.status_code if isinstance(error, StarletteHTTPException) else 400
        definition = await program_of(request.url.path, signer, store)
        notice = {404: notices.NO_PAGE, 413: notices.TOO_LARGE}.get(status, notices.INVALID)
        limit = f"{limits.REQUEST_LIMIT_BYTES // 1024 // 1024} MB"
        page = render_notice(
            request, definition, notice, status, bilingual=definition is None, limit=limit
        )
        if isinstance(error, StarletteHTTPException) and error.headers:
            page.headers.update(error.headers)  # such as a 405's Allow
        return page

    app.add_exception_handler(StarletteHTTPException, refused_request)
    app.add_exception_handler(RequestValidationError, refused_request)
    # Every link's page checks its token with one dependency (mentorflow.web.links); a
    # link that cannot be used is answered here, with the page the check chose.
    use_links(app, store, signer)
    app.add_exception_handler(LinkRefused, show_refusal)

    app.add_middleware(SecurityHeaders)

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request,
            "home.html",
            {"inbox": inbox is not None, "temporal_ui": settings.temporal_ui_url},
        )

    @app.get("/health")
    async def health() -> JSONResponse:
        """200 when the database (and Temporal, if connected) answer; 503 otherwise."""
        checks: dict[str, str] = {}
        try:
            await store.ping()
            checks["database"] = "ok"
        except StoreUnavailable as error:
            checks["database"] = str(error)
        if temporal is not None:
            try:
                await asyncio.wait_for(temporal.service_client.check_health(), timeout=5)
                checks["temporal"] = "ok"
            except Exception as error:
                checks["temporal"] = f"unreachable: {error.__class__.__name__}"
        healthy = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ok" if healthy else "unavailable", "version": __version__, **checks},
            status_code=200 if healthy else 503,
        )

    if temporal is not None:
        from mentorflow.web.check_ins import check_in_router
        from mentorflow.web.evaluation import evaluation_router
        from mentorflow.web.hr import hr_router
        from mentorflow.web.participants import participant_router
        from mentorflow.web.reports import report_router

        app.include_router(participant_router(store, temporal, signer))
        app.include_router(hr_router(store, temporal, signer))
        app.include_router(check_in_router(store, temporal, signer))
        app.include_router(evaluation_router(store, signer))
        app.include_router(report_router(store))
    codec = codec_for(settings)
    if codec is not None:
        from mentorflow.web.codec import codec_router

        app.include_router(codec_router(settings, codec))
    if inbox is not None:
        _add_inbox(app, inbox)
    return app


def _add_inbox(app: FastAPI, inbox: CatchingHandler) -> None:
    @app.get("/inbox", response_class=HTMLResponse)
    async def inbox_list(request: Request) -> HTMLResponse:
        messages = list(reversed(await asyncio.to_thread(inbox.messages)))
        return TEMPLATES.TemplateResponse(request, "inbox.html", {"messages": messages})

    @app.get("/inbox/{key}", response_class=HTMLResponse)
    async def inbox_message(request: Request, key: str) -> HTMLResponse:
        message = await asyncio.to_thread(inbox.get, key)
        if message is None:
            raise HTTPException(404, "No such message")
        return TEMPLATES.TemplateResponse(request, "message.html", {"m": message})

    @app.get("/inbox/{key}/html", response_class=HTMLResponse)
    async def inbox_message_html(key: str) -> HTMLResponse:
        message = await asyncio.to_thread(inbox.get, key)
        if message is None:
            raise HTTPException(404, "No such message")
        response = HTMLResponse(message.body("html"))
        # The email's own HTML runs in a sandboxed frame: no scripts, no same-origin access.
        response.headers["Content-Security-Policy"] = (
            "sandbox allow-popups allow-top-navigation-by-user-activation;"
            " default-src 'none'; style-src 'unsafe-inline'; img-src data:"
        )
        return response


# Idle connections are kept open longer than clients and proxies keep theirs (httpx 5 s,
# browsers and load balancers up to 60 s), so the client side always closes first. With
# uvicorn's default (5 s) a request sent on a reused connection just as the server
# closed it failed with a read error (seen in CI: httpcore.ReadError on a link's HEAD).
KEEP_ALIVE_SECONDS = 65


async def serve(
    settings: Settings,
    stop: asyncio.Event,
    *,
    temporal: Client | None = None,
    inbox: CatchingHandler | None = None,
    store: Store | None = None,
    started: asyncio.Event | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve the app with uvicorn until ``stop`` is set; ``started`` is set once it listens."""
    from mentorflow.store import migrate

    own_store = store is None
    if store is None:
        await asyncio.to_thread(migrate, settings.effective_database_url)
        store = Store(settings.effective_database_url)
    app = create_app(settings, store, temporal=temporal, inbox=inbox)
    config = uvicorn.Config(
        app,
        host=settings.web_host,
        port=settings.web_port,
        log_config=None,
        lifespan="off",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    server = uvicorn.Server(config)
    # We own the signals (see services.run_until_signalled), not uvicorn.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None))
    if started is not None:
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no event
            await asyncio.sleep(0.05)
        started.set()
    try:
        await asyncio.wait(
            [task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        server.should_exit = True
        await task
    finally:
        if own_store:
            await store.close()
