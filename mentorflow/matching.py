"""The matching engine: pairs mentors with adepts, optimally and explainably.

Pure and deterministic (no I/O, no clock): the same input always gives the
same pairs. The objective, in order:

1. as many pairs as the hard rules and mentor capacities allow;
2. with ``fairness``, the best possible worst pair (the lowest pair score is
   as high as it can be without losing a pair);
3. the highest total score.

Levels 1 and 3 are solved exactly with an assignment solver (SciPy's
``linear_sum_assignment``, a Jonker-Volgenant implementation) on a matrix of
mentor places × adepts, where a mentor with capacity k has k places; level 2
with maximum matchings (Hopcroft-Karp) over the score levels, then the solver
once. Scores and rules are computed for all pairs at once (see "Scores of
every pair at once"); only the chosen pairs are explained, each with its
score broken down by criterion; everyone left unmatched is listed with the
reason. Reasons, rules and options are codes (:class:`Reason`, :class:`Rule`,
:class:`Option`), which the review page says in the program's language.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

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


class Rule(StrEnum):
    """A hard rule a pair can break."""

    SAME_REPORTING_LINE = "same_reporting_line"
    SAME_ORGANISATION = "same_organisation"
    SAME_DEPARTMENT = "same_department"
    SENIORITY_GAP = "seniority_gap"  # under the rules' min_seniority_gap_years
    FORBIDDEN = "forbidden"  # by HR, on the review page


class Reason(StrEnum):
    """Why someone is left without a pair."""

    HARD_RULES = "hard_rules"  # every pair with the other side breaks a hard rule
    NO_MENTOR_PLACE = "no_mentor_place"  # an adept: more adepts than mentor places
    MENTORS_TAKEN = "mentors_taken"  # an adept: every mentor it may pair with is taken
    ADEPTS_TAKEN = "adepts_taken"  # a mentor: every adept it may pair with is paired


class Option(StrEnum):
    """What HR can do about the unmatched."""

    WAITLIST = "waitlist_unmatched"  # wait-list the unmatched adepts
    MORE_MENTOR_PLACES = "more_mentor_places"  # raise a capacity, or accept more mentors
    RELAX_RULES = "relax_rules"  # relax a hard rule (or a forbid) that excludes them


@dataclass(frozen=True)
class Unmatched:
    candidate_id: str
    role: Literal["mentor", "adept"]
    cause: Reason
    rules: tuple[Rule, ...] = ()  # with HARD_RULES: the rules that exclude them

    @property
    def reason(self) -> str:
        """The reason as one code, as a proposal's report keeps it: the cause, and the
        rules after a colon ("hard_rules:forbidden,same_organisation")."""
        return f"{self.cause}:{','.join(self.rules)}" if self.rules else str(self.cause)


def read_reason(code: str) -> tuple[Reason, tuple[Rule, ...]] | None:
    """A reason's code read back: (cause, rules); None for what is not one (a proposal
    made before reasons were codes kept the engine's English)."""
    cause, _, rules = code.partition(":")
    try:
        return Reason(cause), tuple(Rule(rule) for rule in rules.split(",") if rule)
    except ValueError:
        return None


@dataclass(frozen=True)
class MatchingResult:
    pairs: list[Pair]
    unmatched: list[Unmatched]
    options: list[str]  # Option codes: what HR can do about the unmatched, if anyone is

    @property
    def total_score(self) -> float:
        return sum(p.score for p in self.pairs)

    @property
    def worst_score(self) -> float | None:
        return min((p.score for p in self.pairs), default=None)


class MatchingConflict(ValueError):
    """Locks and forbids (or locks and hard rules) that cannot all hold; names the conflict."""


# --- Scores and rules, one pair at a time: the reference the matrices below follow ----------


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


def _tokens(criterion: MatchingCriterion, answer: Answer | None) -> set[str]:
    return _words(answer) if criterion.name == "themes" else _as_set(answer)


def _part(criterion: MatchingCriterion, left: set[str], right: set[str]) -> float:
    if criterion.name == "location":
        if "remote" in left or "remote" in right:
            return 1.0
        return 1.0 if left and left == right else 0.0
    return _jaccard(left, right)


