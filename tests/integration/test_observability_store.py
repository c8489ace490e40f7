"""The observability store end to end, the same suite on SQLite and on a real PostgreSQL server (a throwaway
cluster on loopback, ``testsupport.postgres``): migrations, idempotent ingest of a real extraction run, of real
MLflow runs and of a real service's serving windows, and alerts firing and resolving on real faults.
"""

from __future__ import annotations

import bisect
import json
import shutil
import socket
import subprocess
import sys
import threading
from datetime import UTC, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import func, select

from observability import ingest as ing
from observability.alerts import Context, evaluate, load_rules
from observability.queries import RunFilter, component_stats, get_run, list_runs, utcnow
from observability.schema import Alert, Base, Run, RunComponent, ServingWindow
from observability.store import StoreUnavailable, open_store
from tests.integration.obs_support import REPO, env_with, real_extraction_run, real_serving_spool

pytestmark = pytest.mark.triton
RULES = load_rules(REPO / "conf" / "alerts.yaml")


@pytest.fixture(scope="module")
def pg_cluster():
    from testsupport.postgres import start_cluster

    cluster = start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'obs.db'}"
    else:
        url = request.getfixturevalue("pg_cluster").create_database(f"obs_{abs(hash(request.node.name)) % 10**8}")
    s = open_store(url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def real_run(triton_server, tmp_path_factory):
    return real_extraction_run(tmp_path_factory, triton_server.grpc_url)


def _counts(store) -> tuple[int, int, int]:
    with store.session() as s:
        return (s.scalar(select(func.count(Run.id))), s.scalar(select(func.count(RunComponent.id))),
                s.scalar(select(func.count(ServingWindow.id))))


class Receiver:
    """A local HTTP receiver on 127.0.0.1 collecting the webhook's JSON bodies."""

    def __init__(self) -> None:
        bodies = self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_migrations_create_exactly_the_models_schema(store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    again = open_store(store.url)  # re-opening migrates nothing and keeps the data
    again.close()
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_ingest_of_a_real_extraction_run_is_idempotent(store, real_run) -> None:
    first = ing.ingest_artifacts(store, real_run.artifacts)
    assert (first.new, first.updated, first.failed) == (1, 0, [])
    before = _counts(store)
    second = ing.ingest_artifacts(store, real_run.artifacts)
    assert (second.new, second.updated, second.unchanged) == (0, 0, 1) and _counts(store) == before
    (row,), total = list_runs(store, RunFilter(kind="extraction"))
    assert total == 1 and row.run_key == f"extraction:{real_run.run_id}" and row.videos == 4
    assert row.status == "partial", "the unreadable video fails, the other three complete"
    assert row.measured_makespan_s > 0 and row.frames > 0 and row.peak_rss_bytes > 0
    detail = get_run(store, row.id)
    comps = {c.component: c for c in detail.components}
    assert {"frames", "visual", "faces", "audio", "text"} <= set(comps)
    assert comps["visual"].model and comps["visual"].model.startswith("visual_embed_fast_onnx:")
    assert comps["frames"].error_codes == {"video_decode_failed": 1} and comps["frames"].n == 4
    assert comps["visual"].batch_sizes and comps["visual"].p95_s is not None
    stats = {s.component: s for s in component_stats(store, utcnow() - timedelta(hours=1))}
    assert stats["frames"].error_rate == 0.25 and stats["visual"].cache_hit_rate == 0.0
    from common.gpu import nvidia_driver_present

    if nvidia_driver_present():
        assert row.gpu_peak_bytes > 0 and row.gpu_budget_bytes >= row.gpu_peak_bytes
        assert comps["visual"].gpu_peak_bytes > 0
    else:
        assert row.gpu_peak_bytes is None and row.gpu_budget_bytes is None, "no GPU: NULL, not 0"
        assert all(c.gpu_peak_bytes is None for c in comps.values())


def test_the_extraction_cli_hook_stored_the_same_run(store, real_run) -> None:
    hook = open_store(real_run.hook_url)
    try:
        (hooked,), _ = list_runs(hook, RunFilter(kind="extraction"))
        with hook.session() as s:
            fp = s.scalar(select(Run.fingerprint).where(Run.run_key == hooked.run_key))
    finally:
        hook.close()
    ing.ingest_artifacts(store, real_run.artifacts)
    with store.session() as s:
        assert s.scalar(select(Run.fingerprint).where(Run.run_key == hooked.run_key)) == fp


def test_a_killed_run_is_ingested_then_completed(store, real_run, tmp_path) -> None:
    """A killed run left the manifests of the videos it finished: they are ingested; the resumed run replaces them."""
    part = tmp_path / "part"
    manifests = sorted(real_run.artifacts.glob(f"*/*/{real_run.run_id}/manifest.json"))
    for m in manifests[:2]:
        dst = part / m.relative_to(real_run.artifacts)
        dst.parent.mkdir(parents=True)
        shutil.copy(m, dst)
    assert ing.ingest_artifacts(store, part).new == 1
    assert list_runs(store, RunFilter())[0][0].videos == 2
    rep = ing.ingest_artifacts(store, real_run.artifacts)
    assert rep.updated == 1 and list_runs(store, RunFilter())[0][0].videos == 4 and _counts(store)[0] == 1


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """A real MLflow store with two registered versions (logged once for both backends)."""
    from registry import ops
    from tests.conftest import RegistryStore

    reg = RegistryStore(tmp_path_factory.mktemp("obs-mlflow") / "mlflow")
    reg.v1 = reg.log("v1", seed=1)
    reg.log("baseline", seed=2)
    assert ops.promote(reg.client, reg.cfg, "v1", reg.v1.version.version, "obs test").ok  # one audit entry
    return reg


def test_hourly_rollups_equal_the_stats_of_the_runs(store, real_run, tmp_path) -> None:
    """The components page reads hourly rollups kept by ingest: after an ingest, a replaced run and a rebuild
    they give the same stats as the run rows themselves."""
    from observability.queries import component_stats_hourly

    since = utcnow() - timedelta(hours=2)

    def same() -> None:
        raw = {s.component: s for s in component_stats(store, since)}
        assert raw and raw == {s.component: s for s in component_stats_hourly(store, since)}

    root = tmp_path / "artifacts"
    shutil.copytree(real_run.artifacts, root)
    ing.ingest_artifacts(store, root)
    same()
    path = sorted(root.glob(f"*/*/{real_run.run_id}/manifest.json"))[-1]
    m = json.loads(path.read_text())
    m["components"]["visual"].update(status="error", error_code="out_of_memory")  # the run resumed differently
    path.write_text(json.dumps(m))
    assert ing.ingest_artifacts(store, root).updated == 1
    same()
    assert ing.rebuild_rollups(store) > 0
    same()


def test_metrics_export_the_component_latency_histogram_prometheus_reads(store, real_run) -> None:
    """What conf/alerts.yaml's ComponentLatencyP95Doubled reads: valid exposition (promtool check metrics), one
    cumulative histogram per component whose count is the component's executions and whose p95, computed from the
    exported buckets, is the store's own."""
    from prometheus_client.parser import text_string_to_metric_families

    from observability.histogram import LATENCY_BUCKETS, histogram_quantile
    from observability.web import prometheus_text

    ing.ingest_artifacts(store, real_run.artifacts)
    text = prometheus_text(store)
    tool = shutil.which("promtool")
    assert tool, "promtool is not installed: apt-get install prometheus (.ci/run does)"
    check = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "trendflow_component_latency_seconds"]
    assert family.type == "histogram"
    buckets: dict[str, list[float]] = {}
    counts: dict[str, float] = {}
    for sample in family.samples:
        c = sample.labels["component"]
        if sample.name.endswith("_bucket"):
            buckets.setdefault(c, []).append(sample.value)
        elif sample.name.endswith("_count"):
            counts[c] = sample.value
    stats = {s.component: s for s in component_stats(store, utcnow() - timedelta(hours=1))}
    detail = get_run(store, list_runs(store, RunFilter(kind="extraction"))[0][0].id)
    n = {c.component: c.n for c in detail.components}
    assert set(buckets) == set(n) and {"visual", "faces", "audio", "text"} <= set(buckets)
    for c, cumulative in buckets.items():
        assert len(cumulative) == len(LATENCY_BUCKETS) + 1 and cumulative == sorted(cumulative)
        assert cumulative[-1] == counts[c] == n[c]
        per_bucket = [int(b - a) for a, b in zip([0.0, *cumulative[:-1]], cumulative, strict=True)]
        assert histogram_quantile(0.95, per_bucket) == pytest.approx(stats[c].p95_s, abs=1e-6)  # stats: 6 d.p.


def test_training_runs_from_a_real_mlflow_store(store, mlflow_store) -> None:
    a = mlflow_store.v1
    uri = mlflow_store.cfg.resolved_tracking_uri()
    rep = ing.ingest_mlflow(store, uri)
    assert rep.new == 2 and ing.ingest_mlflow(store, uri).unchanged == 2
    rows, _ = list_runs(store, RunFilter(kind="training"))
    versions = {r.model_version for r in rows}
    assert f"v1:{a.version.version}" in versions and all(r.status == "ok" for r in rows)
    detail = get_run(store, next(r.id for r in rows if r.model_version.startswith("v1")))
    assert any(k.startswith("test/") for k in detail.metrics), detail.metrics


def test_stable_versions_from_the_registry_audit_log(store, mlflow_store) -> None:
    from observability.queries import stable_history

    path = mlflow_store.cfg.audit_path()
    assert ing.ingest_audit(store, path).stable_versions >= 1
    assert ing.ingest_audit(store, path).stable_versions == 0, "idempotent"
    rows = stable_history(store)
    assert any(r.model_type == "v1" and r.alias == "stable" and r.version == str(mlflow_store.v1.version.version)
               and r.action == "promote" for r in rows), [(r.model_type, r.alias, r.version, r.action) for r in rows]


def test_the_training_hook_ingests_the_mlflow_store_it_logged_to(store, mlflow_store, monkeypatch) -> None:
    from training.__main__ import _observe

    monkeypatch.setenv("TRENDFLOW_OBSERVABILITY_URL", store.url)
    mlflow_store.reconnect()  # MLflow's tracking URI is this store, as after training.tracking.setup
    _observe()
    assert list_runs(store, RunFilter(kind="training"))[1] == 2


@pytest.fixture(scope="module")
def serving_spool(tmp_path_factory):
    return real_serving_spool(tmp_path_factory)


def test_serving_windows_survive_a_dead_database_then_ingest_once(store, serving_spool, tmp_path) -> None:
    spool, attempts = serving_spool
    files = sorted(spool.glob("*.json"))
    assert attempts and len(files) == 1, "the dead database was tried, the window stayed in the spool"
    mine = tmp_path / "spool"
    shutil.copytree(spool, mine)
    rep = ing.ingest_spool(store, mine)
    assert rep.serving_windows == 1 and rep.new == 1 and not list(mine.glob("*.json"))
    shutil.copytree(spool, mine, dirs_exist_ok=True)
    again = ing.ingest_spool(store, mine)
    assert again.serving_windows == 0 and again.unchanged == 1, "a window already stored changes nothing"
    with store.session() as s:
        w = s.scalars(select(ServingWindow)).one()
    assert w.requests == 20 and w.fallbacks == 20, "every request fell back from the broken v2"
    assert w.errors_by_code == {"model_error": 20, "model_load_failed": 1}, "v2's sanity check failed at load"
    assert any(k.startswith("request:") for k in w.latency) and any(k.startswith("model:v1:") for k in w.latency)
    from observability.queries import model_loads

    assert {m.model for m in model_loads(store)} == {"v1", "v2", "baseline"}, "the service's load seconds"
    assert set(w.predictions) and all(p["n"] == 20 for p in w.predictions.values())


def test_serving_fallback_alert_fires_and_is_sent_to_the_webhook(store, serving_spool, tmp_path) -> None:
    spool, _ = serving_spool
    shutil.copytree(spool, tmp_path / "spool")
    ing.ingest_spool(store, tmp_path / "spool")
    rx = Receiver()
    try:
        ev = evaluate(Context(store=store, now=utcnow()), RULES, webhook_url=rx.url)
        assert ("ServingFallbackRateHigh", "", 1.0) in ev.firing
        assert ("ModelLoadFailed", "", 1.0) in ev.firing
        assert any(b["status"] == "firing" and b["alerts"][0]["name"] == "ServingFallbackRateHigh" for b in rx.bodies)
        later = evaluate(Context(store=store, now=utcnow() + timedelta(minutes=11)), RULES, webhook_url=rx.url)
        assert not any(n == "ServingFallbackRateHigh" for n, _, _ in later.firing)
        assert any(b["status"] == "resolved" for b in rx.bodies), "the window passed: resolved and sent"
    finally:
        rx.close()


def test_triton_stopped_during_a_run_fires_then_resolves(store, real_run, triton_server, tmp_path) -> None:
    """A real run against a Triton that is not there (nothing listens on its address) fails with
    triton_unavailable; the CLI hook stores the failed run; the alert is pending, firing after `for`, and
    resolves once the window has no failure and keep_firing_for has passed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    r = subprocess.run([sys.executable, "-m", "extraction", "run", "--videos", str(real_run.corpus), "--out",
                        str(tmp_path / "out"), "--triton-url", dead, "--no-progress", "--no-plan"],
                       capture_output=True, text=True, cwd=REPO, timeout=300, env=env_with(
                           TRENDFLOW_OBSERVABILITY_URL=store.url))
    assert r.returncode == 2 and "triton_unavailable" in r.stderr
    t0 = utcnow()
    rx = Receiver()
    try:
        assert ("TritonUnavailable", "") in evaluate(Context(store=store, now=t0), RULES, rx.url).pending
        fired = evaluate(Context(store=store, now=t0 + timedelta(seconds=61)), RULES, rx.url)
        assert [n for n, _, _ in fired.firing].count("TritonUnavailable") == 1
        evaluate(Context(store=store, now=t0 + timedelta(minutes=9)), RULES, rx.url)  # the failure is in the window
        still = evaluate(Context(store=store, now=t0 + timedelta(minutes=10, seconds=30)), RULES, rx.url)
        assert any(n == "TritonUnavailable" for n, _, _ in still.firing), "keep_firing_for: 2m after the last true"
        done = evaluate(Context(store=store, now=t0 + timedelta(minutes=11, seconds=30)), RULES, rx.url)
        assert not any(n == "TritonUnavailable" for n, _, _ in done.firing)
        states = [b["status"] for b in rx.bodies if b["alerts"][0]["name"] == "TritonUnavailable"]
        assert states == ["firing", "resolved"]
    finally:
        rx.close()
    # probing the server itself: a dead address fires (after `for`), the session's live Triton resolves it
    probe_t = t0 + timedelta(hours=1)
    evaluate(Context(store=store, now=probe_t, triton_url=f"http://{dead}"), RULES)
    evaluate(Context(store=store, now=probe_t + timedelta(seconds=61), triton_url=f"http://{dead}"), RULES)
    live = f"http://{triton_server.http_url}"
    ok = evaluate(Context(store=store, now=probe_t + timedelta(minutes=4), triton_url=live), RULES)
    assert not any(n == "TritonUnavailable" for n, _, _ in ok.firing)
    with store.session() as s:
        assert s.scalar(select(func.count(Alert.id)).where(Alert.name == "TritonUnavailable",
                                                           Alert.state == "resolved")) == 2


def test_component_errors_and_a_slowed_component_fire(store, real_run) -> None:
    """The unreadable video makes frame-based components fail on 1 of 4 videos (> 2%). The slowdown: the same
    real manifests, one copy a day earlier and one with three times the latency now (a day of history cannot be
    produced in a test otherwise)."""
    manifests = [json.loads(p.read_text()) for p in real_run.artifacts.glob(f"*/*/{real_run.run_id}/manifest.json")]
    ing.ingest_artifacts(store, real_run.artifacts)
    ev = evaluate(Context(store=store, now=utcnow()), RULES)
    assert ("ComponentErrorRateHigh", "component=frames", 0.25) in ev.firing

    def shifted(run_id: str, at, slow: float) -> ing.RunRecord:
        rec = ing.extraction_record(run_id, manifests)
        rec.started_at, rec.finished_at = at, at
        for c in rec.components:
            c.latency_buckets = histogram_scaled(c.latency_buckets, slow)
        return rec

    now = utcnow() + timedelta(days=3)
    ing.upsert_runs(store, [shifted("yesterday", now - timedelta(days=1, minutes=30), 1.0),
                            shifted("slow", now - timedelta(minutes=30), 3.0)])
    fired = evaluate(Context(store=store, now=now), RULES)
    slowed = [k for n, k, _ in fired.firing if n == "ComponentLatencyP95Doubled"]
    assert "component=visual" in slowed, fired.firing


def histogram_scaled(counts: list[int], factor: float) -> list[int]:
    """Each bucket's count moved to the bucket of (its upper bound x factor)."""
    from observability.histogram import LATENCY_BUCKETS, empty

    out = empty()
    for i, c in enumerate(counts):
        bound = LATENCY_BUCKETS[i] if i < len(LATENCY_BUCKETS) else float("inf")
        out[bisect.bisect_left(LATENCY_BUCKETS, bound * factor)] += c
    return out


def test_a_locked_store_is_logged_never_a_failed_run(real_run, tmp_path, caplog) -> None:
    """The end-of-run hook against a SQLite store another process holds an exclusive lock on: it waits the busy
    timeout, logs, returns None (the run stands); once the lock is gone the next ingest stores the run."""
    import sqlite3

    from observability.api import ingest_after_run

    url = f"sqlite:///{tmp_path / 'locked.db'}"
    open_store(url).close()
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert ingest_after_run(artifacts=real_run.artifacts, url=url) is None
        assert "observability ingest skipped" in caplog.text and "locked" in caplog.text
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    rep = ingest_after_run(artifacts=real_run.artifacts, url=url)
    assert rep is not None and rep.new == 1


def test_an_unreachable_store_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StoreUnavailable, match="observability_store_unavailable|is unavailable"):
        open_store(f"postgresql+psycopg://postgres@127.0.0.1:{port}/x?connect_timeout=2")


