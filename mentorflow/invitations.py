"""Calendar invitations (iCalendar, RFC 5545 and iTIP, RFC 5546) for the joint events.

Each event keeps one UID for its whole life, so a participant's calendar
replaces the entry when it moves (a REQUEST with a higher SEQUENCE) and removes
it when the event is cancelled (a CANCEL). Times are written in the program's
timezone with its VTIMEZONE, so "09:00 in Stockholm" stays 09:00 across
daylight saving time in every calendar client. The entry's title names the
program too ("Kick-off — Omvänt mentorskap 2027"): in a participant's calendar,
among everything else there, it says which program the event belongs to.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from icalendar import (  # type: ignore[import-untyped]
    Calendar,
    Event,
    vCalAddress,
    vText,
)

from mentorflow.definition import Contact
from mentorflow.models import CalendarEntry

Method = Literal["REQUEST", "CANCEL"]
PRODID = "-//mentorflow//mentorflow invitations//EN"


def event_uid(program_id: str, event_id: str, domain: str) -> str:
    """The event's UID: the same for every participant and every version of the event."""
    return f"{program_id}.{event_id}@{domain}"


def event_summary(title: str, program_name: str) -> str:
    """The event's title as calendars and subjects show it: with the program's name.

    A title that already names the program keeps its own words.
    """
    if not program_name or program_name.casefold() in title.casefold():
        return title
    return f"{title} — {program_name}"


def invitation(
    entry: CalendarEntry,
    *,
    method: Method,
    program_id: str,
    program_name: str,
    timezone: str,
    organizer: Contact,
    attendee: str,
    attendee_name: str | None,
    domain: str,
    stamp: datetime,
) -> str:
    """The text/calendar body of one invitation (or cancellation) for one attendee."""
    zone = ZoneInfo(timezone)
    source = entry.event
    event = Event()
    event.add("uid", event_uid(program_id, source.id, domain))
    event.add("sequence", entry.sequence)
    # DTSTAMP is when this version of the invitation was made; it is the
    # workflow's time of the change, so a retried send carries the same one.
    event.add("dtstamp", stamp)
    event.add("dtstart", source.starts.astimezone(zone))
    event.add("dtend", (source.starts + source.duration).astimezone(zone))
    event.add("summary", event_summary(source.title, program_name))
    description = "\n\n".join(part for part in (source.description, source.online_url) if part)
    if description:
        event.add("description", description)
    location = ", ".join(part for part in (source.place, source.online_url) if part)
    if location:
        event.add("location", location)
    if source.online_url:
        event.add("url", source.online_url)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    boss = vCalAddress(f"mailto:{organizer.email}")
    boss.params["cn"] = vText(organizer.name)
    event.add("organizer", boss)
    guest = vCalAddress(f"mailto:{attendee}")
    if attendee_name:
        guest.params["cn"] = vText(attendee_name)
    guest.params["role"] = vText("REQ-PARTICIPANT")
    guest.params["partstat"] = vText("NEEDS-ACTION")
    guest.params["rsvp"] = vText("FALSE")
    event.add("attendee", guest)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    calendar.add_component(event)
    # The VTIMEZONE for the TZID used, from the tz database; the year around the
    # event is all a client needs, and keeps the part small.
    local = source.starts.astimezone(zone).date()
    calendar.add_missing_timezones(
        first_date=date(local.year, 1, 1), last_date=date(local.year + 2, 1, 1)
    )
    return str(calendar.to_ical().decode())
