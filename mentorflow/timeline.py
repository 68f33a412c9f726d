"""A program's dates as rules: who must answer by when, what comes next, what may move.

Pure functions of the definition, the current dates and the program's state, so
the program workflow, the clients that take applications and the tests share
one reading of them (``tests/test_timeline.py``), with no Temporal needed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mentorflow import moments
from mentorflow.definition import ProgramDefinition, consistency_problems
from mentorflow.models import (
    CalendarEntry,
    EmailFacts,
    EvaluationProgress,
    ProgramDates,
    ProgramPhase,
    ProgramState,
    RescheduleRequest,
)


def facts(definition: ProgramDefinition, dates: ProgramDates) -> EmailFacts:
    """What every email of the program may say about it."""
    return EmailFacts(
        program_name=definition.name,
        description=definition.description,
        organisers=definition.organisers,
        contacts=definition.contacts,
        language=definition.language,
        timezone=definition.timezone,
        opens=dates.opens,
        deadline=dates.deadline,
        start=dates.start,
        end=dates.end,
        form_note=definition.application.form_note,
    )


def answer_by(definition: ProgramDefinition, dates: ProgramDates) -> datetime:
    """When managers must have answered."""
    return definition.approval.answer_by or dates.deadline


def decision_due(definition: ProgramDefinition, dates: ProgramDates) -> datetime:
    """When each organisation's HR must have decided who takes part."""
    return definition.capacity.decision_by or dates.start


def escalation_due(definition: ProgramDefinition, dates: ProgramDates) -> datetime:
    """When HR must have answered an escalated application.

    Halfway between answer-by and the capacity decision deadline, so that an
    escalation left unanswered never eats the time HR has for its decision.
    """
    answered = answer_by(definition, dates)
    return answered + (decision_due(definition, dates) - answered) / 2


def approvals_due(definition: ProgramDefinition, dates: ProgramDates) -> datetime:
    # A minute's grace lets the applications' own timers report first.
    return escalation_due(definition, dates) + timedelta(minutes=1)


def has_evaluation(definition: ProgramDefinition) -> bool:
    return bool(definition.evaluation.questions)


def next_deadline(
    definition: ProgramDefinition, state: ProgramState, now: datetime
) -> tuple[datetime | None, str | None]:
    """The next real date of the program and what happens then (never one that passed,
    while a later one is known)."""
    dates, phase = state.dates, state.phase
    if phase is ProgramPhase.SCHEDULED:
        return dates.opens, "application window opens"
    if phase is ProgramPhase.APPLICATION_WINDOW:
        return dates.deadline, "application deadline"
    if phase is ProgramPhase.AWAITING_APPROVALS:
        answered = answer_by(definition, dates)
        if answered > now:
            return answered, "managers answer by"
        return escalation_due(definition, dates), "HR answers escalated applications by"
    if phase is ProgramPhase.AWAITING_HR_DECISION:
        return decision_due(definition, dates), "HR decides who takes part by"
    if phase is ProgramPhase.MATCH_REVIEW:
        return dates.start, "the program starts"
    if phase in (ProgramPhase.MATCHED, ProgramPhase.RUNNING):
        upcoming = [
            (e.event.starts, e.event.title)
            for e in state.calendar.values()
            if not e.cancelled and e.event.starts > now
        ]
        evaluation = state.evaluation
        if has_evaluation(definition) and evaluation.invited is None:
            upcoming.append((dates.evaluation_opens, "the closing evaluation opens"))
        future = [d for d in upcoming if d[0] > now]
        return min(future) if future else (dates.end, "the program ends")
    if phase is ProgramPhase.ENDED and has_evaluation(definition):
        return dates.evaluation_closes, "the closing evaluation closes"
    if phase is ProgramPhase.COMPLETED:
        return state.purge_at, "personal data is purged"
    return None, None


def moved_dates(
    dates: ProgramDates, request: RescheduleRequest, evaluation: EvaluationProgress
) -> ProgramDates:
    """The dates after ``request``: a postponed end takes an evaluation that has not
    opened yet along with it."""
    shift = (
        request.end - dates.end
        if request.end is not None and evaluation.invited is None
        else timedelta(0)
    )
    return ProgramDates(
        opens=request.opens or dates.opens,
        deadline=request.deadline or dates.deadline,
        start=request.start or dates.start,
        end=request.end or dates.end,
        evaluation_opens=request.evaluation_opens or dates.evaluation_opens + shift,
        evaluation_closes=request.evaluation_closes or dates.evaluation_closes + shift,
    )


