"""Inputs the model has never seen, end to end: real Triton, the shared extractor, a registered version whose
recorded input distribution is that of real extracted videos, the service's video mode.

The version is fitted on 12 ordinary clips extracted for real (``testsupport.registry`` ridge on their feature
rows). Extreme videos (all black, all white, pure noise, a single frame, a face covering the frame, 200 cuts per
minute, clipping audio) and metadata at the edges (0 views, 10^9 subscribers, age 0.01 h and 5,000 h) must all
produce finite ordered quantiles, ``confidence_score`` in [0, 1], the ``out_of_distribution`` warning, and the
documented confidence rule: the model's own confidence x 0.5 per feature outside (checked against the same
version's pyfunc on the same feature row).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from contract.output import QUANTILES, TARGETS
from inference.config import parse_config
from inference.server import ServerThread
from registry import ops
from tests.conftest import RegistryStore
from testsupport.videos import write_frames, write_sidecar, write_video

pytestmark = [pytest.mark.triton, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
W, H, FPS = 160, 96, 10
ORDER = ["p025", "p05", "p10", "p50", "p90", "p95", "p975"]


def _sidecar(video: Path, vid: str, **changes: Any) -> dict[str, Any]:
    meta = json.loads(write_sidecar(video, vid).read_text())
    channel = changes.pop("channel", {})
    meta.update(changes)
    meta["channel"].update(channel)
    video.with_suffix(".json").write_text(json.dumps(meta))
    return meta


def _tone(seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (amp * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _extreme_videos(folder: Path) -> dict[str, Path]:
    import cv2
    from matplotlib import cbook

    folder.mkdir()
    rng = np.random.default_rng(7)
    n = 2 * FPS

    def flat(v: int) -> list[np.ndarray]:
        return [np.full((H, W, 3), v, np.uint8) for _ in range(n)]

    face = cv2.cvtColor(cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))), cv2.COLOR_BGR2RGB)
    face = cv2.resize(face[60:420, 80:440], (W, H))  # the face fills the frame
    cuts = [np.full((H, W, 3), (255, 0, 0) if (i // 3) % 2 else (0, 0, 255), np.uint8) for i in range(3 * FPS)]
    clip = np.clip(3.0 * np.sin(2 * np.pi * 440 * np.arange(2 * 16000) / 16000), -1, 1).astype(np.float32)
    videos = {
        "black": write_frames(folder / "black.mp4", flat(0), audio=_tone(2)),
        "white": write_frames(folder / "white.mp4", flat(255), audio=_tone(2)),
        "noise": write_frames(folder / "noise.mp4", [rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
                                                     for _ in range(n)], audio=_tone(2)),
        "one_frame": write_frames(folder / "one_frame.mp4", flat(120)[:1], audio=_tone(0.1)),
        "face": write_frames(folder / "face.mp4", [face] * n, audio=_tone(2)),
        "200_cuts_per_minute": write_frames(folder / "200_cuts_per_minute.mp4", cuts, audio=_tone(3)),
        "clipping_audio": write_frames(folder / "clipping_audio.mp4",
                                       [np.full((H, W, 3), (40, 90, 160), np.uint8)] * n,
                                       audio=clip),
    }
    for name, path in videos.items():  # the metadata of training clip n05: only the content is extreme
        _sidecar(path, name, **_train_meta(5))
    return videos


def _train_meta(i: int) -> dict[str, Any]:
    return {"views_snapshot1": int(500 * 1.5 ** i), "likes_snapshot1": int(20 * 1.4 ** i),
            "video_age_hours_at_snapshot1": 6.0 + 4 * i, "channel": {"subscribers": int(1000 * 1.8 ** i)}}


@pytest.fixture(scope="module")
def world(triton_server, tmp_path_factory: pytest.TempPathFactory):
    from features import load_spec
    from features.build import build_vector

    tmp = tmp_path_factory.mktemp("adversarial")
    train_dir, art = tmp / "train", tmp / "train-artifacts"
    train_dir.mkdir()
    for i in range(12):
        v = write_video(train_dir / f"n{i:02d}.mp4", seconds=1.0 + 0.25 * (i % 5), seed=i, moving=i % 3 != 0,
                        cut_at=0.6 if i % 2 else None)
        _sidecar(v, f"n{i:02d}", **_train_meta(i))
    p = subprocess.run([sys.executable, "-m", "extraction", "run", "--videos", str(train_dir), "--out", str(art),
                        "--triton-url", triton_server.grpc_url, "--no-plan", "--no-progress"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    store = RegistryStore(tmp / "mlflow")
    spec = load_spec()
    rows = [build_vector(m.parent, spec).as_dict() for m in sorted(art.rglob("manifest.json"))]
    frame = pd.DataFrame(rows)[store.columns].astype(np.float64)
    base = frame["meta_log_views_snapshot1"].to_numpy()
    y = np.stack([base + 0.3 * h for h in (1, 2, 3, -1.5, -1.0, -0.5)], axis=1) + \
        np.random.default_rng(0).normal(0, 0.2, (len(frame), 6))
    logged = store.log("baseline", train=(frame, y))
    assert ops.promote(store.client, store.cfg, "baseline", logged.version.version, "adversarial").ok
    raw = yaml.safe_load((ROOT / "conf" / "inference.yaml").read_text())
    raw.update(registry=str(store.config_path), request_modes=["features", "artifacts", "video"], shadow=None,
               models={"baseline": {"type": "baseline", "alias": "stable"}}, primary="baseline", fallback=[],
               triton={"url": triton_server.grpc_url, "timeout_s": 2.0}, allowed_roots=[str(tmp)],
               extraction={"profile": "fast", "artifacts_dir": str(tmp / "serving")})
    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model(f"models:/trendflow-baseline/{logged.version.version}")
    with ServerThread(parse_config(raw)) as srv, httpx.Client(base_url=srv.url, timeout=300) as http:
        srv.http, srv.tmp, srv.spec, srv.pyfunc, srv.columns = http, tmp, spec, pyfunc, store.columns
        srv.normal = train_dir / "n05.mp4"
        yield srv


def _check(world, video: Path, metadata: dict[str, Any]) -> list[str]:
    """POST the video; assert the invariants and the confidence rule; return the out-of-distribution features."""
    from features.build import build_vector

    r = world.http.post("/predict", json={"video_path": str(video), "metadata": metadata})
    assert r.status_code == 200, r.text
    out = r.json()
    row = build_vector(Path(out["source"]["run_dir"]), world.spec).as_dict()
    raw = world.pyfunc.predict(pd.DataFrame([row])[world.columns].astype(np.float64)).iloc[0]
    ood = next((w["fields"] for w in out["warnings"] if w["code"] == "out_of_distribution"), [])
    for t in TARGETS:
        v = out["prediction"]["values"][t]
        counts = [v[q] for q in ORDER]
        logs = [v["log1p"][q] for q in ORDER]
        assert all(math.isfinite(x) for x in counts + logs), (video.name, t, v)
        assert counts == sorted(counts) and logs == sorted(logs), (video.name, t, v)
        assert 0.0 <= v["confidence_score"] <= 1.0
        assert v["confidence_score"] == pytest.approx(raw[f"{t}_confidence"] * 0.5 ** len(ood), rel=1e-6, abs=1e-9)
        assert set(QUANTILES) == set(ORDER)
    return ood


def test_extreme_videos_are_answered_and_flagged(world) -> None:
    flagged = {}
    for name, video in _extreme_videos(world.tmp / "extreme").items():
        flagged[name] = _check(world, video, json.loads(video.with_suffix(".json").read_text()))
    print(json.dumps({k: v[:6] for k, v in flagged.items()}, indent=1))
    assert all(flagged.values()), {k: v for k, v in flagged.items() if not v}
    assert not any(f.startswith("meta_") for v in flagged.values() for f in v)  # the metadata is in distribution
    assert any(f.startswith("vis_brightness") for f in flagged["black"] + flagged["white"])


def test_metadata_at_the_edges_is_answered_and_flagged(world) -> None:
    base = json.loads(world.normal.with_suffix(".json").read_text())
    edges = {
        "zero views": ({"views_snapshot1": 0, "likes_snapshot1": 0}, "meta_log_views_snapshot1"),
        "1e9 subscribers": ({"channel": {**base["channel"], "subscribers": 10**9}}, "meta_log_channel_subscribers"),
        "age 0.01 h": ({"video_age_hours_at_snapshot1": 0.01}, "meta_log_age_hours"),
        "age 5000 h": ({"video_age_hours_at_snapshot1": 5000.0}, "meta_age_hours"),
    }
    for what, (change, feature) in edges.items():
        ood = _check(world, world.normal, {**base, **change})
        assert feature in ood, (what, ood)
