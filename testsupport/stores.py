"""Fabricated artifact stores for the retention GC's tests and benchmark.

Two levels: :func:`run_rec` builds the plain data :func:`retention.live.mark` takes (no disk), and
:class:`FabricatedStore` writes a store with the extractor's layout (run folders, manifests with ages, the cache
index, hard links for cache hits, leases) whose artifacts are small opaque files: the GC never reads an NPZ.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from retention.live import FileRec, RunRec

DAY = 86400.0
_INODES = iter(range(1, 10**9))


def run_rec(video: str, run_id: str, age_days: float, *, now: float, status: str | None = "ok", key: str = "k",
            complete: bool = True, files: tuple[FileRec, ...] | None = None, platform: str = "yt") -> RunRec:
    """A run as the scanner would report it, ``age_days`` old; by default one unshared 100-byte file."""
    if files is None:
        files = (FileRec("a.npz", 100, (1, next(_INODES)), 1),)
    return RunRec(platform, video, run_id, complete, status if complete else None, now - age_days * DAY,
                  f"{platform}/{video}/{key}" if complete else None, files)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class FabricatedStore:
    """Writes runs into ``root`` with the layout of ``extraction.artifacts``; ``now`` anchors the ages."""

    root: Path
    now: float
    size: int = 4096
    runs: list[Path] = field(default_factory=list)

    def add_run(self, video: str, run_id: str, age_days: float, *, status: str = "ok", model_sig: str = "sig-a",
                components: tuple[str, ...] = ("visual", "audio"), link_from: str | None = None,
                complete: bool = True, platform: str = "yt", config_hash: str = "cfg") -> Path:
        """One run of ``video``. ``link_from``: a run of the same video whose artifacts it reuses (hard links,
        as a cache hit does) when they were produced under the same model signature; the rest it computes (new
        files, indexed). The manifest's ``finished_at`` is ``age_days`` before ``now``, and so are the mtimes."""
        vdir = self.root / platform / video
        rdir = vdir / run_id
        rdir.mkdir(parents=True, exist_ok=True)
        t = self.now - age_days * DAY
        comps = {}
        for comp in components:
            dst = rdir / f"{comp}.npz"
            src = vdir / link_from / f"{comp}.npz" if link_from else None
            key = f"{comp}-{model_sig}-{config_hash}"
            idx = vdir / "cache" / f"{key}.json"
            if src is not None and src.exists() and idx.exists():
                os.link(src, dst)
                comps[comp] = {"model_signature": model_sig, "artifact": dst.name, "cache_hit": True,
                               "source_artifact": str(src.relative_to(self.root)), "cache_key": key}
            else:
                dst.write_bytes(os.urandom(16) + b"\0" * (self.size - 16))
                idx.parent.mkdir(exist_ok=True)
                idx.write_text(json.dumps({"artifact": str(dst.relative_to(self.root))}))
                comps[comp] = {"model_signature": model_sig, "artifact": dst.name, "cache_hit": False,
                               "source_artifact": None, "cache_key": key}
            os.utime(dst, (t, t))
        if complete:
            manifest = {"run_id": run_id, "platform_id": platform, "video_id": video, "config_hash": config_hash,
                        "sampling_policy_version": "uniform-fps-v1", "status": status, "started_at": iso(t - 1),
                        "finished_at": iso(t), "components": comps}
            (rdir / "manifest.json").write_text(json.dumps(manifest))
            os.utime(rdir / "manifest.json", (t, t))
        self.runs.append(rdir)
        return rdir

    def lease(self, run_id: str, videos: list[tuple[str, str]], *, heartbeat_age_s: float = 0.0,
              timeout_s: float = 120.0, pid: int | None = None) -> Path:
        """A lease file as ``extraction.lease.RunLease`` writes it, its heartbeat ``heartbeat_age_s`` old."""
        p = self.root / ".leases" / f"{run_id}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"run_id": run_id, "pid": os.getpid() if pid is None else pid,
                                 "host": socket.gethostname(), "started_at": iso(self.now - heartbeat_age_s - 1),
                                 "timeout_s": timeout_s, "videos": [list(v) for v in videos]}))
        os.utime(p, (self.now - heartbeat_age_s, self.now - heartbeat_age_s))
        return p