@pytest.fixture(scope="module")
def ood_spool(tmp_path_factory):
    """A real service (uvicorn, a real MLflow version that records its training input distribution) answering
    6 in-distribution and 4 far-out requests over real HTTP; its recorder spools the one window at shutdown."""
    import httpx
    import yaml

    from inference.config import parse_config
    from inference.server import ServerThread, build_service
    from observability.spool import ServingRecorder
    from registry import ops
    from tests.conftest import RegistryStore

    reg = RegistryStore(tmp_path_factory.mktemp("ood-svc") / "mlflow")
    assert ops.promote(reg.client, reg.cfg, "v1", reg.log("v1", seed=3).version.version, "test setup").ok
    raw = yaml.safe_load((REPO / "conf" / "inference.yaml").read_text())
    raw.update(registry=str(reg.config_path), request_modes=["features"], shadow=None, ab=None,
               models={"v1": {"type": "v1", "alias": "stable"}}, primary="v1", fallback=[])
    cfg = parse_config(raw)
    service = build_service(cfg)
    spool = tmp_path_factory.mktemp("ood-spool")
    recorder = ServingRecorder(service.metrics.registry, spool, "127.0.0.1:ood", window_s=3600, ingest=None)
    values = [c for c in reg.columns if not c.startswith("mask__")]
    # The reference model trained on N(0, 1) features and log views in [2, 9] (testsupport.registry).
    normal = {c: 5.0 if c == "meta_log_views_snapshot1" else 0.0 for c in values}
    far = {**normal, values[0]: 1e6, values[1]: -1e6}
    with ServerThread(cfg, service=service, recorder=recorder) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as http:
        codes = []
        for row in [normal] * 6 + [far] * 4:
            r = http.post("/predict", json={"features": row})
            assert r.status_code == 200, r.text
            codes.append([w["code"] for w in r.json()["warnings"]])
    assert sum("out_of_distribution" in c for c in codes) == 4, (codes, r.json()["warnings"])
    return spool, values[:2]


