"""When a pair is asked "have you met?": the definition's cadence laid out in time.

The cadence is counted in the program's wall-clock time, so a check-in due at
09:00 stays at 09:00 across daylight saving time, and "monthly" means the same
day next month (the last day of a shorter month).
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from mentorflow.definition import CadenceStep


def advance(moment: datetime, every: timedelta | str, zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone)
    if every == "monthly":
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        day = min(local.day, calendar.monthrange(year, month)[1])
        return local.replace(year=year, month=month, day=day)
    assert isinstance(every, timedelta)
    return (local.replace(tzinfo=None) + every).replace(tzinfo=zone)


def check_in_times(
    start: datetime, end: datetime, cadence: list[CadenceStep], timezone: str
) -> list[datetime]:
    """Each moment a check-in is due: one cadence interval after each expected meeting."""
    zone = ZoneInfo(timezone)
    points: list[datetime] = []
    moment = start
    for step in cadence:
        # Wall-clock too: "eight weeks" from 09:00 ends at 09:00, whatever DST did between.
        limit = advance(moment, step.for_, zone) if step.for_ is not None else end
        while True:
            following = advance(moment, step.every, zone)
            if following > limit or following >= end:
                break
            points.append(following)
            moment = following
    return points


def next_check_in(
    start: datetime,
    end: datetime,
    cadence: list[CadenceStep],
    timezone: str,
    after: datetime | None,
) -> datetime | None:
    """The first check-in due after ``after`` (the last one sent), or None when none is left."""
    return next(
        (t for t in check_in_times(start, end, cadence, timezone) if after is None or t > after),
        None,
    )
