"""The family registry: one place that maps a model kind (``model.name``) to how it is fit, loaded and shipped.

Every other module asks this registry instead of dispatching on kind strings: :func:`fit_core` (training),
:func:`load_core` (a saved model folder), :func:`engine` (the run's engine tags) and :func:`pip_packages` (the
pyfunc's requirements). Kinds:

==============  ========  ===================================================================
kind            family    core
==============  ========  ===================================================================
``catboost``    baseline  :class:`training.families.baseline.CatBoostCore`
``lightgbm``    baseline  :class:`training.families.baseline.LightGBMCore`
``late_fusion`` v1        :class:`training.families.networks.NetworkCore` (late-fusion net)
``transformer`` v2        :class:`training.families.networks.NetworkCore` (multi-head transformer)
``fold_ensemble`` any     :class:`training.families.ensemble.FoldEnsemble` of one of the above (cross mode)
==============  ========  ===================================================================

Imports of CatBoost, LightGBM and torch happen inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

TREE_KINDS = ("catboost", "lightgbm")
NETWORK_KINDS = ("late_fusion", "transformer")
KINDS = (*TREE_KINDS, *NETWORK_KINDS)


@dataclass(frozen=True)
class FitInputs:
    """What every family's ``fit`` needs (the rows, the column roles and the run's settings).

    Attributes:
        cfg: the validated :class:`training.config.TrainConfig`.
        spec: the loaded feature spec.
        cols: :class:`training.data.Columns`.
    """

    cfg: Any
    spec: Any
    cols: Any


def _check(kind: str) -> str:
    if kind not in KINDS and kind != "fold_ensemble":
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")
    return kind


def fit_core(inputs: FitInputs, train: Any, val: Any) -> Any:
    """Fit the core of ``inputs.cfg.model.name`` on ``train`` (``val``: early stopping / eval set)."""
    cfg, cols = inputs.cfg, inputs.cols
    m = cfg.model
    kind = _check(m.name)
    if kind in TREE_KINDS:
        from training.families.baseline import CatBoostCore, LightGBMCore

        core_cls = CatBoostCore if kind == "catboost" else LightGBMCore
        return core_cls.fit(train, val, cols.features, cols.targets, cols.metrics, m, cfg.seed,
                            cfg.trainer.num_threads, progress=cfg.trainer.progress_bar,
                            with_quantiles=m.interval_method == "cqr")
    from training.families.networks import NetworkCore

    return NetworkCore.fit(inputs.spec, cols, train, val, m, cfg.trainer, cfg.seed)


def load_core(kind: str, path: Path) -> Any:
    """Load a saved core of ``kind`` from ``path`` (the model folder's ``core/``)."""
    kind = _check(kind)
    if kind == "catboost":
        from training.families.baseline import CatBoostCore

        return CatBoostCore.load(path)
    if kind == "lightgbm":
        from training.families.baseline import LightGBMCore

        return LightGBMCore.load(path)
    if kind == "fold_ensemble":
        from training.families.ensemble import FoldEnsemble

        return FoldEnsemble.load(path)
    from training.families.networks import NetworkCore

    return NetworkCore.load(path)


def engine(kind: str, precision: str) -> dict[str, str]:
    """The engine tags of a run of ``kind`` (``engine``, ``precision``, ``device``)."""
    if _check(kind) in TREE_KINDS:
        return {"engine": f"{kind}-{pkg_version(kind)}", "precision": "fp32", "device": "cpu"}
    import torch

    prec = {"32-true": "fp32", "32": "fp32", "bf16-mixed": "bf16-mixed", "16-mixed": "fp16-mixed"}.get(precision,
                                                                                                       precision)
    return {"engine": f"torch-{torch.__version__.split('+')[0]}", "precision": prec, "device": "cpu"}


def pip_packages(kind: str) -> list[str]:
    """The model-specific packages a served model of ``kind`` needs (beyond mlflow, numpy, pandas ...)."""
    return {"catboost": ["catboost"], "lightgbm": ["lightgbm"]}.get(_check(kind), ["torch"])


__all__ = ["KINDS", "NETWORK_KINDS", "TREE_KINDS", "FitInputs", "engine", "fit_core", "load_core", "pip_packages"]
