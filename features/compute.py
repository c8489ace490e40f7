"""Columnar feature computation: one code path for a batch of runs and for a single run (a batch of one).

Every ragged field is laid out as one flat ``values`` array plus per-run ``lengths`` (segments), and every
aggregation is a segmented numpy operation (``ufunc.reduceat``, one ``lexsort`` for percentiles). Each output
element depends only on its own segment, computed by the same operations in the same order whatever the
batch, so a run's values are bit-for-bit identical in a batch of one (inference) and in a table of 10,000
(training) — the parity test holds this. Embedding projections are written as an explicit accumulation over
the input width (not BLAS, whose blocking depends on the batch size).

The functions ``segment_*``, :func:`pool_rows`, :func:`projection_matrix` and :func:`project` are pure and
unit-tested on tiny arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from features.io import RunData
from features.spec import Feature, FeatureSpec

USABLE = ("ok", "degraded")


# ---- segmented primitives (pure) -----------------------------------------------------------------------

def segment_starts(lengths: np.ndarray) -> np.ndarray:
    """Start offset of each segment in the flat array. ``lengths``: ``(n,)`` int."""
    return np.cumsum(lengths) - lengths


def _reduceat(ufunc: np.ufunc, values: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ufunc`` over each non-empty segment; returns (result for non-empty segments, non-empty mask)."""
    nonempty = lengths > 0
    if not nonempty.any():
        return np.zeros((0, *values.shape[1:]), np.float64), nonempty
    return ufunc.reduceat(values, segment_starts(lengths)[nonempty], axis=0), nonempty


