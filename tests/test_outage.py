"""mentorflow.web.outage: when a page decides that Temporal is down."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from mentorflow.web import outage


class Temporal:
    """A client whose health check answers after ``delay`` seconds, counted."""

    def __init__(self, delay: float = 0.0) -> None:
        self.checks = 0
        self.delay = delay
        self.service_client = SimpleNamespace(check_health=self.check_health)

    async def check_health(self) -> bool:
        self.checks += 1
        await asyncio.sleep(self.delay)
        return True


async def test_a_recent_answer_stands_for_the_next_requests_check() -> None:
    """Seen at 5,000 applicants from 20 clients: a check per click on a busy server took
    over three seconds, and a click got the outage page while every update went through."""
    temporal: Any = Temporal()
    for _ in range(5):
        await outage.ensure_up(temporal)
    assert temporal.checks == 1
    # After a call failed, the page asks again: a recent answer does not do then.
    await outage.unless_down(temporal, RuntimeError("the call failed"))
    assert temporal.checks == 2


async def test_without_a_recent_answer_a_slow_check_is_an_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outage, "PROBE_SECONDS", 0.05)
    monkeypatch.setattr(outage, "HEALTHY_FOR_SECONDS", 0.0)
    temporal: Any = Temporal(delay=0.2)
    with pytest.raises(outage.Unavailable):
        await outage.ensure_up(temporal)
    temporal.delay = 0.0
    await outage.ensure_up(temporal)  # answers again: no outage
    await outage.ensure_up(temporal)  # and, with no window, it is asked each time
    assert temporal.checks == 3
