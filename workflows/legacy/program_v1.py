"""ProgramWorkflowV1: programs started before the thin program (frozen; see __init__).

Every application reached it as an update and it kept one entry per
application; ``workflows/program.py`` replaced it. Nothing here changes any more:
Temporal replays the running programs of this type through this code.

The life of one mentorship program, as durable state.

Read ``run`` for the lifecycle. Every date is state, not a sleep: the workflow
waits for "the current value of the date, or a change to it" (the updatable
timer pattern), so ``reschedule`` moves a date and the waiting simply re-plans.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    # pydantic imports email_validator lazily when it first validates an EmailStr
    # (in the definition); importing it here passes it through the sandbox once.
    import email_validator  # noqa: F401

    from activities.email import EmailActivities
    from activities.matching import MatchingActivities
    from activities.pairs import PairActivities
    from activities.records import ProgramRecordActivities
    from activities.reports import ReportActivities
    from mentorflow import capacity, people, reminders
    from mentorflow import search_attributes as sa
    from mentorflow.definition import (
        ProgramDefinition,
        Role,
        consistency_problems,
    )
    from mentorflow.models import (
        HANDING_OVER,
        NEXT_STEP,
        ApplicationInput,
        ApplicationOutcome,
        ApplicationReceipt,
        ApplicationResult,
        ApplicationSubmission,
        CalendarEmailInput,
        CalendarEmailKind,
        CalendarEntry,
        CapacityDecision,
        CapacityDecisionResult,
        CapacityRow,
        ConfirmMatchesInput,
        DateChange,
        EmailBatch,
        EmailFacts,
        EmailTemplate,
        EvaluationEmailInput,
        EvaluationProgress,
        EventKind,
        LinkRequest,
        ManagerChange,
        MatchingState,
        MatchingSummary,
        MatchReviewRequest,
        OpenPairsInput,
        OpenPairsResult,
        OrganisationDecision,
        OutcomeNoticesInput,
        PairClosed,
        PairDates,
        PairEntry,
        PairInput,
        PairRef,
        ProgramDates,
        ProgramPhase,
        ProgramResult,
        ProgramStatus,
        ProposeMatchesInput,
        ProposeMatchesResult,
        PurgeInput,
        PurgeRequest,
        PurgeResult,
        RecordEventInput,
        RegisterProgramInput,
        RematchRequest,
        ReportInput,
        ReportSummary,
        RescheduleRequest,
        RescheduleResult,
        Selection,
        SelectionRecordInput,
        application_workflow_id,
        pair_workflow_id,
        participant_task_queue,
        program_dates,
    )
    from workflows.application import APPLICATION_RESULT_SIGNAL, ApplicationWorkflow
    from workflows.legacy.state_v1 import ApplicationEntry
    from workflows.legacy.state_v1 import ProgramInputV1 as ProgramInput
    from workflows.legacy.state_v1 import ProgramStateV1 as ProgramState
    from workflows.legacy.tally_v1 import ApplicationTally
    from workflows.options import EMAIL_RETRY, RECORD_TIMEOUT
    from workflows.pair import PAIR_CLOSED_SIGNAL, PairWorkflow
    from workflows.timers import Clock


@workflow.defn(name="ProgramWorkflow")
class ProgramWorkflowV1:
    @workflow.init
    def __init__(self, input: ProgramInput) -> None:
        self._definition = input.definition
        self._clock = Clock()
        self._dates = program_dates(input.definition)
        self._phase = ProgramPhase.SCHEDULED
        self._revision = 0
        self._reminders_done: set[str] = set()
        self._reminders_sent = 0
        self._announced_to = 0
        self._reschedules = 0
        self._notices: list[DateChange] = []  # moves not yet told to the people announced to
        self._applications: dict[str, ApplicationEntry] = {}  # changed only through _put
        self._tally = ApplicationTally()
        self._decisions: dict[str, OrganisationDecision] = {}  # organisation id -> who decided
        self._capacity_requested = False
        self._matching = MatchingState()
        # HR's review actions each re-run the matcher: one at a time, in arrival order.
        self._review_lock = asyncio.Lock()
        # Set while the run waits to continue as new: new applications are turned away
        # (their senders retry and reach the next run) so the ones in flight can finish;
        # under a steady stream of applications the run would otherwise never be idle.
        self._handing_over = False
        schedule = input.definition.schedule
        events = [schedule.kickoff, *schedule.sessions] if schedule.kickoff else schedule.sessions
        self._calendar = {e.id: CalendarEntry(event=e) for e in events}
        self._pairs: dict[str, PairEntry] = {}
        self._pairs_to_tell: list[str] = []  # pairs whose dates moved and that were not told
        self._evaluation = EvaluationProgress()
        self._report: ReportSummary | None = None
        self._purge_at: datetime | None = None
        self._purge_request: PurgeRequest | None = None
        self._purged: PurgeResult | None = None
        if input.state is not None:  # continued as new: pick up where the last run was
            state = input.state
            self._phase, self._revision, self._dates = state.phase, state.revision, state.dates
            self._reminders_done = set(state.reminders_done)
            self._reminders_sent = state.reminders_sent
            self._announced_to = state.announced_to
            self._reschedules = state.reschedules
            self._applications = dict(state.applications)
            self._tally = ApplicationTally(self._applications)
            self._notices = list(state.notices)
            self._decisions = dict(state.decisions)
            self._capacity_requested = state.capacity_requested
            self._matching = state.matching
            self._calendar = dict(state.calendar)
            self._pairs = dict(state.pairs)
            self._pairs_to_tell = list(state.pairs_to_tell)
            self._evaluation, self._report = state.evaluation, state.report
            self._purge_at, self._purge_request = state.purge_at, state.purge_request
        self._continue_as_new_after = input.continue_as_new_after

    # --- The lifecycle --------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ProgramInput) -> ProgramResult:
        try:
            if input.state is None:
                await self._register()
            else:
                self._publish()
            if self._phase is ProgramPhase.SCHEDULED:
                while self._clock.now() < self._dates.opens:
                    await self._sleep_until(self._dates.opens, "application window opens")
                await self._open_application_window()
            if self._phase is ProgramPhase.APPLICATION_WINDOW:
                await self._run_application_window()
                await self._enter(ProgramPhase.AWAITING_APPROVALS)
            if self._phase is ProgramPhase.AWAITING_APPROVALS:
                await self._await_approvals()
                await self._enter(ProgramPhase.AWAITING_HR_DECISION)
            if self._phase is ProgramPhase.AWAITING_HR_DECISION:
                await self._await_capacity_decisions()
                await self._enter(ProgramPhase.MATCH_REVIEW)
            if self._phase is ProgramPhase.MATCH_REVIEW:
                await self._review_matches()
                await self._enter(ProgramPhase.MATCHED)
            if self._phase is ProgramPhase.MATCHED:
                if not self._matching.notified:
                    await self._notify_outcomes()
                await self._enter(ProgramPhase.RUNNING)
            if self._phase is ProgramPhase.RUNNING:
                await self._run_meetings()
                await self._enter(ProgramPhase.ENDED)
            if self._phase is ProgramPhase.ENDED:
                await self._run_evaluation()
                await self._report_to_hr()
                await self._enter(ProgramPhase.COMPLETED)
            if self._phase is ProgramPhase.COMPLETED:
                await self._keep_until_retention_ends()
                await self._purge()
                await self._enter(ProgramPhase.PURGED)
        except asyncio.CancelledError:
            # Cancelled from the CLI or the Temporal UI: record it and tell the
            # people who were told about the program, then end as cancelled.
            await self._close_as_cancelled()
            raise
        await workflow.wait_condition(workflow.all_handlers_finished)
        return ProgramResult(
            program_id=self._definition.id,
            phase=self._phase,
            finished_at=self._clock.now(),
            reminders_sent=self._reminders_sent,
            report=self._report,
        )

    async def _open_application_window(self) -> None:
        await self._enter(ProgramPhase.APPLICATION_WINDOW)
        self._skip_passed_reminders()
        recipients = list(self._definition.announcement.recipients)
        if recipients:
            await self._email("announcement", "announcement", "1", recipients)
            self._announced_to = len(recipients)

    async def _run_application_window(self) -> None:
        """Send reminders before the deadline until it passes; follow every move of it."""
        while True:
            await self._send_date_change_notices()
            now = self._clock.now()
            if now >= self._dates.deadline:
                return
            due = self._due_reminder(now)
            if due is not None:
                await self._send_reminder(*due)
                continue
            await self._continue_as_new_if_due()
            await self._sleep_until(self._next_wake_up(), "next reminder or the deadline")

    async def _await_approvals(self) -> None:
        """Managers (or HR, on escalation) answer until each application has an outcome."""
        while not self._all_answered() and self._clock.now() < self._approvals_due():
            await self._continue_as_new_if_due()
            await self._sleep_until(self._approvals_due(), "approvals due", self._all_answered)

    async def _await_capacity_decisions(self) -> None:
        """Each organisation's HR accepts, wait-lists or declines its approved applicants.

        The program waits for every organisation or the decision deadline; an
        organisation that has not decided by then gets the definition's policy.
        """
        if not self._capacity_requested:
            self._skip_passed_capacity_reminders()
            await self._ask_for_capacity_decisions(reminder_key=None)
            self._capacity_requested = True
        while self._undecided() and self._clock.now() < self._decision_due():
            due = self._due_capacity_reminder(self._clock.now())
            if due is not None:
                self._reminders_done.add(due)
                await self._ask_for_capacity_decisions(reminder_key=due)
                continue
            await self._continue_as_new_if_due()
            await self._sleep_until(
                self._next_capacity_wake_up(),
                "HR capacity decisions",
                lambda: not self._undecided(),
            )
        # A decision that arrived just before the deadline is recorded, not overruled.
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._apply_undecided_policy()

    async def _review_matches(self) -> None:
        """Propose pairs; HR locks, forbids, swaps and re-runs until it confirms them."""
        if self._matching.summary is None:
            proposed = await self._propose(self._matching.locks, self._matching.forbids)
            assert proposed.summary is not None  # no locks yet, so nothing can conflict
            self._matching.summary = proposed.summary
            self._publish()
        summary = self._matching.summary
        nobody = summary.pairs + summary.unmatched_mentors + summary.unmatched_adepts == 0
        if not self._definition.matching.hr_review or nobody:
            self._matching.confirmed_by = "policy: confirmed without review"
        elif not self._matching.review_requested:
            await self._ask_for_review()
            self._matching.review_requested = True
        while self._matching.confirmed_by is None:
            await self._continue_as_new_if_due()
            await workflow.wait_condition(
                lambda: self._matching.confirmed_by is not None or self._history_is_long()
            )
        await workflow.execute_activity_method(
            MatchingActivities.confirm_matches,
            ConfirmMatchesInput(
                program_id=self._definition.id,
                proposal=self._matching.summary.proposal,
                confirmed_by=self._matching.confirmed_by,
                at=self._clock.now(),
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            summary="confirm pairs",
        )
        await self._record(
            "matching",
            "matching-confirmed",
            detail={
                **self._matching.summary.model_dump(),
                "confirmed_by": self._matching.confirmed_by,
            },
        )

    async def _run_meetings(self) -> None:
        """Invitations to the joint events, one workflow per pair, reminders; until the end."""
        if not self._pairs:
            assert self._matching.summary is not None
            proposal = self._matching.summary.proposal
            await self._open_pairs(
                OpenPairsInput(
                    program_id=self._definition.id, proposal=proposal, at=self._clock.now()
                )
            )
            self._skip_passed_event_reminders()
        while True:
            await self._start_pairs()
            await self._tell_pairs_of_moved_dates()
            await self._send_calendar()
            now = self._clock.now()
            if now >= self._dates.end:
                return
            due = self._due_event_reminder(now)
            if due is not None:
                await self._send_event_reminder(*due)
                continue
            # The closing evaluation may open before the end, e.g. at the closing session.
            if await self._evaluation_step(now):
                continue
            await self._continue_as_new_if_due()
            await self._sleep_until(
                min(self._next_event_wake_up(), self._next_evaluation_wake_up()),
                "next event reminder, the evaluation or the end",
            )

    async def _run_evaluation(self) -> None:
        """The closing evaluation: invitations, reminders to those who have not answered, close."""
        while not self._evaluation.closed:
            now = self._clock.now()
            if await self._evaluation_step(now):
                continue
            if now >= self._dates.evaluation_closes or not self._has_evaluation():
                self._evaluation.closed = True
                await self._record("evaluation", "evaluation-closed")
                return
            await self._continue_as_new_if_due()
            await self._sleep_until(self._next_evaluation_wake_up(), "the evaluation closes")

    async def _report_to_hr(self) -> None:
        """Make the report, keep it, and send its link to the program's coordinators."""
        # Pairs end on their own at the end date; the report counts them once they have
        # (but a pair that cannot finish does not hold the report up for long).
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(
                lambda: not any(p.started and p.status == "active" for p in self._pairs.values()),
                timeout=timedelta(hours=1),
                timeout_summary="pairs end",
            )
        if self._report is None:
            self._report = await workflow.execute_activity_method(
                ReportActivities.make_report,
                ReportInput(program_id=self._definition.id, at=self._clock.now()),
                start_to_close_timeout=timedelta(minutes=5),
                summary="make the program report",
            )
        retention = self._definition.retention.personal_data_after_end
        self._purge_at = max(self._dates.end + retention, self._clock.now())
        if not self._evaluation.report_sent:
            coordinators = [str(c.email) for c in self._definition.coordinators()]
            link = LinkRequest(
                name="report_url",
                purpose="report",
                application_id=self._definition.id,
                expires_at=self._purge_at + retention,
                path="/report/",
            )
            facts = self._facts().model_copy(
                update={"report": self._report, "purge_at": self._purge_at}
            )
            await self._email(
                "program_report", "report", "1", coordinators, facts=facts, links=[link]
            )
            self._evaluation.report_sent = True
        await self._record("report", "report", detail=self._report.model_dump(mode="json"))

    async def _keep_until_retention_ends(self) -> None:
        """Personal data stays until the retention date, or until HR asks for a purge."""
        assert self._purge_at is not None
        while self._purge_request is None and self._clock.now() < self._purge_at:
            await self._continue_as_new_if_due()
            await self._sleep_until(
                self._purge_at, "personal data purged", lambda: self._purge_request is not None
            )

    async def _purge(self) -> None:
        request = self._purge_request or PurgeRequest(reason="the retention period ended")
        self._purged = await workflow.execute_activity_method(
            ReportActivities.purge_personal_data,
            PurgeInput(program_id=self._definition.id, at=self._clock.now(), reason=request.reason),
            start_to_close_timeout=timedelta(minutes=5),
            summary="purge personal data",
        )
        await self._record(
            "purged",
            "purged",
            detail={
                **self._purged.model_dump(),
                "requested_by": request.requested_by,
                "reason": request.reason,
            },
        )

    # --- Handlers -------------------------------------------------------------------------

    @workflow.query
    def status(self) -> ProgramStatus:
        deadline, label = self._next_deadline()
        return ProgramStatus(
            program_id=self._definition.id,
            name=self._definition.name,
            phase=self._phase,
            next_step=NEXT_STEP[self._phase],
            next_deadline=deadline,
            next_deadline_label=label,
            timezone=self._definition.timezone,
            language=self._definition.language,
            revision=self._revision,
            dates=self._dates,
            counts={
                "announcement_recipients": self._announced_to,
                "reminders_sent": self._reminders_sent,
                "reschedules": self._reschedules,
                **self._totals(),
            },
            applications=self._breakdown(),
            decisions=self._decisions,
            undecided=self._undecided() if self._phase is ProgramPhase.AWAITING_HR_DECISION else [],
            matching=self._matching.summary,
            confirmed_by=self._matching.confirmed_by,
            calendar=list(self._calendar.values()),
            pairs={
                status: sum(1 for p in self._pairs.values() if p.status == status)
                for status in ("active", "closed", "ended")
                if any(p.status == status for p in self._pairs.values())
            },
            evaluation=self._evaluation,
            report=self._report,
            purge_at=self._purge_at,
        )

    @workflow.update
    async def purge(self, request: PurgeRequest) -> PurgeResult:
        """HR purges a completed program's personal data now, before the retention date."""
        self._purge_request = request
        await workflow.wait_condition(lambda: self._purged is not None)
        assert self._purged is not None
        return self._purged

    @purge.validator
    def _validate_purge(self, request: PurgeRequest) -> None:
        _refuse_personal(requested_by=request.requested_by, reason=request.reason)
        if self._phase is not ProgramPhase.COMPLETED:
            raise ValueError(
                f"the program is {self._phase.value}; personal data is purged once it has"
                " completed (its report made)"
            )

    @workflow.update
    async def reschedule(self, request: RescheduleRequest) -> RescheduleResult:
        """Move dates or joint events; the timers follow and the people affected are told."""
        previous = self._dates
        self._dates = self._moved_dates(request)
        moved = [
            name
            for name in ProgramDates.model_fields
            if getattr(previous, name) != getattr(self._dates, name)
        ]
        for event_id, starts in request.events.items():
            entry = self._calendar[event_id]
            if entry.event.starts == starts:
                continue
            entry.event = entry.event.model_copy(update={"starts": starts})
            if entry.sent_sequence is not None:  # calendars hold it: they must replace it
                entry.sequence += 1
            entry.reminders_done = []
            moved.append(f"event:{event_id}")
        for event_id in request.cancel_events:
            entry = self._calendar[event_id]
            entry.cancelled = True
            if entry.sent_sequence is not None:
                entry.sequence += 1
            else:  # nobody has it in their calendar: nothing to take back
                entry.sent_sequence = entry.sequence
            moved.append(f"cancelled:{event_id}")
        self._definition = self._moved_definition(self._dates)
        self._revision += 1
        self._reschedules += 1
        if {"start", "end"} & set(moved):
            self._pairs_to_tell = [
                pair_id
                for pair_id, pair in self._pairs.items()
                if pair.started and pair.status == "active"
            ]
        self._skip_passed_event_reminders()
        self._skip_passed_evaluation_reminders()
        result = RescheduleResult(revision=self._revision, dates=self._dates, moved=moved)
        dates_moved = [n for n in moved if n in ProgramDates.model_fields]
        if self._phase is ProgramPhase.APPLICATION_WINDOW:
            self._skip_passed_reminders()
            self._notices.append(
                DateChange(
                    revision=self._revision, previous=previous, moved=moved, reason=request.reason
                )
            )
        self._publish()
        await self._record(
            "rescheduled",
            f"rescheduled-{self._revision}",
            detail={
                "moved": moved,
                "reason": request.reason,
                "requested_by": request.requested_by,
                **{f"previous_{n}": getattr(previous, n).isoformat() for n in dates_moved},
                **{n: getattr(self._dates, n).isoformat() for n in dates_moved},
                **{f"event_{e}": t.isoformat() for e, t in request.events.items()},
            },
        )
        return result

    @reschedule.validator
    def _validate_reschedule(self, request: RescheduleRequest) -> None:
        """Refuse at once, with the reason, a move the program cannot take."""
        _refuse_personal(requested_by=request.requested_by, reason=request.reason)
        now = self._clock.now()
        dates = tuple(ProgramDates.model_fields)
        if all(getattr(request, n) is None for n in dates) and not (
            request.events or request.cancel_events
        ):
            raise ValueError(
                "nothing to move: give a new opening, deadline, start, end, evaluation date"
                " or event"
            )
        if self._phase in (ProgramPhase.CANCELLED, ProgramPhase.COMPLETED, ProgramPhase.PURGED):
            raise ValueError(f"the program is {self._phase.value}")
        if self._phase is ProgramPhase.ENDED and any(
            getattr(request, n) is not None for n in dates if n != "evaluation_closes"
        ):
            raise ValueError("the program has ended; only the evaluation's closing date can move")
        if request.evaluation_opens is not None and self._evaluation.invited is not None:
            raise ValueError("the evaluation is already open; its opening cannot move")
        if request.evaluation_closes is not None and self._evaluation.closed:
            raise ValueError("the evaluation has already closed")
        if request.opens is not None and self._phase is not ProgramPhase.SCHEDULED:
            raise ValueError("the application window is already open; its opening cannot move")
        if request.deadline is not None and self._phase not in (
            ProgramPhase.SCHEDULED,
            ProgramPhase.APPLICATION_WINDOW,
        ):
            raise ValueError("applications have already closed; the deadline cannot move")
        if request.start is not None and now >= self._dates.start:
            raise ValueError("the program has already started; its start cannot move")
        for name in dates:
            value: datetime | None = getattr(request, name)
            if value is not None and value <= now:
                raise ValueError(f"the new {name} ({value.isoformat()}) is in the past")
        for event_id in [*request.events, *request.cancel_events]:
            entry = self._calendar.get(event_id)
            if entry is None:
                known = ", ".join(self._calendar) or "none"
                raise ValueError(f"unknown event {event_id!r} (the program's events: {known})")
            if entry.cancelled:
                raise ValueError(f"the event {event_id!r} is cancelled")
            if entry.event.starts <= now:
                raise ValueError(f"the event {event_id!r} has already taken place")
        same_dates = self._moved_dates(request) == self._dates
        same_events = all(self._calendar[e].event.starts == t for e, t in request.events.items())
        if same_dates and same_events and not request.cancel_events:
            raise ValueError("nothing to move: the program already has these dates")
        for event_id, starts in request.events.items():
            if starts <= now:
                raise ValueError(
                    f"the new start of {event_id!r} ({starts.isoformat()}) is in the past"
                )
        problems = list(
            consistency_problems(self._moved_definition(self._moved_dates(request), request))
        )
        if problems:
            raise ValueError("; ".join(f"{p.field}: {p.problem}" for p in problems))

    def _moved_definition(
        self, dates: ProgramDates, request: RescheduleRequest | None = None
    ) -> ProgramDefinition:
        """The definition with ``dates`` and the calendar's events (moved by ``request``)."""
        cancelled = set(request.cancel_events) if request else set()
        events = {
            event_id: entry.event.model_copy(
                update={"starts": request.events.get(event_id, entry.event.starts)}
                if request
                else {}
            )
            for event_id, entry in self._calendar.items()
            if not entry.cancelled and event_id not in cancelled
        }
        schedule = self._definition.schedule
        return self._definition.model_copy(
            update={
                "application": self._definition.application.model_copy(
                    update={"opens": dates.opens, "deadline": dates.deadline}
                ),
                "evaluation": self._definition.evaluation.model_copy(
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

    @workflow.update
    async def submit_application(self, submission: ApplicationSubmission) -> ApplicationReceipt:
        """Take a saved application: start its workflow, or tell it that it changed."""
        child_id = application_workflow_id(self._definition.id, submission.application_id)
        if submission.application_id not in self._applications:
            self._put(
                submission.application_id,
                ApplicationEntry(
                    organisation_id=submission.organisation_id, profile_id=submission.profile_id
                ),
            )
            await workflow.start_child_workflow(
                ApplicationWorkflow.run,
                self._application_input(submission),
                id=child_id,
                task_queue=participant_task_queue(workflow.info().task_queue),
                # The program may continue as new while applications run on.
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(sa.PROGRAM_ID, self._definition.id)]
                ),
                static_summary=f"application to {self._definition.id}",
            )
            self._describe()
        elif submission.manager_changed:
            legacy = submission.manager  # a submission from before mentorflow.people
            await workflow.get_external_workflow_handle(child_id).signal(
                ApplicationWorkflow.manager_changed,
                ManagerChange(**legacy.model_dump()) if legacy else ManagerChange(),
            )
        return ApplicationReceipt(
            application_id=submission.application_id,
            workflow_id=child_id,
            created=submission.created,
        )

    @submit_application.validator
    def _validate_submission(self, submission: ApplicationSubmission) -> None:
        # The people fields are read only from runs recorded before mentorflow.people
        # (validators do not run on replay): a client may no longer send them.
        if submission.applicant is not None or submission.manager is not None:
            raise ValueError("personal_data: an application reaches the program as ids only")
        if self._handing_over:
            raise ValueError(f"{HANDING_OVER}: the program is moving to its next run; send again")
        if self._phase is not ProgramPhase.APPLICATION_WINDOW:
            raise ValueError(f"closed: applications are not open (phase {self._phase.value})")
        if self._clock.now() >= self._dates.deadline:
            raise ValueError("closed: the application deadline has passed")
        if self._definition.profile(submission.profile_id) is None:
            raise ValueError(f"unknown profile {submission.profile_id!r}")
        if submission.organisation_id not in {o.id for o in self._definition.organisations}:
            raise ValueError(f"unknown organisation {submission.organisation_id!r}")
        entry = self._applications.get(submission.application_id)
        if entry is not None and entry.outcome is not None:
            raise ValueError(f"already_answered: {entry.outcome}")

    @workflow.signal(name=APPLICATION_RESULT_SIGNAL)
    def application_result(self, result: ApplicationResult) -> None:
        entry = self._applications.get(result.application_id)
        if entry is None:  # reported to a run that never saw it start: keep it anyway
            entry = ApplicationEntry(
                organisation_id=result.organisation_id, profile_id=result.profile_id
            )
        self._put(result.application_id, entry.model_copy(update={"outcome": result.outcome.value}))
        self._describe()

    @workflow.update
    async def decide_capacity(self, decision: CapacityDecision) -> CapacityDecisionResult:
        """An organisation's HR decides who of its approved applicants takes part."""
        return await self._apply_decision(decision)

    async def _apply_decision(self, decision: CapacityDecision) -> CapacityDecisionResult:
        await workflow.execute_activity_method(
            MatchingActivities.record_selections,
            SelectionRecordInput(
                program_id=self._definition.id,
                organisation_id=decision.organisation_id,
                selections=decision.selections,
                decided_by=decision.decided_by,
                channel=decision.channel,
                at=self._clock.now(),
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            summary=f"record capacity decision of {decision.organisation_id}",
        )
        for application_id, selection in decision.selections.items():
            entry = self._applications[application_id]
            self._put(application_id, entry.model_copy(update={"selection": selection}))
        self._decisions[decision.organisation_id] = OrganisationDecision(
            decided_by=decision.decided_by or decision.channel, channel=decision.channel
        )
        chosen = list(decision.selections.values())
        result = CapacityDecisionResult(
            organisation_id=decision.organisation_id,
            accepted=chosen.count(Selection.ACCEPTED),
            waitlisted=chosen.count(Selection.WAITLISTED),
            declined=chosen.count(Selection.DECLINED),
        )
        self._revision += 1  # wakes the phase, which moves on once every organisation decided
        await self._record(
            "capacity",
            f"capacity-{decision.organisation_id}-{self._revision}",
            detail={**result.model_dump(), "channel": decision.channel},
        )
        self._describe()
        return result

    @decide_capacity.validator
    def _validate_capacity(self, decision: CapacityDecision) -> None:
        """Refuse, with the reason, a decision the program cannot take."""
        _refuse_personal(decided_by=decision.decided_by)
        if self._phase is not ProgramPhase.AWAITING_HR_DECISION:
            raise ValueError(f"closed: HR's capacity decision is not open (phase {self._phase})")
        if self._clock.now() >= self._decision_due():
            raise ValueError("closed: the decision deadline has passed")
        organisation = decision.organisation_id
        approved = self._approved_in(organisation)
        unknown = sorted(set(decision.selections) - set(approved))
        if unknown:
            raise ValueError(
                f"unknown: {', '.join(unknown)} is not an approved applicant of {organisation}"
            )
        missing = len(set(approved) - set(decision.selections))
        if missing:
            raise ValueError(f"incomplete: {missing} approved applicant(s) have no decision")
        for profile in self._definition.profiles:
            cap = self._definition.cap(organisation, profile.id)
            accepted = sum(
                1
                for application_id, selection in decision.selections.items()
                if selection is Selection.ACCEPTED
                and self._applications[application_id].profile_id == profile.id
            )
            if cap is not None and accepted > cap:
                raise ValueError(
                    f"over_cap: {profile.title}: {accepted} accepted, the cap for"
                    f" {organisation} is {cap}"
                )

    @workflow.update
    async def review_matching(self, request: MatchReviewRequest) -> MatchingSummary:
        """HR's review: lock, forbid, swap or re-run (a new proposal), or confirm."""
        async with self._review_lock:
            self._validate_review(request)  # again: an earlier action may have changed things
            current = self._matching.summary
            assert current is not None
            if request.action == "confirm":
                self._matching.confirmed_by = request.by or "hr"
                return current
            locks, forbids = self._adjusted(request)
            proposed = await self._propose(locks, forbids)
            if proposed.conflict is not None:
                raise ApplicationError(f"conflict: {proposed.conflict}", non_retryable=True)
            assert proposed.summary is not None
            self._matching.locks, self._matching.forbids = locks, forbids
            self._matching.summary = proposed.summary
            await self._record(
                "matching",
                f"proposal-{proposed.summary.proposal}",
                detail={"action": request.action, "by": request.by},
            )
            self._describe()
            return proposed.summary

    @review_matching.validator
    def _validate_review_request(self, request: MatchReviewRequest) -> None:
        _refuse_personal(by=request.by)
        self._validate_review(request)

    def _validate_review(self, request: MatchReviewRequest) -> None:
        summary = self._matching.summary
        if self._phase is not ProgramPhase.MATCH_REVIEW or summary is None:
            raise ValueError(f"closed: the pairs are not under review (phase {self._phase})")
        if self._matching.confirmed_by is not None:
            raise ValueError(f"closed: the pairs were confirmed by {self._matching.confirmed_by}")
        if request.action == "confirm":
            if request.proposal != summary.proposal:
                raise ValueError(
                    f"stale: proposal {request.proposal} was replaced by proposal"
                    f" {summary.proposal}; review the new one"
                )
            return
        if request.action == "rerun":
            return
        pairs = [request.pair, request.other] if request.action == "swap" else [request.pair]
        for pair in pairs:
            if pair is None:
                raise ValueError(f"incomplete: {request.action} needs a pair")
            for application_id, role in (
                (pair.mentor_id, Role.MENTOR),
                (pair.adept_id, Role.ADEPT),
            ):
                if not self._is_accepted(application_id, role):
                    raise ValueError(f"unknown: {application_id} is not an accepted {role.value}")
        assert request.pair is not None
        if request.action == "lock" and request.pair in self._matching.forbids:
            raise ValueError("conflict: the pair is forbidden; allow it before locking it")
        if request.action == "forbid" and request.pair in self._matching.locks:
            raise ValueError("conflict: the pair is locked; unlock it before forbidding it")

    def _adjusted(self, request: MatchReviewRequest) -> tuple[list[PairRef], list[PairRef]]:
        """The locks and forbids after ``request``."""
        locks, forbids = list(self._matching.locks), list(self._matching.forbids)
        pair = request.pair
        if request.action == "lock" and pair is not None and pair not in locks:
            locks.append(pair)
        elif request.action == "unlock":
            locks = [p for p in locks if p != pair]
        elif request.action == "forbid" and pair is not None and pair not in forbids:
            forbids.append(pair)
        elif request.action == "allow":
            forbids = [p for p in forbids if p != pair]
        elif request.action == "swap" and pair is not None and request.other is not None:
            other = request.other
            moved = {pair.adept_id, other.adept_id, pair.mentor_id, other.mentor_id}
            # The swapped pairs replace any lock held by the people they move.
            locks = [p for p in locks if p.adept_id not in moved and p.mentor_id not in moved]
            locks += [
                PairRef(mentor_id=pair.mentor_id, adept_id=other.adept_id),
                PairRef(mentor_id=other.mentor_id, adept_id=pair.adept_id),
            ]
        return locks, forbids

    def _application_input(self, submission: ApplicationSubmission) -> ApplicationInput:
        d = self._definition
        organisation = next(o for o in d.organisations if o.id == submission.organisation_id)
        profile = d.profile(submission.profile_id)
        assert profile is not None
        return ApplicationInput(
            program_id=d.id,
            application_id=submission.application_id,
            organisation_id=submission.organisation_id,
            profile_id=submission.profile_id,
            profile_title=profile.title,
            hr_contacts=list(organisation.hr_contacts),
            approval_required=d.approval.required,
            answer_by=self._answer_by(),
            reminders_before_answer_by=list(d.approval.reminders_before_answer_by),
            on_silence=d.approval.on_silence.value,
            decide_escalated_by=self._escalation_due(),
            facts=self._facts(),
        )

    def _answer_by(self) -> datetime:
        return self._definition.approval.answer_by or self._dates.deadline

    def _escalation_due(self) -> datetime:
        """When HR must have answered an escalated application.

        Halfway between answer-by and the capacity decision deadline, so that an
        escalation left unanswered never eats the time HR has for its decision.
        """
        answer_by = self._answer_by()
        return answer_by + (self._decision_due() - answer_by) / 2

    def _decision_due(self) -> datetime:
        """When each organisation's HR must have decided who takes part."""
        return self._definition.capacity.decision_by or self._dates.start

    def _approvals_due(self) -> datetime:
        # A minute's grace lets the applications' own timers report first.
        return self._escalation_due() + timedelta(minutes=1)

    def _all_answered(self) -> bool:
        return self._tally.pending == 0

    def _totals(self) -> dict[str, int]:
        return self._tally.totals()

    def _put(self, application_id: str, entry: ApplicationEntry) -> None:
        """Add or change an application; the tally follows."""
        self._tally.replace(self._applications.get(application_id), entry)
        self._applications[application_id] = entry

    def _breakdown(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for entry in self._applications.values():
            row = table.setdefault(
                f"{entry.organisation_id}/{entry.profile_id}",
                {"applied": 0, "approved": 0, "declined": 0, "withdrawn": 0, "pending": 0},
            )
            row["applied"] += 1
            row[entry.outcome or "pending"] += 1
        return dict(sorted(table.items()))

    # --- Continue-as-new ------------------------------------------------------------------

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            # Far below Temporal's 10,240-event warning (ProgramInput's default: 4,000),
            # so a program with thousands of applicants never gets a heavy history.
            or info.get_current_history_length() >= self._continue_as_new_after
        )

    async def _continue_as_new_if_due(self) -> None:
        if not self._history_is_long():
            return
        self._handing_over = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            ProgramInput(
                definition=self._definition,
                state=ProgramState(
                    phase=self._phase,
                    revision=self._revision,
                    dates=self._dates,
                    reminders_done=sorted(self._reminders_done),
                    reminders_sent=self._reminders_sent,
                    announced_to=self._announced_to,
                    reschedules=self._reschedules,
                    applications=self._applications,
                    notices=self._notices,
                    decisions=self._decisions,
                    capacity_requested=self._capacity_requested,
                    matching=self._matching,
                    calendar=self._calendar,
                    pairs=self._pairs,
                    pairs_to_tell=self._pairs_to_tell,
                    evaluation=self._evaluation,
                    report=self._report,
                    purge_at=self._purge_at,
                    purge_request=self._purge_request,
                ),
                continue_as_new_after=self._continue_as_new_after,
            )
        )

    # --- Timers ---------------------------------------------------------------------------

    async def _sleep_until(
        self, moment: datetime, summary: str, unless: Callable[[], bool] = lambda: False
    ) -> None:
        """Sleep until ``moment``, a date moves, or ``unless()``; then the caller re-plans."""
        revision = self._revision
        await self._clock.sleep_until(
            moment,
            lambda: self._revision != revision or self._history_is_long() or unless(),
            summary,
        )

    def _reminder_plan(self) -> list[reminders.Reminder]:
        """The reminders before the current deadline."""
        before = self._definition.application.reminders_before_deadline
        return reminders.plan(self._dates.deadline, before, prefix="reminder-")

    def _skip_passed_reminders(self) -> None:
        """A reminder whose time passed before the deadline was set is not sent late."""
        now = self._clock.now()
        self._reminders_done.update(reminders.passed(self._reminder_plan(), now, ()))

    def _due_reminder(self, now: datetime) -> tuple[str, timedelta] | None:
        due = reminders.due(self._reminder_plan(), now, self._reminders_done)
        return (due.key, due.before) if due else None

    def _next_wake_up(self) -> datetime:
        plan = self._reminder_plan()
        return reminders.next_wake_up(plan, self._reminders_done, self._dates.deadline)

    def _next_deadline(self) -> tuple[datetime | None, str | None]:
        if self._phase is ProgramPhase.SCHEDULED:
            return self._dates.opens, "application window opens"
        if self._phase is ProgramPhase.APPLICATION_WINDOW:
            return self._dates.deadline, "application deadline"
        if self._phase is ProgramPhase.AWAITING_APPROVALS:
            return self._answer_by(), "managers answer by"
        if self._phase is ProgramPhase.AWAITING_HR_DECISION:
            return self._decision_due(), "HR decides who takes part by"
        if self._phase in (ProgramPhase.MATCHED, ProgramPhase.RUNNING):
            now = self._clock.now()
            upcoming = sorted(
                (e.event.starts, e.event.title)
                for e in self._calendar.values()
                if not e.cancelled and e.event.starts > now
            )
            if upcoming:
                return upcoming[0]
            return self._dates.end, "the program ends"
        if self._phase is ProgramPhase.ENDED and self._has_evaluation():
            return self._dates.evaluation_closes, "the closing evaluation closes"
        if self._phase is ProgramPhase.COMPLETED:
            return self._purge_at, "personal data is purged"
        return None, None

    def _moved_dates(self, request: RescheduleRequest) -> ProgramDates:
        dates = self._dates
        # A postponed end takes an evaluation that has not opened yet along with it.
        shift = (
            request.end - dates.end
            if request.end is not None and self._evaluation.invited is None
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

    # --- HR's capacity decision -------------------------------------------------------------

    def _approved_in(self, organisation_id: str) -> list[str]:
        """The organisation's approved applications, in the order they came."""
        return [
            application_id
            for application_id, entry in self._applications.items()
            if entry.organisation_id == organisation_id
            and entry.outcome == ApplicationOutcome.APPROVED.value
        ]

    def _undecided(self) -> list[str]:
        """Organisations with approved applicants and no decision yet."""
        return [
            o.id
            for o in self._definition.organisations
            if o.id not in self._decisions and self._approved_in(o.id)
        ]

    def _is_accepted(self, application_id: str, role: Role) -> bool:
        entry = self._applications.get(application_id)
        if entry is None or entry.selection is not Selection.ACCEPTED:
            return False
        if entry.outcome != ApplicationOutcome.APPROVED.value:  # withdrawn since
            return False
        profile = self._definition.profile(entry.profile_id)
        return profile is not None and profile.role is role

    def _capacity_reminder_plan(self) -> list[reminders.Reminder]:
        before = self._definition.capacity.reminders_before_decision
        return reminders.plan(self._decision_due(), before, prefix="capacity-reminder-")

    def _skip_passed_capacity_reminders(self) -> None:
        now = self._clock.now()
        self._reminders_done.update(reminders.passed(self._capacity_reminder_plan(), now, ()))

    def _due_capacity_reminder(self, now: datetime) -> str | None:
        due = reminders.due(self._capacity_reminder_plan(), now, self._reminders_done)
        return due.key if due else None

    def _next_capacity_wake_up(self) -> datetime:
        plan = self._capacity_reminder_plan()
        return reminders.next_wake_up(plan, self._reminders_done, self._decision_due())

    async def _ask_for_capacity_decisions(self, reminder_key: str | None) -> None:
        """Each undecided organisation's HR gets its summary and a link to decide."""
        for organisation in self._definition.organisations:
            if organisation.id not in self._undecided():
                continue
            approved = self._approved_in(organisation.id)
            rows = [
                CapacityRow(
                    profile_title=profile.title,
                    approved=sum(
                        1 for a in approved if self._applications[a].profile_id == profile.id
                    ),
                    cap=self._definition.cap(organisation.id, profile.id),
                )
                for profile in self._definition.profiles
            ]
            await self._email(
                "capacity_request",
                f"capacity-request/{organisation.id}",
                reminder_key or "1",
                [c.email for c in organisation.hr_contacts],
                facts=self._facts().model_copy(
                    update={
                        "organisation_name": organisation.name,
                        "capacity_rows": rows,
                        "decide_by": self._decision_due(),
                        "reminder": reminder_key is not None,
                    }
                ),
                links=[
                    LinkRequest(
                        name="decide_url",
                        purpose="capacity",
                        application_id=organisation.id,
                        expires_at=self._decision_due(),
                        path="/c/",
                    )
                ],
            )

    async def _apply_undecided_policy(self) -> None:
        """The definition says what happens to an organisation that did not decide in time."""
        policy = self._definition.capacity.when_undecided
        for organisation_id in self._undecided():
            selections = capacity.undecided_selections(
                policy,
                # In the order the applications arrived: first come, first served.
                [(a, self._applications[a].profile_id) for a in self._approved_in(organisation_id)],
                functools.partial(self._definition.cap, organisation_id),
            )
            await self._apply_decision(
                CapacityDecision(
                    organisation_id=organisation_id,
                    selections=selections,
                    decided_by=f"policy: {policy.value}",
                    channel="policy",
                )
            )

    # --- Matching ---------------------------------------------------------------------------

    async def _propose(self, locks: list[PairRef], forbids: list[PairRef]) -> ProposeMatchesResult:
        """Run the matcher; a proposal refused for a conflict does not use up a number."""
        number = self._matching.proposals + 1
        d = self._definition
        result = await workflow.execute_activity_method(
            MatchingActivities.propose_matches,
            ProposeMatchesInput(
                program_id=d.id,
                proposal=number,
                kind=d.kind,
                matching=d.matching,
                mentor_profiles=[p.id for p in d.profiles if p.role is Role.MENTOR],
                adept_profiles=[p.id for p in d.profiles if p.role is Role.ADEPT],
                locks=locks,
                forbids=forbids,
                at=self._clock.now(),
            ),
            # Thousands of candidates: a matrix of millions of pairs takes seconds.
            start_to_close_timeout=timedelta(minutes=10),
            summary=f"propose pairs (proposal {number})",
        )
        if result.conflict is None:
            self._matching.proposals = number
        return result

    async def _ask_for_review(self) -> None:
        summary = self._matching.summary
        assert summary is not None
        await self._email(
            "match_review",
            "match-review",
            "1",
            [c.email for c in self._definition.coordinators()],
            facts=self._facts().model_copy(
                update={
                    "pairs": summary.pairs,
                    "unmatched": summary.unmatched_adepts + summary.unmatched_mentors,
                }
            ),
            links=[
                LinkRequest(
                    name="review_url",
                    purpose="review",
                    application_id=self._definition.id,
                    expires_at=self._dates.start,
                    path="/r/",
                )
            ],
        )

    async def _notify_outcomes(self) -> None:
        """Pair introductions, kind words to the others, and their managers informed."""
        summary = self._matching.summary
        assert summary is not None
        d = self._definition
        kickoff = d.schedule.kickoff
        facts = self._facts().model_copy(
            update={
                "introduction": d.matching.introduction,
                "kickoff_title": kickoff.title if kickoff else None,
                "kickoff_starts": kickoff.starts if kickoff else None,
                "kickoff_place": (kickoff.place or kickoff.online_url) if kickoff else None,
            }
        )
        emails = 2 * len(self._applications)
        result = await workflow.execute_activity_method(
            EmailActivities.send_outcome_notices,
            OutcomeNoticesInput(
                program_id=d.id,
                proposal=summary.proposal,
                facts=facts,
                profile_titles={p.id: p.title for p in d.profiles},
                organisation_names={o.id: o.name for o in d.organisations},
            ),
            start_to_close_timeout=timedelta(seconds=120 + emails),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=EMAIL_RETRY,
            summary=f"outcome notices (proposal {summary.proposal})",
        )
        self._matching.notified = True
        await self._record("notified", "outcome-notices", detail=result.model_dump())

    # --- The running program: joint events and pairs ----------------------------------------

    async def _open_pairs(self, request: OpenPairsInput) -> list[str]:
        """Record pairs as running (once) and track them; their workflows start next."""
        opened: OpenPairsResult = await workflow.execute_activity_method(
            PairActivities.open_pairs,
            request,
            start_to_close_timeout=RECORD_TIMEOUT,
            summary="open pairs" if request.proposal else "open a re-matched pair",
        )
        for pair in opened.pairs:
            self._pairs.setdefault(
                pair.pair_id, PairEntry(mentor_id=pair.mentor_id, adept_id=pair.adept_id)
            )
        return [pair.pair_id for pair in opened.pairs]

    async def _start_pairs(self) -> None:
        """One child workflow per pair, abandoned on close so the program can continue as new."""
        for pair_id, pair in list(self._pairs.items()):  # a re-match may add one meanwhile
            if pair.started or pair.status != "active":
                continue
            await workflow.start_child_workflow(
                PairWorkflow.run,
                self._pair_input(pair_id, pair),
                id=pair_workflow_id(self._definition.id, pair_id),
                task_queue=participant_task_queue(workflow.info().task_queue),
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(sa.PROGRAM_ID, self._definition.id)]
                ),
                static_summary=f"pair in {self._definition.id}",
            )
            pair.started = True
            # Thousands of pairs: a start is a handful of events; keep the history short.
            await self._continue_as_new_if_due()

    def _pair_input(self, pair_id: str, pair: PairEntry) -> PairInput:
        d = self._definition
        return PairInput(
            program_id=d.id,
            pair_id=pair_id,
            mentor_id=pair.mentor_id,
            adept_id=pair.adept_id,
            start=self._dates.start,
            end=self._dates.end,
            meetings=d.meetings,
            facts=self._facts().model_copy(update={"introduction": d.matching.introduction}),
            hr=[c.email for c in d.coordinators()],
            introduce=pair.rematch,
        )

    async def _tell_pairs_of_moved_dates(self) -> None:
        while self._pairs_to_tell:
            pair_id = self._pairs_to_tell[0]
            # Best effort: a pair that has already closed needs no new dates.
            with contextlib.suppress(Exception):
                await workflow.get_external_workflow_handle(
                    pair_workflow_id(self._definition.id, pair_id)
                ).signal(
                    PairWorkflow.dates_changed,
                    PairDates(start=self._dates.start, end=self._dates.end),
                )
            self._pairs_to_tell.pop(0)
            await self._continue_as_new_if_due()

    async def _send_calendar(self) -> None:
        """Each event's current version to every participant who does not have it yet."""
        for entry in self._calendar.values():
            if entry.sent_sequence == entry.sequence:
                continue
            if entry.event.starts <= self._clock.now() and not entry.cancelled:
                entry.sent_sequence = entry.sequence  # past: no invitation is useful now
                continue
            sequence = entry.sequence
            await self._calendar_email(entry, "invitation")
            entry.sent_sequence = sequence
            await self._record(
                "calendar",
                f"calendar-{entry.event.id}-{sequence}",
                detail={
                    "event": entry.event.id,
                    "sequence": sequence,
                    "method": "CANCEL" if entry.cancelled else "REQUEST",
                    "starts": entry.event.starts.isoformat(),
                },
            )

    async def _calendar_email(
        self,
        entry: CalendarEntry,
        kind: CalendarEmailKind,
        reminder_key: str = "",
        time_left: timedelta | None = None,
    ) -> None:
        d = self._definition
        organizer = d.coordinators()[0]
        people = 2 * len(self._pairs)
        result = await workflow.execute_activity_method(
            EmailActivities.send_calendar_emails,
            CalendarEmailInput(
                program_id=d.id,
                entry=entry,
                kind=kind,
                facts=self._facts(),
                organizer=organizer,
                reminder_key=reminder_key,
                time_left=time_left,
                at=self._clock.now(),
            ),
            start_to_close_timeout=timedelta(seconds=120 + 2 * people),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=EMAIL_RETRY,
            summary=f"{kind} {entry.event.id} (sequence {entry.sequence})",
        )
        if result.rejected:
            workflow.logger.warning("%s %s: %d refused", kind, entry.event.id, result.rejected)

    def _event_reminder_plans(self) -> list[tuple[CalendarEntry, list[reminders.Reminder]]]:
        """Each event still on, with its reminders (in the definition's order)."""
        return [
            (
                entry,
                reminders.plan(
                    entry.event.starts, entry.event.reminders_before, earliest_first=False
                ),
            )
            for entry in self._calendar.values()
            if not entry.cancelled
        ]

    def _skip_passed_event_reminders(self) -> None:
        now = self._clock.now()
        for entry, plan in self._event_reminder_plans():
            entry.reminders_done += reminders.passed(plan, now, entry.reminders_done)

    def _due_event_reminder(self, now: datetime) -> tuple[str, timedelta, str] | None:
        for entry, plan in self._event_reminder_plans():
            due = reminders.due(plan, now, entry.reminders_done)
            if due is not None:
                return due.key, due.before, entry.event.id
        return None

    def _next_event_wake_up(self) -> datetime:
        return min(
            [
                reminders.next_wake_up(plan, entry.reminders_done, self._dates.end)
                for entry, plan in self._event_reminder_plans()
            ],
            default=self._dates.end,
        )

    async def _send_event_reminder(self, key: str, time_left: timedelta, event_id: str) -> None:
        entry = self._calendar[event_id]
        entry.reminders_done.append(key)
        await self._calendar_email(entry, "reminder", key.partition("@")[0], time_left)

    # --- The closing evaluation -------------------------------------------------------------

    def _has_evaluation(self) -> bool:
        return bool(self._definition.evaluation.questions)

    def _evaluation_reminder_plan(self) -> list[reminders.Reminder]:
        """The reminders before the current closing date."""
        before = self._definition.evaluation.reminders_before_close
        return reminders.plan(self._dates.evaluation_closes, before)

    def _skip_passed_evaluation_reminders(self) -> None:
        """A reminder whose time passed before the survey opened (or moved) is not sent late."""
        done = self._evaluation.reminders_done
        done += reminders.passed(self._evaluation_reminder_plan(), self._clock.now(), done)

    async def _evaluation_step(self, now: datetime) -> bool:
        """Open the evaluation, or send a reminder, if one is due; whether one was."""
        if not self._has_evaluation() or self._evaluation.closed:
            return False
        if self._evaluation.invited is None:
            if now < self._dates.evaluation_opens:
                return False
            self._skip_passed_evaluation_reminders()
            self._evaluation.invited = await self._evaluation_email("invitation")
            await self._record(
                "evaluation",
                "evaluation-opened",
                detail={
                    "invited": self._evaluation.invited,
                    "evaluation_closes": self._dates.evaluation_closes.isoformat(),
                },
            )
            self._publish()
            return True
        due = reminders.due(self._evaluation_reminder_plan(), now, self._evaluation.reminders_done)
        if due is None:
            return False
        self._evaluation.reminders_done.append(due.key)
        await self._evaluation_email("reminder", due.key, due.before)
        return True

    def _next_evaluation_wake_up(self) -> datetime:
        closes = self._dates.evaluation_closes
        if not self._has_evaluation() or self._evaluation.closed or self._clock.now() >= closes:
            # Nothing to wake for before the end: the evaluation is closed after it. (Waking
            # for a close that passed while pairs still meet would never wait: the loop spun
            # until the SDK's deadlock detector failed the task.)
            return max(closes, self._dates.end)
        if self._evaluation.invited is None:
            return self._dates.evaluation_opens
        plan = self._evaluation_reminder_plan()
        return reminders.next_wake_up(plan, self._evaluation.reminders_done, closes)

    async def _evaluation_email(
        self,
        kind: Literal["invitation", "reminder"],
        key: str = "",
        time_left: timedelta | None = None,
    ) -> int:
        people = 2 * len(self._pairs)
        result = await workflow.execute_activity_method(
            EmailActivities.send_evaluation_emails,
            EvaluationEmailInput(
                program_id=self._definition.id,
                kind=kind,
                reminder_key=key.partition("@")[0],
                facts=self._facts(),
                closes=self._dates.evaluation_closes,
                time_left=time_left,
            ),
            start_to_close_timeout=timedelta(seconds=120 + 2 * people),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=EMAIL_RETRY,
            summary=f"closing evaluation: {kind}",
        )
        return result.invited

    @workflow.signal(name=PAIR_CLOSED_SIGNAL)
    def pair_closed(self, closed: PairClosed) -> None:
        """A pair ended, or closed after a withdrawal (its remaining partner may be re-matched)."""
        pair = self._pairs.get(closed.pair_id)
        if pair is not None:
            pair.status = closed.status
        if closed.withdrawn_id is None:
            return
        entry = self._applications.get(closed.withdrawn_id)
        if entry is not None:
            self._put(
                closed.withdrawn_id,
                entry.model_copy(update={"outcome": ApplicationOutcome.WITHDRAWN.value}),
            )
        self._describe()

    @workflow.update
    async def rematch(self, request: RematchRequest) -> str:
        """HR pairs the remaining participant of a closed pair with someone from the wait-list.

        Returns the new pair's id; its workflow starts and introduces the two,
        and both get the upcoming joint events in their calendars.
        """
        partner = self._applications[request.partner_id]
        if partner.selection is not Selection.ACCEPTED:
            await self._apply_selection_change(request.partner_id, request.by)
        remaining_role = self._role_of(request.remaining_id)
        mentor, adept = (
            (request.remaining_id, request.partner_id)
            if remaining_role is Role.MENTOR
            else (request.partner_id, request.remaining_id)
        )
        [pair_id] = await self._open_pairs(
            OpenPairsInput(
                program_id=self._definition.id,
                pairs=[PairRef(mentor_id=mentor, adept_id=adept)],
                at=self._clock.now(),
            )
        )
        self._pairs[pair_id].rematch = True  # its workflow introduces the two
        for entry in self._calendar.values():
            # The newcomer gets the current version; the ledger skips everyone else.
            if not entry.cancelled and entry.sent_sequence is not None:
                entry.sent_sequence = None
        # Wakes the loop, which starts the pair (it introduces the two) and sends the invitations.
        self._revision += 1
        await self._record(
            "pair",
            f"rematch-{pair_id}",
            detail={"pair": pair_id, "remaining": request.remaining_id, "by": request.by},
        )
        return pair_id

    @rematch.validator
    def _validate_rematch(self, request: RematchRequest) -> None:
        _refuse_personal(by=request.by)
        if self._phase is not ProgramPhase.RUNNING:
            raise ValueError(
                f"closed: pairs are re-matched while the program runs (phase {self._phase})"
            )
        in_closed = any(
            request.remaining_id in (p.mentor_id, p.adept_id)
            for p in self._pairs.values()
            if p.status == "closed"
        )
        if not in_closed or self._in_active_pair(request.remaining_id):
            raise ValueError(
                f"unknown: {request.remaining_id} is not the remaining participant of a closed pair"
            )
        partner = self._applications.get(request.partner_id)
        if (
            partner is None
            or partner.outcome != ApplicationOutcome.APPROVED.value
            or partner.selection not in (Selection.WAITLISTED, Selection.ACCEPTED)
            or self._in_active_pair(request.partner_id)
        ):
            raise ValueError(
                f"unknown: {request.partner_id} is not on the wait-list (nor accepted and unpaired)"
            )
        if self._role_of(request.partner_id) is self._role_of(request.remaining_id):
            raise ValueError("conflict: both have the same role; pair a mentor with an adept")

    def _in_active_pair(self, application_id: str) -> bool:
        return any(
            application_id in (p.mentor_id, p.adept_id)
            for p in self._pairs.values()
            if p.status == "active"
        )

    def _role_of(self, application_id: str) -> Role | None:
        entry = self._applications.get(application_id)
        profile = self._definition.profile(entry.profile_id) if entry else None
        return profile.role if profile else None

    async def _apply_selection_change(self, application_id: str, by: str) -> None:
        """A wait-listed applicant takes a place that opened up."""
        entry = self._applications[application_id]
        await workflow.execute_activity_method(
            MatchingActivities.record_selections,
            SelectionRecordInput(
                program_id=self._definition.id,
                organisation_id=entry.organisation_id,
                selections={application_id: Selection.ACCEPTED},
                decided_by=by,
                channel="rematch",
                at=self._clock.now(),
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            summary="accept from the wait-list",
        )
        self._put(application_id, entry.model_copy(update={"selection": Selection.ACCEPTED}))

    # --- Steps ----------------------------------------------------------------------------

    async def _send_reminder(self, key: str, time_left: timedelta) -> None:
        self._reminders_done.add(key)
        recipients = list(self._definition.announcement.recipients)
        if recipients:
            step, _, revision = key.partition("@")
            await self._email("reminder", step, revision, recipients, time_left=time_left)
            self._reminders_sent += 1
        await self._record("reminder", key, detail={"recipients": len(recipients)})

    async def _send_date_change_notices(self) -> None:
        while self._notices:
            change = self._notices.pop(0)
            recipients = list(self._definition.announcement.recipients)
            if recipients and {"deadline", "start"} & set(change.moved):
                await self._email(
                    "dates_changed",
                    "dates-changed",
                    str(change.revision),
                    recipients,
                    previous_deadline=(
                        change.previous.deadline if "deadline" in change.moved else None
                    ),
                    previous_start=change.previous.start if "start" in change.moved else None,
                    reason=change.reason,
                )

    async def _close_as_cancelled(self) -> None:
        announced = self._phase is not ProgramPhase.SCHEDULED
        self._phase = ProgramPhase.CANCELLED
        self._publish()
        await self._record("cancelled", "cancelled")
        # Applications still open (awaiting an answer, or approved and free to
        # withdraw) take no answer from now on.
        for application_id, entry in self._applications.items():
            if entry.outcome in (None, ApplicationOutcome.APPROVED.value):
                child = application_workflow_id(self._definition.id, application_id)
                # Best effort: an application that already finished needs no notice.
                with contextlib.suppress(Exception):
                    await workflow.get_external_workflow_handle(child).signal(
                        ApplicationWorkflow.program_closed
                    )
        # Running pairs stop, and the joint events leave the participants' calendars.
        for pair_id, pair in self._pairs.items():
            if pair.started and pair.status == "active":
                with contextlib.suppress(Exception):
                    await workflow.get_external_workflow_handle(
                        pair_workflow_id(self._definition.id, pair_id)
                    ).cancel()
        for event in self._calendar.values():
            if event.sent_sequence is None:  # never sent: nothing to take back
                event.sent_sequence = event.sequence
            elif not event.cancelled:
                event.cancelled, event.sequence = True, event.sequence + 1
        await self._send_calendar()
        recipients = list(self._definition.announcement.recipients)
        if announced and recipients:
            await self._email("cancelled", "cancelled", "1", recipients)

    async def _enter(self, phase: ProgramPhase) -> None:
        self._phase = phase
        self._publish()
        workflow.logger.info("program %s entered %s", self._definition.id, phase.value)
        await self._record("phase", f"phase-{phase.value}")

    def _publish(self) -> None:
        """Keep the Temporal UI's view (search attributes, details) current."""
        deadline, _ = self._next_deadline()
        workflow.upsert_search_attributes(
            [
                sa.PROGRAM_PHASE.value_set(self._phase.value),
                sa.NEXT_DEADLINE.value_set(deadline)
                if deadline
                else sa.NEXT_DEADLINE.value_unset(),
            ]
        )
        self._describe()

    def _describe(self) -> None:
        """The UI's "current details": phase, next deadline, live counts (no history event)."""
        deadline, label = self._next_deadline()
        details = f"**Phase:** {self._phase.value}"
        if deadline and label:
            details += f"  \n**Next:** {label} at {deadline.isoformat()}"
        if self._applications:
            totals = ", ".join(f"{k}: {v}" for k, v in self._totals().items())
            details += f"  \n**Applications:** {totals}"
        if self._report is not None:
            r = self._report
            details += (
                f"  \n**Report:** matched {r.matched}, completed {r.completed},"
                f" withdrew {r.withdrawn}; evaluation {r.responses}/{r.invited} answered"
            )
        workflow.set_current_details(details)

    # --- Activities -----------------------------------------------------------------------

    async def _register(self) -> None:
        deadline, _ = self._next_deadline()
        self._publish()
        await workflow.execute_activity_method(
            ProgramRecordActivities.register_program,
            RegisterProgramInput(
                program_id=self._definition.id,
                workflow_id=workflow.info().workflow_id,
                name=self._definition.name,
                phase=self._phase,
                revision=self._revision,
                next_deadline=deadline,
                at=self._clock.now(),
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            summary="register program",
        )

    async def _record(
        self, kind: EventKind, key: str, detail: dict[str, object] | None = None
    ) -> None:
        deadline, _ = self._next_deadline()
        await workflow.execute_activity_method(
            ProgramRecordActivities.record_event,
            RecordEventInput(
                program_id=self._definition.id,
                key=key,
                kind=kind,
                phase=self._phase,
                revision=self._revision,
                at=self._clock.now(),
                next_deadline=deadline,
                detail=detail or {},
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            summary=f"record {key}",
        )

    def _facts(self) -> EmailFacts:
        d = self._definition
        return EmailFacts(
            program_name=d.name,
            description=d.description,
            organisers=d.organisers,
            contacts=d.contacts,
            language=d.language,
            timezone=d.timezone,
            opens=self._dates.opens,
            deadline=self._dates.deadline,
            start=self._dates.start,
            end=self._dates.end,
            form_note=d.application.form_note,
        )

    async def _email(
        self,
        template: EmailTemplate,
        step: str,
        revision: str,
        recipients: list[str],
        *,
        time_left: timedelta | None = None,
        previous_deadline: datetime | None = None,
        previous_start: datetime | None = None,
        reason: str = "",
        facts: EmailFacts | None = None,
        links: list[LinkRequest] | None = None,
    ) -> None:
        d = self._definition
        facts = (facts or self._facts()).model_copy(
            update={
                "previous_deadline": previous_deadline,
                "previous_start": previous_start,
                "time_left": time_left,
                "reason": reason,
            }
        )
        result = await workflow.execute_activity_method(
            EmailActivities.send_email_batch,
            EmailBatch(
                program_id=d.id,
                step=step,
                revision=revision,
                template=template,
                recipients=recipients,
                facts=facts,
                links=links or [],
            ),
            start_to_close_timeout=timedelta(seconds=60 + 5 * len(recipients)),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=EMAIL_RETRY,
            summary=f"{template} to {len(recipients)} recipient(s)",
        )
        for rejected in result.rejected:
            # Never fail the program over one bad address; it is recorded in the
            # ledger and shown here for ops.
            workflow.logger.warning("%s email refused: %s", template, rejected.reason)


def _refuse_personal(**values: str) -> None:
    """Who acted and why reach a workflow as references and note keys, never as people
    (mentorflow.people): the history would keep them past every purge."""
    for field, value in values.items():
        if not people.may_be_carried(value):
            raise ValueError(
                f"personal_data: {field} must be a note's key or a reference, not a name,"
                " an address or free text (save the text with Store.save_note)"
            )
