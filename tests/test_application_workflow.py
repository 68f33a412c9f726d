"""``ApplicationWorkflow`` alone, with its activities mocked (as samples-python tests
workflows): what it records, whom it emails, and when; and that it tells its program
nothing (the program counts the applications in the database).

No database, SMTP server or web app: the activities are stand-ins registered under the
real names, and a stand-in program workflow keeps any signal it is sent.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from mentorflow import people
from mentorflow.applications import _application_input
from mentorflow.definition import ProgramDefinition, load_definition
from mentorflow.models import (
    ApplicationInput,
    ApplicationRecordInput,
    ApplicationRef,
    ApplicationResult,
    DecisionRequest,
    EmailBatch,
    EmailBatches,
    EmailBatchesResult,
    EmailBatchResult,
    RecordedApplication,
    SelectionOf,
    application_workflow_id,
    program_dates,
    program_workflow_id,
)
from mentorflow.store.tables import Application
from tests.programs import DEMO
from workflows.application import ApplicationWorkflow

APPLICATION = "a-0001"


@dataclass
class Calls:
    """What the mocked activities were asked to do, in order."""

    records: list[ApplicationRecordInput] = field(default_factory=list)
    emails: list[EmailBatch] = field(default_factory=list)
    undecided_after: int = 1  # the program's applications still open after a record

    @activity.defn(name="record_application")
    async def record_application(
        self, record: ApplicationRecordInput
    ) -> RecordedApplication | None:
        self.records.append(record)
        if record.count_undecided_in is None:
            return None
        return RecordedApplication(undecided=self.undecided_after)

    @activity.defn(name="send_email_batch")
    async def send_email_batch(self, batch: EmailBatch) -> EmailBatchResult:
        self.emails.append(batch)
        fingerprints = {r: f"fp-{r}" for r in batch.recipients} if batch.links else {}
        return EmailBatchResult(
            sent=len(batch.recipients), already_sent=0, fingerprints=fingerprints
        )

    @activity.defn(name="send_email_batches")
    async def send_email_batches(self, request: EmailBatches) -> EmailBatchesResult:
        return EmailBatchesResult(
            results=[await self.send_email_batch(batch) for batch in request.batches]
        )

    @activity.defn(name="selection_of")
    async def selection_of(self, application: ApplicationRef) -> SelectionOf:
        return SelectionOf()

    def templates(self) -> list[str]:
        return [e.template for e in self.emails]


@workflow.defn(name="ProgramWorkflowV2", sandboxed=False)
class ListeningProgram:
    """Stands in for the program: keeps every signal's name and payload."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, Any]] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(dynamic=True)
    def anything(self, name: str, args: Sequence[RawValue]) -> None:
        payload = workflow.payload_converter().from_payload(args[0].payload) if args else None
        self.heard.append((name, payload))

    @workflow.query
    def signals(self) -> list[tuple[str, Any]]:
        return self.heard


@dataclass
class Scene:
    env: WorkflowEnvironment
    calls: Calls
    definition: ProgramDefinition
    program: WorkflowHandle[Any, Any]
    task_queue: str

    def input(self, **changes: Any) -> ApplicationInput:
        """What the web form starts the workflow with (its own function makes it), for an
        application to the first organisation as the first profile; ``changes`` on top."""
        application = Application(
            id=APPLICATION,
            organisation_id=self.definition.organisations[0].id,
            profile_id=self.definition.profiles[0].id,
        )
        made = _application_input(self.definition, program_dates(self.definition), application)
        return made.model_copy(update=changes)

    async def start(self, **changes: Any) -> WorkflowHandle[ApplicationWorkflow, ApplicationResult]:
        application = self.input(**changes)
        return await self.env.client.start_workflow(
            ApplicationWorkflow.run,
            application,
            id=application_workflow_id(application.program_id, application.application_id),
            task_queue=self.task_queue,
        )

    async def heard(self) -> list[tuple[str, Any]]:
        result: list[tuple[str, Any]] = await self.program.query("signals")
        return result


@pytest_asyncio.fixture
async def scene(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Scene]:
    env = time_skipping_env
    definition = load_definition(DEMO, reference_time=await env.get_current_time())
    calls = Calls()
    task_queue = f"application-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[ApplicationWorkflow, ListeningProgram],
        activities=[
            calls.record_application,
            calls.send_email_batch,
            calls.send_email_batches,
            calls.selection_of,
        ],
    ):
        program = await env.client.start_workflow(
            "ProgramWorkflowV2", id=program_workflow_id(definition.id), task_queue=task_queue
        )
        yield Scene(env, calls, definition, program, task_queue)
        # Time skipped past the stand-in's ten-year run timeout may have ended it already.
        with contextlib.suppress(RPCError):
            await program.terminate("test over")


