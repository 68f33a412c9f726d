"""The pydantic models that go in and out of workflows, updates, queries and activities.

One model per call keeps payloads evolvable: a new optional field never breaks
a running workflow's history.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from mentorflow.definition import Contact, Language, ProgramDefinition

WORKFLOW_ID_PREFIX = "program-"


def program_workflow_id(program_id: str) -> str:
    """The workflow id of a program: from its definition id, never from a person's data."""
    return f"{WORKFLOW_ID_PREFIX}{program_id}"


class ProgramPhase(StrEnum):
    """Where a program is in its life; also the ``ProgramPhase`` search attribute."""

    SCHEDULED = "scheduled"  # started, the application window has not opened yet
    APPLICATION_WINDOW = "application_window"  # applications are accepted
    APPLICATIONS_CLOSED = "applications_closed"  # the deadline has passed
    CANCELLED = "cancelled"


NEXT_STEP = {
    ProgramPhase.SCHEDULED: "the application window opens",
    ProgramPhase.APPLICATION_WINDOW: "applications close at the deadline",
    # Manager approval and the phases after it are not built yet; the program
    # ends here and the status says so rather than pretending to go on.
    ProgramPhase.APPLICATIONS_CLOSED: "manager approval (not yet automated by mentorflow)",
    ProgramPhase.CANCELLED: "nothing: the program was cancelled",
}


class ProgramDates(BaseModel):
    """The dates a running program may move; the workflow's timers follow them."""

    opens: AwareDatetime
    deadline: AwareDatetime
    start: AwareDatetime
    end: AwareDatetime


class ProgramInput(BaseModel):
    """What ``ProgramWorkflow`` is started with: the definition as it was validated."""

    definition: ProgramDefinition


class ProgramResult(BaseModel):
    program_id: str
    phase: ProgramPhase
    finished_at: AwareDatetime
    reminders_sent: int


class RescheduleRequest(BaseModel):
    """Move one or more dates; the ones left out keep their value."""

    opens: AwareDatetime | None = None
    deadline: AwareDatetime | None = None
    start: AwareDatetime | None = None
    reason: str = Field("", max_length=500)
    requested_by: str = Field("", max_length=200)


class RescheduleResult(BaseModel):
    revision: int
    dates: ProgramDates
    moved: list[str]


class CancelRequest(BaseModel):
    reason: str = Field("", max_length=500)
    requested_by: str = Field("", max_length=200)


class ProgramStatus(BaseModel):
    """What ``mentorflow program status`` shows: the workflow's own view of the program."""

    program_id: str
    name: str
    phase: ProgramPhase
    next_step: str
    next_deadline: AwareDatetime | None
    next_deadline_label: str | None
    timezone: str
    language: Language
    revision: int
    dates: ProgramDates
    counts: dict[str, int]


# --- Activities ------------------------------------------------------------------------------


class RegisterProgramInput(BaseModel):
    program_id: str
    workflow_id: str
    name: str
    definition: dict[str, Any]
    phase: ProgramPhase
    revision: int
    next_deadline: AwareDatetime | None
    at: AwareDatetime


EventKind = Literal["phase", "rescheduled", "cancelled", "reminder"]


class RecordEventInput(BaseModel):
    """One event in a program's life, recorded once under its ``key``."""

    program_id: str
    key: str
    kind: EventKind
    phase: ProgramPhase
    revision: int
    at: AwareDatetime
    next_deadline: AwareDatetime | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class RecordEventResult(BaseModel):
    created: bool


EmailTemplate = Literal["announcement", "reminder", "dates_changed", "cancelled"]


class EmailFacts(BaseModel):
    """What an email may say about its program; templates pick what they need."""

    program_name: str
    description: str = ""
    organisers: list[str] = Field(default_factory=list)
    contacts: list[Contact] = Field(default_factory=list)
    language: Language
    timezone: str
    opens: AwareDatetime
    deadline: AwareDatetime
    start: AwareDatetime
    end: AwareDatetime
    previous_deadline: AwareDatetime | None = None
    previous_start: AwareDatetime | None = None
    time_left: timedelta | None = None
    reason: str = ""
    form_note: str = ""


class EmailBatch(BaseModel):
    """One email, the same for every recipient, each sent once.

    ``step`` and ``revision`` with the program and the recipient make the
    email's business key: asking again for the same key sends nothing.
    """

    program_id: str
    step: str
    revision: str
    template: EmailTemplate
    recipients: list[str]
    facts: EmailFacts


class RejectedEmail(BaseModel):
    recipient: str
    reason: str


class EmailBatchResult(BaseModel):
    sent: int
    already_sent: int
    rejected: list[RejectedEmail] = Field(default_factory=list)


def program_dates(definition: ProgramDefinition) -> ProgramDates:
    return ProgramDates(
        opens=definition.application.opens,
        deadline=definition.application.deadline,
        start=definition.schedule.start,
        end=definition.schedule.end,
    )