def test_ood_answers_are_counted_per_serving_window(store, ood_spool, tmp_path) -> None:
    from observability.queries import serving_windows

    spool, far_features = ood_spool
    shutil.copytree(spool, tmp_path / "spool")
    rep = ing.ingest_spool(store, tmp_path / "spool")
    assert rep.serving_windows == 1
    (w,) = serving_windows(store)
    assert w.requests == 10 and w.ood == 4 and w.ood_rate == pytest.approx(0.4)
    assert {f: w.ood_features[f] for f in far_features} == dict.fromkeys(far_features, 4), w.ood_features
    ev = evaluate(Context(store=store, now=utcnow()), RULES)
    assert ("ServingOODRateHigh", "", 0.4) in ev.firing, "40% > 10% of answers out of distribution"
    later = evaluate(Context(store=store, now=utcnow() + timedelta(minutes=11)), RULES)
    assert not any(n == "ServingOODRateHigh" for n, _, _ in later.firing), "the window passed: resolved"


def _gc_record(gc_id: str, **kw) -> dict:
    rec = {"gc_id": gc_id, "kind": "artifacts", "started_at": "2026-12-01T10:00:00Z",
           "ended_at": "2026-12-01T10:00:04Z", "applied": True, "candidates": 5, "deleted": 4,
           "bytes_freed": 7 * 2**20, "kept_past_cap": [{"item": "yt/abc/r1", "reason": "leased by a running run"}],
           "errors": []}
    rec.update(kw)
    return rec


