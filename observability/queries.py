"""Read the store: runs with filters, one run with its components, per-component stats and trends, serving
windows, stable versions over time, alerts. Typed results; percentiles via :func:`histogram.histogram_quantile`.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from common.errors import ConfigError
from observability import histogram
from observability.schema import Alert, ComponentHour, GcRun, ModelLoad, Run, RunComponent, ServingWindow, StableVersion
from observability.store import Store

KINDS = ("extraction", "training", "serving")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``10m``, ``24h``, ``7d``, ``2w`` -> timedelta (bad input: ``config_invalid`` naming it)."""
    m = _DURATION.match(str(text))
    if not m:
        raise ConfigError(f"cannot read {text!r} as a duration (use e.g. 10m, 24h, 7d)", code="config_invalid")
    return timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _finite(x: float) -> float | None:
    return None if x is None or math.isnan(x) or math.isinf(x) else round(x, 6)


@dataclass
class RunFilter:
    kind: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    model_version: str | None = None  # substring
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if self.kind and self.kind not in KINDS:
            raise ConfigError(f"unknown run kind {self.kind!r}; one of {list(KINDS)}", code="config_invalid")


@dataclass
class RunRow:
    id: int
    run_key: str
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    model_version: str | None
    profile: str | None
    videos: int
    frames: int
    errors: int
    oom_count: int
    cache_hit_rate: float | None
    predicted_makespan_s: float | None
    measured_makespan_s: float | None
    peak_rss_bytes: int | None
    budget_bytes: int | None
    frames_per_s: float | None
    videos_per_h: float | None
    gpu_peak_bytes: int | None  # None: no GPU measured
    gpu_budget_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() + "Z" if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


_RUN_COLUMNS = [getattr(Run, f) for f in RunRow.__dataclass_fields__]


COUNT_CAP = 10_000  # counting stops here (the page says "10000+"): an exact count of 100,000 rows costs more than
#                     the page itself on PostgreSQL


def list_runs(store: Store, f: RunFilter) -> tuple[list[RunRow], int]:
    """The newest runs matching ``f`` (``f.limit`` of them from ``f.offset``) and how many match, counted up to
    :data:`COUNT_CAP` (a total of ``COUNT_CAP`` means "at least")."""
    where = []
    if f.kind:
        where.append(Run.kind == f.kind)
    if f.status:
        where.append(Run.status == f.status)
    if f.since:
        where.append(Run.started_at >= f.since)
    if f.until:
        where.append(Run.started_at < f.until)
    if f.model_version:
        where.append(Run.model_version.contains(f.model_version))
    with store.session() as s:
        capped = select(Run.id).where(*where).limit(COUNT_CAP).subquery()
        total = s.scalar(select(func.count()).select_from(capped)) or 0
        rows = s.execute(select(*_RUN_COLUMNS).where(*where).order_by(Run.started_at.desc(), Run.id.desc())
                         .limit(f.limit).offset(f.offset)).all()
    return [RunRow(*r) for r in rows], total


@dataclass
class ComponentRow:
    component: str
    model: str | None
    n: int
    errors: int
    retries: int
    cache_hits: int
    oom_count: int
    latency_sum_s: float
    p50_s: float | None
    p95_s: float | None
    status_counts: dict[str, int]
    error_codes: dict[str, int]
    batch_sizes: dict[str, int]
    gpu_peak_bytes: int | None = None  # None: no GPU measured


@dataclass
class RunDetail:
    run: RunRow
    components: list[ComponentRow]
    plan: dict[str, Any] | None
    metrics: dict[str, Any]
    source: str


def get_run(store: Store, run_id: int) -> RunDetail | None:
    with store.session() as s:
        run = s.get(Run, run_id)
        if run is None:
            return None
        comps = [ComponentRow(c.component, c.model, c.n, c.errors, c.retries, c.cache_hits, c.oom_count,
                              c.latency_sum_s, _finite(histogram.histogram_quantile(0.5, c.latency_buckets)),
                              _finite(histogram.histogram_quantile(0.95, c.latency_buckets)), c.status_counts,
                              c.error_codes, c.batch_sizes, c.gpu_peak_bytes) for c in run.components]
        row = RunRow(*(getattr(run, f) for f in RunRow.__dataclass_fields__))
        return RunDetail(run=row, components=comps, plan=run.plan, metrics=run.metrics or {}, source=run.source)


@dataclass
class ComponentStats:
    """One component over a time range (``oom_rate``: share of runs with an OOM in this component)."""

    component: str
    runs: int
    n: int
    error_rate: float | None
    p50_s: float | None
    p95_s: float | None
    cache_hit_rate: float | None
    oom_rate: float | None
    retries: int
    error_codes: dict[str, int] = field(default_factory=dict)


