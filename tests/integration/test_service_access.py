"""Who may do what on the service, over real HTTP (real uvicorn, real MLflow store, real files and symlinks).

Allowed roots (traversal with ``..``, symlinks out of a root, percent-encoded paths, existence never revealed),
admin bearer auth (401/403/200), the refusal to listen on a non-loopback host without auth, and request limits
(body size, metadata text length, feature bound, video size/duration/frames/dimensions). The video checks run on
the container header before the extractor would reach Triton, so no Triton is needed here: the config names a
closed port, and a check that let a video through would fail with triton_unavailable instead of its own code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from inference.config import parse_config
from inference.server import ServerThread, free_port
from registry import ops
from tests.conftest import RegistryStore
from testsupport.artifacts import fabricate_one
from testsupport.videos import write_declared_long, write_one_by_one, write_sidecar, write_video

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-admin-token"


def _raw_cfg(store: RegistryStore, root: Path, **overrides: Any) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "conf" / "inference.yaml").read_text())
    token = store.root / "admin.token"
    token.write_text(TOKEN)
    raw.update(registry=str(store.config_path), request_modes=["features", "artifacts", "video"], shadow=None,
               models={"baseline": {"type": "baseline", "alias": "stable"}}, primary="baseline", fallback=[],
               triton={"url": f"127.0.0.1:{free_port()}", "timeout_s": 0.3}, allowed_roots=[str(root)],
               extraction={"profile": "fast", "artifacts_dir": str(root / "serving")},
               admin={"token_env": "TRENDFLOW_TEST_UNSET_TOKEN", "token_file": str(token)})
    raw.update(overrides)
    return raw


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("access")
    store = RegistryStore(tmp / "mlflow")
    assert ops.promote(store.client, store.cfg, "baseline", store.log("baseline").version.version, "access").ok
    root, outside = tmp / "root", tmp / "outside"
    root.mkdir()
    outside.mkdir()
    fabricate_one(root / "artifacts", seed=0, i=1)
    fabricate_one(outside / "artifacts", seed=0, i=2)
    run_in = next((root / "artifacts").rglob("manifest.json")).parent
    run_out = next((outside / "artifacts").rglob("manifest.json")).parent
    (root / "escape").symlink_to(run_out, target_is_directory=True)  # a symlink inside the root pointing out
    (outside / "secret.mp4").write_bytes(b"not a video")
    with ServerThread(parse_config(_raw_cfg(store, root))) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        srv.http, srv.root, srv.outside, srv.store = http, root, outside, store
        srv.run_in, srv.run_out = run_in, run_out
        yield srv


def _post(world, body: dict[str, Any]) -> httpx.Response:
    return world.http.post("/predict", json=body)


def _meta(**extra: Any) -> dict[str, Any]:
    return {"platform_id": "yt", "video_id": "v1", "published_at": "2026-10-01T12:00:00Z",
            "video_age_hours_at_snapshot1": 12.0, "views_snapshot1": 100, **extra}


def test_a_run_folder_under_the_root_is_served(world) -> None:
    r = _post(world, {"artifacts_dir": str(world.run_in)})
    assert r.status_code == 200, r.text
    assert r.json()["source"]["mode"] == "artifacts"


def test_paths_outside_the_roots_are_refused_without_revealing_existence(world) -> None:
    root, outside = world.root, world.outside
    refused = {
        "absolute outside": str(world.run_out),
        "traversal": f"{root}/../outside/{world.run_out.relative_to(outside)}",
        "symlink out of the root": str(root / "escape"),
        "percent-encoded traversal": f"{root}/%2e%2e/outside/{world.run_out.relative_to(outside)}",
        "existing system file": "/etc/passwd",
        "missing system file": "/etc/nonexistent-trendflow",
        "relative": "artifacts",
        "empty": "",
    }
    bodies = set()
    for why, path in refused.items():
        for field, extra in (("artifacts_dir", {}), ("video_path", {"metadata": _meta()})):
            r = _post(world, {field: path, **extra, "request_id": "same"})
            assert r.status_code == 422, (why, field, r.text)
            out = r.json()
            assert out["error_code"] == "path_not_allowed", (why, field, out)
            assert out["errors"] == [{"field": field, "code": "path_not_allowed",
                                      "message": "paths must lie under the server's allowed roots"}]
            bodies.add((field, r.content))
    # the same bytes for every refused path of a field: existing and missing files are indistinguishable
    assert len(bodies) == 2


def test_inside_the_root_a_missing_file_is_a_404(world) -> None:
    r = _post(world, {"artifacts_dir": str(world.root / "artifacts" / "nope")})
    assert r.status_code == 404 and r.json()["error_code"] == "not_a_run_folder"
    r = _post(world, {"video_path": str(world.root / "nope.mp4"), "metadata": _meta()})
    assert r.status_code == 404 and r.json()["error_code"] == "not_found"


def test_admin_reload_needs_the_bearer_token(world) -> None:
    assert world.http.post("/admin/reload").status_code == 401
    r = world.http.post("/admin/reload", headers={"authorization": "Bearer wrong-token"})
    assert r.status_code == 403 and r.json()["error_code"] == "forbidden"
    assert world.http.post("/admin/reload", headers={"authorization": "Basic " + TOKEN}).status_code == 401
    r = world.http.post("/admin/reload", headers={"authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.json()["models"]["baseline"]["loaded"]


def test_admin_is_closed_when_no_token_is_configured(world, tmp_path: Path) -> None:
    raw = _raw_cfg(world.store, world.root, admin={"token_env": "TRENDFLOW_TEST_UNSET_TOKEN"})
    with ServerThread(parse_config(raw)) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        r = http.post("/admin/reload", headers={"authorization": "Bearer anything"})
        assert r.status_code == 401 and "not configured" in r.json()["message"]


def test_serve_refuses_a_public_host_without_admin_auth(world, tmp_path: Path) -> None:
    cfg = tmp_path / "inference.yaml"
    cfg.write_text(yaml.safe_dump(_raw_cfg(world.store, world.root, admin={"token_env": "TRENDFLOW_TEST_UNSET"})))
    p = subprocess.run([sys.executable, "-m", "inference", "serve", "--config", str(cfg), "--host", "0.0.0.0",
                        "--port", str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "error: admin_auth_required: refusing to listen on 0.0.0.0" in p.stderr
    assert "Traceback" not in p.stderr


def test_body_and_text_limits(world) -> None:
    huge = json.dumps({"video_path": str(world.root / "x.mp4"), "metadata": _meta(title="t" * 10_000_000)})
    r = world.http.post("/predict", content=huge.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error_code"] == "body_too_large"
    clip = write_video(world.root / "ok.mp4", seconds=0.5)
    r = _post(world, {"video_path": str(clip), "metadata": _meta(title="t" * 6000, description="fine")})
    assert r.status_code == 422 and r.json()["error_code"] == "field_too_long"
    assert r.json()["errors"][0]["field"] == "metadata.title"
    r = _post(world, {"video_path": str(clip), "metadata": _meta(title=b"\xff\xfe caf\xe9".decode("latin-1"))})
    assert r.json()["error_code"] == "triton_unavailable"  # a non-UTF-8-born title passes the limits; no Triton here
    row = {c: 0.5 for c in world.store.columns if not c.startswith("mask__")}
    row[next(iter(row))] = 1e300
    r = _post(world, {"features": row})
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "out_of_range"
    r = world.http.post("/predict", content=b'{"features": {}}', headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["error_code"] == "unsupported_media_type"


@pytest.mark.parametrize("kind, status, code", [
    ("zero_bytes", 422, "video_decode_failed"),
    ("one_by_one", 422, "video_too_small"),
    ("two_hours", 422, "video_too_long"),
    ("not_a_video", 422, "video_decode_failed"),
    ("over_size", 413, "video_too_large"),
])
def test_video_limits_answer_fast_with_a_code(world, tmp_path: Path, kind: str, status: int, code: str) -> None:
    path = world.root / f"{kind}.mp4"
    if kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "one_by_one":
        write_one_by_one(path)
    elif kind == "two_hours":
        write_declared_long(path, 7200)
    elif kind == "not_a_video":
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    else:
        write_video(path, seconds=0.5)
    write_sidecar(path, kind)
    raw = _raw_cfg(world.store, world.root, limits={"max_video_bytes": 2048} if kind == "over_size" else {})
    with ServerThread(parse_config(raw)) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        r = http.post("/predict", json={"video_path": str(path), "metadata": json.loads(
            path.with_suffix(".json").read_text())})
    assert r.status_code == status, r.text
    assert r.json()["error_code"] == code
    assert r.elapsed.total_seconds() < 10  # refused from the header: no worker held for minutes