def segment_sum(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Sum per segment (0 for an empty one). ``values``: ``(T,)`` float64, ``lengths``: ``(n,)`` -> ``(n,)``."""
    out = np.zeros(len(lengths), np.float64)
    res, nonempty = _reduceat(np.add, values, lengths)
    out[nonempty] = res
    return out


def segment_mean(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Mean per segment (NaN for an empty one)."""
    out = np.full(len(lengths), np.nan)
    res, nonempty = _reduceat(np.add, values, lengths)
    out[nonempty] = res / lengths[nonempty]
    return out


def segment_max(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    out = np.full(len(lengths), np.nan)
    res, nonempty = _reduceat(np.maximum, values, lengths)
    out[nonempty] = res
    return out


def segment_min(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    out = np.full(len(lengths), np.nan)
    res, nonempty = _reduceat(np.minimum, values, lengths)
    out[nonempty] = res
    return out


def segment_std(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Population standard deviation (``ddof=0``, as :func:`numpy.std`) per segment; NaN for an empty one."""
    mean = segment_mean(values, lengths)
    dev = values - np.repeat(mean, lengths)
    out = np.full(len(lengths), np.nan)
    res, nonempty = _reduceat(np.add, dev * dev, lengths)
    out[nonempty] = np.sqrt(res / lengths[nonempty])
    return out


def segment_rate(values: np.ndarray, lengths: np.ndarray, threshold: float) -> np.ndarray:
    """Fraction of each segment's elements ``> threshold``; NaN for an empty segment."""
    return segment_mean((values > threshold).astype(np.float64), lengths)


def segment_percentile(values: np.ndarray, lengths: np.ndarray, q: float) -> np.ndarray:
    """``q``-th percentile per segment, NumPy's default ``linear`` method (same lerp); NaN if empty."""
    n = len(lengths)
    out = np.full(n, np.nan)
    nonempty = lengths > 0
    if not nonempty.any():
        return out
    seg = np.repeat(np.arange(n), lengths)
    srt = values[np.lexsort((values, seg))]  # sorted within each segment
    ln = lengths[nonempty]
    start = segment_starts(lengths)[nonempty]
    pos = (ln - 1) * (q / 100.0)  # virtual index
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, ln - 1)
    t = pos - lo
    a, b = srt[start + lo], srt[start + hi]
    diff = b - a
    res = a + diff * t
    upper = t >= 0.5
    res[upper] = (b - diff * (1 - t))[upper]
    out[nonempty] = res
    return out


def pool_rows(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the rows of every segment over several fields.

    Args:
        parts: per field ``(rows (T_f, D) float64, lengths (n,))``; a segment's rows are pooled across fields.

    Returns:
        ``(pooled (n, D), rows (n,))``; NaN rows where a segment has no row in any field.
    """
    n = len(parts[0][1])
    width = parts[0][0].shape[1]
    total = np.zeros((n, width), np.float64)
    rows = np.zeros(n, np.int64)
    for values, lengths in parts:  # fields in spec order: the summation order is fixed
        res, nonempty = _reduceat(np.add, values, lengths)
        total[nonempty] += res
        rows += lengths
    pooled = np.full((n, width), np.nan)
    has = rows > 0
    pooled[has] = total[has] / rows[has, None]
    return pooled, rows


@lru_cache(maxsize=64)
def projection_matrix(seed: int, width: int, dim: int) -> np.ndarray:
    """Fixed Gaussian random projection ``(width, dim)``, entries ``N(0, 1/dim)``, from ``default_rng([seed,
    width])`` (PCG64 streams are identical on every platform)."""
    m = np.random.default_rng([seed, width]).standard_normal((width, dim)) / math.sqrt(dim)
    m.setflags(write=False)
    return m


def project(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``x @ matrix`` as an explicit accumulation over the input width, so each output element is the same
    sequence of float operations whatever the number of rows. ``x``: ``(n, D)`` -> ``(n, k)``."""
    out = np.zeros((x.shape[0], matrix.shape[1]), np.float64)
    for d in range(matrix.shape[0]):
        out += x[:, d, None] * matrix[d]
    return out


# ---- gathering the fields of a batch of runs --------------------------------------------------------------

def _meta_value(manifest: dict[str, Any], dotted: str) -> Any:
    cur: Any = manifest.get("metadata", {})
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _meta_path(manifest: dict[str, Any], dotted: str) -> float:
    cur = _meta_value(manifest, dotted)
    try:
        return float(cur) if cur is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


class Gather:
    """Lays out the fields of ``runs`` column-wise, once per field, for all features that read them."""

    def __init__(self, runs: list[RunData]) -> None:
        self.runs = runs
        self.n = len(runs)
        self._cache: dict[tuple, Any] = {}

    def status(self, component: str) -> np.ndarray:
        key = ("status", component)
        if key not in self._cache:
            self._cache[key] = np.array([r.component_status(component) for r in self.runs], dtype=object)
        return self._cache[key]

    def _arrays(self, component: str, name: str) -> list[np.ndarray | None]:
        return [r.arrays.get(component, {}).get(name) for r in self.runs]

    def scalar(self, component: str, name: str) -> np.ndarray:
        key = ("scalar", component, name)
        if key not in self._cache:
            self._cache[key] = np.array([math.nan if a is None else float(a) for a in self._arrays(component, name)],
                                        np.float64)
        return self._cache[key]

    def metadata(self, dotted: str) -> np.ndarray:
        key = ("metadata", dotted)
        if key not in self._cache:
            self._cache[key] = np.array([_meta_path(r.manifest, dotted) for r in self.runs], np.float64)
        return self._cache[key]

    def category(self, dotted: str, categories: list[str]) -> np.ndarray:
        """Index of each run's metadata text value in ``categories``; NaN when absent or not listed."""
        key = ("category", dotted, tuple(categories))
        if key not in self._cache:
            pos = {c: float(i) for i, c in enumerate(categories)}
            self._cache[key] = np.array([pos.get(str(_meta_value(r.manifest, dotted)), math.nan)
                                         for r in self.runs], np.float64)
        return self._cache[key]

    def flat(self, component: str, name: str, finite: bool) -> tuple[np.ndarray, np.ndarray]:
        """Every run's array flattened into one ``(T,)`` float64 + ``(n,)`` lengths; ``finite`` drops NaN/inf."""
        key = ("flat", component, name, finite)
        if key not in self._cache:
            if finite:
                values, lengths = self.flat(component, name, False)
                keep = np.isfinite(values)
                if not keep.all():
                    seg = np.repeat(np.arange(self.n), lengths)
                    values, lengths = values[keep], np.bincount(seg[keep], minlength=self.n)
                self._cache[key] = (values, lengths)
            else:
                arrs = [np.zeros(0) if a is None else a.reshape(-1) for a in self._arrays(component, name)]
                lengths = np.fromiter((len(a) for a in arrs), np.int64, self.n)
                values = np.concatenate(arrs).astype(np.float64) if self.n else np.zeros(0)
                self._cache[key] = (values, lengths)
        return self._cache[key]

    def rows(self, component: str, name: str) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Per run its rows ``(N, D)`` (a ``(D,)`` field is one row), row counts and widths (0: no rows)."""
        key = ("rows", component, name)
        if key not in self._cache:
            out = []
            for a in self._arrays(component, name):
                if a is None:
                    a = np.zeros((0, 0))
                elif a.ndim == 1:
                    a = a[None, :] if a.shape[0] else np.zeros((0, 0))
                out.append(a)
            lengths = np.fromiter((a.shape[0] for a in out), np.int64, self.n)
            widths = np.fromiter((a.shape[1] if a.shape[0] else 0 for a in out), np.int64, self.n)
            self._cache[key] = (out, lengths, widths)
        return self._cache[key]


# ---- one feature ------------------------------------------------------------------------------------------

def _pooled(g: Gather, f: Feature) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Per embedding width present: (width, run indices, pooled mean (m, width)); non-finite rows dropped."""
    comp = f.source.component
    fields = [g.rows(comp, n) for n in f.source.field_names]
    widths = fields[0][2].copy()
    for _, _, w in fields[1:]:  # a run whose fields disagree on width (invalid artifact) gets no rows
        widths[(w != widths) & (w > 0) & (widths > 0)] = -1
    out = []
    for width in sorted(int(w) for w in np.unique(widths) if w > 0):
        idx = np.flatnonzero(widths == width)
        parts = []
        for arrs, _, w in fields:
            chunk = [arrs[i] if w[i] == width else np.zeros((0, width)) for i in idx]
            vals = np.concatenate(chunk).astype(np.float64)
            lens = np.fromiter((len(c) for c in chunk), np.int64, len(chunk))
            ok = np.isfinite(vals).all(axis=1)
            if not ok.all():
                seg = np.repeat(np.arange(len(idx)), lens)
                vals, lens = vals[ok], np.bincount(seg[ok], minlength=len(idx))
            parts.append((vals, lens))
        pooled, _ = pool_rows(parts)
        out.append((width, idx, pooled))
    return out


def aggregate(g: Gather, f: Feature) -> np.ndarray:
    """Raw aggregated values of feature ``f`` for every run: ``(n,)``, or ``(n, k)`` for embedding_mean."""
    s, agg = f.source, f.aggregation
    if s.metadata is not None:
        return g.category(s.metadata, f.categories) if f.transform == "category" else g.metadata(s.metadata)
    comp, name = s.component, s.field_names[0]
    if agg == "value":
        return g.scalar(comp, name)
    if agg == "ratio":
        num, den = g.scalar(comp, name), g.scalar(comp, s.denominator)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)
    if agg == "count":
        _, lengths = g.flat(comp, name, finite=False)
        return lengths.astype(np.float64)
    if agg in ("embedding_mean", "embedding_mean_norm"):
        k = f.projection.dim if agg == "embedding_mean" else 1
        out = np.full((g.n, k), np.nan)
        for width, idx, pooled in _pooled(g, f):
            if agg == "embedding_mean":
                out[idx] = project(pooled, projection_matrix(f.projection.seed, width, f.projection.dim))
            else:
                out[idx, 0] = np.sqrt(np.sum(pooled * pooled, axis=1))
        return out if agg == "embedding_mean" else out[:, 0]
    values, lengths = g.flat(comp, name, finite=True)
    if agg == "mean":
        return segment_mean(values, lengths)
    if agg == "max":
        return segment_max(values, lengths)
    if agg == "min":
        return segment_min(values, lengths)
    if agg == "std":
        return segment_std(values, lengths)
    if agg == "sum":
        return segment_sum(values, lengths)
    if agg == "rate":
        return segment_rate(values, lengths, float(f.threshold))
    q = f.percentile
    if q is not None:
        return segment_percentile(values, lengths, q)
    raise ValueError(f"unknown aggregation {agg!r}")  # unreachable for a validated spec


def apply_transform(x: np.ndarray, transform: str, edges: tuple[float, ...]) -> np.ndarray:
    """``none`` | ``log1p`` | ``age_bucket`` (index of the bucket, ``edges[i-1] <= x < edges[i]``), NaN kept;
    ``category`` values are already indices (:meth:`Gather.category`)."""
    if transform == "log1p":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log1p(x)
    if transform == "age_bucket":
        out = np.searchsorted(np.asarray(edges, np.float64), x, side="right").astype(np.float64)
        out[~np.isfinite(x)] = np.nan
        return out
    return x


def availability(g: Gather, f: Feature) -> np.ndarray:
    """``(n,)`` bool: the feature's component artifact is usable for it (by status and ``on_empty``)."""
    if f.source.metadata is not None:
        return np.ones(g.n, bool)
    usable = USABLE + (("empty",) if f.on_empty == "read" else ())
    return np.isin(g.status(f.source.component), usable)


def missing_reason(g: Gather, f: Feature, i: int, available: bool) -> str:
    """Why feature ``f`` is missing for run ``i``: ``'<component>: <status>'`` or ``'no value'``."""
    if f.source.metadata is None:
        status = g.status(f.source.component)[i]
        if not available or status not in USABLE:  # unusable, or "empty" read (on_empty: read) with no value
            return f"{f.source.component}: {status}"
    return "no value"


# ---- a batch ----------------------------------------------------------------------------------------------

@dataclass
class FeatureBlock:
    """Features of ``n`` runs. ``columns``: feature column -> ``(n,)`` of the spec dtype, NaN where missing;
    ``present``: feature name -> ``(n,)`` bool; ``masks``: mask column -> ``(n,)`` int8; per-row ``warnings``
    (optional features missing, grouped by reason) and ``critical_missing`` (``'name (reason)'``)."""

    n: int
    columns: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    warnings: list[list[str]]
    critical_missing: list[list[str]]
    age_hours: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def take(self, idx: np.ndarray) -> FeatureBlock:
        idx = np.asarray(idx, np.int64)
        return FeatureBlock(
            n=len(idx), columns={k: v[idx] for k, v in self.columns.items()},
            present={k: v[idx] for k, v in self.present.items()}, masks={k: v[idx] for k, v in self.masks.items()},
            warnings=[self.warnings[i] for i in idx], critical_missing=[self.critical_missing[i] for i in idx],
            age_hours=self.age_hours[idx])


def compute_block(runs: list[RunData], spec: FeatureSpec) -> FeatureBlock:
    """Every feature of ``spec`` for every run in ``runs`` (the single code path of training and inference)."""
    g = Gather(runs)
    n = g.n
    columns: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    missing_by_row: list[dict[str, list[str]]] = [{} for _ in range(n)]
    critical: list[list[str]] = [[] for _ in range(n)]
    edges = spec.age_buckets.edges_hours
    for f in spec.features:
        raw = aggregate(g, f)
        if f.aggregation != "embedding_mean":
            raw = apply_transform(raw, f.transform, edges)
        vals = raw.astype(f.dtype).reshape(n, len(f.columns))  # (n, k)
        avail = availability(g, f)
        finite = np.isfinite(vals).all(axis=1)
        ok = avail & finite
        vals[~ok] = np.nan
        for j, col in enumerate(f.columns):
            columns[col] = np.ascontiguousarray(vals[:, j])
        present[f.name] = ok
        if f.mask:
            masks[f.mask_column] = ok.astype(np.int8)
        for i in np.flatnonzero(~ok):
            why = missing_reason(g, f, int(i), bool(avail[i]))
            if f.critical:
                critical[i].append(f"{f.name} ({why})")
            else:
                missing_by_row[i].setdefault(why, []).append(f.name)
    warnings = [[f"optional features missing ({why}): {', '.join(names)}" for why, names in row.items()]
                for row in missing_by_row]
    age = g.scalar("metadata", "video_age_hours_at_snapshot1").copy()
    age[~np.isin(g.status("metadata"), USABLE)] = np.nan
    return FeatureBlock(n=n, columns=columns, present=present, masks=masks, warnings=warnings,
                        critical_missing=critical, age_hours=age)