def criterion_score(criterion: MatchingCriterion, mentor: Candidate, adept: Candidate) -> float:
    """How well a pair meets one criterion, from 0 to 1 (before its weight)."""
    key = criterion.question or criterion.name
    return _part(
        criterion,
        _tokens(criterion, mentor.answers.get(key)),
        _tokens(criterion, adept.answers.get(key)),
    )


def breakdown(
    criteria: Sequence[MatchingCriterion], mentor: Candidate, adept: Candidate
) -> dict[str, float]:
    return {
        c.question or c.name: round(c.weight * criterion_score(c, mentor, adept), 6)
        for c in criteria
    }


def broken_rules(problem: MatchingProblem, mentor: Candidate, adept: Candidate) -> list[Rule]:
    """The hard rules a pair would break (empty when it is allowed)."""
    rules, broken = problem.rules, []
    if rules.not_same_reporting_line and (
        (mentor.manager_id and mentor.manager_id == adept.manager_id)
        or (mentor.person_id and mentor.person_id == adept.manager_id)
        or (adept.person_id and adept.person_id == mentor.manager_id)
    ):
        broken.append(Rule.SAME_REPORTING_LINE)
    if rules.not_same_organisation and mentor.organisation_id == adept.organisation_id:
        broken.append(Rule.SAME_ORGANISATION)
    if (
        rules.not_same_department
        and mentor.organisation_id == adept.organisation_id
        and mentor.department
        and mentor.department == adept.department
    ):
        broken.append(Rule.SAME_DEPARTMENT)
    gap = rules.min_seniority_gap_years
    if gap is not None and mentor.seniority_years is not None and adept.seniority_years is not None:
        difference = {
            ProgramKind.REVERSE: adept.seniority_years - mentor.seniority_years,
            ProgramKind.CLASSIC: mentor.seniority_years - adept.seniority_years,
            ProgramKind.MUTUAL: abs(adept.seniority_years - mentor.seniority_years),
        }[problem.kind]
        if difference < gap:
            broken.append(Rule.SENIORITY_GAP)
    if (mentor.id, adept.id) in set(problem.forbidden):
        broken.append(Rule.FORBIDDEN)
    return broken


def rule_in_words(rule: Rule, rules: MatchingRules) -> str:
    """A rule in the engine's English, as a conflict's message names it."""
    if rule is Rule.SENIORITY_GAP:
        return f"seniority gap under {rules.min_seniority_gap_years} years"
    if rule is Rule.FORBIDDEN:
        return "forbidden by HR"
    return rule.value.replace("_", " ")


# --- Scores of every pair at once --------------------------------------------------------------
#
# A pair's score on a criterion depends on a few small integers only: how many
# answers the two share and how many each gave (or, for location, whether they
# name the same place and whether either is remote). Each criterion packs them
# into one integer code per pair, and the codes of several criteria into one,
# all of it one matrix product of short per-person feature vectors. A table
# indexed by that code holds the pair's score, worked out by the same
# arithmetic as :func:`breakdown`, so the solver optimises exactly the scores
# the pairs are explained with, and no Python runs per pair.

# Above this many distinct answers a criterion counts shared ones with a sparse
# product: a dense one-hot matrix would make the matrix product slow.
_DENSE_VOCABULARY = 256
# Codes per table: a table of at most 8 MB, and codes exact in float32 (< 2**24).
_TABLE_LIMIT = 1 << 20


class _Tokens:
    """Each criterion's answers as token sets, mentors and adepts, read once per match."""

    def __init__(
        self,
        criteria: Sequence[MatchingCriterion],
        mentors: Sequence[Candidate],
        adepts: Sequence[Candidate],
    ) -> None:
        self.left: list[list[set[str]]] = []
        self.right: list[list[set[str]]] = []
        for criterion in criteria:
            key = criterion.question or criterion.name
            # Many people give the same answer (a place, a few interests): parse each once.
            seen: dict[object, set[str]] = {}
            self.left.append([_read(criterion, m.answers.get(key), seen) for m in mentors])
            self.right.append([_read(criterion, a.answers.get(key), seen) for a in adepts])


