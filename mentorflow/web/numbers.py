"""Numbers and counts as the program's language writes them, by Babel (CLDR).

Swedish: a decimal comma and thousands grouped with a (no-break) space, "3,6" and
"15 000"; English: "3.6" and "15,000". A count comes with its noun in the form
the number takes ("1 godkänd", "2 godkända"; "1 pair", "2 pairs"), chosen by the
language's plural rule, as gettext's ngettext would.
"""

from __future__ import annotations

from functools import cache

from babel import Locale
from babel.numbers import format_decimal, format_percent

from mentorflow.web.texts import PLURALS

LOCALES = {"sv": "sv_SE", "en": "en_GB"}


@cache
def _locale(language: str) -> Locale:
    return Locale.parse(LOCALES.get(str(language), "en_GB"))


def number(value: float, language: str, *, decimals: int | None = None) -> str:
    """``value`` in ``language``: grouped thousands, the language's decimal sign.

    ``decimals``: exactly so many decimals ("2,00"); None: as many as it has, up to
    three, none for a whole number ("3,6", "15 000").
    """
    if decimals is None:
        pattern = "#,##0.###"
    else:
        pattern = "#,##0." + "0" * decimals if decimals > 0 else "#,##0"
    return str(format_decimal(value, pattern, locale=_locale(language)))


def percent(fraction: float, language: str) -> str:
    """A share (0.6) as a percentage: "60 %" in Swedish, "60%" in English."""
    return str(format_percent(fraction, locale=_locale(language)))


def plural_form(count: float, language: str) -> str:
    """The CLDR plural category of ``count`` in ``language``: "one" or "other" (and so on)."""
    return str(_locale(language).plural_form(count))


def count(value: float, key: str, language: str) -> str:
    """``value`` with its noun, from ``PLURALS[language][key]``: "1 godkänd", "15 000 par"."""
    forms = PLURALS[str(language)][key]
    form = forms.get(plural_form(value, language), forms["other"])
    return form.format(n=number(value, language))
