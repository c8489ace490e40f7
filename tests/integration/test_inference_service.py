"""The inference service over real HTTP: a real uvicorn on a free port, real registered MLflow versions.

Model versions are contract-conformant reference pyfuncs (``testsupport.registry``); failures are real: a version
logged with ``fail_predict=True`` (its predict raises) and the config's ``fault_injection`` flag (a real config
path that makes a slot raise inside the service; documented as test-only in conf/inference.yaml).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference.config import parse_config
from inference.schemas import PredictResponse
from inference.server import ServerThread, free_port
from inference.service import assign_bucket
from registry import ops
from tests.conftest import RegistryStore
from testsupport.jsonschema_lite import validate

ROOT = Path(__file__).resolve().parents[2]


ADMIN_TOKEN = "test-admin-token-0123456789"


def inference_cfg(store: RegistryStore, **overrides: Any):
    raw = yaml.safe_load((ROOT / "conf" / "inference.yaml").read_text())
    token = store.root / "admin.token"
    token.write_text(ADMIN_TOKEN + "\n")
    raw.update(registry=str(store.config_path), request_modes=["features", "artifacts"], shadow=None,
               allowed_roots=[str(store.root)], admin={"token_env": "TRENDFLOW_TEST_UNSET_TOKEN",
                                                        "token_file": str(token)})
    raw.update(overrides)
    return parse_config(raw)


def features_row(store: RegistryStore, value: float = 0.5) -> dict[str, float]:
    return {c: value for c in store.columns if not c.startswith("mask__")}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> RegistryStore:
    s = RegistryStore(tmp_path_factory.mktemp("svc") / "mlflow")
    s.versions = {}
    for t in ("v2", "v1", "baseline"):
        v = s.log(t, seed={"v2": 1, "v1": 2, "baseline": 3}[t]).version
        assert ops.promote(s.client, s.cfg, t, v.version, "test setup").ok
        s.versions[t] = str(v.version)
    s.broken_v2 = str(s.log("v2", fail_predict=True).version.version)
    s.broken_v1 = str(s.log("v1", fail_predict=True).version.version)
    return s


@pytest.fixture(scope="module")
def server(store: RegistryStore):
    store.reconnect()
    cfg = inference_cfg(store, shadow={"slot": "baseline", "fraction": 1.0})
    with ServerThread(cfg) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        srv.http = client
        yield srv


def test_ready_reports_the_pinned_versions(server, store) -> None:
    r = server.http.get("/health/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["ready"] and body["triton"] == {"needed": False}
    assert {s: m["version"] for s, m in body["models"].items()} == store.versions
    assert all(m["alias"] == "stable" and m["sanity_ok"] for m in body["models"].values())
    assert server.http.get("/health/live").json() == {"status": "live"}


def test_prediction_follows_the_published_schema(server, store) -> None:
    published = server.http.get("/schema").json()
    openapi = server.http.get("/openapi.json").json()
    assert "/predict" in openapi["paths"] and "PredictResponse" in openapi["components"]["schemas"]
    body = {"features": features_row(store), "user_id": "u-1"}
    assert validate(body, published["request"]) == []
    r = server.http.post("/predict", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert validate(out, published["response"]) == []
    PredictResponse.model_validate(out)
    assert out["prediction_status"] == "ok" and out["fallback"] == []
    m = out["prediction"]["model"]
    assert (m["type"], m["version"], m["alias"]) == ("v2", store.versions["v2"], "stable")
    assert m["run_id"] and m["features_schema_version"] == store.spec.feature_schema_version
    v = out["prediction"]["values"]["views_21d"]
    assert v["p025"] <= v["p05"] <= v["p10"] <= v["p50"] <= v["p90"] <= v["p95"] <= v["p975"]
    import math

    assert v["p50"] == pytest.approx(max(0.0, math.expm1(v["log1p"]["p50"])))
    assert "experiment_bucket" not in out["prediction"]  # no A/B configured


def test_imputed_optional_features_are_warned(server, store) -> None:
    row = features_row(store)
    optional = [c for c in row if c not in {c for f in store.spec.features if f.critical for c in f.columns}][:3]
    for c in optional:
        row[c] = None
    out = server.http.post("/predict", json={"features": row}).json()
    w = next(w for w in out["warnings"] if w["code"] == "imputed_optional_features")
    assert set(optional) <= set(w["fields"])


def test_bad_input_is_a_422_naming_each_field(server, store) -> None:
    row = features_row(store)
    critical = sorted({c for f in store.spec.features if f.critical for c in f.columns})
    for c in critical:
        row.pop(c)
    row["typo_feature"] = 1.0
    r = server.http.post("/predict", json={"features": row})
    assert r.status_code == 422
    body = r.json()
    assert body["error_code"] == "missing_critical_feature"
    named = {(e["field"], e["code"]) for e in body["errors"]}
    assert {(f"features.{c}", "missing_critical_feature") for c in critical} <= named
    assert ("features.typo_feature", "unknown_field") in named
    cases = [
        (b"{not json", "invalid_json"),
        (json.dumps({"features": features_row(store), "artifacts_dir": "/x"}).encode(), "invalid_request"),
        (json.dumps({"video_path": "/x.mp4", "metadata": {}}).encode(), "mode_disabled"),
        (json.dumps([1, 2]).encode(), "invalid_request"),
        (json.dumps({"artifacts_dir": "/nonexistent/run"}).encode(), "path_not_allowed"),
    ]
    for raw, code in cases:
        r = server.http.post("/predict", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["error_code"] == code, (raw, r.text)


json_values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=3), max_leaves=6)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_requests_never_break_the_service(server, store, data) -> None:
    """Schema-driven fuzz: take a valid body and corrupt, drop or add fields at random; or send random JSON."""
    if data.draw(st.booleans()):
        body: Any = data.draw(st.dictionaries(st.sampled_from(["features", "artifacts_dir", "video_path", "metadata",
                                                               "user_id", "x"]), json_values, max_size=3))
    else:
        row: dict[str, Any] = features_row(store)
        cols = sorted(store.columns)
        for c in data.draw(st.lists(st.sampled_from(cols), max_size=6, unique=True)):
            row[c] = data.draw(json_values)
        for c in data.draw(st.lists(st.sampled_from(cols), max_size=3, unique=True)):
            row.pop(c, None)
        body = {"features": row}
    # Python's json writes NaN/Infinity literals (which the server's parser accepts): non-finite values are fuzzed too
    r = server.http.post("/predict", content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    assert r.status_code in (200, 422), r.text
    out = r.json()
    if r.status_code == 422:
        assert out["error_code"] and (out["errors"] or out["error_code"] in ("invalid_json",))
        assert all(e["field"] and e["code"] for e in out["errors"])
    else:
        PredictResponse.model_validate(out)


def test_shadow_runs_and_is_measured_never_returned(server, store) -> None:
    for i in range(5):
        out = server.http.post("/predict", json={"features": features_row(store, 0.1 * i), "user_id": f"s{i}"}).json()
        assert out["prediction"]["model"]["type"] == "v2" and out["prediction_status"] == "ok"
    text = ""
    for _ in range(200):  # shadow predictions complete after the responses
        text = server.http.get("/metrics").text
        if 'shadow_divergence_count{served_type="v2",shadow_type="baseline"}' in text:
            break
        threading.Event().wait(0.05)
    line = next(ln for ln in text.splitlines()
                if ln.startswith('shadow_divergence_count{served_type="v2",shadow_type="baseline"}'))
    assert float(line.split()[-1]) >= 5
    assert f'inference_requests_total{{model_type="v2",model_version="{store.versions["v2"]}",status="ok"}}' in text
    assert "model_load_seconds{" in text and "inference_seconds_bucket" in text


def test_load_16_concurrent_clients_no_errors(server, store) -> None:
    def worker(k: int) -> list[int]:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            return [c.post("/predict", json={"features": features_row(store, (k + i) / 100)}).status_code
                    for i in range(20)]

    with ThreadPoolExecutor(16) as pool:
        codes = [c for batch in pool.map(worker, range(16)) for c in batch]
    assert codes == [200] * 320
    text = server.http.get("/metrics").text
    batched = [ln for ln in text.splitlines() if ln.startswith('inference_batch_size_bucket{le="1.0",model_type="v2"}')]
    total = [ln for ln in text.splitlines() if ln.startswith('inference_batch_size_count{model_type="v2"}')]
    assert float(batched[0].split()[-1]) < float(total[0].split()[-1])  # some batches held more than one row


def test_alias_resolved_once_then_pinned_until_reload(store) -> None:
    store.reconnect()
    name = "trendflow-baseline"
    newer = str(store.log("baseline", seed=9).version.version)
    cfg = inference_cfg(store, models={"baseline": {"type": "baseline", "alias": "stable"}}, primary="baseline",
                        fallback=[])
    try:
        with ServerThread(cfg) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
            body = {"features": features_row(store)}
            assert http.post("/predict", json=body).json()["prediction"]["model"]["version"] == store.versions[
                "baseline"]
            store.client.set_registered_model_alias(name, "stable", newer)  # e.g. someone in the MLflow UI
            out = http.post("/predict", json=body).json()
            assert out["prediction"]["model"]["version"] == store.versions["baseline"]  # still pinned
            assert http.get("/health/ready").json()["models"]["baseline"]["version"] == store.versions["baseline"]
            # reload while 8 clients keep sending: no request is dropped
            stop = threading.Event()
            seen: list[tuple[int, str | None]] = []

            def hammer() -> None:
                with httpx.Client(base_url=srv.url, timeout=60) as c:
                    while not stop.is_set():
                        r = c.post("/predict", json=body)
                        seen.append((r.status_code, r.json().get("prediction", {}).get("model", {}).get("version")))

            threads = [threading.Thread(target=hammer) for _ in range(8)]
            for t in threads:
                t.start()
            threading.Event().wait(0.3)
            res = http.post("/admin/reload", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()
            threading.Event().wait(0.3)
            stop.set()
            for t in threads:
                t.join()
            assert res["models"]["baseline"]["version"] == newer
            assert seen and all(code == 200 for code, _ in seen)
            assert {v for _, v in seen} <= {store.versions["baseline"], newer}
            assert http.post("/predict", json=body).json()["prediction"]["model"]["version"] == newer
    finally:
        store.client.set_registered_model_alias(name, "stable", store.versions["baseline"])


def test_fallback_chain_v2_then_v1_then_baseline_then_503(store) -> None:
    store.reconnect()
    body = {"features": features_row(store)}
    # v2 pinned to a registered version whose predict raises (a real broken model version)
    models = {"v2": {"type": "v2", "version": int(store.broken_v2)}, "v1": {"type": "v1", "alias": "stable"},
              "baseline": {"type": "baseline", "alias": "stable"}}
    with ServerThread(inference_cfg(store, models=models)) as srv, httpx.Client(base_url=srv.url) as http:
        ready = http.get("/health/ready")
        assert ready.status_code == 503 and "sanity" in ready.json()["models"]["v2"]["error"]
        out = http.post("/predict", json=body).json()
        assert out["prediction_status"] == "degraded"
        assert out["prediction"]["model"]["type"] == "v1"
        assert out["fallback"][0]["slot"] == "v2" and out["fallback"][0]["error_code"] == "model_error"
        assert out["fallback"][0]["version"] == store.broken_v2
        assert any(w["code"] == "fallback" for w in out["warnings"])
        assert 'inference_fallbacks_total{from_type="v2",to_type="v1"} 1.0' in http.get("/metrics").text
    # and v1 failing too (config fault injection, a real code path in the service): the baseline answers
    with ServerThread(inference_cfg(store, models=models, fault_injection={"v1": "raise"})) as srv, \
            httpx.Client(base_url=srv.url) as http:
        out = http.post("/predict", json=body).json()
        assert out["prediction_status"] == "degraded" and out["prediction"]["model"]["type"] == "baseline"
        assert [(a["slot"], a["error_code"]) for a in out["fallback"]] == [("v2", "model_error"),
                                                                           ("v1", "fault_injected")]
    # everything failing: a clear 503 with an error code and every attempt
    with ServerThread(inference_cfg(store, models=models, fault_injection={"v1": "raise", "baseline": "raise"})) \
            as srv, httpx.Client(base_url=srv.url) as http:
        r = http.post("/predict", json=body)
        assert r.status_code == 503 and r.json()["error_code"] == "all_models_failed"
        assert [a["slot"] for a in r.json()["attempts"]] == ["v2", "v1", "baseline"]


def test_missing_optional_fallback_is_degraded_not_503_unless_required(store) -> None:
    """A broken optional fallback slot (v1 pinned to a version whose predict raises) leaves the service ready
    with `degraded` in the body and the gauge at 1; marked `required: true` the same slot makes it 503."""
    store.reconnect()
    models = {"v2": {"type": "v2", "alias": "stable"}, "v1": {"type": "v1", "version": int(store.broken_v1)},
              "baseline": {"type": "baseline", "alias": "stable"}}
    with ServerThread(inference_cfg(store, models=models)) as srv, httpx.Client(base_url=srv.url) as http:
        ready = http.get("/health/ready")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["ready"] and body["status"] == "degraded" and body["degraded"] == ["v1"]
        assert body["required"] == ["v2"] and "sanity" in body["models"]["v1"]["error"]
        assert "service_degraded_slots 1.0" in http.get("/metrics").text
        out = http.post("/predict", json={"features": features_row(store)}).json()
        assert out["prediction_status"] == "ok" and out["prediction"]["model"]["type"] == "v2"
    models["v1"]["required"] = True
    with ServerThread(inference_cfg(store, models=models)) as srv, httpx.Client(base_url=srv.url) as http:
        ready = http.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["required"] == ["v2", "v1"]


def test_a_request_may_name_its_model_and_the_response_says_so(server, store) -> None:
    row = {"features": features_row(store)}
    for asked, slot in (({"type": "v1"}, "v1"), ("baseline", "baseline"), ({"slot": "v2"}, "v2")):
        r = server.http.post("/predict", json={**row, "model": asked})
        assert r.status_code == 200, r.text
        out = r.json()
        PredictResponse.model_validate(out)
        assert out["prediction"]["model"]["slot"] == slot and out["prediction"]["model"]["requested"] == asked
        assert out["prediction"]["model"]["version"] == store.versions[slot] and out["fallback"] == []
    default = server.http.post("/predict", json=row).json()
    assert "requested" not in default["prediction"]["model"] or default["prediction"]["model"]["requested"] is None
    for asked in ({"type": "v3"}, "nope", {"slot": "canary"}):
        r = server.http.post("/predict", json={**row, "model": asked})
        assert r.status_code == 422 and r.json()["error_code"] == "model_not_served"
        assert json.dumps(asked) in r.json()["message"] and r.json()["errors"][0]["field"] == "model"


def test_asking_for_a_configured_model_that_failed_to_load_is_a_422_naming_it(store) -> None:
    store.reconnect()
    models = {"v2": {"type": "v2", "alias": "stable"}, "v1": {"type": "v1", "version": int(store.broken_v1)},
              "baseline": {"type": "baseline", "alias": "stable"}}
    with ServerThread(inference_cfg(store, models=models)) as srv, httpx.Client(base_url=srv.url) as http:
        r = http.post("/predict", json={"features": features_row(store), "model": {"type": "v1"}})
        assert r.status_code == 422 and r.json()["error_code"] == "model_not_served"
        assert "slot v1" in r.json()["message"] and "sanity" in r.json()["message"]


def test_a_version_pinned_past_the_gates_with_an_incompatible_schema_is_not_served(store) -> None:
    """Pinning by number (or an alias set by hand in the MLflow UI) skips the promotion gates: the service checks
    the version's feature_schema_version against its serving spec itself and falls back."""
    store.reconnect()
    newer = str(store.log("v2", feature_schema_version="2.0.0").version.version)  # a breaking MAJOR
    models = {"v2": {"type": "v2", "version": int(newer)}, "v1": {"type": "v1", "alias": "stable"},
              "baseline": {"type": "baseline", "alias": "stable"}}
    with ServerThread(inference_cfg(store, models=models)) as srv, httpx.Client(base_url=srv.url) as http:
        ready = http.get("/health/ready")
        assert ready.status_code == 503
        err = ready.json()["models"]["v2"]["error"]
        assert err.startswith("schema_incompatible: breaking: model schema 2.0.0 vs serving 1.1.0"), err
        out = http.post("/predict", json={"features": features_row(store)}).json()
        assert out["prediction_status"] == "degraded" and out["prediction"]["model"]["type"] == "v1"


