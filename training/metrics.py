"""Evaluation metrics and the two reference predictors every family is compared with.

All metrics are on the spec's transformed (log1p) scale, computed per target on the rows where that target is
present. Names follow ``split/metric`` (the caller prefixes the split): ``mae_views_7d``, ``coverage_90`` (pooled
over the six targets), ``coverage_90_views_7d``, ``width_90_bucket_lt6h`` ...
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from training.intervals import level_names


def _pct(level: float) -> str:
    return f"{round(level * 100):d}"


def point_metrics(y: np.ndarray, mu: np.ndarray, labels: list[str]) -> dict[str, float]:
    """MAE, RMSE and Spearman correlation per target, and their means over targets (``mae_mean`` ...)."""
    from scipy.stats import spearmanr

    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant predictor (the naive one) has no Spearman correlation
        for h, t in enumerate(labels):
            p = ~np.isnan(y[:, h])
            if not p.any():
                continue
            err = mu[p, h] - y[p, h]
            out[f"mae_{t}"] = float(np.mean(np.abs(err)))
            out[f"rmse_{t}"] = float(np.sqrt(np.mean(err**2)))
            out[f"spearman_{t}"] = float(spearmanr(mu[p, h], y[p, h]).statistic) if p.sum() > 2 else float("nan")
            out[f"n_{t}"] = float(p.sum())
        for m in ("mae", "rmse", "spearman"):
            vals = [out[f"{m}_{t}"] for t in labels if f"{m}_{t}" in out]
            out[f"{m}_mean"] = float(np.nanmean(vals)) if vals else float("nan")
    return out


def interval_metrics(y: np.ndarray, q: dict[str, np.ndarray], labels: list[str], levels: list[float],
                     groups: np.ndarray | None = None, group_labels: dict[str, str] | None = None
                     ) -> dict[str, float]:
    """Empirical coverage and mean width per level: pooled over targets, per target, and per group (bucket).

    Args:
        y: targets ``(N, H)``, NaN where missing.
        q: calibrated quantiles ``{"p10": (N, H), …}``.
        groups: group key per row (age bucket index as a string) or None.
        group_labels: readable name per group key.
    """
    out: dict[str, float] = {}
    present = ~np.isnan(y)
    out["n_target_values"] = float(present.sum())
    for level in levels:
        lo_n, hi_n = level_names(level)
        lo, hi = q[lo_n], q[hi_n]
        covered = (y >= lo) & (y <= hi)
        width = hi - lo
        k = _pct(level)
        out[f"coverage_{k}"] = float(covered[present].mean()) if present.any() else float("nan")
        out[f"width_{k}"] = float(width[present].mean()) if present.any() else float("nan")
        for h, t in enumerate(labels):
            p = present[:, h]
            if p.any():
                out[f"coverage_{k}_{t}"] = float(covered[p, h].mean())
                out[f"width_{k}_{t}"] = float(width[p, h].mean())
        if groups is not None:
            for g in sorted(set(np.asarray(groups).tolist())):
                sel = (np.asarray(groups) == g)[:, None] & present
                if sel.any():
                    name = (group_labels or {}).get(str(g), str(g))
                    out[f"coverage_{k}_bucket_{name}"] = float(covered[sel].mean())
                    out[f"width_{k}_bucket_{name}"] = float(width[sel].mean())
                    out[f"n_bucket_{name}"] = float(sel.sum())
    return out


@dataclass
class NaivePredictor:
    """Training-set median per target."""

    medians: np.ndarray  # (H,)

    @classmethod
    def fit(cls, Y: np.ndarray) -> NaivePredictor:
        med = np.nanmedian(Y, axis=0)
        return cls(np.where(np.isfinite(med), med, 0.0))

    def predict(self, n: int) -> np.ndarray:
        return np.tile(self.medians, (n, 1))


@dataclass
class LogLinearPredictor:
    """Szabo–Huberman: ``log1p(count at horizon) = a + b * log1p(count at the first snapshot)`` per target, fitted
    by least squares on the training rows (views targets from first-snapshot views, likes from likes). A row
    without the snapshot value gets the training median."""

    coef: np.ndarray  # (H, 2): intercept, slope
    snapshot_columns: list[str | None]
    medians: np.ndarray

    @classmethod
    def fit(cls, df: pd.DataFrame, Y: np.ndarray, metrics: list[str], snapshot: dict[str, str]) -> LogLinearPredictor:
        coef = np.zeros((Y.shape[1], 2))
        cols: list[str | None] = []
        med = NaivePredictor.fit(Y).medians
        for h, m in enumerate(metrics):
            col = snapshot.get(m)
            cols.append(col)
            if col is None:
                coef[h] = [med[h], 0.0]
                continue
            x = df[col].to_numpy(np.float64)
            ok = np.isfinite(x) & np.isfinite(Y[:, h])
            if ok.sum() < 2:
                coef[h] = [med[h], 0.0]
                continue
            A = np.column_stack([np.ones(ok.sum()), x[ok]])
            coef[h] = np.linalg.lstsq(A, Y[ok, h], rcond=None)[0]
        return cls(coef, cols, med)

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        out = np.tile(self.medians, (len(df), 1)).astype(np.float64)
        for h, col in enumerate(self.snapshot_columns):
            if col is None:
                continue
            x = df[col].to_numpy(np.float64)
            ok = np.isfinite(x)
            out[ok, h] = self.coef[h, 0] + self.coef[h, 1] * x[ok]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"coef": self.coef.tolist(), "snapshot_columns": self.snapshot_columns}


def reference_metrics(y: np.ndarray, mu: np.ndarray, naive: np.ndarray, loglin: np.ndarray,
                      labels: list[str]) -> dict[str, float]:
    """MAE of the references and the model's MAE ratios (``< 1`` = the model is better)."""
    m, n, ll = point_metrics(y, mu, labels), point_metrics(y, naive, labels), point_metrics(y, loglin, labels)
    out: dict[str, float] = {}
    for t in labels:
        if f"mae_{t}" in m:
            out[f"naive_mae_{t}"] = n[f"mae_{t}"]
            out[f"loglinear_mae_{t}"] = ll[f"mae_{t}"]
            out[f"mae_vs_naive_{t}"] = m[f"mae_{t}"] / max(n[f"mae_{t}"], 1e-12)
    out["naive_mae_mean"] = n["mae_mean"]
    out["loglinear_mae_mean"] = ll["mae_mean"]
    out["mae_vs_naive"] = m["mae_mean"] / max(n["mae_mean"], 1e-12)
    out["mae_vs_loglinear"] = m["mae_mean"] / max(ll["mae_mean"], 1e-12)
    out["beats_naive_all_targets"] = float(all(out.get(f"mae_vs_naive_{t}", 0.0) < 1.0 for t in labels))
    return out


def bucket_lines(results: dict[str, dict[str, float]]) -> list[str]:
    """Coverage/width of the 90% interval per age bucket (pooled over targets), one line per family."""
    lines = []
    for fam, m in results.items():
        buckets = [k.removeprefix("test/coverage_90_bucket_") for k in m  # logged in bucket order
                   if k.startswith("test/coverage_90_bucket_")]
        cells = [f"{b}: cov {m[f'test/coverage_90_bucket_{b}']:.3f} w {m[f'test/width_90_bucket_{b}']:.2f} "
                 f"(n={int(m[f'test/n_bucket_{b}'])})" for b in buckets]
        lines.append(f"  {fam:<9}" + " | ".join(cells))
    return lines
