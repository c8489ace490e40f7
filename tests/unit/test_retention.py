"""The retention GC's live set and sweep on fabricated stores (no servers, no real artifacts).

Protects: last successful + N per key, the cap and its exceptions (pins), leases, hard links freed only with their
last link, the cache index kept consistent, dry run by default, missing files = already deleted, crash leftovers,
policy validation naming the key, the refusal without a scope, the GC record, model weights and temp TTL.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from common.errors import ConfigError
from extraction.lease import LeaseInfo
from retention.artifacts import gc_store
from retention.live import FileRec, StoreSnapshot, mark
from retention.pins import Pins
from retention.policy import load_policy
from retention.report import gc_record, read_records, send_to_store, write_records
from retention.store import scan, sweep, trash_runs
from retention.temp import gc_temp, is_tmp_name
from retention.weights import WeightVersion, plan_weights
from testsupport.stores import DAY, FabricatedStore, run_rec

NOW = 1_800_000_000.0
CAP = 60 * DAY


def _mark(runs, **kw):
    kw.setdefault("keep_previous", 2)
    return mark(StoreSnapshot("/s", tuple(runs), ()), now=NOW, cap_s=CAP, min_age_s=3600, **kw)


def _rules(live):
    return {d.run.run_id: (d.keep, d.rule) for d in live.decisions}


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_a_key_keeps_its_last_successful_run_and_two_before_it(n):
    runs = [run_rec("v", f"r{i}", age_days=n - i, now=NOW) for i in range(n)]  # r{n-1} is the newest
    live = _mark(runs)
    kept = {d.run.run_id for d in live.kept}
    assert kept == {f"r{i}" for i in range(max(0, n - 3), n)}
    assert _rules(live)[f"r{n - 1}"] == (True, "last_success")
    assert all(d.rule == "superseded" for d in live.deleted)
    assert live.freed_bytes == 100 * max(0, n - 3)


def test_failed_runs_after_the_last_success_do_not_displace_it():
    runs = [run_rec("v", "ok1", 5, now=NOW), run_rec("v", "ok2", 4, now=NOW), run_rec("v", "ok3", 3, now=NOW),
            run_rec("v", "ok4", 2, now=NOW), run_rec("v", "bad", 1, now=NOW, status="partial")]
    r = _rules(_mark(runs))
    assert r["bad"] == (True, "after_last_success") and r["ok4"] == (True, "last_success")
    assert r["ok3"] == r["ok2"] == (True, "previous") and r["ok1"] == (False, "superseded")


def test_keys_are_independent_a_changed_model_is_a_new_key():
    runs = [run_rec("v", "a1", 10, now=NOW, key="m1"), run_rec("v", "a2", 9, now=NOW, key="m1"),
            run_rec("v", "b1", 2, now=NOW, key="m2")]
    r = _rules(_mark(runs, keep_previous=0))
    assert r == {"a1": (False, "superseded"), "a2": (True, "last_success"), "b1": (True, "last_success")}


@pytest.mark.parametrize(("age", "kept"), [(59.9, True), (60.1, False)])
def test_the_cap_wins_over_last_success(age, kept):
    r = _rules(_mark([run_rec("v", "only", age, now=NOW)]))
    assert r["only"] == ((True, "last_success") if kept else (False, "past_cap"))


def test_a_pinned_run_is_kept_past_the_cap_and_says_why():
    runs = [run_rec("v", "old", 90, now=NOW), run_rec("v", "mid", 30, now=NOW, key="other")]
    live = _mark(runs, pins={("yt", "v", "old"): "training data of trendflow-v1 v3 (alias stable)"},
                 keep_previous=0)
    (past,) = live.kept_past_cap
    assert past.run.run_id == "old" and past.rule == "pinned" and "alias stable" in past.reason


def test_young_and_incomplete_runs():
    runs = [run_rec("v", "fresh", 0.01, now=NOW, complete=False), run_rec("v", "killed", 2, now=NOW, complete=False)]
    r = _rules(_mark(runs))
    assert r == {"fresh": (True, "young"), "killed": (False, "incomplete")}


def test_a_live_lease_holds_its_runs_and_the_cached_artifacts_of_its_videos():
    old = run_rec("v", "old", 70, now=NOW)
    snap = StoreSnapshot("/s", (old, run_rec("v", "running", 2, now=NOW, complete=False)),
                         (_index("v", "k1", "yt/v/old/a.npz"),))
    lease = LeaseInfo("running", os.getpid(), "h", "", NOW, 120, (("yt", "v"),), "/s/.leases/running.json")
    live = mark(snap, now=NOW, cap_s=CAP, keep_previous=2, min_age_s=0, live_leases=[lease])
    r = _rules(live)
    assert r["running"] == (True, "leased") and r["old"] == (True, "leased")
    assert live.index_updates == [], "a leased video's index is left alone"
    live = mark(snap, now=NOW, cap_s=CAP, keep_previous=2, min_age_s=0)  # the lease is dead: not passed
    assert _rules(live) == {"old": (False, "past_cap"), "running": (False, "incomplete")}


def _index(video, key, target):
    from retention.live import IndexRec

    return IndexRec("yt", video, key, target)


def test_hard_linked_files_are_freed_only_with_their_last_link():
    shared = FileRec("a.npz", 500, (1, 42), 2)
    own = FileRec("b.npz", 300, (1, 43), 1)
    r1 = run_rec("v", "r1", 5, now=NOW, files=(shared, own))
    r2 = run_rec("v", "r2", 1, now=NOW, files=(FileRec("a.npz", 500, (1, 42), 2),))
    snap = StoreSnapshot("/s", (r1, r2), (_index("v", "ka", "yt/v/r1/a.npz"), _index("v", "kb", "yt/v/r1/b.npz")))
    live = mark(snap, now=NOW, cap_s=CAP, keep_previous=0, min_age_s=0)
    (gone,) = live.deleted
    assert gone.run.run_id == "r1" and gone.freed_bytes == 300, "the shared file survives through r2's link"
    updates = {u.entry.cache_key: u.new_target for u in live.index_updates}
    assert updates == {"ka": "yt/v/r2/a.npz", "kb": None}
    both = mark(snap, now=NOW + 70 * DAY, cap_s=CAP, keep_previous=0, min_age_s=0)
    assert both.freed_bytes == 800, "both links deleted: the shared file counts once"


def _policy(tmp_path, **kw):
    # a throwaway observability store: records never reach the repository's own store
    kw.setdefault("record_store_url", f"sqlite:///{tmp_path / 'obs' / 'observability.db'}")
    return load_policy(None, record=str(tmp_path / "gc.jsonl"), **kw)


def test_store_gc_dry_run_deletes_nothing_apply_keeps_index_consistent(tmp_path):
    st = FabricatedStore(tmp_path / "store", now=time.time())
    st.add_run("v", "r1", 10, model_sig="m1")
    st.add_run("v", "r2", 9, model_sig="m1", link_from="r1")
    st.add_run("v", "r3", 8, model_sig="m1", link_from="r2")
    st.add_run("v", "r4", 7, model_sig="m1", link_from="r3")  # 4 runs: r1 is superseded, its files linked on
    st.add_run("w", "r1", 70)  # past the cap
    policy = _policy(tmp_path)
    man = {v: (st.root / f"yt/{v}/r1/manifest.json").stat().st_size for v in ("v", "w")}
    before = sorted(str(p) for p in st.root.rglob("*"))
    dry = gc_store(st.root, policy)
    assert sorted(str(p) for p in st.root.rglob("*")) == before, "a dry run deletes nothing"
    assert {(i.what.split("store/")[1], i.rule) for i in dry.items if i.kind == "run"} == {
        ("yt/v/r1", "superseded"), ("yt/w/r1", "past_cap")}
    assert sum(i.bytes for i in dry.items if i.what.endswith("yt/v/r1")) == man["v"], "r2..r4 link r1's npz"
    done = gc_store(st.root, policy, apply=True)
    assert done.freed_bytes == dry.freed_bytes == 2 * 4096 + man["v"] + man["w"]
    assert not (st.root / "yt/v/r1").exists() and not (st.root / "yt/w/r1").exists()
    for idx in st.root.glob("*/*/cache/*.json"):
        assert (st.root / json.loads(idx.read_text())["artifact"]).exists(), f"{idx} points at a missing file"
    assert len(list(st.root.glob("yt/v/cache/*.json"))) == 2, "v's entries repointed, not dropped"
    assert not list(st.root.glob("yt/w/cache/*.json")), "w's entries went with their only artifacts"
    assert not (st.root / ".trash").exists() or not any((st.root / ".trash").iterdir())


def test_missing_files_are_already_deleted_and_trash_leftovers_are_removed(tmp_path):
    st = FabricatedStore(tmp_path / "store", now=time.time())
    st.add_run("v", "r1", 70)
    trash, moved = trash_runs(st.root, ["yt/v/r1", "yt/v/never-existed"], gc_id="crashed")
    assert moved == 1 and (trash / "yt/v/r1/manifest.json").exists()
    report = gc_store(st.root, _policy(tmp_path))
    assert sorted(i.kind for i in report.items) == ["index_entry", "index_entry", "trash"], report.items
    gc_store(st.root, _policy(tmp_path), apply=True)
    assert not (st.root / ".trash" / "crashed").exists()
    assert scan(st.root).runs == () and scan(st.root).index == ()


def test_dead_and_live_leases_on_disk(tmp_path):
    st = FabricatedStore(tmp_path / "store", now=time.time())
    st.add_run("v", "killed", 3, complete=False)
    st.add_run("v", "running", 3, complete=False)
    st.lease("running", [("yt", "v")])
    dead = st.lease("killed", [("yt", "v")], heartbeat_age_s=3600)
    report = gc_store(st.root, _policy(tmp_path), apply=True)
    assert (st.root / "yt/v/running").exists() and not dead.exists()
    assert not (st.root / "yt/v/killed").exists()
    assert {i.kind for i in report.items} >= {"incomplete_run", "lease"}


def test_policy_errors_name_the_key(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("cap_days: -3\nartifacts: {stores: [], lease_timout_s: 3}\n")
    with pytest.raises(ConfigError) as exc:
        load_policy(bad)
    assert "cap_days" in str(exc.value) and "artifacts.lease_timout_s" in str(exc.value)
    bad.write_text("weights: {max_bytes: lots}\n")
    with pytest.raises(ConfigError, match="weights.max_bytes"):
        load_policy(bad)
    assert load_policy().weights.max_bytes == 20 * 2**30


def test_the_cli_refuses_without_a_scope(tmp_path, capsys):
    from extraction.__main__ import main

    p = tmp_path / "r.yaml"
    p.write_text(f"artifacts: {{stores: []}}\nrecord: {tmp_path / 'gc.jsonl'}\n")
    assert main(["gc", "--policy", str(p)]) == 2
    assert "gc_scope_missing" in capsys.readouterr().err


RECORD_KEYS = {"gc_id", "kind", "started_at", "ended_at", "applied", "candidates", "deleted", "bytes_freed",
               "kept_past_cap", "errors"}


def test_every_gc_leaves_a_record_per_kind_in_the_jsonl_and_for_the_store(tmp_path):
    st = FabricatedStore(tmp_path / "store", now=time.time())
    st.add_run("v", "r1", 90)
    st.add_run("v", "r2", 90, model_sig="other")
    pinned = Pins(runs={("yt", "v", "r1"): "training data of m v1"})
    policy = _policy(tmp_path)
    dry = gc_store(st.root, policy, pins=pinned)
    done = gc_store(st.root, policy, pins=pinned, apply=True)
    lines = write_records([("artifacts", dry), ("serving", done)], tmp_path / "gc.jsonl", policy.record_store_url)
    assert [rec["stored"] for rec in lines] == [True, True], "both records reach the observability store"
    a, b = read_records(tmp_path / "gc.jsonl")
    with sqlite3.connect(tmp_path / "obs" / "observability.db") as db:
        stored = dict(db.execute("SELECT gc_id, kind FROM gc_runs").fetchall())
    assert stored == {a["gc_id"]: "artifacts", b["gc_id"]: "serving"}
    assert write_records([("serving", done)], tmp_path / "again.jsonl", policy.record_store_url)[0]["stored"]
    with sqlite3.connect(tmp_path / "obs" / "observability.db") as db:
        assert db.execute("SELECT count(*) FROM gc_runs").fetchone() == (2,), "idempotent by gc_id"
    assert RECORD_KEYS <= set(a) and a["gc_id"] != b["gc_id"] and b["gc_id"] == done.gc_id
    assert [i.what for i in dry.items if i.kind == "run"] == [f"{st.root}/yt/v/r2"], "r1 is pinned past the cap"
    assert (a["kind"], a["applied"], a["candidates"], a["deleted"], a["bytes_freed"]) == (
        "artifacts", False, len(dry.items), 0, 0)  # the run and its index entries
    assert a["freed_bytes"] == dry.freed_bytes > 0, "the dry run's would-free bytes stay in the JSON line"
    assert (b["kind"], b["applied"], b["deleted"], b["bytes_freed"]) == ("serving", True, len(dry.items),
                                                                          done.freed_bytes)
    assert a["kept_past_cap"] == [{"item": f"run {st.root}/yt/v/r1", "reason": "pinned: training data of m v1"}]
    assert a["started_at"] <= a["ended_at"] and a["errors"] == []
    assert set(gc_record(dry, "temp")) == RECORD_KEYS
    with pytest.raises(ValueError, match="gc kind 'bogus'"):
        gc_record(dry, "bogus")


def test_a_failing_observability_store_never_fails_the_gc(tmp_path, monkeypatch, caplog):
    # A store whose record_gc raises (it promises not to) cannot be produced with a real store: patched in.
    import observability.api

    def broken(record, url=None):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(observability.api, "record_gc", broken, raising=False)
    report = gc_store(FabricatedStore(tmp_path / "store", now=time.time()).root, _policy(tmp_path))
    assert send_to_store(gc_record(report, "artifacts")) is False
    assert "database is locked" in caplog.text
    (line,) = write_records([("artifacts", report)], tmp_path / "gc.jsonl")
    assert line["stored"] is False and read_records(tmp_path / "gc.jsonl")[0]["gc_id"] == report.gc_id


def test_weights_plan_never_touches_referenced_or_loaded_versions():
    def v(m, n, size, days):
        return WeightVersion(m, n, f"/repo/{m}/{n}", size, NOW - days * DAY)

    vs = [v("a", "1", 10, 1), v("a", "2", 10, 40), v("b", "1", 50, 30), v("b", "2", 50, 2), v("c", "1", 50, 1)]
    plan = plan_weights(vs, referenced={("a", "1"), ("b", "1")}, loaded={("c", "1")}, now=NOW, grace_s=14 * DAY,
                        max_bytes=100)
    assert [(p[0].model, p[0].version, p[1]) for p in plan] == [("a", "2", "unreferenced_past_grace"),
                                                                ("b", "2", "lru_size_cap")]


def test_temp_ttl_and_stale_tmp_files(tmp_path):
    now = time.time()
    old, fresh = tmp_path / "t" / "calibration-old", tmp_path / "t" / "calibration-new"
    for d in (old, fresh):
        d.mkdir(parents=True)
        (d / "v.mp4").write_bytes(b"x" * 10)
    os.utime(old / "v.mp4", (now - 9 * DAY, now - 9 * DAY))
    os.utime(old, (now - 9 * DAY, now - 9 * DAY))
    tmp = tmp_path / "s" / ".visual.npz.ab12cd.tmp"
    tmp.parent.mkdir()
    tmp.write_bytes(b"y" * 7)
    os.utime(tmp, (now - 2 * DAY, now - 2 * DAY))
    assert is_tmp_name(tmp.name) and not is_tmp_name("visual.npz")
    p = tmp_path / "r.yaml"
    p.write_text(json.dumps({"temp": {"roots": [{"folder": str(tmp_path / "t"), "glob": "calibration-*"}],
                                      "tmp_file_roots": [str(tmp_path / "s")]}}))
    report = gc_temp(load_policy(p), apply=True, now=now)
    assert {Path(i.what).name for i in report.items} == {"calibration-old", tmp.name}
    assert fresh.exists() and not old.exists() and not tmp.exists() and report.freed_bytes == 17


def test_training_records_the_extraction_runs_of_its_table(tmp_path):
    import pandas as pd

    from training.data import extraction_runs

    df = pd.DataFrame({"platform_id": ["yt", "yt", "yt"], "video_id": ["b", "a", "b"], "run_id": ["r2", "r1", "r2"],
                       "x": [1.0, 2.0, 3.0]})
    df.to_parquet(tmp_path / "t.parquet")
    assert extraction_runs(tmp_path / "t.parquet") == [["yt", "a", "r1"], ["yt", "b", "r2"]]
    df[["x"]].to_parquet(tmp_path / "synthetic.parquet")
    assert extraction_runs(tmp_path / "synthetic.parquet") == []


def test_weights_gc_archives_unreferenced_versions_then_expires_the_archive(tmp_path):
    from retention.weights import gc_weights

    repo, now = tmp_path / "repo", time.time()
    for model, versions in (("m", ("1", "2")), ("n", ("1",))):
        (repo / model).mkdir(parents=True)
        (repo / model / "config.pbtxt").write_text("name: x")
        for v in versions:
            f = repo / model / v / "model.py"
            f.parent.mkdir()
            f.write_text("x" * 100)
            os.utime(f, (now - 30 * DAY, now - 30 * DAY))
    mapping = tmp_path / "map.yaml"
    mapping.write_text("models: {a: {triton_model: m, version: '1'}, b: {triton_model: n, version: '1'}}\n")
    p = tmp_path / "r.yaml"
    p.write_text(json.dumps({"weights": {"model_repository": str(repo), "mapping": str(mapping),
                                         "archive_dir": str(tmp_path / "archive"), "grace_days": 14}}))
    policy = load_policy(p)
    dry = gc_weights(policy, now=now, loaded=set())
    assert [(Path(i.what).parts[-2:], i.rule) for i in dry.items] == [(("m", "2"), "unreferenced_past_grace")]
    assert (repo / "m" / "2").exists(), "dry run"
    gc_weights(policy, apply=True, now=now, loaded=set())
    assert not (repo / "m" / "2").exists() and (repo / "m" / "1").exists() and (repo / "n" / "1").exists()
    (archived,) = (tmp_path / "archive" / "m").iterdir()
    later = gc_weights(policy, apply=True, now=now + 31 * DAY, loaded={("m", "1")})
    assert [i.rule for i in later.items] == ["archive_expired"] and not archived.exists()


def test_registry_plan_keeps_versions_runs_aliases_served_and_young():
    from retention.mlflow_gc import RunRec as MRun
    from retention.mlflow_gc import VersionRec, plan_registry

    old, young = NOW - 90 * DAY, NOW - 1 * DAY
    runs = [MRun("r1", "1", old, "a"), MRun("r2", "1", old, "b"), MRun("r3", "1", old, "c"),
            MRun("stray", "2", old, "s"), MRun("fresh", "2", young, "f"), MRun("r5", "1", old, "e")]
    versions = [VersionRec("m", "1", "r1", old, (), False), VersionRec("m", "2", "r2", old, ("previous",), False),
                VersionRec("m", "3", "r3", old, ("stable",), False), VersionRec("m", "4", None, young, (), False),
                VersionRec("m", "5", "r5", old, (), False), VersionRec("other", "1", None, old, (), False)]
    delete, archive, kept = plan_registry(runs, versions, audit_versions=set(), served={("m", "5")},
                                          managed={"m"}, now=NOW, cap_s=CAP)
    assert [r.run_id for r, _ in delete] == ["stray"]
    assert [(v.name, v.version) for v, _ in archive] == [("m", "1")]
    assert kept == {"run_registered_version": 4, "run_young": 1, "version_aliased": 2, "version_young": 1,
                    "version_served": 1}


def test_the_distributed_executors_video_leases_hold_too(tmp_path):
    from extraction.store import SharedFilesystemStore

    st = FabricatedStore(tmp_path / "store", now=time.time())
    st.add_run("v", "old", 70)
    st.add_run("w", "old", 70)
    with SharedFilesystemStore(st.root).lease("yt", "v", "node-2", "ray-run"):
        report = gc_store(st.root, _policy(tmp_path), apply=True)
        assert report.kept == {"leased": 1} and (st.root / "yt/v/old").exists()
    assert not (st.root / "yt/w/old").exists()
    assert (st.root / "yt/v/old").exists(), "the video's lease ended after the sweep: its run is swept next time"


def test_weights_plan_counts_fixed_bytes_toward_the_cap():
    vs = [WeightVersion("a", "1", "/r/a/1", 40, NOW - DAY), WeightVersion("a", "2", "/r/a/2", 40, NOW - 2 * DAY)]
    assert plan_weights(vs, set(), set(), now=NOW, grace_s=14 * DAY, max_bytes=100) == []
    plan = plan_weights(vs, set(), set(), now=NOW, grace_s=14 * DAY, max_bytes=100, fixed_bytes=30)
    assert [(p[0].version, p[1]) for p in plan] == [("2", "lru_size_cap")]


def _weights_policy(tmp_path, mapping_models: str, caches: list[dict]):
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    mapping = tmp_path / "map.yaml"
    mapping.write_text(f"models: {{{mapping_models}}}\n")
    p = tmp_path / "r.yaml"
    p.write_text(json.dumps({"weights": {"model_repository": str(repo), "mapping": str(mapping),
                                         "archive_dir": str(tmp_path / "archive"), "grace_days": 14,
                                         "caches": caches}}))
    return load_policy(p)


def test_weights_gc_archives_engine_builds_verified_and_never_deletes_a_package(tmp_path, monkeypatch):
    from retention.archive import MANIFEST, tree_hashes
    from retention.weights import gc_weights

    now = time.time()
    pkg = tmp_path / "site" / "fake_text_weights"
    (pkg / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "model" / "model.safetensors").write_bytes(b"w" * 1000)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    engines = tmp_path / "engines"
    for model, version in (("embed_onnx", "1"), ("embed_onnx", "2")):
        f = engines / model / version / "model.onnx"
        f.parent.mkdir(parents=True)
        f.write_bytes(version.encode() * 300)
        os.utime(f, (now - 30 * DAY, now - 30 * DAY))
    caches = [{"name": "text", "kind": "package", "package": "fake_text_weights", "used_by": ["text_embed"]},
              {"name": "engines", "kind": "folder", "path": str(engines)}]
    policy = _weights_policy(tmp_path, "t: {triton_model: text_embed, version: '1'}, "
                                       "e: {triton_model: embed_onnx, version: '1'}", caches)
    source_hashes = tree_hashes(engines / "embed_onnx" / "2")
    for f in engines.rglob("model.onnx"):  # reading them for the hashes counted as a use
        os.utime(f, (now - 30 * DAY, now - 30 * DAY))

    report = gc_weights(policy, apply=True, now=now, loaded=set())
    assert [(Path(i.what).parts[-2:], i.rule) for i in report.items] == [(("embed_onnx", "2"),
                                                                         "unreferenced_past_grace")]
    assert report.kept["package_in_use:text"] == 1 and report.warnings == [] and report.errors == []
    assert report.stats["cache_text_bytes"] == 1000 and report.stats["weights_bytes"] == 1600
    assert not (engines / "embed_onnx" / "2").exists() and (engines / "embed_onnx" / "1").exists()
    (archived,) = (tmp_path / "archive" / "embed_onnx").iterdir()
    assert json.loads((archived / MANIFEST).read_text()) == source_hashes == tree_hashes(archived)

    # Nothing references the text model any more: the GC says so, with the way out, and leaves its files alone.
    unused = _weights_policy(tmp_path, "e: {triton_model: embed_onnx, version: '1'}", caches)
    again = gc_weights(unused, apply=True, now=now, loaded=set())
    assert any("fake_text_weights" in w and "pip uninstall" in w for w in again.warnings)
    assert all("fake_text_weights" not in i.what for i in again.items)
    assert (pkg / "model" / "model.safetensors").read_bytes() == b"w" * 1000


def test_weights_cache_needs_its_location(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(json.dumps({"weights": {"caches": [{"name": "engines", "kind": "folder"}]}}))
    with pytest.raises(ConfigError, match="weights.caches.0.*needs `path`"):
        load_policy(p)
    p.write_text(json.dumps({"weights": {"caches": [{"name": "x", "kind": "zip", "path": "y"}]}}))
    with pytest.raises(ConfigError, match="weights.caches.0.kind"):
        load_policy(p)


def test_an_entry_the_scan_would_drop_is_repointed_at_a_link_made_after_the_scan(tmp_path):
    # the race CI hit: a run hard-links a cached artifact after the GC scanned its folder and ends (lease gone)
    # before the sweep; the old run goes, and its index entry must move to the new link, not vanish
    st = FabricatedStore(tmp_path / "store", now=time.time())
    st.add_run("v", "old", 70, components=("visual",))
    snap = scan(st.root)
    live = mark(snap, now=st.now, cap_s=CAP, keep_previous=2, min_age_s=3600)
    assert [u.new_target for u in live.index_updates] == [None], "from the scan alone: no surviving link"
    st.add_run("v", "new", 0, components=("visual",), link_from="old")
    sweep(st.root, live)
    (idx,) = st.root.glob("yt/v/cache/*.json")
    assert json.loads(idx.read_text())["artifact"] == "yt/v/new/visual.npz"
    assert not (st.root / "yt/v/old").exists() and (st.root / "yt/v/new/visual.npz").exists()
