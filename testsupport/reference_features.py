"""A straightforward per-row implementation of the spec, for the benchmark's baseline and as an independent
check of the vectorised maths (values agree to float rounding; tests hold ``allclose``).

For each run: :func:`extraction.artifacts.load_run` (every artifact fully validated), then a Python dict
built feature by feature with numpy's per-array functions; the rows become a table at the end. Not used by
training or inference.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from features.compute import USABLE, projection_matrix
from features.io import RunData, read_run
from features.spec import Feature, FeatureSpec


def _value(run: RunData, f: Feature, edges: tuple[float, ...]) -> list[float]:
    s, agg = f.source, f.aggregation
    k = len(f.columns)
    if s.metadata is not None:
        cur: Any = run.manifest.get("metadata", {})
        for part in s.metadata.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if f.transform == "category":
            raw = float(f.categories.index(cur)) if cur in f.categories else math.nan
        else:
            raw = float(cur) if cur is not None else math.nan
    else:
        status = run.component_status(s.component)
        if status not in USABLE and not (status == "empty" and f.on_empty == "read"):
            return [math.nan] * k
        arrs = run.arrays[s.component]
        a = arrs[s.field_names[0]]
        if agg == "value":
            raw = float(a)
        elif agg == "ratio":
            den = float(arrs[s.denominator])
            raw = float(a) / den if den != 0 else math.nan
        elif agg == "count":
            raw = float(a.size)
        elif agg in ("embedding_mean", "embedding_mean_norm"):
            rows = [np.atleast_2d(arrs[n]).astype(np.float64) for n in s.field_names]
            rows = np.vstack([r for r in rows if r.size])
            rows = rows[np.isfinite(rows).all(axis=1)] if rows.size else rows
            if not rows.size:
                return [math.nan] * k
            pooled = rows.mean(axis=0)
            if agg == "embedding_mean_norm":
                raw = float(np.linalg.norm(pooled))
            else:
                p = pooled @ projection_matrix(f.projection.seed, pooled.shape[0], f.projection.dim)
                return [float(np.asarray(v, f.dtype)) for v in p]
        else:
            x = a.reshape(-1).astype(np.float64)
            x = x[np.isfinite(x)]
            if x.size == 0:
                return [math.nan]
            if agg == "mean":
                raw = float(np.mean(x))
            elif agg == "max":
                raw = float(np.max(x))
            elif agg == "min":
                raw = float(np.min(x))
            elif agg == "std":
                raw = float(np.std(x))
            elif agg == "sum":
                raw = float(np.sum(x))
            elif agg == "rate":
                raw = float(np.mean(x > f.threshold))
            else:
                raw = float(np.percentile(x, f.percentile))
    if f.transform == "log1p":
        raw = math.log1p(raw) if raw > -1 else math.nan
    elif f.transform == "age_bucket":
        raw = float(np.searchsorted(edges, raw, side="right")) if math.isfinite(raw) else math.nan
    v = float(np.asarray(raw, f.dtype))
    return [v if math.isfinite(v) else math.nan]


def row_dict(run: RunData, spec: FeatureSpec) -> dict[str, Any]:
    """Keys + every feature column + masks of one run, as a plain dict."""
    m = run.manifest
    row: dict[str, Any] = {"platform_id": m["platform_id"], "video_id": m["video_id"], "run_id": m["run_id"]}
    edges = spec.age_buckets.edges_hours
    for f in spec.features:
        vals = _value(run, f, edges)
        present = all(math.isfinite(v) for v in vals)
        if not present:
            vals = [math.nan] * len(vals)
        row.update(zip(f.columns, vals, strict=True))
        if f.mask:
            row[f.mask_column] = int(present)
    return row


def build_rows_loop(run_dirs: list[str | Path], spec: FeatureSpec) -> list[dict[str, Any]]:
    """The baseline: read and compute one run at a time."""
    return [row_dict(read_run(rd), spec) for rd in run_dirs]
