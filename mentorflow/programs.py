"""Client-side operations on programs: what the CLI (and later the web pages) call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from mentorflow import search_attributes as sa
from mentorflow.definition import ProgramDefinition
from mentorflow.models import (
    ProgramInput,
    ProgramPhase,
    ProgramResult,
    ProgramStatus,
    PurgeRequest,
    PurgeResult,
    RescheduleRequest,
    RescheduleResult,
    program_dates,
    program_workflow_id,
)
from mentorflow.people import without_people
from mentorflow.report import purge
from mentorflow.store import Store
from mentorflow.temporal import workflow_task_failing
from workflows.program import ProgramWorkflow


class ProgramError(Exception):
    """An operation on a program that cannot be done; the message says why."""


@dataclass(frozen=True)
class ProgramSummary:
    program_id: str
    workflow_id: str
    status: str
    phase: str | None
    next_deadline: datetime | None
    started_at: datetime | None


async def start_program(
    client: Client,
    definition: ProgramDefinition,
    *,
    store: Store,
    task_queue: str,
    workflow_id: str | None = None,
    continue_as_new_after: int | None = None,
) -> WorkflowHandle[ProgramWorkflow, ProgramResult]:
    """Save the definition, then start the program's workflow; refuse if a program with
    the same id exists or existed.

    The workflow id comes from the definition's id, so the same definition
    started twice cannot make a second program. The database keeps the
    definition with its people; the workflow gets it without them
    (mentorflow.people), so Temporal's histories name nobody.
    """
    workflow_id = workflow_id or program_workflow_id(definition.id)
    await _refuse_existing(client, definition.id, workflow_id)
    await store.save_program(
        program_id=definition.id,
        name=definition.name,
        workflow_id=workflow_id,
        definition=definition.model_dump(mode="json", by_alias=True),
        phase=ProgramPhase.SCHEDULED.value,
        revision=0,
        next_deadline=definition.application.opens,
        at=datetime.now(UTC),
        # Before the workflow starts: clients read them to take applications.
        dates=program_dates(definition).model_dump(mode="json"),
    )
    plan = without_people(definition)
    try:
        return await client.start_workflow(
            ProgramWorkflow.run,
            ProgramInput(definition=plan)
            if continue_as_new_after is None
            else ProgramInput(definition=plan, continue_as_new_after=continue_as_new_after),
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(sa.PROGRAM_ID, definition.id)]
            ),
            static_summary=f"{definition.name} ({definition.id})",
        )
    except WorkflowAlreadyStartedError:  # started by someone else just now
        await _refuse_existing(client, definition.id, workflow_id)
        raise


async def _refuse_existing(client: Client, program_id: str, workflow_id: str) -> None:
    """Refuse to start a program whose workflow exists or existed (its row is its own)."""
    try:
        existing = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return
        raise
    state = existing.status.name.lower() if existing.status else "unknown"
    raise ProgramError(
        f"program {program_id!r} already exists (workflow {workflow_id}, {state},"
        f" started {existing.start_time:%Y-%m-%d %H:%M %Z}); nothing was started."
        " A new cohort needs a new id in its definition."
    )


def handle_for(client: Client, program_id: str) -> WorkflowHandle[ProgramWorkflow, ProgramResult]:
    return client.get_workflow_handle_for(ProgramWorkflow.run, program_workflow_id(program_id))


async def _describe_or_fail(handle: WorkflowHandle[ProgramWorkflow, ProgramResult]) -> str:
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            program_id = handle.id.removeprefix("program-")
            raise ProgramError(f"no program with id {program_id!r}") from None
        raise
    return description.status.name.lower() if description.status else "unknown"


async def program_status(client: Client, program_id: str) -> tuple[str, ProgramStatus]:
    """(workflow status, the workflow's own status) of a program."""
    handle = handle_for(client, program_id)
    state = await _describe_or_fail(handle)
    return state, await handle.query(ProgramWorkflow.status)


async def reschedule_program(
    client: Client, program_id: str, request: RescheduleRequest
) -> RescheduleResult:
    """Move dates through the workflow's validated update; refusals come back as ProgramError."""
    handle = handle_for(client, program_id)
    state = await _describe_or_fail(handle)
    if state != "running":
        raise ProgramError(f"program {program_id!r} is {state}; its dates can no longer move")
    try:
        return await handle.execute_update(ProgramWorkflow.reschedule, request)
    except WorkflowUpdateFailedError as error:
        reason = error.cause.message if hasattr(error.cause, "message") else str(error.cause)
        raise ProgramError(f"refused: {reason}; nothing was changed") from None
    except RPCError as error:
        raise not_now(program_id, error, "nothing was changed") from None


def not_now(
    program_id: str, error: RPCError, outcome: str, *, workflow: str = "program"
) -> BaseException:
    """The error to raise for an update the server refused: one line for HR when the
    program's workflow (or one of its pairs', ``workflow="pair"``) cannot take commands
    for now, else the error itself."""
    if not workflow_task_failing(error):
        return error
    why = (str(error).strip().splitlines() or ["its workflow task is failing"])[0].rstrip(".")
    who = f"program {program_id!r}" if workflow == "program" else f"this pair of {program_id!r}"
    return ProgramError(
        f"{who} cannot take commands now ({why}); {outcome}."
        f" `mentorflow program status {program_id}` shows what it is waiting on;"
        " try again later"
    )


async def cancel_program(client: Client, program_id: str) -> None:
    handle = handle_for(client, program_id)
    state = await _describe_or_fail(handle)
    if state != "running":
        raise ProgramError(f"program {program_id!r} is {state}; there is nothing to cancel")
    await handle.cancel()


async def purge_program(
    client: Client, program_id: str, request: PurgeRequest, store: Store
) -> PurgeResult:
    """Purge a finished program's personal data now, keeping its report's figures.

    A completed program's own workflow does it (and then closes, as ``purged``);
    a program whose workflow has closed another way (cancelled, terminated) is
    purged here, straight in the database.
    """
    report = await store.report(program_id)
    if report is not None and report.purged_at is not None:
        raise ProgramError(
            f"program {program_id!r} has already been purged ({report.purged_at:%Y-%m-%d})"
        )
    handle = handle_for(client, program_id)
    state = await _describe_or_fail(handle)
    if state == "running":
        try:
            return await handle.execute_update(ProgramWorkflow.purge, request)
        except WorkflowUpdateFailedError as error:
            reason = error.cause.message if hasattr(error.cause, "message") else str(error.cause)
            raise ProgramError(f"refused: {reason}; nothing was removed") from None
        except RPCError as error:
            raise not_now(program_id, error, "nothing was removed") from None
    if await store.program(program_id) is None:
        raise ProgramError(f"no program with id {program_id!r} in the database")
    return PurgeResult(**await purge(store, program_id, datetime.now(UTC)))


async def list_programs(client: Client, limit: int = 200) -> list[ProgramSummary]:
    """Programs, newest first, as the Temporal visibility store knows them."""
    # Both types: programs started before the thin program run on as ProgramWorkflowV1.
    query = "WorkflowType IN ('ProgramWorkflowV2', 'ProgramWorkflow')"
    found = []
    async for execution in client.list_workflows(query, limit=limit):
        attributes = execution.typed_search_attributes
        found.append(
            ProgramSummary(
                program_id=attributes.get(sa.PROGRAM_ID) or execution.id,
                workflow_id=execution.id,
                status=(
                    execution.status.name.lower()
                    if execution.status
                    else WorkflowExecutionStatus.RUNNING.name.lower()
                ),
                phase=attributes.get(sa.PROGRAM_PHASE),
                next_deadline=attributes.get(sa.NEXT_DEADLINE),
                started_at=execution.start_time,
            )
        )
    return found