def _read(
    criterion: MatchingCriterion, answer: Answer | None, seen: dict[object, set[str]]
) -> set[str]:
    token = tuple(answer) if isinstance(answer, list) else answer
    if token not in seen:
        seen[token] = _tokens(criterion, answer)
    return seen[token]


@dataclass
class _Coded:
    """One criterion as codes: code(i, j) = left[i] · right[j], plus shared(i, j) if sparse."""

    size: int  # codes run from 0 to size - 1
    table: NDArray[np.float64]  # the weighted, rounded score of each code
    left: NDArray[np.float64]  # mentors × features
    right: NDArray[np.float64]  # adepts × features
    weight: float
    shared: tuple[csr_matrix, csr_matrix] | None = None
    step: int = 1  # overlap codes: shared + step * (sizes summed)


def _positions(
    sets: list[set[str]], vocabulary: dict[str, int], seen: dict[int, list[int]]
) -> tuple[list[int], list[int]]:
    """(row, column) of each token in a one-hot matrix of ``sets``, growing ``vocabulary``."""
    rows: list[int] = []
    cols: list[int] = []
    for i, tokens in enumerate(sets):
        # _Tokens hands the same set to everyone who gave the same answer.
        found = seen.get(id(tokens))
        if found is None:
            found = seen[id(tokens)] = [vocabulary.setdefault(t, len(vocabulary)) for t in tokens]
        rows.extend([i] * len(found))
        cols.extend(found)
    return rows, cols


def _code(criterion: MatchingCriterion, left: list[set[str]], right: list[set[str]]) -> _Coded:
    weight = criterion.weight
    m, n = len(left), len(right)
    if criterion.name == "location":
        # Code: same place + 2 × mentor remote + 4 × adept remote; any of them scores 1.
        places: dict[frozenset[str], int] = {}
        left_place = [places.setdefault(frozenset(x), len(places)) if x else -1 for x in left]
        right_place = [places.setdefault(frozenset(x), len(places)) if x else -1 for x in right]
        width = len(places) + 2
        lf, rf = np.zeros((m, width)), np.zeros((n, width))
        for features, codes in ((lf, left_place), (rf, right_place)):
            at = np.array(codes, dtype=np.int64)
            known = np.flatnonzero(at >= 0)
            features[known, at[known]] = 1.0
        lf[:, -2] = [2.0 if "remote" in x else 0.0 for x in left]
        lf[:, -1] = 4.0
        rf[:, -2] = 1.0
        rf[:, -1] = [1.0 if "remote" in x else 0.0 for x in right]
        table = np.array([round(weight * (1.0 if k else 0.0), 6) for k in range(8)])
        return _Coded(8, table, lf, rf, weight)

    # Code: shared + step × (size on the left + size on the right).
    vocabulary: dict[str, int] = {}
    seen: dict[int, list[int]] = {}
    left_at, right_at = _positions(left, vocabulary, seen), _positions(right, vocabulary, seen)
    left_size = np.array([len(x) for x in left], dtype=np.float64)
    right_size = np.array([len(x) for x in right], dtype=np.float64)
    most_left = int(left_size.max(initial=0))
    most_right = int(right_size.max(initial=0))
    step = min(most_left, most_right) + 1
    size = step * (most_left + most_right + 1)
    shared_at = np.arange(size) % step
    sizes_at = np.arange(size) // step
    # len(a & b) / len(a | b) as in _jaccard, for the codes that can occur.
    table = np.array(
        [
            round(weight * (s / (t - s) if 0 < s < t else 0.0), 6)
            for s, t in zip(shared_at.tolist(), sizes_at.tolist(), strict=True)
        ]
        if size <= _TABLE_LIMIT
        else [],
        dtype=np.float64,
    )
    sizes_left = np.column_stack([step * left_size, np.full(m, float(step))])
    sizes_right = np.column_stack([np.ones(n), right_size])
    width = len(vocabulary)
    if width <= _DENSE_VOCABULARY:
        lf, rf = np.zeros((m, width + 2)), np.zeros((n, width + 2))
        lf[left_at] = 1.0
        rf[right_at] = 1.0
        lf[:, width:], rf[:, width:] = sizes_left, sizes_right
        return _Coded(size, table, lf, rf, weight, step=step)
    a = csr_matrix((np.ones(len(left_at[0])), left_at), shape=(m, width))
    b = csr_matrix((np.ones(len(right_at[0])), right_at), shape=(n, width))
    return _Coded(size, table, sizes_left, sizes_right, weight, shared=(a, b), step=step)


