"""The matching engine: pairs mentors with adepts, optimally and explainably.

Pure and deterministic (no I/O, no clock): the same input always gives the
same pairs. The objective, in order:

1. as many pairs as the hard rules and mentor capacities allow;
2. with ``fairness``, the best possible worst pair (the lowest pair score is
   as high as it can be without losing a pair);
3. the highest total score.

Each level is solved exactly with an assignment solver (SciPy's
``linear_sum_assignment``, a Jonker-Volgenant implementation) on a matrix of
mentor places × adepts, where a mentor with capacity k has k places. Every
pair carries its score broken down by criterion; everyone left unmatched is
listed with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix

from mentorflow.definition import MatchingCriterion, MatchingRules, ProgramKind

Answer = str | list[str]


@dataclass(frozen=True)
class Candidate:
    """A mentor or an adept, as the matcher sees them (no names or emails needed)."""

    id: str
    organisation_id: str
    department: str = ""
    manager_id: str = ""  # who they report to (any stable id, e.g. a hashed email)
    person_id: str = ""  # their own id in the same scheme, to see reporting lines
    seniority_years: int | None = None
    answers: dict[str, Answer] = field(default_factory=dict)
    capacity: int = 1  # mentors only: how many adepts they take


@dataclass(frozen=True)
class MatchingProblem:
    mentors: Sequence[Candidate]
    adepts: Sequence[Candidate]
    criteria: Sequence[MatchingCriterion]
    rules: MatchingRules
    kind: ProgramKind = ProgramKind.REVERSE
    locked: Sequence[tuple[str, str]] = ()  # (mentor id, adept id) HR fixed
    forbidden: Sequence[tuple[str, str]] = ()  # (mentor id, adept id) HR ruled out
    fairness: bool = False


@dataclass(frozen=True)
class Pair:
    mentor_id: str
    adept_id: str
    score: float
    breakdown: dict[str, float]  # criterion -> weighted contribution
    locked: bool = False


@dataclass(frozen=True)
class Unmatched:
    candidate_id: str
    role: Literal["mentor", "adept"]
    reason: str


@dataclass(frozen=True)
class MatchingResult:
    pairs: list[Pair]
    unmatched: list[Unmatched]
    options: list[str]  # what HR can do about the unmatched, if anyone is

    @property
    def total_score(self) -> float:
        return sum(p.score for p in self.pairs)

    @property
    def worst_score(self) -> float | None:
        return min((p.score for p in self.pairs), default=None)


class MatchingConflict(ValueError):
    """Locks and forbids (or locks and hard rules) that cannot all hold; names the conflict."""


# --- Scores and rules ------------------------------------------------------------------------


def _as_set(answer: Answer | None) -> set[str]:
    if answer is None:
        return set()
    if isinstance(answer, list):
        return {a.strip().lower() for a in answer if a.strip()}
    return {a.strip().lower() for a in re.split(r"[;,]", answer) if a.strip()}


def _words(answer: Answer | None) -> set[str]:
    text = " ".join(answer) if isinstance(answer, list) else (answer or "")
    return {w for w in re.findall(r"\w+", text.lower()) if len(w) >= 4}


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def criterion_score(criterion: MatchingCriterion, mentor: Candidate, adept: Candidate) -> float:
    """How well a pair meets one criterion, from 0 to 1 (before its weight)."""
    key = criterion.question or criterion.name
    left, right = mentor.answers.get(key), adept.answers.get(key)
    if criterion.name == "themes":
        return _jaccard(_words(left), _words(right))
    if criterion.name == "location":
        a, b = _as_set(left), _as_set(right)
        if "remote" in a or "remote" in b:
            return 1.0
        return 1.0 if a and a == b else 0.0
    return _jaccard(_as_set(left), _as_set(right))


def breakdown(
    criteria: Sequence[MatchingCriterion], mentor: Candidate, adept: Candidate
) -> dict[str, float]:
    return {
        c.question or c.name: round(c.weight * criterion_score(c, mentor, adept), 6)
        for c in criteria
    }


def broken_rules(problem: MatchingProblem, mentor: Candidate, adept: Candidate) -> list[str]:
    """The hard rules a pair would break (empty when it is allowed)."""
    rules, broken = problem.rules, []
    if rules.not_same_reporting_line and (
        (mentor.manager_id and mentor.manager_id == adept.manager_id)
        or (mentor.person_id and mentor.person_id == adept.manager_id)
        or (adept.person_id and adept.person_id == mentor.manager_id)
    ):
        broken.append("same reporting line")
    if rules.not_same_organisation and mentor.organisation_id == adept.organisation_id:
        broken.append("same organisation")
    if (
        rules.not_same_department
        and mentor.organisation_id == adept.organisation_id
        and mentor.department
        and mentor.department == adept.department
    ):
        broken.append("same department")
    gap = rules.min_seniority_gap_years
    if gap is not None and mentor.seniority_years is not None and adept.seniority_years is not None:
        difference = {
            ProgramKind.REVERSE: adept.seniority_years - mentor.seniority_years,
            ProgramKind.CLASSIC: mentor.seniority_years - adept.seniority_years,
            ProgramKind.MUTUAL: abs(adept.seniority_years - mentor.seniority_years),
        }[problem.kind]
        if difference < gap:
            broken.append(f"seniority gap under {gap} years")
    if (mentor.id, adept.id) in set(problem.forbidden):
        broken.append("forbidden by HR")
    return broken


# --- Solving ---------------------------------------------------------------------------------


def score_matrix(problem: MatchingProblem) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """(scores, allowed), mentors × adepts, in the problem's order.

    The same arithmetic as :func:`breakdown` and :func:`broken_rules`, done on
    whole matrices at once so that thousands of candidates score in seconds.
    """
    mentors, adepts = problem.mentors, problem.adepts
    scores = np.zeros((len(mentors), len(adepts)))
    for criterion in problem.criteria:
        key = criterion.question or criterion.name
        if criterion.name == "location":
            part = _location_matrix(
                [_as_set(m.answers.get(key)) for m in mentors],
                [_as_set(a.answers.get(key)) for a in adepts],
            )
        else:
            words = _words if criterion.name == "themes" else _as_set
            part = _jaccard_matrix(
                [words(m.answers.get(key)) for m in mentors],
                [words(a.answers.get(key)) for a in adepts],
            )
        scores += np.round(criterion.weight * part, 6)
    return scores, _allowed_matrix(problem)


def _jaccard_matrix(left: list[set[str]], right: list[set[str]]) -> NDArray[np.float64]:
    vocabulary = {w: k for k, w in enumerate(sorted(set().union(*left, *right)))}

    def binary(sets: list[set[str]]) -> csr_matrix:
        rows = [i for i, words in enumerate(sets) for _ in words]
        cols = [vocabulary[w] for words in sets for w in words]
        data = np.ones(len(rows))
        return csr_matrix((data, (rows, cols)), shape=(len(sets), max(len(vocabulary), 1)))

    a, b = binary(left), binary(right)
    shared = np.asarray((a @ b.T).todense(), dtype=float)
    size_a = np.array([len(x) for x in left], dtype=float)[:, None]
    size_b = np.array([len(x) for x in right], dtype=float)[None, :]
    union = size_a + size_b - shared
    with np.errstate(divide="ignore", invalid="ignore"):
        result: NDArray[np.float64] = np.where((size_a > 0) & (size_b > 0), shared / union, 0.0)
    return result


def _location_matrix(left: list[set[str]], right: list[set[str]]) -> NDArray[np.float64]:
    codes: dict[frozenset[str], int] = {}
    left_code = np.array(
        [codes.setdefault(frozenset(x), len(codes)) if x else -1 for x in left], dtype=np.int64
    )
    right_code = np.array(
        [codes.setdefault(frozenset(x), len(codes)) if x else -1 for x in right], dtype=np.int64
    )
    remote_left = np.array(["remote" in x for x in left], dtype=bool)[:, None]
    remote_right = np.array(["remote" in x for x in right], dtype=bool)[None, :]
    same = (left_code[:, None] == right_code[None, :]) & (left_code[:, None] >= 0)
    result: NDArray[np.float64] = (same | remote_left | remote_right).astype(float)
    return result


def _codes(values: list[str], table: dict[str, int]) -> NDArray[np.int64]:
    """Integer codes of strings, the empty string as -1 (never equal to anything)."""
    return np.array([table.setdefault(v, len(table)) if v else -1 for v in values], dtype=np.int64)


def _allowed_matrix(problem: MatchingProblem) -> NDArray[np.bool_]:
    mentors, adepts, rules = problem.mentors, problem.adepts, problem.rules
    allowed = np.ones((len(mentors), len(adepts)), dtype=bool)
    if not mentors or not adepts:
        return allowed

    def equal(left: NDArray[np.int64], right: NDArray[np.int64]) -> NDArray[np.bool_]:
        same: NDArray[np.bool_] = (left[:, None] == right[None, :]) & (left[:, None] >= 0)
        return same

    people: dict[str, int] = {}
    if rules.not_same_reporting_line:
        m_manager = _codes([m.manager_id for m in mentors], people)
        a_manager = _codes([a.manager_id for a in adepts], people)
        m_person = _codes([m.person_id for m in mentors], people)
        a_person = _codes([a.person_id for a in adepts], people)
        allowed &= ~(equal(m_manager, a_manager) | equal(m_person, a_manager))
        allowed &= ~((a_person[None, :] == m_manager[:, None]) & (a_person[None, :] >= 0))
    organisations: dict[str, int] = {}
    m_org = _codes([m.organisation_id for m in mentors], organisations)
    a_org = _codes([a.organisation_id for a in adepts], organisations)
    if rules.not_same_organisation:
        allowed &= ~equal(m_org, a_org)
    if rules.not_same_department:
        departments: dict[str, int] = {}
        m_dept = _codes([m.department for m in mentors], departments)
        a_dept = _codes([a.department for a in adepts], departments)
        allowed &= ~(equal(m_org, a_org) & equal(m_dept, a_dept))
    gap = rules.min_seniority_gap_years
    if gap is not None:
        m_years = np.array(
            [np.nan if m.seniority_years is None else m.seniority_years for m in mentors]
        )[:, None]
        a_years = np.array(
            [np.nan if a.seniority_years is None else a.seniority_years for a in adepts]
        )[None, :]
        difference = {
            ProgramKind.REVERSE: a_years - m_years,
            ProgramKind.CLASSIC: m_years - a_years,
            ProgramKind.MUTUAL: np.abs(a_years - m_years),
        }[problem.kind]
        with np.errstate(invalid="ignore"):
            allowed &= ~(~np.isnan(difference) & (difference < gap))
    mentor_at = {m.id: i for i, m in enumerate(mentors)}
    adept_at = {a.id: j for j, a in enumerate(adepts)}
    for mentor_id, adept_id in problem.forbidden:
        if mentor_id in mentor_at and adept_id in adept_at:
            allowed[mentor_at[mentor_id], adept_at[adept_id]] = False
    return allowed


def _solve(
    scores: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    places: Sequence[int],
    bonus: float,
) -> list[tuple[int, int]]:
    """Max pairs, then max total score; mentor i may take ``places[i]`` adepts."""
    rows = [i for i, capacity in enumerate(places) for _ in range(capacity)]
    if not rows or scores.shape[1] == 0:
        return []
    expanded = scores[rows] + bonus
    # Forbidden cells can still be "chosen" by the solver when nothing better is
    # left; they score 0 and are dropped, which leaves that person unmatched.
    expanded = np.where(allowed[rows], expanded, 0.0)
    row_index, col_index = linear_sum_assignment(expanded, maximize=True)
    return sorted(
        (rows[r], int(c)) for r, c in zip(row_index, col_index, strict=True) if allowed[rows[r], c]
    )


def match(problem: MatchingProblem) -> MatchingResult:
    """Pair the problem's mentors and adepts; see the module docstring for the objective."""
    mentors = sorted(problem.mentors, key=lambda c: c.id)
    adepts = sorted(problem.adepts, key=lambda c: c.id)
    problem = MatchingProblem(
        mentors=mentors,
        adepts=adepts,
        criteria=problem.criteria,
        rules=problem.rules,
        kind=problem.kind,
        locked=sorted(problem.locked),
        forbidden=sorted(problem.forbidden),
        fairness=problem.fairness,
    )
    mentor_at = {m.id: i for i, m in enumerate(mentors)}
    adept_at = {a.id: j for j, a in enumerate(adepts)}
    _check_locks(problem, mentor_at, adept_at)

    scores, allowed = score_matrix(problem)
    places = [max(m.capacity, 0) for m in mentors]
    locked_pairs = [(mentor_at[m], adept_at[a]) for m, a in problem.locked]
    for i, j in locked_pairs:
        places[i] -= 1
        allowed[:, j] = False  # the adept is taken
    # More than any total of real scores can differ by (a pair scores at most the
    # sum of the weights), so one more pair always outweighs any gain in score.
    most_pairs = min(sum(places), len(adepts)) + 1
    bonus = most_pairs * max(1.0, sum(c.weight for c in problem.criteria))

    chosen = _solve(scores, allowed, places, bonus)
    if problem.fairness and chosen:
        chosen = _fairest(scores, allowed, places, bonus, len(chosen))

    pairs = [_pair(problem, mentors[i], adepts[j], locked=True) for i, j in locked_pairs] + [
        _pair(problem, mentors[i], adepts[j]) for i, j in chosen
    ]
    pairs.sort(key=lambda p: (p.mentor_id, p.adept_id))
    unmatched = _unmatched(problem, pairs, _allowed_matrix(problem))
    return MatchingResult(pairs=pairs, unmatched=unmatched, options=_options(problem, unmatched))


