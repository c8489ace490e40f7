"""Idempotent ingest into the store: extraction manifests, MLflow training runs, serving windows from the spool,
Triton model loads (from the planner's checklists) and the registry's audit log.

Each source becomes a :class:`RunRecord` (pure functions of the source's data, unit-tested on dicts), written by
:func:`upsert_run`: a run whose ``run_key`` is stored with the same content fingerprint is left alone, a changed
one (a killed run resumed, a finished MLflow run) replaces its rows. Ingesting the same sources twice changes
nothing.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select

from common.clock import parse_iso
from common.hashing import json_hash
from observability import histogram
from observability.schema import ComponentHour, GcRun, ModelLoad, Run, RunComponent, ServingWindow, StableVersion
from observability.store import Store

log = logging.getLogger("observability.ingest")
OOM_CODES = ("oom", "out_of_memory", "insufficient_memory", "insufficient_gpu_memory")


def utc_naive(value: str | datetime) -> datetime:
    """A stored time: UTC, no tzinfo (what SQLite and PostgreSQL ``timestamp`` both keep)."""
    return parse_iso(value).astimezone(UTC).replace(tzinfo=None)


def is_oom(code: str | None) -> bool:
    return bool(code) and any(k in code.lower() for k in OOM_CODES)


@dataclass
class ComponentRecord:
    component: str
    model: str | None = None
    n: int = 0
    errors: int = 0
    oom_count: int = 0
    retries: int = 0
    cache_hits: int = 0
    latency_sum_s: float = 0.0
    latency_buckets: list[int] = field(default_factory=histogram.empty)
    status_counts: dict[str, int] = field(default_factory=dict)
    error_codes: dict[str, int] = field(default_factory=dict)
    batch_sizes: dict[str, int] = field(default_factory=dict)
    gpu_peak_bytes: int | None = None  # max over the run's videos; None: no GPU measured


@dataclass
class RunRecord:
    """What one run contributes to the store (``run_key`` = ``<kind>:<source id>``)."""

    run_key: str
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    source: str = ""
    fields: dict[str, Any] = field(default_factory=dict)  # the other columns of ``runs``
    components: list[ComponentRecord] = field(default_factory=list)

    def fingerprint(self) -> str:
        return json_hash({"status": self.status, "started": self.started_at, "finished": self.finished_at,
                          "fields": self.fields, "components": [c.__dict__ for c in self.components]}, n=32)


@dataclass
class IngestReport:
    """Counts of one ingest; ``failed`` names the sources that could not be read and why."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    components: int = 0
    model_loads: int = 0
    serving_windows: int = 0
    stable_versions: int = 0
    gc_runs: int = 0
    failed: list[str] = field(default_factory=list)

    def add(self, other: IngestReport) -> IngestReport:
        for k, v in other.__dict__.items():
            setattr(self, k, getattr(self, k) + v)
        return self

    def line(self) -> str:
        return (f"ingest: {self.new} new, {self.updated} updated, {self.unchanged} unchanged runs; "
                f"{self.components} components, {self.serving_windows} serving windows, {self.model_loads} model "
                f"loads, {self.stable_versions} registry events, {self.gc_runs} GC runs"
                + (f"; {len(self.failed)} failed" if self.failed else ""))


# ---- extraction ---------------------------------------------------------------------------------------------

def _component_records(manifests: list[Mapping[str, Any]]) -> list[ComponentRecord]:
    out: dict[str, ComponentRecord] = {}
    for m in manifests:
        models = m.get("resolved_models") or {}
        for name, e in (m.get("components") or {}).items():
            rec = out.get(name)
            if rec is None:
                ref = models.get(name)
                rec = out[name] = ComponentRecord(
                    component=name, model=f"{ref['model']}:{ref['version']}" if ref else None)
            status, code = e.get("status") or "error", e.get("error_code")
            rec.n += 1
            rec.status_counts[status] = rec.status_counts.get(status, 0) + 1
            if status == "error":
                rec.errors += 1
            if code:
                rec.error_codes[code] = rec.error_codes.get(code, 0) + 1
                rec.oom_count += is_oom(code)
            rec.retries += int(e.get("retry_count") or 0)
            rec.cache_hits += bool(e.get("cache_hit"))
            lat = float(e.get("latency_s") or 0.0)
            rec.latency_sum_s += lat
            histogram.observe(rec.latency_buckets, lat)
            if not e.get("cache_hit") and e.get("batch_size"):
                b = str(int(e["batch_size"]))
                rec.batch_sizes[b] = rec.batch_sizes.get(b, 0) + 1
            if e.get("gpu_peak_bytes") is not None:
                rec.gpu_peak_bytes = max(rec.gpu_peak_bytes or 0, int(e["gpu_peak_bytes"]))
    for rec in out.values():
        rec.latency_sum_s = round(rec.latency_sum_s, 6)
    return list(out.values())


