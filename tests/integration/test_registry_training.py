"""The real thing: models trained by ``training.train.run`` (small settings, synthetic table) are registered,
promoted through the gates, served, and answer exactly what the trained model object predicts."""

from __future__ import annotations

import math

import httpx
import pytest
import yaml

from inference.config import parse_config
from inference.server import ServerThread
from registry import ops
from registry.config import load_config
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def quick_train(store, table, exp: str, seed: int = 0, *overrides: str):
    from training.config import compose
    from training.train import run

    extra = (["model.iterations=120", "model.quantile_iterations=60"] if exp == "baseline"
             else ["trainer.max_epochs=2", "model.d_model=32"] if exp == "v2" else ["trainer.max_epochs=2"])
    return run(compose([f"+exp={exp}", f"data.path={table}", f"tracking.uri={store.cfg.resolved_tracking_uri()}",
                        f"tracking.artifact_root={store.root / 'artifacts'}", "tracking.plots=false",
                        "trainer.progress_bar=false", "intervals.calibration=split", f"seed={seed}", *extra,
                        *overrides]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    import features
    from demo.synthetic_table import generate_table, write_table
    from tests.conftest import RegistryStore

    tmp = tmp_path_factory.mktemp("trained")
    store = RegistryStore(tmp / "mlflow")
    spec = features.load_spec()
    table = tmp / "table.parquet"
    write_table(generate_table(1500, spec, seed=0), table, spec, 0)
    runs = {exp: quick_train(store, table, exp) for exp in ("baseline", "v2")}
    store.reconnect()
    # Quick models on 1,500 rows are not held to the 88-92% band (training's own benchmark is); widen it here.
    raw = yaml.safe_load(store.config_path.read_text())
    raw["gates"]["coverage_tolerance"] = 0.08
    store.config_path.write_text(yaml.safe_dump(raw))
    store.cfg = load_config(store.config_path)
    return store, table, runs


def test_trained_versions_pass_the_gates_and_serve_identical_predictions(trained) -> None:
    store, _, runs = trained
    for exp, (_, objects) in runs.items():
        res = ops.promote(store.client, store.cfg, exp, objects["model_version"], "quick-trained")
        assert res.ok, [g.to_dict() for g in res.failed]
        schema = next(g for g in res.gates if g.name == "schema")
        assert "content: identical" in schema.reason  # the model carries its feature_spec.yaml
    raw = yaml.safe_load((REPO_ROOT / "conf" / "inference.yaml").read_text())
    raw.update(registry=str(store.config_path), request_modes=["features"], shadow=None,
               models={"v2": {"type": "v2", "alias": "stable"}, "baseline": {"type": "baseline", "alias": "stable"}},
               primary="v2", fallback=["baseline"])
    _, v2_objects = runs["v2"]
    test = v2_objects["test_frame"]
    cols = v2_objects["columns"].features
    with ServerThread(parse_config(raw)) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        ready = http.get("/health/ready").json()
        assert ready["ready"], ready
        assert ready["models"]["v2"]["version"] == str(v2_objects["model_version"])
        # primary_by: both versions were trained on one split, so the measured test MAE orders the chain
        best = min(runs, key=lambda e: runs[e].metrics["test/mae_mean"])
        assert ready["primary"] == best and ready["chain_order"].startswith("by test/mae_mean"), ready
        for i in range(5):
            row = test.iloc[[i]]
            body = {"features": {c: (None if math.isnan(v) else float(v)) for c, v in row[cols].iloc[0].items()},
                    "model": {"type": "v2"}}  # asked for by name: v2 answers whatever the measured order
            out = http.post("/predict", json=body).json()
            assert out["prediction"]["model"]["run_id"] == v2_objects["run_id"]
            assert out["prediction"]["model"]["semver"] == v2_objects["semver"]
            expected = v2_objects["model"].predict(row[cols].astype("float64")).iloc[0]
            # the documented out-of-distribution rule (inference/ood.py): confidence x 0.5 per feature outside
            ood = next((w["fields"] for w in out["warnings"] if w["code"] == "out_of_distribution"), [])
            for t, v in out["prediction"]["values"].items():
                assert v["log1p"]["p50"] == pytest.approx(expected[f"{t}_p50"], rel=1e-6, abs=1e-6)
                assert v["confidence_score"] == pytest.approx(expected[f"{t}_confidence"] * 0.5 ** len(ood),
                                                              rel=1e-6, abs=1e-6)


def test_retrain_is_compared_on_the_same_test_split(trained) -> None:
    store, table, runs = trained
    if ops.alias_version(store.client, "trendflow-baseline", "stable") is None:
        assert ops.promote(store.client, store.cfg, "baseline", runs["baseline"][1]["model_version"], "first").ok
    _, objects = quick_train(store, table, "baseline", seed=1)
    store.reconnect()
    stable = ops.alias_version(store.client, "trendflow-baseline", "stable")
    res = ops.promote(store.client, store.cfg, "baseline", objects["model_version"], "retrain seed 1")
    metrics_gate = next(g for g in res.gates if g.name == "metrics")
    assert {"split_hash", "dataset_hash"} <= set(metrics_gate.details["split_keys_checked"])
    table_ = metrics_gate.details["metrics"]
    assert metrics_gate.passed == all(r["ok"] for r in table_.values())
    after = ops.alias_version(store.client, "trendflow-baseline", "stable")
    assert str(after.version) == (str(objects["model_version"]) if res.ok else str(stable.version))


def test_a_retrain_on_a_grown_table_is_rescored_against_stable_on_rows_neither_has_seen(tmp_path) -> None:
    """Different test splits (the table grew): the gate re-scores both versions itself on the candidate's test rows
    after the stable's test cut, and refuses when that cannot be done honestly."""
    import numpy as np
    import pandas as pd

    import features
    from demo.synthetic_table import generate_table, write_table
    from tests.conftest import RegistryStore
    from training.metrics import point_metrics

    store, spec = RegistryStore(tmp_path / "mlflow"), features.load_spec()
    small, grown = tmp_path / "small.parquet", tmp_path / "grown.parquet"
    write_table(generate_table(1500, spec, seed=0), small, spec, 0)
    write_table(generate_table(2500, spec, seed=3), grown, spec, 3)
    _, old = quick_train(store, small, "baseline")
    # the retrain also holds out more (20% instead of 10%): its test split starts before the stable's
    _, new = quick_train(store, grown, "baseline", 0, "data.split.train=0.6", "data.split.test=0.2")
    store.reconnect()
    # quick models are held to a wider coverage band, as in `trained`
    loose = store.cfg.gates.model_copy(update={"coverage_tolerance": 0.08, "rescore_min_rows": 100})
    cfg = store.cfg.model_copy(update={"gates": loose})
    assert ops.promote(store.client, cfg, "baseline", old["model_version"], "first").ok

    def metrics_gate(c, reason):
        res = ops.promote(store.client, c, "baseline", new["model_version"], reason)
        return res, next(g for g in res.gates if g.name == "metrics")

    def gates(**kw):
        return cfg.model_copy(update={"gates": cfg.gates.model_copy(update=kw)})

    # switched off: the old behaviour, a refusal naming the differing split keys
    res, g = metrics_gate(gates(rescore_on_split_change=False), "rescoring off")
    assert not res.ok and "different test split" in g.reason and "re-scored" not in g.reason
    # too few common unseen rows
    res, g = metrics_gate(gates(rescore_min_rows=10**6), "too few rows")
    assert not res.ok and "rescore_min_rows=1000000" in g.reason and g.details["method"] == "rescore_refused"
    # the candidate's table changed since training: its split cannot be rebuilt, so nothing is compared
    original = grown.read_bytes()
    write_table(generate_table(2500, spec, seed=4), grown, spec, 4)
    res, g = metrics_gate(cfg, "table changed")
    assert not res.ok and "no longer reproduces the candidate's split" in g.reason
    grown.write_bytes(original)
    assert str(ops.alias_version(store.client, "trendflow-baseline", "stable").version) == str(old["model_version"])

    res, g = metrics_gate(cfg, "grown table")
    assert g.details["method"] == "rescored", g.reason
    # The same numbers computed here from the trained objects: candidate test rows after the stable's test cut.
    test = new["test_frame"]
    cut = pd.Timestamp(old["split"]["cuts"][-1])
    rows = test[pd.to_datetime(test["published_at"], utc=True) >= cut].reset_index(drop=True)
    assert 0 < len(rows) < len(test) and g.details["rescore"]["rows"] == len(rows)
    cols = new["columns"]
    y = rows[cols.targets].to_numpy(np.float64)
    for which, objects in (("candidate", new), ("stable", old)):
        expected = point_metrics(y, objects["model"].predict_arrays(rows)["p50"], cols.labels)
        for m, r in g.details["metrics"].items():
            assert r[which] == pytest.approx(expected[m.split("/", 1)[1]], rel=1e-6), (which, m)
    assert g.passed == all(r["ok"] for r in g.details["metrics"].values()) == res.ok
    stable = str(ops.alias_version(store.client, "trendflow-baseline", "stable").version)
    assert stable == str((new if res.ok else old)["model_version"])