def component_rows(store: Store, since: datetime | None, until: datetime | None = None, kind: str = "extraction",
                    component: str | None = None) -> list[Any]:
    where = [Run.kind == kind]
    if since:
        where.append(RunComponent.started_at >= since)
    if until:
        where.append(RunComponent.started_at < until)
    if component:
        where.append(RunComponent.component == component)
    q = (select(RunComponent.component, RunComponent.started_at, RunComponent.n, RunComponent.errors,
                RunComponent.cache_hits, RunComponent.oom_count, RunComponent.retries, RunComponent.latency_buckets,
                RunComponent.error_codes).join(Run, Run.id == RunComponent.run_id).where(*where))
    with store.session() as s:
        return s.execute(q).all()


def _oom_runs(r: Any) -> int:
    return r.oom_runs if hasattr(r, "oom_runs") else int(r.oom_count > 0)


def summarize(component: str, rows: list[Any]) -> ComponentStats:
    """Merge component rows (one per run) or hourly rollup rows (``runs`` per row) into stats."""
    n = sum(r.n for r in rows)
    runs = sum(getattr(r, "runs", 1) for r in rows)
    hist = histogram.merge(r.latency_buckets for r in rows)
    codes: dict[str, int] = defaultdict(int)
    for r in rows:
        for k, v in (r.error_codes or {}).items():
            codes[k] += v
    return ComponentStats(
        component=component, runs=runs, n=n, error_rate=round(sum(r.errors for r in rows) / n, 6) if n else None,
        p50_s=_finite(histogram.histogram_quantile(0.5, hist)), p95_s=_finite(histogram.histogram_quantile(0.95, hist)),
        cache_hit_rate=round(sum(r.cache_hits for r in rows) / n, 6) if n else None,
        oom_rate=round(sum(_oom_runs(r) for r in rows) / runs, 6) if runs else None,
        retries=sum(r.retries for r in rows), error_codes=dict(codes))


def component_stats(store: Store, since: datetime | None = None, until: datetime | None = None,
                    kind: str = "extraction") -> list[ComponentStats]:
    """Per component: error rate, p50/p95 latency, cache hit rate, OOM rate over ``[since, until)``."""
    by: dict[str, list[Any]] = defaultdict(list)
    for r in component_rows(store, since, until, kind):
        by[r.component].append(r)
    return [summarize(c, rows) for c, rows in sorted(by.items())]


@dataclass
class TrendPoint:
    start: datetime
    runs: int
    n: int
    p95_s: float | None
    error_rate: float | None
    cache_hit_rate: float | None
    throughput_per_h: float | None  # videos (component executions) per hour in this bucket


def component_trend(store: Store, component: str, since: datetime, until: datetime | None = None,
                    buckets: int = 24) -> list[TrendPoint]:
    """``component`` over ``[since, until)`` in ``buckets`` equal time buckets (empty buckets included)."""
    until = until or utcnow()
    return _trend(component, component_rows(store, since, until, component=component), since, until, buckets)


@dataclass
class _HourRow:
    """A ``component_hours`` row in the shape :func:`summarize` reads."""

    component: str
    started_at: datetime
    runs: int
    n: int
    errors: int
    cache_hits: int
    oom_runs: int
    retries: int
    latency_buckets: list[int]
    error_codes: dict[str, int]


def hourly_rows(store: Store, since: datetime, until: datetime | None = None) -> list[_HourRow]:
    """The rolled-up hours of ``[since, until)`` (hour resolution: ``since`` is rounded down to its hour)."""
    q = select(ComponentHour).where(ComponentHour.hour >= since.replace(minute=0, second=0, microsecond=0),
                                    ComponentHour.runs > 0)
    if until:
        q = q.where(ComponentHour.hour < until)
    with store.session() as s:
        return [_HourRow(h.component, h.hour, h.runs, h.n, h.errors, h.cache_hits, h.oom_runs, h.retries,
                         h.latency_buckets, h.error_codes) for h in s.scalars(q)]


def component_stats_hourly(store: Store, since: datetime, until: datetime | None = None) -> list[ComponentStats]:
    """:func:`component_stats` of extraction runs from the hourly rollups (cost independent of the run count)."""
    by: dict[str, list[Any]] = defaultdict(list)
    for r in hourly_rows(store, since, until):
        by[r.component].append(r)
    return [summarize(c, rows) for c, rows in sorted(by.items())]


