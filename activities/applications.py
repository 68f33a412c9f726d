"""Recording applications and their decisions in the database."""

from __future__ import annotations

from temporalio import activity

from mentorflow import people
from mentorflow.models import ApplicationRecordInput
from mentorflow.store import Store


class ApplicationRecordActivities:
    """Holds the store that application records are written to."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn
    async def record_application(self, record: ApplicationRecordInput) -> None:
        """Record the application's status, and a decision once under its key."""
        if record.decision is not None and record.key is not None:
            decided_by = record.decided_by or ""
            if people.parse(decided_by) is not None:
                # The workflow knows who answered only as a reference; the record names them.
                row = await self._store.application(record.application_id)
                if row is not None:
                    resolver = await people.Resolver.load(self._store, row.program_id)
                    decided_by = await resolver.who(decided_by)
            await self._store.record_decision(
                application_id=record.application_id,
                key=record.key,
                decision=record.decision,
                decided_by=decided_by,
                channel=record.channel or "",
                at=record.at,
                status=record.status,
            )
        else:
            await self._store.set_application_status(
                record.application_id, record.status, record.at
            )
