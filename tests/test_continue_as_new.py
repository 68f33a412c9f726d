"""A program with many applications continues as new and loses nothing (dev server)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml
from temporalio.testing import WorkflowEnvironment

from mentorflow.definition import load_definition
from mentorflow.models import ApplicationSubmission, Person, ProgramPhase
from mentorflow.programs import start_program
from mentorflow.settings import Settings
from mentorflow.store import Store
from tests.conftest import run_histories, until_phase, wait_for
from tests.programs import fast_definition
from worker.main import create_worker
from workflows.program import ProgramWorkflow


async def test_many_applications_continue_as_new_with_every_count_kept(
    dev_env: WorkflowEnvironment,
    worker_settings: Settings,
    store: Store,
    task_queue: str,
    tmp_path: Path,
) -> None:
    file, program_id = fast_definition(tmp_path, opens=1, deadline=25, reminders=())
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    data["approval"] = {"required": False}  # every application is approved at once
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    definition = load_definition(file)
    async with create_worker(dev_env.client, worker_settings, store):
        program = await start_program(
            dev_env.client, definition, task_queue=task_queue, continue_as_new_after=120
        )

        async def window_open() -> bool:
            status = await program.query(ProgramWorkflow.status)
            return status.phase is ProgramPhase.APPLICATION_WINDOW

        await wait_for(window_open, within=30)
        for i in range(30):
            saved, created = await store.save_application(
                new_id=f"app{i:04d}",
                program_id=program_id,
                email=f"p{i}@example.org",
                name=f"Person {i}",
                organisation_id="demo-company",
                department="",
                profile_id="mentor" if i % 2 else "adept",
                manager_email=f"m{i}@example.org",
                manager_name=f"M {i}",
                answers={},
                eligibility_confirmed=True,
                channel="web_form",
                at=datetime.now(UTC),
            )
            await program.execute_update(
                ProgramWorkflow.submit_application,
                ApplicationSubmission(
                    application_id=saved.id,
                    organisation_id="demo-company",
                    profile_id=saved.profile_id,
                    applicant=Person(name=saved.name, email=saved.email),
                    manager=Person(name=saved.manager_name, email=saved.manager_email),
                    created=created,
                ),
            )
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
