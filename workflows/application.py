"""ApplicationWorkflow: one application, from confirmation to the manager's answer.

The client that saved the application starts it (its id is the application's,
so applying again reaches the same workflow). It sends its program nothing: the
program counts the applications in the database. (Runs from before
TELLS_PROGRAM_NOTHING signalled it that they applied and each outcome; programs
of the earlier ProgramWorkflowV1 started it as an abandoned child.)
Answers come through the ``decide`` and ``withdraw`` updates, whose validators
refuse, before anything is recorded, an answer that is already given, given by
the wrong person, or too late.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import email_validator  # noqa: F401  (see workflows/program.py)

    from activities.applications import ApplicationRecordActivities
    from activities.email import EmailActivities
    from mentorflow import people
    from mentorflow.models import (
        ApplicationApplied,
        ApplicationInput,
        ApplicationOutcome,
        ApplicationRecordInput,
        ApplicationRef,
        ApplicationResult,
        ApplicationStatus,
        DecisionRequest,
        EmailBatch,
        EmailBatches,
        EmailTemplate,
        LinkRequest,
        ManagerChange,
        RecordedApplication,
        SelectionOf,
        WithdrawalRequest,
        program_workflow_id,
    )
    from mentorflow.refusals import refuse
    from workflows.options import EMAIL_RETRY, RECORD_TIMEOUT
    from workflows.timers import Clock

APPLICATION_RESULT_SIGNAL = "application_result"
APPLICATION_APPLIED_SIGNAL = "application_applied"
ANSWERS_IN_SIGNAL = "answers_in"
# Runs that began before these behaviours replay without them (docs/upgrades.md): a
# cancelled program ends its open applications and tells their people; a declined
# applicant is told; an applicant who applies again gets a confirmation.
TELLS_EVERYONE = "application-tells-everyone"
# Steps that do not depend on each other go out in one workflow task: the program told,
# the record written and the emails sent at once. Each step awaited alone cost the
# server a workflow task of its own, and the server is what a busy program waits on.
STEPS_TOGETHER = "application-steps-together"
# ...but the program hears of an outcome only once it is on record: the program's next
# phase asks HR to decide on the approved applicants the database lists, and under
# STEPS_TOGETHER the last approval could reach the program before its record (HR's
# decision was then refused as incomplete).
REPORT_WHEN_RECORDED = "application-reports-when-recorded"
# Thousands of applications signalling one program kept its workflow busy (and, under
# load, its tasks waited minutes): the program now counts them in the database. Only
# an answer (a manager's, HR's, or the silence policy's) that leaves none of the
# program's applications open tells it so.
TELLS_PROGRAM_NOTHING = "application-tells-program-nothing"
# The application's records are local activities, run by the worker that runs this
# workflow: a manager's click then costs the server one workflow task (the answer and its
# record together), where a record sent to the activities' queue cost it an activity
# task and a second workflow task, and a burst of clicks waited on the server for both.
RECORDS_LOCALLY = "application-records-locally"
# The applicant's confirmation and the manager's request go out in one activity: each
# activity is an add to the task queue, a poll and a start record on the server (the
# project's activities run in their own worker, so none is dispatched eagerly), and two
# of them per application were half of a program's activity dispatches. Implies the
# behaviours above: one marker for them all.
FIRST_EMAILS_TOGETHER = "application-first-emails-together"


class _ProgramClosed(Exception):
    """The program was cancelled while this application waited."""


@workflow.defn
class ApplicationWorkflow:
    @workflow.init
    def __init__(self, input: ApplicationInput) -> None:
        self._input = input
        self._clock = Clock()
        self._state: str = "awaiting_manager"
        # fingerprint -> reference to who may answer now (mentorflow.people)
        self._approvers: dict[str, str] = {}
        self._applicant: str | None = None  # fingerprint of the applicant
        self._decision: DecisionRequest | None = None
        self._withdrawn = False
        self._decided_by: str | None = None
        self._channel: str | None = None
        self._reminders_sent = 0
        self._program_closed = False
        # Runs from before mentorflow.people carry the manager; now a reference, read
        # from the database when an email goes out, and counted so each one is asked.
        self._manager = (
            input.manager.email if input.manager else people.manager(input.application_id)
        )
        self._manager_version = 0
        self._manager_changed = False
        # Emails with a link that are being sent: their recipients' fingerprints are
        # known only once the send returns, and a click can arrive before that.
        self._links_in_flight = 0
        self._tells_everyone = False
        self._together = False
        self._report_when_recorded = False
        self._tells_program = True
        self._records_locally = False
        self._first_emails_together = False
        self._updates = 0  # confirmations of applying again

    @workflow.run
    async def run(self, input: ApplicationInput) -> ApplicationResult:
        # A run begun with the newest patch has every earlier behaviour: one marker for
        # them all, where each patch cost a marker and a search-attribute upsert.
        self._first_emails_together = workflow.patched(FIRST_EMAILS_TOGETHER)
        self._records_locally = self._first_emails_together or workflow.patched(RECORDS_LOCALLY)
        if self._records_locally:
            self._tells_everyone = self._together = self._report_when_recorded = True
        else:
            self._tells_everyone = workflow.patched(TELLS_EVERYONE)
            self._together = workflow.patched(STEPS_TOGETHER)
            self._report_when_recorded = workflow.patched(REPORT_WHEN_RECORDED)
        # Programs of ProgramWorkflowV1 (report_to_program false) count their signals.
        self._tells_program = not input.report_to_program or not (
            self._records_locally or workflow.patched(TELLS_PROGRAM_NOTHING)
        )
        try:
            return await self._run(input)
        except _ProgramClosed:
            return await self._close_for_program()

    async def _run(self, input: ApplicationInput) -> ApplicationResult:
        await self._steps(
            self._applied(),
            self._record("awaiting_approval"),
            *self._first_emails(ask_manager=input.approval_required),
        )
        if not input.approval_required:
            outcome, channel = ApplicationOutcome.APPROVED, "policy"
        else:
            if not self._together:
                await self._ask_manager()
            outcome, channel = await self._await_answer()
        self._channel = channel
        decided = self._record(
            outcome.value,
            decision=outcome.value,
            decided_by=self._decided_by or channel,  # an email, or the policy applied
            channel=channel,
            key="decision",
            # Only an answer can leave none open after the window: an application
            # approved by the definition's policy is decided the moment it is made.
            count_undecided=not self._tells_program and input.approval_required,
        )
        notices: list[Coroutine[Any, Any, Any]] = []
        if outcome is ApplicationOutcome.DECLINED and self._tells_everyone:
            # Kindly, once, in the program's language: by the manager, HR or the policy.
            notices.append(
                self._notice("application_declined", "declined", [self._applicant_address()])
            )
        result: ApplicationResult
        if self._report_when_recorded:
            self._state = outcome.value
            recorded, *_ = await self._steps(decided, *notices)
            if recorded is not None and recorded.undecided == 0:
                await self._tell_program(ANSWERS_IN_SIGNAL, None)
            result = await self._report(outcome, channel)
        else:
            # Runs that began before REPORT_WHEN_RECORDED, as their histories hold them.
            steps: list[Coroutine[Any, Any, Any]] = [decided]
            if not self._together:
                await steps.pop()  # before STEPS_TOGETHER: one step at a time
            self._state = outcome.value
            steps.insert(0, self._report(outcome, channel))
            result = (await self._steps(*steps, *notices))[0]
        if outcome is ApplicationOutcome.APPROVED:
            # An approved applicant may still withdraw until the program starts.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._withdrawn or self._closing(),
                    timeout=max(input.facts.start - self._clock.now(), timedelta(seconds=1)),
                    timeout_summary="withdrawal possible until the program starts",
                )
            if self._closing() and not self._withdrawn:
                raise _ProgramClosed
            if self._withdrawn:
                await self._record(
                    "withdrawn",
                    decision="withdrawn",
                    decided_by=(
                        input.applicant.email
                        if input.applicant
                        else people.applicant(input.application_id)
                    ),
                    channel="applicant",
                    key="withdrawal",
                )
                self._state = ApplicationOutcome.WITHDRAWN.value
                result = await self._report(
                    ApplicationOutcome.WITHDRAWN, "applicant", previous=ApplicationOutcome.APPROVED
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def _steps(self, *steps: Coroutine[Any, Any, Any]) -> list[Any]:
        """Steps that do not depend on each other: at once, or (runs that began before
        STEPS_TOGETHER) one after the other, as those runs' histories hold them."""
        if self._together:
            return list(await asyncio.gather(*steps))
        return [await step for step in steps]

    async def _applied(self) -> None:
        """Tell the program that one more application was made (ids only)."""
        i = self._input
        if i.report_to_program and self._tells_program:
            await self._tell_program(
                APPLICATION_APPLIED_SIGNAL,
                ApplicationApplied(
                    application_id=i.application_id,
                    organisation_id=i.organisation_id,
                    profile_id=i.profile_id,
                ),
            )

    async def _report(
        self,
        outcome: ApplicationOutcome,
        channel: str,
        previous: ApplicationOutcome | None = None,
    ) -> ApplicationResult:
        """How the application ended; runs from before TELLS_PROGRAM_NOTHING tell the
        program (whichever run of it is current)."""
        result = ApplicationResult(
            application_id=self._input.application_id,
            organisation_id=self._input.organisation_id,
            profile_id=self._input.profile_id,
            outcome=outcome,
            channel=channel,
            **({"previous": previous} if previous else {}),
        )
        if not self._tells_program:
            return result
        if self._input.report_to_program and previous is ApplicationOutcome.APPROVED:
            # HR may have chosen it already: the program's counts of the chosen follow.
            selected: SelectionOf = await workflow.execute_activity_method(
                ApplicationRecordActivities.selection_of,
                ApplicationRef(application_id=self._input.application_id),
                start_to_close_timeout=RECORD_TIMEOUT,
                summary="HR's selection",
            )
            result.selection = selected.selection
        await self._tell_program(APPLICATION_RESULT_SIGNAL, result)
        return result

    async def _tell_program(
        self, signal: str, message: ApplicationApplied | ApplicationResult | None
    ) -> None:
        program_id = program_workflow_id(self._input.program_id)
        handle = workflow.get_external_workflow_handle(program_id)
        try:
            if message is None:
                await handle.signal(signal)
            else:
                await handle.signal(signal, message)
        except Exception:
            # The program has already finished (a withdrawal after it moved on):
            # the outcome is in the database, which is what later phases read.
            workflow.logger.warning(
                "program %s did not take %s of %s",
                self._input.program_id,
                signal,
                self._input.application_id,
            )

    async def _await_answer(self) -> tuple[ApplicationOutcome, str]:
        """The manager's answer, with reminders; at answer-by the silence policy applies."""
        answer_by = self._input.answer_by
        plan = sorted(answer_by - before for before in self._input.reminders_before_answer_by)
        for reminder_at in [*plan, answer_by]:
            if await self._answered_by(reminder_at):
                return self._outcome()
            if reminder_at < answer_by:
                await self._email(
                    "approval_reminder",
                    f"approval-reminder-{int(reminder_at.timestamp())}",
                    self._manager,
                )
                self._reminders_sent += 1
        # Silence: the definition says what it means.
        policy = self._input.on_silence
        if policy == "approve":
            self._decided_by = "policy: silence means approve"
            return ApplicationOutcome.APPROVED, "policy"
        if policy == "escalate" and self._input.hr_contacts:
            self._state = "escalated"
            self._approvers = {}
            await self._record("escalated")
            for contact in self._input.hr_contacts:
                await self._email(
                    "approval_escalated", "approval-escalated", contact.email, for_hr=True
                )
            if await self._answered_by(self._input.decide_escalated_by):
                return self._outcome()
        self._decided_by = "policy: silence means decline"
        return ApplicationOutcome.DECLINED, "policy"

    async def _answered_by(self, moment: datetime) -> bool:
        """Wait until ``moment`` or an answer (a decision or a withdrawal).

        If the applicant names another manager meanwhile, the new one is asked
        and the old one's link stops working; the answer-by time stays.
        """
        while (remaining := moment - self._clock.now()) > timedelta(0):
            try:
                await workflow.wait_condition(
                    lambda: self._answered() or self._manager_changed or self._closing(),
                    timeout=remaining,
                    timeout_summary="manager's answer",
                )
            except TimeoutError:
                self._clock.reached(moment)
                break
            if self._answered():
                break
            if self._closing():
                raise _ProgramClosed
            self._manager_changed = False
            await self._ask_manager()
            if self._tells_everyone:
                self._updates += 1
                await self._notice(
                    "application_updated",
                    "application-updated",
                    [self._applicant_address()],
                    revision=str(self._updates),
                )
        if self._closing() and not self._answered():
            raise _ProgramClosed
        return self._answered()

    def _closing(self) -> bool:
        return self._tells_everyone and self._program_closed

    def _applicant_address(self) -> str:
        i = self._input
        return i.applicant.email if i.applicant else people.applicant(i.application_id)

    async def _close_for_program(self) -> ApplicationResult:
        """The program was cancelled: tell the applicant, and a manager still asked, once;
        record it; end (no timer of this application is left running)."""
        recipients = [self._applicant_address()]
        if self._state == "awaiting_manager" and self._input.approval_required:
            recipients.append(self._manager)
        await self._notice("cancelled", "cancelled", recipients)
        await self._record("cancelled")
        return ApplicationResult(
            application_id=self._input.application_id,
            organisation_id=self._input.organisation_id,
            profile_id=self._input.profile_id,
            outcome=ApplicationOutcome.CANCELLED,
            channel="program",
        )

    async def _notice(
        self, template: EmailTemplate, step: str, recipients: list[str], revision: str = "1"
    ) -> None:
        """An email without a link, to the applicant (and manager): its ledger key makes it once."""
        i = self._input
        await workflow.execute_activity_method(
            EmailActivities.send_email_batch,
            EmailBatch(
                program_id=i.program_id,
                step=f"{i.application_id}/{step}",
                revision=revision,
                template=template,
                recipients=recipients,
                facts=i.facts.model_copy(
                    update={"profile_title": i.profile_title, "answer_by": i.answer_by}
                ),
                links=[],
                application_id=i.application_id,
                name_manager=i.approval_required,
            ),
            start_to_close_timeout=timedelta(seconds=65),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=EMAIL_RETRY,
            summary=template,
        )

    def _answered(self) -> bool:
        return self._decision is not None or self._withdrawn

    def _outcome(self) -> tuple[ApplicationOutcome, str]:
        if self._withdrawn:
            return ApplicationOutcome.WITHDRAWN, "applicant"
        assert self._decision is not None
        outcome = (
            ApplicationOutcome.APPROVED if self._decision.approve else ApplicationOutcome.DECLINED
        )
        return outcome, self._decision.channel

    # --- Handlers -------------------------------------------------------------------------

    @workflow.query
    def status(self) -> ApplicationStatus:
        return ApplicationStatus(
            application_id=self._input.application_id,
            program_id=self._input.program_id,
            state=self._state,
            decided_by=self._decided_by,
            channel=self._channel,
            reminders_sent=self._reminders_sent,
            program_closed=self._program_closed,
        )

    @workflow.update
    async def decide(self, request: DecisionRequest) -> ApplicationStatus:
        await self._await_links_sent()
        # Checked again: the email may have gone to someone else, or a concurrent
        # click of the same link may have answered while this one waited.
        self._validate_decide(request)  # a refusal (ApplicationError) fails the update
        self._decision = request
        self._decided_by = self._approvers.get(request.fingerprint, "unknown approver")
        # Returns once taken: the run records the decision next, in the same workflow
        # task (a local activity), and the click's answer leaves with that task. Answers
        # given before "decide-returns-when-taken" returned once recorded, and replay so.
        # (Asked only of runs from before RECORDS_LOCALLY: a patch asked here cost each
        # click's task a marker and a search-attribute upsert.)
        if not (self._records_locally or workflow.patched("decide-returns-when-taken")):
            await workflow.wait_condition(
                lambda: self._state not in ("awaiting_manager", "escalated")
            )
        return self.status()

    @decide.validator
    def _validate_decide(self, request: DecisionRequest) -> None:
        self._refuse_if_closed()
        if self._decision is not None:  # taken, perhaps not recorded yet
            raise refuse("already_answered", f"already_answered: {_word(self._decision)}")
        if self._state in ("approved", "declined"):
            raise refuse("already_answered", f"already_answered: {self._state}")
        if request.fingerprint not in self._approvers and not self._links_in_flight:
            raise refuse(
                "not_your_link", "not_your_link: this link is not for the person who may answer now"
            )

    @workflow.update
    async def withdraw(self, request: WithdrawalRequest) -> ApplicationStatus:
        await self._await_links_sent()
        self._validate_withdraw(request)
        self._withdrawn = True
        self._decided_by = "applicant"
        await workflow.wait_condition(lambda: self._state == "withdrawn")
        return self.status()

    @withdraw.validator
    def _validate_withdraw(self, request: WithdrawalRequest) -> None:
        self._refuse_if_closed()
        if self._state == "declined":
            raise refuse("already_answered", "already_answered: declined")
        if request.fingerprint != self._applicant and not self._links_in_flight:
            raise refuse("not_your_link", "not_your_link: this link is not the applicant's")

    async def _await_links_sent(self) -> None:
        """Let a click that raced its own email's send wait until the send has returned."""
        if self._links_in_flight:
            await workflow.wait_condition(lambda: not self._links_in_flight)

    @workflow.signal
    def manager_changed(self, change: ManagerChange) -> None:
        """The applicant applied again naming another manager."""
        if self._state != "awaiting_manager":
            return
        if change.email is not None:  # a run from before mentorflow.people
            if change.email == self._manager:
                return
            self._manager = change.email
        self._approvers = {}
        self._manager_version += 1
        self._manager_changed = True

    @workflow.signal
    def program_closed(self) -> None:
        """The program was cancelled: no answer can be taken any more."""
        self._program_closed = True

    def _refuse_if_closed(self) -> None:
        if self._program_closed:
            raise refuse("program_closed", "program_closed: the program is closed")
        if self._withdrawn or self._state == "withdrawn":
            raise refuse("withdrawn", "withdrawn: the application was withdrawn")

    # --- Activities -----------------------------------------------------------------------

    def _first_emails(self, *, ask_manager: bool) -> list[Coroutine[Any, Any, None]]:
        """The applicant's confirmation and (``ask_manager``) the manager's request: in
        one activity, or (runs that began before FIRST_EMAILS_TOGETHER) in one each,
        the request after the confirmation before STEPS_TOGETHER (see ``_run``)."""
        if self._first_emails_together:
            return [self._confirm_and_ask(ask_manager)]
        together = ask_manager and self._together
        return [self._confirm_to_applicant(), *((self._ask_manager(),) if together else ())]

    def _applicant_reference(self) -> str:
        i = self._input
        return i.applicant.email if i.applicant else people.applicant(i.application_id)

    async def _confirm_and_ask(self, ask_manager: bool) -> None:
        applicant = self._applicant_reference()
        manager, version = self._manager, self._manager_version
        batches = [self._batch("application_received", "application-received", applicant)]
        if ask_manager:
            batches.append(self._batch("approval_request", "approval-request", manager))
        self._links_in_flight += 1
        try:
            sent = await workflow.execute_activity_method(
                EmailActivities.send_email_batches,
                EmailBatches(batches=batches),
                start_to_close_timeout=timedelta(seconds=65 * len(batches)),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=EMAIL_RETRY,
                summary="application_received" + (" and approval_request" if ask_manager else ""),
            )
        finally:
            self._links_in_flight -= 1
        self._applicant = sent.results[0].fingerprints.get(applicant)
        if ask_manager:
            self._manager_asked(manager, version, sent.results[1].fingerprints.get(manager))

    async def _confirm_to_applicant(self) -> None:
        applicant = self._applicant_reference()
        self._applicant = await self._email(
            "application_received", "application-received", applicant
        )

    async def _ask_manager(self) -> None:
        manager, version = self._manager, self._manager_version
        fingerprint = await self._email("approval_request", "approval-request", manager)
        self._manager_asked(manager, version, fingerprint)

    def _manager_asked(self, manager: str, version: int, fingerprint: str | None) -> None:
        """The request reached ``manager``: their link answers now, unless another
        manager was named while it was on its way (that one is asked next)."""
        if fingerprint and version == self._manager_version:
            self._approvers = {fingerprint: manager}

    async def _email(
        self, template: EmailTemplate, step: str, recipient: str, *, for_hr: bool = False
    ) -> str | None:
        """Send one email with its signed link; return the recipient's fingerprint."""
        self._links_in_flight += 1
        try:
            result = await workflow.execute_activity_method(
                EmailActivities.send_email_batch,
                self._batch(template, step, recipient, for_hr=for_hr),
                start_to_close_timeout=timedelta(seconds=65),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=EMAIL_RETRY,
                summary=f"{template}",
            )
        finally:
            # The caller stores the fingerprint before its next await, so a waiting
            # click sees it when it wakes.
            self._links_in_flight -= 1
        fingerprint = result.fingerprints.get(recipient)
        if for_hr and fingerprint:
            self._approvers[fingerprint] = recipient
        return fingerprint

    def _batch(
        self, template: EmailTemplate, step: str, recipient: str, *, for_hr: bool = False
    ) -> EmailBatch:
        """One email with its signed link: to withdraw (the applicant's confirmation)
        or to answer (a request to the manager, or to HR with ``for_hr``)."""
        i = self._input
        answer_by = i.decide_escalated_by if for_hr else i.answer_by
        if template == "application_received":
            link = LinkRequest(
                name="withdraw_url",
                purpose="withdrawal",
                application_id=i.application_id,
                expires_at=i.facts.start,
                path="/w/",
            )
        else:
            link = LinkRequest(
                name="approve_url",
                purpose="approval",
                application_id=i.application_id,
                expires_at=answer_by,
                path="/a/",
            )
        return EmailBatch(
            program_id=i.program_id,
            step=f"{i.application_id}/{step}",
            # The ledger's key holds the real address, so a replaced manager's
            # successor gets their own request.
            revision="1",
            template=template,
            recipients=[recipient],
            facts=i.facts.model_copy(
                update={"profile_title": i.profile_title, "answer_by": answer_by}
            ),
            links=[link],
            application_id=i.application_id,
            # Without approval, the confirmation must not say the manager was asked.
            name_manager=i.approval_required,
        )

    async def _record(
        self,
        status: str,
        *,
        decision: str | None = None,
        decided_by: str | None = None,
        channel: str | None = None,
        key: str | None = None,
        count_undecided: bool = False,
    ) -> RecordedApplication | None:
        """Record the application's status (and a decision); with ``count_undecided``,
        return how many of its program's applications are still without an answer."""
        record = ApplicationRecordInput(
            application_id=self._input.application_id,
            status=status,
            decision=decision,
            decided_by=decided_by,
            channel=channel,
            key=key,
            at=self._clock.now(),
            count_undecided_in=self._input.program_id if count_undecided else None,
        )
        if self._records_locally:
            return await workflow.execute_local_activity_method(
                ApplicationRecordActivities.record_application,
                record,
                start_to_close_timeout=RECORD_TIMEOUT,
                summary=f"record {status}",
            )
        return await workflow.execute_activity_method(
            ApplicationRecordActivities.record_application,
            record,
            start_to_close_timeout=RECORD_TIMEOUT,
            summary=f"record {status}",
        )


def _word(decision: DecisionRequest) -> str:
    return ApplicationOutcome.APPROVED.value if decision.approve else "declined"