# Rows of the score matrix worked out at a time: a block's codes stay in cache,
# and their temporaries (codes as floats, then as indices) never exist for the
# whole matrix, only its scores do.
_BLOCK_ROWS = 256


@dataclass
class _Group:
    """Criteria whose codes pack into one table: one matrix product, one gather."""

    items: list[_Coded]
    left: csr_matrix  # mentors × features, each criterion's scaled by its stride
    right: NDArray[Any]  # features × adepts
    shared: list[tuple[int, csr_matrix]]  # (stride, shared counts) of big vocabularies
    table: NDArray[np.float64] | None  # None: one criterion scored directly

    @classmethod
    def of(cls, items: list[_Coded], sign: float) -> _Group:
        strides = np.cumprod([1] + [item.size for item in items[:-1]]).tolist()
        direct = len(items[0].table) == 0
        # Codes below 2**24 are exact in float32: half the memory to write.
        dtype = np.float64 if direct else np.float32
        left = np.hstack([item.left * stride for item, stride in zip(items, strides, strict=True)])
        right = np.hstack([item.right for item in items]).T
        shared = [
            (int(stride), (item.shared[0] @ item.shared[1].T).tocsr())
            for item, stride in zip(items, strides, strict=True)
            if item.shared is not None
        ]
        table = None
        if not direct:
            table = items[0].table
            for item in items[1:]:
                # Summed criterion by criterion, in order, as breakdown()'s sum is.
                table = (table[None, :] + item.table[:, None]).ravel()
            table = sign * table
        # The left side is one-hot but for a few sizes: as a sparse matrix its
        # product with the dense right side runs on one thread. (Through BLAS the
        # product is quicker alone, and many times slower when other processes
        # keep the cores busy: BLAS threads wait on each other.)
        return cls(
            items,
            csr_matrix(left.astype(dtype)),
            np.ascontiguousarray(right, dtype=dtype),
            shared,
            table,
        )

    def codes(self, low: int, high: int) -> NDArray[Any]:
        code: NDArray[Any] = np.asarray(self.left[low:high] @ self.right)
        for stride, product in self.shared:
            block = product[low:high].tocoo()
            # Each (row, col) occurs once in a product's result, so += is safe here.
            code[block.row, block.col] += stride * block.data
        return code

    def direct(self, code: NDArray[Any], sign: float) -> NDArray[np.float64]:
        """A criterion with answers too long for a table: its overlap, computed as such."""
        (item,) = self.items
        sizes, shared = np.divmod(code, item.step)
        with np.errstate(divide="ignore", invalid="ignore"):
            part = np.where(shared > 0, shared / (sizes - shared), 0.0)
        result: NDArray[np.float64] = sign * np.round(item.weight * part, 6)
        return result