def moved_definition(
    definition: ProgramDefinition,
    dates: ProgramDates,
    calendar: dict[str, CalendarEntry],
    request: RescheduleRequest | None = None,
) -> ProgramDefinition:
    """The definition with ``dates`` and the calendar's events (moved by ``request``)."""
    cancelled = set(request.cancel_events) if request else set()
    events = {
        event_id: entry.event.model_copy(
            update={"starts": request.events.get(event_id, entry.event.starts)} if request else {}
        )
        for event_id, entry in calendar.items()
        if not entry.cancelled and event_id not in cancelled
    }
    schedule = definition.schedule
    return definition.model_copy(
        update={
            "application": definition.application.model_copy(
                update={"opens": dates.opens, "deadline": dates.deadline}
            ),
            "evaluation": definition.evaluation.model_copy(
                update={"opens": dates.evaluation_opens, "closes": dates.evaluation_closes}
            ),
            "schedule": schedule.model_copy(
                update={
                    "start": dates.start,
                    "end": dates.end,
                    "kickoff": events.get(schedule.kickoff.id) if schedule.kickoff else None,
                    "sessions": [events[e.id] for e in schedule.sessions if e.id in events],
                }
            ),
        }
    )


def reschedule_refusal(
    definition: ProgramDefinition, state: ProgramState, request: RescheduleRequest, now: datetime
) -> str | None:
    """Why the program cannot take ``request`` now, or None."""
    dates, phase, evaluation = state.dates, state.phase, state.evaluation
    names = tuple(ProgramDates.model_fields)
    if all(getattr(request, n) is None for n in names) and not (
        request.events or request.cancel_events
    ):
        return "nothing to move: give a new opening, deadline, start, end, evaluation date or event"
    if phase in (ProgramPhase.CANCELLED, ProgramPhase.COMPLETED, ProgramPhase.PURGED):
        return f"the program is {phase.value}"
    if phase is ProgramPhase.ENDED and any(
        getattr(request, n) is not None for n in names if n != "evaluation_closes"
    ):
        return "the program has ended; only the evaluation's closing date can move"
    if request.evaluation_opens is not None and evaluation.invited is not None:
        return "the evaluation is already open; its opening cannot move"
    if request.evaluation_closes is not None and evaluation.closed:
        return "the evaluation has already closed"
    if request.opens is not None and phase is not ProgramPhase.SCHEDULED:
        return "the application window is already open; its opening cannot move"
    if request.deadline is not None and phase not in (
        ProgramPhase.SCHEDULED,
        ProgramPhase.APPLICATION_WINDOW,
    ):
        return "applications have already closed; the deadline cannot move"
    if request.start is not None and now >= dates.start:
        return "the program has already started; its start cannot move"
    for name in names:
        value: datetime | None = getattr(request, name)
        if value is not None and value <= now:
            return f"the new {name} ({_local(value, definition)}) is in the past"
    for event_id in [*request.events, *request.cancel_events]:
        entry = state.calendar.get(event_id)
        if entry is None:
            known = ", ".join(state.calendar) or "none"
            return f"unknown event {event_id!r} (the program's events: {known})"
        if entry.cancelled:
            return f"the event {event_id!r} is cancelled"
        if entry.event.starts <= now:
            return f"the event {event_id!r} has already taken place"
    moved = moved_dates(dates, request, evaluation)
    same_events = all(state.calendar[e].event.starts == t for e, t in request.events.items())
    if moved == dates and same_events and not request.cancel_events:
        return "nothing to move: the program already has these dates"
    for event_id, starts in request.events.items():
        if starts <= now:
            return f"the new start of {event_id!r} ({_local(starts, definition)}) is in the past"
    problems = list(
        consistency_problems(moved_definition(definition, moved, state.calendar, request))
    )
    if problems:
        return "; ".join(f"{p.field}: {p.problem}" for p in problems)
    return None


def _local(moment: datetime, definition: ProgramDefinition) -> str:
    """A moment in a refusal, as the CLI writes it: the program's timezone, named."""
    return moments.stamp(moment, definition.timezone)
