"""The link check every emailed link's page starts with is one FastAPI dependency
(mentorflow.web.links): every route that takes a token declares it, and a forged, an
expired and a wrong-purpose token get the same refusal on every method of every route,
before the route runs (the fake Temporal here would fail any route that did).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from markupsafe import escape
from starlette.routing import BaseRoute

from mentorflow import i18n
from mentorflow.definition import ProgramDefinition
from mentorflow.links import LinkSigner, Purpose
from mentorflow.store import Store
from mentorflow.web import notices, outage
from mentorflow.web.app import create_app
from mentorflow.web.links import checked_link, link_for
from mentorflow.web.pages import when
from tests.test_hostile import program_with_people, web_app, web_settings
from tests.test_web import BusyTemporal

# Every route that takes a token: (method, kind of link, path after the token).
ROUTES = [
    (method, kind, rest)
    for kind, methods, rest in (
        ("a", ("GET", "HEAD", "POST"), ""),
        ("w", ("GET", "HEAD", "POST"), ""),
        ("c", ("GET", "HEAD", "POST"), ""),
        ("r", ("GET", "HEAD", "POST"), ""),
        ("k", ("GET", "HEAD", "POST"), ""),
        ("e", ("GET", "HEAD", "POST"), ""),
        ("report", ("GET", "HEAD"), ""),
        ("report", ("GET",), "/report.csv"),
    )
    for method in methods
]
# Each kind of link's purpose, as the app reads it off a page's path.
PURPOSES = outage._PURPOSES
EXPIRED_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SV = i18n.texts("sv")


def test_every_route_that_takes_a_token_checks_it_with_the_one_dependency(store: Store) -> None:
    app = create_app(web_settings(), store, temporal=BusyTemporal())  # type: ignore[arg-type]
    checks = (link_for(Purpose.APPROVAL), checked_link(Purpose.APPROVAL))
    names = {check.__qualname__ for check in checks}

    def checked(dependant: Dependant) -> bool:
        return any(
            getattr(d.call, "__qualname__", None) in names or checked(d)
            for d in dependant.dependencies
        )

    token_routes = [route for route in api_routes(app.routes) if "{token}" in route.path]
    unchecked = [route.path for route in token_routes if not checked(route.dependant)]
    assert not unchecked, f"routes that take a token without the link check: {unchecked}"
    # ... and each is tried below.
    assert sorted((m, route.path) for route in token_routes for m in route.methods or ()) == sorted(
        (method, f"/{kind}/{{token}}{rest}") for method, kind, rest in ROUTES
    )


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """The app's routes, those of the routers it includes too (newer FastAPIs keep an
    included router whole, as its ``original_router``; no prefixes here)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


def refusals(
    definition: ProgramDefinition, tokens: dict[str, str], signer: LinkSigner, kind: str
) -> dict[str, str]:
    """A forged, an expired and a wrong-purpose twin of the kind's good token."""
    good = tokens[kind]
    link = signer.check(good, PURPOSES[kind])
    expired = signer.make(
        program_id=link.program_id,
        application_id=link.application_id,
        purpose=link.purpose,
        email="anyone@example.org",
        expires_at=EXPIRED_AT,
    )
    other = next(token for other, token in tokens.items() if other != kind)
    return {
        "forged": good[:-3] + ("abc" if not good.endswith("abc") else "xyz"),
        "expired": expired,
        "wrong_purpose": other,
    }


def expected(definition: ProgramDefinition, kind: str, refusal: str) -> tuple[int, list[str]]:
    """(status, what the page says) for a refused token of a kind of link."""
    if refusal == "forged":  # names no program: English, the only guess
        return 400, [notices.INVALID.title, notices.INVALID.body]
    invalid = [SV.gettext(notices.INVALID.title), SV.gettext(notices.INVALID.body)]
    if refusal == "wrong_purpose" or kind == "report":  # the report's link only is valid
        return 400, invalid
    until = when(EXPIRED_AT, definition)
    if kind in ("c", "r"):
        return 410, [
            SV.gettext(notices.HR_EXPIRED.title),
            SV.gettext(notices.HR_EXPIRED.body, when=until),
        ]
    if kind == "e":
        return 410, [
            SV.gettext(notices.EVALUATION_CLOSED.title),
            SV.gettext(notices.EVALUATION_CLOSED.body),
        ]
    says = [
        SV.gettext("This link has expired"),
        SV.gettext("The link was valid until %(when)s.", when=until),
    ]
    if kind in ("a", "w"):  # whom to ask for a new link: the application's HR contact
        says.append("hr@demo.example.org")
    return 410, says


@pytest.mark.parametrize(("method", "kind", "rest"), ROUTES, ids=lambda v: v or "page")
async def test_a_forged_expired_or_wrong_purpose_token_gets_the_same_refusal_on_every_route(
    store: Store, method: str, kind: str, rest: str
) -> None:
    settings_ = web_settings()
    signer = LinkSigner(settings_.secret_keys)
    definition, tokens, _ = await program_with_people(store, signer)
    answers: dict[str, httpx.Response] = {}
    async with web_app(settings_, BusyTemporal(), store) as http:
        for refusal, token in refusals(definition, tokens, signer, kind).items():
            form = {"choice": "approve"} if method == "POST" else None
            answers[refusal] = await http.request(method, f"/{kind}/{token}{rest}", data=form)
    for refusal, answer in answers.items():
        status, says = expected(definition, kind, refusal)
        where = (method, kind, rest, refusal)
        assert answer.status_code == status, (*where, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html"), where
        assert answer.headers["cache-control"] == "no-store", where  # the security headers too
        if method == "HEAD":
            assert answer.content == b"", where
            continue
        for said in says:
            assert str(escape(said)) in answer.text, (*where, said)
        # The program's page, in its language; a forged token names no program.
        assert (definition.name in answer.text) is (refusal != "forged"), where
        assert (str(escape(SV.gettext(notices.INVALID.title))) in answer.text) is (
            refusal == "wrong_purpose" or (kind == "report" and refusal == "expired")
        ), where
