"""Running pairs and their check-ins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from mentorflow.store.base import StoreBase
from mentorflow.store.tables import (
    Application,
    CheckIn,
    Pair,
)


class Pairs(StoreBase):
    """Running pairs and their check-ins."""

    # --- Running pairs ------------------------------------------------------------------

    async def open_pairs(
        self, *, program_id: str, pairs: list[tuple[str, str, str]], source: str, at: datetime
    ) -> None:
        """Record each (pair id, mentor id, adept id) as an active pair, once."""
        if not pairs:
            return
        async with self._sessions.begin() as session:
            await session.execute(
                self._insert(Pair)
                .values(
                    [
                        {
                            "id": pair_id,
                            "program_id": program_id,
                            "mentor_application_id": mentor,
                            "adept_application_id": adept,
                            "status": "active",
                            "source": source,
                            "started_at": at,
                        }
                        for pair_id, mentor, adept in pairs
                    ]
                )
                .on_conflict_do_nothing()
            )

    async def pair(self, pair_id: str) -> Pair | None:
        async with self._sessions() as session:
            return await session.get(Pair, pair_id)

    async def pairs(self, program_id: str) -> list[Pair]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Pair).where(Pair.program_id == program_id).order_by(Pair.started_at, Pair.id)
            )
            return list(rows)

    async def pair_of(self, application_id: str) -> Pair | None:
        """The active pair an application is in, if any."""
        async with self._sessions() as session:
            return await session.scalar(
                select(Pair).where(
                    Pair.status == "active",
                    (Pair.mentor_application_id == application_id)
                    | (Pair.adept_application_id == application_id),
                )
            )

    async def set_pair_status(
        self, pair_id: str, status: str, at: datetime, reason: str | None = None
    ) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(Pair)
                .where(Pair.id == pair_id, Pair.status == "active")
                .values(status=status, closed_at=at, closed_reason=reason)
            )

    async def record_check_in(
        self, *, pair_id: str, number: str, role: str, answer: str, at: datetime
    ) -> None:
        """Record one answer once; a "yes" moves the pair's last meeting."""
        async with self._sessions.begin() as session:
            await session.execute(
                self._insert(CheckIn)
                .values(pair_id=pair_id, number=number, role=role, answer=answer, answered_at=at)
                .on_conflict_do_nothing()
            )
            if answer == "yes":
                await session.execute(update(Pair).where(Pair.id == pair_id).values(last_met_at=at))

    async def check_ins(self, pair_id: str) -> list[CheckIn]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(CheckIn).where(CheckIn.pair_id == pair_id).order_by(CheckIn.id)
            )
            return list(rows)

    async def participants(
        self, program_id: str, statuses: tuple[str, ...] = ("active",)
    ) -> list[tuple[Application, str]]:
        """(application, role) of everyone in a pair of these statuses, mentors first."""
        async with self._sessions() as session:
            active = list(
                await session.scalars(
                    select(Pair).where(Pair.program_id == program_id, Pair.status.in_(statuses))
                )
            )
            ids = {p.mentor_application_id: "mentor" for p in active} | {
                p.adept_application_id: "adept" for p in active
            }
            if not ids:
                return []
            rows = await session.scalars(select(Application).where(Application.id.in_(ids)))
            found = sorted(rows, key=lambda row: (ids[row.id] != "mentor", row.id))
            return [(row, ids[row.id]) for row in found]
