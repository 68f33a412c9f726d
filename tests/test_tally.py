"""The thin program's Tally against a plain recount of the applications.

The program never sees the applications themselves: it counts them in the
database (``tally.on_record``), and runs from before that were told by their
workflows' signals (applied; an outcome with the one it replaces) and HR's
selections as counts per organisation and profile. Whichever way and in
whatever order, the tally must say what a recount of the applications would
say, and stay the same size however many there are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from mentorflow import tally as tallies
from mentorflow.tally import Tally, group_of

GROUPS = [group_of(o, p) for o in ("ei", "sv") for p in ("mentor", "adept")]


@dataclass
class Application:
    group: str
    outcome: str | None = None
    selection: str | None = None
    status: str = "awaiting_approval"  # as the database has it
    selected: str | None = None  # the database keeps HR's choice after a withdrawal


def on_record(applications: list[Application]) -> Tally:
    """The tally the program reads from the database: one row per group of equals."""
    rows: dict[tuple[str, str, str, str | None], int] = {}
    for a in applications:
        organisation, _, profile = a.group.partition("/")
        key = (organisation, profile, a.status, a.selected)
        rows[key] = rows.get(key, 0) + 1
    return tallies.on_record((*key, n) for key, n in rows.items())


def recount(applications: list[Application]) -> dict[str, int]:
    totals = {"applied": len(applications), "approved": 0, "declined": 0, "withdrawn": 0}
    totals["pending"] = 0
    for a in applications:
        totals[a.outcome or "pending"] += 1
    chosen = [a.selection for a in applications if a.outcome == "approved" and a.selection]
    if chosen:
        totals.update(
            accepted=chosen.count("accepted"),
            waitlisted=chosen.count("waitlisted"),
            not_selected=chosen.count("declined"),
        )
    return totals


# One step: 0 apply, 1 decide, 2 withdraw after approval, 3 HR decides a group.
steps = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.integers(0, 200),
        st.sampled_from(["approved", "declined", "withdrawn"]),
        st.sampled_from(["accepted", "waitlisted", "declined"]),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_the_tally_says_what_a_recount_says(sequence: list[tuple[int, int, str, str]]) -> None:
    tally, applications = Tally(), list[Application]()
    for kind, pick, outcome, selection in sequence:
        if kind == 0 or not applications:
            status = ("submitted", "awaiting_approval", "escalated")[pick % 3]
            applications.append(Application(group=GROUPS[pick % len(GROUPS)], status=status))
            tally.applied(applications[-1].group)
            continue
        a = applications[pick % len(applications)]
        if kind == 1 and a.outcome is None:
            a.outcome = a.status = outcome
            tally.decided(a.group, outcome, previous=None, selection=None)
        elif kind == 2 and a.outcome == "approved":
            tally.decided(a.group, "withdrawn", previous="approved", selection=a.selection)
            a.outcome, a.status, a.selection = "withdrawn", "withdrawn", None
        elif kind == 3:
            # HR decides the whole group: the activity reports absolute counts.
            group = a.group
            for b in applications:
                if b.group == group and b.outcome == "approved":
                    b.selection = b.selected = selection
            counts = {
                selection: sum(b.group == group and b.outcome == "approved" for b in applications)
            }
            tally.set_selections(group, counts)
            tally.set_selections(group, counts)  # a retried activity counts once
    assert tally.totals() == recount(applications)
    assert tally.pending == recount(applications)["pending"]
    recorded = on_record(applications)
    assert recorded.totals() == recount(applications)
    assert recorded.breakdown() == tally.breakdown()
    assert {g: recorded.approved_by_profile(g.partition("/")[0]) for g in GROUPS} == {
        g: tally.approved_by_profile(g.partition("/")[0]) for g in GROUPS
    }
    for group in GROUPS:
        mine = [a for a in applications if a.group == group]
        row = tally.breakdown().get(group)
        if mine:
            assert row is not None and {k: row[k] for k in row if k != "applied"} == {
                k: v
                for k, v in recount(mine).items()
                if k in ("approved", "declined", "withdrawn", "pending")
            }


def test_the_tally_stays_the_same_size_for_ten_or_five_thousand_applicants() -> None:
    def filled(n: int) -> int:
        tally = Tally()
        for i in range(n):
            group = GROUPS[i % len(GROUPS)]
            tally.applied(group)
            tally.decided(group, "approved", previous=None, selection=None)
        for group in GROUPS:
            tally.set_selections(group, {"accepted": n // 8, "waitlisted": n // 8})
        return len(json.dumps(tally.model_dump()))

    # Only the digits of the counts grow: under a kilobyte either way.
    assert filled(5_000) < 1_024 and filled(5_000) < 1.2 * filled(10)


def test_approved_by_profile_and_count_by_organisation() -> None:
    tally = Tally()
    for group, outcome in [
        ("ei/mentor", "approved"),
        ("ei/adept", "declined"),
        ("sv/mentor", "approved"),
    ]:
        tally.applied(group)
        tally.decided(group, outcome, previous=None, selection=None)
    assert tally.approved_by_profile("ei") == {"mentor": 1, "adept": 0}
    assert tally.count("approved", "ei") == 1 and tally.count("approved") == 2
    assert tally.count("approved", "nobody") == 0
