"""Fixed latency buckets (Prometheus-style ``le`` upper bounds) and ``histogram_quantile``.

Every latency histogram in the store, and the inference service's Prometheus histograms, use
:data:`LATENCY_BUCKETS` (up to five minutes, for extraction components), stored as per-bucket counts (not
cumulative) so histograms of any set of runs or windows merge by adding them. :func:`histogram_quantile`
computes a percentile from merged counts exactly the way Prometheus' ``histogram_quantile`` does (linear
interpolation inside the bucket, the lowest bucket starting at 0, ranks in the ``+Inf`` bucket answered with the
highest finite bound).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

LATENCY_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10,
                                      30, 60, 120, 300)


def empty(bounds: Sequence[float] = LATENCY_BUCKETS) -> list[int]:
    """Per-bucket counts for ``bounds`` plus the ``+Inf`` bucket, all zero."""
    return [0] * (len(bounds) + 1)


def observe(counts: list[int], value: float, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
    """Count ``value`` in the first bucket whose upper bound is >= ``value`` (``le`` semantics), in place."""
    counts[bisect.bisect_left(bounds, value)] += 1


def bucketize(values: Iterable[float], bounds: Sequence[float] = LATENCY_BUCKETS) -> list[int]:
    counts = empty(bounds)
    for v in values:
        observe(counts, float(v), bounds)
    return counts


def rebucket(bounds: Sequence[float], counts: Sequence[int]) -> list[int]:
    """Per-bucket counts on other bounds onto :data:`LATENCY_BUCKETS` (each count at its bucket's upper bound:
    exact when the source bounds are a subset, as windows spooled with older bounds are)."""
    out = empty()
    for i, c in enumerate(counts):
        upper = bounds[i] if i < len(bounds) else math.inf
        out[bisect.bisect_left(LATENCY_BUCKETS, upper)] += int(c)
    return out


def merge(histograms: Iterable[Sequence[int]], n_buckets: int = len(LATENCY_BUCKETS) + 1) -> list[int]:
    """Bucket-wise sum of per-bucket counts (all on the same bounds)."""
    out = [0] * n_buckets
    for h in histograms:
        for i, c in enumerate(h):
            out[i] += int(c)
    return out


def histogram_quantile(q: float, counts: Sequence[int], bounds: Sequence[float] = LATENCY_BUCKETS) -> float:
    """The ``q``-quantile of a histogram, as Prometheus' ``histogram_quantile(q, ...)`` computes it.

    Args:
        q: the quantile, 0..1 (below 0: -inf, above 1: +inf, as in Prometheus).
        counts: per-bucket counts, ``len(bounds) + 1`` of them (the last is ``+Inf``).
        bounds: the finite upper bounds, ascending.

    Returns:
        The interpolated value, or NaN when the histogram is empty.
    """
    if len(counts) != len(bounds) + 1:
        raise ValueError(f"{len(counts)} counts for {len(bounds)} bounds (+Inf): expected {len(bounds) + 1}")
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    cumulative = []
    total = 0
    for c in counts:
        total += c
        cumulative.append(total)
    if total == 0:
        return math.nan
    rank = q * total
    # First finite bucket whose cumulative count reaches the rank; none: the rank is in +Inf.
    b = next((i for i in range(len(bounds)) if cumulative[i] >= rank), len(bounds))
    if b == len(bounds):
        return float(bounds[-1])
    if b == 0 and bounds[0] <= 0:
        return float(bounds[0])
    start, end, count = 0.0, float(bounds[b]), float(cumulative[b])
    if b > 0:
        start = float(bounds[b - 1])
        count -= cumulative[b - 1]
        rank -= cumulative[b - 1]
    return start + (end - start) * (rank / count)
