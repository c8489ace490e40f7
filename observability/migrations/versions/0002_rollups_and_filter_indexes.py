"""Hourly component rollups (the components page at 100,000 runs) and indexes for the runs page's status filter.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_status_started_at", "runs", ["status", "started_at"])
    op.create_index("ix_runs_kind_status_started_at", "runs", ["kind", "status", "started_at"])
    op.create_table(
        "component_hours",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("component", sa.String(100), nullable=False),
        sa.Column("hour", sa.DateTime, nullable=False),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("cache_hits", sa.Integer, nullable=False),
        sa.Column("oom_runs", sa.Integer, nullable=False),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("latency_sum_s", sa.Float, nullable=False),
        sa.Column("latency_buckets", sa.JSON, nullable=False),
        sa.Column("error_codes", sa.JSON, nullable=False),
        sa.UniqueConstraint("component", "hour", name="uq_component_hours"),
    )
    op.create_index("ix_component_hours_hour", "component_hours", ["hour"])
    # Runs ingested before this revision: rebuilt from run_components by `python -m observability ingest`
    # (observability.ingest.rebuild_rollups runs when the table is empty and runs exist).


def downgrade() -> None:
    op.drop_table("component_hours")
    op.drop_index("ix_runs_kind_status_started_at", "runs")
    op.drop_index("ix_runs_status_started_at", "runs")
