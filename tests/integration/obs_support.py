"""Shared by the observability integration tests, once per session: a real extraction run (the CLI, a real Triton,
the four-video edge-case corpus incl. an unreadable video, ingested by the CLI's own hook into a SQLite store) and
a real inference service's spooled serving window."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_CACHE: dict[str, object] = {}


@dataclass
class RealRun:
    corpus: Path
    artifacts: Path
    run_id: str
    hook_url: str  # the store the CLI's end-of-run hook wrote to
    summary: dict


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def real_extraction_run(tmp_path_factory, grpc_url: str) -> RealRun:
    """``python -m extraction run`` once per session (cached), its hook ingesting into a fresh SQLite store."""
    if "run" in _CACHE:
        return _CACHE["run"]
    from testsupport.videos import make_corpus

    corpus = tmp_path_factory.mktemp("obs-corpus")
    make_corpus(corpus)
    out = tmp_path_factory.mktemp("obs-artifacts")
    hook_url = f"sqlite:///{tmp_path_factory.mktemp('obs-hook') / 'hook.db'}"
    r = subprocess.run([sys.executable, "-m", "extraction", "run", "--videos", str(corpus), "--out", str(out),
                        "--triton-url", grpc_url, "--no-progress", "--no-plan"],
                       capture_output=True, text=True, cwd=REPO, timeout=600,
                       env=env_with(TRENDFLOW_OBSERVABILITY_URL=hook_url))
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    _CACHE["run"] = RealRun(corpus=corpus, artifacts=out, run_id=summary["run_id"], hook_url=hook_url,
                            summary=summary)
    return _CACHE["run"]


def real_serving_spool(tmp_path_factory) -> tuple[Path, list[str]]:
    """A real inference service (uvicorn, real MLflow versions; v2 is a version whose predict raises, so its load
    sanity check fails too) answering 20 requests; its recorder, started and flushed by the app's lifespan,
    spools the window; the recorder's ingest target is a dead PostgreSQL address. Cached per session; callers
    copy the spool before ingesting it (ingest removes the files)."""
    if "spool" in _CACHE:
        return _CACHE["spool"]
    import socket

    import httpx
    import yaml

    from inference.config import parse_config
    from inference.server import ServerThread, build_service
    from observability import ingest as ing
    from observability.spool import ServingRecorder
    from observability.store import open_store
    from registry import ops
    from tests.conftest import RegistryStore

    reg = RegistryStore(tmp_path_factory.mktemp("obs-svc") / "mlflow")
    for t in ("v1", "baseline"):
        assert ops.promote(reg.client, reg.cfg, t, reg.log(t, seed=3).version.version, "test setup").ok
    broken = reg.log("v2", fail_predict=True).version.version
    raw = yaml.safe_load((REPO / "conf" / "inference.yaml").read_text())
    raw.update(registry=str(reg.config_path), request_modes=["features"], shadow=None,
               models={"v2": {"type": "v2", "version": int(broken)}, "v1": {"type": "v1", "alias": "stable"},
                       "baseline": {"type": "baseline", "alias": "stable"}})
    spool = tmp_path_factory.mktemp("obs-spool")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # nothing listens here once the socket is closed
    attempts: list[str] = []

    def ingest_to_dead_db(folder: Path) -> None:
        attempts.append(str(folder))
        dead = open_store(f"postgresql+psycopg://postgres@127.0.0.1:{dead_port}/x?connect_timeout=2")
        ing.ingest_spool(dead, folder)

    row = {c: 0.5 for c in reg.columns if not c.startswith("mask__")}
    cfg = parse_config(raw)
    service = build_service(cfg)
    # window_s=3600: the one window is the whole test, flushed when the app stops
    recorder = ServingRecorder(service.metrics.registry, spool, "127.0.0.1:test", window_s=3600,
                               ingest=ingest_to_dead_db)
    with ServerThread(cfg, service=service, recorder=recorder) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as http:
        for _ in range(20):
            assert http.post("/predict", json={"features": row}).status_code == 200
    _CACHE["spool"] = (spool, attempts)
    return spool, attempts
