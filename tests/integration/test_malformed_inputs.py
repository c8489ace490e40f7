"""Malformed files fed to every CLI and to the service: each answers with one line ``error: <code>: ...`` (or a
per-video error code in the manifest), never a traceback, never a half-written output.

``python -m features build``: truncated NPZ, wrong dtypes, an artifact of another schema version, a manifest whose
sidecar metadata has the wrong types, a non-UTF-8 manifest, a manifest that is not JSON. ``python -m registry``: a
corrupted audit log, a non-UTF-8 / unparsable config, a bad time. The service's artifacts mode: a truncated NPZ.
``python -m extraction run`` (real Triton): 0-byte mp4, 1x1-pixel mp4, a 2-hour declared duration (each recorded
per video while the others complete), and sidecars that are not UTF-8, have the wrong types or a 10 MB title
(refused before any work, nothing written).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from testsupport.artifacts import fabricate_one
from testsupport.videos import write_declared_long, write_one_by_one, write_sidecar, write_video

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _one_line_error(p: subprocess.CompletedProcess, code: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stdout[-500:], p.stderr[-2000:])
    assert "Traceback" not in p.stderr, p.stderr[-2000:]
    assert f"error: {code}: " in p.stderr, p.stderr[-1000:]


def _main(module: str, capsys: pytest.CaptureFixture, *argv: str) -> subprocess.CompletedProcess:
    """The CLI's ``main`` in this process (no interpreter start per case); an exception escaping it fails here."""
    import importlib

    rc = importlib.import_module(f"{module}.__main__").main(list(argv))
    out = capsys.readouterr()
    return subprocess.CompletedProcess([module, *argv], rc, out.out, out.err)


def _truncate(rd: Path) -> None:
    f = rd / "visual.npz"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _wrong_dtypes(rd: Path) -> None:
    f = rd / "audio.npz"
    with np.load(f) as z:
        arrays = {k: (z[k].astype("U8") if k != "meta" and z[k].dtype.kind == "f" else z[k]) for k in z.files}
    np.savez(f, **arrays)


def _other_schema_version(rd: Path) -> None:
    f = rd / "audio.npz"
    with np.load(f) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta["schema_version"] = "99.0.0"
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(f, **arrays)


def _sidecar_types(rd: Path) -> None:
    m = json.loads((rd / "manifest.json").read_text())
    m["metadata"].update(views_snapshot1="lots", channel="not an object")
    (rd / "manifest.json").write_text(json.dumps(m))


def _not_utf8(rd: Path) -> None:
    raw = (rd / "manifest.json").read_bytes()
    (rd / "manifest.json").write_bytes(raw.replace(b'"platform_id": "', b'"platform_id": "\xff\xfe', 1))


def _not_json(rd: Path) -> None:
    (rd / "manifest.json").write_text('{"run_id": "r0001", "components": {')


@pytest.mark.parametrize("mutate, code", [
    (_truncate, "artifact_corrupt"), (_wrong_dtypes, "schema_invalid"), (_other_schema_version, "schema_invalid"),
    (_sidecar_types, "manifest_invalid"), (_not_utf8, "manifest_invalid"), (_not_json, "manifest_invalid"),
], ids=["truncated-npz", "wrong-dtypes", "other-schema-version", "sidecar-types", "non-utf8", "not-json"])
def test_features_build_refuses_malformed_runs(tmp_path: Path, capsys, mutate, code: str) -> None:
    art = tmp_path / "artifacts"
    labels = [fabricate_one(art, seed=0, i=i, scenarios=False) for i in range(3)]
    pd.DataFrame(labels).to_csv(tmp_path / "labels.csv", index=False)
    mutate(sorted(p.parent for p in art.rglob("manifest.json"))[0])
    out = tmp_path / "dataset.parquet"
    out.write_bytes(b"the previous table")  # a failed build leaves the previous output untouched
    p = _main("features", capsys, "build", "--artifacts", str(art), "--labels", str(tmp_path / "labels.csv"),
              "--out", str(out))
    _one_line_error(p, code)
    assert out.read_bytes() == b"the previous table"
    assert not list(tmp_path.glob(".dataset.parquet.*"))  # no temp file left behind


