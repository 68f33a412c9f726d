"""``execute_update_when_admitted``: which refusals it waits out, and when it gives up.

A unit test with a fake handle: the real server's refusals under load are what
``bench/program_scale.py`` provokes; here each one is made to order.
"""

from __future__ import annotations

import abc
import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from mentorflow.models import HANDING_OVER
from mentorflow.programs import ProgramError, not_now
from mentorflow.temporal import (
    IN_FLIGHT_PER_WORKFLOW,
    execute_update_when_admitted,
    is_busy,
    workflow_task_failing,
)


class TurningAway(abc.ABC):
    """A fake handle that turns the first ``times`` updates away with ``refusal()``,
    then answers ``"done"``; each kind of fake says what it refuses with."""

    def __init__(self, times: int) -> None:
        self.left, self.calls = times, 0

    @abc.abstractmethod
    def refusal(self) -> Exception:
        """The error the server answers a turned-away update with."""

    async def execute_update(
        self, update: Any, argument: Any, id: str | None = None, rpc_timeout: Any = None
    ) -> str:
        self.calls += 1
        if self.left:
            self.left -= 1
            raise self.refusal()
        return "done"


class RefusingHandle(TurningAway):
    """Refuses the first ``times`` updates with ``status``, then answers ``"done"``."""

    id = "program-refusing"

    def __init__(self, status: RPCStatusCode, times: int) -> None:
        super().__init__(times)
        self.status = status

    def refusal(self) -> Exception:
        return RPCError("refused", self.status, b"")


@pytest.mark.parametrize("status", [RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE])
async def test_a_busy_or_aborting_server_is_tried_again_until_it_admits(
    status: RPCStatusCode,
) -> None:
    handle = RefusingHandle(status, times=4)
    assert await execute_update_when_admitted(handle, "submit", None) == "done"  # type: ignore[arg-type]
    assert handle.calls == 5


async def test_another_refusal_is_raised_at_once() -> None:
    handle = RefusingHandle(RPCStatusCode.NOT_FOUND, times=1)
    with pytest.raises(RPCError) as refused:
        await execute_update_when_admitted(handle, "submit", None)  # type: ignore[arg-type]
    assert refused.value.status is RPCStatusCode.NOT_FOUND and handle.calls == 1


async def test_it_gives_up_after_its_time() -> None:
    handle = RefusingHandle(RPCStatusCode.RESOURCE_EXHAUSTED, times=10_000)
    with pytest.raises(RPCError) as refused:
        await execute_update_when_admitted(handle, "submit", None, within=0.5)  # type: ignore[arg-type]
    assert refused.value.status is RPCStatusCode.RESOURCE_EXHAUSTED
    assert 2 <= handle.calls < 20  # backed off, not hammered


class SlowHandle:
    """The server takes the update but its answer times out ``times`` times; every try
    must carry the first try's update id, so the server gives the one update's outcome."""

    id = "application-slow"

    def __init__(self, times: int) -> None:
        self.left, self.ids, self.waits = times, list[str | None](), list[float]()

    async def execute_update(
        self, update: Any, argument: Any, id: str | None = None, rpc_timeout: Any = None
    ) -> str:
        self.ids.append(id)
        assert isinstance(rpc_timeout, timedelta)
        self.waits.append(rpc_timeout.total_seconds())
        if self.left:
            self.left -= 1
            raise WorkflowUpdateRPCTimeoutOrCancelledError()
        return "done"


async def test_an_answer_that_timed_out_is_asked_for_again_under_the_same_update_id() -> None:
    handle = SlowHandle(times=2)
    assert await execute_update_when_admitted(handle, "decide", None) == "done"  # type: ignore[arg-type]
    assert len(handle.ids) == 3 and len(set(handle.ids)) == 1 and handle.ids[0]


async def test_answers_that_keep_timing_out_end_as_busy_not_as_an_error() -> None:
    handle = SlowHandle(times=10_000)
    with pytest.raises(RPCError) as refused:
        await execute_update_when_admitted(handle, "decide", None, within=0.5)  # type: ignore[arg-type]
    assert is_busy(refused.value)
    # No try may wait past the patience left (the server's own wait is far longer).
    assert handle.waits and all(wait <= 1.0 for wait in handle.waits), handle.waits


class HandingOverHandle(TurningAway):
    """Turned away by a program that is continuing as new, ``times`` times (or with
    ``refusal``, another validator's word), then answers ``"done"``."""

    id = "program-handing-over"

    def __init__(self, times: int, refusal: str = f"{HANDING_OVER}: send again") -> None:
        super().__init__(times)
        self.says = refusal

    def refusal(self) -> Exception:
        return WorkflowUpdateFailedError(ApplicationError(self.says))


