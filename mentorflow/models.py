"""The pydantic models that go in and out of workflows, updates, queries and activities.

One model per call keeps payloads evolvable: a new optional field never breaks
a running workflow's history.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
)

from mentorflow.definition import (
    Contact,
    Event,
    Language,
    Matching,
    Meetings,
    ProgramDefinition,
    ProgramKind,
)
from mentorflow.tally import Tally

WORKFLOW_ID_PREFIX = "program-"

# How a program refuses an application while it moves to its next run (continue-as-new):
# the refusal's message starts with this word, and senders simply send again.
HANDING_OVER = "handing_over"


def program_workflow_id(program_id: str) -> str:
    """The workflow id of a program: from its definition id, never from a person's data."""
    return f"{WORKFLOW_ID_PREFIX}{program_id}"


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


# --- Activities ------------------------------------------------------------------------------


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


class CapacityRow(BaseModel):
    """One line of HR's capacity summary: a profile, how many were approved, the cap."""

    profile_title: str
    approved: int
    cap: int | None  # None: no limit in the definition


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


# --- Applications ----------------------------------------------------------------------------


def pair_id_of(mentor_id: str, adept_id: str) -> str:
    """A pair's id: derived from its two application ids, so opening it twice is harmless."""
    return hashlib.sha256(f"{mentor_id}/{adept_id}".encode()).hexdigest()[:16]


def pair_workflow_id(program_id: str, pair_id: str) -> str:
    """The workflow id of one running pair: program id and the pair's id, no personal data."""
    return f"pair-{program_id}-{pair_id}"


def participant_task_queue(program_task_queue: str) -> str:
    """The task queue of a program's application and pair workflows and their activities.

    Their own queue, polled by the same worker: a program's workflow tasks then never
    wait behind the thousands of its applications' (in one shared queue, a task of a
    5,000-applicant program waited 7½ minutes while the approvals were answered).
    """
    return f"{program_task_queue}-participants"


def application_workflow_id(program_id: str, application_id: str) -> str:
    """The workflow id of one application: program id and a random id, no personal data."""
    return f"application-{program_id}-{application_id}"


_CHILD_ID = re.compile(r"^(?:application|pair)-(?P<program>[a-z0-9][a-z0-9-]*)-[0-9a-f]{16}$")


def program_id_of(workflow_id: str) -> str | None:
    """The program a workflow belongs to, read from its id (for logs); None if not ours."""
    child = _CHILD_ID.match(workflow_id)
    if child:
        return child["program"]
    if workflow_id.startswith(WORKFLOW_ID_PREFIX):
        return workflow_id[len(WORKFLOW_ID_PREFIX) :]
    return None


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


class ApplicationRef(BaseModel):
    application_id: str


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


# --- HR capacity decision and matching --------------------------------------------------------


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


class DeliveryCounts(BaseModel):
    """What an email activity that reads its recipients from the database reports.

    Counts only: the addresses stay out of the workflow's history.
    """

    sent: int
    already_sent: int
    rejected: int


# --- The running program: calendar and pairs --------------------------------------------------


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


# --- The closing evaluation, the report, retention ---------------------------------------------


class EvaluationEmailInput(BaseModel):
    """The survey (or its reminder) to every participant who has not answered yet."""

    program_id: str
    kind: Literal["invitation", "reminder"]
    reminder_key: str = ""  # with "reminder": which reminder, for the email's business key
    facts: EmailFacts
    closes: AwareDatetime
    time_left: timedelta | None = None


class EvaluationEmailResult(BaseModel):
    invited: int  # participants the survey is for
    sent: int
    already_sent: int
    already_answered: int


class ReportInput(BaseModel):
    program_id: str
    at: AwareDatetime


class PurgeInput(BaseModel):
    program_id: str
    at: AwareDatetime
    reason: str = ""


class PurgeResult(BaseModel):
    """What a purge removed (counts only) and the report it kept."""

    applications: int
    evaluation_responses: int
    emails: int
    events_scrubbed: int


class PurgeRequest(BaseModel):
    """HR asks to purge a finished program's personal data now, before its retention date."""

    requested_by: str = Field("", max_length=200)
    reason: str = Field("", max_length=500)
