"""Recording running pairs and their check-in answers."""

from __future__ import annotations

from temporalio import activity

from mentorflow import people
from mentorflow.models import (
    OpenedPair,
    OpenPairsInput,
    OpenPairsResult,
    PairRecordInput,
    pair_id_of,
)
from mentorflow.store import Store


class PairActivities:
    """Holds the store that pairs and check-ins are written to."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn
    async def open_pairs(self, request: OpenPairsInput) -> OpenPairsResult:
        """Record the confirmed proposal's pairs (or a re-match) as running pairs, once."""
        if request.proposal is not None:
            stored = await self._store.proposal(request.program_id, request.proposal)
            found = stored[1] if stored is not None else []
            pairs = [(p.mentor_application_id, p.adept_application_id) for p in found]
            source = "matching"
        else:
            pairs = [(p.mentor_id, p.adept_id) for p in request.pairs]
            source = "rematch"
        opened = [
            OpenedPair(pair_id=pair_id_of(mentor, adept), mentor_id=mentor, adept_id=adept)
            for mentor, adept in pairs
        ]
        await self._store.open_pairs(
            program_id=request.program_id,
            pairs=[(p.pair_id, p.mentor_id, p.adept_id) for p in opened],
            source=source,
            at=request.at,
        )
        return OpenPairsResult(pairs=opened)

    @activity.defn
    async def record_pair(self, record: PairRecordInput) -> None:
        """Record a check-in answer, or the pair's new status (closed or ended)."""
        if record.check_in is not None and record.role and record.answer:
            await self._store.record_check_in(
                pair_id=record.pair_id,
                number=record.check_in,
                role=record.role,
                answer=record.answer,
                at=record.at,
            )
        if record.status in ("closed", "ended"):
            reason = record.closed_reason
            if reason is not None:  # HR's reason travels as its note's key
                resolver = await people.Resolver.load(self._store, record.program_id)
                reason = await resolver.text(reason)
            await self._store.set_pair_status(record.pair_id, record.status, record.at, reason)
        if record.withdrawn_id is not None:
            await self._store.set_application_status(record.withdrawn_id, "withdrawn", record.at)