def _fairest(
    scores: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    places: Sequence[int],
    bonus: float,
    count: int,
) -> list[tuple[int, int]]:
    """Among the matchings with ``count`` pairs, the best worst pair, then the best total."""
    thresholds = np.unique(scores[allowed])
    low, high = 0, len(thresholds) - 1
    best = _solve(scores, allowed, places, bonus)
    # Binary search: the highest threshold that still allows ``count`` pairs.
    while low <= high:
        middle = (low + high) // 2
        candidate = _solve(scores, allowed & (scores >= thresholds[middle]), places, bonus)
        if len(candidate) == count:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


def _pair(
    problem: MatchingProblem, mentor: Candidate, adept: Candidate, *, locked: bool = False
) -> Pair:
    parts = breakdown(problem.criteria, mentor, adept)
    return Pair(mentor.id, adept.id, round(sum(parts.values()), 6), parts, locked)


def _check_locks(
    problem: MatchingProblem, mentor_at: dict[str, int], adept_at: dict[str, int]
) -> None:
    forbidden = set(problem.forbidden)
    taken: dict[str, int] = {}
    seen_adepts: set[str] = set()
    for mentor_id, adept_id in problem.locked:
        if mentor_id not in mentor_at or adept_id not in adept_at:
            raise MatchingConflict(f"locked pair {mentor_id} + {adept_id}: unknown participant")
        if (mentor_id, adept_id) in forbidden:
            raise MatchingConflict(f"{mentor_id} + {adept_id} is both locked and forbidden")
        if adept_id in seen_adepts:
            raise MatchingConflict(f"adept {adept_id} is locked to more than one mentor")
        seen_adepts.add(adept_id)
        taken[mentor_id] = taken.get(mentor_id, 0) + 1
        mentor = problem.mentors[mentor_at[mentor_id]]
        if taken[mentor_id] > mentor.capacity:
            raise MatchingConflict(
                f"mentor {mentor_id} is locked to {taken[mentor_id]} adepts but takes"
                f" {mentor.capacity}"
            )
        broken = broken_rules(problem, mentor, problem.adepts[adept_at[adept_id]])
        if broken:
            raise MatchingConflict(
                f"locked pair {mentor_id} + {adept_id} breaks a hard rule: {', '.join(broken)}"
            )


