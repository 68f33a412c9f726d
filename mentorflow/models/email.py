"""Emails as workflows ask for them: templates, facts, batches, links and results."""

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
    Language,
)
from mentorflow.models.lifecycle import ReportSummary

EmailTemplate = Literal[
    "announcement",
    "reminder",
    "dates_changed",
    "cancelled",
    "application_received",
    "application_declined",
    "application_updated",
    "approval_request",
    "approval_reminder",
    "approval_escalated",
    "capacity_request",
    "match_review",
    "pair_introduction",
    "selection_outcome",
    "manager_outcome",
    "event_invitation",
    "event_cancelled",
    "event_reminder",
    "check_in",
    "pulse",
    "pair_stalled",
    "help_requested",
    "pair_closed",
    "evaluation",
    "evaluation_reminder",
    "program_report",
]


class CapacityRow(BaseModel):
    """One line of HR's capacity summary: a profile, how many were approved, the cap."""

    profile_title: str
    approved: int
    cap: int | None  # None: no limit in the definition


class LinkRequest(BaseModel):
    """A signed link the email activity makes for each recipient."""

    name: str  # the template variable, e.g. "approve_url"
    purpose: Literal[
        "approval", "withdrawal", "capacity", "review", "check_in", "evaluation", "report"
    ]
    # What the link acts on: the application, or for HR's links the organisation
    # (capacity) or the program (review).
    application_id: str
    expires_at: AwareDatetime
    path: str  # e.g. "/a/" or "/w/"


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
    previous_end: AwareDatetime | None = None
    time_left: timedelta | None = None
    reason: str = ""
    form_note: str = ""
    apply_url: str | None = None
    applicant_name: str | None = None
    manager_name: str | None = None
    profile_title: str | None = None
    answer_by: AwareDatetime | None = None
    # HR's capacity decision and matching
    organisation_name: str | None = None
    capacity_rows: list[CapacityRow] = Field(default_factory=list)
    decide_by: AwareDatetime | None = None
    reminder: bool = False
    pairs: int | None = None
    unmatched: int | None = None
    selection: str | None = None  # accepted | waitlisted | declined | unmatched
    partner_name: str | None = None
    partner_email: str | None = None
    partner_title: str | None = None
    partner_organisation: str | None = None
    introduction: str = ""
    kickoff_title: str | None = None
    kickoff_starts: AwareDatetime | None = None
    kickoff_place: str | None = None
    # The running program: joint events and pairs
    event_title: str | None = None
    event_starts: AwareDatetime | None = None
    event_ends: AwareDatetime | None = None
    event_place: str | None = None
    event_online_url: str | None = None
    event_description: str = ""
    event_update: bool = False  # the event moved since the first invitation
    event_previous_starts: AwareDatetime | None = None  # its start before the move
    check_in_number: str | None = None
    next_meeting_by: AwareDatetime | None = None
    meeting_length: timedelta | None = None
    last_met: AwareDatetime | None = None
    pair_label: str | None = None  # "mentor name & adept name", for HR
    answer: str | None = None
    # The closing evaluation and the report
    evaluation_closes: AwareDatetime | None = None
    report: ReportSummary | None = None
    purge_at: AwareDatetime | None = None


class EmailBatch(BaseModel):
    """One email, the same for every recipient, each sent once.

    ``step`` and ``revision`` with the program and the recipient make the
    email's business key: asking again for the same key sends nothing.
    """

    program_id: str
    step: str
    revision: str
    template: EmailTemplate
    # References to people (mentorflow.people), resolved by the activity.
    recipients: list[str]
    facts: EmailFacts
    links: list[LinkRequest] = Field(default_factory=list)
    # About one application: its applicant's name (and with name_manager, the
    # manager's) are filled in from the database.
    application_id: str | None = None
    name_manager: bool = False
    # Also every applicant whose application has one of these statuses, read from the
    # database when it runs (the thin program does not know who they are).
    applicants: list[str] = Field(default_factory=list)


class RejectedEmail(BaseModel):
    recipient: str
    reason: str


class EmailBatchResult(BaseModel):
    sent: int
    already_sent: int
    rejected: list[RejectedEmail] = Field(default_factory=list)
    # Keyed hashes of the recipients, as the links carry them (see mentorflow.links).
    fingerprints: dict[str, str] = Field(default_factory=dict)


class EmailBatches(BaseModel):
    """Emails that leave at the same moment (an application's confirmation and its
    manager's request): one activity for them all, one dispatch on the server."""

    batches: list[EmailBatch]


class EmailBatchesResult(BaseModel):
    results: list[EmailBatchResult]  # in the order of the batches
