"""Shared by the observability integration tests: one real extraction run per session (the CLI, a real Triton,
the four-video edge-case corpus incl. an unreadable video), ingested by the CLI's own hook into a SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_CACHE: dict[str, RealRun] = {}


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
