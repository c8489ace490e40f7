"""Conformal calibration of prediction intervals, per target and per group (age bucket), and the confidence score.

Every family produces a *base* prediction (:class:`BaseOutput`): a point ``mu`` per target, optionally a scale
``sigma`` (v2's predicted standard deviation) and optionally raw quantiles (the baseline's quantile models). The
:class:`IntervalCalibrator` turns it into calibrated quantiles ``p025 … p975`` with split conformal prediction:

==============  ==========================================  =====================================
method          conformity score on the calibration split   interval at level ``l``
==============  ==========================================  =====================================
``absolute``    ``|y - mu|``                                ``mu ± q_l``
``normalized``  ``|y - mu| / sigma``                        ``mu ± q_l * sigma``
``cqr``         ``max(lo_l - y, y - hi_l)``                 ``[lo_l - q_l, hi_l + q_l]``
==============  ==========================================  =====================================

``q_l`` is the ``ceil((n + 1) l)``-th smallest score, which gives marginal coverage ``>= l`` (and, for continuous
scores, ``< l + 1 / (n + 1)``) for exchangeable data. CQR uses the symmetric score of Romano et al. by default
(MAPIE's ``symmetric_correction=True``): the asymmetric variant (``cqr_symmetric=False``, MAPIE's default) ranks
each side at ``1 - (1 - l) / 2`` and so needs about twice as many calibration points per group for the same
slack; on small calibration sets it over-covers (measured: 0.95 for nominal 0.90 with ~100 points per group).
MAPIE 1.x has no multi-output and no Mondrian (group-conditional) calibration, so this module does both: it
calibrates each target separately, and within each group with at least ``min_group_size`` calibration points;
smaller groups use the pooled correction. ``backend="mapie"`` computes each correction with MAPIE's
``SplitConformalRegressor`` / ``ConformalizedQuantileRegressor`` (``prefit=True`` on column-selecting estimators
over the base predictions); ``backend="numpy"`` computes the same numbers directly (tests check they agree). Only
the fitted corrections are stored, so serving needs neither MAPIE nor the calibration data.

Confidence score (per row and target): ``confidence = 2 ** (-w / w_ref)`` where ``w`` is the width of the
calibrated interval at ``confidence_level`` (90% by default) and ``w_ref`` the median of that width over the
calibration split for that target. A row whose interval is as wide as the typical one scores 0.5, narrower
scores approach 1, wider ones approach 0; because intervals are calibrated per age bucket, younger videos (whose
outcomes are less determined by their first snapshot) get wider intervals and so lower confidence.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "QUANTILE_NAMES",
    "QUANTILE_LEVELS",
    "BaseOutput",
    "IntervalCalibrator",
    "conformal_quantile",
    "level_names",
    "out_of_fold",
    "quantile_name",
    "repair_crossing",
]

POOLED = "__pooled__"
METHODS = ("absolute", "normalized", "cqr")

# Output quantiles in increasing order; the contract of every model's output.
QUANTILE_LEVELS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.5, 0.9, 0.95, 0.975)


def quantile_name(q: float) -> str:
    """``0.1 -> "p10"``, ``0.05 -> "p05"``, ``0.025 -> "p025"``, ``0.975 -> "p975"``."""
    pct = round(q * 100, 6)
    if float(pct).is_integer():
        return f"p{int(pct):02d}"
    return f"p{round(pct * 10):03d}"


QUANTILE_NAMES: tuple[str, ...] = tuple(quantile_name(q) for q in QUANTILE_LEVELS)


def level_names(level: float) -> tuple[str, str]:
    """Names of the lower and upper quantile of a central interval: ``0.8 -> ("p10", "p90")``."""
    return quantile_name((1 - level) / 2), quantile_name((1 + level) / 2)


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """Finite-sample conformal quantile: the ``ceil((n + 1) * level)``-th smallest score.

    Returns ``inf`` when ``n`` is too small for that rank to exist (fewer than ``level / (1 - level)`` points).
    """
    s = np.sort(np.asarray(scores, dtype=np.float64))
    n = s.size
    k = math.ceil((n + 1) * level - 1e-12)
    if n == 0 or k > n:
        return math.inf
    return float(s[k - 1])


def out_of_fold(n_rows: int, folds: int, fit_predict: Callable[[np.ndarray, np.ndarray], BaseOutput],
                on_fold: Callable[[int, int], None] | None = None) -> BaseOutput:
    """Out-of-fold base predictions for cross-conformal calibration (Vovk 2015; CV+, Barber et al. 2021).

    Rows ``0 .. n_rows - 1`` (in the caller's order; ``training.train`` passes the table's row order, which is
    publish order only for a table sorted by it) are cut into ``folds`` contiguous blocks; for each block,
    ``fit_predict(fit_idx, held_idx)`` fits a model on the other blocks and predicts the held-out block. Every
    row thus gets a score from a model that never saw it: ``n_rows`` calibration scores instead of the calib
    split's, at the cost of ``folds`` extra fits. The served model is refit on all rows, so its errors are, if
    anything, smaller than the out-of-fold ones (the intervals err on the wide side).

    Returns:
        the base predictions of every row, in row order.
    """
    if not 2 <= folds <= n_rows:
        raise ValueError(f"cross-conformal needs 2 <= folds <= rows, got folds={folds} for {n_rows} rows")
    blocks = np.array_split(np.arange(n_rows), folds)
    parts = []
    for k, held in enumerate(blocks):
        if on_fold is not None:
            on_fold(k + 1, folds)
        fit_idx = np.concatenate([b for j, b in enumerate(blocks) if j != k])
        out = fit_predict(fit_idx, held)
        if len(out.mu) != len(held):
            raise ValueError(f"fold {k + 1}: fit_predict returned {len(out.mu)} rows for {len(held)} held-out rows")
        parts.append(out)
    return BaseOutput.concat(parts)


def repair_crossing(q: np.ndarray) -> np.ndarray:
    """Sort quantiles along the last axis so they never cross (rearrangement, Chernozhukov et al. 2010)."""
    return np.sort(q, axis=-1)


@dataclass
class BaseOutput:
    """What a family's core model predicts before calibration.

    Attributes:
        mu: point prediction ``(N, H)`` on the transformed (log1p) scale; p50 of the output.
        sigma: predicted standard deviation ``(N, H)`` (v2) or None.
        quantiles: raw quantile predictions ``{q: (N, H)}`` (baseline quantile models) or None.
    """

    mu: np.ndarray
    sigma: np.ndarray | None = None
    quantiles: dict[float, np.ndarray] | None = None

    @classmethod
    def concat(cls, parts: list[BaseOutput]) -> BaseOutput:
        """Rows of ``parts`` one after the other (the same fields must be set in every part)."""
        mu = np.concatenate([p.mu for p in parts])
        sigma = None if parts[0].sigma is None else np.concatenate([p.sigma for p in parts])
        quantiles = None
        if parts[0].quantiles is not None:
            quantiles = {q: np.concatenate([p.quantiles[q] for p in parts]) for q in parts[0].quantiles}
        return cls(mu, sigma, quantiles)

    def take(self, idx: np.ndarray) -> BaseOutput:
        """Rows ``idx`` of every array."""
        return BaseOutput(
            self.mu[idx],
            None if self.sigma is None else self.sigma[idx],
            None if self.quantiles is None else {q: v[idx] for q, v in self.quantiles.items()},
        )


def _bounds(base: BaseOutput, method: str, level: float, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Base lower bound, upper bound and scale of target ``h`` at ``level`` for ``method``."""
    mu = base.mu[:, h]
    if method == "absolute":
        return mu, mu, np.ones_like(mu)
    if method == "normalized":
        if base.sigma is None:
            raise ValueError("method 'normalized' needs a predicted sigma")
        return mu, mu, np.maximum(base.sigma[:, h], 1e-6)
    if base.quantiles is None:
        raise ValueError("method 'cqr' needs quantile predictions")
    lo_q, hi_q = round((1 - level) / 2, 6), round((1 + level) / 2, 6)
    qs = {round(k, 6): v for k, v in base.quantiles.items()}
    if lo_q not in qs or hi_q not in qs:
        raise ValueError(f"method 'cqr' at level {level} needs quantiles {lo_q} and {hi_q}; have {sorted(qs)}")
    return qs[lo_q][:, h], qs[hi_q][:, h], np.ones_like(mu)