def _budget(plan: Mapping[str, Any] | None) -> tuple[int | None, int | None, float | None]:
    """(CPU memory budget, GPU memory budget, predicted makespan) of a plan: each kind of device summed apart,
    since peak RSS compares with the first and GPU memory with the second."""
    if not plan:
        return None, None, None
    devices = (plan.get("devices") or {}).values()
    cpu = sum(int(d.get("budget_bytes") or 0) for d in devices if d.get("kind") != "gpu") or None
    gpu = sum(int(d.get("budget_bytes") or 0) for d in devices if d.get("kind") == "gpu") or None
    return cpu, gpu, plan.get("predicted_makespan_s")


def extraction_record(run_id: str, manifests: list[Mapping[str, Any]], source: str = "") -> RunRecord:
    """One extraction run from its per-video manifests (any order; a killed run's finished videos only)."""
    manifests = sorted(manifests, key=lambda m: (m.get("platform_id", ""), m.get("video_id", "")))
    started = min(utc_naive(m["started_at"]) for m in manifests)
    finished = max(utc_naive(m.get("finished_at") or m["started_at"]) for m in manifests)
    comps = _component_records(manifests)
    statuses = Counter(m.get("status", "error") for m in manifests)
    plans = [m["plan"] for m in manifests if m.get("plan")]
    plan = max(plans, key=lambda p: p.get("videos", 0)) if plans else None
    budget, gpu_budget, predicted = _budget(plan)
    gpu_peaks = [int(m["gpu_peak_bytes"]) for m in manifests if m.get("gpu_peak_bytes") is not None]
    gpu_totals = [int(m["gpu_total_bytes"]) for m in manifests if m.get("gpu_total_bytes") is not None]
    makespan = max((finished - started).total_seconds(), 0.0)
    frames = sum(int(m.get("frames_sampled") or 0) for m in manifests)
    total = sum(c.n for c in comps)
    rss = [int(m["peak_rss_bytes"]) for m in manifests if m.get("peak_rss_bytes")]
    status = "ok" if statuses.get("ok", 0) == len(manifests) else ("error" if not statuses.get("ok") else "partial")
    versions = sorted({c.model for c in comps if c.model})
    return RunRecord(
        run_key=f"extraction:{run_id}", kind="extraction", status=status, started_at=started, finished_at=finished,
        source=source, components=comps, fields=dict(
            profile=manifests[0].get("profile"), videos=len(manifests), frames=frames,
            errors=sum(c.errors for c in comps), oom_count=sum(c.oom_count for c in comps),
            cache_hit_rate=round(sum(c.cache_hits for c in comps) / total, 6) if total else None,
            predicted_makespan_s=predicted, measured_makespan_s=round(makespan, 3),
            peak_rss_bytes=max(rss) if rss else None, budget_bytes=budget,
            # NULL without a GPU; the budget is the plan's, else the GPUs' total memory.
            gpu_peak_bytes=max(gpu_peaks) if gpu_peaks else None,
            gpu_budget_bytes=gpu_budget or (max(gpu_totals) if gpu_totals else None),
            frames_per_s=round(frames / makespan, 3) if makespan > 0 else None,
            videos_per_h=round(len(manifests) * 3600 / makespan, 3) if makespan > 0 else None,
            model_version=",".join(versions)[:200] or None,
            metrics={"video_status": dict(statuses)}, plan=plan))


