"""``run(cfg)``: build everything from the config, fit, calibrate, evaluate, track, register.

Returns ``(metrics, objects)`` so tests and the demo call it directly; ``python -m training`` is a thin Hydra
wrapper around it. Metric names follow ``split/metric``; wall-clock numbers live under ``time/`` so that two runs
of one config and seed have identical metrics outside ``time/``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
import time
import warnings
from dataclasses import dataclass
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.config import TrainConfig, validate
from training.data import EXTRACTION_RUNS_ARTIFACT, extraction_runs, load_split
from training.intervals import IntervalCalibrator
from training.metrics import (
    LogLinearPredictor,
    NaivePredictor,
    interval_metrics,
    point_metrics,
    reference_metrics,
)
from training.model import TrendflowModel, group_keys

log = logging.getLogger("training")


def _resolved_dict(cfg: Any) -> dict[str, Any]:
    if isinstance(cfg, TrainConfig):
        return cfg.model_dump(mode="json")
    if isinstance(cfg, dict):
        return cfg
    from omegaconf import OmegaConf

    d = OmegaConf.to_container(cfg, resolve=True)
    d.pop("hydra", None)
    return d


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def choose_scheme(c: TrainConfig, n_calib: int) -> dict[str, Any]:
    """Where the calibration scores come from, decided from the data (``intervals.calibration=auto``).

    Split conformal is exact (coverage >= l, and < l + 1/(n+1)) but its realised coverage scatters by about
    ``sqrt(l (1 - l) / n_g)`` in a bucket of ``n_g`` calibration values: +-2 points at 90% needs several hundred
    values per bucket, i.e. thousands of calib rows. Below ``intervals.split_min_calib_rows`` calib rows, cross
    mode scores every row of train + calib instead (8x the calib split at 70/10/10/10) for ``folds`` fits.
    """
    iv = c.intervals
    if iv.calibration != "auto":
        return {"calibration": iv.calibration, "reason": f"intervals.calibration={iv.calibration}"}
    if n_calib >= iv.split_min_calib_rows:
        return {"calibration": "split", "reason": f"auto: calib split {n_calib} rows >= {iv.split_min_calib_rows}"}
    return {"calibration": "cross", "reason": f"auto: calib split {n_calib} rows < {iv.split_min_calib_rows}"}


def scheme_record(fit_record: dict[str, Any], c: TrainConfig) -> dict[str, Any]:
    """The calibration scheme as recorded with the model (manifest, calibration.json, the version description)."""
    guarantee = ("split conformal: marginal coverage >= l and < l + 1/(n+1) for exchangeable rows"
                 if fit_record["calibration"] == "split" else
                 "cross-conformal / CV+: >= 1 - 2(1 - l) in the worst case, about l in practice; the served "
                 "fold-model mean errs less than a member: each bucket's rank level is lowered by that gain, "
                 "sized from the members' disagreement on val")
    return {
        "calibration": fit_record["calibration"], "served": fit_record.get("served", "single"),
        "folds": fit_record.get("folds"), "calib_scores": fit_record.get("calib_scores"),
        "reason": fit_record.get("reason", ""), "method": c.model.interval_method,
        "group_by": c.intervals.group_by, "min_group_size": c.intervals.min_group_size,
        "shrinkage": c.intervals.shrinkage, "sparse_groups": c.intervals.sparse_groups,
        "finite_sample_rank": "ceil((n + 1) * l)-th smallest score per target, level and bucket",
        "guarantee": guarantee,
    }


def _fit_and_score(c: TrainConfig, spec: Any, cols: Any, parts: dict[str, pd.DataFrame]
                   ) -> tuple[Any, pd.DataFrame, Any, dict[str, Any]]:
    """Fit the served core and compute the base predictions its calibration scores come from.

    ``split``: the core is fit on ``train`` and scored on ``calib``. ``cross``: ``train + calib`` (in the
    table's row order within each split: publish order only for a table sorted by it, docs/training.md) is cut
    into ``intervals.folds`` blocks, each block is scored by a core fit on the others
    (:func:`training.intervals.out_of_fold`); the served core is the fold cores' mean
    (:class:`training.families.ensemble.FoldEnsemble`, ``cross_fit=ensemble``) or one core refit on all of
    ``train + calib`` (``cross_fit=refit``). ``val`` stays the early-stopping / eval set of every fit and ``test``
    is never touched. Returns ``(core, calibration rows, their base predictions, record for the split log)``.
    """
    from training.families import FitInputs, fit_core

    inputs = FitInputs(c, spec, cols)
    feats = cols.features
    scheme = choose_scheme(c, len(parts["calib"]))
    if scheme["calibration"] == "split":
        core = fit_core(inputs, parts["train"], parts["val"])
        calib = parts["calib"]
        base = core.predict_base(calib[feats].astype(np.float64))
        return core, calib, base, {**scheme, "served": "single", "fit_splits": ["train"], "calib_splits": ["calib"],
                                   "calib_scores": len(calib)}
    from training.intervals import out_of_fold

    pool = pd.concat([parts["train"], parts["calib"]], ignore_index=True)
    folds = c.intervals.folds
    members: list[Any] = []

    def fit_predict(fit_idx: np.ndarray, held_idx: np.ndarray) -> Any:
        fold_core = fit_core(inputs, pool.iloc[fit_idx].reset_index(drop=True), parts["val"])
        members.append(fold_core)
        return fold_core.predict_base(pool.iloc[held_idx][feats].astype(np.float64))

    base = out_of_fold(len(pool), folds, fit_predict,
                       on_fold=lambda k, n: print(f"cross-conformal: fold {k}/{n} ({len(pool)} rows)", flush=True))
    if c.intervals.cross_fit == "ensemble":
        from training.families.ensemble import FoldEnsemble

        core = FoldEnsemble(members)
        val_x = parts["val"][feats].astype(np.float64)
        # the members' predictions of rows none of them trained on: their disagreement sizes the ensemble's gain
        core.val_check = [m.predict_base(val_x) for m in members]
    else:
        print(f"cross-conformal: refit on all {len(pool)} rows of train+calib", flush=True)
        core = fit_core(inputs, pool, parts["val"])
    return core, pool, base, {**scheme, "served": c.intervals.cross_fit, "folds": folds,
                              "fit_splits": ["train", "calib"], "calib_splits": ["train", "calib"],
                              "calib_scores": len(pool)}


def _ensemble_gain(c: TrainConfig, calibrator: IntervalCalibrator, core: Any, val: pd.DataFrame, cols: Any,
                   calib_base: Any, calib_y: np.ndarray, calib_g: np.ndarray | None) -> None:
    """Set ``calibrator``'s per-group rank-level shifts for the fold ensemble's coverage gain over its members,
    sized from the members' disagreement on val (:func:`training.intervals.ensemble_group_shift`), before it is
    fit (the shift needs the scores, not the fitted corrections)."""
    from training.intervals import ensemble_group_shift

    members = core.val_check
    core.val_check = None
    val_g = group_keys(val[cols.group].to_numpy()) if cols.group else None
    iv = c.intervals
    calibrator.group_shift = ensemble_group_shift(calibrator, calib_base, calib_y, calib_g, members, val_g,
                                                  min_rows=iv.ensemble_shift_min_rows, tails=iv.ensemble_tails)
    calibrator.scheme["ensemble_shift"] = (
        f"per target, level and age bucket, from the members' disagreement on val (buckets with fewer than "
        f"{iv.ensemble_shift_min_rows} val rows: pooled; {iv.ensemble_tails} error tails)")


def evaluate(model: TrendflowModel, df: pd.DataFrame, cols: Any, levels: list[float], prefix: str,
             naive: NaivePredictor | None = None, loglin: LogLinearPredictor | None = None
             ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Point, interval and reference metrics of ``model`` on ``df``, prefixed ``prefix/``."""
    q = model.predict_arrays(df)
    y = df[cols.targets].to_numpy(np.float64)
    groups = group_keys(df[cols.group].to_numpy()) if cols.group else None
    m = point_metrics(y, q["p50"], cols.labels)
    m.update(interval_metrics(y, q, cols.labels, levels, groups, cols.group_labels))
    if naive is not None and loglin is not None:
        m.update(reference_metrics(y, q["p50"], naive.predict(len(df)), loglin.predict(df), cols.labels))
    m["confidence_mean"] = float(np.mean(q["confidence"]))
    m["n_rows"] = float(len(df))
    return {f"{prefix}/{k}": v for k, v in m.items()}, q


@dataclass
class TrainResult:
    """What :func:`run` returns: the metrics and the objects of one trained model.

    Unpacks as ``metrics, result = run(cfg)``; ``result["model"]`` reads the attribute of that name (the mapping
    callers of the earlier dict result keep working).

    Attributes:
        metrics: by name (``test/mae_views_7d``, ``test/coverage_90``, ``time/train_s`` ...).
        model: the trained :class:`TrendflowModel`.
        config: the validated config; ``split``: the split record (counts, cuts, hashes, ``fit`` = scheme).
        columns: :class:`training.data.Columns`; ``test_frame`` / ``test_quantiles``: the test rows and outputs.
        naive, loglinear: the two reference predictors fitted on train.
        run_id, model_uri, registered_name, model_version, semver: tracking and registration (None when off).
        summary: the one-line summary printed at the end.
    """

    metrics: dict[str, float]
    model: TrendflowModel
    config: TrainConfig
    split: dict[str, Any]
    columns: Any
    test_frame: pd.DataFrame
    test_quantiles: dict[str, np.ndarray]
    naive: NaivePredictor
    loglinear: LogLinearPredictor
    registered_name: str
    semver: str
    run_id: str | None = None
    model_uri: str | None = None
    model_version: int | None = None
    summary: str = ""

    def __iter__(self) -> Any:
        return iter((self.metrics, self))

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


@dataclass
class _RunContext:
    """The inputs of one run that tracking logs (resolved config, table, split, engine)."""

    c: TrainConfig
    resolved: dict[str, Any]
    spec_path: Path
    table: Any  # training.data.SplitTable
    engine: dict[str, str]


def _calibrate(c: TrainConfig, core: Any, calib: pd.DataFrame, calib_base: Any, cols: Any,
               parts: dict[str, pd.DataFrame], fit_record: dict[str, Any]) -> IntervalCalibrator:
    """Fit the interval calibrator on the calibration scores (and correct a fold ensemble's coverage gain)."""
    calibrator = IntervalCalibrator(
        targets=cols.labels, method=c.model.interval_method, levels=list(c.intervals.levels),
        min_group_size=c.intervals.min_group_size, backend=c.intervals.backend,
        confidence_level=c.intervals.confidence_level, cqr_symmetric=c.intervals.cqr_symmetric,
        shrinkage=c.intervals.shrinkage, sparse_groups=c.intervals.sparse_groups,
        scheme=scheme_record(fit_record, c),
    )
    calib_y = calib[cols.targets].to_numpy(np.float64)
    calib_g = group_keys(calib[cols.group].to_numpy()) if cols.group else None
    if getattr(core, "val_check", None) is not None:
        _ensemble_gain(c, calibrator, core, parts["val"], cols, calib_base, calib_y, calib_g)
    calibrator.fit(calib_base, calib_y, calib_g)
    return calibrator


def _manifest(ctx: _RunContext, calibrator: IntervalCalibrator, semver: str, run_id: str | None) -> dict[str, Any]:
    """The model's self-description (manifest.json)."""
    import features

    c, t = ctx.c, ctx.table
    mcfg, spec, cols, rec = c.model, t.spec, t.cols, t.record
    pct = round(c.intervals.confidence_level * 100)
    return {
        "family": mcfg.family, "model_name": mcfg.name, "registered_name": mcfg.registered_name, "semver": semver,
        "training_run_id": run_id, "seed": c.seed, **ctx.engine,
        "spec_hash": spec.spec_hash, "feature_schema_version": spec.feature_schema_version,
        "feature_extractor_version": t.table_meta.get("feature_extractor_version", "unknown"),
        "features_library_version": getattr(features, "__version__", "unknown"),
        "dataset_sha256": rec["dataset_sha256"], "dataset_hash": rec["dataset_hash"], "dataset_metadata": t.table_meta,
        "split": rec,
        "input_columns": cols.features, "targets": cols.targets, "labels": cols.labels,
        "group_column": cols.group, "group_labels": cols.group_labels,
        "interval_method": mcfg.interval_method, "levels": list(c.intervals.levels),
        "calibration_scheme": calibrator.scheme,
        "confidence_definition": f"2 ** (-width{pct} / median calibration width{pct}), per target",
        "config": ctx.resolved,
        "library_versions": {p: pkg_version(p) for p in ("numpy", "pandas", "mlflow", "scikit-learn")},
    }


def _evaluate_all(model: TrendflowModel, ctx: _RunContext, metrics: dict[str, float], semver: str,
                  run_id: str | None) -> TrainResult:
    """Val and test metrics against both references, inference throughput; the result (tracking fields unset)."""
    c, parts, cols = ctx.c, ctx.table.parts, ctx.table.cols
    train_y = parts["train"][cols.targets].to_numpy(np.float64)
    naive = NaivePredictor.fit(train_y)
    loglin = LogLinearPredictor.fit(parts["train"], train_y, cols.metrics, cols.snapshot)
    levels = list(c.intervals.levels)
    val_m, _ = evaluate(model, parts["val"], cols, levels, "val", naive, loglin)
    t0 = time.perf_counter()
    test_m, test_q = evaluate(model, parts["test"], cols, levels, "test", naive, loglin)
    t_eval = time.perf_counter() - t0
    metrics.update(val_m)
    metrics.update(test_m)
    # Inference throughput of the full model (features frame -> calibrated output), batch = whole split.
    bench = pd.concat([parts["test"]] * max(1, 2000 // max(len(parts["test"]), 1)), ignore_index=True)
    t0 = time.perf_counter()
    model.predict(bench)
    metrics["time/inference_rows_per_s"] = len(bench) / max(time.perf_counter() - t0, 1e-9)
    metrics["time/evaluate_test_s"] = t_eval
    return TrainResult(metrics, model, c, ctx.table.record, cols, parts["test"], test_q, naive, loglin,
                       c.model.registered_name, semver, run_id=run_id)


def _train(ctx: _RunContext, semver: str, run_id: str | None) -> TrainResult:
    """Fit, calibrate and evaluate (no tracking)."""
    c, t = ctx.c, ctx.table
    metrics: dict[str, float] = {}
    t0 = time.perf_counter()
    core, calib, calib_base, fit_record = _fit_and_score(c, t.spec, t.cols, t.parts)
    metrics["time/train_s"] = time.perf_counter() - t0
    t.record["fit"] = fit_record
    t0 = time.perf_counter()
    calibrator = _calibrate(c, core, calib, calib_base, t.cols, t.parts, fit_record)
    metrics["time/calibrate_s"] = time.perf_counter() - t0
    metrics["calib/n_rows"] = float(len(calib))
    model = TrendflowModel(core, calibrator, _manifest(ctx, calibrator, semver, run_id))
    return _evaluate_all(model, ctx, metrics, semver, run_id)


def run(cfg: Any) -> TrainResult:
    """Train, calibrate, evaluate, log and register one model.

    Args:
        cfg: the composed config (Hydra ``DictConfig``, a plain dict, or a validated :class:`TrainConfig`).

    Returns:
        :class:`TrainResult` (unpacks as ``metrics, result``).
    """
    resolved = _resolved_dict(cfg)
    c = cfg if isinstance(cfg, TrainConfig) else validate(resolved)
    _seed_everything(c.seed)
    from training.families import engine as family_engine

    mcfg = c.model
    ctx = _RunContext(c, c.model_dump(mode="json"), c.paths.resolve(c.paths.spec), load_split(c),
                      family_engine(mcfg.name, c.trainer.precision))
    mlflow, run_id, semver = None, None, f"{mcfg.family}_{mcfg.semver}"
    if c.tracking.enabled:
        from training import tracking

        mlflow, exp_id = tracking.setup(c)
        if c.tracking.register_model:
            semver = tracking.next_semver(mlflow.MlflowClient(), mcfg.registered_name, mcfg.family, mcfg.semver)
        run_id = mlflow.start_run(experiment_id=exp_id, run_name=f"{mcfg.family}-{mcfg.name}-seed{c.seed}").info.run_id
    try:
        result = _train(ctx, semver, run_id)
        if mlflow is not None:
            _log_run(mlflow, ctx, result)
    except BaseException:
        if mlflow is not None:
            mlflow.end_run(status="FAILED")
        raise
    if mlflow is not None:
        mlflow.end_run()
    result.summary = summary_line(mcfg.family, mcfg.name, result.metrics, result)
    print(result.summary, flush=True)
    return result


def summary_line(family: str, kind: str, m: dict[str, float], objects: dict[str, Any]) -> str:
    reg = ""
    if objects.get("model_version"):
        reg = f" | {objects['registered_name']} v{objects['model_version']} ({objects['semver']})"
    return (f"[{family}/{kind}] test mae_mean={m['test/mae_mean']:.4f} vs_naive={m['test/mae_vs_naive']:.3f} "
            f"vs_loglinear={m['test/mae_vs_loglinear']:.3f} spearman={m['test/spearman_mean']:.3f} "
            f"cov80/90/95={m['test/coverage_80']:.3f}/{m['test/coverage_90']:.3f}/{m['test/coverage_95']:.3f} "
            f"(n={int(m['test/n_target_values'])} values, {int(m['test/n_rows'])} rows) "
            f"train={m['time/train_s']:.1f}s infer={m['time/inference_rows_per_s']:.0f} rows/s"
            f"{' | run ' + objects['run_id'][:8] if objects.get('run_id') else ''}{reg}")


def _run_tags(ctx: _RunContext, model: TrendflowModel, semver: str) -> dict[str, str]:
    """The run's (and registered version's) tags."""
    c, rec = ctx.c, ctx.table.record
    spec_meta = {k: model.manifest[k] for k in ("feature_schema_version", "feature_extractor_version", "spec_hash")}
    tags = {"model_type": c.model.family, "model_kind": c.model.name, "semver": semver, "seed": str(c.seed),
            # split_hash / dataset_hash: what the registry's promotion gate compares ("same test split")
            "dataset_hash": rec["dataset_hash"], "split_hash": rec["split_hash"], **spec_meta, **ctx.engine,
            **c.tags}
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            tags["hydra_overrides"] = " ".join(HydraConfig.get().overrides.task)
    except Exception:
        pass
    return tags


def _log_run(mlflow: Any, ctx: _RunContext, result: TrainResult) -> None:
    """Params, tags, metrics, config, split, spec, plots, the pyfunc model and its registration."""
    import yaml

    from training import tracking

    c, resolved, split_record = ctx.c, ctx.resolved, ctx.table.record
    metrics, model = result.metrics, result.model
    params = tracking.flatten(resolved)
    params.update({"dataset.sha256": split_record["dataset_sha256"],
                   "dataset.rows": sum(split_record["counts"].values()),
                   **{f"split.{k}_rows": v for k, v in split_record["counts"].items()}})
    mlflow.log_params({k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in params.items()})
    tags = _run_tags(ctx, model, result.semver)
    mlflow.set_tags(tags)
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
    history = getattr(model.core, "history", [])
    for row in history:
        mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch" and np.isfinite(v)}, step=int(row["epoch"]))
    mlflow.log_text(yaml.safe_dump(resolved, sort_keys=False), "config/resolved.yaml")
    mlflow.log_text(json.dumps(split_record, indent=2), "split/split.json")
    mlflow.log_text(json.dumps(ctx.table.table_meta, indent=2), "dataset/metadata.json")
    # The extraction runs behind the table's rows: what keeps their artifacts alive through the retention GC.
    mlflow.log_text(json.dumps(extraction_runs(c.paths.resolve(c.data.path))), EXTRACTION_RUNS_ARTIFACT)
    mlflow.log_artifact(str(ctx.spec_path), "feature_spec")
    mlflow.log_text(json.dumps(model.calibrator.to_dict(), indent=2), "calibration/calibration.json")
    if c.tracking.plots:
        _log_plots(mlflow, ctx, result)
    if c.tracking.log_model:
        _log_and_register_model(mlflow, ctx, result, tags)


def _log_plots(mlflow: Any, ctx: _RunContext, result: TrainResult) -> None:
    """Predicted vs actual, the coverage curve per level and bucket, feature importance (trees)."""
    import matplotlib.pyplot as plt

    from training import plots
    from training.families.ensemble import has_feature_importance

    c, cols, model, test = ctx.c, result.columns, result.model, result.test_frame
    figs = {
        "plots/predicted_vs_actual.png": plots.predicted_vs_actual(
            test[cols.targets].to_numpy(np.float64), result.test_quantiles, cols.labels),
        "plots/coverage_curve.png": plots.coverage_curve(result.metrics, list(c.intervals.levels),
                                                         list(cols.group_labels.values())),
    }
    if has_feature_importance(model.core):
        imp = model.core.feature_importance()
        figs["plots/feature_importance.png"] = plots.feature_importance(imp)
        mlflow.log_text(imp.to_csv(header=["importance"]), "plots/feature_importance.csv")
    for name, fig in figs.items():
        mlflow.log_figure(fig, name)
        plt.close(fig)


def _log_and_register_model(mlflow: Any, ctx: _RunContext, result: TrainResult, tags: dict[str, str]) -> None:
    """The pyfunc with signature and input example; registered, tagged and described when configured."""
    from mlflow.models import infer_signature

    from training import tracking
    from training.describe import version_description
    from training.pyfunc import TrendflowPyfunc

    c, model, metrics = ctx.c, result.model, result.metrics
    mcfg = c.model
    spec_meta = {k: model.manifest[k] for k in ("feature_schema_version", "feature_extractor_version", "spec_hash")}
    with tempfile.TemporaryDirectory(prefix="trendflow-model-") as tmp:
        model_dir = model.save(Path(tmp) / "model", spec_path=ctx.spec_path)
        example = result.test_frame[result.columns.features].head(5).astype(np.float64)
        signature = infer_signature(example, model.predict(example))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = mlflow.pyfunc.log_model(
                name="model", python_model=TrendflowPyfunc(), artifacts={"model": str(model_dir)},
                signature=signature, input_example=example, pip_requirements=tracking.pip_requirements(mcfg.name),
                metadata={"semver": result.semver, "family": mcfg.family, **spec_meta},
            )
    result.model_uri = info.model_uri
    if not c.tracking.register_model:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mv = mlflow.register_model(info.model_uri, mcfg.registered_name)
    client = mlflow.MlflowClient()
    version_tags = {**tags, "training_run_id": result.run_id, "semver": result.semver}
    from training import trust  # licences of the models behind the features, input distribution, SBOM

    cols = result.columns
    train_inputs = ctx.table.parts["train"][cols.features].to_numpy(np.float64)
    version_tags.update(trust.log_trust(mlflow, ctx.table.spec, mcfg.registered_name, train_inputs,
                                        list(cols.features)))
    version_tags.update({f"test/{k}": f"{metrics[f'test/{k}']:.6g}" for k in
                         ("mae_mean", "coverage_80", "coverage_90", "coverage_95", "mae_vs_naive",
                          "mae_vs_loglinear")})
    for k, v in version_tags.items():
        client.set_model_version_tag(mcfg.registered_name, mv.version, k, str(v))
    client.update_model_version(mcfg.registered_name, mv.version, description=version_description(
        model.manifest, metrics, list(c.intervals.levels)))
    result.model_version = int(mv.version)
