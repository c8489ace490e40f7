"""The retention GC on real extraction output (the session's real Triton) and on a real MLflow store.

Protects: after three runs with a changed model version the GC keeps exactly the expected runs and the next
``extraction run`` still hits the cache for what was kept; a GC concurrent with a run (a separate process) deletes
nothing the run uses; a GC killed with SIGKILL mid-sweep leaves a store the next GC and the next run accept;
``registry gc`` keeps every version a gate or the service needs, and the service still starts.
Ages are fabricated by rewriting manifests' ``finished_at`` (the only clock the GC reads for complete runs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from common.clock import now_iso
from extraction.artifacts import list_runs, read_artifact
from extraction.config import ModelRef, load_profile
from extraction.provider import TritonModelProvider
from extraction.runner import ExtractionRun, discover_videos, extract
from retention.artifacts import gc_store
from retention.policy import load_policy
from testsupport.stores import FabricatedStore, iso
from testsupport.videos import write_sidecar, write_video

pytestmark = pytest.mark.triton
REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_DISABLE_TELEMETRY": "true"}
SWAP = {"visual_embed_fast_onnx": ModelRef(triton_model="visual_embed_quality_onnx", version="1")}


def _run(url, videos, out, overrides=None):
    cfg = load_profile("fast", overrides=overrides)
    return extract(ExtractionRun(cfg=cfg, out_root=out, provider=TritonModelProvider(url), progress=False),
                   discover_videos(videos))


def _videos(folder: Path, names: list[str], seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        write_sidecar(write_video(folder / f"{n}.mp4", seconds=1.0, seed=seed + i), n)
    return folder


def _policy_file(tmp: Path, **kw) -> Path:
    raw = yaml.safe_load((REPO / "conf" / "retention.yaml").read_text())
    # an observability store that does not exist: records never reach the repository's own store
    raw.update(record=str(tmp / "gc.jsonl"), record_store_url=f"sqlite:///{tmp / 'absent' / 'obs.db'}", **kw)
    p = tmp / "retention.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def _no_registry(tmp: Path) -> Path:
    p = tmp / "registry.yaml"
    p.write_text(yaml.safe_dump({"tracking_uri": f"sqlite:///{tmp / 'none' / 'mlflow.db'}"}))
    return p


def _gc_cli(store: Path, tmp: Path, policy: Path, apply: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "extraction", "gc", "--artifacts", str(store), "--policy", str(policy),
           "--registry-config", str(_no_registry(tmp)), "--json"] + (["--apply"] if apply else [])
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300)


def _age(store: Path, run_id: str, days: float) -> None:
    """Make every manifest of ``run_id`` ``days`` old (the GC's clock for complete runs)."""
    stamp = iso(time.time() - days * 86400)
    for man in store.glob(f"*/*/{run_id}/manifest.json"):
        m = json.loads(man.read_text())
        m["started_at"] = m["finished_at"] = stamp
        man.write_text(json.dumps(m))


def _index_consistent(store: Path) -> None:
    for idx in store.glob("*/*/cache/*.json"):
        assert (store / json.loads(idx.read_text())["artifact"]).exists(), f"{idx} points at a missing artifact"


def test_gc_after_three_runs_with_a_changed_model_keeps_the_expected_runs(triton_server, tmp_path):
    url, store = triton_server.grpc_url, tmp_path / "store"
    videos = _videos(tmp_path / "v", ["ga", "gb"])
    r1, r2 = _run(url, videos, store), _run(url, videos, store)
    r3 = _run(url, videos, store, overrides=SWAP)  # a changed model version: a new retention key
    assert r2.computed == 0 and r3.computed == 2 * 2, "visual + video_pacing recomputed per video"
    for i, r in enumerate((r1, r2, r3)):
        _age(store, r.run_id, 3 - i)
    policy = _policy_file(tmp_path, keep_previous=0)
    dry = _gc_cli(store, tmp_path, policy, apply=False)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert {(Path(i["what"]).name, i["rule"]) for i in plan["items"] if i["kind"] == "run"} == {
        (r1.run_id, "superseded")}, "key 1 keeps its last success (run 2), key 2 its only run (run 3)"
    assert len(list_runs(store)) == 6, "the dry run deleted nothing"
    done = _gc_cli(store, tmp_path, policy)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in list_runs(store)} == {r2.run_id, r3.run_id}
    _index_consistent(store)
    rec = [json.loads(line) for line in (tmp_path / "gc.jsonl").read_text().splitlines()]
    assert [r["applied"] for r in rec] == [False, True] and rec[1]["by_kind"]["run"]["count"] == 2
    again = _run(url, videos, store)
    assert again.computed == 0 and again.cache_hits == r1.computed, "every artifact run 2 kept is a cache hit"
    again_swapped = _run(url, videos, store, overrides=SWAP)
    assert again_swapped.computed == 0


