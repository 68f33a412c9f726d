"""ApplicationTally against a plain recount of the applications, over random changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mentorflow.models import ApplicationOutcome, Selection
from workflows.legacy.state_v1 import ApplicationEntry
from workflows.legacy.tally_v1 import ApplicationTally


def recount(applications: dict[str, ApplicationEntry]) -> dict[str, int]:
    """The counts as the program computed them before the tally: every entry, every time."""
    outcomes = [entry.outcome for entry in applications.values()]
    totals = {
        "applied": len(outcomes),
        "approved": outcomes.count(ApplicationOutcome.APPROVED.value),
        "declined": outcomes.count(ApplicationOutcome.DECLINED.value),
        "withdrawn": outcomes.count(ApplicationOutcome.WITHDRAWN.value),
        "pending": outcomes.count(None),
    }
    chosen = [
        entry.selection
        for entry in applications.values()
        if entry.outcome == ApplicationOutcome.APPROVED.value
    ]
    if any(chosen):
        totals |= {
            "accepted": chosen.count(Selection.ACCEPTED),
            "waitlisted": chosen.count(Selection.WAITLISTED),
            "not_selected": chosen.count(Selection.DECLINED),
        }
    return totals


entries = st.builds(
    ApplicationEntry,
    organisation_id=st.sampled_from(["org-a", "org-b"]),
    profile_id=st.sampled_from(["mentor", "adept"]),
    outcome=st.none() | st.sampled_from([o.value for o in ApplicationOutcome]),
    selection=st.none() | st.sampled_from(list(Selection)),
)
changes = st.lists(st.tuples(st.sampled_from([f"app-{i}" for i in range(6)]), entries))


@given(changes, st.integers(min_value=0, max_value=40))
def test_the_tally_always_equals_a_recount(
    sequence: list[tuple[str, ApplicationEntry]], restart_at: int
) -> None:
    applications: dict[str, ApplicationEntry] = {}
    tally = ApplicationTally()
    for step, (application_id, entry) in enumerate(sequence):
        if step == restart_at:  # as after continue-as-new: built from the carried entries
            tally = ApplicationTally(applications)
        tally.replace(applications.get(application_id), entry)
        applications[application_id] = entry
        assert tally.totals() == recount(applications)
        assert tally.pending == recount(applications)["pending"]


def test_selections_are_counted_only_among_the_approved() -> None:
    tally = ApplicationTally()
    approved = ApplicationEntry(organisation_id="o", profile_id="p", outcome="approved")
    tally.replace(None, approved)
    declined_but_selected = ApplicationEntry(
        organisation_id="o", profile_id="p", outcome="declined", selection=Selection.ACCEPTED
    )
    tally.replace(None, declined_but_selected)
    assert "accepted" not in tally.totals()
    tally.replace(approved, approved.model_copy(update={"selection": Selection.DECLINED}))
    assert tally.totals() == {
        "applied": 2,
        "approved": 1,
        "declined": 1,
        "withdrawn": 0,
        "pending": 0,
        "accepted": 0,
        "waitlisted": 0,
        "not_selected": 1,
    }
