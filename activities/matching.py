"""HR's capacity decision and matching: recording decisions, proposing and confirming pairs."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from temporalio import activity

from mentorflow import people
from mentorflow.matching import Candidate, MatchingConflict, MatchingProblem, match
from mentorflow.models import (
    ConfirmMatchesInput,
    MatchingSummary,
    ProposeMatchesInput,
    ProposeMatchesResult,
    SelectionRecordInput,
)
from mentorflow.store import Store
from mentorflow.store.tables import Application, MatchPair, MatchProposal


class MatchingActivities:
    """Holds the store that decisions and proposals are read from and written to."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn
    async def record_selections(self, record: SelectionRecordInput) -> None:
        """Record an organisation's capacity decision on each of its applicants."""
        resolver = await people.Resolver.load(self._store, record.program_id)
        await self._store.record_selections(
            program_id=record.program_id,
            selections={k: v.value for k, v in record.selections.items()},
            decided_by=await resolver.who(record.decided_by),
            channel=record.channel,
            at=record.at,
        )

    @activity.defn
    async def propose_matches(self, request: ProposeMatchesInput) -> ProposeMatchesResult:
        """Pair the accepted mentors and adepts; store the proposal under its number (once)."""
        stored = await self._store.proposal(request.program_id, request.proposal)
        if stored is not None:  # a retry after the proposal was written
            return ProposeMatchesResult(summary=summarise(*stored))
        rows = [
            row
            for row in await self._store.applications(request.program_id)
            if row.status == "approved" and row.selection == "accepted"
        ]
        matching = request.matching
        problem = MatchingProblem(
            mentors=[
                candidate(row, matching.seniority_question, matching.hard_rules.mentor_capacity)
                for row in rows
                if row.profile_id in request.mentor_profiles
            ],
            adepts=[
                candidate(row, matching.seniority_question)
                for row in rows
                if row.profile_id in request.adept_profiles
            ],
            criteria=matching.criteria,
            rules=matching.hard_rules,
            kind=request.kind,
            locked=[(p.mentor_id, p.adept_id) for p in request.locks],
            forbidden=[(p.mentor_id, p.adept_id) for p in request.forbids],
            fairness=matching.fairness,
        )
        try:
            # Thousands of candidates take seconds of CPU: keep the worker's loop free.
            result = await asyncio.to_thread(match, problem)
        except MatchingConflict as conflict:
            return ProposeMatchesResult(conflict=str(conflict))
        report: dict[str, Any] = {
            "unmatched": [
                {"id": u.candidate_id, "role": u.role, "reason": u.reason} for u in result.unmatched
            ],
            "options": result.options,
            "locks": [p.model_dump() for p in request.locks],
            "forbids": [p.model_dump() for p in request.forbids],
        }
        await self._store.save_proposal(
            program_id=request.program_id,
            number=request.proposal,
            total_score=round(result.total_score, 6),
            worst_score=result.worst_score,
            report=report,
            pairs=[(p.mentor_id, p.adept_id, p.score, p.breakdown, p.locked) for p in result.pairs],
            at=request.at,
        )
        stored = await self._store.proposal(request.program_id, request.proposal)
        assert stored is not None
        return ProposeMatchesResult(summary=summarise(*stored))

    @activity.defn
    async def confirm_matches(self, request: ConfirmMatchesInput) -> None:
        resolver = await people.Resolver.load(self._store, request.program_id)
        await self._store.confirm_proposal(
            program_id=request.program_id,
            number=request.proposal,
            confirmed_by=await resolver.who(request.confirmed_by),
            at=request.at,
        )


def candidate(row: Application, seniority_question: str | None, capacity: int = 1) -> Candidate:
    """An accepted application as the matcher sees it: ids and answers, no names."""
    years = None
    if seniority_question is not None:
        found = re.search(r"\d+", str(row.answers.get(seniority_question, "")))
        years = int(found.group()) if found else None
    return Candidate(
        id=row.id,
        organisation_id=row.organisation_id,
        department=row.department.strip().lower(),
        # Reporting lines are seen through email addresses: someone's manager is
        # the person whose own address is the manager address they gave.
        manager_id=row.manager_email.strip().lower(),
        person_id=row.email.strip().lower(),
        seniority_years=years,
        answers=dict(row.answers),
        capacity=capacity,
    )


def summarise(proposal: MatchProposal, pairs: list[MatchPair]) -> MatchingSummary:
    unmatched = proposal.report.get("unmatched", [])
    return MatchingSummary(
        proposal=proposal.number,
        pairs=len(pairs),
        locked=sum(1 for p in pairs if p.locked),
        unmatched_mentors=sum(1 for u in unmatched if u["role"] == "mentor"),
        unmatched_adepts=sum(1 for u in unmatched if u["role"] == "adept"),
        total_score=proposal.total_score,
        worst_score=proposal.worst_score,
        options=list(proposal.report.get("options", [])),
    )