def find_manifests(root: Path) -> dict[str, list[Path]]:
    """run id -> its manifests under an artifacts root (``<platform>/<video>/<run id>/manifest.json``)."""
    runs: dict[str, list[Path]] = defaultdict(list)
    for p in sorted(Path(root).glob("*/*/*/manifest.json")):
        runs[p.parent.name].append(p)
    return dict(runs)


def ingest_artifacts(store: Store, root: Path, run_ids: Iterable[str] | None = None,
                     batch: int = 200) -> IngestReport:
    """Ingest every extraction run under ``root`` (or only ``run_ids``), ``batch`` runs per transaction."""
    report = IngestReport()
    wanted = set(run_ids) if run_ids is not None else None
    pending: list[RunRecord] = []
    for run_id, paths in find_manifests(root).items():
        if wanted is not None and run_id not in wanted:
            continue
        manifests = []
        for p in paths:
            try:
                manifests.append(json.loads(p.read_text()))
            except (OSError, ValueError) as exc:
                report.failed.append(f"{p}: {exc}")
        if manifests:
            pending.append(extraction_record(run_id, manifests, source=str(root)))
        if len(pending) >= batch:
            report.add(upsert_runs(store, pending))
            pending = []
    report.add(upsert_runs(store, pending))
    return report


# ---- writing ------------------------------------------------------------------------------------------------

def upsert_runs(store: Store, records: Iterable[RunRecord]) -> IngestReport:
    """Write ``records`` in one transaction: new runs inserted, changed ones replaced, equal ones untouched."""
    report = IngestReport()
    records = list(records)
    if not records:
        return report
    with store.session.begin() as s:
        keys = [r.run_key for r in records]
        existing = {k: (i, f) for k, i, f in s.execute(
            select(Run.run_key, Run.id, Run.fingerprint).where(Run.run_key.in_(keys)))}
        removed: list[Any] = []
        added: list[Any] = []
        for rec in records:
            fp = rec.fingerprint()
            old = existing.get(rec.run_key)
            if old is not None and old[1] == fp:
                report.unchanged += 1
                continue
            if old is not None:
                if rec.kind == "extraction":
                    removed += s.scalars(select(RunComponent).where(RunComponent.run_id == old[0])).all()
                s.execute(delete(RunComponent).where(RunComponent.run_id == old[0]))
                s.execute(delete(Run).where(Run.id == old[0]))
                report.updated += 1
            else:
                report.new += 1
            run = Run(run_key=rec.run_key, kind=rec.kind, status=rec.status, started_at=rec.started_at,
                      finished_at=rec.finished_at, source=rec.source[:500], fingerprint=fp,
                      **rec.fields)
            run.components = [RunComponent(started_at=rec.started_at, **c.__dict__) for c in rec.components]
            s.add(run)
            if rec.kind == "extraction":
                added += run.components
            report.components += len(rec.components)
        add_to_rollups(s, removed, sign=-1)  # one pass per batch: the hours it touches, locked once
        add_to_rollups(s, added)
    return report


# ---- hourly rollups of extraction components ------------------------------------------------------------------