def _unmatched(
    problem: MatchingProblem, pairs: list[Pair], score_allowed: NDArray[np.bool_]
) -> list[Unmatched]:
    matched_adepts = {p.adept_id for p in pairs}
    load: dict[str, int] = {}
    for p in pairs:
        load[p.mentor_id] = load.get(p.mentor_id, 0) + 1
    free_places = sum(max(m.capacity - load.get(m.id, 0), 0) for m in problem.mentors)
    result = []
    for j, adept in enumerate(problem.adepts):
        if adept.id in matched_adepts:
            continue
        if not score_allowed[:, j].any():
            rules = sorted({r for m in problem.mentors for r in broken_rules(problem, m, adept)})
            reason = "every pair with a mentor breaks a hard rule (" + ", ".join(rules) + ")"
        elif free_places == 0:
            reason = "no mentor place left: more adepts than mentor places"
        else:
            reason = "every mentor it may pair with is taken by other adepts"
        result.append(Unmatched(adept.id, "adept", reason))
    for i, mentor in enumerate(problem.mentors):
        if load.get(mentor.id, 0) > 0:
            continue
        if not score_allowed[i, :].any():
            rules = sorted({r for a in problem.adepts for r in broken_rules(problem, mentor, a)})
            reason = "every pair with an adept breaks a hard rule (" + ", ".join(rules) + ")"
        else:
            reason = "every adept it may pair with is paired with someone else"
        result.append(Unmatched(mentor.id, "mentor", reason))
    return result


def _options(problem: MatchingProblem, unmatched: list[Unmatched]) -> list[str]:
    if not any(u.role == "adept" for u in unmatched):
        return []
    options = ["wait-list the unmatched adepts"]
    if any("mentor place" in u.reason or "taken" in u.reason for u in unmatched):
        options.append("raise a mentor's capacity, or accept more mentors")
    if any("hard rule" in u.reason for u in unmatched):
        options.append("relax a hard rule (or a forbid) that excludes them")
    return options
