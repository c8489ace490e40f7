"""GC runs, out-of-distribution counts per serving window, GPU memory per extraction run and component.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gc_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("gc_id", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime, nullable=True),
        sa.Column("applied", sa.Boolean, nullable=False),
        sa.Column("candidates", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Integer, nullable=False),
        sa.Column("bytes_freed", sa.BigInteger, nullable=False),
        sa.Column("kept_past_cap", sa.JSON, nullable=False),
        sa.Column("errors", sa.JSON, nullable=False),
    )
    op.create_index("ix_gc_runs_started_at", "gc_runs", ["started_at"])
    # Windows spooled before this revision counted no OOD answers: 0, not unknown, is what they saw.
    with op.batch_alter_table("serving_windows") as t:
        t.add_column(sa.Column("ood", sa.Integer, nullable=False, server_default="0"))
        t.add_column(sa.Column("ood_features", sa.JSON, nullable=True))
    # NULL (not 0) where no GPU was measured.
    with op.batch_alter_table("runs") as t:
        t.add_column(sa.Column("gpu_budget_bytes", sa.BigInteger, nullable=True))
    with op.batch_alter_table("run_components") as t:
        t.add_column(sa.Column("gpu_peak_bytes", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run_components") as t:
        t.drop_column("gpu_peak_bytes")
    with op.batch_alter_table("runs") as t:
        t.drop_column("gpu_budget_bytes")
    with op.batch_alter_table("serving_windows") as t:
        t.drop_column("ood_features")
        t.drop_column("ood")
    op.drop_table("gc_runs")
