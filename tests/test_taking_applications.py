"""mentorflow.applications: what a thin program's client decides before Temporal is asked.

Whether the program takes applications is read from its row; a refused
application is not saved (the report once counted 45 "applied" where the
program had 5: a late CSV import's refused rows stayed in the database as
``late``), and an answered one is not changed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mentorflow.applications import submit_application
from mentorflow.definition import load_definition
from mentorflow.models import program_dates
from mentorflow.report import build_report
from mentorflow.store import Store
from tests.programs import DEMO, demo_application, record_program

DEFINITION = load_definition(DEMO)


class NoTemporal:
    """Stands in for a client that must not be asked: any call fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"Temporal was asked ({name}) though the program is closed")


async def recorded(store: Store, phase: str) -> None:
    await record_program(store, DEFINITION, phase)
    row = await store.program(DEFINITION.id)
    assert row is not None
    # As ProgramWorkflowV2 records itself: with its current dates.
    await store.save_program(
        program_id=row.id,
        name=row.name,
        workflow_id=row.workflow_id,
        definition=None,
        phase=phase,
        revision=row.revision,
        next_deadline=row.next_deadline,
        at=datetime.now(UTC),
        dates=program_dates(DEFINITION).model_dump(mode="json"),
    )


@pytest.mark.parametrize(
    ("phase", "says"),
    [
        ("scheduled", "applications open at"),
        ("awaiting_approvals", "the application deadline has passed"),
        ("running", "the application deadline has passed"),
        ("cancelled", "the program was cancelled"),
    ],
)
async def test_a_closed_program_refuses_and_saves_nothing(
    store: Store, phase: str, says: str
) -> None:
    await recorded(store, phase)
    values = demo_application("Åsa Öberg", "asa@example.org", "chef@example.org")
    outcome = await submit_application(
        store,
        NoTemporal(),  # type: ignore[arg-type]
        DEFINITION,
        "mentor",
        values,
        channel="csv_import",
    )
    assert (outcome.refusal, outcome.application) == ("closed", None)
    assert says in outcome.detail
    assert await store.applications(DEFINITION.id) == []
    # So the report counts what the program counts: nobody.
    report = await build_report(store, DEFINITION.id, datetime.now(UTC))
    assert sum(row.applied for row in report.funnel) == 0


async def test_an_answered_application_is_not_changed_by_applying_again(store: Store) -> None:
    await recorded(store, "application_window")
    values = demo_application("Åsa Öberg", "asa@example.org", "chef@example.org")
    saved, _ = await store.save_application(
        new_id="a" * 16,
        program_id=DEFINITION.id,
        email=values["email"],
        name=values["name"],
        organisation_id="demo-company",
        department="",
        profile_id="mentor",
        manager_email=values["manager_email"],
        manager_name=values["manager_name"],
        answers={"motivation": "first"},
        eligibility_confirmed=True,
        channel="web_form",
        at=datetime.now(UTC),
    )
    await store.set_application_status(saved.id, "declined", datetime.now(UTC))
    outcome = await submit_application(
        store,
        NoTemporal(),  # type: ignore[arg-type]
        DEFINITION,
        "mentor",
        {**values, "q_motivation": "changed"},
        channel="web_form",
    )
    assert (outcome.refusal, outcome.detail) == ("already_answered", "declined")
    row = await store.application(saved.id)
    assert row is not None and row.answers == {"motivation": "first"}
