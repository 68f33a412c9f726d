"""What every page uses: the templates in the program's language, a page and a notice,
the program's definition as it was started, and why an update was refused."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from temporalio.client import WorkflowUpdateFailedError

from mentorflow import i18n, moments, refusals
from mentorflow.definition import ProgramDefinition, is_slug, stored_definition
from mentorflow.i18n import Texts
from mentorflow.store import Store
from mentorflow.store.tables import Program
from mentorflow.web.notices import Notice
from mentorflow.web.outage import remember


@cache
def templates(language: str) -> Jinja2Templates:
    """The pages' templates, saying their messages and numbers in ``language``."""
    pages = Jinja2Templates(directory=Path(__file__).parent / "templates")
    i18n.install(pages.env, language)
    return pages


def when(moment: datetime, definition: ProgramDefinition) -> str:
    """A moment as the program's people read it: their language, their timezone."""
    return moments.when(moment, definition.timezone, definition.language)


def texts_of(definition: ProgramDefinition | None) -> Texts:
    """The messages of the program's language (English without a program)."""
    return i18n.texts(definition.language.value if definition else "en")


def render_page(
    request: Request,
    definition: ProgramDefinition | None,
    title: str,
    body: str,
    *,
    status: int = 200,
    form: dict[str, Any] | None = None,
    others: list[tuple[str, str, str]] | None = None,
    details: list[tuple[str, list[str]]] | None = None,
) -> HTMLResponse:
    """A page; ``others``: the same page in more languages, as (language, title, body);
    ``details``: headed lists below the body, as (heading, lines)."""
    language = definition.language.value if definition else "en"
    return templates(language).TemplateResponse(
        request,
        "page.html",
        {
            "lang": language,
            "title": title,
            "body": body,
            "form": form,
            "program": definition,
            "others": others or [],
            "details": details or [],
        },
        status_code=status,
    )


def render_notice(
    request: Request,
    definition: ProgramDefinition | None,
    notice: Notice,
    status: int = 200,
    *,
    bilingual: bool = False,
    **values: Any,
) -> HTMLResponse:
    """A page saying ``notice`` (its body's placeholders filled from ``values``);
    ``bilingual``: in Swedish too, for a page whose program (and so its language) is
    not known."""
    others = []
    if bilingual and definition is None:
        sv = i18n.texts("sv")
        others.append(("sv", sv.gettext(notice.title), sv.gettext(notice.body, **values)))
    t = texts_of(definition)
    return render_page(
        request,
        definition,
        t.gettext(notice.title),
        t.gettext(notice.body, **values),
        status=status,
        others=others,
    )


def refusal(error: WorkflowUpdateFailedError) -> tuple[str, str]:
    """(kind, detail) of a refused update: its type (mentorflow.refusals), and why."""
    refused = refusals.of(error)
    return refused.kind, refused.detail


async def load_definition_of(store: Store, program_id: str) -> ProgramDefinition | None:
    """The program's definition as it was started (from the database)."""
    return definition_of(await load_program_row(store, program_id))


async def load_program_row(store: Store, program_id: str) -> Program | None:
    """The program's row, or None (also for what is not an id: a NUL would reach
    PostgreSQL, which refuses it)."""
    return await store.program(program_id) if is_slug(program_id) else None


def definition_of(row: Program | None) -> ProgramDefinition | None:
    """The definition a program's row holds, as it was started."""
    if row is None or not row.definition:
        # No definition here: the program's workflow registered itself in this database,
        # but it was started against another one (a misconfigured `program start`).
        return None
    definition = stored_definition(row.definition)
    remember(definition)
    return definition
