"""The matching engine: properties checked by hypothesis, the optimum by brute force."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from mentorflow import matching
from mentorflow.definition import MatchingCriterion, MatchingRules, ProgramKind
from mentorflow.matching import (
    Candidate,
    MatchingConflict,
    MatchingProblem,
    MatchingResult,
    Option,
    Reason,
    Rule,
    breakdown,
    broken_rules,
    match,
    read_reason,
)

INTERESTS = ["ai", "data", "ux", "law", "climate"]
WORDS = ["leadership", "digital", "tools", "values", "future", "trust", "change"]


@st.composite
def candidates(draw: st.DrawFn, prefix: str, count: int, mentor: bool) -> list[Candidate]:
    people = []
    for i in range(count):
        people.append(
            Candidate(
                id=f"{prefix}{i}",
                organisation_id=draw(st.sampled_from(["a", "b"])),
                department=draw(st.sampled_from(["x", "y", ""])),
                manager_id=draw(st.sampled_from(["boss1", "boss2", ""])),
                person_id=draw(st.sampled_from([f"{prefix}{i}", "boss1", ""])),
                seniority_years=draw(st.one_of(st.none(), st.integers(0, 30))),
                answers={
                    "interests": draw(st.lists(st.sampled_from(INTERESTS), max_size=3)),
                    "motivation": " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=3))),
                    "where": draw(st.sampled_from(["stockholm", "remote", "lund", ""])),
                },
                capacity=draw(st.integers(1, 2)) if mentor else 1,
            )
        )
    return people


@st.composite
def problems(draw: st.DrawFn) -> MatchingProblem:
    mentors = draw(candidates("m", draw(st.integers(0, 4)), True))
    adepts = draw(candidates("a", draw(st.integers(0, 5)), False))
    pairs = [(m.id, a.id) for m in mentors for a in adepts]
    forbidden = draw(st.lists(st.sampled_from(pairs), max_size=3, unique=True)) if pairs else []
    return MatchingProblem(
        mentors=mentors,
        adepts=adepts,
        criteria=[
            MatchingCriterion(
                name="shared_interests",
                weight=draw(st.sampled_from([1, 2, 3])),
                question="interests",
            ),
            MatchingCriterion(name="themes", weight=1, question="motivation"),
            MatchingCriterion(name="location", weight=0.5, question="where"),
        ],
        rules=MatchingRules(
            not_same_reporting_line=draw(st.booleans()),
            not_same_department=draw(st.booleans()),
            not_same_organisation=draw(st.booleans()),
            min_seniority_gap_years=draw(st.sampled_from([None, 5])),
        ),
        kind=draw(st.sampled_from(list(ProgramKind))),
        forbidden=forbidden,
        fairness=draw(st.booleans()),
    )


def score(problem: MatchingProblem, mentor: Candidate, adept: Candidate) -> float:
    return round(sum(breakdown(problem.criteria, mentor, adept).values()), 6)


def objective(
    problem: MatchingProblem, pairs: list[tuple[Candidate, Candidate]]
) -> tuple[float, ...]:
    scores = [score(problem, m, a) for m, a in pairs]
    total = round(sum(scores), 5)
    if problem.fairness:
        return (len(pairs), round(min(scores), 5) if scores else 0.0, total)
    return (len(pairs), total)


def brute_force(problem: MatchingProblem) -> tuple[float, ...]:
    """The best objective over every possible assignment (small instances only)."""
    best: tuple[float, ...] = (0, 0.0, 0.0) if problem.fairness else (0, 0.0)
    options = [None, *problem.mentors]
    for choice in itertools.product(options, repeat=len(problem.adepts)):
        load: dict[str, int] = {}
        pairs = []
        feasible = True
        for adept, mentor in zip(problem.adepts, choice, strict=True):
            if mentor is None:
                continue
            load[mentor.id] = load.get(mentor.id, 0) + 1
            if load[mentor.id] > mentor.capacity or broken_rules(problem, mentor, adept):
                feasible = False
                break
            pairs.append((mentor, adept))
        if feasible:
            best = max(best, objective(problem, pairs))
    return best


def as_pairs(problem: MatchingProblem, result: MatchingResult) -> list[tuple[Candidate, Candidate]]:
    mentors = {m.id: m for m in problem.mentors}
    adepts = {a.id: a for a in problem.adepts}
    return [(mentors[p.mentor_id], adepts[p.adept_id]) for p in result.pairs]


@settings(max_examples=250, deadline=None)
@given(problems())
def test_the_matcher_keeps_every_rule_and_capacity_and_is_optimal(problem: MatchingProblem) -> None:
    result = match(problem)
    pairs = as_pairs(problem, result)
    for mentor, adept in pairs:
        assert not broken_rules(problem, mentor, adept)
    for mentor in problem.mentors:
        assert sum(1 for m, _ in pairs if m.id == mentor.id) <= mentor.capacity
    assert len({a.id for _, a in pairs}) == len(pairs)
    # The optimum, computed independently by trying every assignment.
    assert objective(problem, pairs) == pytest.approx(brute_force(problem), abs=1e-4)
    # Everyone is either paired or listed with a reason.
    paired = {a.id for _, a in pairs} | {m.id for m, _ in pairs}
    listed = {u.candidate_id for u in result.unmatched}
    everyone = {c.id for c in [*problem.mentors, *problem.adepts]}
    assert paired | listed == everyone and not paired & listed
    assert all(u.reason for u in result.unmatched)
    # Each pair explains its score criterion by criterion.
    for pair in result.pairs:
        assert pair.score == pytest.approx(sum(pair.breakdown.values()))


@settings(max_examples=60, deadline=None)
@given(problems(), st.randoms(use_true_random=False))
def test_the_same_input_gives_the_same_pairs_in_any_order(
    problem: MatchingProblem, shuffler: random.Random
) -> None:
    mentors, adepts = list(problem.mentors), list(problem.adepts)
    shuffler.shuffle(mentors)
    shuffler.shuffle(adepts)
    shuffled = MatchingProblem(
        mentors=mentors,
        adepts=adepts,
        criteria=problem.criteria,
        rules=problem.rules,
        kind=problem.kind,
        forbidden=problem.forbidden,
        fairness=problem.fairness,
    )
    assert match(problem) == match(problem) == match(shuffled)


def person(id: str, org: str = "a", **answers: str | list[str]) -> Candidate:
    return Candidate(id=id, organisation_id=org, answers=dict(answers))


CRITERIA = [MatchingCriterion(name="shared_interests", question="interests")]


def test_more_adepts_than_mentor_places_is_reported_not_crashed() -> None:
    problem = MatchingProblem(
        mentors=[person(f"m{i}", interests=["ai"]) for i in range(5)],
        adepts=[person(f"a{i}", interests=["ai"]) for i in range(9)],
        criteria=CRITERIA,
        rules=MatchingRules(),
    )
    result = match(problem)
    assert len(result.pairs) == 5
    unmatched = [u for u in result.unmatched if u.role == "adept"]
    assert len(unmatched) == 4
    # Codes, which the review page says in the program's language.
    assert all(u.cause is Reason.NO_MENTOR_PLACE for u in unmatched)
    assert all(u.reason == "no_mentor_place" for u in unmatched)
    assert result.options == [Option.WAITLIST, Option.MORE_MENTOR_PLACES]


def test_a_hard_rule_that_excludes_someone_from_every_pair_is_named() -> None:
    problem = MatchingProblem(
        mentors=[person("m1", "a"), person("m2", "a")],
        adepts=[person("a1", "a"), person("a2", "b")],
        criteria=CRITERIA,
        rules=MatchingRules(not_same_organisation=True),
    )
    result = match(problem)
    assert [(p.mentor_id, p.adept_id) for p in result.pairs] == [("m1", "a2")]
    (excluded,) = [u for u in result.unmatched if u.candidate_id == "a1"]
    assert excluded.cause is Reason.HARD_RULES and excluded.rules == (Rule.SAME_ORGANISATION,)
    # One code, as the proposal's report keeps it, read back the same.
    assert excluded.reason == "hard_rules:same_organisation"
    assert read_reason(excluded.reason) == (Reason.HARD_RULES, (Rule.SAME_ORGANISATION,))
    assert read_reason("every pair with a mentor breaks a hard rule (same organisation)") is None
    assert Option.RELAX_RULES in result.options


def test_locks_are_kept_and_contradictions_refused_with_the_conflict_named() -> None:
    mentors = [person("m1", "a", interests=["ai"]), person("m2", "b", interests=["ux"])]
    adepts = [person("a1", "c", interests=["ai"]), person("a2", "c", interests=["ux"])]
    rules = MatchingRules(not_same_organisation=True)
    locked = match(MatchingProblem(mentors, adepts, CRITERIA, rules, locked=[("m1", "a2")]))
    assert {(p.mentor_id, p.adept_id, p.locked) for p in locked.pairs} == {
        ("m1", "a2", True),
        ("m2", "a1", False),
    }
    with pytest.raises(MatchingConflict, match="both locked and forbidden"):
        match(
            MatchingProblem(
                mentors, adepts, CRITERIA, rules, locked=[("m1", "a1")], forbidden=[("m1", "a1")]
            )
        )
    with pytest.raises(MatchingConflict, match="more than one mentor"):
        match(
            MatchingProblem(mentors, adepts, CRITERIA, rules, locked=[("m1", "a1"), ("m2", "a1")])
        )
    same_org = [person("a3", "a")]
    with pytest.raises(MatchingConflict, match="breaks a hard rule: same organisation"):
        match(MatchingProblem(mentors, same_org, CRITERIA, rules, locked=[("m1", "a3")]))


def test_fairness_raises_the_worst_pair_at_some_cost_to_the_total() -> None:
    # By total: m1-a1 (1) and m2-a2 (0). Fairly: m1-a2 and m2-a1 (1/3 each).
    mentors = [person("m1", interests=["a", "b"]), person("m2", interests=["b", "x"])]
    adepts = [person("a1", interests=["a", "b"]), person("a2", interests=["a", "y"])]
    plain = match(MatchingProblem(mentors, adepts, CRITERIA, MatchingRules()))
    fair = match(MatchingProblem(mentors, adepts, CRITERIA, MatchingRules(), fairness=True))
    assert [(p.mentor_id, p.adept_id) for p in plain.pairs] == [("m1", "a1"), ("m2", "a2")]
    assert [(p.mentor_id, p.adept_id) for p in fair.pairs] == [("m1", "a2"), ("m2", "a1")]
    assert fair.worst_score == pytest.approx(1 / 3, abs=1e-5) and plain.worst_score == 0
    assert fair.total_score < plain.total_score


@settings(max_examples=150, deadline=None)
@given(problems())
def test_every_way_of_scoring_gives_the_same_optimum(problem: MatchingProblem) -> None:
    """Big vocabularies (sparse counts), scores from several tables or none, and
    blocks of rows: paths the small problems above never take, forced here."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(matching, "_DENSE_VOCABULARY", 2)
        patch.setattr(matching, "_TABLE_LIMIT", 40)
        patch.setattr(matching, "_BLOCK_ROWS", 2)
        result = match(problem)
    pairs = as_pairs(problem, result)
    for mentor, adept in pairs:
        assert not broken_rules(problem, mentor, adept)
    assert objective(problem, pairs) == pytest.approx(brute_force(problem), abs=1e-4)
    for pair, (mentor, adept) in zip(result.pairs, pairs, strict=True):
        assert pair.breakdown == breakdown(problem.criteria, mentor, adept)


