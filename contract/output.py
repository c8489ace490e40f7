"""The prediction contract every registered TrendFlow pyfunc honours (training writes it, serving reads it).

Input: a pandas DataFrame with the columns ``features.raw_columns(spec)`` (NaN allowed for optional features).
Output: a DataFrame with, for each target ``T`` in :data:`TARGETS`, the columns ``T_<q>`` for every quantile
label in :data:`QUANTILES` (log1p scale) and ``T_confidence`` in [0, 1].

Pure functions on small frames; no mlflow import.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TARGETS: tuple[str, ...] = ("views_7d", "views_14d", "views_21d", "likes_7d", "likes_14d", "likes_21d")
# Ordered from the lowest to the highest quantile; p50 is the point prediction.
QUANTILES: tuple[str, ...] = ("p025", "p05", "p10", "p50", "p90", "p95", "p975")
QUANTILE_LEVELS: dict[str, float] = {"p025": 0.025, "p05": 0.05, "p10": 0.10, "p50": 0.50, "p90": 0.90,
                                     "p95": 0.95, "p975": 0.975}
# Nominal coverage of each central interval and the quantile pair that bounds it.
INTERVALS: dict[str, tuple[str, str]] = {"80": ("p10", "p90"), "90": ("p05", "p95"), "95": ("p025", "p975")}


def output_columns(targets: tuple[str, ...] = TARGETS) -> list[str]:
    """Every column a conforming model returns, target by target."""
    return [f"{t}_{q}" for t in targets for q in (*QUANTILES, "confidence")]


def check_output(frame: Any, n_rows: int | None = None, atol: float = 1e-6) -> list[str]:
    """Problems with a model's output frame (empty list = conforms).

    Checks: every contract column present, ``n_rows`` rows, finite values, quantiles non-decreasing
    (p025 <= ... <= p975 within ``atol``) and confidence in [0, 1].
    """
    problems: list[str] = []
    cols = set(getattr(frame, "columns", []))
    missing = [c for c in output_columns() if c not in cols]
    if missing:
        problems.append(f"missing output columns: {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        return problems
    if n_rows is not None and len(frame) != n_rows:
        problems.append(f"expected {n_rows} rows, got {len(frame)}")
    for t in TARGETS:
        q = np.asarray(frame[[f"{t}_{x}" for x in QUANTILES]], dtype=float)  # (N, 7)
        if not np.isfinite(q).all():
            problems.append(f"{t}: non-finite quantiles")
            continue
        if (np.diff(q, axis=1) < -atol).any():
            problems.append(f"{t}: quantiles cross (p025 <= ... <= p975 violated)")
        c = np.asarray(frame[f"{t}_confidence"], dtype=float)
        if not (np.isfinite(c).all() and (c >= 0).all() and (c <= 1).all()):
            problems.append(f"{t}: confidence outside [0, 1]")
    return problems
