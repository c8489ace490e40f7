"""Timing statistics of the profiler, pure: perf_analyzer-style interleaved windows until they agree, and the
fixed unit sets the batch-size sweep sends (no server, no I/O; :mod:`planning.profiler` calls them)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return float(s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2]))


def measure_interleaved(series: Mapping[int, tuple[Sequence[Any], Callable[[Any], None]]], *, warmup: int = 1,
                        window_s: float = 0.5, min_windows: int = 3, max_windows: int = 8, tolerance: float = 0.10,
                        memory: Callable[[Callable[[], float]], tuple[int, float]] | None = None,
                        cpu: Callable[[], float] | None = None
                        ) -> dict[int, tuple[float, int, float, bool, int, float | None]]:
    """perf_analyzer-style timing of several batch sizes at once.

    ``series`` maps a batch size to (requests that cover a fixed set of units once -- one *pass* --, a function
    sending one request). A window is as many whole passes as take at least ``window_s``, so every window sees
    the same content (model time can depend on content by 10x and more). Rounds run one window of every batch
    size in turn -- a busy spell on a shared machine then hits all sizes alike instead of bending the curve --
    until, for every size, the mean seconds per request of the last ``min_windows`` windows agree within
    ``tolerance`` (at most ``max_windows`` rounds). ``memory(window)`` may wrap each window and return
    (peak bytes, its result). ``cpu()`` may return the cumulative CPU seconds of the processes serving the
    requests; the CPU per request is then the total over all windows divided by the requests sent.

    Returns batch -> (median of the last window means, windows, their spread, stable, peak bytes, CPU seconds per
    request or None)."""
    import time

    def one_pass(reqs: Sequence[Any], send: Callable[[Any], None]) -> float:
        t0 = time.perf_counter()
        for r in reqs:
            send(r)
        return time.perf_counter() - t0

    passes: dict[int, int] = {}
    for b, (reqs, send) in series.items():
        est = 0.0
        for _ in range(max(1, warmup)):
            est = one_pass(reqs, send)
        passes[b] = max(1, math.ceil(window_s / max(est, 1e-4)))
    means: dict[int, list[float]] = {b: [] for b in series}
    peak: dict[int, int] = dict.fromkeys(series, 0)
    cpu_s: dict[int, float] = dict.fromkeys(series, 0.0)
    sent: dict[int, int] = dict.fromkeys(series, 0)

    def spread(xs: Sequence[float]) -> float:
        return (max(xs) - min(xs)) / max(median(xs), 1e-12)

    for rnd in range(max_windows):
        for b, (reqs, send) in series.items():
            def window(reqs: Sequence[Any] = reqs, send: Callable[[Any], None] = send, n: int = passes[b]) -> float:
                return sum(one_pass(reqs, send) for _ in range(n))

            c0 = cpu() if cpu is not None else 0.0
            if memory is not None:
                m, total = memory(window)
                peak[b] = max(peak[b], int(m))
            else:
                total = window()
            if cpu is not None:
                cpu_s[b] += cpu() - c0
                sent[b] += passes[b] * len(reqs)
            means[b].append(total / (passes[b] * len(reqs)))
        if rnd + 1 >= min_windows and all(spread(v[-min_windows:]) <= tolerance for v in means.values()):
            break
    out = {}
    for b, v in means.items():
        last = v[-min_windows:]
        sp = spread(last) if len(last) >= min_windows else float("inf")
        out[b] = (median(last), len(v), round(sp, 4), sp <= tolerance, peak[b],
                  cpu_s[b] / sent[b] if cpu is not None and sent[b] else None)
    return out


def measure_until_stable(requests: Sequence[Any], send, *, warmup: int = 1, window_s: float = 0.5,
                         min_windows: int = 3, max_windows: int = 8, tolerance: float = 0.10
                         ) -> tuple[float, int, float, bool]:
    """One batch size of :func:`measure_interleaved`: (median seconds per request, windows, spread, stable)."""
    sec, wins, sp, stable, _, _ = measure_interleaved({1: (requests, send)}, warmup=warmup, window_s=window_s,
                                                   min_windows=min_windows, max_windows=max_windows,
                                                   tolerance=tolerance)[1]
    return sec, wins, sp, stable


SWEEP_UNITS = 64  # units per pass: divisible by every measured batch size


def sweep_subset(pools: Sequence[dict[str, Any]], n: int = SWEEP_UNITS) -> dict[str, Any]:
    """``n`` units drawn evenly from every captured request (so every video contributes), cycled if fewer."""
    import numpy as np

    keys = list(pools[0])
    allu = {k: np.concatenate([p[k] for p in pools]) for k in keys}
    total = len(allu[keys[0]])
    idx = np.linspace(0, total - 1, n).round().astype(int) if total >= n else np.arange(n) % total
    return {k: np.ascontiguousarray(v[idx]) for k, v in allu.items()}


def split_requests(subset: dict[str, Any], b: int) -> list[dict[str, Any]]:
    n = len(next(iter(subset.values())))
    return [{k: v[i:i + b] for k, v in subset.items()} for i in range(0, n, b)]
