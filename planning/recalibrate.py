"""Re-calibration while the run goes: after the pilot, the rest of a corpus runs in two parts. The first part (the
videos that make up :data:`RECALIBRATE_AT` of the rest's predicted seconds) runs with the pilot's plan; what it
took against what the plan predicted for it is one ratio -- the makespan model's error on this corpus, at this
parallelism, on this machine now (contention between lanes, content the pilot did not sample) -- and the
remaining videos are re-planned with every factor multiplied by it. Pure: plain numbers in, plain numbers out.

Why one ratio and not per-component factors again: the pilot measures components one video at a time, where a
component's latency is its own work; with several videos in parallel a latency also holds the time it waited for
the cores and the server, which the simulation already models. Comparing makespans compares like with like.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from planning.pilot import FACTOR_BOUNDS

RECALIBRATE_MIN_VIDEOS = 8  # a rest shorter than this runs in one part: the pause between the parts costs more
RECALIBRATE_AT = 0.3  # share of the rest's predicted seconds run before the re-plan
RATIO_BOUNDS = (0.5, 2.0)  # one slow spell of the machine must not double every prediction twice


def parallel_probe(costs: Sequence[float], lanes: int) -> list[int]:
    """Which of the videos (``costs``: predicted seconds each, in run order) the pilot's parallel step runs: ``lanes``
    videos of about the median cost (consecutive in cost order), so that they finish together and the step's
    makespan measures the lanes' contention rather than one long video's tail. Empty when ``lanes < 2`` or fewer
    than ``2 * lanes + 1`` videos (the step must leave more than it takes)."""
    n = len(costs)
    if lanes < 2 or n < 2 * lanes + 1:
        return []
    order = sorted(range(n), key=lambda i: (costs[i], i))
    start = max(0, min(n - lanes, n // 2 - lanes // 2))
    return sorted(order[start : start + lanes])


def head_size(costs: Sequence[float], share: float = RECALIBRATE_AT, min_videos: int = 1) -> int:
    """How many of the first videos (``costs``: predicted seconds per video, in run order) make up ``share`` of the
    total, at least ``min_videos`` (one per parallel lane) and leaving at least as many for the second part;
    0 when the videos are too few for two parts."""
    n = len(costs)
    if n < 2 * max(1, min_videos):
        return 0
    total = sum(max(0.0, c) for c in costs)
    k, acc = 0, 0.0
    while k < n and (acc < share * total or k < min_videos):
        acc += max(0.0, costs[k])
        k += 1
    return min(k, n - max(1, min_videos))


def makespan_ratio(measured_s: float, predicted_s: float, bounds: tuple[float, float] = RATIO_BOUNDS) -> float:
    """``measured / predicted`` seconds of the first part, clamped to ``bounds`` (1 when nothing was predicted)."""
    if predicted_s <= 0 or measured_s <= 0:
        return 1.0
    lo, hi = bounds
    return min(hi, max(lo, measured_s / predicted_s))


def scaled_factors(factors: Mapping[str, float], ratio: float, components: Iterable[str],
                   bounds: tuple[float, float] = FACTOR_BOUNDS) -> dict[str, float]:
    """Every component's factor (the pilot's, 1 where it measured none) times ``ratio``, clamped to ``bounds``."""
    lo, hi = bounds
    names = sorted(set(components) | set(factors))
    return {c: min(hi, max(lo, factors.get(c, 1.0) * ratio)) for c in names}
