"""A program's phases, dates and the summaries its workflow and its clients share."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
)


class ProgramPhase(StrEnum):
    """Where a program is in its life; also the ``ProgramPhase`` search attribute."""

    SCHEDULED = "scheduled"  # started, the application window has not opened yet
    APPLICATION_WINDOW = "application_window"  # applications are accepted
    AWAITING_APPROVALS = "awaiting_approvals"  # closed; managers may still answer
    AWAITING_HR_DECISION = "awaiting_hr_decision"  # each organisation's HR decides who takes part
    MATCH_REVIEW = "match_review"  # pairs are proposed; HR reviews and confirms them
    MATCHED = "matched"  # pairs confirmed and told
    RUNNING = "running"  # kick-off, joint sessions and pair meetings, until the end date
    ENDED = "ended"  # the end date passed; the closing evaluation is open until it closes
    COMPLETED = "completed"  # the report is made and sent; personal data kept until retention
    PURGED = "purged"  # personal data removed; only the aggregate report remains
    CANCELLED = "cancelled"


NEXT_STEP = {
    ProgramPhase.SCHEDULED: "the application window opens",
    ProgramPhase.APPLICATION_WINDOW: "applications close at the deadline",
    ProgramPhase.AWAITING_APPROVALS: "managers answer until the answer-by time",
    ProgramPhase.AWAITING_HR_DECISION: "each organisation's HR accepts, wait-lists or declines"
    " its approved applicants",
    ProgramPhase.MATCH_REVIEW: "HR reviews the proposed pairs and confirms them",
    ProgramPhase.MATCHED: "pairs are told; calendar invitations and pair meetings follow",
    ProgramPhase.RUNNING: "pairs meet and check in; joint sessions on their dates, until the end",
    ProgramPhase.ENDED: "participants answer the closing evaluation until it closes",
    ProgramPhase.COMPLETED: "personal data is purged at the end of the retention period",
    ProgramPhase.PURGED: "nothing: only the aggregate report remains",
    ProgramPhase.CANCELLED: "nothing: the program was cancelled",
}


class Selection(StrEnum):
    """HR's capacity decision on one approved applicant."""

    ACCEPTED = "accepted"
    WAITLISTED = "waitlisted"
    DECLINED = "declined"


class ProgramDates(BaseModel):
    """The dates a running program may move; the workflow's timers follow them."""

    opens: AwareDatetime
    deadline: AwareDatetime
    start: AwareDatetime
    end: AwareDatetime
    evaluation_opens: AwareDatetime
    evaluation_closes: AwareDatetime


EVALUATION_OPEN_FOR = timedelta(days=14)  # a closing evaluation without a closing date


class EvaluationProgress(BaseModel):
    """The closing evaluation as the program workflow tracks it (counts only)."""

    invited: int | None = None  # None until the invitations went out
    reminders_done: list[str] = Field(default_factory=list)
    closed: bool = False
    report_sent: bool = False


class ReportSummary(BaseModel):
    """The headline figures of a program's report (the full report lives in the database)."""

    applied: int
    matched: int
    completed: int
    withdrawn: int
    invited: int  # to the closing evaluation
    responses: int
    response_rate: float | None  # responses / invited; None when nobody was invited
    nps: dict[str, float | None] = Field(default_factory=dict)  # question id -> score
    total_cost: float | None = None
    currency: str | None = None


class PairRef(BaseModel):
    """A mentor and an adept, by application id (no personal data)."""

    mentor_id: str
    adept_id: str


class OrganisationDecision(BaseModel):
    """Who decided an organisation's capacity, and how."""

    decided_by: str
    channel: str  # hr_link | cli | policy


class MatchingSummary(BaseModel):
    """A proposal of pairs, as the workflow and the status see it (details are in the DB)."""

    proposal: int
    pairs: int
    locked: int = 0
    unmatched_mentors: int = 0
    unmatched_adepts: int = 0
    total_score: float = 0.0
    worst_score: float | None = None
    options: list[str] = Field(default_factory=list)


class MatchingState(BaseModel):
    """HR's adjustments and the current proposal; carried across continue-as-new."""

    proposals: int = 0  # the number of the latest stored proposal
    locks: list[PairRef] = Field(default_factory=list)
    forbids: list[PairRef] = Field(default_factory=list)
    summary: MatchingSummary | None = None
    review_requested: bool = False
    confirmed_by: str | None = None
    notified: bool = False


class DateChange(BaseModel):
    """A move of dates not yet told to the people already told about the program."""

    revision: int
    previous: ProgramDates
    moved: list[str]
    reason: str
