"""Safe upgrades: today's workflow code must replay the histories of programs already running.

``tests/histories/`` holds real histories recorded from the end-to-end tests
(``MENTORFLOW_RECORD_HISTORIES=1``, see docs/upgrades.md): a whole program to
its purge, a postponed start, a withdrawal and re-match, HR's capacity decision
and pair review, managers' answers, with their applications and pairs. A change
to a workflow that would break a running program fails here, in CI, before it
reaches a worker. The last two tests show the check has teeth, and how
``workflow.patched`` makes the same change safe.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from mentorflow.codec import compact_data_converter
from tests.changed_workflows import PatchedChange, UnsafeChange
from tests.conftest import HISTORIES
from worker.main import WORKFLOWS

# Pydantic loads email_validator lazily inside the sandbox on the first replay: harmless.
pytestmark = pytest.mark.filterwarnings("ignore:Module email_validator:UserWarning")


def recorded() -> list[tuple[Path, WorkflowHistory]]:
    histories = []
    for path in sorted(HISTORIES.rglob("*.json")):
        histories.append((path, WorkflowHistory.from_json(path.stem, path.read_text())))
    return histories


def workflow_type(history: WorkflowHistory) -> str:
    started = history.events[0].workflow_execution_started_event_attributes
    return str(started.workflow_type.name)


async def replay(workflows: list[type], histories: list[tuple[Path, WorkflowHistory]]) -> Any:
    replayer = Replayer(workflows=workflows, data_converter=compact_data_converter)
    failures = {}
    for path, history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures[str(path.relative_to(HISTORIES))] = result.replay_failure
    return failures


def test_every_workflow_kind_has_recorded_histories() -> None:
    kinds = Counter(workflow_type(history) for _, history in recorded())
    # By type name (ProgramWorkflowV1 is registered as "ProgramWorkflow", its old name).
    names = {workflow._Definition.must_from_class(defn).name for defn in WORKFLOWS}
    assert set(kinds) == names, "record histories of every workflow kind: see docs/upgrades.md"
    assert all(count >= 3 for count in kinds.values()), kinds


async def test_todays_code_replays_every_recorded_history() -> None:
    failures = await replay(list(WORKFLOWS), recorded())
    assert failures == {}, "a change breaks running workflows: see docs/upgrades.md"


# --- the check has teeth ---------------------------------------------------------------------


def program_histories() -> list[tuple[Path, WorkflowHistory]]:
    return [(path, h) for path, h in recorded() if workflow_type(h) == "ProgramWorkflow"]


async def test_a_change_that_would_break_running_programs_fails_replay() -> None:
    histories = program_histories()
    failures = await replay([UnsafeChange], histories)
    assert len(failures) == len(histories) >= 5
    assert all(isinstance(failure, NondeterminismError) for failure in failures.values())


@pytest.mark.parametrize("change", [PatchedChange], ids=["patched"])
async def test_the_same_change_behind_a_patch_replays(change: type) -> None:
    assert await replay([change], program_histories()) == {}