class _Column:
    """A "prefit" sklearn regressor that returns one column of its input: lets MAPIE conformalize predictions
    that were already computed (by CatBoost, LightGBM or a network) without refitting or re-predicting."""

    def __init__(self, j: int = 0) -> None:
        self.j = j

    def get_params(self, deep: bool = True) -> dict[str, Any]:  # sklearn estimator protocol
        return {"j": self.j}

    def set_params(self, **params: Any) -> _Column:
        self.j = params.get("j", self.j)
        return self

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> _Column:
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X)[:, self.j]


def _mapie_corrections(method: str, lo: np.ndarray, hi: np.ndarray, scale: np.ndarray, y: np.ndarray,
                       level: float, symmetric: bool = True) -> tuple[float, float]:
    """(c_lo, c_hi) computed by MAPIE 1.x on precomputed base predictions (see module docstring)."""
    from mapie.regression import ConformalizedQuantileRegressor, SplitConformalRegressor

    zeros = np.zeros((1, 3))
    disabled = logging.root.manager.disable
    logging.disable(logging.INFO)  # MAPIE logs "The predictions are ill-sorted." on the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method == "cqr":
                X = np.column_stack([lo, hi, 0.5 * (lo + hi)])
                ests = [_Column(j).fit(X) for j in range(3)]
                m = ConformalizedQuantileRegressor(ests, confidence_level=level, prefit=True).conformalize(X, y)
                _, iv = m.predict_interval(zeros, allow_infinite_bounds=True, symmetric_correction=symmetric)
                return float(-iv[0, 0, 0]), float(iv[0, 1, 0])
            # Symmetric scores |y - mu| / s: conformalize y / s around mu / s, whose residual is that score.
            X = (lo / scale)[:, None]
            m = SplitConformalRegressor(_Column(0).fit(X), confidence_level=level, prefit=True)
            m.conformalize(X, y / scale)
            _, iv = m.predict_interval(zeros[:, :1], allow_infinite_bounds=True)
            c = float(iv[0, 1, 0])
            return c, c
    finally:
        logging.disable(disabled)