def component_overview(store: Store, since: datetime, until: datetime | None = None, buckets: int = 24
                       ) -> tuple[list[ComponentStats], dict[str, list[TrendPoint]]]:
    """Stats and trends of every component from the hourly rollups, one query (the components page)."""
    until = until or utcnow()
    by: dict[str, list[Any]] = defaultdict(list)
    for r in hourly_rows(store, since, until):
        by[r.component].append(r)
    stats = [summarize(c, rows) for c, rows in sorted(by.items())]
    return stats, {c: _trend(c, rows, since, until, buckets) for c, rows in sorted(by.items())}


def _trend(component: str, rows: list[Any], since: datetime, until: datetime, buckets: int) -> list[TrendPoint]:
    width = max((until - since) / buckets, timedelta(seconds=1))
    by: dict[int, list[Any]] = defaultdict(list)
    for r in rows:
        by[max(0, min(int((r.started_at - since) / width), buckets - 1))].append(r)
    out = []
    for i in range(buckets):
        s = summarize(component, by.get(i, []))
        out.append(TrendPoint(start=since + i * width, runs=s.runs, n=s.n, p95_s=s.p95_s, error_rate=s.error_rate,
                              cache_hit_rate=s.cache_hit_rate,
                              throughput_per_h=round(s.n / (width.total_seconds() / 3600), 3) if s.n else None))
    return out


def component_names(store: Store) -> list[str]:
    with store.session() as s:
        return list(s.scalars(select(RunComponent.component).join(Run, Run.id == RunComponent.run_id)
                              .where(Run.kind == "extraction").distinct().order_by(RunComponent.component)))


@dataclass
class WindowRow:
    instance: str
    window_start: datetime
    window_s: float
    requests: int
    errors: int
    fallbacks: int
    rejected: int
    shadow_divergence_mean: float | None
    errors_by_code: dict[str, int]
    requests_by_version: dict[str, int]
    ab_buckets: dict[str, int]
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None
    stages: dict[str, dict[str, float | None]]
    predictions: dict[str, Any]
    ood: int = 0  # answers flagged out_of_distribution
    ood_features: dict[str, int] = field(default_factory=dict)  # feature -> answers it was flagged in

    @property
    def ood_rate(self) -> float | None:
        return self.ood / self.requests if self.requests else None


def _quantiles(h: dict[str, Any]) -> dict[str, float | None]:
    return {f"p{int(q * 100)}": _finite(histogram.histogram_quantile(q, h["counts"], h["bounds"]))
            for q in (0.5, 0.95, 0.99)}


def serving_windows(store: Store, since: datetime | None = None, limit: int = 200) -> list[WindowRow]:
    """Newest serving windows first, with latency percentiles per stage and model version."""
    q = select(ServingWindow).order_by(ServingWindow.window_start.desc()).limit(limit)
    if since:
        q = q.where(ServingWindow.window_start >= since)
    out = []
    with store.session() as s:
        for w in s.scalars(q):
            lat = w.latency or {}
            req = next((h for k, h in lat.items() if k.startswith("request")), None)
            qs = _quantiles(req) if req else {"p50": None, "p95": None, "p99": None}
            out.append(WindowRow(w.instance, w.window_start, w.window_s, w.requests, w.errors, w.fallbacks,
                                 w.rejected, w.shadow_divergence_mean, w.errors_by_code, w.requests_by_version,
                                 w.ab_buckets, qs["p50"], qs["p95"], qs["p99"],
                                 {k: _quantiles(h) for k, h in sorted(lat.items())}, w.predictions, w.ood or 0,
                                 dict(sorted((w.ood_features or {}).items(), key=lambda kv: -kv[1]))))
    return out


def stable_history(store: Store, limit: int = 200) -> list[StableVersion]:
    with store.session() as s:
        return list(s.scalars(select(StableVersion).order_by(StableVersion.ts.desc()).limit(limit)))


def gc_runs(store: Store, limit: int = 50) -> list[GcRun]:
    """The most recent retention GC runs first."""
    with store.session() as s:
        return list(s.scalars(select(GcRun).order_by(GcRun.started_at.desc()).limit(limit)))


def model_loads(store: Store, limit: int = 200) -> list[ModelLoad]:
    with store.session() as s:
        return list(s.scalars(select(ModelLoad).order_by(ModelLoad.observed_at.desc()).limit(limit)))


def alerts(store: Store, states: tuple[str, ...] = ("firing", "resolved"), limit: int = 200) -> list[Alert]:
    """Alerts in ``states``: firing first, then the most recently resolved."""
    with store.session() as s:
        rows = list(s.scalars(select(Alert).where(Alert.state.in_(states))
                              .order_by(Alert.started_at.desc()).limit(limit)))
    return sorted(rows, key=lambda a: (a.state != "firing", -(a.ended_at or a.started_at).timestamp()))
