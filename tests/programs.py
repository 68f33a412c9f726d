"""Helpers to write short-lived program definitions for tests that run in real time."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WorkflowHandle

from mentorflow.definition import ProgramDefinition, load_definition
from mentorflow.models import ProgramResult, pair_id_of, program_workflow_id
from mentorflow.programs import start_program
from mentorflow.store import Store
from mentorflow.store.tables import Application
from tests.keys import TEST_SECRET_KEY
from workflows.program import ProgramWorkflow

DEMO = Path(__file__).parent.parent / "definitions" / "demo.yaml"


def fast_definition(
    folder: Path,
    *,
    opens: int = 2,
    deadline: int = 30,
    reminders: tuple[int, ...] = (20, 10),
    recipients: tuple[str, ...] = ("everyone@demo.example.org", "managers@demo.example.org"),
    approval_gap: int = 8,
) -> tuple[Path, str]:
    """The demo definition with seconds instead of minutes and a unique id; (file, id)."""
    data: dict[str, Any] = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    program_id = f"test-{uuid.uuid4().hex[:10]}"
    data["id"] = program_id
    data["application"]["opens"] = f"+PT{opens}S"
    data["application"]["deadline"] = f"+PT{deadline}S"
    data["application"]["reminders_before_deadline"] = [f"PT{s}S" for s in reminders]
    # Everything after the deadline follows within seconds, so a test sees the program out.
    answer_by = deadline + approval_gap
    data["approval"]["answer_by"] = f"+PT{answer_by}S"
    data["approval"]["reminders_before_answer_by"] = ["PT4S"]
    data["capacity"]["decision_by"] = f"+PT{answer_by + 8}S"
    data["schedule"]["start"] = f"+PT{answer_by + 60}S"
    data["schedule"]["end"] = f"+PT{answer_by + 600}S"
    data["schedule"]["kickoff"]["starts"] = f"+PT{answer_by + 70}S"
    data["schedule"]["kickoff"]["duration"] = "PT1M"
    data["evaluation"]["opens"] = f"+PT{answer_by + 500}S"
    data["evaluation"]["closes"] = f"+PT{answer_by + 590}S"
    data["announcement"]["recipients"] = list(recipients)
    path = folder / f"{program_id}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path, program_id


def fast_program(folder: Path, **options: Any) -> ProgramDefinition:
    """``fast_definition``'s program (``options`` are its), loaded."""
    file, _ = fast_definition(folder, **options)
    return load_definition(file)


def mentorflow(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the ``mentorflow`` command as a user would, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "mentorflow", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_mentorflow(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a long-running ``mentorflow`` service (worker, dev) with its output in ``log``.

    The worker and the web app get the tests' link key unless ``env`` names one: they
    refuse to start on the development key."""
    key = {"MENTORFLOW_SECRET_KEY": TEST_SECRET_KEY} if args[:1] in (("worker",), ("web",)) else {}
    return subprocess.Popen(
        [sys.executable, "-m", "mentorflow", *args],
        env={**os.environ, "PYTHONUNBUFFERED": "1", **key, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def whole_program_definition(folder: Path) -> tuple[Path, str]:
    """A whole program in about four minutes: window, approvals, capacity, matching,
    kick-off, meetings every 30 s, the closing evaluation and the report; (file, id)."""
    path, program_id = fast_definition(
        folder, opens=2, deadline=40, reminders=(20,), approval_gap=25
    )
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["capacity"]["decision_by"] = "+PT90S"
    data["capacity"]["reminders_before_decision"] = []
    data["schedule"].update(start="+PT120S", end="+PT210S")
    data["schedule"]["kickoff"].update(starts="+PT125S", duration="PT1M")
    data["meetings"] = {"cadence": [{"every": "PT30S"}], "length": "PT10S", "stalled_after": "PT2M"}
    data["evaluation"].update(opens="+PT170S", closes="+PT200S", reminders_before_close=["PT10S"])
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path, program_id


def demo_application(name: str, email: str, manager_email: str) -> dict[str, str]:
    """A filled-in application form for a program made from ``definitions/demo.yaml``."""
    return {
        "name": name,
        "email": email,
        "organisation": "demo-company",
        "manager_name": f"Manager of {name}",
        "manager_email": manager_email,
        "eligible_0": "yes",
        "q_motivation": "Climate and leadership, and to learn new tools.",
    }


NEXT_DEADLINE = datetime(2027, 3, 1, 16, 0, tzinfo=UTC)


async def record_program(
    store: Store,
    definition: ProgramDefinition,
    phase: str = "application_window",
    *,
    next_deadline: datetime | None = NEXT_DEADLINE,
    at: datetime | None = None,
) -> None:
    """The program's row as its workflow would record it: for web, CLI and activity tests
    where no workflow records it. Next deadline: 1 March 2027, 16:00 UTC unless given;
    recorded now unless ``at``."""
    await store.save_program(
        program_id=definition.id,
        name=definition.name,
        workflow_id=program_workflow_id(definition.id),
        definition=definition.model_dump(mode="json", by_alias=True),
        phase=phase,
        revision=1,
        next_deadline=next_deadline,
        at=at or datetime.now(UTC),
    )


async def record_application(
    store: Store, program_id: str, email: str, at: datetime, **fields: Any
) -> Application:
    """An application as the web form records it, eligibility confirmed; ``fields`` set
    what the test needs beyond these: a fresh id, a name from the address, demo-company,
    no department, a mentor, the manager "Boss" at boss-of-<address>, no answers."""
    values: dict[str, Any] = {
        "new_id": uuid.uuid4().hex[:16],
        "name": email.split("@")[0].title(),
        "organisation_id": "demo-company",
        "department": "",
        "profile_id": "mentor",
        "manager_email": f"boss-of-{email}",
        "manager_name": "Boss",
        "answers": {},
        "eligibility_confirmed": True,
        "channel": "web_form",
        **fields,
    }
    row, _ = await store.save_application(program_id=program_id, email=email, at=at, **values)
    return row


async def record_pair(
    store: Store,
    program_id: str,
    at: datetime,
    *,
    pair_id: str | None = None,
    source: str = "test",
    **fields: Any,
) -> tuple[str, str, str]:
    """mentor@example.org and adept@example.org (``record_application``'s, with ``fields``)
    in a running pair; (the pair's id, the mentor's application id, the adept's)."""
    mentor, adept = [
        await record_application(
            store, program_id, f"{role}@example.org", at, profile_id=role, **fields
        )
        for role in ("mentor", "adept")
    ]
    pair_id = pair_id or pair_id_of(mentor.id, adept.id)
    await store.open_pairs(
        program_id=program_id, pairs=[(pair_id, mentor.id, adept.id)], source=source, at=at
    )
    return pair_id, mentor.id, adept.id


async def start_with_database(
    client: Client, definition: ProgramDefinition, database_url: str, *, task_queue: str
) -> WorkflowHandle[ProgramWorkflow, ProgramResult]:
    """``start_program`` for tests whose worker runs in another process (its own store)."""
    store = Store(database_url)
    try:
        return await start_program(client, definition, store=store, task_queue=task_queue)
    finally:
        await store.close()
