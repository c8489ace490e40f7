"""Importable entry points composed by the CLI, the extraction and training hooks, the demo and the benchmark."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from common.hashing import json_hash
from common.paths import CONF_DIR, STATE_DIR
from observability import ingest as ing
from observability.config import ObservabilityConfig, load_config
from observability.store import Store, open_store

log = logging.getLogger("observability")


def mlflow_uri(cfg: ObservabilityConfig) -> str | None:
    """The MLflow store to read: configured, else ``$MLFLOW_TRACKING_URI``, else the embedded training store when
    it exists (None otherwise)."""
    if cfg.mlflow_uri:
        return cfg.mlflow_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    db = STATE_DIR / "mlflow" / "mlflow.db"
    return f"sqlite:///{db}" if db.exists() else None


def checklist_files() -> list[Path]:
    """The planner's checklists (committed and machine-local): their ``load_seconds`` are Triton model loads."""
    return sorted([*CONF_DIR.glob("checklist/*/*.yaml"), *(STATE_DIR / "checklist").glob("*/*.yaml")])


def ingest(store: Store, cfg: ObservabilityConfig | None = None, *, artifacts: Path | None = None,
           mlflow: bool | str = False, run_ids: list[str] | None = None, spool: bool = True,
           extras: bool = True) -> ing.IngestReport:
    """Ingest the configured sources into ``store``: extraction manifests under ``artifacts`` (default: the
    config's), MLflow runs when ``mlflow`` (True: :func:`mlflow_uri`; a string: that URI), the serving spool, and
    with ``extras`` the checklists' model loads and the registry's audit log."""
    cfg = cfg or load_config()
    report = ing.IngestReport()
    root = Path(artifacts) if artifacts else cfg.path(cfg.artifacts)
    if root.exists():
        report.add(ing.ingest_artifacts(store, root, run_ids))
    _ensure_rollups(store)
    if mlflow:
        uri = mlflow if isinstance(mlflow, str) else mlflow_uri(cfg)
        if uri:
            report.add(ing.ingest_mlflow(store, uri))
    if spool:
        report.add(ing.ingest_spool(store, cfg.path(cfg.spool_dir)))
    if extras:
        report.add(ing.ingest_checklists(store, checklist_files()))
        audit = cfg.path(cfg.audit_log)
        if audit.exists():
            report.add(ing.ingest_audit(store, audit))
        report.add(ing.ingest_gc(store, cfg.path(cfg.gc_log)))
    return report


def hook_enabled() -> bool:
    return os.environ.get("TRENDFLOW_OBSERVABILITY", "on").lower() not in ("off", "0", "false", "no")


def _ensure_rollups(store: Store) -> None:
    """Build the hourly rollups once for a store whose runs were ingested before they existed (revision 0002)."""
    from sqlalchemy import exists, select

    from observability.schema import ComponentHour, Run

    with store.session() as s:
        missing = s.scalar(select(exists().where(Run.kind == "extraction"))) and not s.scalar(
            select(exists().where(ComponentHour.id.isnot(None))))
    if missing:
        log.info("observability: building the hourly component rollups (%d hour rows)", ing.rebuild_rollups(store))


def ingest_after_run(*, artifacts: Path | None = None, run_ids: list[str] | None = None, mlflow: bool | str = False,
                     url: str | None = None) -> ing.IngestReport | None:
    """The hook at the end of an extraction or training run: ingest it, and never raise (a dead or locked store
    is logged; the next ``python -m observability ingest`` picks the run up, ingest being idempotent).
    ``$TRENDFLOW_OBSERVABILITY=off`` turns the hook off."""
    if not hook_enabled():
        return None
    try:
        cfg = load_config()
        store = open_store(url or cfg.store_url())
        try:
            report = ingest(store, cfg, artifacts=artifacts, mlflow=mlflow, run_ids=run_ids, extras=False)
        finally:
            store.close()
        log.info(report.line())
        return report
    except Exception as exc:  # the run succeeded; its observability must not fail it
        log.warning("observability ingest skipped (run `python -m observability ingest` later): %s", exc)
        return None


def record_failed_run(kind: str, code: str, message: str, *, url: str | None = None,
                      when: datetime | None = None) -> bool:
    """Store a run that failed before writing anything (e.g. ``triton_unavailable`` at start): a run row with
    status ``error`` and its code, so alerts and the page see it. Never raises; returns whether it was stored."""
    from observability.queries import utcnow

    if not hook_enabled():
        return False
    when = when or utcnow()
    rec = ing.RunRecord(run_key=f"{kind}:failed:{when.isoformat()}:{json_hash(message, 8)}", kind=kind,
                        status="error", started_at=when, finished_at=when, source="hook",
                        fields=dict(errors=1, metrics={"error_code": code, "error_message": message[:400]}))
    return _write_or_log(url, lambda store: ing.upsert_runs(store, [rec]), f"failed {kind} run")


def record_gc(record: dict, url: str | None = None) -> bool:
    """Store one retention GC record (keys: ``gc_id, kind, started_at, ended_at, applied, candidates, deleted,
    bytes_freed, kept_past_cap, errors``), idempotently by ``gc_id``.

    Returns True when the record is in the store (written now or already there); False, logged, when the store is
    unreachable or the record is malformed (the caller keeps its JSON line, which ``ingest`` picks up later).
    Never raises.
    """
    if not hook_enabled():
        return False
    try:
        ing.gc_row(record)
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("GC record not stored (malformed): %s", exc)
        return False
    return _write_or_log(url, lambda store: ing.upsert_gc(store, [record]), f"GC record {record.get('gc_id')}")