def reference(problem: MatchingProblem) -> tuple[float, ...]:
    """The objective by the textbook route, pair by pair in Python: the assignment
    solver on mentor places × adepts, with fairness a bisection over every score."""
    places = [m for m in problem.mentors for _ in range(m.capacity)]
    scores = np.array([[score(problem, m, a) for a in problem.adepts] for m in places])
    allowed = np.array(
        [[not broken_rules(problem, m, a) for a in problem.adepts] for m in places], dtype=bool
    )
    bonus = 10.0 * (len(problem.adepts) + 1) * sum(c.weight for c in problem.criteria)

    def solve(usable: np.ndarray) -> list[float]:
        rows, cols = linear_sum_assignment(np.where(usable, scores + bonus, 0.0), maximize=True)
        return [scores[r, c] for r, c in zip(rows, cols, strict=True) if usable[r, c]]

    best = solve(allowed)
    if problem.fairness and best:
        for level in sorted(set(scores[allowed].tolist()), reverse=True):
            chosen = solve(allowed & (scores >= level))
            if len(chosen) == len(best):
                best = chosen
                break
        return (len(best), round(min(best), 5), round(sum(best), 5))
    return (len(best), round(sum(best), 5))


@pytest.mark.parametrize("seed", range(6))
def test_larger_problems_reach_the_textbook_optimum(seed: int) -> None:
    rng = random.Random(seed)

    def people(prefix: str, count: int, mentor: bool) -> list[Candidate]:
        return [
            Candidate(
                id=f"{prefix}{i:03d}",
                organisation_id=rng.choice("abcd"),
                department=rng.choice(["x", "y", ""]),
                manager_id=rng.choice(["boss1", "boss2", "boss3", ""]),
                person_id=f"{prefix}{i}",
                seniority_years=rng.choice([None, *range(30)]),
                answers={
                    "interests": rng.sample(INTERESTS, rng.randrange(0, 4)),
                    "motivation": " ".join(rng.sample(WORDS, rng.randrange(0, 5))),
                    "where": rng.choice(["stockholm", "remote", "lund", ""]),
                },
                capacity=rng.choice([1, 1, 2]) if mentor else 1,
            )
            for i in range(count)
        ]

    mentors, adepts = people("m", 30, True), people("a", 45, False)
    problem = MatchingProblem(
        mentors=mentors,
        adepts=adepts,
        criteria=[
            MatchingCriterion(name="shared_interests", weight=2, question="interests"),
            MatchingCriterion(name="themes", weight=1, question="motivation"),
            MatchingCriterion(name="location", weight=0.5, question="where"),
        ],
        rules=MatchingRules(
            not_same_reporting_line=True,
            not_same_organisation=seed % 2 == 0,
            min_seniority_gap_years=5 if seed % 3 else None,
        ),
        kind=list(ProgramKind)[seed % 3],
        forbidden=[(m.id, a.id) for m, a in zip(mentors[:5], adepts[:5], strict=True)],
        fairness=seed % 2 == 1,
    )
    assert objective(problem, as_pairs(problem, match(problem))) == pytest.approx(
        reference(problem), abs=1e-4
    )
