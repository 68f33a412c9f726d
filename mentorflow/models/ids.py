"""Workflow ids and task queues: made from ids, never from a person's data."""

from __future__ import annotations

import hashlib
import re

WORKFLOW_ID_PREFIX = "program-"


# How a program refuses an application while it moves to its next run (continue-as-new):
# the refusal's message starts with this word, and senders simply send again.
HANDING_OVER = "handing_over"


def program_workflow_id(program_id: str) -> str:
    """The workflow id of a program: from its definition id, never from a person's data."""
    return f"{WORKFLOW_ID_PREFIX}{program_id}"


def pair_id_of(mentor_id: str, adept_id: str) -> str:
    """A pair's id: derived from its two application ids, so opening it twice is harmless."""
    return hashlib.sha256(f"{mentor_id}/{adept_id}".encode()).hexdigest()[:16]


def pair_workflow_id(program_id: str, pair_id: str) -> str:
    """The workflow id of one running pair: program id and the pair's id, no personal data."""
    return f"pair-{program_id}-{pair_id}"


def participant_task_queue(program_task_queue: str) -> str:
    """The task queue of a program's application and pair workflows and their activities.

    Their own queue, polled by the same worker: a program's workflow tasks then never
    wait behind the thousands of its applications' (in one shared queue, a task of a
    5,000-applicant program waited 7½ minutes while the approvals were answered).
    """
    return f"{program_task_queue}-participants"


def application_workflow_id(program_id: str, application_id: str) -> str:
    """The workflow id of one application: program id and a random id, no personal data."""
    return f"application-{program_id}-{application_id}"


_CHILD_ID = re.compile(r"^(?:application|pair)-(?P<program>[a-z0-9][a-z0-9-]*)-[0-9a-f]{16}$")


def program_id_of(workflow_id: str) -> str | None:
    """The program a workflow belongs to, read from its id (for logs); None if not ours."""
    child = _CHILD_ID.match(workflow_id)
    if child:
        return child["program"]
    if workflow_id.startswith(WORKFLOW_ID_PREFIX):
        return workflow_id[len(WORKFLOW_ID_PREFIX) :]
    return None
