"""Moments as a program's people read them: in its language and its timezone, one
format for emails, pages and the report ("torsdag 8 april 2027 kl. 23:59")."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from mentorflow.definition import Language

LOCALES = {Language.SV: "sv_SE", Language.EN: "en_GB"}
DATETIME_PATTERNS = {
    Language.SV: "EEEE d MMMM y 'kl.' HH:mm",
    Language.EN: "EEEE d MMMM y 'at' HH:mm",
}
DATE_PATTERNS = {Language.SV: "d MMMM y", Language.EN: "d MMMM y"}


def when(moment: datetime, timezone: str, language: Language | str) -> str:
    """A date and time, e.g. "torsdag 8 april 2027 kl. 23:59"."""
    language = Language(language)
    local = moment.astimezone(ZoneInfo(timezone))
    return format_datetime(local, DATETIME_PATTERNS[language], locale=LOCALES[language])


DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS: tuple[str, ...] = ("January", "February", "March", "April", "May", "June", "July")
MONTHS += ("August", "September", "October", "November", "December")


def stamp(moment: datetime, timezone: str) -> str:
    """A moment as HR's CLI and refusals write it: the English of the program's emails with
    the zone named, e.g. "Thursday 8 April 2027 at 23:59 CEST", since the reader may sit
    elsewhere.

    Without Babel: workflows refuse with it (a moved date in the past), and Babel's
    locale data is loaded from files behind a lock, which a workflow must not do.
    """
    local = moment.astimezone(ZoneInfo(timezone))
    return (
        f"{DAYS[local.weekday()]} {local.day} {MONTHS[local.month - 1]} {local.year}"
        f" at {local:%H:%M} {local.tzname()}"
    )


def day(moment: datetime, timezone: str, language: Language | str) -> str:
    """A date, e.g. "8 april 2027"."""
    language = Language(language)
    local = moment.astimezone(ZoneInfo(timezone))
    return format_datetime(local, DATE_PATTERNS[language], locale=LOCALES[language])