def _pair_scores(
    criteria: Sequence[MatchingCriterion],
    tokens: _Tokens,
    shape: tuple[int, int],
    *,
    levels: bool,
    negate: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None, list[_Coded]]:
    """The score of every pair, mentors × adepts (negated with ``negate``: the
    solver's costs); with ``levels`` the scores that occur, sorted; the coded criteria."""
    m, n = shape
    if not criteria or m == 0 or n == 0:
        return np.zeros(shape), (np.zeros(1) if levels else None), []
    coded = [_code(c, tokens.left[k], tokens.right[k]) for k, c in enumerate(criteria)]
    parts: list[list[_Coded]] = [[]]
    size = 1
    for item in coded:
        if parts[-1] and size * item.size > _TABLE_LIMIT:
            parts.append([])
            size = 1
        parts[-1].append(item)
        size *= item.size
    sign = -1.0 if negate else 1.0
    groups = [_Group.of(items, sign) for items in parts]
    # With one table, the scores that occur are its entries whose codes occur.
    single = groups[0].table if len(groups) == 1 else None
    counts = np.zeros(len(single), dtype=np.intp) if levels and single is not None else None
    scores = np.empty(shape)
    for low in range(0, m, _BLOCK_ROWS):
        high = min(low + _BLOCK_ROWS, m)
        out = scores[low:high]
        for k, group in enumerate(groups):
            code = group.codes(low, high)
            if group.table is None:
                part = group.direct(code, sign)
            else:
                # Native-width indices and no bounds check (every code is below the
                # table's size by construction): a gather several times faster.
                index = code.astype(np.intp)
                if counts is not None:
                    counts += np.bincount(index.ravel(), minlength=len(counts))
                if k == 0:
                    group.table.take(index, mode="clip", out=out)
                    continue
                part = group.table.take(index, mode="clip")
            if k == 0:
                out[...] = part
            else:
                out += part
    found = None
    if levels:
        if single is not None and counts is not None:
            found = np.unique(sign * single[counts > 0])
        else:
            found = np.unique(sign * scores)
    return scores, found, coded


def _rule_masks(problem: MatchingProblem) -> list[tuple[Rule, NDArray[np.bool_]]]:
    """Each hard rule in force, with the pairs (mentors × adepts) that break it."""
    mentors, adepts, rules = problem.mentors, problem.adepts, problem.rules
    shape = (len(mentors), len(adepts))
    masks: list[tuple[Rule, NDArray[np.bool_]]] = []

    def codes(values: list[str], table: dict[str, int], empty: int) -> NDArray[np.int64]:
        # An empty value equals nothing: a code of its own per side (-1 or -2).
        return np.array([table.setdefault(v, len(table)) if v else empty for v in values], np.int64)

    if rules.not_same_reporting_line:
        people: dict[str, int] = {}
        m_manager = codes([m.manager_id for m in mentors], people, -1)
        m_person = codes([m.person_id for m in mentors], people, -1)
        a_manager = codes([a.manager_id for a in adepts], people, -2)
        a_person = codes([a.person_id for a in adepts], people, -2)
        line = np.zeros(shape, dtype=bool)
        _mark_equal(m_manager, a_manager, line)
        _mark_equal(m_person, a_manager, line)
        _mark_equal(m_manager, a_person, line)
        masks.append((Rule.SAME_REPORTING_LINE, line))
    organisations: dict[str, int] = {}
    # broken_rules compares organisations as they are, empty ones too.
    m_org = np.array(
        [organisations.setdefault(m.organisation_id, len(organisations)) for m in mentors], np.int64
    )[:, None]
    a_org = np.array(
        [organisations.setdefault(a.organisation_id, len(organisations)) for a in adepts], np.int64
    )[None, :]
    if rules.not_same_organisation:
        masks.append((Rule.SAME_ORGANISATION, m_org == a_org))
    if rules.not_same_department:
        departments: dict[str, int] = {}
        m_dept = codes([m.department for m in mentors], departments, -1)[:, None]
        a_dept = codes([a.department for a in adepts], departments, -2)[None, :]
        same = m_dept == a_dept
        same &= m_org == a_org
        masks.append((Rule.SAME_DEPARTMENT, same))
    gap = rules.min_seniority_gap_years
    if gap is not None:
        # Unknown years are NaN, and every comparison with NaN is false: no rule broken.
        m_years = np.array(
            [np.nan if m.seniority_years is None else m.seniority_years for m in mentors]
        )
        a_years = np.array(
            [np.nan if a.seniority_years is None else a.seniority_years for a in adepts]
        )[None, :]
        if problem.kind == ProgramKind.REVERSE:  # adept - mentor < gap
            short = a_years < (m_years + gap)[:, None]
        elif problem.kind == ProgramKind.CLASSIC:  # mentor - adept < gap
            short = a_years > (m_years - gap)[:, None]
        else:  # |adept - mentor| < gap
            short = a_years > (m_years - gap)[:, None]
            short &= a_years < (m_years + gap)[:, None]
        masks.append((Rule.SENIORITY_GAP, short))
    if problem.forbidden:
        mentor_at = {m.id: i for i, m in enumerate(mentors)}
        adept_at = {a.id: j for j, a in enumerate(adepts)}
        forbidden = np.zeros(shape, dtype=bool)
        for mentor_id, adept_id in problem.forbidden:
            if mentor_id in mentor_at and adept_id in adept_at:
                forbidden[mentor_at[mentor_id], adept_at[adept_id]] = True
        masks.append((Rule.FORBIDDEN, forbidden))
    return masks


