"""The running program: its calendar, its pairs, their check-ins and closings."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
)

from mentorflow.definition import (
    Contact,
    Event,
    Meetings,
)
from mentorflow.models.email import EmailFacts, EmailTemplate, LinkRequest
from mentorflow.models.lifecycle import PairRef


class CalendarEntry(BaseModel):
    """A joint event (the kick-off or a session) as the participants have it in their calendars.

    ``sequence`` is the iCalendar SEQUENCE: raised on every change of date or
    time, so calendars replace the entry (same UID) instead of adding one.
    """

    event: Event
    sequence: int = 0
    cancelled: bool = False
    sent_sequence: int | None = None  # the sequence every current participant has been sent
    reminders_done: list[str] = Field(default_factory=list)
    # the start before the last move, for the update email
    previous_starts: AwareDatetime | None = None


class PairEntry(BaseModel):
    """A running pair as the program tracks it: ids only, no personal data."""

    mentor_id: str
    adept_id: str
    status: Literal["active", "closed", "ended"] = "active"
    started: bool = False  # its workflow has been started
    rematch: bool = False  # paired by HR after a withdrawal: its workflow introduces the two
    # organisation/profile of each, for the tally when one withdraws (thin programs).
    mentor_group: str = ""
    adept_group: str = ""


class OpenPairsInput(BaseModel):
    program_id: str
    proposal: int | None = None  # the confirmed proposal's pairs; None with ``pairs``
    pairs: list[PairRef] = Field(default_factory=list)  # a re-match
    at: AwareDatetime


class OpenedPair(BaseModel):
    pair_id: str
    mentor_id: str
    adept_id: str
    mentor_group: str = ""  # organisation/profile
    adept_group: str = ""


class OpenPairsResult(BaseModel):
    pairs: list[OpenedPair]


CalendarEmailKind = Literal["invitation", "reminder"]


class CalendarEmailInput(BaseModel):
    """Invitations (or reminders) for one joint event to every current participant.

    The recipients are read from the database when the activity runs, so the
    people's addresses never enter the workflow's history.
    """

    program_id: str
    entry: CalendarEntry
    kind: CalendarEmailKind
    facts: EmailFacts
    organizer: Contact
    reminder_key: str = ""
    time_left: timedelta | None = None
    at: AwareDatetime  # when this version of the event was decided (the DTSTAMP)


CheckInAnswer = Literal["yes", "not_yet", "need_help", "1", "2", "3", "4", "5"]


CHECK_IN_ANSWERS: tuple[str, ...] = ("yes", "not_yet", "need_help")


PULSE_ANSWERS: tuple[str, ...] = ("1", "2", "3", "4", "5")


PULSE = "pulse"  # the mid-point check's number


class PairState(BaseModel):
    """What a pair carries across continue-as-new."""

    check_ins_sent: int = 0
    last_check_in_at: AwareDatetime | None = None
    last_met: AwareDatetime | None = None
    answers: dict[str, dict[str, str]] = Field(default_factory=dict)  # number -> role -> answer
    stalled_flagged_for: AwareDatetime | None = None  # the last_met a stall was flagged for
    pulse_sent: bool = False
    fingerprints: dict[str, str] = Field(default_factory=dict)  # fingerprint -> role
    runs: int = 1


class PairInput(BaseModel):
    """What ``PairWorkflow`` is started with; ``state`` only when it continues as new."""

    program_id: str
    pair_id: str
    mentor_id: str
    adept_id: str
    start: AwareDatetime
    end: AwareDatetime
    meetings: Meetings
    facts: EmailFacts
    hr: list[str]  # who hears of a stalled pair or a call for help: the coordinators
    introduce: bool = False  # a re-match: introduce the two first (matching introduced the rest)
    state: PairState | None = None
    check_ins_per_run: int = Field(
        12, ge=1, description="Check-ins after which the pair continues as new."
    )


class PairDates(BaseModel):
    start: AwareDatetime
    end: AwareDatetime


class CheckInRequest(BaseModel):
    """An answer from a check-in link; ``fingerprint`` says who the link was sent to."""

    number: str  # "1", "2", ... or PULSE
    answer: CheckInAnswer
    fingerprint: str


class CheckInResult(BaseModel):
    number: str
    answer: str
    role: str


class PairClosure(BaseModel):
    """A participant leaves while the program runs (HR records it)."""

    application_id: str
    reason: str = Field("", max_length=500)
    by: str = Field("hr", max_length=320)


class PairClosed(BaseModel):
    """The pair's word to its program: it ran to the end, or who left and who remains."""

    pair_id: str
    status: Literal["closed", "ended"] = "closed"
    withdrawn_id: str | None = None  # with "closed"
    remaining_id: str | None = None


class RematchRequest(BaseModel):
    """HR pairs the remaining participant of a closed pair with someone from the wait-list."""

    remaining_id: str
    partner_id: str
    by: str = Field("hr", max_length=320)


class PairStatus(BaseModel):
    pair_id: str
    status: Literal["active", "closed", "ended"]
    check_ins_sent: int
    next_check_in: AwareDatetime | None
    last_met: AwareDatetime | None
    answers: dict[str, dict[str, str]]
    stalled: bool
    runs: int


class PairEmailInput(BaseModel):
    """One email of a pair: to both participants (``to="pair"``) or to HR."""

    program_id: str
    pair_id: str
    template: EmailTemplate
    step: str
    revision: str = "1"
    to: Literal["pair", "hr"]
    only: str | None = None  # with to="pair": just this participant (an application id)
    hr: list[str] = Field(default_factory=list)
    facts: EmailFacts
    links: list[LinkRequest] = Field(default_factory=list)


class PairEmailResult(BaseModel):
    sent: int
    already_sent: int
    fingerprints: dict[str, str] = Field(default_factory=dict)  # fingerprint -> role


class PairRecordInput(BaseModel):
    program_id: str
    pair_id: str
    status: Literal["active", "closed", "ended"] | None = None
    closed_reason: str | None = None
    withdrawn_id: str | None = None  # with "closed": the application that withdrew
    check_in: str | None = None
    role: str | None = None
    answer: str | None = None
    at: AwareDatetime
