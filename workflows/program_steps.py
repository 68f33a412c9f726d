"""The steps a program takes: its emails, records, reminders, pairs and calendar.

``ProgramWorkflow`` (workflows/program.py) decides when; these say how. Each
reads and changes the program's one held state (``self._s``, a ProgramState)
and calls activities with ids, dates and counts only (mentorflow.people).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    # pydantic imports email_validator lazily when it first validates an EmailStr
    # (in the definition); importing it here passes it through the sandbox once.
    import email_validator  # noqa: F401

    from activities.applications import ApplicationControlActivities, ApplicationRecordActivities
    from activities.email import EmailActivities
    from activities.matching import MatchingActivities
    from activities.pairs import PairActivities
    from activities.records import ProgramRecordActivities
    from activities.reports import ReportActivities
    from mentorflow import people, reminders, timeline
    from mentorflow import search_attributes as sa
    from mentorflow.definition import ProgramDefinition, Role
    from mentorflow.models import (
        NEXT_STEP,
        CalendarEmailInput,
        CalendarEmailKind,
        CalendarEntry,
        CapacityDecision,
        CapacityDecisionResult,
        CapacityRow,
        CloseApplicationsInput,
        DeliveryCounts,
        EmailBatch,
        EmailFacts,
        EmailTemplate,
        EvaluationEmailInput,
        EventKind,
        LinkRequest,
        OpenPairsInput,
        OpenPairsResult,
        OrganisationDecision,
        OutcomeNoticesInput,
        PairDates,
        PairEntry,
        PairInput,
        PairRef,
        ProgramApplications,
        ProgramPhase,
        ProgramState,
        ProgramStatus,
        ProposeMatchesInput,
        ProposeMatchesResult,
        RecordEventInput,
        RegisterProgramInput,
        ReportInput,
        RescheduleRequest,
        Selection,
        SelectionDecisionInput,
        SelectionsRecorded,
        UndecidedCount,
        pair_workflow_id,
        participant_task_queue,
    )
    from mentorflow.refusals import KINDS, refuse
    from workflows.options import EMAIL_RETRY, RECORD_TIMEOUT
    from workflows.pair import PairWorkflow
    from workflows.timers import Clock

Checkpoint = Callable[[], Awaitable[None]]

# The program counts its applications in the database when a phase needs them; runs
# from before it were told by the applications' signals (docs/upgrades.md). Asked where
# a run first needs the counts, so that runs already under way take it from there.
TALLY_ON_RECORD = "program-tally-on-record"
# Outcome notices go out in one batch per organisation, side by side: one batch of
# 2,000 emails, sent one after another, kept a program of 1,000 applicants from
# "running" for half a minute. Runs from before send one batch.
NOTICES_BY_ORGANISATION = "program-notices-by-organisation"


class ProgramSteps:
    _definition: ProgramDefinition
    _s: ProgramState
    _clock: Clock
    _published: tuple[str, datetime | None] | None

    # --- What the program shows ---------------------------------------------------------

    def next_deadline(self) -> tuple[datetime | None, str | None]:
        return timeline.next_deadline(self._definition, self._s, self._clock.now())

    def publish(self) -> None:
        """Keep the Temporal UI's view current: search attributes when they change (each
        change is a history event), details always (none)."""
        deadline, _ = self.next_deadline()
        shown = (self._s.phase.value, deadline)
        if shown != self._published:
            self._published = shown
            workflow.upsert_search_attributes(
                [
                    sa.PROGRAM_PHASE.value_set(self._s.phase.value),
                    sa.NEXT_DEADLINE.value_set(deadline)
                    if deadline
                    else sa.NEXT_DEADLINE.value_unset(),
                ]
            )
        self.describe()

    def describe(self) -> None:
        """The UI's "current details": phase, next deadline, live counts."""
        deadline, label = self.next_deadline()
        details = f"**Phase:** {self._s.phase.value}"
        if deadline and label:
            details += f"  \n**Next:** {label} at {deadline.isoformat()}"
        totals = self._s.tally.totals()
        if totals["applied"]:
            details += "  \n**Applications:** " + ", ".join(f"{k}: {v}" for k, v in totals.items())
        if self._s.report is not None:
            r = self._s.report
            details += (
                f"  \n**Report:** matched {r.matched}, completed {r.completed},"
                f" withdrew {r.withdrawn}; evaluation {r.responses}/{r.invited} answered"
            )
        workflow.set_current_details(details)

    def program_status(self) -> ProgramStatus:
        s = self._s
        deadline, label = self.next_deadline()
        pairs = [p.status for p in s.pairs.values()]
        return ProgramStatus(
            program_id=self._definition.id,
            name=self._definition.name,
            phase=s.phase,
            next_step=NEXT_STEP[s.phase],
            next_deadline=deadline,
            next_deadline_label=label,
            timezone=self._definition.timezone,
            language=self._definition.language,
            revision=s.revision,
            dates=s.dates,
            counts={
                "announcement_recipients": s.announced_to,
                "reminders_sent": s.reminders_sent,
                "reschedules": s.reschedules,
                **s.tally.totals(),
            },
            applications=s.tally.breakdown(),
            decisions=s.decisions,
            undecided=self.undecided() if s.phase is ProgramPhase.AWAITING_HR_DECISION else [],
            matching=s.matching.summary,
            confirmed_by=s.matching.confirmed_by,
            calendar=list(s.calendar.values()),
            pairs={k: pairs.count(k) for k in ("active", "closed", "ended") if k in pairs},
            evaluation=s.evaluation,
            report=s.report,
            purge_at=s.purge_at,
        )

    # --- The application window ---------------------------------------------------------

    async def announce(self) -> None:
        self.skip_passed_reminders()
        recipients = list(self._definition.announcement.recipients)
        if recipients:
            await self.email("announcement", "announcement", "1", recipients)
            self._s.announced_to = len(recipients)

    def _reminder_plan(self) -> list[reminders.Reminder]:
        before = self._definition.application.reminders_before_deadline
        return reminders.plan(self._s.dates.deadline, before, prefix="reminder-")

    def skip_passed_reminders(self) -> None:
        """A reminder whose time passed before the deadline was set is not sent late."""
        passed = reminders.passed(self._reminder_plan(), self._clock.now(), ())
        self._s.reminders_done.update(passed)

    def next_reminder(self) -> datetime:
        plan = self._reminder_plan()
        return reminders.next_wake_up(plan, self._s.reminders_done, self._s.dates.deadline)

    async def send_due_reminder(self, now: datetime) -> bool:
        due = reminders.due(self._reminder_plan(), now, self._s.reminders_done)
        if due is None:
            return False
        self._s.reminders_done.add(due.key)
        recipients = list(self._definition.announcement.recipients)
        if recipients:
            step, _, revision = due.key.partition("@")
            await self.email("reminder", step, revision, recipients, time_left=due.before)
            self._s.reminders_sent += 1
        await self.record("reminder", due.key, detail={"recipients": len(recipients)})
        return True

    async def send_date_change_notices(self) -> None:
        """A moved deadline, start or end, with HR's reason, to the people it concerns:
        in the window, those told of the program; after it, also everyone still in it
        (applicants waiting or approved, the participants of its pairs) and its HR."""
        while self._s.notices:
            change = self._s.notices.pop(0)
            if not {"deadline", "start", "end"} & set(change.moved):
                continue  # joint events: their updated invitations say it
            d = self._definition
            recipients = list(d.announcement.recipients)
            applicants: list[str] = []
            if self._s.phase is not ProgramPhase.APPLICATION_WINDOW:
                recipients += [c.email for c in d.coordinators()]
                recipients += [c.email for o in d.organisations for c in o.hr_contacts]
                recipients += [
                    people.applicant(member)
                    for pair in self._s.pairs.values()
                    if pair.started and pair.status == "active"
                    for member in (pair.mentor_id, pair.adept_id)
                ]
                if not self._s.pairs:
                    applicants = ["awaiting_approval", "escalated", "approved"]
            if not recipients and not applicants:
                continue
            previous = change.previous
            await self.email(
                "dates_changed",
                "dates-changed",
                str(change.revision),
                list(dict.fromkeys(recipients)),
                previous_deadline=previous.deadline if "deadline" in change.moved else None,
                previous_start=previous.start if "start" in change.moved else None,
                previous_end=previous.end if "end" in change.moved else None,
                reason=change.reason,
                applicants=applicants,
            )

    # --- Approvals and HR's capacity decision ---------------------------------------------

    def approvals_due(self) -> datetime:
        return timeline.approvals_due(self._definition, self._s.dates)

    def decision_due(self) -> datetime:
        return timeline.decision_due(self._definition, self._s.dates)

    async def report_to_hr(self) -> None:
        """Make the report, keep it, and send its link to the program's coordinators."""
        # Pairs end on their own at the end date; the report counts them once they have
        # (but a pair that cannot finish does not hold the report up for long).
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(
                lambda: not any(p.started and p.status == "active" for p in self._s.pairs.values()),
                timeout=timedelta(hours=1),
                timeout_summary="pairs end",
            )
        if self._s.report is None:
            self._s.report = await workflow.execute_activity_method(
                ReportActivities.make_report,
                ReportInput(program_id=self._definition.id, at=self._clock.now()),
                start_to_close_timeout=timedelta(minutes=5),
                summary="make the program report",
            )
        retention = self._definition.retention.personal_data_after_end
        self._s.purge_at = max(self._s.dates.end + retention, self._clock.now())
        if not self._s.evaluation.report_sent:
            await self.send_report_link(retention)
            self._s.evaluation.report_sent = True
        await self.record("report", "report", detail=self._s.report.model_dump(mode="json"))

    async def undecided_on_record(self) -> int:
        """Applications the database still has without an answer (runs from before
        ``count_applications``: they were told of the rest by signal)."""
        counted: UndecidedCount = await workflow.execute_activity_method(
            ApplicationRecordActivities.undecided_applications,
            ProgramApplications(program_id=self._definition.id),
            start_to_close_timeout=RECORD_TIMEOUT,
            summary="applications without an answer",
        )
        return counted.undecided

    def counting_on_record(self) -> bool:
        """Whether this run counts the applications in the database (TALLY_ON_RECORD).
        Asked where a run first needs the counts, never in the window, so that a run
        already under way when this came takes it from its deadline on."""
        if workflow.patched(TALLY_ON_RECORD):
            self._s.counts_on_record = True
        return self._s.counts_on_record

    async def count_applications(self) -> None:
        """The tally as the database has it: applications send the program nothing, so
        thousands of them cost it one activity whenever a phase needs their counts."""
        self._s.tally = await workflow.execute_activity_method(
            ApplicationRecordActivities.tally_on_record,
            ProgramApplications(program_id=self._definition.id),
            start_to_close_timeout=RECORD_TIMEOUT,
            summary="count the applications",
        )
        self.describe()

    def undecided(self) -> list[str]:
        """Organisations with approved applicants and no decision yet."""
        return [
            o.id
            for o in self._definition.organisations
            if o.id not in self._s.decisions and self._s.tally.count("approved", o.id)
        ]

    def _capacity_reminder_plan(self) -> list[reminders.Reminder]:
        before = self._definition.capacity.reminders_before_decision
        return reminders.plan(self.decision_due(), before, prefix="capacity-reminder-")

    def skip_passed_capacity_reminders(self) -> None:
        passed = reminders.passed(self._capacity_reminder_plan(), self._clock.now(), ())
        self._s.reminders_done.update(passed)

    def next_capacity_wake_up(self) -> datetime:
        plan = self._capacity_reminder_plan()
        return reminders.next_wake_up(plan, self._s.reminders_done, self.decision_due())

    async def send_due_capacity_reminder(self, now: datetime) -> bool:
        due = reminders.due(self._capacity_reminder_plan(), now, self._s.reminders_done)
        if due is None:
            return False
        self._s.reminders_done.add(due.key)
        if self.counting_on_record():
            await self.count_applications()  # an approved applicant may have withdrawn
        await self.ask_for_capacity_decisions(reminder_key=due.key)
        return True

    async def ask_for_capacity_decisions(self, reminder_key: str | None) -> None:
        """Each undecided organisation's HR gets its summary and a link to decide."""
        undecided = self.undecided()
        for organisation in self._definition.organisations:
            if organisation.id not in undecided:
                continue
            approved = self._s.tally.approved_by_profile(organisation.id)
            rows = [
                CapacityRow(
                    profile_title=profile.title,
                    approved=approved.get(profile.id, 0),
                    cap=self._definition.cap(organisation.id, profile.id),
                )
                for profile in self._definition.profiles
            ]
            await self.email(
                "capacity_request",
                f"capacity-request/{organisation.id}",
                reminder_key or "1",
                [c.email for c in organisation.hr_contacts],
                facts=self.facts().model_copy(
                    update={
                        "organisation_name": organisation.name,
                        "capacity_rows": rows,
                        "decide_by": self.decision_due(),
                        "reminder": reminder_key is not None,
                    }
                ),
                links=[
                    LinkRequest(
                        name="decide_url",
                        purpose="capacity",
                        application_id=organisation.id,
                        expires_at=self.decision_due(),
                        path="/c/",
                    )
                ],
            )

    async def decide(
        self, decision: CapacityDecision, policy: str | None = None
    ) -> CapacityDecisionResult:
        """Record the decision (checked against the database), count it, wake the phase."""
        recorded: SelectionsRecorded = await refused_as_typed(
            workflow.execute_activity_method(
                MatchingActivities.decide_selections,
                SelectionDecisionInput(
                    program_id=self._definition.id,
                    organisation_id=decision.organisation_id,
                    selections=decision.selections,
                    policy=policy,
                    decided_by=decision.decided_by,
                    channel=decision.channel,
                    at=self._clock.now(),
                ),
                start_to_close_timeout=RECORD_TIMEOUT,
                summary=f"record capacity decision of {decision.organisation_id}",
            )
        )
        for group, counts in recorded.changes.items():
            self._s.tally.set_selections(group, counts)
        self._s.decisions[decision.organisation_id] = OrganisationDecision(
            decided_by=decision.decided_by or decision.channel, channel=decision.channel
        )
        result = CapacityDecisionResult(
            organisation_id=decision.organisation_id,
            accepted=recorded.accepted,
            waitlisted=recorded.waitlisted,
            declined=recorded.declined,
        )
        self._s.revision += 1  # wakes the phase, which moves on once every organisation decided
        await self.record(
            "capacity",
            f"capacity-{decision.organisation_id}-{self._s.revision}",
            detail={**result.model_dump(), "channel": decision.channel},
        )
        self.describe()
        return result

    async def accept_from_wait_list(
        self, application_id: str, organisation_id: str, by: str
    ) -> None:
        """A wait-listed applicant takes a place that opened up (checked by the activity)."""
        recorded: SelectionsRecorded = await workflow.execute_activity_method(
            MatchingActivities.decide_selections,
            SelectionDecisionInput(
                program_id=self._definition.id,
                organisation_id=organisation_id,
                selections={application_id: Selection.ACCEPTED},
                decided_by=by,
                channel="rematch",
                at=self._clock.now(),
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            summary="accept from the wait-list",
        )
        for group, counts in recorded.changes.items():
            self._s.tally.set_selections(group, counts)

    # --- Matching ------------------------------------------------------------------------

    async def propose(
        self, locks: list[PairRef], forbids: list[PairRef], check: list[PairRef] | None = None
    ) -> ProposeMatchesResult:
        """Run the matcher; a proposal refused for a conflict does not use up a number."""
        number = self._s.matching.proposals + 1
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
                check_accepted=check or [],
                at=self._clock.now(),
            ),
            # Thousands of candidates: a matrix of millions of pairs takes seconds.
            start_to_close_timeout=timedelta(minutes=10),
            summary=f"propose pairs (proposal {number})",
        )
        if result.conflict is None:
            self._s.matching.proposals = number
        return result

    async def ask_for_review(self) -> None:
        summary = self._s.matching.summary
        assert summary is not None
        await self.email(
            "match_review",
            "match-review",
            "1",
            [c.email for c in self._definition.coordinators()],
            facts=self.facts().model_copy(
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
                    expires_at=self._s.dates.start,
                    path="/r/",
                )
            ],
        )

    async def notify_outcomes(self) -> None:
        """Pair introductions, kind words to the others, and their managers informed."""
        summary = self._s.matching.summary
        assert summary is not None
        d = self._definition
        kickoff = d.schedule.kickoff
        facts = self.facts().model_copy(
            update={
                "introduction": d.matching.introduction,
                "kickoff_title": kickoff.title if kickoff else None,
                "kickoff_starts": kickoff.starts if kickoff else None,
                "kickoff_place": (kickoff.place or kickoff.online_url) if kickoff else None,
            }
        )
        emails = 2 * self._s.tally.count("applied")
        notices = OutcomeNoticesInput(
            program_id=d.id,
            proposal=summary.proposal,
            facts=facts,
            profile_titles={p.id: p.title for p in d.profiles},
            organisation_names={o.id: o.name for o in d.organisations},
        )
        parts = [notices]
        if workflow.patched(NOTICES_BY_ORGANISATION):
            parts = [notices.model_copy(update={"organisation_id": o.id}) for o in d.organisations]

        async def send(part: OutcomeNoticesInput) -> DeliveryCounts:
            return await workflow.execute_activity_method(
                EmailActivities.send_outcome_notices,
                part,
                start_to_close_timeout=timedelta(seconds=120 + emails),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=EMAIL_RETRY,
                summary=f"outcome notices (proposal {summary.proposal})"
                + (f", {part.organisation_id}" if part.organisation_id else ""),
            )

        result = DeliveryCounts.total(list(await asyncio.gather(*(send(p) for p in parts))))
        self._s.matching.notified = True
        await self.record("notified", "outcome-notices", detail=result.model_dump())

    # --- Pairs ---------------------------------------------------------------------------

    async def open_pairs(self, request: OpenPairsInput) -> list[str]:
        """Record pairs as running (once) and track them; their workflows start next."""
        opened: OpenPairsResult = await workflow.execute_activity_method(
            PairActivities.open_pairs,
            request,
            start_to_close_timeout=RECORD_TIMEOUT,
            summary="open pairs" if request.proposal else "open a re-matched pair",
        )
        for pair in opened.pairs:
            self._s.pairs.setdefault(
                pair.pair_id,
                PairEntry(
                    mentor_id=pair.mentor_id,
                    adept_id=pair.adept_id,
                    mentor_group=pair.mentor_group,
                    adept_group=pair.adept_group,
                ),
            )
        return [pair.pair_id for pair in opened.pairs]

    async def start_pairs(self, checkpoint: Checkpoint) -> None:
        """One child workflow per pair, abandoned on close so the program can continue as new."""
        for pair_id, pair in list(self._s.pairs.items()):  # a re-match may add one meanwhile
            if pair.started or pair.status != "active":
                continue
            d = self._definition
            await workflow.start_child_workflow(
                PairWorkflow.run,
                PairInput(
                    program_id=d.id,
                    pair_id=pair_id,
                    mentor_id=pair.mentor_id,
                    adept_id=pair.adept_id,
                    start=self._s.dates.start,
                    end=self._s.dates.end,
                    meetings=d.meetings,
                    facts=self.facts().model_copy(update={"introduction": d.matching.introduction}),
                    hr=[c.email for c in d.coordinators()],
                    introduce=pair.rematch,
                ),
                id=pair_workflow_id(d.id, pair_id),
                task_queue=participant_task_queue(workflow.info().task_queue),
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=TypedSearchAttributes([SearchAttributePair(sa.PROGRAM_ID, d.id)]),
                static_summary=f"pair in {d.id}",
            )
            pair.started = True
            await checkpoint()  # thousands of pairs: keep the history short

    async def tell_pairs_of_moved_dates(self, checkpoint: Checkpoint) -> None:
        while self._s.pairs_to_tell:
            pair_id = self._s.pairs_to_tell[0]
            # Best effort: a pair that has already closed needs no new dates.
            with contextlib.suppress(Exception):
                await workflow.get_external_workflow_handle(
                    pair_workflow_id(self._definition.id, pair_id)
                ).signal(
                    PairWorkflow.dates_changed,
                    PairDates(start=self._s.dates.start, end=self._s.dates.end),
                )
            self._s.pairs_to_tell.pop(0)
            await checkpoint()

    # --- Joint events ---------------------------------------------------------------------

    def move_events(self, request: RescheduleRequest) -> list[str]:
        """Move and cancel joint events; calendars that hold one must replace it."""
        moved = []
        for event_id, starts in request.events.items():
            entry = self._s.calendar[event_id]
            if entry.event.starts == starts:
                continue
            if entry.sent_sequence == entry.sequence:  # the time calendars hold now
                entry.previous_starts = entry.event.starts
            entry.event = entry.event.model_copy(update={"starts": starts})
            if entry.sent_sequence is not None:
                entry.sequence += 1
            entry.reminders_done = []
            moved.append(f"event:{event_id}")
        for event_id in request.cancel_events:
            entry = self._s.calendar[event_id]
            entry.cancelled = True
            if entry.sent_sequence is not None:
                entry.sequence += 1
            else:  # nobody has it in their calendar: nothing to take back
                entry.sent_sequence = entry.sequence
            moved.append(f"cancelled:{event_id}")
        return moved

    async def send_calendar(self) -> None:
        """Each event's current version to every participant who does not have it yet."""
        for entry in self._s.calendar.values():
            if entry.sent_sequence == entry.sequence:
                continue
            if entry.event.starts <= self._clock.now() and not entry.cancelled:
                entry.sent_sequence = entry.sequence  # past: no invitation is useful now
                continue
            sequence = entry.sequence
            await self._calendar_email(entry, "invitation")
            entry.sent_sequence = sequence
            await self.record(
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
        attendees = 2 * len(self._s.pairs)
        result = await workflow.execute_activity_method(
            EmailActivities.send_calendar_emails,
            CalendarEmailInput(
                program_id=d.id,
                entry=entry,
                kind=kind,
                facts=self.facts(),
                organizer=d.coordinators()[0],
                reminder_key=reminder_key,
                time_left=time_left,
                at=self._clock.now(),
            ),
            start_to_close_timeout=timedelta(seconds=120 + 2 * attendees),
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
            for entry in self._s.calendar.values()
            if not entry.cancelled
        ]

    def skip_passed_event_reminders(self) -> None:
        now = self._clock.now()
        for entry, plan in self._event_reminder_plans():
            entry.reminders_done += reminders.passed(plan, now, entry.reminders_done)

    async def send_due_event_reminder(self, now: datetime) -> bool:
        for entry, plan in self._event_reminder_plans():
            due = reminders.due(plan, now, entry.reminders_done)
            if due is not None:
                entry.reminders_done.append(due.key)
                await self._calendar_email(entry, "reminder", due.key.partition("@")[0], due.before)
                return True
        return False

    def next_event_wake_up(self) -> datetime:
        end = self._s.dates.end
        return min(
            [
                reminders.next_wake_up(plan, entry.reminders_done, end)
                for entry, plan in self._event_reminder_plans()
            ],
            default=end,
        )

    # --- The closing evaluation ------------------------------------------------------------

    def _evaluation_reminder_plan(self) -> list[reminders.Reminder]:
        before = self._definition.evaluation.reminders_before_close
        return reminders.plan(self._s.dates.evaluation_closes, before)

    def skip_passed_evaluation_reminders(self) -> None:
        """A reminder whose time passed before the survey opened (or moved) is not sent late."""
        done = self._s.evaluation.reminders_done
        done += reminders.passed(self._evaluation_reminder_plan(), self._clock.now(), done)

    async def evaluation_step(self, now: datetime) -> bool:
        """Open the evaluation, or send a reminder, if one is due; whether one was."""
        evaluation = self._s.evaluation
        if not timeline.has_evaluation(self._definition) or evaluation.closed:
            return False
        if evaluation.invited is None:
            if now < self._s.dates.evaluation_opens:
                return False
            self.skip_passed_evaluation_reminders()
            evaluation.invited = await self._evaluation_email("invitation")
            await self.record(
                "evaluation",
                "evaluation-opened",
                detail={
                    "invited": evaluation.invited,
                    "evaluation_closes": self._s.dates.evaluation_closes.isoformat(),
                },
            )
            self.publish()
            return True
        due = reminders.due(self._evaluation_reminder_plan(), now, evaluation.reminders_done)
        if due is None:
            return False
        evaluation.reminders_done.append(due.key)
        await self._evaluation_email("reminder", due.key, due.before)
        return True

    def next_evaluation_wake_up(self) -> datetime:
        closes, end = self._s.dates.evaluation_closes, self._s.dates.end
        evaluation = self._s.evaluation
        if (
            not timeline.has_evaluation(self._definition)
            or evaluation.closed
            or self._clock.now() >= closes
        ):
            # Nothing to wake for before the end: the evaluation is closed after it. (Waking
            # for a close that passed while pairs still meet would never wait: the loop spun
            # until the SDK's deadlock detector failed the task.)
            return max(closes, end)
        if evaluation.invited is None:
            return self._s.dates.evaluation_opens
        plan = self._evaluation_reminder_plan()
        return reminders.next_wake_up(plan, evaluation.reminders_done, closes)

    async def _evaluation_email(
        self,
        kind: Literal["invitation", "reminder"],
        key: str = "",
        time_left: timedelta | None = None,
    ) -> int:
        attendees = 2 * len(self._s.pairs)
        result = await workflow.execute_activity_method(
            EmailActivities.send_evaluation_emails,
            EvaluationEmailInput(
                program_id=self._definition.id,
                kind=kind,
                reminder_key=key.partition("@")[0],
                facts=self.facts(),
                closes=self._s.dates.evaluation_closes,
                time_left=time_left,
            ),
            start_to_close_timeout=timedelta(seconds=120 + 2 * attendees),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=EMAIL_RETRY,
            summary=f"closing evaluation: {kind}",
        )
        return result.invited

    # --- The report and the end -------------------------------------------------------------

    async def send_report_link(self, retention: timedelta) -> None:
        assert self._s.purge_at is not None and self._s.report is not None
        link = LinkRequest(
            name="report_url",
            purpose="report",
            application_id=self._definition.id,
            expires_at=self._s.purge_at + retention,
            path="/report/",
        )
        facts = self.facts().model_copy(
            update={"report": self._s.report, "purge_at": self._s.purge_at}
        )
        coordinators = [str(c.email) for c in self._definition.coordinators()]
        await self.email("program_report", "report", "1", coordinators, facts=facts, links=[link])

    async def close_as_cancelled(self) -> None:
        announced = self._s.phase is not ProgramPhase.SCHEDULED
        self._s.phase = ProgramPhase.CANCELLED
        self.publish()
        await self.record("cancelled", "cancelled")
        if self.counting_on_record() or self._s.tally.count("applied"):
            # Applications still open (awaiting an answer, or approved and free to
            # withdraw) take no answer from now on; the database knows which they are.
            await workflow.execute_activity_method(
                ApplicationControlActivities.close_applications,
                CloseApplicationsInput(program_id=self._definition.id),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=60),
                summary="close the open applications",
            )
        # Running pairs stop, and the joint events leave the participants' calendars.
        for pair_id, pair in self._s.pairs.items():
            if pair.started and pair.status == "active":
                with contextlib.suppress(Exception):
                    await workflow.get_external_workflow_handle(
                        pair_workflow_id(self._definition.id, pair_id)
                    ).cancel()
        for event in self._s.calendar.values():
            if event.sent_sequence is None:  # never sent: nothing to take back
                event.sent_sequence = event.sequence
            elif not event.cancelled:
                event.cancelled, event.sequence = True, event.sequence + 1
        await self.send_calendar()
        if announced:
            # Once each (the ledger's key holds the address): those told of the program,
            # its HR contacts, and the participants of its pairs. Applicants and managers
            # of open applications hear it from their application.
            d = self._definition
            recipients = [
                *d.announcement.recipients,
                *(c.email for c in d.coordinators()),
                *(c.email for o in d.organisations for c in o.hr_contacts),
                *(
                    people.applicant(member)
                    for pair in self._s.pairs.values()
                    if pair.started and pair.status == "active"
                    for member in (pair.mentor_id, pair.adept_id)
                ),
            ]
            await self.email("cancelled", "cancelled", "1", list(dict.fromkeys(recipients)))

    # --- Activities -----------------------------------------------------------------------

    async def register(self) -> None:
        deadline, _ = self.next_deadline()
        await workflow.execute_activity_method(
            ProgramRecordActivities.register_program,
            RegisterProgramInput(
                program_id=self._definition.id,
                workflow_id=workflow.info().workflow_id,
                name=self._definition.name,
                phase=self._s.phase,
                revision=self._s.revision,
                next_deadline=deadline,
                at=self._clock.now(),
                dates=self._s.dates,
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            summary="register program",
        )

    async def record(
        self, kind: EventKind, key: str, detail: dict[str, object] | None = None
    ) -> None:
        deadline, _ = self.next_deadline()
        await workflow.execute_activity_method(
            ProgramRecordActivities.record_event,
            RecordEventInput(
                program_id=self._definition.id,
                key=key,
                kind=kind,
                phase=self._s.phase,
                revision=self._s.revision,
                at=self._clock.now(),
                next_deadline=deadline,
                detail=detail or {},
                dates=self._s.dates,
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            summary=f"record {key}",
        )

    def facts(self) -> EmailFacts:
        return timeline.facts(self._definition, self._s.dates)

    async def email(
        self,
        template: EmailTemplate,
        step: str,
        revision: str,
        recipients: list[str],
        *,
        time_left: timedelta | None = None,
        previous_deadline: datetime | None = None,
        previous_start: datetime | None = None,
        previous_end: datetime | None = None,
        reason: str = "",
        facts: EmailFacts | None = None,
        links: list[LinkRequest] | None = None,
        applicants: list[str] | None = None,
    ) -> None:
        facts = (facts or self.facts()).model_copy(
            update={
                "previous_deadline": previous_deadline,
                "previous_start": previous_start,
                "previous_end": previous_end,
                "time_left": time_left,
                "reason": reason,
            }
        )
        result = await workflow.execute_activity_method(
            EmailActivities.send_email_batch,
            EmailBatch(
                program_id=self._definition.id,
                step=step,
                revision=revision,
                template=template,
                recipients=recipients,
                facts=facts,
                links=links or [],
                applicants=applicants or [],
            ),
            # The applicants it adds are read when it runs: allow for every one who applied.
            start_to_close_timeout=timedelta(
                seconds=60
                + 5 * (len(recipients) + (self._s.tally.count("applied") if applicants else 0))
            ),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=EMAIL_RETRY,
            summary=f"{template} to {len(recipients)} recipient(s)",
        )
        for rejected in result.rejected:
            # Never fail the program over one bad address; it is recorded in the
            # ledger and shown here for ops.
            workflow.logger.warning("%s email refused: %s", template, rejected.reason)


def refuse_personal(**values: str) -> None:
    """Who acted and why reach a workflow as references and note keys, never as people
    (mentorflow.people): the history would keep them past every purge."""
    for field, value in values.items():
        if not people.may_be_carried(value):
            raise refuse(
                "personal_data",
                f"personal_data: {field} must be a note's key or a reference, not a name,"
                " an address or free text (save the text with Store.save_note)",
            )


T = TypeVar("T")


async def refused_as_typed(step: Awaitable[T]) -> T:
    """Await an activity whose refusal (a typed, non-retryable ApplicationError) must reach
    the update's caller as the same refusal, not as a failed activity."""
    try:
        return await step
    except ActivityError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError) and cause.type in KINDS:
            raise refuse(cause.type, cause.message) from None
        raise
