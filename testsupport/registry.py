"""A small, real pyfunc that honours the prediction contract, for tests and benchmarks that must not wait for
training: a ridge regression per target on the spec's raw columns with Gaussian quantiles.

It is logged, registered and loaded through MLflow exactly like the trained families (signature, input example,
tags, run metrics), so the registry and the service are exercised on real artifacts. ``fail_predict=True`` logs
a version whose ``predict`` raises: a genuinely broken model version for fallback tests.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd  # at run time: MLflow reads predict's type hints to validate inputs

from contract.output import QUANTILE_LEVELS, QUANTILES, TARGETS

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from registry.config import RegistryConfig

try:  # the base class only matters when mlflow is importable; keep import cheap otherwise
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover
    PythonModel = object  # type: ignore[assignment,misc]

_Z = {"p025": -1.959964, "p05": -1.644854, "p10": -1.281552, "p50": 0.0, "p90": 1.281552, "p95": 1.644854,
      "p975": 1.959964}
assert set(_Z) == set(QUANTILE_LEVELS)


def synthetic_table(columns: list[str], n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of raw features (masks = 1, ~5% optional NaN) and log1p targets (N, 6) that depend on them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(columns)))
    frame = pd.DataFrame(x, columns=columns)
    for c in columns:
        if c.startswith("mask__"):
            frame[c] = 1.0
    if "meta_log_views_snapshot1" in frame:
        frame["meta_log_views_snapshot1"] = rng.uniform(2, 9, n)
    base = frame.get("meta_log_views_snapshot1", pd.Series(np.full(n, 5.0))).to_numpy()
    y = np.stack([base + 0.3 * h + 0.2 * x[:, i % len(columns)] + rng.normal(0, 0.3, n)
                  for i, h in enumerate((1, 2, 3, -1.5, -1.0, -0.5))], axis=1)  # (N, 6)
    return frame, y


class ReferenceModel(PythonModel):
    """Ridge per target + Gaussian quantiles; NaN inputs imputed with the training medians (fitted state)."""

    def __init__(self, columns: list[str], coef: np.ndarray, intercept: np.ndarray, medians: np.ndarray,
                 sigma: np.ndarray, fail_predict: bool = False) -> None:
        self.columns = list(columns)
        self.coef = np.asarray(coef, dtype=np.float64)            # (F, 6)
        self.intercept = np.asarray(intercept, dtype=np.float64)  # (6,)
        self.medians = np.asarray(medians, dtype=np.float64)      # (F,)
        self.sigma = np.asarray(sigma, dtype=np.float64)          # (6,)
        self.fail_predict = fail_predict

    @classmethod
    def fit(cls, frame: pd.DataFrame, y: np.ndarray, alpha: float = 1.0, **kw: Any) -> ReferenceModel:
        x = frame.to_numpy(dtype=np.float64)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column never observed: its median is NaN
            med = np.nanmedian(x, axis=0)
        med = np.where(np.isnan(med), 0.0, med)  # ...imputed with 0 (real training tables can hold such columns)
        x = np.where(np.isnan(x), med, x)
        mu, sd = x.mean(0), x.std(0) + 1e-9
        xs = (x - mu) / sd
        coef_s = np.linalg.solve(xs.T @ xs + alpha * np.eye(x.shape[1]), xs.T @ (y - y.mean(0)))
        coef = coef_s / sd[:, None]
        intercept = y.mean(0) - mu @ coef
        sigma = (y - (x @ coef + intercept)).std(0) + 1e-6
        return cls(list(frame.columns), coef, intercept, med, sigma, **kw)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if self.fail_predict:
            raise RuntimeError("reference model logged with fail_predict=True")
        x = model_input[self.columns].to_numpy(dtype=np.float64)  # (N, F)
        x = np.where(np.isnan(x), self.medians, x)
        mean = x @ self.coef + self.intercept                      # (N, 6)
        out: dict[str, np.ndarray] = {}
        for j, t in enumerate(TARGETS):
            for q in QUANTILES:
                out[f"{t}_{q}"] = mean[:, j] + _Z[q] * self.sigma[j]
            width = 2 * _Z["p95"] * self.sigma[j]
            out[f"{t}_confidence"] = np.full(len(x), 1.0 / (1.0 + width))
        return pd.DataFrame(out, index=model_input.index)


@dataclass
class LoggedReference:
    version: ModelVersion
    run_id: str
    metrics: dict[str, float]


def default_metrics(mae: float = 0.3, coverage_90: float = 0.90) -> dict[str, float]:
    m = {f"test/mae_{t}": mae for t in TARGETS}
    m.update({"test/coverage_90": coverage_90, "test/coverage_80": 0.80, "test/coverage_95": 0.95})
    return m


def log_reference_model(client: MlflowClient, cfg: RegistryConfig, model_type: str, *, columns: list[str],
                        metrics: dict[str, float] | None = None, tags: dict[str, str] | None = None,
                        run_tags: dict[str, str] | None = None, semver: str = "1.0.0",
                        feature_schema_version: str = "1.0.0", seed: int = 0, fail_predict: bool = False,
                        n_train: int = 256, experiment: str = "trendflow-reference",
                        train: tuple[pd.DataFrame, np.ndarray] | None = None) -> LoggedReference:
    """Fit, log (signature + input example), register under ``cfg.models[model_type]`` and tag one version.

    ``train``: (raw feature frame, log1p targets (N, 6)) to fit on, e.g. rows of real extracted videos, so that
    the recorded input distribution is theirs; default a synthetic table of ``n_train`` rows."""
    import mlflow
    from mlflow.models import infer_signature

    from features import load_spec
    from registry.store import ensure_experiment
    from training.trust import log_trust

    frame, y = train if train is not None else synthetic_table(columns, n_train, seed)
    frame = frame[list(columns)]
    model = ReferenceModel.fit(frame, y, fail_predict=False)
    example = frame.head(8)
    signature = infer_signature(example, model.predict(None, example))
    model.fail_predict = fail_predict
    name = cfg.name_of(model_type)
    exp_id = ensure_experiment(client, experiment, cfg)
    run_metrics = metrics if metrics is not None else default_metrics()
    tags_run = {"model_type": model_type, "split_hash": "reference-synthetic", **(run_tags or {})}
    tags_run = {k: v for k, v in tags_run.items() if v is not None}  # run_tags={"split_hash": None} drops it
    with mlflow.start_run(experiment_id=exp_id, tags=tags_run) as run:
        mlflow.log_metrics(run_metrics)
        mlflow.log_params({"seed": seed, "model": "reference-ridge"})
        info = mlflow.pyfunc.log_model(name="model", python_model=model, signature=signature, input_example=example,
                                       pip_requirements=["mlflow", "numpy", "pandas"])
        mv = mlflow.register_model(info.model_uri, name)
        # what training records for trust: licences behind the features, input distribution, SBOM
        trust_tags = log_trust(mlflow, load_spec(), name, frame.to_numpy(np.float64), list(columns))
    version_tags = {"model_type": model_type, "semver": f"{model_type}_{semver}", "training_run_id": run.info.run_id,
                    "feature_schema_version": feature_schema_version, "feature_extractor_version": "0.1.0",
                    "seed": str(seed), "engine": "numpy", "precision": "fp64", "device": "cpu", **trust_tags,
                    **(tags or {})}
    for k, v in version_tags.items():
        client.set_model_version_tag(name, mv.version, k, v)
    return LoggedReference(client.get_model_version(name, mv.version), run.info.run_id, run_metrics)
