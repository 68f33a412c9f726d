"""The program workflow's input, state, status, updates, and its record activities."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
)

from mentorflow.definition import (
    Language,
    ProgramDefinition,
)
from mentorflow.models.closing import PurgeRequest
from mentorflow.models.lifecycle import (
    EVALUATION_OPEN_FOR,
    DateChange,
    EvaluationProgress,
    MatchingState,
    MatchingSummary,
    OrganisationDecision,
    ProgramDates,
    ProgramPhase,
    ReportSummary,
)
from mentorflow.models.pair import CalendarEntry, PairEntry
from mentorflow.tally import Tally


class ProgramState(BaseModel):
    """Everything a program holds, in one model: the workflow's state, and what it
    carries across continue-as-new. Ids, dates, counts and outcomes only; its size
    does not grow with the number of applicants (the tally counts them)."""

    phase: ProgramPhase = ProgramPhase.SCHEDULED
    revision: int = 0  # raised by every change that must wake the waiting lifecycle
    dates: ProgramDates
    reminders_done: set[str] = Field(default_factory=set)
    reminders_sent: int = 0
    announced_to: int = 0
    reschedules: int = 0
    notices: list[DateChange] = Field(default_factory=list)  # moves not yet told
    tally: Tally = Field(default_factory=Tally)
    # The tally is the database's, counted when needed (patch program-tally-on-record);
    # signals from applications of earlier runs then only prompt a count.
    counts_on_record: bool = False
    decisions: dict[str, OrganisationDecision] = Field(default_factory=dict)
    capacity_requested: bool = False
    matching: MatchingState = Field(default_factory=MatchingState)
    calendar: dict[str, CalendarEntry] = Field(default_factory=dict)
    pairs: dict[str, PairEntry] = Field(default_factory=dict)
    pairs_to_tell: list[str] = Field(default_factory=list)  # pairs whose dates moved
    evaluation: EvaluationProgress = Field(default_factory=EvaluationProgress)
    report: ReportSummary | None = None
    purge_at: AwareDatetime | None = None
    purge_request: PurgeRequest | None = None


class ProgramInput(BaseModel):
    """What ``ProgramWorkflow`` is started with: the definition as it was validated
    (without its people: mentorflow.people). ``state`` only when it continues as new."""

    definition: ProgramDefinition
    state: ProgramState | None = None
    continue_as_new_after: int = Field(
        4_000, ge=100, description="History events after which the program continues as new."
    )


class ProgramResult(BaseModel):
    program_id: str
    phase: ProgramPhase
    finished_at: AwareDatetime
    reminders_sent: int
    report: ReportSummary | None = None


class RescheduleRequest(BaseModel):
    """Move one or more dates; the ones left out keep their value.

    ``events`` moves the kick-off or a joint session (by its id in the
    definition) to a new start; ``cancel_events`` removes one.
    """

    opens: AwareDatetime | None = None
    deadline: AwareDatetime | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    evaluation_opens: AwareDatetime | None = None
    evaluation_closes: AwareDatetime | None = None
    events: dict[str, AwareDatetime] = Field(default_factory=dict)
    cancel_events: list[str] = Field(default_factory=list)
    reason: str = Field("", max_length=500)
    requested_by: str = Field("", max_length=200)


class RescheduleResult(BaseModel):
    revision: int
    dates: ProgramDates
    moved: list[str]  # "opens", "deadline", "start", "end", "event:<id>", "cancelled:<id>"


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
    # Per "organisation/profile": applied, approved, declined, withdrawn, pending, and
    # (once HR decided) accepted, waitlisted, not_selected.
    applications: dict[str, dict[str, int]] = Field(default_factory=dict)
    # Per organisation with approved applicants: who decided, or absent while undecided.
    decisions: dict[str, OrganisationDecision] = Field(default_factory=dict)
    undecided: list[str] = Field(default_factory=list)
    matching: MatchingSummary | None = None
    confirmed_by: str | None = None
    calendar: list[CalendarEntry] = Field(default_factory=list)
    pairs: dict[str, int] = Field(default_factory=dict)  # per pair status: active, closed, ended
    evaluation: EvaluationProgress = Field(default_factory=EvaluationProgress)
    report: ReportSummary | None = None
    purge_at: AwareDatetime | None = None


class RegisterProgramInput(BaseModel):
    program_id: str
    workflow_id: str
    name: str
    # Set only by runs from before mentorflow.people: the definition is now saved
    # (with its people) by whoever starts the program, not carried by the workflow.
    definition: dict[str, Any] | None = None
    phase: ProgramPhase
    revision: int
    next_deadline: AwareDatetime | None
    at: AwareDatetime
    # The program's current dates, which clients read to take applications (thin
    # programs only; a row without them belongs to a ProgramWorkflowV1 run).
    dates: ProgramDates | None = None


EventKind = Literal[
    "phase",
    "rescheduled",
    "cancelled",
    "reminder",
    "capacity",
    "matching",
    "notified",
    "calendar",
    "pair",
    "evaluation",
    "report",
    "purged",
]


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
    dates: ProgramDates | None = None  # the current dates, after a move


class RecordEventResult(BaseModel):
    created: bool


def program_dates(definition: ProgramDefinition) -> ProgramDates:
    evaluation = definition.evaluation
    evaluation_opens = evaluation.opens or definition.schedule.end
    return ProgramDates(
        opens=definition.application.opens,
        deadline=definition.application.deadline,
        start=definition.schedule.start,
        end=definition.schedule.end,
        evaluation_opens=evaluation_opens,
        evaluation_closes=evaluation.closes or evaluation_opens + EVALUATION_OPEN_FOR,
    )