def test_a_1_0_0_model_passes_the_schema_gate_and_is_served_on_the_1_1_0_spec(store) -> None:
    """feature_spec 1.1.0 adds meta_platform (MINOR): a version trained on 1.0.0 (its signature lacks the column)
    passes the registry's schema gate and keeps being served, with or without the new column in the request."""
    store.reconnect()
    old_columns = [c for c in store.columns if c not in ("meta_platform", "mask__meta_platform")]
    assert len(old_columns) == len(store.columns) - 2
    v = store.log("v1", columns=old_columns, feature_schema_version="1.0.0").version
    res = ops.promote(store.client, store.cfg, "v1", v.version, "a 1.0.0 model on the 1.1.0 spec")
    gate = next(g for g in res.gates if g.name == "schema")
    assert gate.passed and gate.details["serving"] == "1.1.0" and gate.details["model"] == "1.0.0", gate.reason
    models = {"v2": {"type": "v2", "alias": "stable"}, "v1": {"type": "v1", "version": int(v.version)}}
    try:
        with ServerThread(inference_cfg(store, models=models, fallback=["v1"])) as srv, \
                httpx.Client(base_url=srv.url) as http:
            assert http.get("/health/ready").json()["status"] == "ok"
            row = features_row(store)
            for feats in (row, {k: x for k, x in row.items() if k != "meta_platform"}):
                r = http.post("/predict", json={"features": feats, "model": {"type": "v1"}})
                assert r.status_code == 200, r.text
                assert r.json()["prediction"]["model"]["version"] == str(v.version)
    finally:  # the module's other tests expect the original stable v1
        store.client.set_registered_model_alias(store.cfg.name_of("v1"), "stable", store.versions["v1"])


