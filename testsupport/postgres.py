"""A throwaway PostgreSQL cluster for tests: ``initdb`` in a temp folder, ``pg_ctl start`` on loopback.

Runs the server as the ``postgres`` user when the tests run as root (CI: PostgreSQL refuses to run as root), as the
current user otherwise. Trust authentication on 127.0.0.1 only; the cluster is removed by :meth:`stop`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def pg_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/pg_ctl "
                           "(apt-get install postgresql; .ci/run does)")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresCluster:
    root: Path
    port: int
    bin: Path
    as_user: str | None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        full = [str(self.bin / cmd[0]), *cmd[1:]]
        if self.as_user:
            full = ["runuser", "-u", self.as_user, "--", *full]
        return subprocess.run(full, capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> PostgresCluster:
        data = self.root / "data"
        r = self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        if r.returncode:
            raise RuntimeError(f"initdb failed: {r.stderr or r.stdout}")
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=40"
        r = self._run("pg_ctl", "-D", str(data), "-o", opts, "-l", str(self.root / "server.log"), "-w", "-t", "60",
                      "start")
        if r.returncode:
            log = (self.root / "server.log").read_text() if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {r.stderr or r.stdout}\n{log[-2000:]}")
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A fresh database; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


def start_cluster() -> PostgresCluster:
    """Start a cluster in a new temp folder (owned by ``postgres`` when running as root)."""
    root = Path(tempfile.mkdtemp(prefix="trendflow-pg-"))
    as_user = None
    if os.geteuid() == 0:
        as_user = "postgres"
        shutil.chown(root, user="postgres")
    return PostgresCluster(root=root, port=free_port(), bin=pg_bin(), as_user=as_user).start()
