"""The database schema: programs, their recorded events, and the email ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored in UTC; SQLite would otherwise hand back naive values."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Program(Base):
    """One running or finished program (one cohort of a definition)."""

    __tablename__ = "programs"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    workflow_id: Mapped[str] = mapped_column(String(100), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    phase: Mapped[str] = mapped_column(String(40))
    revision: Mapped[int] = mapped_column(Integer, default=0)
    next_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Its current opening, deadline, start, end and evaluation (ISO 8601), as its
    # workflow last recorded them; None for a program run by ProgramWorkflowV1.
    dates: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProgramEvent(Base):
    """Something that happened to a program: a phase change, a moved date, a cancellation.

    ``key`` is the event's business identity within its program, so an activity
    retried after a crash records it once.
    """

    __tablename__ = "program_events"
    __table_args__ = (UniqueConstraint("program_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    phase: Mapped[str] = mapped_column(String(40))
    revision: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EmailLedgerEntry(Base):
    """One business email: claimed before it is sent, marked when the server accepted it.

    ``key`` is (program, step, recipient, revision): the same email asked for
    twice, by a retry or a replay, finds its entry and is not sent again.
    """

    __tablename__ = "email_ledger"

    key: Mapped[str] = mapped_column(String(500), primary_key=True)
    program_id: Mapped[str] = mapped_column(String(63), index=True)
    step: Mapped[str] = mapped_column(String(200))
    revision: Mapped[str] = mapped_column(String(100))
    recipient: Mapped[str] = mapped_column(String(320))
    template: Mapped[str] = mapped_column(String(60))
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20))  # pending | sending | sent | rejected
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Application(Base):
    """One person's application to a program; applying again updates it."""

    __tablename__ = "applications"
    __table_args__ = (
        UniqueConstraint("program_id", "email"),
        # Each answer's record counts its program's applications still open.
        Index("ix_applications_program_status", "program_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    organisation_id: Mapped[str] = mapped_column(String(63))
    department: Mapped[str] = mapped_column(String(200), default="")
    profile_id: Mapped[str] = mapped_column(String(63))
    manager_email: Mapped[str] = mapped_column(String(320))
    manager_name: Mapped[str] = mapped_column(String(200), default="")
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    eligibility_confirmed: Mapped[bool] = mapped_column(default=False)
    channel: Mapped[str] = mapped_column(String(20))  # web_form | csv_import
    status: Mapped[str] = mapped_column(String(20))  # awaiting_approval | approved | ...
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # HR's capacity decision on an approved application: accepted | waitlisted | declined.
    selection: Mapped[str | None] = mapped_column(String(20))
    selected_by: Mapped[str | None] = mapped_column(String(320))
    selection_channel: Mapped[str | None] = mapped_column(String(30))  # hr_link | cli | policy
    selected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApprovalDecision(Base):
    """A decision on an application: who decided, when, and through which channel."""

    __tablename__ = "approval_decisions"
    __table_args__ = (UniqueConstraint("application_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(20))  # approved | declined | withdrawn | ...
    decided_by: Mapped[str] = mapped_column(String(320))
    channel: Mapped[str] = mapped_column(String(30))  # email_link | policy | hr | applicant
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MatchProposal(Base):
    """One run of the matcher for a program: its pairs, who was left out and why.

    Proposals are numbered per program; HR's confirmation marks one ``confirmed``.
    """

    __tablename__ = "match_proposals"
    __table_args__ = (UniqueConstraint("program_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))  # proposed | confirmed
    total_score: Mapped[float] = mapped_column(Float)
    worst_score: Mapped[float | None] = mapped_column(Float)
    # {"unmatched": [{"id", "role", "reason"}], "options": [...], "locks": [...], "forbids": [...]}
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_by: Mapped[str | None] = mapped_column(String(320))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MatchPair(Base):
    """A mentor and an adept paired in a proposal, with the score explained by criterion."""

    __tablename__ = "match_pairs"
    __table_args__ = (UniqueConstraint("proposal_id", "adept_application_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(
        ForeignKey("match_proposals.id", ondelete="CASCADE"), index=True
    )
    mentor_application_id: Mapped[str] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE")
    )
    adept_application_id: Mapped[str] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE")
    )
    score: Mapped[float] = mapped_column(Float)
    breakdown: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    locked: Mapped[bool] = mapped_column(default=False)


class Pair(Base):
    """A running pair: from the confirmed proposal, or a re-match after a withdrawal."""

    __tablename__ = "pairs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # derived from the two ids
    program_id: Mapped[str] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), index=True
    )
    mentor_application_id: Mapped[str] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE")
    )
    adept_application_id: Mapped[str] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(20))  # active | closed | ended
    source: Mapped[str] = mapped_column(String(20))  # matching | rematch
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_met_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_reason: Mapped[str | None] = mapped_column(Text)


class CheckIn(Base):
    """One participant's answer to one check-in (or the mid-point pulse) of a pair."""

    __tablename__ = "check_ins"
    __table_args__ = (UniqueConstraint("pair_id", "number", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pair_id: Mapped[str] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(20))  # "1", "2", ... or "pulse"
    role: Mapped[str] = mapped_column(String(10))  # mentor | adept
    answer: Mapped[str] = mapped_column(String(20))  # yes | not_yet | need_help | 1..5
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EvaluationResponse(Base):
    """One participant's answers to the closing evaluation: one per person and program.

    Answers are written here by the web page, not sent through the workflow, so
    that a purge removes them for good: nothing of them is in Temporal's history.
    """

    __tablename__ = "evaluation_responses"
    __table_args__ = (UniqueConstraint("program_id", "application_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    program_id: Mapped[str] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), index=True
    )
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProgramReport(Base):
    """A finished program's report: aggregate figures that outlive the personal data.

    ``report`` is :class:`mentorflow.report.ProgramReport` as JSON; a purge keeps
    its figures and removes its free-text answers.
    """

    __tablename__ = "program_reports"

    program_id: Mapped[str] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), primary_key=True
    )
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