def test_primary_is_chosen_by_measured_quality_on_one_split(store) -> None:
    """primary_by (default test/mae_mean): with every slot's version tagged on one split, the lowest MAE answers
    first whatever the configured primary; tags on different splits leave the configured order."""
    store.reconnect()
    maes = {"v2": "0.33", "v1": "0.31", "baseline": "0.30"}
    pins = {t: store.log(t, tags={"test/mae_mean": maes[t], "split_hash": "same-split"}).version.version
            for t in maes}
    models = {t: {"type": t, "version": int(v)} for t, v in pins.items()}
    with ServerThread(inference_cfg(store, models=models)) as srv, httpx.Client(base_url=srv.url) as http:
        ready = http.get("/health/ready").json()
        assert ready["primary"] == "baseline" and ready["fallback"] == ["v1", "v2"], ready
        assert ready["chain_order"].startswith("by test/mae_mean on split same-split")
        out = http.post("/predict", json={"features": features_row(store)}).json()
        assert out["prediction"]["model"]["type"] == "baseline" and out["prediction_status"] == "ok"
    other = store.log("v1", tags={"test/mae_mean": "0.10", "split_hash": "another-split"}).version.version
    models["v1"] = {"type": "v1", "version": int(other)}
    with ServerThread(inference_cfg(store, models=models)) as srv, httpx.Client(base_url=srv.url) as http:
        ready = http.get("/health/ready").json()
        assert ready["primary"] == "v2" and ready["chain_order"].startswith("configured order")