def _numpy_corrections(method: str, lo: np.ndarray, hi: np.ndarray, scale: np.ndarray, y: np.ndarray,
                       level: float, symmetric: bool = True) -> tuple[float, float]:
    scores, side = _scores(method, lo, hi, scale, y, level, symmetric)
    if len(scores) == 1:
        c = conformal_quantile(scores[0], side)
        return c, c
    return conformal_quantile(scores[0], side), conformal_quantile(scores[1], side)


def _scores(method: str, lo: np.ndarray, hi: np.ndarray, scale: np.ndarray, y: np.ndarray, level: float,
            symmetric: bool = True) -> tuple[list[np.ndarray], float]:
    """Conformity scores (one array, or lower and upper side) and the level their quantile is taken at."""
    if method == "cqr" and symmetric:
        return [np.maximum(lo - y, y - hi)], level
    if method == "cqr":
        return [lo - y, y - hi], 1 - (1 - level) / 2
    return [np.abs(y - lo) / scale], level


def quantile_sd(scores: np.ndarray, level: float) -> float:
    """Distribution-free standard error of the conformal quantile of ``scores``.

    The rank of the ``level`` quantile in a sample of ``n`` scatters by ``sqrt(n l (1 - l))`` ranks (binomial);
    half the distance between the order statistics that many ranks below and above it estimates the quantile's
    standard error without assuming a score distribution (the Maritz-Jarrett idea, on order statistics).
    """
    s = np.sort(np.asarray(scores, dtype=np.float64))
    n = s.size
    if n < 2:
        return math.inf
    k = min(math.ceil((n + 1) * level - 1e-12), n) - 1
    j = max(1, math.ceil(math.sqrt(n * level * (1 - level))))
    return float(s[min(k + j, n - 1)] - s[max(k - j, 0)]) / 2


def shrink_weights(estimates: np.ndarray, variances: np.ndarray, pooled: float) -> np.ndarray:
    """Empirical-Bayes weights of per-group estimates against the pooled one.

    Each group's correction ``c_g`` is the truth ``t_g`` plus sampling noise of variance ``v_g``; the ``t_g``
    scatter around the pooled value with a between-group variance ``tau^2``, estimated by the method of moments
    (``mean (c_g - pooled)^2 - mean v_g``, at least 0). The posterior mean puts weight ``tau^2 / (tau^2 + v_g)``
    on the group's own estimate: groups that truly differ (young videos' much wider intervals) keep their own
    correction, a small noisy bucket moves toward the pooled one, and groups that do not differ at all collapse
    onto it.
    """
    est, var = np.asarray(estimates, dtype=np.float64), np.asarray(variances, dtype=np.float64)
    if est.size == 0:
        return est
    finite = np.isfinite(var)
    if not finite.any():
        return np.zeros_like(est)
    tau2 = max(0.0, float(np.mean((est[finite] - pooled) ** 2) - np.mean(var[finite])))
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(finite, tau2 / (tau2 + var), 0.0)
    return np.where(np.isfinite(w), w, 1.0)