def hour_of(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def add_to_rollups(s: Any, comps: Iterable[Any], sign: int = 1) -> None:
    """Add (``sign=-1``: remove) component rows to their ``component_hours`` rows, in session ``s``.

    A row may carry ``runs`` (default 1): the number of runs its (already summed) counts stand for.

    Rows are locked (``FOR UPDATE`` on PostgreSQL) so two ingests never lose each other's counts."""
    by: dict[tuple[str, datetime], list[Any]] = defaultdict(list)
    for c in comps:
        by[(c.component, hour_of(c.started_at))].append(c)
    if not by:
        return
    hours = {h for _, h in by}
    have = {(r.component, r.hour): r for r in s.scalars(
        select(ComponentHour).where(ComponentHour.hour.in_(hours),
                                    ComponentHour.component.in_({c for c, _ in by})).with_for_update())}
    for key, rows in by.items():
        h = have.get(key)
        if h is None:
            h = ComponentHour(component=key[0], hour=key[1], runs=0, n=0, errors=0, cache_hits=0, oom_runs=0,
                              retries=0, latency_sum_s=0.0, latency_buckets=histogram.empty(), error_codes={})
            s.add(h)
            have[key] = h
        h.runs += sign * sum(getattr(r, "runs", 1) for r in rows)
        h.n += sign * sum(r.n for r in rows)
        h.errors += sign * sum(r.errors for r in rows)
        h.cache_hits += sign * sum(r.cache_hits for r in rows)
        h.oom_runs += sign * sum(getattr(r, "runs", 1) * (r.oom_count > 0) for r in rows)
        h.retries += sign * sum(r.retries for r in rows)
        h.latency_sum_s = round(h.latency_sum_s + sign * sum(r.latency_sum_s for r in rows), 6)
        # New lists/dicts (not in-place edits): the ORM sees a JSON column change only on assignment.
        h.latency_buckets = [a + sign * b for a, b in zip(h.latency_buckets, histogram.merge(
            r.latency_buckets for r in rows), strict=True)]
        codes = dict(h.error_codes)
        for r in rows:
            for k, v in (r.error_codes or {}).items():
                codes[k] = codes.get(k, 0) + sign * v
        h.error_codes = {k: v for k, v in codes.items() if v}


def rebuild_rollups(store: Store) -> int:
    """Recompute ``component_hours`` from every extraction run's components (a store ingested before the
    rollups existed, or a repair). Returns the number of hour rows."""
    with store.session.begin() as s:
        s.execute(delete(ComponentHour))
        last = 0
        while True:  # keyset pages: memory stays flat at any store size
            batch = s.scalars(select(RunComponent).join(Run, Run.id == RunComponent.run_id)
                              .where(Run.kind == "extraction", RunComponent.id > last)
                              .order_by(RunComponent.id).limit(5000)).all()
            if not batch:
                break
            add_to_rollups(s, batch)
            s.flush()
            last = batch[-1].id
    with store.session() as s:
        return s.scalar(select(func.count(ComponentHour.id))) or 0


# ---- model loads (the planner's checklists) -------------------------------------------------------------------

def ingest_checklists(store: Store, paths: Iterable[Path]) -> IngestReport:
    """``model_load_seconds`` per model:version from checklist files (measured by explicit ``load_model``)."""
    import yaml

    report = IngestReport()
    rows = []
    for p in paths:
        try:
            doc = yaml.safe_load(Path(p).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            report.failed.append(f"{p}: {exc}")
            continue
        when = utc_naive(doc.get("measured_at") or "1970-01-01T00:00:00Z")
        for m in (doc.get("models") or {}).values():
            if m.get("load_seconds"):
                rows.append(dict(model=m["model"], version=str(m["version"]), seconds=float(m["load_seconds"]),
                                 observed_at=when, source=f"checklist:{Path(p).parent.name}/{Path(p).name}"[:200]))
    report.model_loads = _insert_new(store, ModelLoad, rows, ("model", "version", "observed_at", "source"))
    return report


def _insert_new(store: Store, table: type, rows: list[dict[str, Any]], key: tuple[str, ...]) -> int:
    """Insert the rows whose ``key`` columns are not stored yet; returns how many were inserted."""
    if not rows:
        return 0
    cols = [getattr(table, k) for k in key]
    with store.session.begin() as s:
        have = {tuple(r) for r in s.execute(select(*cols))}
        new = [r for r in rows if tuple(r[k] for k in key) not in have]
        seen: set[tuple] = set()
        for r in new:
            k = tuple(r[c] for c in key)
            if k not in seen:
                seen.add(k)
                s.add(table(**r))
    return len(seen)


# ---- registry audit log ---------------------------------------------------------------------------------------

def ingest_audit(store: Store, path: Path) -> IngestReport:
    """Alias moves from the registry's audit log: which version was stable (or any alias) from when."""
    from registry import audit

    rows = []
    for e in audit.read(Path(path)):
        for alias, version in (e.get("aliases") or {}).items():
            rows.append(dict(ts=utc_naive(e["ts"]), model_type=str(e.get("model_type") or e.get("name")),
                             alias=alias, version=None if version is None else str(version),
                             action=str(e.get("action")), entry_hash=json_hash(f"{e.get('hash')}:{alias}", n=32)))
    return IngestReport(stable_versions=_insert_new(store, StableVersion, rows, ("entry_hash",)))


# ---- retention GC records ---------------------------------------------------------------------------------------

def gc_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One GC record (``gc_id, kind, started_at, ended_at, applied, candidates, deleted, bytes_freed,
    kept_past_cap: [{item, reason}], errors``) as its ``gc_runs`` row.

    Raises:
        ValueError: ``gc_id``, ``kind``, ``started_at`` or ``applied`` is missing, or a count is not a number
            (the message names the key).
    """
    for key in ("gc_id", "kind", "started_at", "applied"):
        if record.get(key) in (None, ""):
            raise ValueError(f"GC record has no {key!r}")

    def count(key: str) -> int:
        v = record.get(key) or 0
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"GC record {record['gc_id']!r}: {key!r} is {v!r}, not a number")
        return int(v)

    kept = [{"item": str(k.get("item", "")), "reason": str(k.get("reason", ""))} if isinstance(k, Mapping)
            else {"item": str(k), "reason": ""} for k in record.get("kept_past_cap") or []]
    errors = record.get("errors") or []
    return dict(gc_id=str(record["gc_id"])[:200], kind=str(record["kind"])[:100],
                started_at=utc_naive(record["started_at"]),
                ended_at=utc_naive(record["ended_at"]) if record.get("ended_at") else None,
                applied=bool(record["applied"]), candidates=count("candidates"), deleted=count("deleted"),
                bytes_freed=count("bytes_freed"), kept_past_cap=kept,
                errors=[str(e)[:500] for e in (errors if isinstance(errors, list) else [errors])])


def upsert_gc(store: Store, records: Iterable[Mapping[str, Any]]) -> IngestReport:
    """Write GC records by ``gc_id``: one already stored is left alone (idempotent); a bad one is named in
    ``failed``, never raised."""
    report = IngestReport()
    rows = []
    for r in records:
        try:
            rows.append(gc_row(r))
        except (ValueError, TypeError, AttributeError) as exc:
            report.failed.append(f"gc record: {exc}")
    report.gc_runs = _insert_new(store, GcRun, rows, ("gc_id",))
    return report


def ingest_gc(store: Store, path: Path) -> IngestReport:
    """Every line of a GC log (``.trendflow/gc.jsonl``), idempotently; unreadable lines are named in ``failed``."""
    report = IngestReport()
    records = []
    p = Path(path)
    if not p.exists():
        return report
    for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            report.failed.append(f"{p}:{i}: {exc}")
            continue
        if not isinstance(rec, dict):
            report.failed.append(f"{p}:{i}: not a JSON object")
            continue
        records.append(rec)
    return report.add(upsert_gc(store, records))


# ---- training (MLflow) ----------------------------------------------------------------------------------------

MLFLOW_STATUS = {"FINISHED": "ok", "FAILED": "error", "KILLED": "error", "RUNNING": "running",
                 "SCHEDULED": "running"}


def training_record(run: Any, registered: Mapping[str, tuple[str, str]], source: str = "") -> RunRecord:
    """One MLflow run (``mlflow.entities.Run``): family, version, train time, rows/s, test metrics, coverage per
    level and age bucket. ``registered`` maps run id -> (registered name, version)."""
    info, data = run.info, run.data
    family = data.tags.get("model_type") or data.tags.get("model_kind") or "unknown"
    reg = registered.get(info.run_id)
    metrics = {k: round(float(v), 6) for k, v in sorted(data.metrics.items())
               if k.startswith(("test/", "time/", "val/"))}
    train_s = metrics.get("time/train_s")
    rows = data.params.get("split.train_rows")
    if train_s and rows and str(rows).isdigit():
        metrics["time/train_rows_per_s"] = round(int(rows) / max(train_s, 1e-9), 3)
    comp = ComponentRecord(component="train", model=family, n=1, latency_sum_s=round(train_s or 0.0, 6),
                           status_counts={MLFLOW_STATUS.get(info.status, "error"): 1})
    histogram.observe(comp.latency_buckets, train_s or 0.0)
    started = datetime.fromtimestamp(info.start_time / 1000, UTC).replace(tzinfo=None)
    finished = (datetime.fromtimestamp(info.end_time / 1000, UTC).replace(tzinfo=None) if info.end_time else None)
    return RunRecord(
        run_key=f"training:{info.run_id}", kind="training", status=MLFLOW_STATUS.get(info.status, "error"),
        started_at=started, finished_at=finished, source=source, components=[comp],
        fields=dict(model_version=f"{family}:{reg[1]}" if reg else family, profile=data.tags.get("model_kind"),
                    measured_makespan_s=round((finished - started).total_seconds(), 3) if finished else None,
                    errors=int(info.status in ("FAILED", "KILLED")),
                    metrics=metrics | ({"registered_name": reg[0]} if reg else {})))


def ingest_mlflow(store: Store, tracking_uri: str) -> IngestReport:
    """Ingest every run of every experiment of the MLflow store at ``tracking_uri``."""
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    registered = {v.run_id: (v.name, str(v.version)) for v in client.search_model_versions()}
    exp_ids = [e.experiment_id for e in client.search_experiments()]
    records: list[RunRecord] = []
    token = None
    while exp_ids:
        page = client.search_runs(exp_ids, max_results=1000, page_token=token)
        records += [training_record(r, registered, source=tracking_uri) for r in page]
        token = page.token
        if not token:
            break
    return upsert_runs(store, records)


# ---- serving windows (the spool) ------------------------------------------------------------------------------

def serving_record(window: Mapping[str, Any]) -> tuple[RunRecord, dict[str, Any]]:
    """A spooled serving window (see :mod:`observability.spool`) as a run and its ``serving_windows`` row."""
    start = utc_naive(window["window_start"])
    comps = []
    for name, h in sorted((window.get("latency") or {}).items()):
        comps.append(ComponentRecord(component=name, n=int(sum(h["counts"])), latency_sum_s=round(h["sum"], 6),
                                     latency_buckets=histogram.rebucket(h["bounds"], h["counts"])))
    requests, errors = int(window.get("requests", 0)), int(window.get("errors", 0))
    rec = RunRecord(
        run_key=f"serving:{window['instance']}:{start.isoformat()}", kind="serving",
        status="ok" if not errors else "partial", started_at=start,
        finished_at=utc_naive(window["window_end"]), source=str(window["instance"]), components=comps,
        fields=dict(model_version=",".join(sorted(window.get("requests_by_version") or {}))[:200] or None,
                    errors=errors, metrics={"requests": requests, "fallbacks": int(window.get("fallbacks", 0)),
                             "ood": int(window.get("ood") or 0)}))
    row = dict(instance=str(window["instance"]), window_start=start, window_s=float(window["window_s"]),
               requests=requests, errors=errors, fallbacks=int(window.get("fallbacks", 0)),
               rejected=int(window.get("rejected", 0)),
               shadow_divergence_mean=window.get("shadow_divergence_mean"),
               errors_by_code=dict(window.get("errors_by_code") or {}),
               requests_by_version=dict(window.get("requests_by_version") or {}),
               ab_buckets=dict(window.get("ab_buckets") or {}),
               latency=dict(window.get("latency") or {}), predictions=dict(window.get("predictions") or {}),
               ood=int(window.get("ood") or 0), ood_features=dict(window.get("ood_features") or {}))
    return rec, row


def ingest_spool(store: Store, spool_dir: Path) -> IngestReport:
    """Ingest every spooled window file, then remove it (a window already stored is skipped, so a crash between
    the commit and the removal repeats nothing). Service model loads ride along as ``model_loads`` rows."""
    report = IngestReport()
    files = sorted(Path(spool_dir).glob("*.json")) if Path(spool_dir).exists() else []
    for f in files:
        try:
            window = json.loads(f.read_text())
            rec, row = serving_record(window)
        except (OSError, ValueError, KeyError) as exc:
            report.failed.append(f"{f}: {exc}")
            continue
        report.add(upsert_runs(store, [rec]))
        report.serving_windows += _insert_new(store, ServingWindow, [row], ("instance", "window_start"))
        loads = [dict(model=m["model"], version=str(m["version"]), seconds=float(m["seconds"]),
                      observed_at=utc_naive(m["observed_at"]), source=f"service:{row['instance']}"[:200])
                 for m in window.get("model_loads") or []]
        report.model_loads += _insert_new(store, ModelLoad, loads, ("model", "version", "observed_at", "source"))
        f.unlink(missing_ok=True)
    return report