def test_ab_split_is_stable_and_reported(store) -> None:
    store.reconnect()
    ab = {"key": "user_id", "salt": "exp-test", "arms": [{"bucket": "A", "slot": "v2", "weight": 0.5},
                                                         {"bucket": "B", "slot": "v1", "weight": 0.5}]}
    arms = [("A", "v2", 0.5), ("B", "v1", 0.5)]
    with ServerThread(inference_cfg(store, ab=ab)) as srv, httpx.Client(base_url=srv.url) as http:
        got = {}
        for i in range(60):
            out = http.post("/predict", json={"features": features_row(store), "user_id": f"user{i}"}).json()
            got[f"user{i}"] = (out["prediction"]["experiment_bucket"], out["prediction"]["model"]["type"])
        assert got == {u: assign_bucket(u, arms, "exp-test") for u in got}
        assert 15 < sum(b == "A" for b, _ in got.values()) < 45
        again = http.post("/predict", json={"features": features_row(store), "user_id": "user7"}).json()
        assert again["prediction"]["experiment_bucket"] == got["user7"][0]


def test_ready_is_false_while_triton_is_down_in_video_mode(store) -> None:
    store.reconnect()
    cfg = inference_cfg(store, request_modes=["features", "video"], triton={"url": f"127.0.0.1:{free_port()}",
                                                                             "timeout_s": 0.5})
    with ServerThread(cfg) as srv, httpx.Client(base_url=srv.url) as http:
        r = http.get("/health/ready")
        assert r.status_code == 503
        body = r.json()
        assert body["triton"]["needed"] and body["triton"]["reachable"] is False
        assert all(m["sanity_ok"] for m in body["models"].values())  # models are fine; Triton is the reason
        assert http.post("/predict", json={"features": features_row(store)}).status_code == 200