def _mark_equal(left: NDArray[np.int64], right: NDArray[np.int64], out: NDArray[np.bool_]) -> None:
    """Set ``out[i, j]`` where ``left[i] == right[j]`` (negative codes equal nothing).

    People share a manager in small groups, so few of the millions of pairs
    match: those are found through a sparse product of one-hot codes instead of
    comparing every pair. Codes shared widely (over about 1 in 64 pairs) are
    compared pair by pair, which is then the cheaper.
    """
    known_left, known_right = np.flatnonzero(left >= 0), np.flatnonzero(right >= 0)
    width = int(max(left.max(initial=-1), right.max(initial=-1))) + 1
    if width == 0:
        return
    matches = np.bincount(left[known_left], minlength=width) @ np.bincount(
        right[known_right], minlength=width
    )
    if matches * 64 > out.size:
        out |= left[:, None] == right[None, :]
        return
    ones_left, ones_right = np.ones(len(known_left)), np.ones(len(known_right))
    a = csr_matrix((ones_left, (known_left, left[known_left])), shape=(len(left), width))
    b = csr_matrix((ones_right, (known_right, right[known_right])), shape=(len(right), width))
    hits = (a @ b.T).tocoo()
    out[hits.row, hits.col] = True


def _blocked(
    masks: list[tuple[Rule, NDArray[np.bool_]]], shape: tuple[int, int]
) -> NDArray[np.bool_]:
    blocked = np.zeros(shape, dtype=bool)
    for _, mask in masks:
        blocked |= mask
    return blocked


def score_matrix(problem: MatchingProblem) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """(scores, allowed), mentors × adepts, in the problem's order.

    The same arithmetic as :func:`breakdown` and :func:`broken_rules`, done on
    whole matrices at once.
    """
    shape = (len(problem.mentors), len(problem.adepts))
    tokens = _Tokens(problem.criteria, problem.mentors, problem.adepts)
    scores, _, _ = _pair_scores(problem.criteria, tokens, shape, levels=False)
    return scores, ~_blocked(_rule_masks(problem), shape)


# --- Solving -------------------------------------------------------------------------------
#
# The solver minimises a cost matrix of mentor places × adepts: an allowed pair
# costs minus its score, any other cell ``bonus``, more than any total of real
# scores can differ by. Every assignment fills the same number of cells, so
# fewer forbidden cells always win first: the most pairs, then the best total.


def _solve(
    cost: NDArray[np.float64], rows: NDArray[np.intp], bonus: float
) -> list[tuple[int, int]]:
    """Max pairs, then max total score; ``rows`` maps each place to its mentor."""
    if len(rows) == 0 or cost.shape[1] == 0:
        return []
    expanded = cost if _one_place_each(rows, cost.shape[0]) else cost[rows]
    row_index, col_index = linear_sum_assignment(expanded)
    # A forbidden cell is "chosen" only when nothing allowed is left for that
    # row: dropping it leaves the person unmatched.
    keep = expanded[row_index, col_index] < bonus
    return sorted(zip(rows[row_index[keep]].tolist(), col_index[keep].tolist(), strict=True))


def _one_place_each(rows: NDArray[np.intp], mentors: int) -> bool:
    return len(rows) == mentors and bool((rows == np.arange(mentors)).all())


def _most_pairs(usable: NDArray[np.bool_]) -> int:
    """The size of a maximum matching on the usable cells (Hopcroft-Karp)."""
    row, col = np.nonzero(usable)
    pointers = np.zeros(usable.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=usable.shape[0]), out=pointers[1:])
    graph = csr_matrix((np.ones(len(col), dtype=np.int8), col, pointers), shape=usable.shape)
    matched = maximum_bipartite_matching(graph, perm_type="column")
    return int((matched >= 0).sum())


