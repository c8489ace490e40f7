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
    return float(metrics["test/mae_mean"])


if __name__ == "__main__":
    main()
