"""HR's review of the proposed pairs as rules: which actions the program takes now,
and what the locks and forbids become. Pure, so they are tested without Temporal."""

from __future__ import annotations

from mentorflow.models import MatchingState, MatchReviewRequest, PairRef, ProgramPhase


def refusal(
    phase: ProgramPhase, matching: MatchingState, request: MatchReviewRequest
) -> str | None:
    """Why the program cannot take ``request`` now, or None. Whether the pairs it names
    are accepted participants is checked against the database by the matcher."""
    summary = matching.summary
    if phase is not ProgramPhase.MATCH_REVIEW or summary is None:
        return f"closed: the pairs are not under review (phase {phase.value})"
    if matching.confirmed_by is not None:
        return f"closed: the pairs were confirmed by {matching.confirmed_by}"
    if request.action == "confirm":
        if request.proposal != summary.proposal:
            return (
                f"stale: proposal {request.proposal} was replaced by proposal"
                f" {summary.proposal}; review the new one"
            )
        return None
    if request.action == "rerun":
        return None
    for pair in named_pairs(request):
        if pair is None:
            return f"incomplete: {request.action} needs a pair"
    if request.action == "lock" and request.pair in matching.forbids:
        return "conflict: the pair is forbidden; allow it before locking it"
    if request.action == "forbid" and request.pair in matching.locks:
        return "conflict: the pair is locked; unlock it before forbidding it"
    return None


def named_pairs(request: MatchReviewRequest) -> list[PairRef | None]:
    if request.action in ("confirm", "rerun"):
        return []
    return [request.pair, request.other] if request.action == "swap" else [request.pair]


def adjusted(
    matching: MatchingState, request: MatchReviewRequest
) -> tuple[list[PairRef], list[PairRef]]:
    """The locks and forbids after ``request``."""
    locks, forbids = list(matching.locks), list(matching.forbids)
    pair = request.pair
    if request.action == "lock" and pair is not None and pair not in locks:
        locks.append(pair)
    elif request.action == "unlock":
        locks = [p for p in locks if p != pair]
    elif request.action == "forbid" and pair is not None and pair not in forbids:
        forbids.append(pair)
    elif request.action == "allow":
        forbids = [p for p in forbids if p != pair]
    elif request.action == "swap" and pair is not None and request.other is not None:
        other = request.other
        moved = {pair.adept_id, other.adept_id, pair.mentor_id, other.mentor_id}
        # The swapped pairs replace any lock held by the people they move.
        locks = [p for p in locks if p.adept_id not in moved and p.mentor_id not in moved]
        locks += [
            PairRef(mentor_id=pair.mentor_id, adept_id=other.adept_id),
            PairRef(mentor_id=other.mentor_id, adept_id=pair.adept_id),
        ]
    return locks, forbids