def test_registry_cli_refuses_malformed_files(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "registry.yaml"
    cfg.write_text(f"tracking_uri: sqlite:///{tmp_path / 'm.db'}\nartifact_root: {tmp_path / 'art'}\n"
                   f"audit_log: {tmp_path / 'audit.jsonl'}\n")
    (tmp_path / "audit.jsonl").write_text('{"action": "promote"}\n{"action": "prom')  # truncated last line
    _one_line_error(_main("registry", capsys, "--config", str(cfg), "verify-audit"), "audit_corrupt")
    _one_line_error(_main("registry", capsys, "--config", str(cfg), "history"), "audit_corrupt")
    _one_line_error(_main("registry", capsys, "--config", str(cfg), "stable-at", "--type", "v2", "yesterday"),
                    "invalid_time")
    _one_line_error(_main("registry", capsys, "--config", str(cfg), "promote", "--type", "v9", "--version", "1",
                          "--reason", "a typo"), "unknown_model_type")
    bad = tmp_path / "bad.yaml"
    bad.write_text("gates: [unclosed\n")
    p = _main("registry", capsys, "--config", str(bad), "list")
    _one_line_error(p, "config_invalid")
    assert len(p.stderr.strip().splitlines()) == 1
    bad.write_bytes(b"\xff\xfe\x00gates")
    _one_line_error(_main("registry", capsys, "--config", str(bad), "list"), "config_invalid")


def test_service_answers_a_truncated_npz_with_a_code(tmp_path: Path) -> None:
    import httpx
    import yaml

    from inference.config import parse_config
    from inference.server import ServerThread
    from registry import ops
    from tests.conftest import RegistryStore

    store = RegistryStore(tmp_path / "mlflow")
    assert ops.promote(store.client, store.cfg, "baseline", store.log("baseline").version.version, "bad npz").ok
    fabricate_one(tmp_path / "root", seed=0, i=4, scenarios=False)
    rd = next((tmp_path / "root").rglob("manifest.json")).parent
    _truncate(rd)
    raw = yaml.safe_load((ROOT / "conf" / "inference.yaml").read_text())
    raw.update(registry=str(store.config_path), request_modes=["features", "artifacts"], shadow=None,
               models={"baseline": {"type": "baseline", "alias": "stable"}}, primary="baseline", fallback=[],
               allowed_roots=[str(tmp_path / "root")])
    with ServerThread(parse_config(raw)) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        r = http.post("/predict", json={"artifacts_dir": str(rd)})
        assert r.status_code == 422 and r.json()["error_code"] == "artifact_corrupt", r.text
        _not_json(rd)
        r = http.post("/predict", json={"artifacts_dir": str(rd)})
        assert r.status_code == 422 and r.json()["error_code"] == "manifest_invalid", r.text


@pytest.mark.triton
@pytest.mark.slow
def test_extraction_run_records_bad_videos_and_refuses_bad_sidecars(triton_server, tmp_path: Path) -> None:
    videos, out = tmp_path / "videos", tmp_path / "artifacts"
    videos.mkdir()
    write_video(videos / "normal.mp4", seconds=1.0)
    (videos / "zero.mp4").write_bytes(b"")
    write_one_by_one(videos / "tiny.mp4")
    write_declared_long(videos / "long.mp4", 7200)
    for mp4 in videos.glob("*.mp4"):
        write_sidecar(mp4, mp4.stem)
    p = _run("extraction", "run", "--videos", str(videos), "--out", str(out), "--triton-url", triton_server.grpc_url,
             "--no-plan", "--no-progress", timeout=600)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    codes = {}
    for man in out.rglob("manifest.json"):
        m = json.loads(man.read_text())
        codes[m["video_id"]] = (m["status"], m.get("error_code"))
    assert codes["normal"][0] == "ok"
    assert codes["zero"] == ("error", "video_decode_failed")
    assert codes["tiny"] == ("error", "video_too_small")
    assert codes["long"] == ("error", "video_too_long")

    for name, write in {
        "not-utf8": lambda side: side.write_bytes(b'{"platform_id": "yt", "video_id": "\xff\xfe"}'),
        "wrong-types": lambda side: side.write_text(json.dumps({**json.loads(side.read_text()),
                                                                "views_snapshot1": "many", "channel": [1]})),
        "10mb-title": lambda side: side.write_text(json.dumps({**json.loads(side.read_text()),
                                                               "title": "t" * 10_000_000})),
    }.items():
        folder, dst = tmp_path / name, tmp_path / f"{name}-out"
        folder.mkdir()
        write_video(folder / "v.mp4", seconds=0.5)
        write(write_sidecar(folder / "v.mp4", "v"))
        p = _run("extraction", "run", "--videos", str(folder), "--out", str(dst), "--triton-url",
                 triton_server.grpc_url, "--no-plan", "--no-progress")
        _one_line_error(p, "metadata_invalid")
        assert "v.json" in p.stderr
        assert not dst.exists() or not any(dst.rglob("*.npz")), name  # refused before any work
