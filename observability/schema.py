"""The store's tables (SQLAlchemy 2 declarative). Migrations in ``observability/migrations`` create them.

One row per run (``runs``: extraction, training or serving window) and one per component of a run
(``run_components``), plus Triton model loads, serving windows, the registry's stable-version history and
alerts. Times are naive UTC (SQLite keeps no time zone; every writer converts first). Histograms are per-bucket
counts on :data:`observability.histogram.LATENCY_BUCKETS` (JSON lists), so they merge by adding.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Run(Base):
    """One run of any kind; ``run_key`` (``<kind>:<source id>``) makes ingest idempotent."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    source: Mapped[str] = mapped_column(String(500), default="")
    fingerprint: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    profile: Mapped[str | None] = mapped_column(String(50), nullable=True)
    videos: Mapped[int] = mapped_column(Integer, default=0)
    frames: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    oom_count: Mapped[int] = mapped_column(Integer, default=0)
    cache_hit_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    predicted_makespan_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    measured_makespan_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_rss_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    budget_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    gpu_peak_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # NULL: no GPU measured
    gpu_budget_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    frames_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    videos_per_h: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    plan: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    components: Mapped[list[RunComponent]] = relationship(back_populates="run", cascade="all, delete-orphan",
                                                          order_by="RunComponent.id")
    __table_args__ = (Index("ix_runs_started_at", "started_at"), Index("ix_runs_kind_started_at", "kind", "started_at"),
                      Index("ix_runs_status_started_at", "status", "started_at"),
                      Index("ix_runs_kind_status_started_at", "kind", "status", "started_at"))


class RunComponent(Base):
    """One component (or training stage) of one run: counts over the run's videos."""

    __tablename__ = "run_components"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    component: Mapped[str] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)  # name:version
    started_at: Mapped[datetime] = mapped_column(DateTime)  # the run's, denormalised for trend queries
    n: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    oom_count: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    cache_hits: Mapped[int] = mapped_column(Integer, default=0)
    latency_sum_s: Mapped[float] = mapped_column(Float, default=0.0)
    latency_buckets: Mapped[list] = mapped_column(JSON, default=list)
    status_counts: Mapped[dict] = mapped_column(JSON, default=dict)
    error_codes: Mapped[dict] = mapped_column(JSON, default=dict)
    batch_sizes: Mapped[dict] = mapped_column(JSON, default=dict)  # batch size really sent -> videos
    # Peak GPU memory in use (device-wide, all GPUs summed) while the component ran; NULL: no GPU measured.
    gpu_peak_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    run: Mapped[Run] = relationship(back_populates="components")
    __table_args__ = (Index("ix_run_components_run_id", "run_id"),
                      Index("ix_run_components_component_started", "component", "started_at"))


class ComponentHour(Base):
    """Extraction components rolled up per UTC hour (kept by ingest): the components page and
    ``component-stats`` read these, so their cost does not grow with the number of runs in the range."""

    __tablename__ = "component_hours"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    component: Mapped[str] = mapped_column(String(100))
    hour: Mapped[datetime] = mapped_column(DateTime)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    n: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    cache_hits: Mapped[int] = mapped_column(Integer, default=0)
    oom_runs: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    latency_sum_s: Mapped[float] = mapped_column(Float, default=0.0)
    latency_buckets: Mapped[list] = mapped_column(JSON, default=list)
    error_codes: Mapped[dict] = mapped_column(JSON, default=dict)
    __table_args__ = (UniqueConstraint("component", "hour", name="uq_component_hours"),
                      Index("ix_component_hours_hour", "hour"))


class ModelLoad(Base):
    """A Triton (or service) model load: ``model_load_seconds`` per model:version."""

    __tablename__ = "model_loads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(50))
    seconds: Mapped[float] = mapped_column(Float)
    observed_at: Mapped[datetime] = mapped_column(DateTime)
    source: Mapped[str] = mapped_column(String(200))
    __table_args__ = (UniqueConstraint("model", "version", "observed_at", "source", name="uq_model_loads"),)


class ServingWindow(Base):
    """The inference service's counters over one window of one instance."""

    __tablename__ = "serving_windows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance: Mapped[str] = mapped_column(String(200))
    window_start: Mapped[datetime] = mapped_column(DateTime)
    window_s: Mapped[float] = mapped_column(Float)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    fallbacks: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    shadow_divergence_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    errors_by_code: Mapped[dict] = mapped_column(JSON, default=dict)
    requests_by_version: Mapped[dict] = mapped_column(JSON, default=dict)  # type:version -> requests
    ab_buckets: Mapped[dict] = mapped_column(JSON, default=dict)  # A/B bucket -> answered requests
    latency: Mapped[dict] = mapped_column(JSON, default=dict)  # histogram name -> {bounds, counts, sum}
    predictions: Mapped[dict] = mapped_column(JSON, default=dict)  # target -> {p50_mean, width_mean, n}
    ood: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # answers flagged out_of_distribution
    ood_features: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # feature -> answers it was flagged in
    __table_args__ = (UniqueConstraint("instance", "window_start", name="uq_serving_windows"),
                      Index("ix_serving_windows_start", "window_start"))


class GcRun(Base):
    """One retention GC (dry run or applied), keyed by the GC's own ``gc_id`` so recording it twice is one row."""

    __tablename__ = "gc_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gc_id: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    applied: Mapped[bool] = mapped_column(Boolean)
    candidates: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    bytes_freed: Mapped[int] = mapped_column(BigInteger, default=0)
    kept_past_cap: Mapped[list] = mapped_column(JSON, default=list)  # [{item, reason}]
    errors: Mapped[list] = mapped_column(JSON, default=list)
    __table_args__ = (Index("ix_gc_runs_started_at", "started_at"),)


class StableVersion(Base):
    """The registry's audit log, flattened: which version an alias pointed to from when."""

    __tablename__ = "stable_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(DateTime)
    model_type: Mapped[str] = mapped_column(String(100))
    alias: Mapped[str] = mapped_column(String(50))
    version: Mapped[str | None] = mapped_column(String(50), nullable=True)
    action: Mapped[str] = mapped_column(String(50))
    entry_hash: Mapped[str] = mapped_column(String(32), unique=True)


class Alert(Base):
    """One firing episode of one alert (``ended_at`` set when it resolves)."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(200))  # the alert's labels beyond its name, e.g. component=faces
    severity: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))  # pending | firing | resolved
    started_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_true_at: Mapped[datetime] = mapped_column(DateTime)  # for keep_firing_for
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    summary: Mapped[str] = mapped_column(String(500), default="")
    __table_args__ = (Index("ix_alerts_state", "state"),)
