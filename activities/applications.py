"""Recording applications and their decisions in the database."""

from __future__ import annotations

from typing import Literal

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError

from mentorflow import people, tally
from mentorflow.models import (
    ApplicationRecordInput,
    ApplicationRef,
    CloseApplicationsInput,
    CloseApplicationsResult,
    ProgramApplications,
    RecordedApplication,
    Selection,
    SelectionOf,
    UndecidedCount,
    application_workflow_id,
)
from mentorflow.store import Store
from mentorflow.tally import UNDECIDED_STATUSES, Tally

# Applications whose workflow may still take an answer or a withdrawal.
OPEN_STATUSES = ("submitted", "awaiting_approval", "escalated", "approved")


class ApplicationRecordActivities:
    """Holds the store that application records are written to."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn
    async def record_application(
        self, record: ApplicationRecordInput
    ) -> RecordedApplication | None:
        """Record the application's status, and a decision once under its key; then, if
        asked, count the program's applications still without an answer (committed first,
        so of two last answers recorded at once, the later count sees none left)."""
        if record.decision is not None and record.key is not None:
            decided_by = record.decided_by or ""
            # The workflow knows who answered only as a reference; the record names them.
            reference = people.parse(decided_by)
            column: Literal["email", "manager_email"] | None = None
            if (
                reference is not None
                and reference.kind in ("applicant", "manager")
                and reference.key == record.application_id
            ):
                column = "email" if reference.kind == "applicant" else "manager_email"
            elif reference is not None:  # HR, after an escalation
                row = await self._store.application(record.application_id)
                if row is not None:
                    resolver = people.Resolver.of_application(self._store, row)
                    decided_by = await resolver.who(decided_by)
            await self._store.record_decision(
                application_id=record.application_id,
                key=record.key,
                decision=record.decision,
                decided_by=decided_by,
                decided_by_column=column,
                channel=record.channel or "",
                at=record.at,
                status=record.status,
            )
        else:
            await self._store.set_application_status(
                record.application_id, record.status, record.at
            )
        if record.count_undecided_in is None:
            return None
        return RecordedApplication(
            undecided=await self._store.undecided_count(
                record.count_undecided_in, UNDECIDED_STATUSES
            )
        )

    @activity.defn
    async def undecided_applications(self, program: ProgramApplications) -> UndecidedCount:
        """How many of the program's applications the database has without an answer."""
        return UndecidedCount(
            undecided=await self._store.undecided_count(program.program_id, UNDECIDED_STATUSES)
        )

    @activity.defn
    async def tally_on_record(self, program: ProgramApplications) -> Tally:
        """The program's applications counted by organisation, profile, status and HR's
        selection: what the program knows of them (it is sent nothing by them)."""
        return tally.on_record(await self._store.application_counts(program.program_id))

    @activity.defn
    async def selection_of(self, application: ApplicationRef) -> SelectionOf:
        """HR's capacity decision on an application, if any (for its program's tally)."""
        row = await self._store.application(application.application_id)
        selected = row.selection if row is not None else None
        return SelectionOf(selection=Selection(selected) if selected else None)


class ApplicationControlActivities:
    """Holds the store and the Temporal client: tells open applications their program closed."""

    def __init__(self, store: Store, client: Client) -> None:
        self._store = store
        self._client = client

    @activity.defn
    async def close_applications(self, request: CloseApplicationsInput) -> CloseApplicationsResult:
        """Signal every application of a cancelled program that may still take an answer.

        The applications are read from the database (the program holds only counts); a
        signal to one that has finished meanwhile is skipped. Retried, each is told again,
        which changes nothing.
        """
        rows = await self._store.applications(request.program_id)
        closed = 0
        for row in rows:
            if row.status not in OPEN_STATUSES:
                continue
            handle = self._client.get_workflow_handle(
                application_workflow_id(request.program_id, row.id)
            )
            try:
                # By name: activities do not import workflows (ApplicationWorkflow.program_closed).
                await handle.signal("program_closed")
                closed += 1
            except RPCError as error:
                activity.logger.info("application %s not told: %s", row.id, error.message)
            activity.heartbeat(closed)
        return CloseApplicationsResult(closed=closed)
