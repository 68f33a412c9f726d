"""Recording program state in the database."""

from __future__ import annotations

from temporalio import activity

from mentorflow.models import RecordEventInput, RecordEventResult, RegisterProgramInput
from mentorflow.store import Store


class ProgramRecordActivities:
    """Holds the store that the record activities write to."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn
    async def register_program(self, program: RegisterProgramInput) -> None:
        """Create or refresh the program's row (idempotent)."""
        stored = await self._store.program(program.program_id)
        if program.definition is None and (stored is None or not stored.definition):
            # Its people cannot be found: every email to a reference will be refused.
            activity.logger.error(
                "program %s has no definition in this database: was it started with"
                " `mentorflow program start` against another database?",
                program.program_id,
            )
        await self._store.save_program(
            program_id=program.program_id,
            name=program.name,
            workflow_id=program.workflow_id,
            definition=program.definition,
            phase=program.phase,
            revision=program.revision,
            next_deadline=program.next_deadline,
            at=program.at,
            dates=program.dates.model_dump(mode="json") if program.dates else None,
        )

    @activity.defn
    async def record_event(self, event: RecordEventInput) -> RecordEventResult:
        """Record one event of the program's life once, and its current phase."""
        created = await self._store.record_event(
            program_id=event.program_id,
            key=event.key,
            kind=event.kind,
            phase=event.phase,
            revision=event.revision,
            at=event.at,
            detail=event.detail,
            next_deadline=event.next_deadline,
            dates=event.dates.model_dump(mode="json") if event.dates else None,
        )
        return RecordEventResult(created=created)
