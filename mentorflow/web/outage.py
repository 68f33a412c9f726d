"""Every page answers: the polite 503 when Temporal or the database cannot be reached,
the program's error page for anything else, never a traceback or a reset connection.

:class:`Guard` wraps the whole app. A page that fails is asked why only then: an
error may be how an outage looks from where it happened (a query that timed
out, a lazy client that never connected, a connection the database dropped), so
Guard asks Temporal and the database directly before it chooses the page. It
also caps what a request may send (``limits.REQUEST_LIMIT_BYTES``), and reads
the rest of a failed request's body before answering: a server that answers and
closes with unread bytes in its socket makes the kernel reset the connection,
and the client loses the answer (a POST while Temporal was down "reset the
connection").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import OrderedDict

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from mentorflow import limits
from mentorflow.definition import ProgramDefinition
from mentorflow.links import LinkError, LinkSigner, Purpose
from mentorflow.store import Store, StoreUnavailable
from mentorflow.temporal import TemporalUnavailable
from mentorflow.web import notices
from mentorflow.web.notices import Notice

log = logging.getLogger("mentorflow.web")

# How long a page waits to learn whether Temporal or the database answer at all.
PROBE_SECONDS = 3.0
RETRY_AFTER_SECONDS = 60


class Unavailable(Exception):
    """Temporal or the database cannot be reached: the page is the polite 503."""


# A health check that answered this recently stands for the next requests' checks.
HEALTHY_FOR_SECONDS = 5.0
_answered_at: dict[int, float] = {}  # id of the client -> when it last answered


async def temporal_down(temporal: Client | None, *, recent_will_do: bool = False) -> bool:
    """Whether Temporal fails to answer a health check within ``PROBE_SECONDS``.

    ``recent_will_do``: a check that answered in the last ``HEALTHY_FOR_SECONDS`` is
    the answer. Seen at 5,000 applicants from 20 clients: one check per click on a
    server that busy took over three seconds, and a click got "Temporal does not
    answer" while it answered every update. A request whose call then fails asks
    again, without it (``unless_down``).
    """
    if temporal is None:
        return False
    now = asyncio.get_running_loop().time()
    if recent_will_do and now - _answered_at.get(id(temporal), -HEALTHY_FOR_SECONDS) < (
        HEALTHY_FOR_SECONDS
    ):
        return False
    try:
        healthy = await asyncio.wait_for(temporal.service_client.check_health(), PROBE_SECONDS)
    except Exception:  # an unreachable server fails in many ways; each means down
        return True
    if healthy:
        _answered_at[id(temporal)] = asyncio.get_running_loop().time()
    return not healthy


async def database_down(store: Store) -> bool:
    """Whether the database fails to answer within ``PROBE_SECONDS``."""
    try:
        await asyncio.wait_for(store.ping(), PROBE_SECONDS)
    except Exception:
        return True
    return False


async def ensure_up(temporal: Client) -> None:
    """Raise :class:`Unavailable` unless Temporal answers.

    Before an update: against a stopped server the client retries a call for about
    ten seconds and the update helper then keeps trying for a minute, as it would for
    a busy workflow; a person would wait all that time for the 503.
    """
    if await temporal_down(temporal, recent_will_do=True):
        raise Unavailable("Temporal does not answer")


async def unless_down(temporal: Client, error: BaseException) -> None:
    """Raise :class:`Unavailable` from ``error`` if Temporal does not answer; otherwise
    return, and the caller reads ``error`` as the workflow's answer (gone, closed)."""
    if await temporal_down(temporal):
        raise Unavailable("Temporal does not answer") from error


