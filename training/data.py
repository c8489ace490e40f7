"""Training table: load the Parquet written by ``features``, resolve its columns from the spec, split by time.

The table holds ``features.raw_columns(spec)`` (features then masks), the log1p targets
``features.target_columns(spec)``, keys (``platform_id``, ``video_id``, ``channel_id``), ``published_at`` and
split helper columns. Everything a model reads is named by the spec, never by this module.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "calib", "test")


@dataclass(frozen=True)
class Columns:
    """Column roles of the training table, derived from the feature spec.

    Attributes:
        features: model inputs in the spec's stable order (``features.raw_columns``: features, then masks).
        targets: target columns in the table (``target_views_7d`` ...).
        labels: the contract's target names (``views_7d`` ...), same order as ``targets``.
        metrics: ``views`` / ``likes`` per target.
        modalities: modality -> its input columns (features and masks), for the network towers/tokens.
        modality_values: modality -> its value columns only (no masks): a modality is present in a row when any
            of these is not NaN.
        group: calibration group column (age bucket index) or None.
        group_labels: readable label per group value (``{"0": "lt6h", ...}``).
        snapshot: metric -> its first-snapshot log column (the log-linear reference model's input).
    """

    features: list[str]
    targets: list[str]
    labels: list[str]
    metrics: list[str]
    modalities: dict[str, list[str]]
    modality_values: dict[str, list[str]]
    group: str | None
    group_labels: dict[str, str] = field(default_factory=dict)
    snapshot: dict[str, str] = field(default_factory=dict)


def columns_from_spec(spec: Any, group_by: str | None = "meta_age_bucket") -> Columns:
    """Resolve the column roles from a loaded :class:`features.FeatureSpec`."""
    import features

    feats = list(features.raw_columns(spec))
    modalities: dict[str, list[str]] = {}
    values: dict[str, list[str]] = {}
    for f in spec.features:
        modalities.setdefault(f.modality, []).extend(f.columns)
        values.setdefault(f.modality, []).extend(f.columns)
        if f.mask_column:
            modalities[f.modality].append(f.mask_column)
    targets = list(features.target_columns(spec))
    tmeta = {t.name: t for t in spec.targets.columns}
    labels = [tmeta[t].label for t in targets]
    metrics = [tmeta[t].metric for t in targets]
    group_labels = {str(i): lab for i, lab in enumerate(spec.age_buckets.labels)} if group_by else {}
    snapshot = {}
    for metric in ("views", "likes"):
        col = f"meta_log_{metric}_snapshot1"
        if col in feats:
            snapshot[metric] = col
    if group_by is not None and group_by not in feats:
        raise ValueError(f"intervals.group_by={group_by!r} is not a model input column of the spec")
    return Columns(feats, targets, labels, metrics, modalities, values, group_by, group_labels, snapshot)


def file_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 (first 16 hex) of a file's bytes: the dataset hash logged with every run."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


EXTRACTION_RUNS_ARTIFACT = "dataset/extraction_runs.json"


def extraction_runs(path: str | Path) -> list[list[str]]:
    """``[platform_id, video_id, run_id]`` of every row of the training table at ``path``, sorted and unique: the
    extraction runs a model trained on it depends on (the retention GC pins them). ``dataset_hash`` cannot say
    this: it leaves ``run_id`` out on purpose. Empty when the table has no such columns (synthetic tables)."""
    import pyarrow.parquet as pq

    keys = ["platform_id", "video_id", "run_id"]
    if not set(keys) <= set(pq.read_schema(path).names):
        return []
    t = pq.read_table(path, columns=keys).to_pydict()
    return [list(r) for r in sorted(set(zip(*(t[k] for k in keys), strict=True)))]


def content_hash(df: pd.DataFrame, exclude: tuple[str, ...] = ("run_id",)) -> str:
    """sha256 (first 16 hex) of a table's values, column by column in name order, without ``exclude``.

    The registry's "same test split" key: a table rebuilt from the same artifacts has the same rows, features and
    targets but new extraction run ids (reused artifacts are linked into a new run) and new file bytes, so the
    file hash (``file_hash``, kept as provenance) would call two identical datasets different."""
    h = hashlib.sha256()
    for col in sorted(c for c in df.columns if c not in exclude):
        h.update(col.encode())
        values = df[col]
        if values.dtype == object:  # lists/arrays (feature_warnings) are unhashable: hash their text
            values = values.map(lambda v: json.dumps(v.tolist() if hasattr(v, "tolist") else v, default=str))
        h.update(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


# Metadata keys of the training table that are big or redundant with the logged spec: not copied into manifests.
BULKY_METADATA = ("feature_spec", "raw_columns", "target_columns")


def parquet_metadata(path: str | Path) -> dict[str, str]:
    """The feature metadata of the training table (``feature_schema_version``, ``feature_extractor_version``,
    ``feature_spec_hash``, ``build_report`` ...) via ``features.read_table_metadata``, without the bulky keys."""
    import features

    return {k: v for k, v in features.read_table_metadata(path).items() if k not in BULKY_METADATA}


def load_table(path: str | Path, cols: Columns, time_column: str, max_rows: int | None = None) -> pd.DataFrame:
    """Read the training table and check it has every column the spec names.

    Args:
        path: Parquet file.
        cols: column roles from :func:`columns_from_spec`.
        time_column: publish-time column used for the split.
        max_rows: keep only the latest ``max_rows`` rows by publish time (quick runs).

    Raises:
        ValueError: naming the missing columns.
    """
    df = pd.read_parquet(path)
    missing = [c for c in [*cols.features, *cols.targets, time_column] if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: the training table lacks {len(missing)} column(s) the spec names: "
                         f"{missing[:10]}{' ...' if len(missing) > 10 else ''}")
    df[time_column] = pd.to_datetime(df[time_column], utc=True)
    if max_rows is not None and len(df) > max_rows:
        df = df.sort_values(time_column, kind="stable").iloc[-max_rows:]
    return df.reset_index(drop=True)


def time_split(df: pd.DataFrame, time_column: str, fractions: dict[str, float], embargo_days: float = 0.0,
               channel_column: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Chronological split into train < val < calib < test by publish time.

    Cut points are timestamps at the cumulative fractions of the time-sorted rows, so rows published at the
    same instant never straddle a cut. With ``embargo_days > 0`` a row whose publish time + embargo reaches the
    next split's first publish time is dropped (its label was not observable yet when that split starts).

    Returns:
        ``(index per split, record)``: positional row indices of ``df`` per split, and a JSON-able record
        (cut times, counts, embargo, id hash per split) that is logged with the run.
    """
    # naive UTC datetime64[ns]: comparable and addable (a tz-aware column converts to an object array)
    t = pd.to_datetime(df[time_column], utc=True).dt.tz_convert(None).to_numpy("datetime64[ns]")
    order = np.argsort(t, kind="stable")
    ts = t[order]
    n = len(df)
    cum = np.cumsum([fractions[s] for s in SPLITS])[:-1]
    cuts = [ts[min(int(round(c * n)), n - 1)] for c in cum]
    bounds = [None, *cuts, None]
    idx: dict[str, np.ndarray] = {}
    embargo = np.timedelta64(int(embargo_days * 86400), "s")
    for i, name in enumerate(SPLITS):
        lo, hi = bounds[i], bounds[i + 1]
        sel = np.ones(n, dtype=bool)
        if lo is not None:
            sel &= t >= lo
        if hi is not None:
            sel &= t < hi
            if embargo_days > 0:
                sel &= t + embargo < hi
        idx[name] = np.flatnonzero(sel)
    for name in SPLITS:
        if len(idx[name]) == 0:
            raise ValueError(f"split {name!r} is empty ({n} rows, fractions {fractions}, embargo {embargo_days} d)")
    if channel_column is not None and channel_column in df.columns:
        check_no_channel_leakage(df, idx, time_column, channel_column)
    record = {
        "method": "time",
        "time_column": time_column,
        "fractions": fractions,
        "embargo_days": embargo_days,
        "cuts": [str(pd.Timestamp(c, tz="UTC")) for c in cuts],
        "counts": {k: int(len(v)) for k, v in idx.items()},
        "dropped_by_embargo": int(n - sum(len(v) for v in idx.values())),
        "time_range": {k: [str(pd.Timestamp(t[v].min(), tz="UTC")), str(pd.Timestamp(t[v].max(), tz="UTC"))]
                       for k, v in idx.items()},
    }
    if "video_id" in df.columns:
        record["video_ids_sha256"] = {
            k: hashlib.sha256("\n".join(sorted(df["video_id"].astype(str).iloc[v])).encode()).hexdigest()[:16]
            for k, v in idx.items()
        }
    # One hash for "the same split": equal for two runs that trained/evaluated on the same rows.
    identity = record.get("video_ids_sha256") or {"cuts": record["cuts"], "counts": record["counts"]}
    record["split_hash"] = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return idx, record


@dataclass
class SplitTable:
    """A run's training table, split exactly as the run splits it (what :func:`load_split` returns).

    Attributes:
        path: the Parquet file.
        spec: the loaded feature spec; ``cols`` its column roles.
        parts: the split frames (train, val, calib, test) of the table after ``data.max_rows``.
        record: the split record (cuts, counts, ``split_hash``, ``dataset_sha256``, ``dataset_hash``).
        table_meta: the table's feature metadata (:func:`parquet_metadata`).
    """

    path: Path
    spec: Any
    cols: Columns
    parts: dict[str, pd.DataFrame]
    record: dict[str, Any]
    table_meta: dict[str, str]


def load_split(c: Any) -> SplitTable:
    """Load the table a validated :class:`training.config.TrainConfig` names and split it by time.

    The one place that turns a config into the train/val/calib/test frames: training uses it, and the
    registry uses it to rebuild a run's test split from the run's resolved config (champion/challenger re-scoring).

    Raises:
        FileNotFoundError: no table at ``data.path`` (with the command that builds one).
        ValueError: the table was built with another feature spec, lacks a column, or a split is empty.
    """
    import features

    spec = features.load_spec(c.paths.resolve(c.paths.spec))
    cols = columns_from_spec(spec, c.intervals.group_by)
    path = c.paths.resolve(c.data.path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no training table. Build it with `python -m features build "
                                f"--artifacts data/artifacts --labels data/demo/labels.csv --out {c.data.path}` "
                                f"or generate one with `python -m demo.synthetic_table --out {c.data.path}`")
    table_meta = parquet_metadata(path)
    if table_meta.get("feature_spec_hash") and table_meta["feature_spec_hash"] != spec.spec_hash:
        raise ValueError(f"{path} was built with feature spec {table_meta['feature_spec_hash']}, the spec "
                         f"here is {spec.spec_hash}: rebuild the table (python -m features build ...)")
    dataset_sha256 = file_hash(path)  # provenance: exactly which file
    df = load_table(path, cols, c.data.time_column, c.data.max_rows)
    fractions = {s: getattr(c.data.split, s) for s in SPLITS}
    idx, record = time_split(df, c.data.time_column, fractions, c.data.split.embargo_days, c.data.channel_column)
    record["dataset_sha256"] = dataset_sha256
    record["dataset_hash"] = content_hash(df)  # identity: which rows and values (what "same split" compares)
    parts = {s: df.iloc[idx[s]].reset_index(drop=True) for s in SPLITS}
    return SplitTable(path, spec, cols, parts, record, table_meta)


def check_no_channel_leakage(df: pd.DataFrame, idx: dict[str, np.ndarray], time_column: str,
                             channel_column: str) -> None:
    """Raise if any channel has a row in an earlier split published after one of its rows in a later split."""
    t = pd.to_datetime(df[time_column], utc=True)
    ch = df[channel_column].astype(str)
    for a, b in zip(SPLITS[:-1], SPLITS[1:], strict=True):
        latest = t.iloc[idx[a]].groupby(ch.iloc[idx[a]].to_numpy()).max()
        earliest = t.iloc[idx[b]].groupby(ch.iloc[idx[b]].to_numpy()).min()
        common = latest.index.intersection(earliest.index)
        bad = common[(latest[common] > earliest[common]).to_numpy()]
        if len(bad):
            raise AssertionError(f"channel leakage between {a} and {b}: {list(bad)[:5]}")


def split_record_json(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2, sort_keys=True)
