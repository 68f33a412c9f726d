"""A busy machine is normal: a whole program on the dev server, beside two busy processes.

The production topology as local processes: one ``mentorflow worker --only
workflows`` and one ``--only activities`` (so rendering, SMTP and the database
never share a process, nor a GIL, with workflow activations), the web app,
the dev server, PostgreSQL or SQLite, and the mail catcher, while two
processes burn both cores for the whole run. Applicants write long answers
(large, but what the form allows). The program, compressed to about a
minute, must run to its report with no workflow task failed (no ``TMPRL1101``
potential deadlock in the workers' logs, no ``WorkflowTaskFailed`` in any
history of the program), and Temporal must hold none of what people typed.

The demo's shape is kept where it once stalled a program: its survey closes
before its end (the program used to spin on the passed close until the SDK's
deadlock detector failed its task).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from mentorflow.definition import load_definition
from mentorflow.mail.catcher import MailCatcher
from mentorflow.models import ProgramPhase
from mentorflow.store import Store, migrate
from tests.conftest import (
    free_port,
    links_in,
    run_histories,
    serving,
    settings_for,
    until_phase,
    wait_for,
)
from tests.privacy import personal_data_in_temporal
from tests.programs import DEMO, spawn_mentorflow, start_with_database
from tests.test_continue_as_new import window_open

SECRET_KEY = uuid.uuid4().hex * 2


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: what is measured is the workflow tasks, not the database."""
    url = f"sqlite:///{tmp_path / 'mentorflow.db'}"
    migrate(url)
    return url


# Long answers: about 8 KB each, far below what the form takes, far above what a
# workflow should ever carry (it carries none of it).
ANSWER = "Jag vill lära mig att leda på ett nytt sätt. " * 180


def stall_definition(folder: Path) -> tuple[Path, str]:
    """The demo in about a minute: no HR step waits for a person (capacity by policy,
    pairs confirmed without review), and the survey closes before the end."""
    data: dict[str, Any] = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    program_id = f"stall-{uuid.uuid4().hex[:10]}"
    data["id"] = program_id
    data["application"] = {
        "opens": "+PT2S",
        "deadline": "+PT25S",
        "reminders_before_deadline": ["PT10S"],
    }
    data["approval"] = {
        "answer_by": "+PT35S",
        "reminders_before_answer_by": ["PT4S"],
        "on_silence": "decline",
    }
    # The window and the managers' answers leave room for workers that start slowly beside
    # the busy processes; from HR's decision on, every step follows within seconds.
    data["capacity"].update(
        decision_by="+PT37S", reminders_before_decision=[], when_undecided="accept_up_to_cap"
    )
    data["matching"]["hr_review"] = False
    data["schedule"].update(start="+PT40S", end="+PT62S")
    data["schedule"]["kickoff"].update(starts="+PT41S", duration="PT10S")
    data["meetings"] = {"cadence": [{"every": "PT10S"}], "length": "PT5S", "stalled_after": "PT1M"}
    data["evaluation"].update(opens="+PT48S", closes="+PT57S", reminders_before_close=["PT4S"])
    path = folder / f"{program_id}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path, program_id


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """``count`` processes that burn a core each until the block ends."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(10)


@contextlib.contextmanager
def workers(environment: dict[str, str], folder: Path) -> Iterator[dict[str, Path]]:
    """One workflows-only and one activities-only worker process, stopped with SIGTERM."""
    logs = {kind: folder / f"worker-{kind}.log" for kind in ("workflows", "activities")}
    processes = [
        spawn_mentorflow("worker", "--only", kind, env=environment, log=log)
        for kind, log in logs.items()
    ]
    try:
        yield logs
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.mark.timeout(420)
async def test_a_program_runs_through_on_a_busy_machine_without_a_failed_workflow_task(
    dev_env: WorkflowEnvironment,
    database_url: str,
    mail_catcher: MailCatcher,
    store: Store,
    task_queue: str,
    tmp_path: Path,
) -> None:
    port = free_port()
    settings = settings_for(
        task_queue=task_queue,
        database_url=database_url,
        smtp_port=mail_catcher.port,
        web_port=port,
        public_base_url=f"http://127.0.0.1:{port}",
        secret_key=SECRET_KEY,
    )
    environment = {
        "MENTORFLOW_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "MENTORFLOW_TEMPORAL_TASK_QUEUE": task_queue,
        "MENTORFLOW_DATABASE_URL": database_url,
        "MENTORFLOW_SMTP_PORT": str(mail_catcher.port),
        "MENTORFLOW_PUBLIC_BASE_URL": settings.public_base_url,
        "MENTORFLOW_SECRET_KEY": SECRET_KEY,
    }
    file, program_id = stall_definition(tmp_path)
    definition = load_definition(file)
    people = [
        (
            f"Sökande {i} Stallberg-Åkesson",
            f"sokande{i}@stall.example.org",
            f"chef{i}@stall.example.org",
        )
        for i in range(6)
    ]

    with busy_processes(2), workers(environment, tmp_path) as logs:
        async with serving(settings, dev_env.client, store) as web:
            program = await start_with_database(
                dev_env.client, definition, database_url, task_queue=task_queue
            )
            # Open as the form sees it: the workers, slow here, have also recorded the opening.
            await wait_for(lambda: window_open(program, store), within=60, interval=0.2)
            for i, (name, email, manager) in enumerate(people):
                profile = "mentor" if i % 2 else "adept"
                form = {
                    "name": name,
                    "email": email,
                    "organisation": "demo-company",
                    "manager_name": f"Chef för {name}",
                    "manager_email": manager,
                    "eligible_0": "yes",
                    "q_motivation": ANSWER + name,
                }
                answer = await web.http.post(
                    f"/programs/{program_id}/apply", params={"profile": profile}, data=form
                )
                assert answer.status_code == 200, answer.text
            await wait_for(lambda: all(links_in(mail_catcher, m, "a") for _, _, m in people), 60)
            for _, _, manager in people:
                decided = await web.http.post(
                    links_in(mail_catcher, manager, "a")[0], data={"choice": "approve"}
                )
                assert decided.status_code == 200, decided.text

            # Pairs meet, the survey opens and closes, the report goes to HR.
            status = await until_phase(program, ProgramPhase.COMPLETED, within=240)
            assert status.counts["approved"] == len(people)
            # Three mentors and three adepts: everyone paired, every pair to its end.
            assert status.report is not None
            assert (status.report.applied, status.report.matched) == (len(people), len(people))
            assert status.pairs == {"ended": len(people) // 2}

            # Searched while the workers are up (they answer for the current details).
            typed = [text for person in people for text in person]
            typed += [f"Chef för {name}" for name, _, _ in people]
            typed += [ANSWER.strip()[:200], str(definition.coordinators()[0].email)]
            typed += [str(r) for r in definition.announcement.recipients]
            hits = await personal_data_in_temporal(
                dev_env.client, typed, query=f"ProgramId = '{program_id}'"
            )

    assert hits == []
    failed = []
    async for execution in dev_env.client.list_workflows(f"ProgramId = '{program_id}'"):
        for history in await run_histories(dev_env.client, execution.id):
            failed += [
                (execution.id, event.event_id)
                for event in history.events
                if event.HasField("workflow_task_failed_event_attributes")
            ]
    assert failed == [], f"workflow tasks failed: {failed}"
    for kind, log in logs.items():
        text = log.read_text(encoding="utf-8", errors="replace")
        assert "TMPRL1101" not in text and "Potential deadlock" not in text, kind
        assert "Traceback" not in text, f"{kind} worker: {text[-3000:]}"
