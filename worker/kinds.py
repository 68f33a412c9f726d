"""What a worker process hosts: a light module, so the CLI can offer the choice without
importing every workflow and activity."""

from __future__ import annotations

import enum


class WorkerKind(enum.StrEnum):
    """What one worker process hosts when it does not host everything."""

    WORKFLOWS = "workflows"
    ACTIVITIES = "activities"


def hosts_workflows(kind: WorkerKind | None) -> bool:
    """Whether a worker of ``kind`` (None: both kinds) runs workflow tasks."""
    return kind in (None, WorkerKind.WORKFLOWS)


def hosts_activities(kind: WorkerKind | None) -> bool:
    """Whether a worker of ``kind`` (None: both kinds) runs activity tasks."""
    return kind in (None, WorkerKind.ACTIVITIES)