def test_lazy_slot_loads_on_first_use_and_is_pinned(store) -> None:
    store.reconnect()
    models = {"v2": {"type": "v2", "alias": "stable"}, "baseline": {"type": "baseline", "alias": "stable"},
              "canary": {"type": "v1", "version": int(store.versions["v1"]), "preload": False}}
    ab = {"key": "user_id", "salt": "canary", "arms": [{"bucket": "stable", "slot": "v2", "weight": 0.5},
                                                       {"bucket": "canary", "slot": "canary", "weight": 0.5}]}
    with ServerThread(inference_cfg(store, models=models, fallback=["baseline"], ab=ab)) as srv, \
            httpx.Client(base_url=srv.url) as http:
        ready = http.get("/health/ready").json()
        assert ready["ready"] and "canary" not in ready["models"]  # not Tier 0: not needed for readiness
        user = next(f"u{i}" for i in range(100)
                    if assign_bucket(f"u{i}", [("stable", "v2", 0.5), ("canary", "canary", 0.5)], "canary")[0]
                    == "canary")
        out = http.post("/predict", json={"features": features_row(store), "user_id": user}).json()
        assert out["prediction"]["experiment_bucket"] == "canary"
        assert (out["prediction"]["model"]["slot"], out["prediction"]["model"]["type"],
                out["prediction"]["model"]["version"]) == ("canary", "v1", store.versions["v1"])
        assert http.get("/health/ready").json()["models"]["canary"]["sanity_ok"]


