"""The first schema: runs, run_components, model_loads, serving_windows, stable_versions, alerts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One helper per table, in dependency order (run_components refers to runs).
    _runs()
    _run_components()
    _model_loads()
    _serving_windows()
    _stable_versions()
    _alerts()


def _runs() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_key", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=True),
        sa.Column("profile", sa.String(50), nullable=True),
        sa.Column("videos", sa.Integer, nullable=False),
        sa.Column("frames", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("oom_count", sa.Integer, nullable=False),
        sa.Column("cache_hit_rate", sa.Float, nullable=True),
        sa.Column("predicted_makespan_s", sa.Float, nullable=True),
        sa.Column("measured_makespan_s", sa.Float, nullable=True),
        sa.Column("peak_rss_bytes", sa.BigInteger, nullable=True),
        sa.Column("budget_bytes", sa.BigInteger, nullable=True),
        sa.Column("gpu_peak_bytes", sa.BigInteger, nullable=True),
        sa.Column("frames_per_s", sa.Float, nullable=True),
        sa.Column("videos_per_h", sa.Float, nullable=True),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("plan", sa.JSON, nullable=True),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_index("ix_runs_kind_started_at", "runs", ["kind", "started_at"])


def _run_components() -> None:
    op.create_table(
        "run_components",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("component", sa.String(100), nullable=False),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("oom_count", sa.Integer, nullable=False),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("cache_hits", sa.Integer, nullable=False),
        sa.Column("latency_sum_s", sa.Float, nullable=False),
        sa.Column("latency_buckets", sa.JSON, nullable=False),
        sa.Column("status_counts", sa.JSON, nullable=False),
        sa.Column("error_codes", sa.JSON, nullable=False),
        sa.Column("batch_sizes", sa.JSON, nullable=False),
    )
    op.create_index("ix_run_components_run_id", "run_components", ["run_id"])
    op.create_index("ix_run_components_component_started", "run_components", ["component", "started_at"])


def _model_loads() -> None:
    op.create_table(
        "model_loads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("observed_at", sa.DateTime, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.UniqueConstraint("model", "version", "observed_at", "source", name="uq_model_loads"),
    )


def _serving_windows() -> None:
    op.create_table(
        "serving_windows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("instance", sa.String(200), nullable=False),
        sa.Column("window_start", sa.DateTime, nullable=False),
        sa.Column("window_s", sa.Float, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("fallbacks", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("shadow_divergence_mean", sa.Float, nullable=True),
        sa.Column("errors_by_code", sa.JSON, nullable=False),
        sa.Column("requests_by_version", sa.JSON, nullable=False),
        sa.Column("ab_buckets", sa.JSON, nullable=False),
        sa.Column("latency", sa.JSON, nullable=False),
        sa.Column("predictions", sa.JSON, nullable=False),
        sa.UniqueConstraint("instance", "window_start", name="uq_serving_windows"),
    )
    op.create_index("ix_serving_windows_start", "serving_windows", ["window_start"])


def _stable_versions() -> None:
    op.create_table(
        "stable_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.DateTime, nullable=False),
        sa.Column("model_type", sa.String(100), nullable=False),
        sa.Column("alias", sa.String(50), nullable=False),
        sa.Column("version", sa.String(50), nullable=True),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("entry_hash", sa.String(32), nullable=False, unique=True),
    )


def _alerts() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime, nullable=True),
        sa.Column("last_true_at", sa.DateTime, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("summary", sa.String(500), nullable=False),
    )
    op.create_index("ix_alerts_state", "alerts", ["state"])


def downgrade() -> None:
    for table in ("alerts", "stable_versions", "serving_windows", "model_loads", "run_components", "runs"):
        op.drop_table(table)
