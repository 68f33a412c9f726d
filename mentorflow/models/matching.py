"""HR's capacity decision, the matching proposal and its review."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
)

from mentorflow.definition import (
    Matching,
    ProgramKind,
)
from mentorflow.models.email import EmailFacts
from mentorflow.models.lifecycle import MatchingSummary, PairRef, Selection


class CapacityDecision(BaseModel):
    """One organisation's decision on each of its approved applicants."""

    organisation_id: str
    selections: dict[str, Selection]  # application id -> accepted | waitlisted | declined
    decided_by: str = Field("", max_length=320)
    channel: Literal["hr_link", "cli", "policy"] = "hr_link"


class CapacityDecisionResult(BaseModel):
    organisation_id: str
    accepted: int
    waitlisted: int
    declined: int


class SelectionDecisionInput(BaseModel):
    """HR's (or the policy's) selections for one organisation, checked against the
    database before they are recorded; ``policy`` set: the activity chooses."""

    program_id: str
    organisation_id: str
    selections: dict[str, Selection] = Field(default_factory=dict)
    policy: str | None = None  # an UndecidedPolicy value
    decided_by: str
    channel: str
    at: AwareDatetime


class SelectionsRecorded(BaseModel):
    """What changed, per ``organisation/profile`` and selection (+1/-1), for the tally."""

    changes: dict[str, dict[str, int]] = Field(default_factory=dict)
    accepted: int = 0
    waitlisted: int = 0
    declined: int = 0


class RematchCheckInput(BaseModel):
    program_id: str
    remaining_id: str
    partner_id: str


class RematchCheckResult(BaseModel):
    mentor_id: str
    adept_id: str
    partner_accepted: bool
    partner_organisation: str


class CloseApplicationsInput(BaseModel):
    program_id: str


class CloseApplicationsResult(BaseModel):
    closed: int


class SelectionRecordInput(BaseModel):
    program_id: str
    organisation_id: str
    selections: dict[str, Selection]
    decided_by: str
    channel: str
    at: AwareDatetime


class MatchReviewRequest(BaseModel):
    """HR's action on the proposed pairs.

    ``lock`` keeps a pair, ``forbid`` rules one out, ``unlock`` and ``allow``
    undo them, ``swap`` exchanges the mentors of two proposed pairs (and locks
    both new pairs), ``rerun`` proposes again from the current data, and
    ``confirm`` accepts the proposal numbered ``proposal`` and ends the phase.
    Every action but ``confirm`` makes a new proposal at once.
    """

    action: Literal["lock", "unlock", "forbid", "allow", "swap", "rerun", "confirm"]
    pair: PairRef | None = None
    other: PairRef | None = None  # the second pair of a swap
    proposal: int | None = None  # confirm: the proposal the reviewer saw
    by: str = Field("", max_length=320)


class ProposeMatchesInput(BaseModel):
    program_id: str
    proposal: int
    kind: ProgramKind
    matching: Matching
    mentor_profiles: list[str]
    adept_profiles: list[str]
    locks: list[PairRef] = Field(default_factory=list)
    forbids: list[PairRef] = Field(default_factory=list)
    at: AwareDatetime
    # The pairs HR's action names: each must be an accepted mentor and adept (thin programs
    # check it here, against the database, not in the update's validator).
    check_accepted: list[PairRef] = Field(default_factory=list)


class ProposeMatchesResult(BaseModel):
    summary: MatchingSummary | None = None
    conflict: str | None = None  # locks and forbids that cannot all hold, named


class ConfirmMatchesInput(BaseModel):
    program_id: str
    proposal: int
    confirmed_by: str
    at: AwareDatetime


class OutcomeNoticesInput(BaseModel):
    """Tell every approved applicant (and their manager) how HR's decision and matching ended."""

    program_id: str
    proposal: int
    facts: EmailFacts
    profile_titles: dict[str, str]
    organisation_names: dict[str, str]
    # Only this organisation's applicants (their partners may be elsewhere); None: all
    # (runs from before the program sent one batch per organisation).
    organisation_id: str | None = None


class DeliveryCounts(BaseModel):
    """What an email activity that reads its recipients from the database reports.

    Counts only: the addresses stay out of the workflow's history.
    """

    sent: int
    already_sent: int
    rejected: int

    @classmethod
    def total(cls, parts: list[DeliveryCounts]) -> DeliveryCounts:
        return cls(
            sent=sum(p.sent for p in parts),
            already_sent=sum(p.already_sent for p in parts),
            rejected=sum(p.rejected for p in parts),
        )
