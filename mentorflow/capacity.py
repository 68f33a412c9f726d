"""HR's capacity decision as pure rules: what the undecided-organisation policy selects.

Kept out of the workflow so that it is tested without Temporal
(``tests/test_capacity.py``) and reads as the rule it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mentorflow.definition import UndecidedPolicy
from mentorflow.models import Selection


def undecided_selections(
    policy: UndecidedPolicy,
    approved: Iterable[tuple[str, str]],
    cap: Callable[[str], int | None],
) -> dict[str, Selection]:
    """What ``policy`` decides for an organisation whose HR did not decide in time.

    ``approved``: its approved applications as (application id, profile id), in the
    order they arrived; ``cap``: the organisation's cap for a profile (None: no cap).
    ``accept_up_to_cap`` takes them first come, first served, and wait-lists the rest.
    """
    selections: dict[str, Selection] = {}
    taken: dict[str, int] = {}
    for application_id, profile_id in approved:
        limit = cap(profile_id)
        if policy is UndecidedPolicy.DECLINE_ALL:
            selections[application_id] = Selection.DECLINED
        elif policy is UndecidedPolicy.ACCEPT_UP_TO_CAP and (
            limit is None or taken.get(profile_id, 0) < limit
        ):
            taken[profile_id] = taken.get(profile_id, 0) + 1
            selections[application_id] = Selection.ACCEPTED
        else:
            selections[application_id] = Selection.WAITLISTED
    return selections
