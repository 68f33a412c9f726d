"""The closing evaluation, the report, and retention (purge, a person's data)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.exc import IntegrityError

from mentorflow.store.base import StoreBase
from mentorflow.store.tables import (
    Application,
    ApprovalDecision,
    CheckIn,
    EmailLedgerEntry,
    EvaluationResponse,
    MatchPair,
    MatchProposal,
    Pair,
    ProgramEvent,
    ProgramReport,
)


class Closing(StoreBase):
    """The closing evaluation, the report, and retention (purge, a person's data)."""

    # --- The closing evaluation ------------------------------------------------------------

    async def record_evaluation_response(
        self, *, program_id: str, application_id: str, answers: dict[str, Any], at: datetime
    ) -> EvaluationResponse | None:
        """Record a participant's answers once; None if they had already answered."""
        try:
            async with self._sessions.begin() as session:
                row = EvaluationResponse(
                    program_id=program_id,
                    application_id=application_id,
                    answers=answers,
                    submitted_at=at,
                )
                session.add(row)
            return row
        except IntegrityError:  # the unique (program, application): a second answer
            return None

    async def evaluation_response(
        self, program_id: str, application_id: str
    ) -> EvaluationResponse | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(EvaluationResponse).where(
                    EvaluationResponse.program_id == program_id,
                    EvaluationResponse.application_id == application_id,
                )
            )

    async def evaluation_responses(self, program_id: str) -> list[EvaluationResponse]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(EvaluationResponse)
                .where(EvaluationResponse.program_id == program_id)
                .order_by(EvaluationResponse.id)
            )
            return list(rows)

    async def check_ins_of(self, program_id: str) -> list[CheckIn]:
        """Every check-in answer of every pair of a program."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(CheckIn)
                .join(Pair, Pair.id == CheckIn.pair_id)
                .where(Pair.program_id == program_id)
                .order_by(CheckIn.id)
            )
            return list(rows)

    async def approved_ids(self, program_id: str) -> set[str]:
        """Applications a manager (or HR, or a policy) approved at some point."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ApprovalDecision.application_id)
                .join(Application, Application.id == ApprovalDecision.application_id)
                .where(
                    Application.program_id == program_id, ApprovalDecision.decision == "approved"
                )
            )
            return set(rows)

    # --- Reports and retention ---------------------------------------------------------------

    async def save_report(self, program_id: str, report: dict[str, Any], at: datetime) -> None:
        """Store (or replace, before a purge) a program's report."""
        values = {"program_id": program_id, "report": report, "generated_at": at}
        statement = self._insert(ProgramReport).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[ProgramReport.program_id],
            set_={"report": statement.excluded.report, "generated_at": at},
            where=ProgramReport.purged_at.is_(None),
        )
        async with self._sessions.begin() as session:
            await session.execute(statement)

    async def report(self, program_id: str) -> ProgramReport | None:
        async with self._sessions() as session:
            return await session.get(ProgramReport, program_id)

    async def purge_personal_data(
        self, program_id: str, report: dict[str, Any], at: datetime
    ) -> dict[str, int]:
        """Remove everything about a program's people; keep ``report`` (figures only).

        Applications go with everything that hangs on them (decisions, proposals'
        pairs, pairs, check-ins, evaluation answers); the email ledger's addresses
        go; the program's event log keeps its shape but loses every value that
        names one of its people. One transaction: all of it or none.
        """
        async with self._sessions.begin() as session:
            people = list(
                await session.execute(
                    select(
                        Application.email,
                        Application.name,
                        Application.manager_email,
                        Application.manager_name,
                    ).where(Application.program_id == program_id)
                )
            )
            names = {value for row in people for value in row if value and len(value) > 2}
            counts = {
                "applications": len(people),
                "evaluation_responses": await session.scalar(
                    select(func.count())
                    .select_from(EvaluationResponse)
                    .where(EvaluationResponse.program_id == program_id)
                )
                or 0,
            }
            await session.execute(
                delete(EvaluationResponse).where(EvaluationResponse.program_id == program_id)
            )
            pair_ids = select(Pair.id).where(Pair.program_id == program_id)
            await session.execute(delete(CheckIn).where(CheckIn.pair_id.in_(pair_ids)))
            await session.execute(delete(Pair).where(Pair.program_id == program_id))
            proposals = select(MatchProposal.id).where(MatchProposal.program_id == program_id)
            await session.execute(delete(MatchPair).where(MatchPair.proposal_id.in_(proposals)))
            await session.execute(
                delete(MatchProposal).where(MatchProposal.program_id == program_id)
            )
            applications = select(Application.id).where(Application.program_id == program_id)
            await session.execute(
                delete(ApprovalDecision).where(ApprovalDecision.application_id.in_(applications))
            )
            await session.execute(delete(Application).where(Application.program_id == program_id))
            emails = await session.execute(
                delete(EmailLedgerEntry).where(EmailLedgerEntry.program_id == program_id)
            )
            counts["emails"] = int(emails.rowcount or 0)  # type: ignore[attr-defined]
            scrubbed = 0
            for event in await session.scalars(
                select(ProgramEvent).where(ProgramEvent.program_id == program_id)
            ):
                # A note is HR's free text about people (a reason, who asked): it goes whole.
                detail = {} if event.kind == "note" else _scrub(event.detail, names)
                if detail != event.detail:
                    event.detail = detail
                    scrubbed += 1
            counts["events_scrubbed"] = scrubbed
            values = {"program_id": program_id, "report": report, "generated_at": at}
            statement = self._insert(ProgramReport).values(**values, purged_at=at)
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[ProgramReport.program_id],
                    set_={"report": report, "purged_at": at},
                )
            )
        return counts

    async def person(self, email: str) -> list[dict[str, Any]]:
        """Everything stored about one person, program by program (a data subject request)."""
        address = email.strip().lower()
        found: list[dict[str, Any]] = []
        async with self._sessions() as session:
            applications = list(
                await session.scalars(
                    select(Application)
                    .where(
                        (func.lower(Application.email) == address)
                        | (func.lower(Application.manager_email) == address)
                    )
                    .order_by(Application.created_at)
                )
            )
            for row in applications:
                as_manager = row.email.lower() != address
                entry: dict[str, Any] = {
                    "program_id": row.program_id,
                    "as": "manager" if as_manager else "applicant",
                    "application": _row(row),
                    "decisions": [
                        _row(d)
                        for d in await session.scalars(
                            select(ApprovalDecision).where(
                                ApprovalDecision.application_id == row.id
                            )
                        )
                    ],
                }
                if not as_manager:
                    pairs = list(
                        await session.scalars(
                            select(Pair).where(
                                (Pair.mentor_application_id == row.id)
                                | (Pair.adept_application_id == row.id)
                            )
                        )
                    )
                    entry["pairs"] = [_row(p) for p in pairs]
                    # Their own answers: their role in each of their pairs.
                    roles = [
                        (p.id, "mentor" if p.mentor_application_id == row.id else "adept")
                        for p in pairs
                    ]
                    entry["check_ins"] = (
                        [
                            _row(c)
                            for c in await session.scalars(
                                select(CheckIn)
                                .where(tuple_(CheckIn.pair_id, CheckIn.role).in_(roles))
                                .order_by(CheckIn.id)
                            )
                        ]
                        if roles
                        else []
                    )
                    response = await session.scalar(
                        select(EvaluationResponse).where(
                            EvaluationResponse.application_id == row.id
                        )
                    )
                    entry["evaluation"] = _row(response) if response else None
                found.append(entry)
            emails = await session.scalars(
                select(EmailLedgerEntry)
                .where(func.lower(EmailLedgerEntry.recipient) == address)
                .order_by(EmailLedgerEntry.created_at)
            )
            ledger = [
                {
                    k: v
                    for k, v in _row(e).items()
                    if k in ("program_id", "template", "subject", "status", "sent_at")
                }
                for e in emails
            ]
        return [*found, {"emails": ledger}] if ledger else found


def _row(row: Any) -> dict[str, Any]:
    """A table row as JSON-ready values."""
    values: dict[str, Any] = {}
    for column in row.__table__.columns:
        value = getattr(row, column.key)
        values[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return values


def _scrub(value: Any, names: set[str]) -> Any:
    """``value`` with every string that contains one of ``names`` replaced."""
    if isinstance(value, dict):
        return {k: _scrub(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, names) for v in value]
    if isinstance(value, str) and any(name.lower() in value.lower() for name in names):
        return "[removed]"
    return value
