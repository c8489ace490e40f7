"""Connect to the configured MLflow store (explicitly: nothing happens at import)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from registry.config import RegistryConfig

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

RUN_ID_TAGS = ("training_run_id", "run_id", "mlflow.run_id")


def connect(cfg: RegistryConfig) -> MlflowClient:
    """An ``MlflowClient`` on the configured store; also points ``mlflow``'s globals at it so that
    ``mlflow.pyfunc.load_model("models:/...")`` resolves against the same registry."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    from mlflow import MlflowClient

    uri = cfg.resolved_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client: MlflowClient, name: str, cfg: RegistryConfig) -> str:
    """Experiment id of ``name``, created with the configured artifact root (not ``./mlruns``) if new."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = cfg.resolved_artifact_root()
    location = None
    if root:
        Path(root).mkdir(parents=True, exist_ok=True)
        location = Path(root).as_uri()
    return client.create_experiment(name, artifact_location=location)


def version_run_id(mv: ModelVersion) -> str | None:
    """The training run of a version: its ``run_id`` or, failing that, a run-id tag."""
    if getattr(mv, "run_id", None):
        return mv.run_id
    return next((mv.tags[k] for k in RUN_ID_TAGS if mv.tags.get(k)), None)
