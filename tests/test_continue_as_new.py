"""Many applications leave the program's history alone, and it counts them all (dev server)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from mentorflow.applications import submit_application
from mentorflow.definition import ProgramDefinition, load_definition
from mentorflow.models import ProgramPhase, program_id_of
from mentorflow.settings import Settings
from mentorflow.store import Store
from tests.conftest import program_running, run_histories, until_phase, wait_for
from tests.programs import fast_definition
from workflows.program import ProgramWorkflow


async def window_open(program: WorkflowHandle[Any, Any], store: Store) -> bool:
    """Open as the web form sees it: the workflow has opened its window and recorded so
    (the form goes by the record, which trails the workflow by an activity)."""
    status = await program.query(ProgramWorkflow.status)
    if status.phase is not ProgramPhase.APPLICATION_WINDOW:
        return False
    row = await store.program(str(program_id_of(program.id)))
    return row is not None and row.phase == ProgramPhase.APPLICATION_WINDOW.value


async def apply(store: Store, client: Client, definition: ProgramDefinition, i: int) -> None:
    """Person i's application, taken as the web form takes it (it starts its workflow)."""
    values = {
        "email": f"p{i}@example.org",
        "name": f"Person {i}",
        "organisation": "demo-company",
        "manager_email": f"m{i}@example.org",
        "manager_name": f"M {i}",
    }
    profile = "mentor" if i % 2 else "adept"
    outcome = await submit_application(
        store, client, definition, profile, values, channel="web_form"
    )
    assert outcome.refusal is None, outcome


async def test_a_stream_of_applications_sends_the_program_nothing_and_every_count_is_kept(
    dev_env: WorkflowEnvironment,
    worker_settings: Settings,
    store: Store,
    tmp_path: Path,
) -> None:
    """Applications taken six at a time for as long as they come: the program's history
    does not grow with them (seen at 5,000 applicants: their signals held off its
    continue-as-new and its tasks waited minutes), and its counts are the database's."""
    file, program_id = fast_definition(tmp_path, opens=1, deadline=25, reminders=())
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    data["approval"] = {"required": False}  # every application is approved at once
    data["capacity"]["decision_by"] = "+PT35S"
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    definition = load_definition(file)
    applications = 60
    async with program_running(dev_env.client, worker_settings, store, definition) as program:
        await wait_for(lambda: window_open(program, store), within=30)
        queue = list(range(applications))

        async def applicant() -> None:
            # Each sender applies as soon as its last application was taken, as a busy
            # web form does.
            while queue:
                await apply(store, dev_env.client, definition, queue.pop())

        await asyncio.gather(*(applicant() for _ in range(6)))
        status = await until_phase(program, ProgramPhase.RUNNING, within=120)
        histories = await run_histories(dev_env.client, program.id)

    events = [e for h in histories for e in h.events]
    signalled = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    # Only an answer that left none open says so (approved at once here, that happens
    # whenever the senders pause); not one word per application.
    assert set(signalled) <= {"answers_in"} and len(signalled) < applications // 3, signalled
    # Its phases, dates and counts: the same few events for sixty applicants as for one.
    assert len(events) < 200, len(events)
    assert status.counts["applied"] == applications and status.counts["approved"] == applications
    half = {"applied": 30, "approved": 30, "declined": 0, "withdrawn": 0, "pending": 0}
    assert status.applications == {"demo-company/adept": half, "demo-company/mentor": half}
    assert {r.status for r in await store.applications(program_id)} == {"approved"}