def _fairest(
    cost: NDArray[np.float64],
    rows: NDArray[np.intp],
    bonus: float,
    levels: NDArray[np.float64],
) -> list[tuple[int, int]]:
    """The most pairs; among those, the best worst pair; then the best total.

    The worst pair is found with maximum matchings (Hopcroft-Karp: cheap) as the
    test "can this many pairs be made from pairs scoring at least this much?",
    first at the highest level possible, then, if need be, searching the score
    levels below it; only the final matching, the best total above that level,
    needs the assignment solver.
    """
    if len(rows) == 0 or cost.shape[1] == 0:
        return []
    expanded = cost if _one_place_each(rows, cost.shape[0]) else cost[rows]
    # Each adept's and each mentor place's best score (-bonus: nobody allowed).
    best_adept, best_place = -expanded.min(axis=0), -expanded.min(axis=1)
    best_adept, best_place = best_adept[best_adept > -bonus], best_place[best_place > -bonus]
    most = min(len(best_adept), len(best_place))  # no more pairs than this

    def ceiling(count: int) -> float:
        # No worst pair above what the count-th best adept (or place) can reach.
        return float(min(np.sort(best_adept)[-count], np.sort(best_place)[-count]))

    if most == 0:
        return []
    # Usually everyone who may pair can, at the ceiling itself: then one maximum
    # matching on the few pairs above it settles both the count and the level.
    level = ceiling(most)
    if _most_pairs(expanded <= -level) < most:
        count = _most_pairs(expanded < bonus)
        level = _highest_level(expanded, levels, ceiling(count), count)
    final = np.where(expanded <= -level, expanded, bonus)
    return sorted((int(rows[i]), j) for i, j in _solve(final, np.arange(len(rows)), bonus))


def _highest_level(
    expanded: NDArray[np.float64], levels: NDArray[np.float64], ceiling: float, count: int
) -> float:
    """The highest score level whose pairs alone still make ``count`` pairs."""
    candidates = levels[: np.searchsorted(levels, ceiling, side="right")][::-1]

    def enough(k: int) -> bool:
        return _most_pairs(expanded <= -candidates[k]) == count

    # The lowest level keeps every usable cell, so it is always enough. Gallop
    # down from the ceiling, then bisect: the answer is usually near the top.
    low, high, probe, stride = -1, len(candidates) - 1, 0, 1
    while probe < high:
        if enough(probe):
            high = probe
            break
        low, probe, stride = probe, min(probe + stride, high), stride * 2
    while high - low > 1:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return float(candidates[high])


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

    shape = (len(mentors), len(adepts))
    tokens = _Tokens(problem.criteria, mentors, adepts)
    masks = _rule_masks(problem)
    blocked = _blocked(masks, shape)
    places = [max(m.capacity, 0) for m in mentors]
    locked_pairs = [(mentor_at[m], adept_at[a]) for m, a in problem.locked]
    for i, _ in locked_pairs:
        places[i] -= 1
    # More than any total of real scores can differ by (a pair scores at most the
    # sum of the weights), so one more pair always outweighs any gain in score.
    most_pairs = min(sum(places), len(adepts)) + 1
    bonus = most_pairs * max(1.0, sum(c.weight for c in problem.criteria))

    cost, levels, coded = _pair_scores(
        problem.criteria, tokens, shape, levels=problem.fairness, negate=True
    )
    np.copyto(cost, bonus, where=blocked)
    for _, j in locked_pairs:
        cost[:, j] = bonus  # the adept is taken
    rows = np.repeat(np.arange(len(mentors)), places)
    if problem.fairness:
        assert levels is not None
        chosen = _fairest(cost, rows, bonus, levels)
    else:
        chosen = _solve(cost, rows, bonus)

    # Only the chosen pairs are explained.
    kept = [(i, j, True) for i, j in locked_pairs] + [(i, j, False) for i, j in chosen]
    explained = _explain(problem.criteria, coded, tokens, [(i, j) for i, j, _ in kept])
    pairs = [
        Pair(mentors[i].id, adepts[j].id, round(sum(parts.values()), 6), parts, locked)
        for (i, j, locked), parts in zip(kept, explained, strict=True)
    ]
    pairs.sort(key=lambda p: (p.mentor_id, p.adept_id))
    unmatched = _unmatched(problem, pairs, masks, blocked)
    return MatchingResult(pairs=pairs, unmatched=unmatched, options=_options(problem, unmatched))


