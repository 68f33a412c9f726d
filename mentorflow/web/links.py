"""The check every page reached from an email's link starts with, as one FastAPI dependency.

A route takes ``Annotated[OpenedLink, Depends(link_for(Purpose.X))]``: the ``{token}``
of its path, checked for that purpose, and the definition of the program it belongs
to. A token that cannot be used never reaches the route: the dependency raises
:class:`LinkRefused` with the page to show instead, and the app's one handler for it
(:func:`show_refusal`, registered in mentorflow.web.app) answers that page. An expired
link's page says until when it was valid and whom to ask, as its kind of link has it
(``_expired_page``); any other token that cannot be used, or one whose program is not
here, gets "this link is not valid".

What a link opens beyond its program (the application, the pair, the person, the
organisation) is the routers' to load; they refuse the same way, with
:class:`LinkRefused`. The check and the program need the app's signer and store:
:func:`use_links` gives them to the app (``app.state``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from mentorflow.definition import ProgramDefinition
from mentorflow.links import Link, LinkError, LinkSigner, Purpose
from mentorflow.store import Store
from mentorflow.web import notices
from mentorflow.web.pages import load_definition_of, render_notice, render_page, texts_of, when


class LinkRefused(Exception):
    """A link's page cannot be shown; ``response`` is the page said instead."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def show_refusal(request: Request, error: Exception) -> Response:
    """The app's handler for :class:`LinkRefused`: the page it carries."""
    assert isinstance(error, LinkRefused)
    return error.response


@dataclass(frozen=True)
class LinkChecking:
    """What checking a link needs: the app's signer, and the store its programs are in."""

    store: Store
    signer: LinkSigner


def use_links(app: FastAPI, store: Store, signer: LinkSigner) -> None:
    """Check the links of ``app``'s pages with ``signer``, their programs from ``store``."""
    app.state.link_checking = LinkChecking(store, signer)


def link_checking(request: Request) -> LinkChecking:
    """The app's :class:`LinkChecking` (a dependency)."""
    checking = request.app.state.link_checking
    assert isinstance(checking, LinkChecking)
    return checking


@dataclass(frozen=True)
class OpenedLink:
    """A checked link, and the program it belongs to."""

    link: Link
    definition: ProgramDefinition


def checked_link(purpose: Purpose) -> Callable[..., Awaitable[Link]]:
    """A dependency: the path's ``{token}`` checked for ``purpose``, or
    :class:`LinkRefused` with the page for a link that cannot be used."""

    async def check(
        request: Request,
        token: str,
        checking: Annotated[LinkChecking, Depends(link_checking)],
    ) -> Link:
        try:
            return checking.signer.check(token, purpose)
        except LinkError as error:
            raise LinkRefused(await _refusal(request, checking.store, error)) from None

    return check


def link_for(purpose: Purpose) -> Callable[..., Awaitable[OpenedLink]]:
    """A dependency: the path's ``{token}`` checked for ``purpose``, with its program's
    definition; else :class:`LinkRefused` with the page to show."""
    check = checked_link(purpose)

    async def opened(
        request: Request,
        token: str,
        checking: Annotated[LinkChecking, Depends(link_checking)],
    ) -> OpenedLink:
        link = await check(request, token, checking)
        definition = await load_definition_of(checking.store, link.program_id)
        if definition is None:
            raise LinkRefused(render_notice(request, None, notices.INVALID, 400))
        return OpenedLink(link, definition)

    return opened


async def _refusal(request: Request, store: Store, error: LinkError) -> HTMLResponse:
    """The page for a token that cannot be used: in its program's language, if it names
    one that is here (a changed token names none)."""
    definition = await load_definition_of(store, error.link.program_id) if error.link else None
    if error.reason == "expired" and error.link is not None:
        expired = await _expired_page(request, store, error.link, definition)
        if expired is not None:
            return expired
    return render_notice(request, definition, notices.INVALID, 400)


async def _expired_page(
    request: Request, store: Store, link: Link, definition: ProgramDefinition | None
) -> HTMLResponse | None:
    """What an expired link says, by its kind (None: "not valid", as the report's link
    and a link whose program is not here say)."""
    if link.purpose in (Purpose.CAPACITY, Purpose.REVIEW):  # HR's: ask the coordinators
        valid_until = when(link.expires_at, definition) if definition else ""
        return render_notice(request, definition, notices.HR_EXPIRED, 410, when=valid_until)
    if definition is None or link.purpose is Purpose.REPORT:
        return None
    if link.purpose is Purpose.EVALUATION:
        return render_notice(request, definition, notices.EVALUATION_CLOSED, 410)
    # An application's links and a check-in's: until when; an application's, whom to ask.
    said = texts_of(definition)
    body = said.gettext(
        "The link was valid until %(when)s.", when=when(link.expires_at, definition)
    )
    if link.purpose in (Purpose.APPROVAL, Purpose.WITHDRAWAL):
        application = await store.application(link.application_id)
        body += " " + said.gettext(
            "Contact %(contact)s for a new link or a decision.",
            contact=_hr_contact(definition, application),
        )
    title = said.gettext("This link has expired")
    return render_page(request, definition, title, body, status=410)


def _hr_contact(definition: ProgramDefinition, application: Any) -> str:
    """The first HR contact of the application's organisation (of the program's first
    organisation, without the application)."""
    organisation = next(
        (
            o
            for o in definition.organisations
            if application is not None and o.id == application.organisation_id
        ),
        definition.organisations[0],
    )
    contact = organisation.hr_contacts[0]
    return f"{contact.name} <{contact.email}>"
