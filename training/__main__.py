"""``python -m training [+exp=baseline|v1|v2] [key=value ...]`` (Hydra; ``-m`` for sweeps).

Composes ``conf/train.yaml`` and calls :func:`training.train.run`; returns the test mean MAE so sweepers can
minimise it.
"""

from __future__ import annotations

import os

import hydra
from omegaconf import DictConfig

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from training.train import run

    metrics, _ = run(cfg)
    _observe()
    return float(metrics["test/mae_mean"])


def _observe() -> None:
    """Ingest the MLflow store this run logged to into the observability store; never fails the run."""
    try:
        import mlflow

        from observability.api import ingest_after_run

        ingest_after_run(mlflow=mlflow.get_tracking_uri())
    except Exception as exc:  # observability is best effort here: the run's own result stands
        print(f"observability: not recorded ({exc})")


if __name__ == "__main__":
    main()
