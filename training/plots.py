"""Evaluation figures logged with each run (matplotlib, Agg backend; each function returns a Figure)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def predicted_vs_actual(y: np.ndarray, q: dict[str, np.ndarray], labels: list[str]) -> Any:
    """One panel per target: p50 against the actual value, with the 80% interval as error bars."""
    plt = _plt()
    n = len(labels)
    cols = 3
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4 * cols, 3.6 * ((n + cols - 1) // cols)))
    for h, (ax, t) in enumerate(zip(np.ravel(axes), labels, strict=False)):
        p = ~np.isnan(y[:, h])
        ax.errorbar(y[p, h], q["p50"][p, h], yerr=[q["p50"][p, h] - q["p10"][p, h], q["p90"][p, h] - q["p50"][p, h]],
                    fmt=".", ms=3, alpha=0.35, elinewidth=0.5)
        lo, hi = np.nanmin(y[p, h], initial=0), np.nanmax(y[p, h], initial=1)
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(title=t, xlabel="actual (log1p)", ylabel="predicted p50")
    fig.tight_layout()
    return fig


def coverage_curve(metrics: dict[str, float], levels: list[float], buckets: list[str]) -> Any:
    """Empirical vs nominal coverage, pooled and per age bucket (calibration curve)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    nominal = list(levels)
    ax.plot([0.7, 1.0], [0.7, 1.0], "k--", lw=1, label="nominal")
    ax.plot(nominal, [metrics.get(f"test/coverage_{round(lv * 100)}", np.nan) for lv in levels], "o-", lw=2,
            label="all")
    for b in buckets:
        ys = [metrics.get(f"test/coverage_{round(lv * 100)}_bucket_{b}", np.nan) for lv in levels]
        ax.plot(nominal, ys, ".-", alpha=0.7, label=b)
    ax.set(xlabel="nominal coverage", ylabel="empirical coverage (test)", title="interval calibration")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def feature_importance(importance: pd.Series, top: int = 25) -> Any:
    plt = _plt()
    s = importance.head(top)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(s) + 1))
    ax.barh(s.index, s.to_numpy())
    ax.set(title="feature importance", xlabel="importance")
    fig.tight_layout()
    return fig
