"""Building features: one run's vector (inference) and the table of many runs (training), same code.

Both go through :func:`features.compute.compute_block`; :func:`build_vector` is a batch of one. The table adds
keys (``platform_id``, ``video_id``, ``run_id``, ``channel_id``), split columns (``published_at`` as a UTC
timestamp, ``age_bucket``), per-row ``feature_warnings`` and, given labels, the targets. Its schema metadata
(kept in the Parquet file) carries ``feature_schema_version``, ``feature_extractor_version``,
``feature_spec_hash``, the spec itself and a build report.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from common.fsio import atomic_path
from extraction import __version__ as extraction_version
from extraction.artifacts import latest_runs
from extraction.schemas import ArtifactMeta
from features.compute import FeatureBlock, compute_block
from features.errors import MissingCriticalFeature
from features.io import RunData, read_run, read_run_lean, run_from_loaded
from features.spec import FeatureSpec, raw_columns, target_columns

KEY_COLUMNS: tuple[str, ...] = ("platform_id", "video_id", "run_id", "channel_id")
SPLIT_COLUMNS: tuple[str, ...] = ("published_at", "age_bucket")
INFO_COLUMNS: tuple[str, ...] = ("profile", "feature_warnings")
DEFAULT_CHUNK = 1024

LoadedRun = tuple[dict[str, Any], dict[str, tuple[dict[str, np.ndarray], ArtifactMeta]]]


def feature_extractor_version() -> str:
    """Version of the code that turns artifacts into features (this package), with the extractor's."""
    from features import __version__

    return f"features-{__version__}+extraction-{extraction_version}"


@dataclass(frozen=True)
class FeatureRow:
    """One run's model inputs. ``values`` follow ``spec.feature_columns`` (float64 holding the spec dtype's
    values exactly, NaN = missing), ``masks`` follow ``spec.mask_columns`` (int8, 1 = present)."""

    keys: dict[str, Any]
    columns: list[str]
    values: np.ndarray  # (F,)
    mask_columns: list[str]
    masks: np.ndarray  # (M,)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, float]:
        """``raw_columns(spec)`` -> value."""
        return {**dict(zip(self.columns, self.values.tolist(), strict=True)),
                **dict(zip(self.mask_columns, self.masks.tolist(), strict=True))}

    def to_frame(self, spec: FeatureSpec):
        """One-row pandas frame with ``raw_columns(spec)`` in the table's dtypes (what a model consumes)."""
        import pandas as pd

        dtypes = {c: f.dtype for f in spec.features for c in f.columns}
        data = {c: np.asarray([v], dtype=dtypes[c]) for c, v in zip(self.columns, self.values, strict=True)}
        data.update({c: np.asarray([m], np.int8) for c, m in zip(self.mask_columns, self.masks, strict=True)})
        return pd.DataFrame(data, columns=raw_columns(spec))


def _as_run(run: str | Path | RunData | LoadedRun) -> RunData:
    if isinstance(run, RunData):
        return run
    if isinstance(run, tuple):
        return run_from_loaded(*run)
    return read_run(run)


def _keys(run: RunData) -> dict[str, Any]:
    m = run.manifest
    meta = m.get("metadata") or {}
    channel = meta.get("channel") or {} if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not isinstance(channel, dict):
        from common.errors import SchemaValidationError

        raise SchemaValidationError(f"{run.run_dir}: manifest metadata{'.channel' if isinstance(meta, dict) else ''}"
                                    " must be a JSON object (the sidecar has the wrong types)",
                                    code="manifest_invalid")
    return {"platform_id": str(m.get("platform_id", meta.get("platform_id", ""))),
            "video_id": str(m.get("video_id", meta.get("video_id", ""))), "run_id": str(m.get("run_id", "")),
            "channel_id": None if channel.get("channel_id") is None else str(channel["channel_id"]),
            "published_at": meta.get("published_at"), "profile": m.get("profile")}


def _critical_error(keys: dict[str, Any], missing: list[str]) -> MissingCriticalFeature:
    names = [m.split(" (")[0] for m in missing]
    return MissingCriticalFeature(
        f"{keys['platform_id']}/{keys['video_id']} run {keys['run_id']}: {len(missing)} critical feature(s) "
        f"missing: {', '.join(missing)}", missing=names, reasons=missing, video_id=keys["video_id"])