def sparse_group_merges(groups: np.ndarray, min_size: int) -> dict[str, list[str]]:
    """For each group with fewer than ``min_size`` points: itself and its nearest neighbours in group order.

    Groups are ordinal (age buckets "0" < "1" < ...): a sparse bucket is far more like the bucket next to it than
    like the pooled rows -- the oldest videos' residuals are a fraction of the youngest's, so the pooled correction
    makes a small old bucket over-cover by several points. The window grows one neighbour at a time (the smaller
    one first) until it holds ``min_size`` points. Non-numeric group keys are not ordered: no merge (pooled)."""
    keys, counts = np.unique(np.asarray(groups).astype(str), return_counts=True)
    if not all(k.lstrip("-").isdigit() for k in keys):
        return {}
    order = sorted(range(len(keys)), key=lambda i: int(keys[i]))
    names, n = [keys[i] for i in order], [int(counts[i]) for i in order]
    out: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        if n[i] >= min_size:
            continue
        lo = hi = i
        total = n[i]
        while total < min_size and (lo > 0 or hi < len(names) - 1):
            left = n[lo - 1] if lo > 0 else None
            right = n[hi + 1] if hi < len(names) - 1 else None
            if right is None or (left is not None and left <= right):
                lo -= 1
                total += n[lo]
            else:
                hi += 1
                total += n[hi]
        if total >= min_size:
            out[name] = names[lo : hi + 1]
    return out


def _finite(c: float, fallback: float) -> float:
    return fallback if not math.isfinite(c) else c