def _connection_lost(error: BaseException) -> bool:
    if isinstance(error, Unavailable | StoreUnavailable | TemporalUnavailable):
        return True
    if isinstance(error, OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


# The last definitions pages loaded, by program: the outage page speaks the program's
# language even when the database holding the definition is the part that is down.
_RECENT: OrderedDict[str, ProgramDefinition] = OrderedDict()
_RECENT_SIZE = 256


def remember(definition: ProgramDefinition) -> None:
    _RECENT[definition.id] = definition
    _RECENT.move_to_end(definition.id)
    while len(_RECENT) > _RECENT_SIZE:
        _RECENT.popitem(last=False)


_PROGRAM_PATH = re.compile(r"^/programs/([^/]+)/")
_TOKEN_PATH = re.compile(r"^/(a|w|c|r|k|e|report)/([^/]+)")
_PURPOSES = {
    "a": Purpose.APPROVAL,
    "w": Purpose.WITHDRAWAL,
    "c": Purpose.CAPACITY,
    "r": Purpose.REVIEW,
    "k": Purpose.CHECK_IN,
    "e": Purpose.EVALUATION,
    "report": Purpose.REPORT,
}


def program_in(path: str, signer: LinkSigner | None) -> str | None:
    """The program a page belongs to, from its path (or its link's signed token)."""
    if (match := _PROGRAM_PATH.match(path)) is not None:
        return match.group(1)
    if signer is None or (match := _TOKEN_PATH.match(path)) is None:
        return None
    try:
        link = signer.check(match.group(2), _PURPOSES[match.group(1)])
    except LinkError as error:
        return error.link.program_id if error.link is not None else None
    return link.program_id


async def program_of(
    path: str, signer: LinkSigner | None, store: Store
) -> ProgramDefinition | None:
    """The program of a page, if it can be known without waiting on a part that is down."""
    from mentorflow.web.pages import load_definition_of

    program_id = program_in(path, signer)
    if program_id is None:
        return None
    if program_id in _RECENT:
        return _RECENT[program_id]
    try:
        return await asyncio.wait_for(load_definition_of(store, program_id), PROBE_SECONDS)
    except Exception:  # the database is down too, or the id is nonsense
        return None


class _TooLarge(Exception):
    """The request sends more than ``limits.REQUEST_LIMIT_BYTES``."""


class Guard:
    """ASGI middleware: the limit on what a request sends, and a page for every failure."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: Store,
        temporal: Client | None,
        signer: LinkSigner | None,
    ) -> None:
        self.app = app
        self.store = store
        self.temporal = temporal
        self.signer = signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > limits.REQUEST_LIMIT_BYTES:
            await self._page(scope, receive, send, notices.TOO_LARGE, 413)
            return
        received = 0
        body_done = False
        started = False

        async def counted() -> Message:
            nonlocal received, body_done
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limits.REQUEST_LIMIT_BYTES:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except ClientDisconnect:
            return  # nobody is left to answer
        except Exception as error:
            if started:  # the page was on its way: nothing better can be sent now
                raise
            if isinstance(error, _TooLarge):
                await self._page(scope, receive, send, notices.TOO_LARGE, 413)
                return
            if not body_done:
                await _drain(counted)
            if _connection_lost(error) or await self._down():
                log.warning(
                    "outage: %s %s answered 503 (%s: %s)",
                    scope.get("method"),
                    _path_only(scope),
                    error.__class__.__name__,
                    str(error).split("\n")[0][:160],
                )
                await self._page(scope, receive, send, notices.UNAVAILABLE, 503)
                return
            log.exception("error on %s %s", scope.get("method"), _path_only(scope))
            await self._page(scope, receive, send, notices.ERROR, 500)

    async def _down(self) -> bool:
        temporal, database = await asyncio.gather(
            temporal_down(self.temporal), database_down(self.store)
        )
        return temporal or database

    async def _page(
        self, scope: Scope, receive: Receive, send: Send, notice: Notice, status: int
    ) -> None:
        from mentorflow.web.pages import render_notice

        request = Request(scope, receive)
        definition = await program_of(scope.get("path", ""), self.signer, self.store)
        values = {"limit": f"{limits.REQUEST_LIMIT_BYTES // 1024 // 1024} MB"}
        response: Response = render_notice(
            request, definition, notice, status, bilingual=definition is None, **values
        )
        if status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        await response(scope, receive, send)


async def _drain(receive: Receive) -> None:
    """Read what is left of the request's body (its size is capped), so closing the
    connection after the answer does not reset it."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(PROBE_SECONDS):
            while True:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return


def _path_only(scope: Scope) -> str:
    # Tokens are credentials: the log names the kind of page, not the link.
    path = str(scope.get("path", ""))
    match = _TOKEN_PATH.match(path)
    return f"/{match.group(1)}/…" if match else path
