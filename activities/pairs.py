"""Recording running pairs and their check-in answers."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from mentorflow import people
from mentorflow.definition import stored_definition
from mentorflow.models import (
    OpenedPair,
    OpenPairsInput,
    OpenPairsResult,
    PairRecordInput,
    RematchCheckInput,
    RematchCheckResult,
    pair_id_of,
)
from mentorflow.store import Store
from mentorflow.tally import group_of


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
        groups = {
            row.id: group_of(row.organisation_id, row.profile_id)
            for row in await self._store.applications(request.program_id)
        }
        opened = [
            OpenedPair(
                pair_id=pair_id_of(mentor, adept),
                mentor_id=mentor,
                adept_id=adept,
                mentor_group=groups.get(mentor, ""),
                adept_group=groups.get(adept, ""),
            )
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
    async def check_rematch(self, request: RematchCheckInput) -> RematchCheckResult:
        """May HR pair the remaining participant of a closed pair with this partner?

        Refusals are typed (``unknown``, ``conflict``) and not retried.
        """
        pairs = await self._store.pairs(request.program_id)
        busy = {
            member
            for pair in pairs
            if pair.status == "active"
            for member in (pair.mentor_application_id, pair.adept_application_id)
        }
        remaining = request.remaining_id
        left_alone = any(
            remaining in (pair.mentor_application_id, pair.adept_application_id)
            for pair in pairs
            if pair.status == "closed"
        )
        if not left_alone or remaining in busy:
            _refuse("unknown", f"{remaining} is not the remaining participant of a closed pair")
        partner = await self._store.application(request.partner_id)
        if (
            partner is None
            or partner.program_id != request.program_id
            or partner.status != "approved"
            or partner.selection not in ("waitlisted", "accepted")
            or partner.id in busy
        ):
            _refuse(
                "unknown",
                f"{request.partner_id} is not on the wait-list (nor accepted and unpaired)",
            )
        assert partner is not None
        program = await self._store.program(request.program_id)
        assert program is not None
        definition = stored_definition(program.definition)
        left = await self._store.application(remaining)
        assert left is not None
        roles = [definition.profile(row.profile_id) for row in (left, partner)]
        if roles[0] is None or roles[1] is None or roles[0].role is roles[1].role:
            _refuse("conflict", "both have the same role; pair a mentor with an adept")
        assert roles[0] is not None
        mentor, adept = (
            (remaining, partner.id) if roles[0].role.value == "mentor" else (partner.id, remaining)
        )
        return RematchCheckResult(
            mentor_id=mentor,
            adept_id=adept,
            partner_accepted=partner.selection == "accepted",
            partner_organisation=partner.organisation_id,
        )

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


def _refuse(kind: str, detail: str) -> None:
    raise ApplicationError(f"{kind}: {detail}", type=kind, non_retryable=True)