def build_vector(run: str | Path | RunData | LoadedRun, spec: FeatureSpec) -> FeatureRow:
    """Features of one run (the inference path): a run folder, a :class:`RunData` or ``load_run``'s output.

    Raises:
        MissingCriticalFeature: naming every critical feature that could not be computed.
    """
    data = _as_run(run)
    block = compute_block([data], spec)
    keys = _keys(data)
    if block.critical_missing[0]:
        raise _critical_error(keys, block.critical_missing[0])
    keys["age_bucket"] = age_bucket_labels(block.age_hours, spec)[0]
    return FeatureRow(
        keys=keys, columns=list(spec.feature_columns),
        values=np.array([block.columns[c][0] for c in spec.feature_columns], np.float64),
        mask_columns=list(spec.mask_columns),
        masks=np.array([block.masks[c][0] for c in spec.mask_columns], np.int8), warnings=list(block.warnings[0]))


def age_bucket_labels(age_hours: np.ndarray, spec: FeatureSpec) -> list[str | None]:
    ab = spec.age_buckets
    idx = np.searchsorted(np.asarray(ab.edges_hours, np.float64), age_hours, side="right")
    return [ab.labels[i] if math.isfinite(a) else None for i, a in zip(idx.tolist(), age_hours.tolist(), strict=True)]


def _parse_ts(values: list[Any]) -> pa.Array:
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
            out.append(None)
            continue
        d = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
        out.append(d if d.tzinfo else d.replace(tzinfo=UTC))  # naive stamps are UTC
    return pa.array(out, pa.timestamp("us", tz="UTC"))


def block_to_arrow(block: FeatureBlock, keys: list[dict[str, Any]], spec: FeatureSpec) -> pa.Table:
    """Arrow columns of a block: keys, split columns, features, masks, warnings (no targets)."""
    cols: dict[str, pa.Array] = {k: pa.array([r[k] for r in keys], pa.string()) for k in KEY_COLUMNS}
    cols["published_at"] = _parse_ts([r["published_at"] for r in keys])
    cols["age_bucket"] = pa.array(age_bucket_labels(block.age_hours, spec), pa.string())
    for f in spec.features:
        for c in f.columns:
            cols[c] = pa.array(block.columns[c], from_pandas=False)
    for c in spec.mask_columns:
        cols[c] = pa.array(block.masks[c])
    cols["profile"] = pa.array([r["profile"] for r in keys], pa.string())
    cols["feature_warnings"] = pa.array(block.warnings, pa.list_(pa.string()))
    return pa.table(cols)


@dataclass
class BuildReport:
    runs_found: int = 0
    rows: int = 0
    dropped_critical: dict[str, list[str]] = field(default_factory=dict)  # "platform/video" -> missing
    unlabeled_runs: int = 0
    labels_without_run: int = 0
    dropped_missing_target: dict[str, int] = field(default_factory=dict)  # target -> rows dropped
    missing_values: int = 0  # feature cells missing (what an imputer fills, or NaN kept for trees)
    missing_by_modality: dict[str, int] = field(default_factory=dict)
    rows_with_warnings: int = 0
    seconds_read: float = 0.0
    seconds_compute: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        if len(self.dropped_critical) > 50:  # keep the file metadata small; the count stays exact
            d["dropped_critical"] = dict(list(self.dropped_critical.items())[:50])
        d["dropped_critical_count"] = len(self.dropped_critical)
        return d


def _read_many(run_dirs: Sequence[Path], spec: FeatureSpec) -> list[RunData]:
    fields = spec.fields_needed()
    return [read_run_lean(rd, fields) for rd in run_dirs]


def compute_table(runs: list[RunData], spec: FeatureSpec, report: BuildReport, errors: str = "drop") -> pa.Table:
    """Feature table (no targets) of already-read runs; critical-missing rows dropped (recorded in ``report``)
    or raised (``errors="raise"``)."""
    t0 = time.perf_counter()
    block = compute_block(runs, spec)
    keys = [_keys(r) for r in runs]
    bad = [i for i, m in enumerate(block.critical_missing) if m]
    for i in bad:
        if errors == "raise":
            raise _critical_error(keys[i], block.critical_missing[i])
        report.dropped_critical[f"{keys[i]['platform_id']}/{keys[i]['video_id']}"] = block.critical_missing[i]
    if bad:
        keep = np.setdiff1d(np.arange(block.n), bad)
        block, keys = block.take(keep), [keys[i] for i in keep]
    table = block_to_arrow(block, keys, spec)
    report.seconds_compute += time.perf_counter() - t0
    return table


def discover_runs(artifacts_root: str | Path) -> list[Path]:
    """The newest complete run of every video under ``artifacts_root``, sorted by (platform_id, video_id)."""
    latest = latest_runs(Path(artifacts_root))
    return [latest[k] for k in sorted(latest)]


