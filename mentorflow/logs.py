"""Logging for the worker, the web app and the dev stack: plain text or JSON lines."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from mentorflow.models import program_id_of

# Attributes every LogRecord has; anything else was passed as ``extra`` and is kept.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


# The SDK's workflow and activity loggers put their context in these extras.
_TEMPORAL_CONTEXT = {"temporal_workflow", "temporal_activity"}
_TEMPORAL_FIELDS = (
    "workflow_id",
    "run_id",
    "workflow_run_id",
    "workflow_type",
    "activity_id",
    "activity_type",
    "attempt",
    "task_queue",
    "namespace",
)


def _temporal_fields(context: dict[str, Any]) -> dict[str, Any]:
    """Flat, searchable fields: the workflow's ids, the activity's, and the program's id."""
    fields = {key: context[key] for key in _TEMPORAL_FIELDS if context.get(key) is not None}
    if "workflow_run_id" in fields:
        fields["run_id"] = fields.pop("workflow_run_id")
    program_id = program_id_of(str(fields.get("workflow_id", "")))
    if program_id:
        fields["program_id"] = program_id
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with Temporal's workflow and activity ids when present."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in _TEMPORAL_CONTEXT and isinstance(value, dict):
                entry.update(_temporal_fields(value))
            elif key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging() -> None:
    """``MENTORFLOW_LOG_FORMAT=json`` for JSON lines; ``MENTORFLOW_LOG_LEVEL`` (INFO)."""
    handler = logging.StreamHandler()
    if os.environ.get("MENTORFLOW_LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("MENTORFLOW_LOG_LEVEL", "INFO").upper())
    # aiosmtpd and uvicorn's access log are chatty at INFO.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
