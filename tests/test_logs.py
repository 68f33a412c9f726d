"""JSON log lines carry the ids ops search by: workflow, run, activity and program."""

from __future__ import annotations

import json
import logging

from mentorflow.logs import JsonFormatter
from mentorflow.models import application_workflow_id, pair_workflow_id, program_id_of


def line(**extra: object) -> dict[str, object]:
    record = logging.LogRecord("temporalio.workflow", logging.INFO, "", 0, "hello %s", ("x",), None)
    record.__dict__.update(extra)
    parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
    return parsed


def test_a_workflow_line_names_its_workflow_and_program() -> None:
    entry = line(
        temporal_workflow={
            "workflow_id": application_workflow_id("lighting-2026", "0123456789abcdef"),
            "run_id": "r1",
            "workflow_type": "ApplicationWorkflow",
            "namespace": "default",
            "task_queue": "mentorflow",
            "attempt": 1,
        }
    )
    assert entry["message"] == "hello x" and entry["level"] == "info"
    assert entry["program_id"] == "lighting-2026"
    assert entry["workflow_type"] == "ApplicationWorkflow" and entry["run_id"] == "r1"
    assert "temporal_workflow" not in entry


def test_an_activity_line_names_its_activity_and_the_workflow_run() -> None:
    entry = line(
        temporal_activity={
            "activity_id": "7",
            "activity_type": "send_email_batch",
            "workflow_id": "program-demo",
            "workflow_run_id": "r2",
            "workflow_type": "ProgramWorkflow",
            "attempt": 3,
        },
        request="anything else passed as extra is kept",
    )
    assert entry["activity_type"] == "send_email_batch" and entry["attempt"] == 3
    assert entry["run_id"] == "r2" and entry["program_id"] == "demo"
    assert entry["request"] == "anything else passed as extra is kept"


def test_program_ids_are_read_back_from_every_workflow_id() -> None:
    assert program_id_of("program-a-b-c") == "a-b-c"
    assert program_id_of(pair_workflow_id("a-b", "fedcba9876543210")) == "a-b"
    assert program_id_of("someone-elses-workflow") is None
