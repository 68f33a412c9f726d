"""Every sentence a person reads, in the program's language: gettext, and numbers by Babel.

The source language is English: a message's id is its English text, with named
placeholders (``%(when)s``) and, where a count appears, both its forms
(``ngettext("%(num)s pair", "%(num)s pairs", n)``), the one the language's plural
rule chooses ("1 godkänd", "2 godkända"). Each other language has one gettext
catalog, ``mentorflow/locale/<language>/LC_MESSAGES/messages.po``; English needs
none, its text being the ids.

The catalogs are read from their .po files when a language is first needed (then
kept): Babel parses the .po and compiles it in memory, and gettext serves it. No
.mo file is built or committed, so a fresh clone, an editable install and the wheel
all translate without a build step, and the .po that translators edit and review
is the only copy there is. Fuzzy entries (a translator's guess, not yet confirmed)
are left out, and tests/test_i18n.py fails while any message is fuzzy or lacks its
Swedish.

Adding or changing a text (mentorflow/locale/README.md has the exact commands):

1. Write the English where it is said: ``t.gettext("...")`` or ``t.ngettext(...)``
   on :func:`texts` in Python, ``N_("...")`` for a text translated later;
   ``{{ _("...", name=value) }}`` or ``{{ ngettext(...) }}`` in a template.
2. ``pybabel extract`` (mapping: mentorflow/locale/babel.cfg), then ``pybabel update``
   to merge the new messages into each catalog.
3. Write the Swedish of every empty ``msgstr`` in
   ``mentorflow/locale/sv/LC_MESSAGES/messages.po``; run ``pytest tests/test_i18n.py``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache, cached_property
from gettext import NullTranslations
from pathlib import Path
from typing import Any, cast

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import Translations
from jinja2 import Environment
from jinja2.runtime import Context
from jinja2.utils import pass_context
from markupsafe import Markup

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
LOCALES = {"sv": "sv_SE", "en": "en_GB"}


def N_(message: str) -> str:
    """Mark ``message`` for the catalog without translating it now (gettext_noop)."""
    return message


def catalog_path(language: str) -> Path:
    """Where the catalog of ``language`` is (English has none: its text is the ids)."""
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> NullTranslations:
    """The catalog of ``language``, read from its .po and compiled in memory, once."""
    path = catalog_path(str(language))
    if not path.is_file():
        return NullTranslations()  # English: every message is its own id
    with path.open("rb") as po:
        catalog = read_po(po, locale=LOCALES.get(str(language), str(language)))
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


@cache
def _locale(language: str) -> Locale:
    return Locale.parse(LOCALES.get(str(language), "en_GB"))


def number(value: float, language: str, *, decimals: int | None = None) -> str:
    """``value`` in ``language``: grouped thousands, the language's decimal sign.

    Swedish: a decimal comma and thousands grouped with a (no-break) space, "3,6" and
    "15 000"; English: "3.6" and "15,000". ``decimals``: exactly so many decimals
    ("2,00"); None: as many as it has, up to three, none for a whole number.
    """
    if decimals is None:
        pattern = "#,##0.###"
    else:
        pattern = "#,##0." + "0" * decimals if decimals > 0 else "#,##0"
    return str(format_decimal(value, pattern, locale=_locale(language)))


def percent(fraction: float, language: str) -> str:
    """A share (0.6) as a percentage: "60 %" in Swedish, "60%" in English."""
    return str(format_percent(fraction, locale=_locale(language)))


@dataclass(frozen=True)
class Texts:
    """The messages and numbers of one language."""

    language: str

    @cached_property
    def translations(self) -> NullTranslations:
        return translations(self.language)

    def gettext(self, message: str, /, **values: Any) -> str:
        """``message`` in the language, its ``%(name)s`` placeholders filled from ``values``."""
        return self.translations.gettext(message) % values

    def ngettext(self, singular: str, plural: str, n: int, /, **values: Any) -> str:
        """The form of the message that the count ``n`` takes in the language;
        ``%(num)s`` is ``n`` as the language writes it ("15 000")."""
        values.setdefault("num", self.number(n))
        return self.translations.ngettext(singular, plural, n) % values

    def number(self, value: float, decimals: int | None = None) -> str:
        return number(value, self.language, decimals=decimals)

    def percent(self, fraction: float) -> str:
        return percent(fraction, self.language)


@cache
def texts(language: str) -> Texts:
    """The :class:`Texts` of ``language`` ("sv", "en", or a ``Language``)."""
    return Texts(str(language))


def install(env: Environment, language: str) -> None:
    """Give a Jinja environment the messages and numbers of ``language``.

    jinja2.ext.i18n in its new style: ``{{ _("Hello %(name)s,", name=who) }}``, values
    escaped where the template autoescapes, a count's ``%(num)s`` written as the
    language writes numbers; and the filter ``number`` ("3,6" in Swedish).
    """
    t = texts(language)
    env.add_extension("jinja2.ext.i18n")
    cast(Any, env).install_gettext_translations(t.translations, newstyle=True)

    @pass_context
    def ngettext(context: Context, singular: str, plural: str, n: int, /, **values: Any) -> str:
        values.setdefault("num", t.number(n))
        translated = t.translations.ngettext(singular, plural, n)
        if context.eval_ctx.autoescape:
            translated = Markup(translated)
        return translated % values

    env.globals["ngettext"] = ngettext
    env.filters["number"] = t.number
