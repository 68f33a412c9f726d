"""ProgramWorkflow: the life of one mentorship program, as durable state.

Read ``run`` for the lifecycle. Every date is state, not a sleep: the workflow
waits for "the current value of the date, or a change to it" (the updatable
timer pattern), so ``reschedule`` moves a date and the waiting simply re-plans.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

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
        EmailBatch,
        EmailFacts,
        EmailTemplate,
        EventKind,
        ProgramDates,
        ProgramInput,
        ProgramPhase,
        ProgramResult,
        ProgramStatus,
        RecordEventInput,
        RegisterProgramInput,
        RescheduleRequest,
        RescheduleResult,
        program_dates,
    )

RECORD_TIMEOUT = timedelta(seconds=30)
# Emails must go out eventually: retry without a limit, but back off to minutes
# so an SMTP outage is not hammered.
EMAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)


@dataclass(frozen=True)
class _DateChange:
    revision: int
    previous: ProgramDates
    moved: list[str]
    reason: str


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
        self._notices: list[_DateChange] = []  # moves not yet told to the people announced to

    # --- The lifecycle --------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ProgramInput) -> ProgramResult:
        try:
            await self._register()
            while workflow.now() < self._dates.opens:
                await self._sleep_until(self._dates.opens, "application window opens")
            await self._open_application_window()
            await self._run_application_window()
            await self._enter(ProgramPhase.APPLICATIONS_CLOSED)
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
            await self._sleep_until(self._next_wake_up(), "next reminder or the deadline")

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
            },
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
            self._notices.append(_DateChange(self._revision, previous, moved, request.reason))
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

    # --- Timers ---------------------------------------------------------------------------

    async def _sleep_until(self, moment: datetime, summary: str) -> None:
        """Sleep until ``moment``, or until a date moves: then the caller re-plans.

        This is the updatable timer: the deadline is state, and the timer is
        only ever "the current value of it, or a change to it".
        """
        remaining = moment - workflow.now()
        if remaining <= timedelta(0):
            return
        revision = self._revision
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._revision != revision, timeout=remaining, timeout_summary=summary
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
        deadline, label = self._next_deadline()
        workflow.upsert_search_attributes(
            [
                sa.PROGRAM_PHASE.value_set(self._phase.value),
                sa.NEXT_DEADLINE.value_set(deadline)
                if deadline
                else sa.NEXT_DEADLINE.value_unset(),
            ]
        )
        details = f"**Phase:** {self._phase.value}"
        if deadline and label:
            details += f"  \n**Next:** {label} at {deadline.isoformat()}"
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
        facts = EmailFacts(
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
            previous_deadline=previous_deadline,
            previous_start=previous_start,
            time_left=time_left,
            reason=reason,
            form_note=d.application.form_note,
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
