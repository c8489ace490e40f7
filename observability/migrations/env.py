"""Alembic environment: run on the connection :func:`observability.store.migrate` passes in (never a URL of its
own, so the store and its migrations always talk to the same database)."""

from __future__ import annotations

from alembic import context

from observability.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
