"""The worker killed with SIGKILL again and again, at random moments, through a whole
compressed program on the dev server (persistent database): the program completes,
and every email it meant to send arrived exactly once.

About five minutes, so not in CI:  ./scripts/test -m chaos
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from mentorflow import people
from mentorflow.definition import load_definition
from mentorflow.mail.catcher import MailCatcher
from mentorflow.mail.message import message_id
from mentorflow.models import (
    CapacityDecision,
    MatchReviewRequest,
    ProgramPhase,
    ProgramStatus,
    Selection,
)
from mentorflow.programs import start_program
from mentorflow.settings import Settings
from mentorflow.store import Store
from tests.conftest import links_in, serving, wait_for
from tests.programs import demo_application, spawn_mentorflow, whole_program_definition
from tests.test_faults import kill, worker_env
from workflows.program import ProgramWorkflow

pytestmark = pytest.mark.chaos


async def status_of(program: Any) -> ProgramStatus | None:
    """The program's status, or None while no worker is alive to answer the query."""
    try:
        return await program.query(ProgramWorkflow.status)  # type: ignore[no-any-return]
    except RPCError:
        return None


async def until_phase_despite_kills(
    program: Any, phase: ProgramPhase, within: float
) -> ProgramStatus:
    async def reached() -> bool:
        status = await status_of(program)
        return status is not None and status.phase is phase

    await wait_for(reached, within=within, interval=0.5)
    status = await status_of(program)
    assert status is not None
    return status


APPLICANTS = [("mentor", 0), ("mentor", 1), ("adept", 2), ("adept", 3)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_worker_killed_at_random_through_a_whole_program(
    dev_env: WorkflowEnvironment,
    worker_settings: Settings,
    mail_catcher: MailCatcher,
    store: Store,
    database_url: str,
    task_queue: str,
    tmp_path: Path,
) -> None:
    file, program_id = whole_program_definition(tmp_path)
    definition = load_definition(file)
    variables = {
        **worker_env(dev_env, task_queue, database_url, mail_catcher.port),
        # The links in the emails lead to the web app this test serves.
        "MENTORFLOW_PUBLIC_BASE_URL": worker_settings.public_base_url,
    }
    log = tmp_path / "worker.log"
    worker = [spawn_mentorflow("worker", env=variables, log=log)]
    done = asyncio.Event()
    kills = 0

    async def keep_killing() -> None:
        nonlocal kills
        rng = random.Random()
        while not done.is_set():
            await asyncio.sleep(rng.uniform(3.0, 9.0))
            kill(worker[0])
            kills += 1
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            worker[0] = spawn_mentorflow("worker", env=variables, log=log)

    killer = asyncio.create_task(keep_killing())
    try:
        async with serving(worker_settings, dev_env.client, store) as web:
            program = await start_program(
                dev_env.client, definition, store=store, task_queue=task_queue
            )
            await until_phase_despite_kills(program, ProgramPhase.APPLICATION_WINDOW, within=60)
            for profile, i in APPLICANTS:
                answer = await web.http.post(
                    f"/programs/{program_id}/apply",
                    params={"profile": profile},
                    data=demo_application(
                        f"Applicant {i}",
                        f"applicant{i}@demo.example.org",
                        f"manager{i}@demo.example.org",
                    ),
                    timeout=60,
                )
                assert answer.status_code == 200, answer.text
            for _, i in APPLICANTS:
                manager = f"manager{i}@demo.example.org"
                await wait_for(lambda m=manager: links_in(mail_catcher, m, "a"), within=60)
                (link,) = links_in(mail_catcher, manager, "a")
                answer = await web.http.post(link, data={"choice": "approve"}, timeout=60)
                assert answer.status_code == 200, answer.text
            await until_phase_despite_kills(program, ProgramPhase.AWAITING_HR_DECISION, within=90)
            approved = [a.id for a in await store.applications(program_id)]
            await program.execute_update(
                ProgramWorkflow.decide_capacity,
                CapacityDecision(
                    organisation_id="demo-company",
                    selections=dict.fromkeys(approved, Selection.ACCEPTED),
                    decided_by=people.reference_of(definition, "hr@demo.example.org"),
                    channel="cli",
                ),
            )

            async def proposed() -> bool:
                status = await status_of(program)
                return status is not None and status.matching is not None

            await wait_for(proposed, within=90)
            summary = (
                await until_phase_despite_kills(program, ProgramPhase.MATCH_REVIEW, 60)
            ).matching
            assert summary is not None and summary.pairs == 2
            await program.execute_update(
                ProgramWorkflow.review_matching,
                MatchReviewRequest(action="confirm", proposal=summary.proposal, by="hr"),
            )
            status = await until_phase_despite_kills(program, ProgramPhase.COMPLETED, within=400)
    finally:
        done.set()
        await killer
        worker[0].terminate()
        worker[0].wait(30)

    assert kills >= 10
    assert status.report is not None
    ledger = await store.emails(program_id)
    assert ledger and {e.status for e in ledger} == {"sent"}
    caught = Counter(m.message_id for m in mail_catcher.messages())
    expected = {message_id(e.key, worker_settings.mail_from) for e in ledger}
    # Every email the program meant to send arrived, and none twice.
    assert set(caught) == expected
    assert set(caught.values()) == {1}
    kinds = Counter(e.template for e in ledger)
    assert kinds["approval_request"] == 4 and kinds["application_received"] == 4
    assert kinds["program_report"] == 1
