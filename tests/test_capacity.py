"""mentorflow.capacity: the undecided-organisation policy, without Temporal."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from mentorflow.capacity import undecided_selections
from mentorflow.definition import UndecidedPolicy
from mentorflow.models import Selection

applicants = st.lists(st.sampled_from(["mentor", "adept"]), max_size=30).map(
    lambda profiles: [(f"a{i:02d}", p) for i, p in enumerate(profiles)]
)
caps = st.fixed_dictionaries(
    {"mentor": st.none() | st.integers(0, 10), "adept": st.integers(0, 10)}
)


@given(applicants, caps)
def test_accept_up_to_cap_takes_the_first_comers_and_wait_lists_the_rest(
    approved: list[tuple[str, str]], cap: dict[str, int | None]
) -> None:
    chosen = undecided_selections(UndecidedPolicy.ACCEPT_UP_TO_CAP, approved, cap.get)
    assert set(chosen) == {a for a, _ in approved}
    for profile in ("mentor", "adept"):
        mine = [a for a, p in approved if p == profile]
        limit = cap[profile]
        accepted = [a for a in mine if chosen[a] is Selection.ACCEPTED]
        assert accepted == mine[: len(mine) if limit is None else limit]
        assert all(chosen[a] is Selection.WAITLISTED for a in mine[len(accepted) :])


@given(applicants, caps)
def test_the_other_policies_decide_the_same_for_everyone(
    approved: list[tuple[str, str]], cap: dict[str, int | None]
) -> None:
    waitlisted = undecided_selections(UndecidedPolicy.WAITLIST_ALL, approved, cap.get)
    declined = undecided_selections(UndecidedPolicy.DECLINE_ALL, approved, cap.get)
    assert (
        Counter(waitlisted.values()) == Counter({Selection.WAITLISTED: len(approved)}) - Counter()
    )
    assert set(declined.values()) <= {Selection.DECLINED}
    assert len(declined) == len(waitlisted) == len(approved)
