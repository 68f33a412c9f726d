"""Heartbeats that a short activity does not pay for."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from temporalio import activity

# Well under every heartbeat timeout the workflows set (60 s): an attempt that dies
# before its first heartbeat still times out then, counted from its start.
QUIET = timedelta(seconds=10)


class Pulse:
    """Heartbeats the running activity, from ``QUIET`` after the pulse was made (one per
    delivery, so an attempt is never quiet for much longer than ``QUIET``).

    The SDK sends an activity's first heartbeat at once (later ones at most every
    0.8 heartbeat timeouts), and each one is a write to the workflow's state on the
    Temporal server. An email activity heartbeats before each email: most send one
    email in well under a second, and so paid one server write per email for nothing
    (2,000 of them in a program of 1,000 applicants, a fifth of the server's writes
    beyond the bare baseline's). The heartbeat timeout counts from the attempt's
    start until the first heartbeat, so a quiet start detects a dead worker as soon.
    """

    def __init__(self) -> None:
        self._from = time.monotonic() + QUIET.total_seconds()

    def __call__(self, *details: Any) -> None:
        if time.monotonic() >= self._from:
            activity.heartbeat(*details)
