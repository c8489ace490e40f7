"""Video-path and artifacts-folder requests through a real Triton (session fixture) and the shared extractor:
the service runs the same extraction and features code as training, and the three request modes agree."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from inference.config import parse_config
from inference.server import ServerThread
from registry import ops
from tests.conftest import RegistryStore
from testsupport.jsonschema_lite import validate
from testsupport.videos import write_sidecar, write_video

pytestmark = [pytest.mark.triton, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def video_server(triton_server, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("video-svc")
    store = RegistryStore(tmp / "mlflow")
    for t in ("v2", "v1", "baseline"):
        assert ops.promote(store.client, store.cfg, t, store.log(t).version.version, "video tests").ok
    raw = yaml.safe_load((ROOT / "conf" / "inference.yaml").read_text())
    raw.update(registry=str(store.config_path), request_modes=["features", "artifacts", "video"], shadow=None,
               triton={"url": triton_server.grpc_url, "timeout_s": 2.0},
               extraction={"profile": "fast", "artifacts_dir": str(tmp / "serving-artifacts")},
               allowed_roots=[str(tmp)])
    videos = tmp / "videos"
    videos.mkdir()
    clip = write_video(videos / "clip.mp4", seconds=2.0, cut_at=1.0)
    write_sidecar(clip, "clip1")
    with ServerThread(parse_config(raw)) as srv, httpx.Client(base_url=srv.url, timeout=300) as http:
        srv.http, srv.clip, srv.tmp = http, clip, tmp
        yield srv


def test_ready_with_triton_reachable(video_server) -> None:
    r = video_server.http.get("/health/ready")
    assert r.status_code == 200, r.text
    assert r.json()["triton"]["needed"] and r.json()["triton"]["reachable"]


def test_video_path_prediction_matches_artifacts_and_features_modes(video_server) -> None:
    http, clip = video_server.http, video_server.clip
    meta = json.loads(clip.with_suffix(".json").read_text())
    r = http.post("/predict", json={"video_path": str(clip), "metadata": meta})
    assert r.status_code == 200, r.text
    out = r.json()
    assert validate(out, http.get("/schema").json()["response"]) == []
    assert out["source"]["mode"] == "video" and out["source"]["video_id"] == "clip1"
    assert {"extraction", "features", "model", "total"} <= set(out["timings_ms"])
    run_dir = Path(out["source"]["run_dir"])
    assert (run_dir / "manifest.json").exists()
    # the same run folder through the artifacts mode -> the same prediction
    via_artifacts = http.post("/predict", json={"artifacts_dir": str(run_dir)}).json()
    assert via_artifacts["prediction"]["values"] == out["prediction"]["values"]
    # and its feature vector (features library, the training path) through the features mode -> the same again
    from features import load_spec
    from features.build import build_vector

    vec = build_vector(run_dir, load_spec()).as_dict()
    body = {"features": {k: (None if v != v else v) for k, v in vec.items()}}  # NaN -> null
    via_features = http.post("/predict", json=body).json()
    assert via_features["prediction"]["values"] == out["prediction"]["values"]


def test_video_requests_with_bad_inputs_are_422(video_server) -> None:
    http, clip = video_server.http, video_server.clip
    r = http.post("/predict", json={"video_path": str(clip), "metadata": {"video_id": "x"}})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"metadata.platform_id", "metadata.published_at"}
    r = http.post("/predict", json={"video_path": str(video_server.tmp / "nonexistent.mp4"), "metadata": json.loads(
        clip.with_suffix(".json").read_text())})
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "not_found"
    r = http.post("/predict", json={"video_path": "/nonexistent.mp4", "metadata": json.loads(
        clip.with_suffix(".json").read_text())})
    assert r.status_code == 422 and r.json()["error_code"] == "path_not_allowed"
    broken = video_server.tmp / "videos" / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    meta = {**json.loads(clip.with_suffix(".json").read_text()), "video_id": "broken"}
    r = http.post("/predict", json={"video_path": str(broken), "metadata": meta})
    assert r.status_code == 422 and r.json()["error_code"] == "video_decode_failed", r.text
    # a critical metadata field absent -> the features library's missing_critical_feature, named
    meta = {**json.loads(clip.with_suffix(".json").read_text()), "video_id": "nocrit"}
    meta.pop("views_snapshot1")
    r = http.post("/predict", json={"video_path": str(clip), "metadata": meta})
    assert r.status_code == 422 and r.json()["error_code"] == "missing_critical_feature", r.text
    assert "features.meta_log_views_snapshot1" in {e["field"] for e in r.json()["errors"]}


def test_run_demo_promotes_serves_and_predicts_a_video(triton_server, tmp_path: Path) -> None:
    """The main job's serving step: newest versions promoted through the gates, the service started on the
    pinned versions, one video predicted by path (the demo function the README's main job calls)."""
    from inference.demo import run_demo
    from testsupport.registry import default_metrics

    store = RegistryStore(tmp_path / "mlflow")
    versions = {t: str(store.log(t).version.version) for t in ("v2", "v1")}
    # a baseline whose intervals are off nominal: its first promotion is refused, so it has no stable version
    store.log("baseline", metrics=default_metrics(coverage_90=0.80))
    raw = yaml.safe_load((ROOT / "conf" / "inference.yaml").read_text())
    raw.update(registry=str(store.config_path), triton={"url": triton_server.grpc_url},
               extraction={"profile": "fast", "artifacts_dir": str(tmp_path / "serving-artifacts")})
    cfg_path = tmp_path / "inference.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    clip = write_video(tmp_path / "demo.mp4", seconds=1.5)
    write_sidecar(clip, "demo1")
    result = run_demo(clip, config_path=cfg_path, echo=False)
    assert result["status"] == 200, result["response"]
    assert {t: r["stable"] for t, r in result["promotion"].items()} == {**versions, "baseline": None}
    assert result["promotion"]["baseline"]["promoted"] is False
    assert result["ready"]["ready"] and set(result["ready"]["models"]) == {"v2", "v1"}  # baseline not served
    model = result["response"]["prediction"]["model"]
    assert (model["type"], model["version"], model["alias"]) == ("v2", versions["v2"], "stable")
    assert result["response"]["source"]["video_id"] == "demo1"
