"""What a ``ProgramWorkflowV1`` run carries when it continues as new (its compact format)."""

from __future__ import annotations

import random
import secrets
from datetime import UTC, datetime, timedelta

from mentorflow.codec import compact_data_converter
from mentorflow.definition import load_definition
from mentorflow.models import (
    PairEntry,
    ProgramDates,
    ProgramPhase,
    Selection,
    pair_id_of,
)
from tests.programs import DEMO
from workflows.legacy.state_v1 import ApplicationEntry
from workflows.legacy.state_v1 import ProgramStateV1 as ProgramState

PAYLOAD_WARNING = 512 * 1024  # Temporal's blob size warning


def state_with(
    applications: dict[str, ApplicationEntry], pairs: dict[str, PairEntry] | None = None
) -> ProgramState:
    day = datetime(2027, 3, 1, 9, tzinfo=UTC)
    return ProgramState(
        phase=ProgramPhase.AWAITING_HR_DECISION,
        revision=1,
        dates=ProgramDates(
            opens=day,
            deadline=day + timedelta(days=14),
            start=day + timedelta(days=60),
            end=day + timedelta(days=240),
            evaluation_opens=day + timedelta(days=240),
            evaluation_closes=day + timedelta(days=254),
        ),
        reminders_done=[],
        reminders_sent=0,
        announced_to=0,
        reschedules=0,
        applications=applications,
        pairs=pairs or {},
    )


def applicants(n: int) -> dict[str, ApplicationEntry]:
    """n applications as a program holds them: random ids, the demo's organisations and
    profiles, every kind of outcome and selection."""
    definition = load_definition(DEMO)
    rng = random.Random(8)
    outcomes = [None, "approved", "declined", "withdrawn"]
    return {
        secrets.token_hex(8): ApplicationEntry(
            organisation_id=rng.choice(definition.organisations).id,
            profile_id=rng.choice(definition.profiles).id,
            outcome=(outcome := rng.choice(outcomes)),
            selection=rng.choice(list(Selection)) if outcome == "approved" else None,
        )
        for _ in range(n)
    }


def pairs_of(applications: dict[str, ApplicationEntry]) -> dict[str, PairEntry]:
    """Every two applications a running pair, some closed, some made by a re-match."""
    ids = list(applications)
    pairs = {}
    for i, (mentor, adept) in enumerate(zip(ids[::2], ids[1::2], strict=False)):
        pairs[pair_id_of(mentor, adept)] = PairEntry(
            mentor_id=mentor,
            adept_id=adept,
            status="closed" if i % 50 == 0 else "active",
            started=i % 10 != 0,
            rematch=i % 100 == 0,
        )
    return pairs


def test_a_running_program_of_5000_continues_as_new_below_the_payload_warning() -> None:
    entries = applicants(5_000)
    state = state_with(entries, pairs_of(entries))
    (payload,) = compact_data_converter.payload_converter.to_payloads([state])
    assert len(payload.data) < PAYLOAD_WARNING
    (back,) = compact_data_converter.payload_converter.from_payloads([payload], [ProgramState])
    assert back == state
    assert list(back.applications) == list(state.applications)  # order kept


def test_entries_carried_as_objects_by_earlier_runs_are_still_read() -> None:
    entries = applicants(20)
    pairs = pairs_of(entries)
    earlier = state_with(entries, pairs).model_dump(mode="json")
    earlier["applications"] = {key: e.model_dump(mode="json") for key, e in entries.items()}
    earlier["pairs"] = {key: pair.model_dump(mode="json") for key, pair in pairs.items()}
    state = ProgramState.model_validate(earlier)
    assert state.applications == entries and state.pairs == pairs
