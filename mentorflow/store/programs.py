"""A program's row, HR's notes and the events of its life."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from mentorflow.store.base import StoreBase
from mentorflow.store.tables import (
    Program,
    ProgramEvent,
)


class Programs(StoreBase):
    """A program's row, HR's notes and the events of its life."""

    # --- programs ---------------------------------------------------------------------------

    async def save_program(
        self,
        *,
        program_id: str,
        name: str,
        workflow_id: str,
        definition: dict[str, Any] | None,
        phase: str,
        revision: int,
        next_deadline: datetime | None,
        at: datetime,
        dates: dict[str, str] | None = None,
    ) -> None:
        """Create the program's row, or bring it up to date.

        ``definition`` None keeps the stored one: the workflow registering itself
        holds only the definition without its people (see mentorflow.people).
        ``dates`` None keeps the stored dates.
        """
        values = {
            "id": program_id,
            "name": name,
            "workflow_id": workflow_id,
            "definition": definition if definition is not None else {},
            "phase": phase,
            "revision": revision,
            "next_deadline": next_deadline,
            "created_at": at,
            "updated_at": at,
        }
        if dates is not None:
            values["dates"] = dates
        kept = (
            ("id", "created_at") if definition is not None else ("id", "created_at", "definition")
        )
        statement = self._insert(Program).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[Program.id],
            set_={k: statement.excluded[k] for k in values if k not in kept},
        )
        async with self._sessions.begin() as session:
            await session.execute(statement)

    async def program(self, program_id: str) -> Program | None:
        async with self._sessions() as session:
            return await session.get(Program, program_id)

    # --- notes: HR's free text, kept here so that workflows carry only its key --------------

    async def save_note(self, program_id: str, text: str, by: str, at: datetime) -> str:
        """Keep HR's text (a reason, who asked) and return the key that workflows carry."""
        key = f"note-{secrets.token_hex(8)}"
        async with self._sessions.begin() as session:
            session.add(
                ProgramEvent(
                    program_id=program_id,
                    key=key,
                    kind="note",
                    phase="",
                    revision=-1,
                    occurred_at=at,
                    detail={"text": text, "by": by},
                )
            )
        return key

    async def note(self, program_id: str, key: str) -> dict[str, str]:
        """A note's text and author ({} once purged or for an unknown key)."""
        async with self._sessions() as session:
            event = await session.scalar(
                select(ProgramEvent).where(
                    ProgramEvent.program_id == program_id, ProgramEvent.key == key
                )
            )
        return {str(k): str(v) for k, v in event.detail.items()} if event is not None else {}

    # --- events -----------------------------------------------------------------------------

    async def record_event(
        self,
        *,
        program_id: str,
        key: str,
        kind: str,
        phase: str,
        revision: int,
        at: datetime,
        detail: dict[str, Any] | None = None,
        next_deadline: datetime | None = None,
        dates: dict[str, str] | None = None,
    ) -> bool:
        """Record an event once, and the program's current phase (and ``dates``, when
        given); False if it was already there."""
        insert = (
            self._insert(ProgramEvent)
            .values(
                program_id=program_id,
                key=key,
                kind=kind,
                phase=phase,
                revision=revision,
                occurred_at=at,
                detail=detail or {},
            )
            .on_conflict_do_nothing(index_elements=[ProgramEvent.program_id, ProgramEvent.key])
            .returning(ProgramEvent.id)
        )
        async with self._sessions.begin() as session:
            # RETURNING, not rowcount: drivers disagree on rowcount after ON CONFLICT.
            created = (await session.execute(insert)).first() is not None
            if created:
                await session.execute(
                    update(Program)
                    .where(Program.id == program_id, Program.revision <= revision)
                    .values(
                        phase=phase,
                        revision=revision,
                        next_deadline=next_deadline,
                        updated_at=at,
                        **({"dates": dates} if dates is not None else {}),
                    )
                )
        return created

    async def events(self, program_id: str) -> list[ProgramEvent]:
        """What happened to the program, in order (HR's notes are not events)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ProgramEvent)
                .where(ProgramEvent.program_id == program_id, ProgramEvent.kind != "note")
                .order_by(ProgramEvent.occurred_at, ProgramEvent.id)
            )
            return list(rows)

    async def has_event(self, program_id: str, key: str) -> bool:
        async with self._sessions() as session:
            found = await session.scalar(
                select(ProgramEvent.id).where(
                    ProgramEvent.program_id == program_id, ProgramEvent.key == key
                )
            )
            return found is not None
