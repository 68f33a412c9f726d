"""Render an email from its template, in the program's language, with local dates.

Each email is two templates, for every language: ``<name>.txt`` (the subject on
its first line, a blank line, then the plain-text body) and ``<name>.html``
(autoescaped, so nothing anyone typed can inject markup). Their sentences are
English messages, ``{{ _("Hello %(name)s,", name=...) }}``, which the language's
gettext catalog translates (mentorflow.i18n); the HTML part and the text part
share a message where they say the same, the HTML's emphasis added by the
``strong`` and ``struck`` filters, which leave a text part's value as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_timedelta
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    pass_eval_context,
    select_autoescape,
)
from jinja2.nodes import EvalContext
from markupsafe import Markup, escape

from mentorflow import i18n
from mentorflow.definition import Language
from mentorflow.invitations import event_summary
from mentorflow.models import EmailFacts, EmailTemplate

# One format for emails, pages and the report.
from mentorflow.moments import DATE_PATTERNS, DATETIME_PATTERNS, LOCALES

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    # A calendar invitation: the text/calendar body and its iTIP method.
    calendar: str | None = None
    calendar_method: str | None = None
    # Whom a reply goes to, (name, address): the program's first contact.
    reply_to: tuple[str, str] | None = None


@pass_eval_context
def strong(eval_ctx: EvalContext, value: Any) -> Any:
    """``value`` in bold in an HTML part; as it is in a text part."""
    return Markup("<strong>%s</strong>") % value if eval_ctx.autoescape else value


@pass_eval_context
def struck(eval_ctx: EvalContext, value: Any) -> Any:
    """``value`` struck through in an HTML part (a date that no longer holds)."""
    return Markup("<s>%s</s>") % value if eval_ctx.autoescape else value


def paragraphs(text: str) -> Markup:
    """Plain text as HTML paragraphs, escaped: a blank line starts a paragraph,
    a line break stays one."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip())]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(Markup("<br>\n").join(escape(line) for line in b.split("\n")))
        for b in blocks
        if b
    )


@cache
def _environment(language: Language, timezone: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    i18n.install(env, language)
    zone, locale = ZoneInfo(timezone), LOCALES[language]

    def when(value: datetime) -> str:
        return format_datetime(value.astimezone(zone), DATETIME_PATTERNS[language], locale=locale)

    def day(value: datetime) -> str:
        return format_datetime(value.astimezone(zone), DATE_PATTERNS[language], locale=locale)

    def duration(value: timedelta) -> str:
        return format_timedelta(value, threshold=1.0, locale=locale)

    env.filters.update(
        when=when,
        day=day,
        duration=duration,
        paragraphs=paragraphs,
        strong=strong,
        struck=struck,
        # A joint event's title with its program's name, as the calendar entry has it.
        event_summary=event_summary,
    )
    return env


def render(template: EmailTemplate, facts: EmailFacts, **extra: Any) -> RenderedEmail:
    """Render ``template`` in the language of ``facts``; dates in the program's timezone."""
    env = _environment(facts.language, facts.timezone)
    context = {"facts": facts, **extra}
    text = env.get_template(f"{template}.txt").render(context)
    subject, _, body = text.partition("\n\n")
    html = env.get_template(f"{template}.html").render(context, subject=subject.strip())
    # Optional paragraphs leave runs of blank lines behind; one is enough.
    body = re.sub(r"\n{3,}", "\n\n", body.strip()) + "\n"
    first = facts.contacts[0] if facts.contacts else None
    return RenderedEmail(
        subject=" ".join(subject.split()),
        text=body,
        html=html,
        reply_to=(first.name, str(first.email)) if first is not None else None,
    )
