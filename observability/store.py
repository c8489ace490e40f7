"""Open the store: an engine on any SQLAlchemy URL, migrated to the newest schema on open.

SQLite (the embedded default) runs in WAL mode with a busy timeout, so the admin page reads while an ingest
writes; PostgreSQL is used as is. Migrations are the Alembic scripts shipped in ``observability/migrations``,
run programmatically on the connection the store uses (no ``alembic.ini``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from common.errors import ConfigError, TrendflowError
from observability.config import store_url

log = logging.getLogger("observability.store")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000


class StoreUnavailable(TrendflowError):
    code = "observability_store_unavailable"


@dataclass
class Store:
    """An open, migrated store: ``store.session()`` is a context-managed ORM session."""

    url: str
    engine: Engine
    session: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder and the WAL pragmas."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"observability store URL {url!r} is not a SQLAlchemy URL: {exc}",
                          code="config_invalid") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` with the shipped Alembic scripts."""
    from alembic import command
    from alembic.config import Config

    logging.getLogger("alembic").setLevel(logging.WARNING)  # one INFO line per plugin on every open otherwise
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def open_store(url: str | None = None) -> Store:
    """Open (and migrate) the store at ``url`` (default: :func:`observability.config.store_url`).

    Raises:
        StoreUnavailable: the database cannot be reached or migrated.
        ConfigError: ``url`` is not a SQLAlchemy URL.
    """
    url = url or store_url()
    engine = make_engine(url)
    try:
        migrate(engine)
    except OperationalError as exc:
        engine.dispose()
        raise StoreUnavailable(f"observability store {make_url(url).render_as_string(hide_password=True)} "
                               f"is unavailable: {str(exc.orig).strip()[:300]}") from None
    return Store(url=url, engine=engine, session=sessionmaker(engine, expire_on_commit=False))
