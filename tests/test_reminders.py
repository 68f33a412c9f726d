"""mentorflow.reminders: the one plan of reminders before a date, without Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from mentorflow import reminders

DATE = datetime(2027, 3, 25, 23, 59, tzinfo=UTC)
befores = st.lists(st.integers(1, 30 * 24 * 3600).map(lambda s: timedelta(seconds=s)), max_size=6)
moments = st.integers(-40 * 24 * 3600, 3600).map(lambda s: DATE + timedelta(seconds=s))


def test_a_reminder_is_keyed_by_how_long_before_which_date() -> None:
    plan = reminders.plan(DATE, [timedelta(days=1), timedelta(days=14)], prefix="reminder-")
    assert [r.key for r in plan] == [
        "reminder-1209600s@2027-03-25T23:59:00+00:00",
        "reminder-86400s@2027-03-25T23:59:00+00:00",
    ]
    assert [r.at for r in plan] == [DATE - timedelta(days=14), DATE - timedelta(days=1)]
    # A moved date makes new reminders; the old ones are never due again.
    moved = reminders.plan(DATE + timedelta(days=7), [timedelta(days=1)], prefix="reminder-")
    assert {r.key for r in moved}.isdisjoint(r.key for r in plan)


def test_events_keep_the_definitions_order() -> None:
    given_order = [timedelta(hours=1), timedelta(days=1)]
    plan = reminders.plan(DATE, given_order, earliest_first=False)
    assert [r.before for r in plan] == given_order


@given(befores, moments, st.sets(st.integers(0, 5)))
def test_due_is_the_earliest_unsent_reminder_whose_time_has_come(
    before: list[timedelta], now: datetime, sent: set[int]
) -> None:
    plan = reminders.plan(DATE, before)
    done = {r.key for i, r in enumerate(plan) if i in sent}
    due = reminders.due(plan, now, done)
    waiting = [r for r in plan if r.at <= now and r.key not in done]
    assert due == (min(waiting, key=lambda r: r.at) if waiting else None)


@given(befores, moments)
def test_skipping_the_passed_leaves_nothing_due_and_wakes_up_in_the_future(
    before: list[timedelta], now: datetime
) -> None:
    plan = reminders.plan(DATE, before)
    done = reminders.passed(plan, now, ())
    assert len(done) == len(set(done))
    assert reminders.due(plan, now, done) is None
    wake = reminders.next_wake_up(plan, done, DATE)
    assert wake <= DATE
    assert wake > now or wake == DATE  # never a moment already past, but for the date itself
