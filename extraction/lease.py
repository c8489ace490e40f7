"""Run leases: a file per running extraction run that tells the retention GC what the run holds.

``ARTIFACTS/.leases/<run_id>.json`` is written when a run starts (pid, host, run id, the videos it will process,
its timeout), its modification time is the heartbeat (touched every ``timeout_s / 4`` by a daemon thread), and it
is removed when the run ends, however it ends. A lease whose heartbeat is older than its timeout is dead (a killed
run stops touching it); so is one whose pid no longer exists on this host. The GC never deletes a live lease's run
folders nor the cached artifacts of the videos it lists (the run may be about to hard-link them).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.clock import now_iso
from common.fsio import atomic_write_json
from common.process import pid_alive

LEASE_DIR = ".leases"
DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LeaseInfo:
    """One lease file as read from disk (plain data for the GC's live-set computation)."""

    run_id: str
    pid: int
    host: str
    started_at: str
    heartbeat_epoch: float  # the lease file's mtime
    timeout_s: float
    videos: tuple[tuple[str, str], ...]  # (platform_id, video_id) the run processes
    path: str


def lease_path(root: Path, run_id: str) -> Path:
    return Path(root) / LEASE_DIR / f"{run_id}.json"


class RunLease:
    """Context manager: holds the lease of one run for as long as the ``with`` block runs."""

    def __init__(self, root: Path, run_id: str, videos: list[tuple[str, str]],
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.path = lease_path(root, run_id)
        self.record: dict[str, Any] = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                                       "started_at": now_iso(), "timeout_s": timeout_s,
                                       "videos": [list(v) for v in videos]}
        self.timeout_s = timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunLease:
        atomic_write_json(self.path, self.record)
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.record['run_id']}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(max(self.timeout_s / 4, 0.05)):
            try:
                os.utime(self.path)
            except FileNotFoundError:  # someone removed it: write it again, the run still holds what it held
                atomic_write_json(self.path, self.record)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)


def read_leases(root: Path) -> list[LeaseInfo]:
    """Every lease file under ``root`` (unreadable or vanishing files are skipped: a lease being removed is a run
    that has ended)."""
    out = []
    folder = Path(root) / LEASE_DIR
    if not folder.is_dir():
        return out
    for p in sorted(folder.glob("*.json")):
        try:
            st = p.stat()
            rec = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        out.append(LeaseInfo(run_id=str(rec.get("run_id", p.stem)), pid=int(rec.get("pid", -1)),
                             host=str(rec.get("host", "")), started_at=str(rec.get("started_at", "")),
                             heartbeat_epoch=st.st_mtime, timeout_s=float(rec.get("timeout_s", DEFAULT_TIMEOUT_S)),
                             videos=tuple((str(a), str(b)) for a, b in rec.get("videos", [])), path=str(p)))
    return out


def is_live(lease: LeaseInfo, now_epoch: float, host: str | None = None) -> bool:
    """A lease is live while its heartbeat is younger than its timeout and, on this host, its pid exists."""
    if now_epoch - lease.heartbeat_epoch > lease.timeout_s:
        return False
    if lease.host == (host or socket.gethostname()):
        return pid_alive(lease.pid)
    return True