async def test_a_program_handing_over_to_its_next_run_is_sent_the_update_again() -> None:
    handle = HandingOverHandle(times=3)
    assert await execute_update_when_admitted(handle, "submit", None) == "done"  # type: ignore[arg-type]
    assert handle.calls == 4


async def test_a_hand_over_longer_than_the_patience_ends_as_busy() -> None:
    handle = HandingOverHandle(times=10_000)
    with pytest.raises(RPCError) as refused:
        await execute_update_when_admitted(handle, "submit", None, within=0.5)  # type: ignore[arg-type]
    # Callers show their "busy, send again" answer for it, as for an overloaded server.
    assert is_busy(refused.value) and refused.value.status is RPCStatusCode.UNAVAILABLE
    assert 2 <= handle.calls < 20


async def test_a_validators_other_refusal_is_raised_at_once() -> None:
    handle = HandingOverHandle(times=1, refusal="closed: the application deadline has passed")
    with pytest.raises(WorkflowUpdateFailedError):
        await execute_update_when_admitted(handle, "submit", None)  # type: ignore[arg-type]
    assert handle.calls == 1


class AdmittingHandle:
    """Admits ten updates at once, as the server does, and refuses the rest; each
    takes a moment. Counts what it saw."""

    id = "program-admitting"

    def __init__(self, release: asyncio.Event | None = None) -> None:
        self.in_flight = self.most = self.refused = 0
        self.order: list[int] = []
        self.release = release

    async def execute_update(
        self, update: Any, argument: int, id: str | None = None, rpc_timeout: Any = None
    ) -> int:
        if self.in_flight == 10:
            self.refused += 1
            raise RPCError("limit on number of concurrent in-flight updates", RESOURCE, b"")
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            if self.release is not None:
                await self.release.wait()
            await asyncio.sleep(0.01)
            self.order.append(argument)
            return argument
        finally:
            self.in_flight -= 1


RESOURCE = RPCStatusCode.RESOURCE_EXHAUSTED


async def test_many_senders_to_one_workflow_take_turns_in_order_and_none_is_refused() -> None:
    handle = AdmittingHandle()
    sent = await asyncio.gather(
        *(execute_update_when_admitted(handle, "submit", i) for i in range(60))  # type: ignore[arg-type]
    )
    assert sent == list(range(60))
    assert handle.refused == 0 and handle.most == IN_FLIGHT_PER_WORKFLOW
    # First come, first served: no sender overtaken by more than the others in its turn.
    assert all(
        abs(position - i) < IN_FLIGHT_PER_WORKFLOW for position, i in enumerate(handle.order)
    )


async def test_a_sender_waiting_for_its_turn_past_its_patience_is_told_busy() -> None:
    release = asyncio.Event()
    handle = AdmittingHandle(release)
    holders = [
        asyncio.create_task(execute_update_when_admitted(handle, "submit", i))  # type: ignore[arg-type]
        for i in range(IN_FLIGHT_PER_WORKFLOW)
    ]
    await asyncio.sleep(0.05)
    with pytest.raises(RPCError) as refused:
        await execute_update_when_admitted(handle, "submit", 99, within=0.2)  # type: ignore[arg-type]
    assert is_busy(refused.value) and handle.refused == 0
    release.set()
    assert await asyncio.gather(*holders) == list(range(IN_FLIGHT_PER_WORKFLOW))
    # Its turn given up, the next sender gets one at once.
    assert await execute_update_when_admitted(handle, "submit", 100, within=0.2) == 100  # type: ignore[arg-type]


def test_an_update_refused_while_the_workflow_task_fails_is_one_line_for_hr() -> None:
    refused = RPCError(
        "Unable to perform workflow execution update due to unexpected workflow task failure.",
        RPCStatusCode.FAILED_PRECONDITION,
        b"",
    )
    assert workflow_task_failing(refused)
    why = "Unable to perform workflow execution update due to unexpected workflow task failure"
    error = not_now("demo", refused, "nothing was changed")
    assert isinstance(error, ProgramError)
    assert str(error) == (
        f"program 'demo' cannot take commands now ({why}); nothing was changed."
        " `mentorflow program status demo` shows what it is waiting on; try again later"
    )
    assert str(not_now("demo", refused, "nothing was changed", workflow="pair")).startswith(
        "this pair of 'demo' cannot take commands now ("
    )
    # Any other refusal is not this one: it is raised as it came.
    other = RPCError("no such workflow", RPCStatusCode.NOT_FOUND, b"")
    assert not workflow_task_failing(other)
    assert not_now("demo", other, "nothing was changed") is other