def build_features(run_dirs: Sequence[str | Path], spec: FeatureSpec, *, chunk: int = DEFAULT_CHUNK,
                   errors: str = "drop", report: BuildReport | None = None) -> pa.Table:
    """Feature table of ``run_dirs`` (the vectorised batch path: lean reads, columnar compute per chunk)."""
    report = report if report is not None else BuildReport()
    parts = []
    for k in range(0, len(run_dirs), chunk):
        t0 = time.perf_counter()
        runs = _read_many([Path(p) for p in run_dirs[k:k + chunk]], spec)
        report.seconds_read += time.perf_counter() - t0
        parts.append(compute_table(runs, spec, report, errors))
    if not parts:
        return block_to_arrow(compute_block([], spec), [], spec)
    return pa.concat_tables(parts)


def read_labels(path: str | Path):
    """The labels CSV as a pandas frame (ids as strings)."""
    import pandas as pd

    return pd.read_csv(path, dtype={"platform_id": str, "video_id": str, "channel_id": str})


def attach_targets(table: pa.Table, labels, spec: FeatureSpec, report: BuildReport,
                   run_keys: set[tuple[str, str]] | None = None) -> pa.Table:
    """Inner-join the labels on (platform_id, video_id), add ``spec.targets`` (transformed), drop rows
    missing a non-optional target. Counts what was dropped in ``report``; ``run_keys`` (every run found,
    dropped ones included) tells labels without any run apart from labels of dropped rows."""
    import pandas as pd

    lab = labels.drop_duplicates(["platform_id", "video_id"], keep="last").set_index(["platform_id", "video_id"])
    keys = pd.MultiIndex.from_arrays([table.column("platform_id").to_pylist(), table.column("video_id").to_pylist()])
    found = keys.isin(lab.index)
    report.unlabeled_runs += int((~found).sum())
    known = pd.MultiIndex.from_tuples(sorted(run_keys), names=["platform_id", "video_id"]) if run_keys else keys
    report.labels_without_run += int((~lab.index.isin(known)).sum())
    table = table.filter(pa.array(found))
    keys = keys[found]
    keep = np.ones(table.num_rows, bool)
    targets = {}
    for t in spec.targets.columns:
        raw = pd.to_numeric(lab[t.label], errors="coerce").reindex(keys).to_numpy(np.float64) if t.label in lab \
            else np.full(table.num_rows, np.nan)
        y = np.log1p(raw) if spec.targets.transform == "log1p" else raw
        y = np.where(np.isfinite(y), y, np.nan)
        if not t.optional:
            miss = ~np.isfinite(y)
            report.dropped_missing_target[t.name] = int((miss & keep).sum())
            keep &= ~miss
        targets[t.name] = y
    for name, y in targets.items():
        table = table.append_column(name, pa.array(y, pa.float64()))
    channel = lab["channel_id"].reindex(keys).astype(object).where(lambda s: s.notna(), None).tolist() \
        if "channel_id" in lab else [None] * table.num_rows
    filled = [c if c is not None else lc for c, lc in zip(table.column("channel_id").to_pylist(), channel, strict=True)]
    table = table.set_column(table.schema.get_field_index("channel_id"), "channel_id", pa.array(filled, pa.string()))
    return table.filter(pa.array(keep))


def _finish(table: pa.Table, spec: FeatureSpec, report: BuildReport) -> pa.Table:
    report.rows = table.num_rows
    modality = {c: f.modality for f in spec.features for c in f.columns}
    by_mod: dict[str, int] = {}
    for c in spec.feature_columns:
        by_mod[modality[c]] = by_mod.get(modality[c], 0) + table.column(c).null_count + int(
            np.isnan(table.column(c).to_numpy(zero_copy_only=False)).sum())
    report.missing_by_modality = by_mod
    report.missing_values = sum(by_mod.values())
    report.rows_with_warnings = int(sum(1 for w in table.column("feature_warnings").to_pylist() if w))
    meta = {
        "feature_schema_version": spec.feature_schema_version,
        "feature_extractor_version": feature_extractor_version(),
        "feature_spec_hash": spec.spec_hash,
        "feature_spec": json.dumps(spec.model_dump(mode="json"), sort_keys=True),
        "raw_columns": json.dumps(raw_columns(spec)),
        "target_columns": json.dumps(target_columns(spec) if any(c in table.column_names
                                                                  for c in target_columns(spec)) else []),
        "build_report": json.dumps(report.to_dict(), sort_keys=True),
    }
    return table.replace_schema_metadata({k: v.encode() for k, v in meta.items()})


