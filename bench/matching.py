"""Benchmark: the matching engine on 2,000 mentors × 2,000 adepts with hard rules.

Run:  .venv/bin/python bench/matching.py [--size 2000] [--seed 7] [--repeat 5]

Printed, all measured in this run (median wall times of interleaved rounds):
- the matcher's wall time against the bare solver (SciPy's linear_sum_assignment)
  on the same score matrix, as a ratio (the matcher also scores every pair,
  applies the hard rules and explains the chosen pairs);
- the matcher's total and worst-pair scores against a greedy baseline that
  takes the best remaining allowed pair first, as ratios;
- the same with the fairness option, its time also as a ratio to the bare solver.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from mentorflow.definition import MatchingCriterion, MatchingRules, ProgramKind
from mentorflow.matching import Candidate, MatchingProblem, match, score_matrix

INTERESTS = [
    "ai",
    "data",
    "ux",
    "law",
    "climate",
    "health",
    "finance",
    "security",
    "design",
    "policy",
    "communication",
    "leadership",
    "procurement",
    "statistics",
    "hr",
]
WORDS = [
    "leadership",
    "digital",
    "tools",
    "values",
    "future",
    "trust",
    "change",
    "culture",
    "generations",
    "feedback",
    "strategy",
    "innovation",
    "learning",
    "network",
]


def people(prefix: str, count: int, rng: random.Random, mentor: bool) -> list[Candidate]:
    result = []
    for i in range(count):
        result.append(
            Candidate(
                id=f"{prefix}{i:05d}",
                organisation_id=f"org{rng.randrange(30)}",
                department=f"dept{rng.randrange(8)}",
                manager_id=f"boss{rng.randrange(400)}",
                person_id=f"{prefix}{i:05d}",
                seniority_years=rng.randrange(0, 8) if mentor else rng.randrange(5, 35),
                answers={
                    "interests": rng.sample(INTERESTS, rng.randrange(1, 5)),
                    "motivation": " ".join(rng.sample(WORDS, rng.randrange(2, 6))),
                    "where": rng.choice(["stockholm", "göteborg", "malmö", "remote"]),
                },
            )
        )
    return result


def greedy(scores: np.ndarray, allowed: np.ndarray) -> list[tuple[int, int]]:
    """The baseline: repeatedly take the best-scoring allowed pair still free."""
    order = np.argsort(-np.where(allowed, scores, -1.0), axis=None, kind="stable")
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    pairs = []
    for flat in order:
        i, j = divmod(int(flat), scores.shape[1])
        if not allowed[i, j]:
            break
        if i in used_rows or j in used_cols:
            continue
        used_rows.add(i)
        used_cols.add(j)
        pairs.append((i, j))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5, help="rounds; medians are printed")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    problem = MatchingProblem(
        mentors=people("m", args.size, rng, mentor=True),
        adepts=people("a", args.size, rng, mentor=False),
        criteria=[
            MatchingCriterion(name="shared_interests", weight=3, question="interests"),
            MatchingCriterion(name="themes", weight=1, question="motivation"),
            MatchingCriterion(name="location", weight=0.5, question="where"),
        ],
        rules=MatchingRules(
            not_same_reporting_line=True,
            not_same_organisation=True,
            min_seniority_gap_years=5,
        ),
        kind=ProgramKind.REVERSE,
    )

    fair_problem = MatchingProblem(
        mentors=problem.mentors,
        adepts=problem.adepts,
        criteria=problem.criteria,
        rules=problem.rules,
        kind=problem.kind,
        fairness=True,
    )
    scores, allowed = score_matrix(problem)
    matcher_times, solver_times, fair_times = [], [], []
    # Interleaved rounds, medians: a busy neighbour on this shared machine then
    # slows every side alike instead of whichever ran at that moment.
    for _ in range(args.repeat):
        started = time.perf_counter()
        result = match(problem)
        matcher_times.append(time.perf_counter() - started)

        started = time.perf_counter()
        bare = np.where(allowed, scores + scores.shape[0] * 5.0, 0.0)
        rows, cols = linear_sum_assignment(bare, maximize=True)
        solver_times.append(time.perf_counter() - started)

        started = time.perf_counter()
        fair = match(fair_problem)
        fair_times.append(time.perf_counter() - started)
    bare_pairs = [(r, c) for r, c in zip(rows, cols, strict=True) if allowed[r, c]]
    matcher_seconds = statistics.median(matcher_times)
    solver_seconds = statistics.median(solver_times)
    fair_seconds = statistics.median(fair_times)

    baseline = greedy(scores, allowed)
    greedy_scores = [scores[i, j] for i, j in baseline]

    allowed_share = allowed.mean()
    print(
        f"matching {args.size} mentors x {args.size} adepts "
        f"({allowed_share:.0%} of pairs allowed by the hard rules), median of {args.repeat} rounds"
    )
    print(f"  matcher (score + rules + solve + explain): {matcher_seconds:8.2f} s")
    print(f"  bare solver on the same score matrix:      {solver_seconds:8.2f} s")
    print(f"  time ratio matcher / bare solver:          {matcher_seconds / solver_seconds:8.2f}")
    print(
        f"  pairs: matcher {len(result.pairs)}, bare solver {len(bare_pairs)},"
        f" greedy {len(baseline)}"
    )
    print(
        f"  total score ratio matcher / greedy:        "
        f"{result.total_score / sum(greedy_scores):8.3f}"
    )
    print(
        f"  worst pair ratio matcher / greedy:         "
        f"{_ratio(result.worst_score, min(greedy_scores))}"
    )
    print(f"  fairness option (same, best worst pair):   {fair_seconds:8.2f} s")
    print(f"  time ratio fair / bare solver:             {fair_seconds / solver_seconds:8.2f}")
    print(f"  pairs with fairness: {len(fair.pairs)}")
    print(
        f"  total score ratio fair / greedy:           {fair.total_score / sum(greedy_scores):8.3f}"
    )
    print(
        f"  worst pair ratio fair / greedy:            "
        f"{_ratio(fair.worst_score, min(greedy_scores))}"
    )


def _ratio(value: float | None, baseline: float) -> str:
    if value is None:
        return "n/a"
    if baseline == 0:
        return f"{value:.3f} vs 0 (greedy's worst pair scores nothing)"
    return f"{value / baseline:8.3f}"


if __name__ == "__main__":
    main()
