"""A program told of many applications continues as new and loses no count (dev server)."""

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
    """Person i's application, taken as the web form takes it (it starts its workflow,
    which tells the program)."""
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


async def test_many_applications_continue_as_new_with_every_count_kept(
    dev_env: WorkflowEnvironment,
    worker_settings: Settings,
    store: Store,
    tmp_path: Path,
) -> None:
    file, program_id = fast_definition(tmp_path, opens=1, deadline=25, reminders=())
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    data["approval"] = {"required": False}  # every application is approved at once
    # No approvals to wait for: HR's decision ten seconds after the deadline, still a wait
    # long enough for the program to sleep (and continue as new) once the last news is in.
    data["capacity"]["decision_by"] = "+PT35S"
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    definition = load_definition(file)
    async with program_running(
        dev_env.client, worker_settings, store, definition, continue_as_new_after=120
    ) as program:
        await wait_for(lambda: window_open(program, store), within=30)
        for i in range(30):
            await apply(store, dev_env.client, definition, i)
        status = await until_phase(program, ProgramPhase.RUNNING, within=120)
        runs = [len(h.events) for h in await run_histories(dev_env.client, program.id)]

    assert status.phase is ProgramPhase.RUNNING
    assert len(runs) >= 2, runs  # it continued as new at least once ...
    assert max(runs) < 250, runs  # ... so no run's history grew far past the budget
    assert status.counts["applied"] == 30 and status.counts["approved"] == 30
    assert status.applications == {
        "demo-company/adept": {
            "applied": 15,
            "approved": 15,
            "declined": 0,
            "withdrawn": 0,
            "pending": 0,
        },
        "demo-company/mentor": {
            "applied": 15,
            "approved": 15,
            "declined": 0,
            "withdrawn": 0,
            "pending": 0,
        },
    }
    assert {r.status for r in await store.applications(program_id)} == {"approved"}


async def test_a_steady_stream_of_applications_does_not_hold_off_continue_as_new(
    dev_env: WorkflowEnvironment,
    worker_settings: Settings,
    store: Store,
    tmp_path: Path,
) -> None:
    """With applications always in flight the run is never idle; it must still move on.

    Seen at 5,000 applicants: the program waited for its handlers to finish before
    continuing as new, a steady stream never let them, and its history passed the
    10,240-event warning until the server refused more updates (2,000 per run).
    """
    file, _ = fast_definition(tmp_path, opens=1, deadline=120, reminders=())
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    # Approved at once: each application signals twice (applied, approved), so the
    # stream is at least 120 signals, past the 120 events this program's runs keep.
    data["approval"] = {"required": False}
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    definition = load_definition(file)
    applications = 60
    async with program_running(
        dev_env.client, worker_settings, store, definition, continue_as_new_after=120
    ) as program:
        await wait_for(lambda: window_open(program, store), within=30)
        queue = list(range(applications))

        async def applicant() -> None:
            # Each sender applies as soon as its last application was taken, as a busy
            # web form does, so handlers overlap for the whole stream.
            while queue:
                await apply(store, dev_env.client, definition, queue.pop())

        await asyncio.gather(*(applicant() for _ in range(6)))

        async def all_counted() -> bool:
            status = await program.query(ProgramWorkflow.status)
            return status.counts["applied"] == applications

        # Each application's workflow tells the program; the last ones are on their way.
        await wait_for(all_counted, within=60)
        status = await program.query(ProgramWorkflow.status)
        runs = [len(h.events) for h in await run_histories(dev_env.client, program.id)]
        await program.terminate("test over")

    assert status.counts["applied"] == applications  # every application reached the program
    assert len(runs) >= 2, runs  # it moved on while the stream went on ...
    assert max(runs) < 250, runs  # ... instead of growing one history without bound