def build_table(artifacts_root: str | Path | None, spec: FeatureSpec, labels=None, *,
                run_dirs: Sequence[str | Path] | None = None, chunk: int = DEFAULT_CHUNK, errors: str = "drop",
                report: BuildReport | None = None) -> pa.Table:
    """Training table: the newest run of every video under ``artifacts_root`` (or the given ``run_dirs``).

    Args:
        labels: a labels CSV path or frame; when given, targets are added and unlabeled runs dropped.
        errors: ``"drop"`` rows missing a critical feature (listed in the build report) or ``"raise"``.

    Returns:
        A :class:`pyarrow.Table` whose schema metadata holds the versions, spec hash and build report.
    """
    report = report if report is not None else BuildReport()
    dirs = list(run_dirs) if run_dirs is not None else discover_runs(artifacts_root)
    report.runs_found = len(dirs)
    table = build_features(dirs, spec, chunk=chunk, errors=errors, report=report)
    if labels is not None:
        lab = read_labels(labels) if isinstance(labels, (str, Path)) else labels
        run_keys = {(Path(d).parent.parent.name, Path(d).parent.name) for d in dirs}  # <platform>/<video>/<run>
        table = attach_targets(table, lab, spec, report, run_keys)
    return _finish(table, spec, report)


def write_parquet(table: pa.Table, path: str | Path) -> Path:
    """Write ``table`` (metadata included) atomically."""
    import pyarrow.parquet as pq

    path = Path(path)
    with atomic_path(path) as tmp:  # 0644: the dataset is read by other tools/users
        pq.write_table(table, tmp)
    return path


def read_table_metadata(path: str | Path) -> dict[str, str]:
    """The feature metadata of a Parquet file written by :func:`write_parquet`."""
    import pyarrow.parquet as pq

    md = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in md.items() if not k.startswith(b"ARROW:") and k != b"pandas"}


@dataclass
class DatasetSummary:
    """What ``python -m features build`` prints."""

    path: Path
    rows: int
    columns: int
    feature_schema_version: str
    spec_hash: str
    missing_values: int  # feature cells missing in the table (NaN kept for tree models)
    imputed_values: int  # cells a network-mode Imputer fitted on this table fills
    report: BuildReport

    def lines(self) -> list[str]:
        r = self.report
        return [
            f"wrote {self.path}",
            f"shape=({self.rows}, {self.columns}) feature_schema_version={self.feature_schema_version} "
            f"spec_hash={self.spec_hash}",
            f"imputed_values={self.imputed_values} (network policy; tree models keep NaN) "
            f"missing_by_modality={json.dumps(r.missing_by_modality, sort_keys=True)}",
            f"runs_found={r.runs_found} dropped_critical={len(r.dropped_critical)} unlabeled_runs={r.unlabeled_runs} "
            f"labels_without_run={r.labels_without_run} dropped_missing_target={sum(r.dropped_missing_target.values())}"
            f" rows_with_warnings={r.rows_with_warnings}",
            f"read={r.seconds_read:.2f}s compute={r.seconds_compute:.2f}s",
            *(f"  dropped {key}: missing_critical_feature {missing}"
              for key, missing in list(r.dropped_critical.items())[:10]),
            *([f"  ... and {len(r.dropped_critical) - 10} more (file metadata: build_report)"]
              if len(r.dropped_critical) > 10 else []),
        ]


def build_dataset(artifacts_root: str | Path, labels: str | Path | None, out: str | Path,
                  spec: FeatureSpec | None = None, *, errors: str = "drop") -> DatasetSummary:
    """Build the training table from the extractor's output, write it as Parquet, summarise (the CLI's and the
    demo's entry point)."""
    from features.impute import Imputer
    from features.spec import load_spec

    spec = spec if spec is not None else load_spec()
    report = BuildReport()
    table = build_table(artifacts_root, spec, labels=labels, errors=errors, report=report)
    path = write_parquet(table, out)
    df = table.select(raw_columns(spec)).to_pandas()
    imputed = sum(Imputer.fit(df, spec, mode="network").missing_counts(df).values()) if len(df) else 0
    return DatasetSummary(path=path, rows=table.num_rows, columns=table.num_columns,
                          feature_schema_version=spec.feature_schema_version, spec_hash=spec.spec_hash,
                          missing_values=report.missing_values, imputed_values=imputed, report=report)
