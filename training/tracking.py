"""MLflow: the embedded default store, run logging, the pyfunc model and its registration.

Nothing here runs at import. :func:`tracking_uri` decides the store: ``tracking.uri`` from the config, else
``$MLFLOW_TRACKING_URI``, else the embedded ``sqlite:///<root>/.trendflow/mlflow/mlflow.db`` whose artifacts live
under ``<root>/.trendflow/mlflow/artifacts`` (set explicitly: MLflow would otherwise use ``./mlruns``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from training.config import TrainConfig


def tracking_uri(cfg: TrainConfig) -> str:
    """The tracking URI for this config (see module docstring)."""
    if cfg.tracking.uri:
        return cfg.tracking.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    db = cfg.paths.resolve(cfg.paths.state_dir) / "mlflow" / "mlflow.db"
    return f"sqlite:///{db}"


def artifact_root(cfg: TrainConfig, uri: str) -> str | None:
    """Artifact location for a new experiment: configured, or next to the embedded SQLite store."""
    if cfg.tracking.artifact_root:
        return Path(cfg.paths.resolve(cfg.tracking.artifact_root)).as_uri()
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "artifacts").as_uri()
    return None


def setup(cfg: TrainConfig) -> tuple[Any, str]:
    """Point MLflow at the store and make sure the experiment exists. Returns ``(mlflow, experiment_id)``."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    uri = tracking_uri(cfg)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.get_experiment_by_name(cfg.tracking.experiment)
    if exp is None:
        exp_id = mlflow.create_experiment(cfg.tracking.experiment, artifact_location=artifact_root(cfg, uri))
    else:
        exp_id = exp.experiment_id
    return mlflow, exp_id


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"lr": 1}} -> {"model.lr": 1}`` (MLflow params)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def pip_requirements(kind: str) -> list[str]:
    """Pinned requirements of a model of ``kind`` (passing them avoids MLflow's slow inference of them)."""
    from importlib.metadata import version

    pkgs = ["mlflow", "numpy", "pandas", "pyarrow", "scipy", "pydantic", "pyyaml"]
    from training.families import pip_packages

    pkgs += pip_packages(kind)
    out = []
    for p in pkgs:
        try:
            v = version(p)
        except Exception:
            continue
        out.append(f"{p}=={v.split('+')[0]}")
    return out


def next_semver(client: Any, name: str, family: str, base: str) -> str:
    """``family_MAJOR.MINOR.PATCH``: the configured version, with PATCH bumped past any version of ``name``
    already tagged with the same MAJOR.MINOR (a retrain of an unchanged recipe is a patch)."""
    major, minor, patch = (int(x) for x in base.split("."))
    pat = re.compile(rf"^{re.escape(family)}_{major}\.{minor}\.(\d+)$")
    used = []
    try:
        for mv in client.search_model_versions(f"name='{name}'"):
            m = pat.match((mv.tags or {}).get("semver", ""))
            if m:
                used.append(int(m.group(1)))
    except Exception:
        pass
    if used:
        patch = max(patch, max(used) + 1)
    return f"{family}_{major}.{minor}.{patch}"