def test_gc_records_are_stored_once_and_an_unreachable_store_is_false(store, tmp_path, caplog) -> None:
    from observability.api import record_gc
    from observability.queries import gc_runs

    assert record_gc(_gc_record("gc-a"), url=store.url) is True
    assert record_gc(_gc_record("gc-a", deleted=99), url=store.url) is True, "already stored: still True"
    assert record_gc({"kind": "artifacts"}, url=store.url) is False, "malformed: logged, not raised"
    log = tmp_path / "gc.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in (_gc_record("gc-a"), _gc_record("gc-b", applied=False,
                                                                                      deleted=0)))
                   + "\nnot json\n")
    first = ing.ingest_gc(store, log)
    again = ing.ingest_gc(store, log)
    assert first.gc_runs == 1 and again.gc_runs == 0 and len(first.failed) == 1 and "gc.jsonl:3" in first.failed[0]
    rows = {g.gc_id: g for g in gc_runs(store)}
    assert set(rows) == {"gc-a", "gc-b"} and rows["gc-a"].deleted == 4, "the first write of gc-a stands"
    assert rows["gc-a"].kept_past_cap == [{"item": "yt/abc/r1", "reason": "leased by a running run"}]
    assert rows["gc-b"].applied is False and rows["gc-a"].bytes_freed == 7 * 2**20
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    assert record_gc(_gc_record("gc-c"), url=f"postgresql+psycopg://postgres@127.0.0.1:{dead}/x?connect_timeout=2") \
        is False
    assert "gc-c not stored" in caplog.text


