"""Applications and their managers' decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select, update

from mentorflow.store.base import StoreBase
from mentorflow.store.tables import (
    Application,
    ApprovalDecision,
)


class Applications(StoreBase):
    """Applications and their managers' decisions."""

    # --- applications -----------------------------------------------------------------------

    async def save_application(
        self,
        *,
        new_id: str,
        program_id: str,
        email: str,
        name: str,
        organisation_id: str,
        department: str,
        profile_id: str,
        manager_email: str,
        manager_name: str,
        answers: dict[str, Any],
        eligibility_confirmed: bool,
        channel: str,
        at: datetime,
    ) -> tuple[Application, bool]:
        """Create the application, or update the one with the same email; (row, created)."""
        email = email.strip().lower()
        values = {
            "name": name,
            "organisation_id": organisation_id,
            "department": department,
            "profile_id": profile_id,
            "manager_email": manager_email.strip().lower(),
            "manager_name": manager_name,
            "answers": answers,
            "eligibility_confirmed": eligibility_confirmed,
            "channel": channel,
            "updated_at": at,
        }
        insert = (
            self._insert(Application)
            .values(
                id=new_id,
                program_id=program_id,
                email=email,
                status="submitted",
                created_at=at,
                **values,
            )
            .on_conflict_do_update(
                index_elements=[Application.program_id, Application.email], set_=values
            )
        )
        async with self._sessions.begin() as session:
            await session.execute(insert)
            row = await session.scalar(
                select(Application).where(
                    Application.program_id == program_id, Application.email == email
                )
            )
        assert row is not None
        return row, row.id == new_id

    async def application_by_email(self, program_id: str, email: str) -> Application | None:
        """The program's application from ``email`` (as saved: trimmed, lower case)."""
        async with self._sessions() as session:
            return await session.scalar(
                select(Application).where(
                    Application.program_id == program_id,
                    Application.email == email.strip().lower(),
                )
            )

    async def application(self, application_id: str) -> Application | None:
        async with self._sessions() as session:
            return await session.get(Application, application_id)

    async def applications(self, program_id: str) -> list[Application]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Application)
                .where(Application.program_id == program_id)
                .order_by(Application.created_at, Application.id)
            )
            return list(rows)

    async def application_counts(
        self, program_id: str
    ) -> list[tuple[str, str, str, str | None, int]]:
        """(organisation, profile, status, selection, how many) of the program's applications."""
        columns = (
            Application.organisation_id,
            Application.profile_id,
            Application.status,
            Application.selection,
        )
        async with self._sessions() as session:
            rows = await session.execute(
                select(*columns, func.count())
                .where(Application.program_id == program_id)
                .group_by(*columns)
            )
            return [(o, p, s, sel, int(n)) for o, p, s, sel, n in rows]

    async def undecided_count(self, program_id: str, statuses: tuple[str, ...]) -> int:
        """How many of the program's applications have one of ``statuses``."""
        async with self.engine.connect() as connection:
            counted = await connection.scalar(
                select(func.count())
                .select_from(Application)
                .where(Application.program_id == program_id, Application.status.in_(statuses))
            )
            return int(counted or 0)

    async def record_decision(
        self,
        *,
        application_id: str,
        key: str,
        decision: str,
        decided_by: str,
        channel: str,
        at: datetime,
        status: str,
        decided_by_column: Literal["email", "manager_email"] | None = None,
    ) -> bool:
        """Record a decision once (by ``key``) and the application's new status.

        ``decided_by_column``: who decided is the application's applicant or manager,
        named by that column of its row (``decided_by`` if the row is gone): taken in
        the same statement, where a read first cost each answer another round trip.
        """
        who: Any = decided_by
        if decided_by_column is not None:
            named = (
                select(getattr(Application, decided_by_column))
                .where(Application.id == application_id)
                .scalar_subquery()
            )
            who = func.coalesce(named, decided_by)
        insert = (
            self._insert(ApprovalDecision)
            .values(
                application_id=application_id,
                key=key,
                decision=decision,
                decided_by=who,
                channel=channel,
                decided_at=at,
            )
            .on_conflict_do_nothing()
            .returning(ApprovalDecision.id)
        )
        # On a connection, not an ORM session: every answer comes through here.
        async with self.engine.begin() as connection:
            created = (await connection.execute(insert)).first() is not None
            if created:
                await connection.execute(
                    update(Application)
                    .where(Application.id == application_id)
                    .values(status=status, updated_at=at)
                )
        return created

    async def set_application_status(self, application_id: str, status: str, at: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(Application)
                .where(Application.id == application_id)
                .values(status=status, updated_at=at)
            )

    async def decisions(self, application_id: str) -> list[ApprovalDecision]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ApprovalDecision)
                .where(ApprovalDecision.application_id == application_id)
                .order_by(ApprovalDecision.decided_at, ApprovalDecision.id)
            )
            return list(rows)
