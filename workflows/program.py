"""ProgramWorkflow: the life of one mentorship program, as durable state.

Read ``run`` for the lifecycle. Every date is state, not a sleep: the workflow
waits for "the current value of the date, or a change to it" (the updatable
timer pattern), so ``reschedule`` moves a date and the waiting simply re-plans.

Thin: it holds ids, dates and counts (``ProgramState``). Each application is its
own workflow, started by the client that took it, and sends the program nothing:
the program counts the applications in the database when a phase needs them, and
the database checks capacity, review and re-match requests (activities). Its steps
(emails, records, pairs) are in ``workflows/program_steps.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import email_validator  # noqa: F401  (see workflows/program_steps.py)

    from activities.matching import MatchingActivities
    from activities.pairs import PairActivities
    from activities.reports import ReportActivities
    from mentorflow import review, tally, timeline
    from mentorflow.models import (
        ApplicationApplied,
        ApplicationResult,
        CalendarEntry,
        CapacityDecision,
        CapacityDecisionResult,
        ConfirmMatchesInput,
        DateChange,
        MatchingSummary,
        MatchReviewRequest,
        OpenPairsInput,
        PairClosed,
        PairRef,
        ProgramDates,
        ProgramInput,
        ProgramPhase,
        ProgramResult,
        ProgramState,
        ProgramStatus,
        PurgeInput,
        PurgeRequest,
        PurgeResult,
        RematchCheckInput,
        RematchCheckResult,
        RematchRequest,
        RescheduleRequest,
        RescheduleResult,
        program_dates,
    )
    from mentorflow.refusals import refuse
    from workflows.application import (
        ANSWERS_IN_SIGNAL,
        APPLICATION_APPLIED_SIGNAL,
        APPLICATION_RESULT_SIGNAL,
    )
    from workflows.options import RECORD_TIMEOUT
    from workflows.pair import PAIR_CLOSED_SIGNAL
    from workflows.program_steps import ProgramSteps, refuse_personal, refused_as_typed
    from workflows.timers import Clock

# Runs from before it leave the approvals when the tally has nothing pending, without
# asking the database (docs/upgrades.md).
APPROVALS_ON_RECORD = "program-approvals-on-record"
# The counts shown while the window is open (UI details, the status query) are counted
# in the database at each of its wakes (reminders, moved dates).
TALLY_IN_WINDOW = "program-tally-in-window"


@workflow.defn(name="ProgramWorkflowV2")
class ProgramWorkflow(ProgramSteps):
    @workflow.init
    def __init__(self, input: ProgramInput) -> None:
        self._definition = input.definition
        self._clock = Clock()
        self._s = input.state or ProgramState(dates=program_dates(input.definition))
        if input.state is None:
            schedule = input.definition.schedule
            events = [schedule.kickoff] if schedule.kickoff else []
            events += schedule.sessions
            self._s.calendar = {e.id: CalendarEntry(event=e) for e in events}
        self._continue_as_new_after = input.continue_as_new_after
        self._published: tuple[str, datetime | None] | None = None
        self._purged: PurgeResult | None = None
        # Times an application said its answer left none open (the approvals count again).
        self._answers_in = 0
        # HR's review actions each re-run the matcher: one at a time, in arrival order.
        self._review_lock = asyncio.Lock()

    # --- The lifecycle --------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ProgramInput) -> ProgramResult:
        s = self._s
        try:
            if input.state is None:
                await self.register()
            self.publish()
            if s.phase is ProgramPhase.SCHEDULED:
                while self._clock.now() < s.dates.opens:
                    await self._sleep_until(s.dates.opens, "application window opens")
                await self._enter(ProgramPhase.APPLICATION_WINDOW)
                await self.announce()
            if s.phase is ProgramPhase.APPLICATION_WINDOW:
                await self._run_application_window()
                await self._enter(ProgramPhase.AWAITING_APPROVALS)
            if s.phase is ProgramPhase.AWAITING_APPROVALS:
                await self._await_approvals()
                await self._enter(ProgramPhase.AWAITING_HR_DECISION)
            if s.phase is ProgramPhase.AWAITING_HR_DECISION:
                await self._await_capacity_decisions()
                await self._enter(ProgramPhase.MATCH_REVIEW)
            if s.phase is ProgramPhase.MATCH_REVIEW:
                await self._review_matches()
                await self._enter(ProgramPhase.MATCHED)
            if s.phase is ProgramPhase.MATCHED:
                if not s.matching.notified:
                    await self.notify_outcomes()
                await self._enter(ProgramPhase.RUNNING)
            if s.phase is ProgramPhase.RUNNING:
                await self._run_meetings()
                await self._enter(ProgramPhase.ENDED)
            if s.phase is ProgramPhase.ENDED:
                await self._run_evaluation()
                await self.report_to_hr()
                await self._enter(ProgramPhase.COMPLETED)
            if s.phase is ProgramPhase.COMPLETED:
                await self._keep_until_retention_ends()
                await self._purge()
                await self._enter(ProgramPhase.PURGED)
        except asyncio.CancelledError:
            # Cancelled from the CLI or the Temporal UI: record it, stop the applications
            # and pairs, and tell everyone involved; then end as cancelled.
            await self.close_as_cancelled()
            raise
        await workflow.wait_condition(workflow.all_handlers_finished)
        return ProgramResult(
            program_id=self._definition.id,
            phase=s.phase,
            finished_at=self._clock.now(),
            reminders_sent=s.reminders_sent,
            report=s.report,
        )

    async def _run_application_window(self) -> None:
        """Send reminders before the deadline until it passes; follow every move of it."""
        while True:
            await self.send_date_change_notices()
            now = self._clock.now()
            if now >= self._s.dates.deadline:
                return
            if await self.send_due_reminder(now):
                continue
            if workflow.patched(TALLY_IN_WINDOW):
                await self.count_applications()
            await self._sleep_until(self.next_reminder(), "next reminder or the deadline")

    async def _await_approvals(self) -> None:
        """Managers (or HR, on escalation) answer until each application has an outcome
        in the database, or until answers are due. The application whose answer leaves
        none open says so (``answers_in``); the program counts again then."""
        if not self.counting_on_record():
            return await self._await_approvals_as_told()
        # The last answer says so. Looking again costs little, soon at first (an
        # application made in the window's last seconds, recorded just after it) and
        # then seldom (a word lost, or an application of an earlier run answering).
        recheck = timedelta(seconds=15)
        while True:
            told = self._answers_in
            await self.count_applications()
            due = self.approvals_due()
            if not self._s.tally.pending or self._clock.now() >= due:
                return
            await self._sleep_until(
                min(self._clock.now() + recheck, due),
                "every application answered",
                lambda: self._answers_in != told,  # noqa: B023 (awaited here)
            )
            recheck = min(recheck * 2, timedelta(days=1))

    async def _await_approvals_as_told(self) -> None:
        """Runs from before TALLY_ON_RECORD: as the applications told it, then the database."""
        recheck = timedelta(seconds=15)
        while self._clock.now() < self.approvals_due():
            if self._s.tally.pending:
                await self._sleep_until(
                    self.approvals_due(), "approvals due", lambda: not self._s.tally.pending
                )
                continue
            told = self._s.tally.totals()  # before asking: news may come meanwhile
            if not workflow.patched(APPROVALS_ON_RECORD) or not await self.undecided_on_record():
                return
            # Some applications' news is still on its way: look again when it comes, or later.
            recheck = min(recheck * 2, timedelta(minutes=10))
            await self._sleep_until(
                min(self._clock.now() + recheck, self.approvals_due()),
                "applications told late",
                lambda: self._s.tally.totals() != told,  # noqa: B023 (awaited here)
            )

    async def _await_capacity_decisions(self) -> None:
        """Each organisation's HR accepts, wait-lists or declines its approved applicants;
        an organisation that has not decided by the deadline gets the definition's policy."""
        if not self._s.capacity_requested:
            if self.counting_on_record():
                await self.count_applications()  # who is approved, as the database has it
            self.skip_passed_capacity_reminders()
            await self.ask_for_capacity_decisions(reminder_key=None)
            self._s.capacity_requested = True
        while self.undecided() and self._clock.now() < self.decision_due():
            if await self.send_due_capacity_reminder(self._clock.now()):
                continue
            await self._sleep_until(
                self.next_capacity_wake_up(), "HR capacity decisions", lambda: not self.undecided()
            )
        # A decision that arrived just before the deadline is recorded, not overruled.
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.undecided() and self.counting_on_record():
            await self.count_applications()  # an approved applicant may have withdrawn
        policy = self._definition.capacity.when_undecided
        for organisation_id in self.undecided():
            await self.decide(
                CapacityDecision(
                    organisation_id=organisation_id,
                    selections={},  # the activity chooses them by the policy
                    decided_by=f"policy: {policy.value}",
                    channel="policy",
                ),
                policy=policy.value,
            )

    async def _review_matches(self) -> None:
        """Propose pairs; HR locks, forbids, swaps and re-runs until it confirms them."""
        matching = self._s.matching
        if matching.summary is None:
            proposed = await self.propose(matching.locks, matching.forbids)
            assert proposed.summary is not None  # no locks yet, so nothing can conflict
            matching.summary = proposed.summary
            self.publish()
        summary = matching.summary
        nobody = summary.pairs + summary.unmatched_mentors + summary.unmatched_adepts == 0
        if not self._definition.matching.hr_review or nobody:
            matching.confirmed_by = "policy: confirmed without review"
        elif not matching.review_requested:
            await self.ask_for_review()
            matching.review_requested = True
        while matching.confirmed_by is None:
            await self.send_date_change_notices()
            await self._continue_as_new_if_due()
            await workflow.wait_condition(
                lambda: (
                    matching.confirmed_by is not None
                    or self._history_is_long()
                    or bool(self._s.notices)
                )
            )
        summary = matching.summary  # HR's actions replaced the first proposal
        await workflow.execute_activity_method(
            MatchingActivities.confirm_matches,
            ConfirmMatchesInput(
                program_id=self._definition.id,
                proposal=summary.proposal,
                confirmed_by=matching.confirmed_by,
                at=self._clock.now(),
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            summary="confirm pairs",
        )
        detail = {**summary.model_dump(), "confirmed_by": matching.confirmed_by}
        await self.record("matching", "matching-confirmed", detail=detail)

    async def _run_meetings(self) -> None:
        """Invitations to the joint events, one workflow per pair, reminders; until the end."""
        if not self._s.pairs:
            assert self._s.matching.summary is not None
            await self.open_pairs(
                OpenPairsInput(
                    program_id=self._definition.id,
                    proposal=self._s.matching.summary.proposal,
                    at=self._clock.now(),
                )
            )
            self.skip_passed_event_reminders()
        while True:
            await self.start_pairs(self._continue_as_new_if_due)
            await self.tell_pairs_of_moved_dates(self._continue_as_new_if_due)
            await self.send_calendar()
            now = self._clock.now()
            if now >= self._s.dates.end:
                return
            if await self.send_due_event_reminder(now):
                continue
            # The closing evaluation may open before the end, e.g. at the closing session.
            if await self.evaluation_step(now):
                continue
            await self._sleep_until(
                min(self.next_event_wake_up(), self.next_evaluation_wake_up()),
                "next event reminder, the evaluation or the end",
            )

    async def _run_evaluation(self) -> None:
        """The closing evaluation: invitations, reminders to those who have not answered, close."""
        while not self._s.evaluation.closed:
            now = self._clock.now()
            if await self.evaluation_step(now):
                continue
            closes = self._s.dates.evaluation_closes
            if now >= closes or not timeline.has_evaluation(self._definition):
                self._s.evaluation.closed = True
                await self.record("evaluation", "evaluation-closed")
                return
            await self._sleep_until(self.next_evaluation_wake_up(), "the evaluation closes")

    async def _keep_until_retention_ends(self) -> None:
        """Personal data stays until the retention date, or until HR asks for a purge."""
        assert self._s.purge_at is not None
        while self._s.purge_request is None and self._clock.now() < self._s.purge_at:
            await self._sleep_until(
                self._s.purge_at, "personal data purged", lambda: self._s.purge_request is not None
            )

    async def _purge(self) -> None:
        request = self._s.purge_request or PurgeRequest(reason="the retention period ended")
        self._purged = await workflow.execute_activity_method(
            ReportActivities.purge_personal_data,
            PurgeInput(program_id=self._definition.id, at=self._clock.now(), reason=request.reason),
            start_to_close_timeout=timedelta(minutes=5),
            summary="purge personal data",
        )
        detail = {
            **self._purged.model_dump(),
            "requested_by": request.requested_by,
            "reason": request.reason,
        }
        await self.record("purged", "purged", detail=detail)

    # --- What the applications tell ---------------------------------------------------------

    # Applications of earlier runs tell the program; once it counts in the database (the
    # counts_on_record runs), their word only prompts a count where one is awaited.

    @workflow.signal(name=APPLICATION_APPLIED_SIGNAL)
    def application_applied(self, applied: ApplicationApplied) -> None:
        if self._s.counts_on_record:
            return
        self._s.tally.applied(tally.group_of(applied.organisation_id, applied.profile_id))
        self.describe()

    @workflow.signal(name=APPLICATION_RESULT_SIGNAL)
    def application_result(self, result: ApplicationResult) -> None:
        if self._s.counts_on_record:
            self._answers_in += 1
            return
        group = tally.group_of(result.organisation_id, result.profile_id)
        previous = result.previous.value if result.previous else None
        selection = result.selection.value if result.selection else None
        self._s.tally.decided(group, result.outcome.value, previous=previous, selection=selection)
        self.describe()

    @workflow.signal(name=ANSWERS_IN_SIGNAL)
    def answers_in(self) -> None:
        """An application's answer left none of the program's open: worth counting again."""
        self._answers_in += 1

    @workflow.signal(name=PAIR_CLOSED_SIGNAL)
    def pair_closed(self, closed: PairClosed) -> None:
        """A pair ended, or closed after a withdrawal (its remaining partner may be re-matched)."""
        pair = self._s.pairs.get(closed.pair_id)
        if pair is None:
            return
        pair.status = closed.status
        if closed.withdrawn_id is not None:
            group = pair.mentor_group if closed.withdrawn_id == pair.mentor_id else pair.adept_group
            self._s.tally.decided(group, "withdrawn", previous="approved", selection="accepted")
        self.describe()

    # --- What HR asks ---------------------------------------------------------------------

    @workflow.query
    def status(self) -> ProgramStatus:
        return self.program_status()

    @workflow.update
    async def reschedule(self, request: RescheduleRequest) -> RescheduleResult:
        """Move dates or joint events; the timers follow and the people affected are told."""
        s = self._s
        previous = s.dates
        s.dates = timeline.moved_dates(s.dates, request, s.evaluation)
        moved = [
            n for n in ProgramDates.model_fields if getattr(previous, n) != getattr(s.dates, n)
        ]
        moved += self.move_events(request)
        self._definition = timeline.moved_definition(self._definition, s.dates, s.calendar)
        s.revision += 1
        s.reschedules += 1
        if {"start", "end"} & set(moved):
            s.pairs_to_tell = [i for i, p in s.pairs.items() if p.started and p.status == "active"]
        self.skip_passed_event_reminders()
        self.skip_passed_evaluation_reminders()
        if s.phase is ProgramPhase.APPLICATION_WINDOW:
            self.skip_passed_reminders()
        if s.phase is not ProgramPhase.SCHEDULED:  # the people it concerns hear of it
            change = DateChange(
                revision=s.revision, previous=previous, moved=moved, reason=request.reason
            )
            s.notices.append(change)
        self.publish()
        dates_moved = [n for n in moved if n in ProgramDates.model_fields]
        await self.record(
            "rescheduled",
            f"rescheduled-{s.revision}",
            detail={
                "moved": moved,
                "reason": request.reason,
                "requested_by": request.requested_by,
                **{f"previous_{n}": getattr(previous, n).isoformat() for n in dates_moved},
                **{n: getattr(s.dates, n).isoformat() for n in dates_moved},
                **{f"event_{e}": t.isoformat() for e, t in request.events.items()},
            },
        )
        return RescheduleResult(revision=s.revision, dates=s.dates, moved=moved)

    @reschedule.validator
    def _validate_reschedule(self, request: RescheduleRequest) -> None:
        refuse_personal(requested_by=request.requested_by, reason=request.reason)
        refusal = timeline.reschedule_refusal(self._definition, self._s, request, self._clock.now())
        if refusal is not None:
            raise refuse("invalid", refusal)

    @workflow.update
    async def decide_capacity(self, decision: CapacityDecision) -> CapacityDecisionResult:
        """An organisation's HR decides who of its approved applicants takes part."""
        return await self.decide(decision)

    @decide_capacity.validator
    def _validate_capacity(self, decision: CapacityDecision) -> None:
        refuse_personal(decided_by=decision.decided_by)
        if self._s.phase is not ProgramPhase.AWAITING_HR_DECISION:
            raise refuse("closed", f"closed: HR's capacity decision is not open ({self._s.phase})")
        if self._clock.now() >= self.decision_due():
            raise refuse("closed", "closed: the decision deadline has passed")

    @workflow.update
    async def review_matching(self, request: MatchReviewRequest) -> MatchingSummary:
        """HR's review: lock, forbid, swap or re-run (a new proposal), or confirm."""
        async with self._review_lock:
            matching = self._s.matching
            # Again: an earlier action may have changed things while this one waited.
            refusal = review.refusal(self._s.phase, matching, request)
            if refusal is not None:
                raise refuse(refusal.partition(":")[0], refusal)
            assert matching.summary is not None
            if request.action == "confirm":
                matching.confirmed_by = request.by or "hr"
                return matching.summary
            locks, forbids = review.adjusted(matching, request)
            named = [p for p in review.named_pairs(request) if p is not None]
            proposed = await refused_as_typed(self.propose(locks, forbids, check=named))
            if proposed.conflict is not None:
                raise refuse("conflict", f"conflict: {proposed.conflict}")
            assert proposed.summary is not None
            matching.locks, matching.forbids = locks, forbids
            matching.summary = proposed.summary
            await self.record(
                "matching",
                f"proposal-{proposed.summary.proposal}",
                detail={"action": request.action, "by": request.by},
            )
            self.describe()
            return proposed.summary

    @review_matching.validator
    def _validate_review_request(self, request: MatchReviewRequest) -> None:
        refuse_personal(by=request.by)
        refusal = review.refusal(self._s.phase, self._s.matching, request)
        if refusal is not None:
            raise refuse(refusal.partition(":")[0], refusal)

    @workflow.update
    async def rematch(self, request: RematchRequest) -> str:
        """HR pairs the remaining participant of a closed pair with someone from the wait-list.

        Returns the new pair's id; its workflow starts and introduces the two,
        and both get the upcoming joint events in their calendars.
        """
        checked: RematchCheckResult = await refused_as_typed(
            workflow.execute_activity_method(
                PairActivities.check_rematch,
                RematchCheckInput(
                    program_id=self._definition.id,
                    remaining_id=request.remaining_id,
                    partner_id=request.partner_id,
                ),
                start_to_close_timeout=RECORD_TIMEOUT,
                summary="check the re-match",
            )
        )
        if not checked.partner_accepted:  # a wait-listed applicant takes the place
            await refused_as_typed(
                self.accept_from_wait_list(
                    request.partner_id, checked.partner_organisation, request.by
                )
            )
        pair = PairRef(mentor_id=checked.mentor_id, adept_id=checked.adept_id)
        [pair_id] = await self.open_pairs(
            OpenPairsInput(program_id=self._definition.id, pairs=[pair], at=self._clock.now())
        )
        self._s.pairs[pair_id].rematch = True  # its workflow introduces the two
        for entry in self._s.calendar.values():
            # The newcomer gets the current version; the ledger skips everyone else.
            if not entry.cancelled and entry.sent_sequence is not None:
                entry.sent_sequence = None
        # Wakes the loop, which starts the pair (it introduces the two) and sends the invitations.
        self._s.revision += 1
        await self.record(
            "pair",
            f"rematch-{pair_id}",
            detail={"pair": pair_id, "remaining": request.remaining_id, "by": request.by},
        )
        return pair_id

    @rematch.validator
    def _validate_rematch(self, request: RematchRequest) -> None:
        refuse_personal(by=request.by)
        if self._s.phase is not ProgramPhase.RUNNING:
            raise refuse(
                "closed", f"closed: pairs are re-matched while the program runs ({self._s.phase})"
            )

    @workflow.update
    async def purge(self, request: PurgeRequest) -> PurgeResult:
        """HR purges a completed program's personal data now, before the retention date."""
        self._s.purge_request = request
        await workflow.wait_condition(lambda: self._purged is not None)
        assert self._purged is not None
        return self._purged

    @purge.validator
    def _validate_purge(self, request: PurgeRequest) -> None:
        refuse_personal(requested_by=request.requested_by, reason=request.reason)
        if self._s.phase is not ProgramPhase.COMPLETED:
            raise refuse(
                "closed",
                f"the program is {self._s.phase.value}; personal data is purged once it has"
                " completed (its report made)",
            )

    # --- Time and history ------------------------------------------------------------------

    async def _enter(self, phase: ProgramPhase) -> None:
        self._s.phase = phase
        self.publish()
        workflow.logger.info("program %s entered %s", self._definition.id, phase.value)
        await self.record("phase", f"phase-{phase.value}")

    async def _sleep_until(
        self, moment: datetime, summary: str, unless: Callable[[], bool] = lambda: False
    ) -> None:
        """Sleep until ``moment``, a date moves, or ``unless()``; then the caller re-plans.

        Continues as new first if the history is long; tells the people concerned of
        a move, and brings the next deadline shown in the UI up to date, before every sleep.
        """
        await self.send_date_change_notices()
        await self._continue_as_new_if_due()
        self.publish()
        revision = self._s.revision
        await self._clock.sleep_until(
            moment,
            lambda: self._s.revision != revision or self._history_is_long() or unless(),
            summary,
        )

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            # Far below Temporal's 10,240-event warning (ProgramInput's default: 4,000).
            or info.get_current_history_length() >= self._continue_as_new_after
        )

    async def _continue_as_new_if_due(self) -> None:
        if not self._history_is_long():
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            ProgramInput(
                definition=self._definition,
                state=self._s,
                continue_as_new_after=self._continue_as_new_after,
            )
        )
