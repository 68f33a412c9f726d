"""HR's selections and the matching proposals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from mentorflow.store.base import StoreBase
from mentorflow.store.tables import (
    Application,
    MatchPair,
    MatchProposal,
)


class Matching(StoreBase):
    """HR's selections and the matching proposals."""

    # --- capacity decisions and matching ----------------------------------------------------

    async def record_selections(
        self,
        *,
        program_id: str,
        selections: dict[str, str],
        decided_by: str,
        channel: str,
        at: datetime,
    ) -> None:
        """Record HR's decision (accepted, waitlisted, declined) on each named application."""
        async with self._sessions.begin() as session:
            for application_id, selection in sorted(selections.items()):
                await session.execute(
                    update(Application)
                    .where(Application.id == application_id, Application.program_id == program_id)
                    .values(
                        selection=selection,
                        selected_by=decided_by,
                        selection_channel=channel,
                        selected_at=at,
                        updated_at=at,
                    )
                )

    async def save_proposal(
        self,
        *,
        program_id: str,
        number: int,
        total_score: float,
        worst_score: float | None,
        report: dict[str, Any],
        pairs: list[tuple[str, str, float, dict[str, float], bool]],
        at: datetime,
    ) -> bool:
        """Store proposal ``number`` with its pairs once; False if it was already stored."""
        insert = (
            self._insert(MatchProposal)
            .values(
                program_id=program_id,
                number=number,
                status="proposed",
                total_score=total_score,
                worst_score=worst_score,
                report=report,
                created_at=at,
            )
            .on_conflict_do_nothing()
            .returning(MatchProposal.id)
        )
        async with self._sessions.begin() as session:
            row = (await session.execute(insert)).first()
            if row is None:
                return False
            session.add_all(
                MatchPair(
                    proposal_id=row[0],
                    mentor_application_id=mentor,
                    adept_application_id=adept,
                    score=score,
                    breakdown=parts,
                    locked=locked,
                )
                for mentor, adept, score, parts, locked in pairs
            )
        return True

    async def proposal(
        self, program_id: str, number: int | None = None
    ) -> tuple[MatchProposal, list[MatchPair]] | None:
        """Proposal ``number`` (the latest when None) and its pairs, best score first."""
        async with self._sessions() as session:
            query = select(MatchProposal).where(MatchProposal.program_id == program_id)
            if number is not None:
                query = query.where(MatchProposal.number == number)
            found = await session.scalar(query.order_by(MatchProposal.number.desc()).limit(1))
            if found is None:
                return None
            pairs = await session.scalars(
                select(MatchPair)
                .where(MatchPair.proposal_id == found.id)
                .order_by(MatchPair.score.desc(), MatchPair.adept_application_id)
            )
            return found, list(pairs)

    async def confirm_proposal(
        self, *, program_id: str, number: int, confirmed_by: str, at: datetime
    ) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(MatchProposal)
                .where(
                    MatchProposal.program_id == program_id,
                    MatchProposal.number == number,
                    MatchProposal.status == "proposed",
                )
                .values(status="confirmed", confirmed_by=confirmed_by, confirmed_at=at)
            )
