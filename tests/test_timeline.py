"""mentorflow.timeline and mentorflow.review: the program's rules, without Temporal."""

from __future__ import annotations

import re
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from mentorflow import moments, review, timeline
from mentorflow.definition import load_definition
from mentorflow.models import (
    CalendarEntry,
    MatchingState,
    MatchingSummary,
    MatchReviewRequest,
    PairRef,
    ProgramPhase,
    ProgramState,
    RescheduleRequest,
    program_dates,
)
from tests.programs import DEMO

DEFINITION = load_definition(DEMO)


def state(phase: ProgramPhase) -> ProgramState:
    schedule = DEFINITION.schedule
    events = ([schedule.kickoff] if schedule.kickoff else []) + list(schedule.sessions)
    return ProgramState(
        phase=phase,
        dates=program_dates(DEFINITION),
        calendar={e.id: CalendarEntry(event=e) for e in events},
    )


running_moments = st.integers(0, 400 * 24 * 3600).map(
    lambda s: DEFINITION.schedule.start + timedelta(seconds=s)
)


@settings(max_examples=200, deadline=None)
@given(running_moments)
def test_a_running_programs_next_deadline_is_never_one_that_passed(now: object) -> None:
    """NextDeadline used to keep the kick-off after it happened, and skip the evaluation."""
    s = state(ProgramPhase.RUNNING)
    when, label = timeline.next_deadline(DEFINITION, s, now)  # type: ignore[arg-type]
    assert when is not None and label
    if now < s.dates.end:  # type: ignore[operator]
        assert when > now  # type: ignore[operator]
    upcoming = [e.event.starts for e in s.calendar.values() if e.event.starts > now]  # type: ignore[operator]
    if s.dates.evaluation_opens > now:  # type: ignore[operator]
        upcoming.append(s.dates.evaluation_opens)
    assert when == min([*upcoming, s.dates.end])


def test_awaiting_approvals_shows_the_escalation_once_answer_by_passed() -> None:
    s = state(ProgramPhase.AWAITING_APPROVALS)
    answer_by = timeline.answer_by(DEFINITION, s.dates)
    before = timeline.next_deadline(DEFINITION, s, answer_by - timedelta(hours=1))
    after = timeline.next_deadline(DEFINITION, s, answer_by + timedelta(hours=1))
    assert before == (answer_by, "managers answer by")
    assert after[0] == timeline.escalation_due(DEFINITION, s.dates) > answer_by


def test_escalations_are_due_halfway_to_hrs_decision() -> None:
    dates = program_dates(DEFINITION)
    answer_by, due = timeline.answer_by(DEFINITION, dates), timeline.decision_due(DEFINITION, dates)
    assert timeline.escalation_due(DEFINITION, dates) == answer_by + (due - answer_by) / 2
    assert timeline.approvals_due(DEFINITION, dates) > timeline.escalation_due(DEFINITION, dates)


def test_a_move_is_refused_with_its_reason() -> None:
    s = state(ProgramPhase.APPLICATION_WINDOW)
    now = s.dates.opens + (s.dates.deadline - s.dates.opens) / 10

    def refuse(request: RescheduleRequest) -> str | None:
        return timeline.reschedule_refusal(DEFINITION, s, request, now)

    assert str(refuse(RescheduleRequest())).startswith("nothing to move")
    past = refuse(RescheduleRequest(deadline=now - timedelta(days=1)))
    # One format for HR everywhere (CLI, refusals): the program's zone, spelled out, named.
    stamp = moments.stamp(now - timedelta(days=1), DEFINITION.timezone)
    assert f"the new deadline ({stamp}) is in the past" in str(past)
    assert re.fullmatch(r"[A-Z][a-z]+day \d{1,2} [A-Z][a-z]+ \d{4} at \d\d:\d\d CES?T", stamp)
    assert "already open" in str(refuse(RescheduleRequest(opens=now + timedelta(days=1))))
    assert "unknown event 'nope'" in str(refuse(RescheduleRequest(cancel_events=["nope"])))
    earlier = now + (s.dates.deadline - now) / 2
    assert refuse(RescheduleRequest(deadline=earlier)) is None
    moved = timeline.moved_dates(s.dates, RescheduleRequest(deadline=earlier), s.evaluation)
    assert moved.deadline == earlier and moved.start == s.dates.start
    # The moved definition must hold together: the deadline after the start is refused.
    late = s.dates.start + timedelta(days=1)
    assert "is not before the program starts" in str(refuse(RescheduleRequest(deadline=late)))


def test_a_postponed_end_takes_an_unopened_evaluation_along() -> None:
    s = state(ProgramPhase.RUNNING)
    end = s.dates.end + timedelta(days=10)
    moved = timeline.moved_dates(s.dates, RescheduleRequest(end=end), s.evaluation)
    assert moved.evaluation_opens - s.dates.evaluation_opens == timedelta(days=10)
    s.evaluation.invited = 4  # open already: it stays
    kept = timeline.moved_dates(s.dates, RescheduleRequest(end=end), s.evaluation)
    assert kept.evaluation_opens == s.dates.evaluation_opens


def test_review_actions_are_refused_by_phase_staleness_and_conflict() -> None:
    summary = MatchingSummary(proposal=2, pairs=3)
    pair, other = PairRef(mentor_id="m1", adept_id="a1"), PairRef(mentor_id="m2", adept_id="a2")
    matching = MatchingState(proposals=2, summary=summary, forbids=[pair])

    def refusal(phase: ProgramPhase, **request: object) -> str | None:
        return review.refusal(phase, matching, MatchReviewRequest(**request))  # type: ignore[arg-type,unused-ignore]

    assert str(refusal(ProgramPhase.RUNNING, action="rerun")).startswith("closed:")
    assert str(refusal(ProgramPhase.MATCH_REVIEW, action="confirm", proposal=1)).startswith(
        "stale:"
    )
    assert refusal(ProgramPhase.MATCH_REVIEW, action="confirm", proposal=2) is None
    assert str(refusal(ProgramPhase.MATCH_REVIEW, action="lock")).startswith("incomplete:")
    assert "forbidden" in str(refusal(ProgramPhase.MATCH_REVIEW, action="lock", pair=pair))
    # A swap locks both new pairs and frees the people it moves from their locks.
    locks, _ = review.adjusted(
        MatchingState(locks=[pair]),
        MatchReviewRequest(action="swap", pair=pair, other=other),
    )
    assert locks == [
        PairRef(mentor_id="m1", adept_id="a2"),
        PairRef(mentor_id="m2", adept_id="a1"),
    ]
