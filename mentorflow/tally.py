"""A program's application counts: all it knows of its applicants.

The applications themselves live in the database and run in their own
workflows; the program reads their counts per organisation and profile from the
database when a phase needs them (``on_record``), so its state and every
continue-as-new stay the same size whether ten people apply or 5,000, and no
application sends it anything. (Applications of earlier runs told it by small
signals, which ``applied`` and ``decided`` count.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, Field

OUTCOMES = ("approved", "declined", "withdrawn")
# Applications that have no answer yet, as the database has them.
UNDECIDED_STATUSES = ("submitted", "awaiting_approval", "escalated")
# HR's capacity decision among the approved ("declined" is the manager's answer).
SELECTIONS = {"accepted": "accepted", "waitlisted": "waitlisted", "declined": "not_selected"}
# Every count a tally's totals may hold.
COUNTED = frozenset({"applied", *OUTCOMES, "pending", *SELECTIONS.values()})


def group_of(organisation_id: str, profile_id: str) -> str:
    return f"{organisation_id}/{profile_id}"


class Tally(BaseModel):
    """Counts per ``organisation/profile``: applied, pending, each outcome and selection."""

    groups: dict[str, dict[str, int]] = Field(default_factory=dict)

    def add(self, group: str, changes: Mapping[str, int]) -> None:
        counts = self.groups.setdefault(group, {})
        for key, change in changes.items():
            counts[key] = counts.get(key, 0) + change

    def applied(self, group: str) -> None:
        self.add(group, {"applied": 1, "pending": 1})

    def decided(
        self, group: str, outcome: str, *, previous: str | None, selection: str | None
    ) -> None:
        """An application got ``outcome``; ``previous`` is the one it had (None: pending),
        ``selection`` HR's decision on it when it leaves the approved."""
        changes = {outcome: 1, previous or "pending": -1}
        if previous == "approved" and selection is not None:
            changes.update({"selected": -1, SELECTIONS[selection]: -1})
        self.add(group, changes)

    def set_selections(self, group: str, counts: Mapping[str, int]) -> None:
        """HR's selections in ``group`` are now ``counts`` (accepted, waitlisted, declined:
        absolute, so that a retried decision counts once)."""
        current = self.groups.get(group, {})
        changes = {
            key: counts.get(selection, 0) - current.get(key, 0)
            for selection, key in SELECTIONS.items()
        }
        changes["selected"] = sum(counts.values()) - current.get("selected", 0)
        self.add(group, changes)

    def count(self, key: str, organisation_id: str | None = None) -> int:
        return sum(
            counts.get(key, 0)
            for group, counts in self.groups.items()
            if organisation_id is None or group.partition("/")[0] == organisation_id
        )

    @property
    def pending(self) -> int:
        return self.count("pending")

    def approved_by_profile(self, organisation_id: str) -> dict[str, int]:
        found: dict[str, int] = {}
        for group, counts in self.groups.items():
            organisation, _, profile = group.partition("/")
            if organisation == organisation_id:
                found[profile] = found.get(profile, 0) + counts.get("approved", 0)
        return found

    def totals(self) -> dict[str, int]:
        """applied, approved, declined, withdrawn, pending; and, once HR has chosen
        among the approved, accepted, waitlisted and not_selected."""
        totals = {key: self.count(key) for key in ("applied", *OUTCOMES, "pending")}
        if self.count("selected"):
            totals.update({key: self.count(key) for key in SELECTIONS.values()})
        return totals

    def breakdown(self) -> dict[str, dict[str, int]]:
        keys = ("applied", *OUTCOMES, "pending")
        return {
            group: {key: counts.get(key, 0) for key in keys}
            for group, counts in sorted(self.groups.items())
            if counts.get("applied", 0)
        }


def on_record(rows: Iterable[tuple[str, str, str, str | None, int]]) -> Tally:
    """The tally of the database's applications, from rows of (organisation, profile,
    status, HR's selection, how many): the counts the signals of earlier runs added up."""
    tally = Tally()
    for organisation_id, profile_id, status, selection, n in rows:
        key = "pending" if status in UNDECIDED_STATUSES else status
        changes = {"applied": n, key: n}
        if status == "approved" and selection in SELECTIONS:
            changes.update({"selected": n, SELECTIONS[selection]: n})
        tally.add(group_of(organisation_id, profile_id), changes)
    return tally
