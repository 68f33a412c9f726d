"""Reminders before a date: one plan for the window, HR's decision, events and the survey.

A reminder is "``before`` ahead of ``date``". Its key names both, so when the
date moves the reminders of the new date are new reminders (sent at their
time) and those of the old date are simply never due again. A workflow keeps
the keys it has sent (or skipped) and asks three things of a plan: which
reminder is due now, which have passed without being sent (a date set or moved
too late for them: they are skipped, never sent late), and when to wake up next.

Pure functions of their arguments, so they are tested without Temporal
(``tests/test_reminders.py``) and safe in a workflow.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Reminder:
    key: str  # e.g. "reminder-86400s@2027-03-25T23:59:00+01:00"
    at: datetime
    before: timedelta  # how long before the date: the "time left" an email states


def plan(
    date: datetime, befores: Iterable[timedelta], *, prefix: str = "", earliest_first: bool = True
) -> list[Reminder]:
    """The reminders ``befores`` ahead of ``date``.

    ``earliest_first`` orders them by their time (the longest ``before`` first); without
    it they stay in the given order (a definition's own order, as events keep it).
    """
    ordered = sorted(befores, reverse=True) if earliest_first else list(befores)
    return [
        Reminder(
            f"{prefix}{int(before.total_seconds())}s@{date.isoformat()}", date - before, before
        )
        for before in ordered
    ]


def due(reminders: Iterable[Reminder], now: datetime, done: Collection[str]) -> Reminder | None:
    """The first reminder whose time has come and that was neither sent nor skipped."""
    return next((r for r in reminders if r.at <= now and r.key not in done), None)


def passed(reminders: Iterable[Reminder], now: datetime, done: Collection[str]) -> list[str]:
    """Keys of the reminders whose time has come, not yet sent or skipped: a date set or
    moved after them makes them too late, and they are skipped rather than sent late."""
    return list(dict.fromkeys(r.key for r in reminders if r.at <= now and r.key not in done))


def next_wake_up(reminders: Iterable[Reminder], done: Collection[str], date: datetime) -> datetime:
    """When to wake up: the next reminder not yet sent, or the date itself."""
    return min([*(r.at for r in reminders if r.key not in done), date])
