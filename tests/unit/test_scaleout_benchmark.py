"""The scale-out benchmark's interval for its median overhead: what decides whether a goal is shown."""

import math
import random

from benchmarks.scaleout import median_interval


def _coverage(n: int, j: int) -> float:
    """P(x_(j) <= median <= x_(n+1-j)) for n independent draws of a continuous variable."""
    return 1 - 2 * sum(math.comb(n, k) for k in range(j)) / 2**n


def test_fifteen_rounds_use_the_4th_and_12th_smallest() -> None:
    # the fifteen sequential rounds of docs/scaleout.md, in the order they ran
    rounds = [35.2, 7.5, -7.2, 2.3, 16.5, 8.5, 27.1, 3.3, 12.8, 27.6, 15.2, -9.6, 29.8, 4.1, 35.3]
    assert median_interval(rounds) == (3.3, 27.6)  # sorted: -9.6 -7.2 2.3 [3.3] ... [27.6] 29.8 35.2 35.3
    assert _coverage(15, 4) >= 0.95 > _coverage(15, 5)


def test_the_chosen_ranks_are_the_tightest_that_reach_the_confidence() -> None:
    for n in range(6, 60):
        values = list(range(n))  # value = rank - 1
        lo, hi = median_interval(values)
        j = lo + 1
        assert hi == n - j
        assert _coverage(n, j) >= 0.95
        assert j == n // 2 or _coverage(n, j + 1) < 0.95


def test_too_few_rounds_give_no_interval() -> None:
    assert median_interval([]) is None
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # n = 5: 1 - 2/32 = 0.9375 < 0.95
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == (1.0, 6.0)  # n = 6: 1 - 2/64 = 0.969


def test_the_interval_holds_the_true_median_as_often_as_it_says() -> None:
    rng = random.Random(7)
    n, trials, hits = 15, 4000, 0
    for _ in range(trials):
        draws = [rng.gauss(10.0, 14.0) for _ in range(n)]  # true median 10, a round's spread as measured
        lo, hi = median_interval(draws)
        hits += lo <= 10.0 <= hi
    # exact coverage at n = 15 is 0.965; four standard errors of 4,000 trials is about 0.012
    assert abs(hits / trials - _coverage(15, 4)) < 0.012
