"""End to end on a tiny table, per family: train -> log pyfunc -> register -> load models:/name/N -> identical
predictions with the full interval contract. Plus determinism and the Hydra CLI (multirun)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contract.output import check_output, output_columns
from testsupport.training import fast_overrides, tiny_table
from training.config import REPO_ROOT, compose
from training.train import run

LABELS = ["views_7d", "views_14d", "views_21d", "likes_7d", "likes_14d", "likes_21d"]
REGISTERED = {"catboost": "trendflow-baseline", "lightgbm": "trendflow-baseline",
              "late_fusion": "trendflow-v1-late-fusion", "transformer": "trendflow-v2-transformer"}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_table(tmp_path_factory.mktemp("data") / "tiny.parquet", n=600, seed=0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return tmp_path_factory.mktemp("mlflow")


def _check_contract(out: pd.DataFrame, n: int) -> None:
    assert list(out.columns) == output_columns(tuple(LABELS))
    assert len(out) == n and np.isfinite(out.to_numpy()).all()
    for t in LABELS:
        q = out[[f"{t}_{s}" for s in ("p025", "p05", "p10", "p50", "p90", "p95", "p975")]].to_numpy()
        assert (np.diff(q, axis=1) >= 0).all(), t
        conf = out[f"{t}_confidence"]
        assert ((conf >= 0) & (conf <= 1)).all()
    assert check_output(out, n_rows=n) == []  # the same check the registry gate and the service run


@pytest.mark.parametrize("kind", ["catboost", "lightgbm", "late_fusion", "transformer"])
def test_train_register_load_predict(kind: str, table: Path, store: Path) -> None:
    import mlflow

    metrics, obj = run(compose(fast_overrides(kind, table, store)))
    name = REGISTERED[kind]
    assert obj["registered_name"] == name and obj["model_version"] >= 1
    for t in LABELS:
        assert np.isfinite(metrics[f"test/mae_{t}"])
    assert 0 <= metrics["test/coverage_90"] <= 1

    client = mlflow.MlflowClient()
    mv = client.get_model_version(name, str(obj["model_version"]))
    tags = mv.tags
    family = {"catboost": "baseline", "lightgbm": "baseline", "late_fusion": "v1", "transformer": "v2"}[kind]
    assert tags["model_type"] == family and tags["semver"].startswith(f"{family}_1.0.")
    assert tags["training_run_id"] == obj["run_id"] == mv.run_id
    for key in ("feature_schema_version", "feature_extractor_version", "seed", "engine", "precision", "device",
                "spec_hash", "split_hash", "dataset_hash"):
        assert tags.get(key), key
    run_metrics = client.get_run(obj["run_id"]).data.metrics
    assert "test/mae_views_7d" in run_metrics and "test/coverage_90" in run_metrics
    # the version explains itself in the MLflow UI: family, data, test MAE, coverage per level, calibration
    desc = mv.description
    rows = sum(obj["split"]["counts"].values())
    assert f"**{family}**" in desc and tags["dataset_hash"] in desc and f"{rows} rows" in desc
    assert f"{metrics['test/mae_mean']:.4f}" in desc and f"| 90% | {metrics['test/coverage_90']:.3f} |" in desc
    assert "**Calibration**: split conformal" in desc and "ceil((n + 1) * l)" in desc

    # round trip through the registry: identical predictions on the raw (un-imputed) feature table
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/{obj['model_version']}")
    raw = obj["test_frame"][obj["columns"].features].astype(np.float64)
    assert raw.isna().any().any(), "the test rows should exercise missing optional features"
    out = loaded.predict(raw)
    pd.testing.assert_frame_equal(out.reset_index(drop=True), obj["model"].predict(raw).reset_index(drop=True))
    _check_contract(out, len(raw))
    assert loaded.metadata.get_input_schema().input_names() == obj["columns"].features
    assert loaded.input_example is not None

    # the artifact describes itself
    from training.model import TrendflowModel

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{obj['model_version']}"))
    model_dir = next(local.rglob("manifest.json")).parent
    assert (model_dir / "feature_spec.yaml").exists() and (model_dir / "calibration.json").exists()
    again = TrendflowModel.load(model_dir)
    assert again.manifest["spec_hash"] == tags["spec_hash"] and again.manifest["config"]["seed"] == 42
    assert again.manifest["training_run_id"] == obj["run_id"]


def test_missing_input_column_is_named(table: Path) -> None:
    from training.model import InputError

    _, obj = run(compose(fast_overrides("catboost", table)))
    raw = obj["test_frame"][obj["columns"].features].head(3)
    with pytest.raises(InputError, match="aud_rms_mean"):
        obj["model"].predict(raw.drop(columns=["aud_rms_mean"]))
    # extra columns are ignored, order does not matter
    shuffled = raw[raw.columns[::-1]].assign(something_else=1.0)
    pd.testing.assert_frame_equal(obj["model"].predict(shuffled), obj["model"].predict(raw))


@pytest.mark.parametrize("kind", ["catboost", "transformer"])
def test_same_config_and_seed_give_same_metrics(kind: str, table: Path) -> None:
    cfg = compose(fast_overrides(kind, table))
    m1, _ = run(cfg)
    m2, _ = run(cfg)
    a = {k: v for k, v in m1.items() if not k.startswith("time/")}
    b = {k: v for k, v in m2.items() if not k.startswith("time/")}
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=0, abs=0, nan_ok=True), k


@pytest.mark.parametrize("kind", ["catboost", "late_fusion"])
def test_cross_conformal_calibration_refit(kind: str, table: Path) -> None:
    """intervals.calibration=cross, cross_fit=refit: every train+calib row is a calibration score, the served
    model is fit on train+calib, test is untouched; the record says so and the contract holds."""
    absolute = ["model.interval_method=absolute"]
    split_m, split_o = run(compose([*fast_overrides(kind, table), *absolute]))
    m, obj = run(compose([*fast_overrides(kind, table), *absolute, "intervals.calibration=cross",
                          "intervals.cross_fit=refit", "intervals.folds=3"]))
    counts = obj["split"]["counts"]
    assert obj["split"]["fit"] == {"calibration": "cross", "reason": "intervals.calibration=cross", "folds": 3,
                                   "served": "refit", "fit_splits": ["train", "calib"],
                                   "calib_splits": ["train", "calib"],
                                   "calib_scores": counts["train"] + counts["calib"]}
    assert split_o["split"]["fit"]["calibration"] == "split"
    assert m["calib/n_rows"] == counts["train"] + counts["calib"] > split_m["calib/n_rows"] == counts["calib"]
    assert m["test/n_rows"] == split_m["test/n_rows"]  # same test split
    cal = obj["model"].calibrator.corrections["views_7d"]["0.9"]["__pooled__"]
    assert cal[2] > split_o["model"].calibrator.corrections["views_7d"]["0.9"]["__pooled__"][2]
    raw = obj["test_frame"][obj["columns"].features].astype(np.float64)
    _check_contract(obj["model"].predict(raw), len(raw))
    assert 0.75 <= m["test/coverage_90"] <= 1


@pytest.mark.parametrize("kind", ["catboost", "transformer"])
def test_auto_scheme_picks_cross_ensemble_on_a_small_table(kind: str, table: Path, store: Path) -> None:
    """Default intervals.calibration=auto on a 600-row table (calib 60 rows < split_min_calib_rows): cross-conformal
    over train+calib with the fold models served as an ensemble (CQR / normalized scores allowed), the scheme
    recorded in the model, the contract intact after the MLflow round trip."""
    import mlflow

    over = [o for o in fast_overrides(kind, table, store) if o != "intervals.calibration=split"]
    m, obj = run(compose([*over, "intervals.folds=3"]))
    fit = obj["split"]["fit"]
    assert fit["calibration"] == "cross" and fit["served"] == "ensemble" and fit["folds"] == 3
    assert fit["reason"].startswith("auto: calib split") and "< 5000" in fit["reason"]
    model = obj["model"]
    assert model.core.kind == "fold_ensemble" and len(model.core.members) == 3
    scheme = model.manifest["calibration_scheme"]
    assert scheme["calibration"] == "cross" and scheme["served"] == "ensemble" and scheme["shrinkage"] == "none"
    assert model.calibrator.scheme == scheme and "ceil((n + 1) * l)" in scheme["finite_sample_rank"]
    loaded = mlflow.pyfunc.load_model(f"models:/{obj['registered_name']}/{obj['model_version']}")
    raw = obj["test_frame"][obj["columns"].features].astype(np.float64)
    out = loaded.predict(raw)
    pd.testing.assert_frame_equal(out.reset_index(drop=True), model.predict(raw).reset_index(drop=True))
    _check_contract(out, len(raw))
    assert 0.6 <= m["test/coverage_90"] <= 1


def test_cross_refit_refuses_rescaled_scores(table: Path) -> None:
    from training.config import ConfigError, validate

    with pytest.raises(ConfigError, match="cross_fit=refit needs model.interval_method=absolute.*normalized"):
        validate(compose([*fast_overrides("transformer", table), "intervals.calibration=cross",
                          "intervals.cross_fit=refit"]))


@pytest.mark.slow
def test_hydra_cli_multirun(table: Path, tmp_path: Path) -> None:
    """`python -m training -m +exp=v1 model.lr=...,...`: two tracked runs with their resolved configs."""
    import mlflow

    store = tmp_path / "mlflow"
    args = [sys.executable, "-m", "training", "-m", *fast_overrides("late_fusion", table, store),
            "trainer.max_epochs=1", "model.lr=1e-3,3e-4", "tracking.register_model=false",
            "tracking.log_model=false", "tracking.plots=false", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
    env.pop("MLFLOW_TRACKING_URI", None)
    res = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("[v1/late_fusion] test mae_mean=") == 2
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["trendflow-training"])
    assert sorted(runs["params.model.lr"].astype(float)) == [3e-4, 1e-3]
    client = mlflow.MlflowClient()
    for rid in runs["run_id"]:
        arts = {a.path for a in client.list_artifacts(rid, "config")}
        assert "config/resolved.yaml" in arts
