"""The translations: every message of the code and the templates is in the Swedish
catalog, translated (not fuzzy, placeholders kept), and what a Swedish program sends
and shows comes out in Swedish. No server needed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import get_args

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po
from starlette.requests import Request

from mentorflow import i18n
from mentorflow.definition import Language
from mentorflow.mail.render import render
from mentorflow.models import EmailTemplate
from mentorflow.report import report_html
from mentorflow.web import notices
from mentorflow.web.participants import render_notice
from tests.test_mail_layout import LINKS, facts
from tests.test_numbers import a_report

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "mentorflow" / "locale"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def catalog(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as po:
        return read_po(po, locale=locale)


def key(message: Message) -> tuple[str | None, str | tuple[str, ...]]:
    """A message as gettext finds it: its context and its id (both forms, if plural)."""
    return message.context, message.id if isinstance(message.id, str) else tuple(message.id)


def swedish() -> Catalog:
    return catalog(i18n.catalog_path("sv"), "sv")


def messages(of: Catalog) -> list[Message]:
    return [m for m in of if m.id]


def forms(text: str | tuple[str, ...] | list[str] | None) -> list[str]:
    """A message's id or translation as a list: one text, or each plural form."""
    return [text] if isinstance(text, str) else list(text or [])


def test_every_message_has_its_swedish() -> None:
    sv = swedish()
    assert sv.plural_forms == "nplurals=2; plural=(n != 1);"
    untranslated = [
        m.id for m in messages(sv) if m.fuzzy or not forms(m.string) or not all(forms(m.string))
    ]
    assert not untranslated, f"no Swedish (or only a fuzzy guess) for: {untranslated}"
    # Each plural message has both of Swedish's forms.
    for message in messages(sv):
        if message.pluralizable:
            assert isinstance(message.string, tuple) and len(message.string) == 2, message.id
    # Placeholders: a translation names the same ones as its English (Babel's checkers).
    problems = [(m.id, [str(e) for e in errors]) for m, errors in sv.check()]
    assert not problems
    for message in messages(sv):
        ids, strings = forms(message.id), forms(message.string)
        wanted = set().union(*(PLACEHOLDER.findall(i) for i in ids))
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) <= wanted, message.id
            # A plural's forms may leave out the count; a message may not lose anything else.
            assert wanted - {"num"} <= set(PLACEHOLDER.findall(string)), message.id
    assert not sv.obsolete, "obsolete messages: update with --ignore-obsolete"


def test_the_catalog_holds_exactly_the_messages_of_the_code_and_templates(
    tmp_path: Path,
) -> None:
    """What `pybabel extract` (mentorflow/locale/README.md) finds now is what the Swedish
    catalog translates: nothing said untranslated, nothing translated that is not said."""
    template = tmp_path / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            str(LOCALE / "babel.cfg"),
            "-c",
            "TRANSLATORS:",
            "--no-wrap",
            "-o",
            str(template),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    extracted = {key(m) for m in messages(catalog(template))}
    translated = {key(m) for m in messages(swedish())}
    assert len(extracted) > 300  # the emails, the pages and the report, all found
    missing, unused = extracted - translated, translated - extracted
    assert not missing, (
        f"not in the catalog (pybabel update, README.md): {sorted(map(str, missing))}"
    )
    assert not unused, (
        f"no longer said (pybabel update --ignore-obsolete): {sorted(map(str, unused))}"
    )


@cache
def english_fragments() -> dict[str, str]:
    """Each message's English words (between its placeholders) that its Swedish does not
    have, long enough to be sure they are English: none may show in a Swedish text."""
    fragments: dict[str, str] = {}
    for message in messages(swedish()):
        for english in forms(message.id):
            for fragment in PLACEHOLDER.split(english)[::2]:
                fragment = fragment.strip(" ,.:;()")
                if len(fragment) >= 12 and not any(fragment in s for s in forms(message.string)):
                    fragments[fragment] = english
    return fragments


@pytest.mark.parametrize("template", get_args(EmailTemplate))
def test_a_swedish_email_is_in_swedish(template: EmailTemplate) -> None:
    rendered = render(template, facts(Language.SV), links=LINKS)
    english = render(template, facts(Language.EN), links=LINKS)
    assert rendered.subject != english.subject and rendered.text != english.text
    for text in (rendered.subject, rendered.text, rendered.html):
        leaked = [f for f in english_fragments() if f in text]
        assert not leaked, leaked
    assert "Frågor? Kontakta:" in rendered.text or "Programmets kontakter:" in rendered.text


def test_the_words_of_a_swedish_email_and_its_counts() -> None:
    intro = render("pair_introduction", facts(Language.SV), links=LINKS)
    assert intro.subject == "Välkommen till Omvänt mentorskap 2027: möt Kim Ek"
    assert intro.text.startswith("Hej Åsa Öberg,\n\nvälkommen till Omvänt mentorskap 2027!")
    assert "<strong>Så kommer ni i gång:</strong> Ni träffas först på kick-offen." in intro.html
    review = render("match_review", facts(Language.SV).model_copy(update={"pairs": 1}), links=LINKS)
    assert "matchningen föreslår 1 par för Omvänt mentorskap 2027; 1 deltagare kunde" in (
        review.text
    )
    english = render(
        "match_review", facts(Language.EN).model_copy(update={"pairs": 1}), links=LINKS
    )
    assert "proposed 1 pair for Omvänt mentorskap 2027; 1 participant could not" in english.text
    rows = facts(Language.SV).capacity_rows[0].model_copy(update={"approved": 1, "cap": None})
    capacity = render(
        "capacity_request",
        facts(Language.SV).model_copy(update={"capacity_rows": [rows]}),
        links=LINKS,
    )
    assert "- Junior mentor: 1 godkänd\n" in capacity.text  # not "1 godkända"


def test_a_swedish_page_and_report_are_in_swedish() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    page = render_notice(request, None, notices.TOO_LARGE, 413, bilingual=True, limit="2 MB")
    body = bytes(page.body).decode()
    # No program, so no language: English first, then the same in Swedish.
    assert "<h1>The form is too large</h1>" in body
    assert '<section lang="sv"' in body and "<h2>Formuläret är för stort</h2>" in body
    assert "större än något formulär här tar emot (2 MB)" in body
    report = report_html(a_report("sv"))
    assert "<h1>Programrapport: P</h1>" in report and "Träffar per par" in report
    assert not [f for f in english_fragments() if f in report]


def test_texts_in_python_and_the_source_language() -> None:
    sv, en = i18n.texts("sv"), i18n.texts(Language.EN)
    assert sv.gettext("Apply as %(title)s", title="mentor") == "Ansök som mentor"
    assert en.gettext("Apply as %(title)s", title="mentor") == "Apply as mentor"
    assert sv.ngettext("%(num)s meeting", "%(num)s meetings", 1) == "1 träff"
    assert sv.ngettext("%(num)s meeting", "%(num)s meetings", 2000) == "2\u00a0000 träffar"
    assert en.ngettext("%(num)s meeting", "%(num)s meetings", 2000) == "2,000 meetings"
    # A value is never read as a placeholder, whatever it holds.
    assert en.gettext("Reason: %(reason)s", reason="100%(x)s") == "Reason: 100%(x)s"