def serving_recorder(registry: Any, instance: str, cfg: ObservabilityConfig | None = None) -> Any:
    """The inference service's :class:`~observability.spool.ServingRecorder`: windows spooled under the config's
    ``spool_dir`` every ``window_s``, then ingested into the store (retried while it is down). None when
    ``$TRENDFLOW_OBSERVABILITY=off``."""
    from observability.spool import ServingRecorder

    if not hook_enabled():
        return None
    cfg = cfg or load_config()
    url = cfg.store_url()

    def ingest_spool(spool: Path) -> None:
        store = open_store(url)
        try:
            ing.ingest_spool(store, spool)
        finally:
            store.close()

    return ServingRecorder(registry=registry, spool_dir=cfg.path(cfg.spool_dir), instance=instance,
                           window_s=cfg.window_s, ingest=ingest_spool)


@dataclass
class Summary:
    """What the main job prints: runs, components, error rate, p95 per component, firing alerts."""

    runs: dict[str, int]
    components: int
    error_rate: float | None
    p95_s: dict[str, float | None]
    firing: list[str] = field(default_factory=list)
    serving_requests: int = 0
    serving_ood: int = 0  # answers flagged out_of_distribution
    gpu_peak_bytes: int | None = None  # the highest of any extraction run; None: no GPU measured
    gc_runs: int = 0
    gc_bytes_freed: int = 0

    def lines(self) -> list[str]:
        out = [f"observability: runs {', '.join(f'{k} {v}' for k, v in sorted(self.runs.items())) or 'none'}; "
               f"{self.components} component rows; error rate "
               + (f"{self.error_rate:.2%}" if self.error_rate is not None else "n/a")]
        if self.p95_s:
            out.append("  p95 per component: " + ", ".join(f"{c} {p * 1000:.0f} ms" if p is not None else f"{c} n/a"
                                                            for c, p in self.p95_s.items()))
        out.append(f"  serving: {self.serving_requests} requests, {self.serving_ood} out of distribution; GPU peak "
                   + (f"{self.gpu_peak_bytes / 2**20:.0f} MiB" if self.gpu_peak_bytes is not None
                      else "n/a (no GPU measured)")
                   + f"; applied GC runs {self.gc_runs} ({self.gc_bytes_freed / 2**20:.1f} MiB freed)")
        out.append("  firing alerts: " + (", ".join(self.firing) if self.firing else "none"))
        return out


def summarize_store(store: Store) -> Summary:
    from sqlalchemy import func, select

    from observability.queries import alerts, component_stats_hourly
    from observability.schema import GcRun, Run, RunComponent, ServingWindow

    with store.session() as s:
        runs = dict(s.execute(select(Run.kind, func.count(Run.id)).group_by(Run.kind)).all())
        n_comp = s.scalar(select(func.count(RunComponent.id))) or 0
        req, ood = s.execute(select(func.coalesce(func.sum(ServingWindow.requests), 0),
                                    func.coalesce(func.sum(ServingWindow.ood), 0))).one()
        gpu = s.scalar(select(func.max(Run.gpu_peak_bytes)).where(Run.kind == "extraction"))
        gc_n, gc_freed = s.execute(select(func.count(GcRun.id), func.coalesce(func.sum(GcRun.bytes_freed), 0))
                                   .where(GcRun.applied.is_(True))).one()
    stats = component_stats_hourly(store, datetime(1970, 1, 1))
    n = sum(c.n for c in stats)
    err = sum((c.error_rate or 0) * c.n for c in stats) / n if n else None
    firing = [f"{a.name}{'{' + a.key + '}' if a.key else ''}" for a in alerts(store, ("firing",))]
    return Summary(runs=runs, components=n_comp, error_rate=err, p95_s={c.component: c.p95_s for c in stats},
                   firing=firing, serving_requests=int(req), serving_ood=int(ood),
                   gpu_peak_bytes=None if gpu is None else int(gpu), gc_runs=int(gc_n), gc_bytes_freed=int(gc_freed))


def ingest_and_summarize(artifacts: Path | None = None, mlflow: bool | str = True,
                         cfg: ObservabilityConfig | None = None) -> tuple[ing.IngestReport, Summary, str]:
    """What the main job does at its end: ingest everything, evaluate the alerts once, summarize.

    Returns ``(report, summary, admin page URL)``. Raises like :func:`open_store` when the store is unreachable.
    """
    from observability.alerts import Context, evaluate, load_rules
    from observability.queries import utcnow

    cfg = cfg or load_config()
    store = open_store(cfg.store_url())
    try:
        report = ingest(store, cfg, artifacts=artifacts, mlflow=mlflow)
        evaluate(Context(store=store, now=utcnow()), load_rules(cfg.path(cfg.alerts_file)), cfg.webhook_url)
        return report, summarize_store(store), "http://127.0.0.1:8200/"
    finally:
        store.close()


def as_jsonable(obj: Any) -> Any:
    """Dataclasses / datetimes -> JSON-ready values (the CLI's ``--json``)."""
    import dataclasses

    if dataclasses.is_dataclass(obj):
        return {k: as_jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, datetime):
        return obj.isoformat() + "Z"
    if isinstance(obj, dict):
        return {k: as_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [as_jsonable(v) for v in obj]
    return obj


def _write_or_log(url: str | None, write: Any, what: str) -> bool:
    """``write(store)`` on the store at ``url`` (default: the configured one); False, logged, when the store is
    unreachable or the write fails: the work being recorded already succeeded and must not fail because of it."""
    try:
        store = open_store(url or load_config().store_url())
        try:
            write(store)
        finally:
            store.close()
        return True
    except Exception as exc:
        log.warning("%s not stored in the observability store: %s", what, exc)
        return False