@dataclass
class IntervalCalibrator:
    """Conformal calibration per target, level and group (Mondrian), shrunk toward the pooled correction.

    Args:
        targets: target names, in the column order of the base predictions.
        method: ``absolute`` | ``normalized`` | ``cqr`` (see module docstring).
        levels: central interval levels to calibrate; the output contract needs 0.8, 0.9 and 0.95.
        min_group_size: groups with fewer calibration points (with the target present) use the pooled correction.
        backend: ``mapie`` or ``numpy`` (identical numbers).
        confidence_level: level whose width defines the confidence score.
        cqr_symmetric: CQR with one correction for both sides (default) or one per side.
        shrinkage: ``eb`` (each group's correction moves toward the pooled one by :func:`shrink_weights`) or
            ``none`` (a group of at least ``min_group_size`` points uses its own correction as it is).
        sparse_groups: a group under ``min_group_size`` points uses the correction of itself merged with its
            nearest groups (``merge``, :func:`sparse_group_merges`; ordinal groups) or the pooled one (``pooled``).
        scheme: where the scores came from (``split`` / ``cross``, folds, served model, why), recorded by the
            caller so that the calibration describes itself.
    """

    targets: list[str]
    method: str = "absolute"
    levels: list[float] = field(default_factory=lambda: [0.8, 0.9, 0.95])
    min_group_size: int = 50
    backend: str = "mapie"
    confidence_level: float = 0.9
    cqr_symmetric: bool = True
    shrinkage: str = "none"
    sparse_groups: str = "pooled"
    scheme: dict[str, Any] = field(default_factory=dict)
    # level -> shift of the rank level (the scores' quantile is taken at ``level - shift``): the served fold
    # ensemble's coverage gain over its members as measured on val coverage by models saved before 2026-12-06.
    level_shift: dict[str, float] = field(default_factory=dict)
    # target -> str(level) -> group -> shift of that group's rank level (:func:`ensemble_group_shift`); a group
    # without its own entry uses ``__pooled__``. Takes the place of ``level_shift`` (models saved before it).
    group_shift: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # Fitted state: corrections[target][str(level)][group] = [c_lo, c_hi, n_calibration_points]
    corrections: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    # group_weights[target][str(level)][group] = weight of the group's own correction (1 = unshrunk)
    group_weights: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    ref_width: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # merged[target][str(level)][group] = the neighbouring groups whose points a sparse group's correction used
    merged: dict[str, dict[str, dict[str, list[str]]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"intervals method must be one of {METHODS}, got {self.method!r}")
        if self.backend not in ("mapie", "numpy"):
            raise ValueError(f"intervals backend must be 'mapie' or 'numpy', got {self.backend!r}")
        if self.shrinkage not in ("eb", "none"):
            raise ValueError(f"intervals shrinkage must be 'eb' or 'none', got {self.shrinkage!r}")
        if self.sparse_groups not in ("merge", "pooled"):
            raise ValueError(f"intervals sparse_groups must be 'merge' or 'pooled', got {self.sparse_groups!r}")
        self.levels = sorted(float(x) for x in self.levels)
        if self.confidence_level not in self.levels:
            raise ValueError(f"confidence_level {self.confidence_level} is not one of levels {self.levels}")

    # ------------------------------------------------------------------ fit
    def fit(self, base: BaseOutput, y: np.ndarray, groups: np.ndarray | None = None) -> IntervalCalibrator:
        """Compute corrections on the calibration scores.

        Args:
            base: base predictions on the calibration rows.
            y: calibration targets ``(N, H)``, NaN where missing.
            groups: group label per row ``(N,)`` (age bucket) or None for pooled only.
        """
        groups = np.full(len(y), POOLED, dtype=object) if groups is None else np.asarray(groups).astype(str)
        self.corrections, self.group_weights, self.warnings, self.merged = {}, {}, [], {}
        for h, target in enumerate(self.targets):
            present = ~np.isnan(y[:, h])
            self.corrections[target], self.group_weights[target] = {}, {}
            for level in self.levels:
                lo, hi, s = _bounds(base, self.method, level, h)
                table, weights = self._fit_level(target, level, lo[present], hi[present], s[present],
                                                 y[present, h], groups[present])
                self.corrections[target][str(level)] = table
                self.group_weights[target][str(level)] = weights
        self._fit_ref_width(base, y, groups)
        return self

    def _fit_level(self, target: str, level: float, lo: np.ndarray, hi: np.ndarray, s: np.ndarray,
                   yt: np.ndarray, g: np.ndarray) -> tuple[dict[str, list[float]], dict[str, float]]:
        """The pooled and per-group corrections of one target at one level (rows with the target present)."""
        corr_fn = _mapie_corrections if self.backend == "mapie" else _numpy_corrections
        shifts = self.group_shift.get(target, {}).get(str(level), {})
        nominal, level = level, level - shifts.get(POOLED, self.level_shift.get(str(level), 0.0))

        def at(grp: str) -> float:  # the rank level of one group (bounds were read at the nominal level)
            return nominal - shifts[grp] if grp in shifts else level

        table: dict[str, list[float]] = {}
        # Fallback for a split too small for the finite-sample rank: the largest observed score.
        worst = float(np.max(np.abs(np.concatenate([(lo - yt) / s, (yt - hi) / s])))) if yt.size else 0.0
        c_lo, c_hi = corr_fn(self.method, lo, hi, s, yt, level, self.cqr_symmetric)
        if not (math.isfinite(c_lo) and math.isfinite(c_hi)):
            self.warnings.append(f"{target}@{level}: {yt.size} calibration points are too few for the "
                                 f"finite-sample quantile; using the largest score")
        table[POOLED] = [_finite(c_lo, worst), _finite(c_hi, worst), float(yt.size)]
        own: dict[str, tuple[list[float], list[float]]] = {}  # group -> ([c_lo, c_hi], [sd_lo, sd_hi])
        for grp in sorted(set(g.tolist()) - {POOLED}):
            sel = g == grp
            n_g = int(sel.sum())
            if n_g < self.min_group_size:
                continue  # pooled fallback
            c_lo, c_hi = corr_fn(self.method, lo[sel], hi[sel], s[sel], yt[sel], at(grp), self.cqr_symmetric)
            if math.isfinite(c_lo) and math.isfinite(c_hi):
                scores, side = _scores(self.method, lo[sel], hi[sel], s[sel], yt[sel], at(grp), self.cqr_symmetric)
                sds = [quantile_sd(x, side) for x in scores]
                own[grp] = ([c_lo, c_hi], sds * (2 // len(sds)))
                table[grp] = [c_lo, c_hi, float(n_g)]
        weights = dict.fromkeys(own, 1.0)
        if self.shrinkage == "eb" and own:
            weights = self._shrink(table, own)
        if self.sparse_groups == "merge":
            for grp, members in sparse_group_merges(g, self.min_group_size).items():
                sel = np.isin(g, members)
                c_lo, c_hi = corr_fn(self.method, lo[sel], hi[sel], s[sel], yt[sel], at(grp), self.cqr_symmetric)
                if math.isfinite(c_lo) and math.isfinite(c_hi):
                    table[grp] = [c_lo, c_hi, float(sel.sum())]
                    weights[grp] = 1.0
                    self.merged.setdefault(target, {}).setdefault(str(level), {})[grp] = members
        return table, weights

    def _shrink(self, table: dict[str, list[float]], own: dict[str, tuple[list[float], list[float]]]
                ) -> dict[str, float]:
        """Move each group's correction toward the pooled one (:func:`shrink_weights`), in place.

        ``absolute`` / ``normalized`` corrections are positive scale factors whose groups differ by ratios (young
        videos' residuals are several times wider): they shrink on the log scale, where a group twice as wide is
        as far from the pooled value as one half as wide. CQR corrections are additive shifts (and may be
        negative): they shrink as they are.
        """
        names = list(own)
        weights: dict[str, float] = {}
        for side in (0, 1):
            est = np.array([own[k][0][side] for k in names])
            sd = np.array([own[k][1][side] for k in names])
            pooled = table[POOLED][side]
            log_scale = self.method != "cqr" and pooled > 0 and (est > 0).all()
            if log_scale:
                w = shrink_weights(np.log(est), (sd / est) ** 2, math.log(pooled))
                new = np.exp(math.log(pooled) + w * (np.log(est) - math.log(pooled)))
            else:
                w = shrink_weights(est, sd**2, pooled)
                new = pooled + w * (est - pooled)
            for k, wk, v in zip(names, w, new, strict=True):
                table[k][side] = float(v)
                weights[k] = min(weights.get(k, 1.0), float(wk))
        return weights

    def _fit_ref_width(self, base: BaseOutput, y: np.ndarray, groups: np.ndarray) -> None:
        """Reference width for the confidence score: median calibrated width on the calibration rows."""
        self.ref_width = {}
        out = self.apply(base, groups, with_confidence=False)
        lo_n, hi_n = level_names(self.confidence_level)
        for h, target in enumerate(self.targets):
            w = out[hi_n][:, h] - out[lo_n][:, h]
            present = ~np.isnan(y[:, h])
            ref = float(np.median(w[present])) if present.any() else float(np.median(w))
            self.ref_width[target] = max(ref, 1e-6)

    # ---------------------------------------------------------------- apply
    def group_used(self, target: str, level: float, groups: np.ndarray) -> np.ndarray:
        """Which correction each row uses (its group's, or ``__pooled__``)."""
        table = self.corrections[target][str(float(level))]
        g = np.asarray(groups).astype(str)
        return np.where(np.isin(g, list(table)), g, POOLED)

    def apply(self, base: BaseOutput, groups: np.ndarray | None = None,
              with_confidence: bool = True) -> dict[str, np.ndarray]:
        """Calibrated quantiles ``{"p025": (N, H), …, "p975": …}`` and ``"confidence"`` ``(N, H)``.

        Quantiles are repaired so that ``p025 <= p05 <= p10 <= p50 <= p90 <= p95 <= p975`` on every row.
        """
        if not self.corrections:
            raise RuntimeError("IntervalCalibrator.apply before fit")
        n, n_t = base.mu.shape
        groups = np.full(n, POOLED, dtype=object) if groups is None else np.asarray(groups).astype(str)
        out: dict[str, np.ndarray] = {name: np.empty((n, n_t)) for name in QUANTILE_NAMES}
        out["p50"] = base.mu.astype(np.float64).copy()
        for h, target in enumerate(self.targets):
            for level in self.levels:
                lo, hi, s = _bounds(base, self.method, level, h)
                table = self.corrections[target][str(level)]
                used = self.group_used(target, level, groups)
                c = np.array([table[u][:2] for u in used]).reshape(n, 2)
                lo_n, hi_n = level_names(level)
                out[lo_n][:, h] = lo - c[:, 0] * s
                out[hi_n][:, h] = hi + c[:, 1] * s
        stacked = repair_crossing(np.stack([out[name] for name in QUANTILE_NAMES], axis=-1))  # (N, H, 7)
        result = {name: stacked[..., i] for i, name in enumerate(QUANTILE_NAMES)}
        if with_confidence:
            lo_n, hi_n = level_names(self.confidence_level)
            ref = np.array([self.ref_width[t] for t in self.targets])[None, :]
            result["confidence"] = np.clip(np.exp2(-(result[hi_n] - result[lo_n]) / ref), 0.0, 1.0)
        return result

    # --------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fitted state (travels inside the model artifact)."""
        return {
            "targets": list(self.targets), "method": self.method, "levels": list(self.levels),
            "min_group_size": self.min_group_size, "backend": self.backend,
            "confidence_level": self.confidence_level, "cqr_symmetric": self.cqr_symmetric,
            "shrinkage": self.shrinkage, "sparse_groups": self.sparse_groups, "merged": self.merged,
            "scheme": self.scheme, "group_weights": self.group_weights,
            "level_shift": self.level_shift, "group_shift": self.group_shift,
            "corrections": self.corrections,
            "ref_width": self.ref_width, "warnings": list(self.warnings),
            "confidence_definition": "2 ** (-width_at_confidence_level / median_calibration_width)",
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IntervalCalibrator:
        d = {k: v for k, v in d.items() if k != "confidence_definition"}
        return cls(**d)


def _centre_scale(base: BaseOutput, method: str, level: float, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of target ``h``'s interval at ``level``: what a member's error is measured from."""
    lo, hi, s = _bounds(base, method, level, h)
    return 0.5 * (lo + hi), s


TAIL_DF_GRID = (2.5, 3.0, 4.0, 6.0, 10.0, 30.0, math.inf)  # Student-t degrees of freedom; inf = Gaussian
TAIL_FIT_LEVELS = (0.8, 0.9, 0.95)  # the shape is fitted where the intervals are read
_GRID_T = (np.arange(2000) + 0.5) / 2000  # quadrature points (probabilities) of the error's distribution
_GRID_D = (np.arange(32) + 0.5) / 32  # ... and of the members' Gaussian disagreement


def fit_tail_df(scores: np.ndarray, groups: np.ndarray) -> float:
    """Degrees of freedom of the Student-t whose ``|T|`` quantile ratios ``q_l / q_0.5`` (l in
    :data:`TAIL_FIT_LEVELS`) are nearest, on the log scale, to those of ``|scores|``, each group divided by its own
    median (so that the groups' different widths do not read as a heavy tail). ``inf`` is the Gaussian."""
    from scipy.stats import norm
    from scipy.stats import t as student

    a = np.abs(np.asarray(scores, dtype=np.float64))
    z = np.empty_like(a)
    for grp in set(groups.tolist()):
        sel = groups == grp
        z[sel] = a[sel] / max(float(np.median(a[sel])), 1e-12)
    seen = np.log(np.quantile(z, TAIL_FIT_LEVELS) / max(float(np.median(z)), 1e-12))

    def model(df: float) -> np.ndarray:
        ppf = student(df).ppf if math.isfinite(df) else norm.ppf
        return np.log(ppf((1 + np.array(TAIL_FIT_LEVELS)) / 2) / ppf(0.75))

    return min(TAIL_DF_GRID, key=lambda df: float(np.sum((model(df) - seen) ** 2)))


@functools.lru_cache(maxsize=len(TAIL_DF_GRID))
def _error_quadrature(df: float) -> np.ndarray:
    """Quantiles of the standard Student-t (Gaussian at inf) at :data:`_GRID_T`: the same for every group and level
    of a fit, so computed once per ``df``."""
    from scipy.stats import norm
    from scipy.stats import t as student

    return student.ppf(_GRID_T, df) if math.isfinite(df) else norm.ppf(_GRID_T)


def tail_shift(level: float, v: float, median_score: float, df: float, inflation: float = 1.0) -> float:
    """The rank-level shift at ``level`` for an ensemble whose error ``e`` is Student-t (``df``; Gaussian at inf),
    given that a member's score is ``|e + d| * sqrt(inflation)`` with ``d ~ N(0, v)`` the member's disagreement
    and a median of ``median_score``: ``level - P(|e + d| <= q_level(|e|) / sqrt(inflation))``.

    ``e``'s scale is solved so that the member scores' median matches (a median, not the mean square, since heavy
    tails make the mean square noisy). For the Gaussian with the mean square in place of the median this is the
    closed form ``2 Phi(r z(l)) - 1`` (:func:`ensemble_group_shift`); for heavier tails the same disagreement moves
    the 80% quantile more and the 95% quantile less than the Gaussian says (measured on t(3) errors: true shifts
    3.6 / 1.7 / 0.6 points at 80 / 90 / 95% where the Gaussian gives 2.2 / 1.7 / 1.2)."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    target = median_score / math.sqrt(inflation)
    if v <= 0 or target <= 0:
        return 0.0
    x = _error_quadrature(df)
    d = norm.ppf(_GRID_D) * math.sqrt(v)

    def median_gap(scale: float) -> float:
        return float(np.median(np.abs(scale * x[:, None] + d[None, :]))) - target

    if median_gap(1e-9) >= 0:  # the disagreement alone is as wide as the members' scores: no ensemble error left
        scale = 1e-9
    else:
        hi = 1.0
        while median_gap(hi) < 0:
            hi *= 2.0
        scale = brentq(median_gap, 1e-9, hi, xtol=1e-6 * hi)
    q = scale * float(np.quantile(np.abs(x), level))
    covered = float(np.mean(norm.cdf((q - scale * x) / math.sqrt(v)) - norm.cdf((-q - scale * x) / math.sqrt(v))))
    return level - covered


def ensemble_group_shift(cal: IntervalCalibrator, oof: BaseOutput, y: np.ndarray, groups: np.ndarray | None,
                         members: list[BaseOutput], groups_held: np.ndarray | None, min_rows: int = 10,
                         tails: str = "gaussian") -> dict[str, dict[str, dict[str, float]]]:
    """How much lower each group's rank level must be so that the served fold *ensemble* covers the nominal level,
    per target, level and group, from the members' disagreement -- no held-out targets needed.

    Cross-conformal scores come from single fold models; the served model is their mean. For any row, with member
    errors ``e_k = y - m_k`` and ``d_k = m_k - m`` (``m`` the mean), ``mean_k e_k^2 = (y - m)^2 + mean_k d_k^2``
    exactly (the ``d_k`` sum to zero). So per group, the ensemble's mean squared error is the members' (``M``, the
    out-of-fold scores) less the members' variance around their mean (``V``, measured on ``members``' predictions
    of rows none of them trained on: the val split). With a Gaussian error shape, a correction calibrated on member
    scores at level ``l'`` covers ``2 Phi(z(l') / r) - 1`` for the ensemble, ``r = sqrt(1 - V / M)``; it covers
    ``l`` at ``l' = 2 Phi(r z(l)) - 1``, ``z(l) = Phi^-1((1 + l) / 2)``. The shift is ``l - l'``.

    Why per group and from the disagreement: the gain grows where model variance is a larger share of the error
    (old videos, whose outcome noise is small: measured 0.6 points at 90% for the youngest bucket and 1.8 for the
    oldest, v1 on 1,000 rows, each predicted within 0.3 points by this formula on 10,000 fresh rows). A gain
    measured from val coverage (the earlier method) is one pooled number and carries the binomial noise of ~100
    val rows; ``V`` has no outcome noise. ``V`` is the members' variance on the interval's edges (the mean of the
    lower and upper edge's): for a point method the centre's, for CQR the centre's plus the half-width's -- a CQR
    member's score moves with its width as much as with its centre (the baseline, ten 1,000-row tables per process,
    docs/training.md: worst bucket gap over 80/90/95% 1.6 -> 0.85 points on the demo process, 3.9 -> 3.2 on the
    other). Groups with fewer than ``min_rows`` held-out rows use ``V / M`` pooled over all groups. ``V`` has no
    outcome noise, so even 7-8 val rows estimate a bucket's ``V / M`` within a few percent of 10,000 fresh rows'; yet
    a threshold of 5 fixes the other process's 3-5 d bucket and breaks the demo's >= 7 d one, where the formula
    itself over-predicts the gain (docs/training.md, "A sparse bucket's own disagreement"): hence 10.
    ``tails="fitted"`` reads the error's shape as a Student-t fitted to the scores (:func:`tail_shift`). Scores are on
    the method's scale (``|y - mu| / sigma`` for normalized; the interval centre for CQR). Clipped to 80% of the
    level's miss rate.

    Returns:
        ``{target: {str(level): {group: shift}}}`` (and ``__pooled__``) for :attr:`IntervalCalibrator.group_shift`.
    """
    from scipy.stats import norm

    if tails not in ("gaussian", "fitted"):
        raise ValueError(f"ensemble tails must be 'gaussian' or 'fitted', got {tails!r}")
    n = len(y)
    groups = np.full(n, POOLED, dtype=object) if groups is None else np.asarray(groups).astype(str)
    n_held = len(members[0].mu)
    groups_held = (np.full(n_held, POOLED, dtype=object) if groups_held is None
                   else np.asarray(groups_held).astype(str))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for h, target in enumerate(cal.targets):
        present = ~np.isnan(y[:, h])
        out[target] = {}
        for level in cal.levels:
            c, s = _centre_scale(oof, cal.method, level, h)
            err2 = ((y[:, h] - c) / s) ** 2
            bounds = [_bounds(m, cal.method, level, h) for m in members]
            scales = np.stack([b[2] for b in bounds])
            # the members' disagreement on the interval's edges: on its centre, and for CQR on its half-width too
            # (var of the edges = var of the centre + var of the half-width); a member's score moves with either
            edges = np.var(np.stack([b[0] for b in bounds]), axis=0) + np.var(np.stack([b[1] for b in bounds]), axis=0)
            spread = edges / 2 / np.mean(scales, axis=0) ** 2
            # a member's score is divided by its own scale, the ensemble's by the members' mean scale: the members'
            # scale noise (relative variance) inflates member scores by ~(1 + 3 var) on top (v2's sigma heads)
            jitter = np.var(scales / np.mean(scales, axis=0), axis=0)
            df = fit_tail_df(np.sqrt(err2[present]), groups[present]) if tails == "fitted" else math.inf
            table: dict[str, float] = {}
            for grp in [POOLED, *sorted(set(groups[present].tolist()) - {POOLED})]:
                sel_c = present if grp == POOLED else present & (groups == grp)
                sel_h = np.ones(n_held, bool) if grp == POOLED else groups_held == grp
                if grp != POOLED and (sel_h.sum() < min_rows or not sel_c.any()):
                    sel_c, sel_h = present, np.ones(n_held, bool)  # too few held-out rows: pooled over groups
                inflation = 1.0 + 3.0 * float(np.mean(jitter[sel_h]))
                cap = 0.8 * (1 - level)
                if tails == "fitted" and sel_c.any():
                    med = float(np.median(np.sqrt(err2[sel_c])))
                    v = float(np.mean(spread[sel_h]))
                    table[grp] = float(np.clip(tail_shift(level, v, med, df, inflation), -cap, cap))
                    continue
                m2 = max(float(np.mean(err2[sel_c])), 1e-12) if sel_c.any() else 1.0
                r2 = 1.0 / inflation - float(np.mean(spread[sel_h])) / m2
                r = math.sqrt(max(r2, 0.05))
                target_level = 2 * norm.cdf(r * norm.ppf((1 + level) / 2)) - 1
                table[grp] = float(np.clip(level - target_level, -cap, cap))
            out[target][str(level)] = table
    return out