def test_the_main_jobs_summary_names_ood_gpu_and_gc(store, ood_spool, tmp_path) -> None:
    from observability.api import record_gc, summarize_store

    spool, _ = ood_spool
    shutil.copytree(spool, tmp_path / "spool")
    ing.ingest_spool(store, tmp_path / "spool")
    assert record_gc(_gc_record("gc-s"), url=store.url) and record_gc(_gc_record("gc-d", applied=False), url=store.url)
    summary = summarize_store(store)
    assert summary.serving_requests == 10 and summary.serving_ood == 4
    assert summary.gc_runs == 1 and summary.gc_bytes_freed == 7 * 2**20, "dry runs free nothing"
    assert summary.gpu_peak_bytes is None, "no extraction run measured a GPU in this store"
    text = "\n".join(summary.lines())
    assert "10 requests, 4 out of distribution" in text and "GPU peak n/a (no GPU measured)" in text
    assert "applied GC runs 1 (7.0 MiB freed)" in text


def test_serving_stage_p95_doubled_against_a_day_earlier(store, tmp_path) -> None:
    """Windows of a real ServiceMetrics registry: the model stage of v1 at 4 ms a day ago, 40 ms now (a new
    version after a promotion), fires keyed by stage and type; the extraction stage, unchanged, does not."""
    from common.fsio import atomic_write_json
    from inference.metrics import ServiceMetrics
    from observability.spool import snapshot, window_record

    now = utcnow()
    spool = tmp_path / "spool"
    for name, start, version, model_s in (("day", now - timedelta(days=1, minutes=5), "3", 0.004),
                                          ("now", now - timedelta(minutes=5), "4", 0.04)):
        m = ServiceMetrics()
        before = snapshot(m.registry)
        for _ in range(20):
            m.requests.labels("v1", version, "ok").inc()
            m.stage_seconds.labels("model", "v1", version).observe(model_s)
            m.stage_seconds.labels("features", "v1", version).observe(0.002)
        t0 = start.replace(tzinfo=UTC)
        atomic_write_json(spool / f"{name}.json", window_record(snapshot(m.registry), before, "svc:1", t0,
                                                                t0 + timedelta(minutes=1)))
    assert ing.ingest_spool(store, spool).serving_windows == 2
    ev = evaluate(Context(store=store, now=now), RULES)
    fired = {k: v for n, k, v in ev.firing if n == "ServingLatencyP95Doubled"}
    assert set(fired) == {"stage=model,model_type=v1"} and fired["stage=model,model_type=v1"] > 2, ev.firing
