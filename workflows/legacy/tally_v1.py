"""ApplicationTally: a program's application counts, kept as the applications change.

The program shows its counts in the Temporal UI after every application, and
its waits ask "is anyone still pending?" on every workflow task. Counting
thousands of applications each time made the program's own work grow with
the square of the applicants (measured in ``bench/program_scale.py``: over half
of the worker's workflow time at 2,000 applicants); the tally answers in
constant time instead.
"""

from __future__ import annotations

from collections import Counter

from mentorflow.models import ApplicationOutcome, Selection
from workflows.legacy.state_v1 import ApplicationEntry

_OUTCOMES = ("approved", "declined", "withdrawn", "pending")
_SELECTIONS = {
    Selection.ACCEPTED: "accepted",
    Selection.WAITLISTED: "waitlisted",
    Selection.DECLINED: "not_selected",  # "declined" is the manager's answer
}


def _keys(entry: ApplicationEntry) -> list[str]:
    keys = ["applied", entry.outcome or "pending"]
    if entry.outcome == ApplicationOutcome.APPROVED.value and entry.selection is not None:
        keys += ["selected", _SELECTIONS[entry.selection]]
    return keys


class ApplicationTally:
    """Counts by outcome and by HR's selection; told of every entry that changes."""

    def __init__(self, entries: dict[str, ApplicationEntry] | None = None) -> None:
        self._counts: Counter[str] = Counter()
        for entry in (entries or {}).values():
            self._counts.update(_keys(entry))

    def replace(self, old: ApplicationEntry | None, new: ApplicationEntry) -> None:
        """One application was added (``old`` is None) or changed from ``old`` to ``new``."""
        if old is not None:
            self._counts.subtract(_keys(old))
        self._counts.update(_keys(new))

    @property
    def pending(self) -> int:
        return self._counts["pending"]

    def totals(self) -> dict[str, int]:
        """applied, approved, declined, withdrawn, pending; and, once HR has chosen
        among the approved, accepted, waitlisted and not_selected."""
        totals = {"applied": self._counts["applied"]}
        totals.update({key: self._counts[key] for key in _OUTCOMES})
        if self._counts["selected"]:
            totals.update({key: self._counts[key] for key in _SELECTIONS.values()})
        return totals