async def wait_until(condition: Any, scene: Scene) -> None:
    for _ in range(200):
        if await condition():
            return
        await scene.env.sleep(timedelta(seconds=1))
    raise AssertionError("never happened")


async def test_an_approval_is_recorded_and_waits_for_the_start_telling_the_program_nothing(
    scene: Scene,
) -> None:
    handle = await scene.start()
    manager = people.manager(APPLICATION)

    async def asked() -> bool:
        return "approval_request" in scene.calls.templates()

    await wait_until(asked, scene)
    # A link sent to someone else is refused with its type, and nothing is taken.
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            ApplicationWorkflow.decide, DecisionRequest(approve=True, fingerprint="fp-other")
        )
    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == "not_your_link"

    status = await handle.execute_update(
        ApplicationWorkflow.decide, DecisionRequest(approve=True, fingerprint=f"fp-{manager}")
    )
    assert status.decided_by == manager

    async def recorded() -> bool:
        return len(scene.calls.records) == 2

    await wait_until(recorded, scene)
    # Still open: an approved applicant may withdraw until the program starts.
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
    result = await handle.result()

    assert [r.status for r in scene.calls.records] == ["awaiting_approval", "approved"]
    assert scene.calls.records[1].channel == "email_link"
    assert sorted(scene.calls.templates()) == ["application_received", "approval_request"]
    assert result.outcome.value == "approved"
    # The program is sent nothing: it counts the applications in the database, so
    # thousands of them do not keep its workflow busy. (Only an answer that leaves none
    # open would say so: the decision's record counts them.)
    program_id = scene.input().program_id
    assert [r.count_undecided_in for r in scene.calls.records] == [None, program_id]
    assert await scene.heard() == []
    # The answer and its record are one workflow task: the update, the record's marker
    # (a local activity), no patch marker; the server has no activity task to hand out.
    said: list[str] = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            said = ["accepted"]
        elif said and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            break
        elif said and event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            said.append(event.marker_recorded_event_attributes.marker_name)
        elif said:
            said.append(EventType.Name(event.event_type).removeprefix("EVENT_TYPE_"))
    assert said.count("WORKFLOW_EXECUTION_UPDATE_COMPLETED") == 1, said
    assert said.count("core_local_activity") == 1, said
    assert "core_patch" not in said and "ACTIVITY_TASK_SCHEDULED" not in said, said
    events = [e async for e in handle.fetch_history_events()]
    assert not [
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
    ]
    # Ended at the program's start, not before.
    assert await scene.env.get_current_time() >= scene.input().facts.start


async def test_independent_steps_go_out_in_one_workflow_task(scene: Scene) -> None:
    handle = await scene.start()

    async def asked() -> bool:
        return len(scene.calls.emails) == 2

    await wait_until(asked, scene)
    events = [e async for e in handle.fetch_history_events()]
    first_task = next(
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    commands: list[str] = []
    for event in events[first_task + 1 :]:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            break
        commands.append(EventType.Name(event.event_type))
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            commands[-1] = event.marker_recorded_event_attributes.marker_name
    # The application recorded (a local activity: its marker), the receipt and the
    # manager's request: all from the first workflow task, not one task each, and both
    # emails in one activity (each activity is a dispatch on the server).
    assert commands.count("core_local_activity") == 1, commands
    assert commands.count("EVENT_TYPE_ACTIVITY_TASK_SCHEDULED") == 1, commands
    assert scene.calls.templates() == ["application_received", "approval_request"]
    # One patch marker stands for every patch of the application (each cost the server a
    # search-attribute upsert too).
    assert commands.count("core_patch") == 1, commands
    assert commands.count("EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES") == 1, commands
    await handle.terminate("test over")


async def test_silence_declines_once_and_tells_the_applicant_kindly(scene: Scene) -> None:
    scene.calls.undecided_after = 0  # the program's last open application
    handle = await scene.start(on_silence="decline", reminders_before_answer_by=[])
    result = await handle.result()

    assert result.outcome.value == "declined" and result.channel == "policy"
    assert [r.status for r in scene.calls.records] == ["awaiting_approval", "declined"]
    assert scene.calls.records[1].decided_by == "policy: silence means decline"
    declined = [e for e in scene.calls.emails if e.template == "application_declined"]
    assert len(declined) == 1
    assert declined[0].recipients == [people.applicant(APPLICATION)]
    # Its answer left none of the program's applications open: the program hears it, once.
    assert [tuple(said) for said in await scene.heard()] == [("answers_in", None)]