def _explain(
    criteria: Sequence[MatchingCriterion],
    coded: list[_Coded],
    tokens: _Tokens,
    pairs: list[tuple[int, int]],
) -> list[dict[str, float]]:
    """Each pair's score by criterion, as :func:`breakdown` gives it: the codes of
    just these pairs, looked up in the same tables the solver's scores came from."""
    if not coded:  # no criteria (or nobody to pair)
        return [{} for _ in pairs]
    rows = np.array([i for i, _ in pairs], dtype=np.intp)
    cols = np.array([j for _, j in pairs], dtype=np.intp)
    columns: list[list[float]] = []
    for k, (criterion, item) in enumerate(zip(criteria, coded, strict=True)):
        if len(item.table) == 0:  # no table: the set arithmetic itself
            left, right = tokens.left[k], tokens.right[k]
            columns.append(
                [round(criterion.weight * _part(criterion, left[i], right[j]), 6) for i, j in pairs]
            )
            continue
        code = (item.left[rows] * item.right[cols]).sum(axis=1)
        if item.shared is not None:
            a, b = item.shared
            code += np.asarray(a[rows].multiply(b[cols]).sum(axis=1)).ravel()
        columns.append(item.table.take(code.astype(np.intp)).tolist())
    keys = [c.question or c.name for c in criteria]
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]


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
            words = ", ".join(rule_in_words(rule, problem.rules) for rule in broken)
            raise MatchingConflict(
                f"locked pair {mentor_id} + {adept_id} breaks a hard rule: {words}"
            )


def _unmatched(
    problem: MatchingProblem,
    pairs: list[Pair],
    masks: list[tuple[Rule, NDArray[np.bool_]]],
    blocked: NDArray[np.bool_],
) -> list[Unmatched]:
    matched_adepts = {p.adept_id for p in pairs}
    load: dict[str, int] = {}
    for p in pairs:
        load[p.mentor_id] = load.get(p.mentor_id, 0) + 1
    free_places = sum(max(m.capacity - load.get(m.id, 0), 0) for m in problem.mentors)
    # Who breaks a hard rule with everyone (before HR's locks take anyone).
    shut_adepts = np.asarray(blocked.all(axis=0))
    shut_mentors = np.asarray(blocked.all(axis=1))
    result = []
    for j, adept in enumerate(problem.adepts):
        if adept.id in matched_adepts:
            continue
        if shut_adepts[j]:
            rules = tuple(sorted(rule for rule, mask in masks if mask[:, j].any()))
            result.append(Unmatched(adept.id, "adept", Reason.HARD_RULES, rules))
        elif free_places == 0:
            result.append(Unmatched(adept.id, "adept", Reason.NO_MENTOR_PLACE))
        else:
            result.append(Unmatched(adept.id, "adept", Reason.MENTORS_TAKEN))
    for i, mentor in enumerate(problem.mentors):
        if load.get(mentor.id, 0) > 0:
            continue
        if shut_mentors[i]:
            rules = tuple(sorted(rule for rule, mask in masks if mask[i, :].any()))
            result.append(Unmatched(mentor.id, "mentor", Reason.HARD_RULES, rules))
        else:
            result.append(Unmatched(mentor.id, "mentor", Reason.ADEPTS_TAKEN))
    return result


def _options(problem: MatchingProblem, unmatched: list[Unmatched]) -> list[str]:
    if not any(u.role == "adept" for u in unmatched):
        return []
    options = [Option.WAITLIST.value]
    if any(u.cause in (Reason.NO_MENTOR_PLACE, Reason.MENTORS_TAKEN) for u in unmatched):
        options.append(Option.MORE_MENTOR_PLACES.value)
    if any(u.cause is Reason.HARD_RULES for u in unmatched):
        options.append(Option.RELAX_RULES.value)
    return options