def test_serve_cli_process_reloads_on_sighup(store, tmp_path: Path) -> None:
    import signal

    from inference.server import ServerProcess, wait_ready

    store.reconnect()
    raw = yaml.safe_load((ROOT / "conf" / "inference.yaml").read_text())
    raw.update(registry=str(store.config_path), request_modes=["features"], shadow=None, primary="v1",
               fallback=[], models={"v1": {"type": "v1", "alias": "stable"}})
    cfg_path = tmp_path / "inference.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    newer = str(store.log("v1", seed=11).version.version)
    try:
        with ServerProcess(cfg_path, log_path=tmp_path / "serve.log") as proc, \
                httpx.Client(base_url=proc.url, timeout=60) as http:
            assert http.get("/health/ready").json()["models"]["v1"]["version"] == store.versions["v1"]
            store.client.set_registered_model_alias("trendflow-v1-late-fusion", "stable", newer)
            assert http.post("/predict", json={"features": features_row(store)}).json()[
                "prediction"]["model"]["version"] == store.versions["v1"]
            proc.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if wait_ready(proc.url)["models"]["v1"]["version"] == newer:
                    break
                threading.Event().wait(0.2)
            assert http.post("/predict", json={"features": features_row(store)}).json()[
                "prediction"]["model"]["version"] == newer
            assert "model_reloads_total{outcome=\"ok\"} 1.0" in http.get("/metrics").text
    finally:
        store.client.set_registered_model_alias("trendflow-v1-late-fusion", "stable", store.versions["v1"])
