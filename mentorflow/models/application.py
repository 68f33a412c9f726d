"""The application workflow's input, messages, answers and records."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
)

from mentorflow.definition import (
    Contact,
)
from mentorflow.models.email import EmailFacts
from mentorflow.models.lifecycle import Selection


class Person(BaseModel):
    name: str
    email: str


class ApplicationOutcome(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"  # the program was cancelled while it was open


class ApplicationSubmission(BaseModel):
    """What the web form or the CSV import hands to the program: one saved application.

    Ids only: the applicant and the manager are in the database (mentorflow.people).
    """

    application_id: str
    organisation_id: str
    profile_id: str
    created: bool  # False when the same person applied again (an update)
    # With an update, the application's workflow asks its manager again: the
    # database may name another one (an unchanged one is not emailed twice).
    manager_changed: bool = True
    # Only in submissions from before mentorflow.people.
    applicant: Person | None = None
    manager: Person | None = None


class ManagerChange(BaseModel):
    """The application now names another manager (read from the database when asked)."""

    # Runs from before mentorflow.people signalled the new manager themselves.
    name: str | None = None
    email: str | None = None


class ApplicationReceipt(BaseModel):
    application_id: str
    workflow_id: str
    created: bool


class ApplicationInput(BaseModel):
    """What one ``ApplicationWorkflow`` is started with."""

    program_id: str
    application_id: str
    organisation_id: str
    profile_id: str
    profile_title: str
    hr_contacts: list[Contact]  # references (mentorflow.people), as the program has them
    approval_required: bool
    answer_by: AwareDatetime
    reminders_before_answer_by: list[timedelta]
    on_silence: str  # decline | approve | escalate
    decide_escalated_by: AwareDatetime  # when HR's answer to an escalation is due
    facts: EmailFacts
    # Only in runs from before mentorflow.people (now read from the database).
    applicant: Person | None = None
    manager: Person | None = None
    # Started by the client, not by its program (thin programs): it tells the program
    # that it applied, and with each outcome the one it replaces.
    report_to_program: bool = False


class ApplicationApplied(BaseModel):
    """An application's word to its program that it exists: ids only."""

    application_id: str
    organisation_id: str
    profile_id: str


class ApplicationResult(BaseModel):
    application_id: str
    organisation_id: str
    profile_id: str
    outcome: ApplicationOutcome
    channel: str  # email_link | policy | hr_link | applicant
    previous: ApplicationOutcome | None = None  # None: it was pending
    selection: Selection | None = None  # HR's decision on it, when it leaves the approved


class ApplicationStatus(BaseModel):
    application_id: str
    program_id: str
    state: Literal["awaiting_manager", "escalated", "approved", "declined", "withdrawn"]
    decided_by: str | None = None
    channel: str | None = None
    reminders_sent: int = 0
    program_closed: bool = False


class DecisionRequest(BaseModel):
    """A click on Approve or Decline, from a verified link."""

    approve: bool
    fingerprint: str  # of the person the link was sent to
    channel: Literal["email_link", "hr_link"] = "email_link"


class WithdrawalRequest(BaseModel):
    fingerprint: str


class ApplicationRef(BaseModel):
    application_id: str


class ProgramApplications(BaseModel):
    program_id: str


class UndecidedCount(BaseModel):
    """Applications the database has without an answer yet (submitted, awaiting, escalated)."""

    undecided: int


class SelectionOf(BaseModel):
    selection: Selection | None = None


class ApplicationRecordInput(BaseModel):
    application_id: str
    status: str
    decision: str | None = None
    decided_by: str | None = None
    channel: str | None = None
    key: str | None = None
    at: AwareDatetime
    # A program id: then count its applications still without an answer
    # (RecordedApplication).
    count_undecided_in: str | None = None


class RecordedApplication(BaseModel):
    """How many of its program's applications are still without an answer, once recorded."""

    undecided: int
