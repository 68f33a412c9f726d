"""HR's capacity decision and matching: recording decisions, proposing and confirming pairs."""

from __future__ import annotations

import asyncio
import functools
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from mentorflow import capacity, people
from mentorflow.definition import ProgramDefinition, Role, UndecidedPolicy, stored_definition
from mentorflow.models import (
    ConfirmMatchesInput,
    MatchingSummary,
    PairRef,
    ProposeMatchesInput,
    ProposeMatchesResult,
    SelectionDecisionInput,
    SelectionRecordInput,
    SelectionsRecorded,
)
from mentorflow.store import Store
from mentorflow.store.tables import Application, MatchPair, MatchProposal
from mentorflow.tally import group_of

if TYPE_CHECKING:
    from mentorflow.matching import Candidate


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
    async def decide_selections(self, request: SelectionDecisionInput) -> SelectionsRecorded:
        """Check an organisation's selections against its approved applicants (or let the
        policy choose them, first come first served), record them, and count them.

        A refusal is typed (``unknown``, ``incomplete``, ``over_cap``) and not retried.
        """
        definition = await self._definition(request.program_id)
        organisation = request.organisation_id
        approved = [
            row
            for row in await self._store.applications(request.program_id)
            if row.organisation_id == organisation and row.status == "approved"
        ]
        if request.policy is not None:
            selections = capacity.undecided_selections(
                UndecidedPolicy(request.policy),
                [(row.id, row.profile_id) for row in approved],  # in the order they came
                functools.partial(definition.cap, organisation),
            )
        else:
            selections = request.selections
            if request.channel != "rematch":
                _check_complete(definition, organisation, selections, approved)
            elif not set(selections) <= {row.id for row in approved}:
                _refuse("unknown", f"{', '.join(selections)} is not approved in {organisation}")
        resolver = await people.Resolver.load(self._store, request.program_id)
        await self._store.record_selections(
            program_id=request.program_id,
            selections={k: v.value for k, v in selections.items()},
            decided_by=await resolver.who(request.decided_by),
            channel=request.channel,
            at=request.at,
        )
        chosen = Counter(selection.value for selection in selections.values())
        # Absolute counts of the organisation's approved applicants (retried, the same).
        counts: dict[str, dict[str, int]] = {}
        for row in approved:
            selection = selections[row.id].value if row.id in selections else row.selection
            group = counts.setdefault(group_of(row.organisation_id, row.profile_id), {})
            if selection is not None:
                group[selection] = group.get(selection, 0) + 1
        return SelectionsRecorded(
            changes=counts,
            accepted=chosen["accepted"],
            waitlisted=chosen["waitlisted"],
            declined=chosen["declined"],
        )

    async def _definition(self, program_id: str) -> ProgramDefinition:
        row = await self._store.program(program_id)
        if row is None or not row.definition:
            raise ApplicationError(f"program {program_id} has no definition in this database")
        return stored_definition(row.definition)

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
        if request.check_accepted:
            _check_accepted(request, {row.id: row.profile_id for row in rows})
        # Imported here, not above: the matcher's numpy and SciPy take a second to import,
        # and every CLI command and the web app import this module through workflows.
        from mentorflow.matching import MatchingConflict, MatchingProblem, match

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


def _refuse(kind: str, detail: str) -> None:
    raise ApplicationError(f"{kind}: {detail}", type=kind, non_retryable=True)


def _check_complete(
    definition: ProgramDefinition,
    organisation: str,
    selections: dict[str, Any],
    approved: list[Application],
) -> None:
    """HR's decision names each approved applicant once and keeps within the caps."""
    profiles = {row.id: row.profile_id for row in approved}
    unknown = sorted(set(selections) - set(profiles))
    if unknown:
        _refuse("unknown", f"{', '.join(unknown)} is not an approved applicant of {organisation}")
    missing = len(set(profiles) - set(selections))
    if missing:
        _refuse("incomplete", f"{missing} approved applicant(s) have no decision")
    for profile in definition.profiles:
        cap = definition.cap(organisation, profile.id)
        accepted = sum(
            1
            for application_id, selection in selections.items()
            if selection.value == "accepted" and profiles[application_id] == profile.id
        )
        if cap is not None and accepted > cap:
            _refuse(
                "over_cap",
                f"{profile.title}: {accepted} accepted, the cap for {organisation} is {cap}",
            )


def _check_accepted(request: ProposeMatchesInput, accepted: dict[str, str]) -> None:
    """Each pair HR's action names is an accepted mentor and an accepted adept."""
    roles = {profile: Role.MENTOR for profile in request.mentor_profiles}
    roles.update({profile: Role.ADEPT for profile in request.adept_profiles})
    pair: PairRef
    for pair in request.check_accepted:
        for application_id, role in ((pair.mentor_id, Role.MENTOR), (pair.adept_id, Role.ADEPT)):
            profile = accepted.get(application_id)
            if profile is None or roles.get(profile) is not role:
                _refuse("unknown", f"{application_id} is not an accepted {role.value}")


def candidate(row: Application, seniority_question: str | None, capacity: int = 1) -> Candidate:
    """An accepted application as the matcher sees it: ids and answers, no names."""
    from mentorflow.matching import Candidate

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
