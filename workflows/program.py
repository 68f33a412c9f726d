"""ProgramWorkflow: the life of one mentorship program, as durable state.

Read ``run`` for the lifecycle. Every date is state, not a sleep: the workflow
waits for "the current value of the date, or a change to it" (the updatable
timer pattern), so ``reschedule`` moves a date and the waiting simply re-plans.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    # pydantic imports email_validator lazily when it first validates an EmailStr
    # (in the definition); importing it here passes it through the sandbox once.
    import email_validator  # noqa: F401

    from activities.email import EmailActivities
    from activities.records import ProgramRecordActivities
    from mentorflow import search_attributes as sa
    from mentorflow.definition import consistency_problems
    from mentorflow.models import (
        NEXT_STEP,
        ApplicationEntry,
        ApplicationInput,
        ApplicationOutcome,
        ApplicationReceipt,
        ApplicationResult,
        ApplicationSubmission,
        DateChange,
        EmailBatch,
        EmailFacts,
        EmailTemplate,
        EventKind,
        ProgramDates,
        ProgramInput,
        ProgramPhase,
        ProgramResult,
        ProgramState,
        ProgramStatus,
        RecordEventInput,
        RegisterProgramInput,
        RescheduleRequest,
        RescheduleResult,
        application_workflow_id,
        program_dates,
    )
    from workflows.application import APPLICATION_RESULT_SIGNAL, ApplicationWorkflow
    from workflows.options import EMAIL_RETRY, RECORD_TIMEOUT


@workflow.defn
class ProgramWorkflow:
    @workflow.init
    def __init__(self, input: ProgramInput) -> None:
        self._definition = input.definition
        self._dates = program_dates(input.definition)
        self._phase = ProgramPhase.SCHEDULED
        self._revision = 0
        self._reminders_done: set[str] = set()
        self._reminders_sent = 0
        self._announced_to = 0
        self._reschedules = 0
        self._notices: list[DateChange] = []  # moves not yet told to the people announced to
        self._applications: dict[str, ApplicationEntry] = {}
        if input.state is not None:  # continued as new: pick up where the last run was
            state = input.state
            self._phase, self._revision, self._dates = state.phase, state.revision, state.dates
            self._reminders_done = set(state.reminders_done)
            self._reminders_sent = state.reminders_sent
            self._announced_to = state.announced_to
            self._reschedules = state.reschedules
            self._applications = dict(state.applications)
            self._notices = list(state.notices)
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
                while workflow.now() < self._dates.opens:
                    await self._sleep_until(self._dates.opens, "application window opens")
                await self._open_application_window()
            if self._phase is ProgramPhase.APPLICATION_WINDOW:
                await self._run_application_window()
                await self._enter(ProgramPhase.AWAITING_APPROVALS)
            if self._phase is ProgramPhase.AWAITING_APPROVALS:
                await self._await_approvals()
                await self._enter(ProgramPhase.AWAITING_HR_DECISION)
        except asyncio.CancelledError:
            # Cancelled from the CLI or the Temporal UI: record it and tell the
            # people who were told about the program, then end as cancelled.
            await self._close_as_cancelled()
            raise
        await workflow.wait_condition(workflow.all_handlers_finished)
        return ProgramResult(
            program_id=self._definition.id,
            phase=self._phase,
            finished_at=workflow.now(),
            reminders_sent=self._reminders_sent,
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
            now = workflow.now()
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
        while not self._all_answered() and workflow.now() < self._approvals_due():
            await self._continue_as_new_if_due()
            await self._sleep_until(self._approvals_due(), "approvals due", self._all_answered)

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
        )

    @workflow.update
    async def reschedule(self, request: RescheduleRequest) -> RescheduleResult:
        """Move the window's opening, the deadline or the start; the timers follow."""
        previous = self._dates
        self._dates = self._moved_dates(request)
        self._definition = self._definition.model_copy(
            update={
                "application": self._definition.application.model_copy(
                    update={"opens": self._dates.opens, "deadline": self._dates.deadline}
                ),
                "schedule": self._definition.schedule.model_copy(
                    update={"start": self._dates.start}
                ),
            }
        )
        self._revision += 1
        self._reschedules += 1
        moved = [
            name
            for name in ("opens", "deadline", "start")
            if getattr(previous, name) != getattr(self._dates, name)
        ]
        result = RescheduleResult(revision=self._revision, dates=self._dates, moved=moved)
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
                **{f"previous_{n}": getattr(previous, n).isoformat() for n in moved},
                **{n: getattr(self._dates, n).isoformat() for n in moved},
            },
        )
        return result

    @reschedule.validator
    def _validate_reschedule(self, request: RescheduleRequest) -> None:
        """Refuse at once, with the reason, a move the program cannot take."""
        now = workflow.now()
        if request.opens is None and request.deadline is None and request.start is None:
            raise ValueError("nothing to move: give a new opening, deadline or start")
        if self._phase is ProgramPhase.CANCELLED:
            raise ValueError("the program is cancelled")
        if request.opens is not None and self._phase is not ProgramPhase.SCHEDULED:
            raise ValueError("the application window is already open; its opening cannot move")
        if request.deadline is not None and self._phase not in (
            ProgramPhase.SCHEDULED,
            ProgramPhase.APPLICATION_WINDOW,
        ):
            raise ValueError("applications have already closed; the deadline cannot move")
        for name in ("opens", "deadline", "start"):
            value: datetime | None = getattr(request, name)
            if value is not None and value <= now:
                raise ValueError(f"the new {name} ({value.isoformat()}) is in the past")
        candidate = self._definition.model_copy(
            update={
                "application": self._definition.application.model_copy(
                    update={
                        "opens": request.opens or self._dates.opens,
                        "deadline": request.deadline or self._dates.deadline,
                    }
                ),
                "schedule": self._definition.schedule.model_copy(
                    update={"start": request.start or self._dates.start}
                ),
            }
        )
        problems = list(consistency_problems(candidate))
        if problems:
            raise ValueError("; ".join(f"{p.field}: {p.problem}" for p in problems))

    @workflow.update
    async def submit_application(self, submission: ApplicationSubmission) -> ApplicationReceipt:
        """Take a saved application: start its workflow, or tell it that it changed."""
        child_id = application_workflow_id(self._definition.id, submission.application_id)
        if submission.application_id not in self._applications:
            self._applications[submission.application_id] = ApplicationEntry(
                organisation_id=submission.organisation_id, profile_id=submission.profile_id
            )
            await workflow.start_child_workflow(
                ApplicationWorkflow.run,
                self._application_input(submission),
                id=child_id,
                # The program may continue as new while applications run on.
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(sa.PROGRAM_ID, self._definition.id)]
                ),
                static_summary=f"application to {self._definition.id}",
            )
            self._describe()
        else:
            await workflow.get_external_workflow_handle(child_id).signal(
                ApplicationWorkflow.manager_changed, submission.manager
            )
        return ApplicationReceipt(
            application_id=submission.application_id,
            workflow_id=child_id,
            created=submission.created,
        )

    @submit_application.validator
    def _validate_submission(self, submission: ApplicationSubmission) -> None:
        if self._phase is not ProgramPhase.APPLICATION_WINDOW:
            raise ValueError(f"closed: applications are not open (phase {self._phase.value})")
        if workflow.now() >= self._dates.deadline:
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
        self._applications[result.application_id] = entry.model_copy(
            update={"outcome": result.outcome.value}
        )
        self._describe()

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
            applicant=submission.applicant,
            manager=submission.manager,
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
        """When HR must have answered an escalated application."""
        return self._definition.capacity.decision_by or self._dates.start

    def _approvals_due(self) -> datetime:
        # A minute's grace lets the applications' own timers report first.
        return self._escalation_due() + timedelta(minutes=1)

    def _all_answered(self) -> bool:
        return all(entry.outcome is not None for entry in self._applications.values())

    def _totals(self) -> dict[str, int]:
        outcomes = [entry.outcome for entry in self._applications.values()]
        return {
            "applied": len(outcomes),
            "approved": outcomes.count(ApplicationOutcome.APPROVED.value),
            "declined": outcomes.count(ApplicationOutcome.DECLINED.value),
            "withdrawn": outcomes.count(ApplicationOutcome.WITHDRAWN.value),
            "pending": outcomes.count(None),
        }

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
                ),
                continue_as_new_after=self._continue_as_new_after,
            )
        )

    # --- Timers ---------------------------------------------------------------------------

    async def _sleep_until(
        self, moment: datetime, summary: str, unless: Callable[[], bool] = lambda: False
    ) -> None:
        """Sleep until ``moment``, a date moves, or ``unless()``; then the caller re-plans.

        This is the updatable timer: the deadline is state, and the timer is
        only ever "the current value of it, or a change to it".
        """
        remaining = moment - workflow.now()
        if remaining <= timedelta(0):
            return
        revision = self._revision
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._revision != revision or self._history_is_long() or unless(),
                timeout=remaining,
                timeout_summary=summary,
            )

    def _reminder_plan(self) -> list[tuple[str, datetime, timedelta]]:
        """(key, when, time left) of every reminder for the current deadline."""
        deadline = self._dates.deadline
        return [
            (
                f"reminder-{int(before.total_seconds())}s@{deadline.isoformat()}",
                deadline - before,
                before,
            )
            for before in sorted(
                self._definition.application.reminders_before_deadline, reverse=True
            )
        ]

    def _skip_passed_reminders(self) -> None:
        """A reminder whose time passed before the deadline was set is not sent late."""
        now = workflow.now()
        self._reminders_done.update(key for key, at, _ in self._reminder_plan() if at <= now)

    def _due_reminder(self, now: datetime) -> tuple[str, timedelta] | None:
        for key, at, before in self._reminder_plan():
            if key not in self._reminders_done and at <= now:
                return key, before
        return None

    def _next_wake_up(self) -> datetime:
        pending = [at for key, at, _ in self._reminder_plan() if key not in self._reminders_done]
        return min([*pending, self._dates.deadline])

    def _next_deadline(self) -> tuple[datetime | None, str | None]:
        if self._phase is ProgramPhase.SCHEDULED:
            return self._dates.opens, "application window opens"
        if self._phase is ProgramPhase.APPLICATION_WINDOW:
            return self._dates.deadline, "application deadline"
        if self._phase is ProgramPhase.AWAITING_APPROVALS:
            return self._answer_by(), "managers answer by"
        return None, None

    def _moved_dates(self, request: RescheduleRequest) -> ProgramDates:
        return ProgramDates(
            opens=request.opens or self._dates.opens,
            deadline=request.deadline or self._dates.deadline,
            start=request.start or self._dates.start,
            end=self._dates.end,
        )

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
                definition=self._definition.model_dump(mode="json", by_alias=True),
                phase=self._phase,
                revision=self._revision,
                next_deadline=deadline,
                at=workflow.now(),
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
                at=workflow.now(),
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
    ) -> None:
        d = self._definition
        facts = self._facts().model_copy(
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
