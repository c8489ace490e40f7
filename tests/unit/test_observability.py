"""Pure units of the observability layer: histogram_quantile against hand-computed values, the manifest and
serving-window records, the alert rule file, durations and the config (no database, no server)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from common.errors import ConfigError
from observability import histogram
from observability.alerts import EVALUATORS, load_rules
from observability.config import load_config
from observability.ingest import extraction_record, serving_record
from observability.queries import RunFilter, parse_duration
from observability.spool import snapshot, window_record

ROOT = Path(__file__).resolve().parents[2]
B = (1.0, 2.0, 4.0)


def test_histogram_quantile_hand_computed() -> None:
    counts = [2, 2, 4, 0]  # (0,1]: 2, (1,2]: 2, (2,4]: 4, +Inf: 0 -> cumulative 2, 4, 8, 8
    assert histogram.histogram_quantile(0.25, counts, B) == pytest.approx(1.0)  # rank 2 -> end of (0,1]
    assert histogram.histogram_quantile(0.5, counts, B) == pytest.approx(2.0)  # rank 4: 1 + 1 * (2/2)
    assert histogram.histogram_quantile(0.75, counts, B) == pytest.approx(3.0)  # rank 6: 2 + 2 * (2/4)
    assert histogram.histogram_quantile(0.9, counts, B) == pytest.approx(3.6)  # rank 7.2: 2 + 2 * (3.2/4)
    assert histogram.histogram_quantile(0.0, counts, B) == pytest.approx(0.0)


def test_histogram_quantile_edges_follow_prometheus() -> None:
    assert histogram.histogram_quantile(0.5, [1, 0, 0, 3], B) == 4.0, "a rank in +Inf: the highest finite bound"
    assert math.isnan(histogram.histogram_quantile(0.5, [0, 0, 0, 0], B))
    assert histogram.histogram_quantile(-0.1, [1, 0, 0, 0], B) == -math.inf
    assert histogram.histogram_quantile(1.1, [1, 0, 0, 0], B) == math.inf
    with pytest.raises(ValueError, match="expected 4"):
        histogram.histogram_quantile(0.5, [1, 2], B)


def test_bucketize_uses_le_bounds_and_merges_by_adding() -> None:
    assert histogram.bucketize([1.0, 1.5, 2.0, 4.0, 5.0], B) == [1, 2, 1, 1]  # 1.0 is le=1; 5.0 is +Inf
    merged = histogram.merge([[1, 0, 0, 0], [0, 1, 0, 2]], 4)
    assert merged == [1, 1, 0, 2]
    assert len(histogram.empty()) == len(histogram.LATENCY_BUCKETS) + 1


def _manifest(video: str, start: str, end: str, **comps) -> dict:
    return {"run_id": "r1", "platform_id": "yt", "video_id": video, "started_at": start, "finished_at": end,
            "profile": "fast", "status": "ok" if all(c.get("status") != "error" for c in comps.values()) else "partial",
            "resolved_models": {"visual": {"model": "visual_embed_fast", "version": "1"}},
            "frames_sampled": 10, "peak_rss_bytes": 500 * 2**20,
            "plan": {"videos": 2, "predicted_makespan_s": 3.0,
                     "devices": {"cpu": {"budget_bytes": 2**30, "kind": "cpu"}}},
            "components": comps}


def _comp(status="ok", lat=0.1, hit=False, batch=8, code=None, retries=0) -> dict:
    return {"status": status, "latency_s": lat, "cache_hit": hit, "batch_size": batch, "error_code": code,
            "retry_count": retries}


def test_extraction_record_from_manifests() -> None:
    a = _manifest("a", "2026-12-01T10:00:00Z", "2026-12-01T10:00:02Z", visual=_comp(lat=0.3, batch=8),
                  faces=_comp(status="error", code="out_of_memory", batch=0))
    b = _manifest("b", "2026-12-01T10:00:01Z", "2026-12-01T10:00:04Z", visual=_comp(lat=1.5, hit=True, retries=2),
                  faces=_comp(lat=0.2, batch=4))
    rec = extraction_record("r1", [b, a], source="x")
    assert rec.run_key == "extraction:r1" and rec.status == "partial" and rec.fields["videos"] == 2
    assert rec.fields["measured_makespan_s"] == 4.0 and rec.fields["predicted_makespan_s"] == 3.0
    assert rec.fields["frames"] == 20 and rec.fields["frames_per_s"] == 5.0 and rec.fields["videos_per_h"] == 1800
    assert rec.fields["budget_bytes"] == 2**30 and rec.fields["peak_rss_bytes"] == 500 * 2**20
    assert rec.fields["oom_count"] == 1 and rec.fields["errors"] == 1 and rec.fields["cache_hit_rate"] == 0.25
    comps = {c.component: c for c in rec.components}
    v = comps["visual"]
    assert v.model == "visual_embed_fast:1" and v.n == 2 and v.cache_hits == 1 and v.retries == 2
    assert v.batch_sizes == {"8": 1}, "a reused artifact sent no batch"
    assert v.latency_sum_s == pytest.approx(1.8) and sum(v.latency_buckets) == 2
    assert comps["faces"].error_codes == {"out_of_memory": 1} and comps["faces"].status_counts == {"error": 1, "ok": 1}
    assert extraction_record("r1", [a, b]).fingerprint() == rec.fingerprint(), "order of manifests does not matter"


def test_serving_window_from_a_real_service_registry() -> None:
    from datetime import UTC, datetime

    from inference.metrics import ServiceMetrics

    m = ServiceMetrics()
    before = snapshot(m.registry)
    for secs in (0.004, 0.004, 0.03, 0.3):
        m.requests.labels("v1", "3", "ok").inc()
        m.request_seconds.labels("features").observe(secs)
    m.fallbacks.labels("v2", "v1").inc()
    m.errors.labels("v2", "7", "model_error").inc()
    m.shadow_divergence.labels("v1", "baseline").observe(0.2)
    m.shadow_divergence.labels("v1", "baseline").observe(0.4)
    m.prediction_p50.labels("views_7d").observe(5.0)
    m.prediction_p50.labels("views_7d").observe(7.0)
    m.prediction_width.labels("views_7d").observe(2.0)
    m.prediction_width.labels("views_7d").observe(2.0)
    m.model_load_seconds.labels("v1", "3", "v1").set(1.25)
    t0, t1 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC), datetime(2026, 12, 1, 10, 1, tzinfo=UTC)
    w = window_record(snapshot(m.registry), before, "svc:8000", t0, t1)
    assert w["requests"] == 4 and w["requests_by_version"] == {"v1:3": 4} and w["fallbacks"] == 1
    assert w["errors_by_code"] == {"model_error": 1} and w["shadow_divergence_mean"] == pytest.approx(0.3)
    assert w["predictions"]["views_7d"] == {"p50_mean": 6.0, "width_mean": 2.0, "n": 2}
    assert w["model_loads"] == [{"model": "v1", "version": "3", "seconds": 1.25, "observed_at": t1.isoformat()}]
    h = w["latency"]["request:features"]
    assert sum(h["counts"]) == 4 and h["sum"] == pytest.approx(0.338)
    rec, row = serving_record(w)
    (comp,) = rec.components
    assert comp.n == 4 and histogram.histogram_quantile(0.5, comp.latency_buckets) == pytest.approx(0.005), \
        "the service's bounds are a subset of the store's: the quantile is unchanged by re-bucketing"
    assert row["window_s"] == 60.0 and rec.run_key == "serving:svc:8000:2026-12-01T10:00:00"
    assert w["ood"] == 0 and w["ood_features"] == {} and row["ood"] == 0
    again = window_record(snapshot(m.registry), snapshot(m.registry), "svc:8000", t1, t1)
    assert again["requests"] == 0 and again["model_loads"] == [], "the next window counts only what is new"


def test_every_alert_rule_has_an_in_process_evaluator_and_a_runbook() -> None:
    rules = load_rules(ROOT / "conf" / "alerts.yaml")
    names = {r.name for r in rules}
    assert names == set(EVALUATORS), "conf/alerts.yaml and observability.alerts.EVALUATORS name the same alerts"
    doc = (ROOT / "docs" / "observability.md").read_text().lower()
    for r in rules:
        assert r.severity in ("critical", "warning") and r.summary
        anchor = r.runbook_url.split("#")[1]
        assert re.search(rf"^#+ .*{anchor}", doc, re.M), f"docs/observability.md has no runbook section {anchor}"


def test_bad_inputs_are_named() -> None:
    assert parse_duration("7d").total_seconds() == 7 * 86400 and parse_duration("90s").total_seconds() == 90
    with pytest.raises(ConfigError, match="'7days'"):
        parse_duration("7days")
    with pytest.raises(ConfigError, match="unknown run kind 'batch'"):
        RunFilter(kind="batch")


def test_config_typo_fails_naming_the_key(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "conf" / "observability.yaml")
    assert cfg.window_s == 60 and cfg.admin.token_env == "TRENDFLOW_ADMIN_TOKEN"
    bad = tmp_path / "o.yaml"
    bad.write_text("urll: sqlite:///x.db\n")
    with pytest.raises(ConfigError, match="urll"):
        load_config(bad)


def test_store_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    from observability.config import DEFAULT_URL, ObservabilityConfig, store_url

    monkeypatch.delenv("TRENDFLOW_OBSERVABILITY_URL", raising=False)
    assert store_url(ObservabilityConfig()) == DEFAULT_URL and DEFAULT_URL.endswith(".trendflow/observability.db")
    monkeypatch.setenv("TRENDFLOW_OBSERVABILITY_URL", "postgresql+psycopg://u@127.0.0.1/x")
    assert store_url(ObservabilityConfig()) == "postgresql+psycopg://u@127.0.0.1/x"
    assert store_url(ObservabilityConfig(url="sqlite:///y.db")) == "sqlite:///y.db"


def test_serving_window_counts_out_of_distribution_answers_and_stage_histograms() -> None:
    from datetime import UTC, datetime

    from inference.metrics import ServiceMetrics

    m = ServiceMetrics()
    before = snapshot(m.registry)
    for _ in range(3):
        m.requests.labels("v1", "3", "ok").inc()
    for flagged in (["views_log", "age_hours"], ["views_log"]):
        m.out_of_distribution.labels("v1").inc()
        for f in flagged:
            m.ood_features.labels(f).inc()
    m.stage_seconds.labels("model", "v1", "3").observe(0.004)
    m.stage_seconds.labels("model", "v1", "3").observe(0.04)
    t0, t1 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC), datetime(2026, 12, 1, 10, 1, tzinfo=UTC)
    w = window_record(snapshot(m.registry), before, "svc:8000", t0, t1)
    assert w["ood"] == 2 and w["ood_features"] == {"views_log": 2, "age_hours": 1}
    h = w["latency"]["stage:model:v1:3"]
    assert h["bounds"] == list(histogram.LATENCY_BUCKETS), "the service's buckets are the store's, defined once"
    rec, row = serving_record(w)
    assert row["ood"] == 2 and row["ood_features"] == {"views_log": 2, "age_hours": 1}
    assert rec.fields["metrics"]["ood"] == 2


def _gc(**kw) -> dict:
    rec = {"gc_id": "gc-1", "kind": "artifacts", "started_at": "2026-12-01T10:00:00Z",
           "ended_at": "2026-12-01T10:00:05Z", "applied": True, "candidates": 4, "deleted": 3,
           "bytes_freed": 3 * 2**20, "kept_past_cap": [{"item": "yt/v1/r1", "reason": "leased"}], "errors": []}
    rec.update(kw)
    return rec


def test_gc_record_becomes_a_row_and_bad_ones_are_named() -> None:
    from datetime import datetime

    from observability.ingest import gc_row

    row = gc_row(_gc())
    assert row["gc_id"] == "gc-1" and row["started_at"] == datetime(2026, 12, 1, 10, 0, 0) and row["applied"] is True
    assert row["deleted"] == 3 and row["bytes_freed"] == 3 * 2**20
    assert row["kept_past_cap"] == [{"item": "yt/v1/r1", "reason": "leased"}]
    assert gc_row(_gc(ended_at=None, errors="disk full"))["errors"] == ["disk full"]
    with pytest.raises(ValueError, match="'gc_id'"):
        gc_row(_gc(gc_id=""))
    with pytest.raises(ValueError, match="'bytes_freed' is 'lots'"):
        gc_row(_gc(bytes_freed="lots"))


def test_extraction_without_a_gpu_records_null_not_zero() -> None:
    a = _manifest("a", "2026-12-01T10:00:00Z", "2026-12-01T10:00:02Z", visual=_comp())
    a.update(gpu_peak_bytes=None, gpu_total_bytes=None)
    a["components"]["visual"]["gpu_peak_bytes"] = None
    rec = extraction_record("r1", [a])
    assert rec.fields["gpu_peak_bytes"] is None and rec.fields["gpu_budget_bytes"] is None
    assert rec.components[0].gpu_peak_bytes is None
    old = _manifest("b", "2026-12-01T10:00:00Z", "2026-12-01T10:00:02Z", visual=_comp())  # before GPU numbers
    assert extraction_record("r2", [old]).fields["gpu_peak_bytes"] is None


def test_extraction_gpu_peaks_per_run_and_component_vs_the_plans_gpu_budget() -> None:
    gib = 2**30
    a = _manifest("a", "2026-12-01T10:00:00Z", "2026-12-01T10:00:02Z", visual=_comp(), faces=_comp())
    b = _manifest("b", "2026-12-01T10:00:01Z", "2026-12-01T10:00:04Z", visual=_comp(), faces=_comp())
    for m, (v, f) in ((a, (3 * gib, 5 * gib)), (b, (4 * gib, 2 * gib))):
        m["components"]["visual"]["gpu_peak_bytes"], m["components"]["faces"]["gpu_peak_bytes"] = v, f
        m.update(gpu_peak_bytes=max(v, f), gpu_total_bytes=16 * gib)
    rec = extraction_record("r1", [a, b])
    comps = {c.component: c.gpu_peak_bytes for c in rec.components}
    assert comps == {"visual": 4 * gib, "faces": 5 * gib}, "each component's peak over the run's videos"
    assert rec.fields["gpu_peak_bytes"] == 5 * gib
    assert rec.fields["gpu_budget_bytes"] == 16 * gib, "no GPU in the plan: the GPUs' total memory"
    assert rec.fields["budget_bytes"] == gib, "the CPU budget is not mixed with the GPU's"
    for m in (a, b):
        m["plan"]["devices"]["gpu0"] = {"kind": "gpu", "budget_bytes": 12 * gib}
    planned = extraction_record("r1", [a, b])
    assert planned.fields["gpu_budget_bytes"] == 12 * gib and planned.fields["budget_bytes"] == gib


def test_gpu_peak_sampler_tracks_each_windows_peak() -> None:
    import time

    from common.gpu import GpuPeakSampler, gpu_peak_sampler, nvidia_driver_present

    if not nvidia_driver_present():
        assert gpu_peak_sampler() is None, "no GPU: no sampler, so manifests say null"
    else:
        real = gpu_peak_sampler()
        assert real is not None and real.total_bytes > 0 and 0 <= real.used() <= real.total_bytes
    # A GPU whose use moves on demand cannot be produced on a CPU host: a reader function stands in for NVML.
    used = [1000]
    sampler = GpuPeakSampler(lambda i: ("fake", 10_000, 10_000 - used[0]), count=2, period_s=0.002).start()
    try:
        with sampler.window() as outer:
            with sampler.window() as inner:
                used[0] = 4000
                time.sleep(0.05)
                used[0] = 1500
            time.sleep(0.02)
        assert inner.peak == 8000 and outer.peak == 8000, "two GPUs of 4000 used each, summed"
        with sampler.window() as later:
            time.sleep(0.02)
        assert later.peak == 3000 and sampler.total_bytes == 20_000
    finally:
        sampler.stop()