def test_gc_concurrent_with_a_run_deletes_nothing_the_run_uses(triton_server, tmp_path):
    url, store = triton_server.grpc_url, tmp_path / "store"
    cached = _videos(tmp_path / "v", ["zc0", "zc1"], seed=20)
    first = _run(url, cached, store)
    _age(store, first.run_id, 100)  # past the cap: only a lease can keep it now
    _videos(cached, ["a0", "a1", "a2"], seed=30)  # new videos first: the run computes, then links the cached ones
    policy = load_policy(None, record=str(tmp_path / "gc.jsonl"))
    cmd = [sys.executable, "-m", "extraction", "run", "--videos", str(cached), "--out", str(store),
           "--triton-url", url, "--no-progress", "--no-plan"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(store.glob(".leases/*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    sweeps = held = 0
    while proc.poll() is None:
        report = gc_store(store, policy, apply=True)
        sweeps += 1
        held += report.kept.get("leased", 0)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert sweeps >= 1 and held >= 1, f"the GC ran {sweeps} times while the run held its lease"
    assert summary["ok"] == 5 and summary["computed"] == 3 * 9, "nothing cached was lost mid-run"
    assert summary["cache_hits"] == 2 * 9
    for npz in store.glob(f"*/*/{summary['run_id']}/*.npz"):
        read_artifact(npz)
    _index_consistent(store)
    assert not list(store.glob(".leases/*.json")), "the run removed its lease"
    gc_store(store, policy, apply=True)  # the lease is gone: the old run goes, the new one is young
    assert {p.name for p in list_runs(store)} == {summary["run_id"]}
    _index_consistent(store)
    assert _run(url, cached, store).computed == 0


def test_gc_killed_mid_sweep_leaves_a_store_the_next_gc_and_run_accept(triton_server, tmp_path):
    url, store = triton_server.grpc_url, tmp_path / "store"
    videos = _videos(tmp_path / "v", ["k0"], seed=40)
    real = _run(url, videos, store)
    fab = FabricatedStore(store, now=time.time(), size=64)
    for i in range(1500):  # old bulk so the sweep takes long enough to be killed in the middle
        fab.add_run(f"bulk{i % 50}", f"old{i}", 100, platform="fab")
    policy = _policy_file(tmp_path)
    cmd = [sys.executable, "-m", "extraction", "gc", "--artifacts", str(store), "--policy", str(policy),
           "--registry-config", str(_no_registry(tmp_path)), "--apply"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(store.glob(".trash/*/fab")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "killed before it finished"
    assert list(store.glob(".trash/*")), "killed mid-sweep: trash left behind"
    _index_consistent(store)
    dry = gc_store(store, load_policy(policy))
    assert any(i.kind == "trash" for i in dry.items), "the next GC sees the interrupted one's trash"
    gc_store(store, load_policy(policy), apply=True)
    assert not list(store.glob(".trash/*")) and not list(store.glob("fab/*/old*"))
    assert [p.name for p in list_runs(store)] == [real.run_id]
    _index_consistent(store)
    assert _run(url, videos, store).computed == 0, "the real run's artifacts survived and are reused"


def test_registry_gc_keeps_what_gates_and_service_need(registry_store, tmp_path):
    import mlflow

    from inference.server import ServerThread
    from registry import ops
    from registry.store import ensure_experiment
    from retention.mlflow_gc import gc_registry
    from tests.integration.test_inference_service import inference_cfg

    s = registry_store
    vs = [s.log("baseline").version for _ in range(3)]
    assert ops.promote(s.client, s.cfg, "baseline", vs[1].version, "setup").ok
    assert ops.promote(s.client, s.cfg, "baseline", vs[2].version, "setup").ok  # stable = 3, previous = 2
    exp = ensure_experiment(s.client, "scratch", s.cfg)
    with mlflow.start_run(experiment_id=exp) as stray:  # an experiment nobody registered
        mlflow.log_metric("x", 1.0)
        mlflow.log_text("scratch", "notes.txt")
    stray_dir = Path(stray.info.artifact_uri.removeprefix("file://"))
    assert stray_dir.exists()
    policy = load_policy(None, cap_days=1e-9, record=str(tmp_path / "gc.jsonl"))  # everything is "old"
    dry = gc_registry(policy, s.cfg)
    assert [i.what.split()[0] for i in dry.items if i.kind == "mlflow_run"] == [stray.info.run_id]
    assert [i.what for i in dry.items if i.kind == "model_version"] == [f"trendflow-baseline v{vs[0].version}"]
    assert s.client.get_run(stray.info.run_id).info.lifecycle_stage == "active", "dry run"
    cli = subprocess.run([sys.executable, "-m", "registry", "--config", str(s.config_path), "gc", "--json",
                          "--policy", str(_policy_file(tmp_path, cap_days=1e-9))],
                         capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert {i["kind"]: i["rule"] for i in json.loads(cli.stdout)["items"]} == {"mlflow_run": "past_cap",
                                                                             "model_version": "archive"}
    done = gc_registry(policy, s.cfg, apply=True)
    assert "mlflow gc removed 1 runs" in done.stats["mlflow_gc"]
    with pytest.raises(mlflow.exceptions.MlflowException):
        s.client.get_run(stray.info.run_id)  # permanently gone, artifacts included
    assert not stray_dir.exists()
    tags = s.client.get_model_version("trendflow-baseline", vs[0].version).tags
    assert tags["archived"] == "true" and tags["archived_at"] <= now_iso()
    for v in vs:  # every version's run and model survive (archived ones keep their artifacts)
        assert s.client.get_run(v.run_id).info.lifecycle_stage == "active"
    assert gc_registry(policy, s.cfg).items == [], "a second GC finds nothing"
    s.reconnect()
    only_baseline = {"models": {"baseline": {"type": "baseline", "alias": "stable"}}, "primary": "baseline",
                     "fallback": [], "shadow": None}
    with ServerThread(inference_cfg(s, **only_baseline)) as srv:
        import httpx

        ready = httpx.get(f"{srv.url}/health/ready", timeout=60).json()
        assert ready["ready"], ready
        assert ready["models"]["baseline"]["version"] == str(vs[2].version), "the service serves stable"
    assert ops.rollback(s.client, s.cfg, "baseline", "gate check after gc").ok, "previous is intact"


def test_registered_versions_pin_their_training_runs_past_the_cap(registry_store, tmp_path):
    from retention.pins import registry_pins
    from training.data import EXTRACTION_RUNS_ARTIFACT

    s = registry_store
    recorded, bare = s.log("baseline").version, s.log("baseline").version
    s.client.log_text(recorded.run_id, json.dumps([["yt", "x", "r-old"]]), EXTRACTION_RUNS_ARTIFACT)
    policy = load_policy(None, record=str(tmp_path / "gc.jsonl"))
    pins = registry_pins(policy, s.config_path)
    assert pins.runs == {("yt", "x", "r-old"): f"training data of trendflow-baseline v{recorded.version}"}
    assert pins.unrecorded == [f"trendflow-baseline v{bare.version}"]
    s.client.set_model_version_tag("trendflow-baseline", recorded.version, "archived", "true")
    assert registry_pins(policy, s.config_path).runs == {}, "an archived version pins nothing..."
    s.client.set_registered_model_alias("trendflow-baseline", "stable", recorded.version)
    assert "(alias stable)" in registry_pins(policy, s.config_path).runs[("yt", "x", "r-old")], "...unless aliased"
    fab = FabricatedStore(tmp_path / "store", now=time.time())
    fab.add_run("x", "r-old", 100)
    fab.add_run("x", "r-other", 100, model_sig="other")
    cli = subprocess.run([sys.executable, "-m", "extraction", "gc", "--artifacts", str(fab.root), "--policy",
                          str(_policy_file(tmp_path)), "--registry-config", str(s.config_path)],
                         capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert f"kept past the cap: run {fab.root}/yt/x/r-old  [pinned: training data of trendflow-baseline " \
           f"v{recorded.version} (alias stable)]" in cli.stdout
    assert f"would delete run {fab.root}/yt/x/r-other  [past_cap:" in cli.stdout
    assert f"trendflow-baseline v{bare.version}" in cli.stdout, "the unrecorded version is warned about"


def test_training_records_its_extraction_runs_and_the_registry_pins_them(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from retention.pins import registry_pins
    from testsupport.training import fast_overrides, tiny_table
    from training.config import compose
    from training.train import run

    table = tiny_table(tmp_path / "t.parquet", n=300, seed=1)
    t = pq.read_table(table)  # a features-built table carries run_id per row; the synthetic one has none
    t = t.append_column("run_id", pa.array([f"r{i % 2}" for i in range(t.num_rows)]))
    pq.write_table(t, table)
    rows = t.select(["platform_id", "video_id", "run_id"]).to_pylist()
    _, obj = run(compose(fast_overrides("catboost", table, tmp_path / "mlflow")))
    reg = tmp_path / "registry.yaml"
    reg.write_text(yaml.safe_dump({"tracking_uri": f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"}))
    pins = registry_pins(load_policy(None), reg)
    assert set(pins.runs) == {(r["platform_id"], r["video_id"], r["run_id"]) for r in rows}
    assert all(why == f"training data of trendflow-baseline v{obj['model_version']}" for why in pins.runs.values())


def test_registry_gc_moves_archived_versions_artifacts_verifiably(registry_store, tmp_path):
    import mlflow

    from registry import ops
    from retention.archive import tree_hashes, verify
    from retention.mlflow_gc import gc_registry

    s = registry_store
    vs = [s.log("baseline").version for _ in range(3)]
    assert ops.promote(s.client, s.cfg, "baseline", vs[1].version, "setup").ok
    assert ops.promote(s.client, s.cfg, "baseline", vs[2].version, "setup").ok  # stable = 3, previous = 2
    name, old = "trendflow-baseline", vs[0].version
    src = Path(s.client.get_model_version_download_uri(name, old).removeprefix("file://"))
    before = tree_hashes(src)
    loc = tmp_path / "archive"
    policy = load_policy(None, cap_days=1e-9, record=str(tmp_path / "gc.jsonl"),
                         mlflow={"archive": {"mode": "move", "location": str(loc)}})
    dry = gc_registry(policy, s.cfg)
    assert [(i.what, i.rule) for i in dry.items if i.kind == "model_artifacts"] == [(f"{name} v{old}", "archive_move")]
    assert tree_hashes(src) == before, "dry run"
    loc.write_text("a file where the archive folder should be")  # a real fault: the copy cannot start
    failed = gc_registry(policy, s.cfg, apply=True)
    assert any("not moved, source kept" in e for e in failed.errors) and tree_hashes(src) == before
    assert "archived_location" not in s.client.get_model_version(name, old).tags
    loc.unlink()
    dst = loc / name / f"v{old}"
    partial = dst.with_name(f".{dst.name}.killed.partial")  # what a kill -9 during the copy leaves
    partial.mkdir(parents=True)
    (partial / "MLmodel").write_text("half")
    gc_registry(policy, s.cfg, apply=True)
    tags = s.client.get_model_version(name, old).tags
    assert not src.exists() and not partial.exists()
    assert tags["archived_location"] == str(dst) and tags["archived_files"] == str(len(before))
    assert verify(dst, tags["archived_sha256"]) is not None and tree_hashes(dst) == before, "every file, same bytes"
    assert tags["archived_from"].endswith(str(src))
    # a crash after the record, before the source's removal: the next GC verifies the archive, then removes it
    import shutil

    shutil.copytree(dst, src, ignore=shutil.ignore_patterns("SHA256SUMS.json"))
    assert [i.rule for i in gc_registry(policy, s.cfg).items] == ["archive_move_resume"]
    (dst / "MLmodel").write_text("corrupted")
    bad = gc_registry(policy, s.cfg, apply=True)
    assert any("does not verify" in e for e in bad.errors) and tree_hashes(src) == before, "source kept"
    (dst / "MLmodel").write_bytes((src / "MLmodel").read_bytes())
    gc_registry(policy, s.cfg, apply=True)
    assert not src.exists() and gc_registry(policy, s.cfg).items == [], "nothing left to do"
    for v in vs[1:]:  # stable and previous still load from the store
        assert mlflow.pyfunc.load_model(f"models:/{name}/{v.version}") is not None
