"""PairWorkflow: one mentor and one adept, from the program's start to its end.

Read ``run`` for what a pair's months look like: on the definition's cadence
both are asked "have you met?" (yes / not yet / we need help); a call for help
reaches HR at once; a pair that has not met within the definition's threshold
is flagged to HR; halfway through, a short pulse question. Dates are state:
when the program's start or end moves, the program signals the pair and its
timers re-plan. The pair continues as new every few check-ins, so its history
stays bounded however long the program runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import email_validator  # noqa: F401  (see workflows/program.py)

    from activities.email import EmailActivities
    from activities.pairs import PairActivities
    from mentorflow import people
    from mentorflow.meetings import next_check_in
    from mentorflow.models import (
        CHECK_IN_ANSWERS,
        PULSE,
        PULSE_ANSWERS,
        CheckInRequest,
        CheckInResult,
        EmailTemplate,
        LinkRequest,
        PairClosed,
        PairClosure,
        PairDates,
        PairEmailInput,
        PairInput,
        PairRecordInput,
        PairState,
        PairStatus,
        program_workflow_id,
    )
    from workflows.options import EMAIL_RETRY, RECORD_TIMEOUT
    from workflows.timers import Clock

PAIR_CLOSED_SIGNAL = "pair_closed"
# How long after the program's end a check-in link still takes an answer.
LINK_GRACE = timedelta(days=14)


@workflow.defn
class PairWorkflow:
    @workflow.init
    def __init__(self, input: PairInput) -> None:
        self._input = input
        self._clock = Clock()
        self._start, self._end = input.start, input.end
        self._state = input.state.model_copy() if input.state else PairState()
        self._status: Literal["active", "closed", "ended"] = "active"
        self._closure: PairClosure | None = None
        self._calls_for_help: list[tuple[str, str]] = []  # (check-in number, role) not yet told
        self._revision = 0
        self._sent_this_run = 0

    # --- The pair's months ----------------------------------------------------------------

    @workflow.run
    async def run(self, input: PairInput) -> PairStatus:
        try:
            return await self._meet(input)
        except asyncio.CancelledError:  # the program was cancelled
            self._status = "closed"
            await self._record(status="closed", closed_reason="program cancelled")
            raise

    async def _meet(self, input: PairInput) -> PairStatus:
        if input.introduce and input.state is None:  # a re-match: the two have not met yet
            await self._email_pair("pair_introduction", "1")
        while self._closure is None:
            await self._tell_hr_of_calls_for_help()
            now = self._clock.now()
            if now >= self._end:
                break
            if self._pulse_due(now):
                await self._send_pulse()
            elif self._stalled(now):
                await self._flag_stall()
            elif (due := self._next_check_in()) is not None and due <= now:
                await self._send_check_in()
            elif self._sent_this_run >= input.check_ins_per_run:
                await self._continue_as_new()
            else:
                await self._sleep_until(self._next_wake_up())
        if self._closure is not None:
            await self._close(self._closure)
        else:
            self._status = "ended"
            await self._record(status="ended")
            await self._tell_program(PairClosed(pair_id=input.pair_id, status="ended"))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _tell_program(self, closed: PairClosed) -> None:
        with contextlib.suppress(Exception):  # a program that already finished needs no word
            await workflow.get_external_workflow_handle(
                program_workflow_id(self._input.program_id)
            ).signal(PAIR_CLOSED_SIGNAL, closed)

    async def _send_check_in(self) -> None:
        number = str(self._state.check_ins_sent + 1)
        self._state.check_ins_sent += 1
        self._state.last_check_in_at = self._clock.now()
        self._sent_this_run += 1
        await self._email_pair("check_in", number, next_meeting_by=self._next_check_in())

    async def _send_pulse(self) -> None:
        self._state.pulse_sent = True
        await self._email_pair("pulse", PULSE)

    async def _flag_stall(self) -> None:
        since = self._last_met()
        self._state.stalled_flagged_for = since
        await self._email_hr("pair_stalled", f"stalled/{since.isoformat()}", last_met=since)

    async def _tell_hr_of_calls_for_help(self) -> None:
        while self._calls_for_help:
            number, role = self._calls_for_help[0]
            await self._email_hr("help_requested", f"help/{number}/{role}", answer=role)
            self._calls_for_help.pop(0)

    async def _close(self, closure: PairClosure) -> None:
        """A participant left: record it, tell the other one and HR, and the program."""
        await self._record(
            status="closed",
            closed_reason=closure.reason or "withdrawn",
            withdrawn_id=closure.application_id,
        )
        remaining = (
            self._input.adept_id
            if closure.application_id == self._input.mentor_id
            else self._input.mentor_id
        )
        await self._email_pair("pair_closed", "closed", only=remaining)
        await self._email_hr("pair_closed", "closed")
        await self._tell_program(
            PairClosed(
                pair_id=self._input.pair_id,
                withdrawn_id=closure.application_id,
                remaining_id=remaining,
            )
        )
        # Only now: the withdrawal update returns once everyone has been told.
        self._status = "closed"

    # --- Handlers -------------------------------------------------------------------------

    @workflow.query
    def status(self) -> PairStatus:
        return PairStatus(
            pair_id=self._input.pair_id,
            status=self._status,
            check_ins_sent=self._state.check_ins_sent,
            next_check_in=self._next_check_in(),
            last_met=self._state.last_met,
            answers=self._state.answers,
            stalled=self._state.stalled_flagged_for is not None
            and self._state.stalled_flagged_for == self._last_met(),
            runs=self._state.runs,
        )

    @workflow.update
    async def check_in(self, request: CheckInRequest) -> CheckInResult:
        """A participant answers a check-in (or the pulse) from the link in its email."""
        role = self._state.fingerprints[request.fingerprint]
        answers = self._state.answers.setdefault(request.number, {})
        if role in answers:  # a second click that passed the validator at the same moment
            raise ApplicationError(f"already_answered: {answers[role]}", non_retryable=True)
        answers[role] = request.answer
        if request.answer == "yes":
            self._state.last_met = self._clock.now()
        elif request.answer == "need_help":
            self._calls_for_help.append((request.number, role))
        self._revision += 1
        await self._record(check_in=request.number, role=role, answer=request.answer)
        return CheckInResult(number=request.number, answer=request.answer, role=role)

    @check_in.validator
    def _validate_check_in(self, request: CheckInRequest) -> None:
        if self._status != "active" or self._closure is not None:
            raise ValueError(f"closed: the pair is {self._status}")
        role = self._state.fingerprints.get(request.fingerprint)
        if role is None:
            raise ValueError("not_your_link: the link was not sent to a participant of this pair")
        if request.number == PULSE:
            if not self._state.pulse_sent or request.answer not in PULSE_ANSWERS:
                raise ValueError("unknown: no such question")
        elif (
            not request.number.isdigit()
            or not 1 <= int(request.number) <= self._state.check_ins_sent
            or request.answer not in CHECK_IN_ANSWERS
        ):
            raise ValueError("unknown: no such check-in")
        given = self._state.answers.get(request.number, {}).get(role)
        if given is not None:
            raise ValueError(f"already_answered: {given}")

    @workflow.update
    async def withdraw(self, closure: PairClosure) -> PairStatus:
        """HR records that a participant leaves; the pair closes and the program hears of it."""
        self._closure = closure
        # "ended" too: the end date may have come just as the withdrawal arrived.
        await workflow.wait_condition(lambda: self._status != "active")
        return self.status()

    @withdraw.validator
    def _validate_withdrawal(self, closure: PairClosure) -> None:
        if not (people.may_be_carried(closure.reason) and people.may_be_carried(closure.by)):
            raise ValueError(
                "personal_data: the reason and who recorded it travel as a note's key"
                " (mentorflow.people), not as free text"
            )
        if self._status != "active" or self._closure is not None:
            raise ValueError(f"closed: the pair is already {self._status}")
        if closure.application_id not in (self._input.mentor_id, self._input.adept_id):
            raise ValueError(f"unknown: {closure.application_id} is not in this pair")

    @workflow.signal
    def dates_changed(self, dates: PairDates) -> None:
        """The program's start or end moved: the next check-in and the end follow."""
        self._start, self._end = dates.start, dates.end
        self._revision += 1

    # --- Plans ----------------------------------------------------------------------------

    def _next_check_in(self) -> datetime | None:
        meetings = self._input.meetings
        if not meetings.check_ins:
            return None
        return next_check_in(
            self._start,
            self._end,
            meetings.cadence,
            self._input.facts.timezone,
            self._state.last_check_in_at,
        )

    def _midpoint(self) -> datetime:
        return self._start + (self._end - self._start) / 2

    def _pulse_due(self, now: datetime) -> bool:
        return (
            self._input.meetings.midpoint_pulse
            and not self._state.pulse_sent
            and now >= self._midpoint()
        )

    def _last_met(self) -> datetime:
        return self._state.last_met or self._start

    def _stall_at(self) -> datetime | None:
        threshold = self._input.meetings.stalled_after
        if threshold is None or self._state.stalled_flagged_for == self._last_met():
            return None
        return self._last_met() + threshold

    def _stalled(self, now: datetime) -> bool:
        at = self._stall_at()
        return at is not None and now >= at

    def _next_wake_up(self) -> datetime:
        moments = [self._end]
        if (due := self._next_check_in()) is not None:
            moments.append(due)
        if (stall := self._stall_at()) is not None:
            moments.append(stall)
        if self._input.meetings.midpoint_pulse and not self._state.pulse_sent:
            moments.append(self._midpoint())
        return min(moments)

    async def _sleep_until(self, moment: datetime) -> None:
        """Wake at ``moment``, on an answer, a closure or moved dates; then re-plan."""
        revision = self._revision
        await self._clock.sleep_until(
            moment,
            lambda: self._revision != revision or self._closure is not None,
            "next check-in, pulse, stall check or the end",
        )

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            self._input.model_copy(
                update={
                    "start": self._start,
                    "end": self._end,
                    "state": self._state.model_copy(update={"runs": self._state.runs + 1}),
                }
            )
        )

    # --- Activities -----------------------------------------------------------------------

    async def _email_pair(
        self,
        template: EmailTemplate,
        number: str,
        *,
        next_meeting_by: datetime | None = None,
        only: str | None = None,
    ) -> None:
        """An email to both participants (or ``only`` one), with a check-in link if it asks."""
        links = []
        if template in ("check_in", "pulse"):
            links.append(
                LinkRequest(
                    name="check_in_url",
                    purpose="check_in",
                    application_id=f"{self._input.pair_id}/{number}",
                    expires_at=self._end + LINK_GRACE,
                    path="/k/",
                )
            )
        facts = {
            "check_in_number": number,
            "next_meeting_by": next_meeting_by,
            "meeting_length": self._input.meetings.length,
        }
        await self._send(template, f"{template}/{number}", facts, to="pair", only=only, links=links)

    async def _email_hr(
        self,
        template: EmailTemplate,
        step: str,
        *,
        last_met: datetime | None = None,
        answer: str | None = None,
    ) -> None:
        """A notice to the program's coordinators about this pair."""
        if not self._input.hr:
            return
        facts = {
            "last_met": last_met or self._state.last_met,
            "answer": answer,
            "reason": self._closure.reason if self._closure else "",
        }
        await self._send(template, step, facts, to="hr")

    async def _send(
        self,
        template: EmailTemplate,
        step: str,
        facts: Mapping[str, object],
        *,
        to: Literal["pair", "hr"],
        only: str | None = None,
        links: list[LinkRequest] | None = None,
    ) -> None:
        result = await workflow.execute_activity_method(
            EmailActivities.send_pair_email,
            PairEmailInput(
                program_id=self._input.program_id,
                pair_id=self._input.pair_id,
                template=template,
                step=f"pair/{self._input.pair_id}/{step}",
                to=to,
                only=only,
                hr=self._input.hr if to == "hr" else [],
                facts=self._input.facts.model_copy(
                    update={"start": self._start, "end": self._end, **facts}
                ),
                links=links or [],
            ),
            start_to_close_timeout=timedelta(seconds=90),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=EMAIL_RETRY,
            summary=f"{template} ({step})",
        )
        self._state.fingerprints.update(result.fingerprints)

    async def _record(
        self,
        *,
        status: Literal["closed", "ended"] | None = None,
        closed_reason: str | None = None,
        withdrawn_id: str | None = None,
        check_in: str | None = None,
        role: str | None = None,
        answer: str | None = None,
    ) -> None:
        await workflow.execute_activity_method(
            PairActivities.record_pair,
            PairRecordInput(
                program_id=self._input.program_id,
                pair_id=self._input.pair_id,
                status=status,
                closed_reason=closed_reason,
                withdrawn_id=withdrawn_id,
                check_in=check_in,
                role=role,
                answer=answer,
                at=self._clock.now(),
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            summary=f"record {status or 'check-in ' + str(check_in)}",
        )
