"""Baseline family: gradient-boosted trees on the raw columns (NaN kept; trees route missing values).

CatBoost (default): a point model with ``MultiRMSEWithMissingValues`` (one over the six targets, or one per
metric) and, per target, a ``MultiQuantile`` model for the six interval bounds, trained on the rows that have the
target (``MultiQuantile`` rejects NaN targets). LightGBM (``model=lightgbm``): no multi-output, no missing-target
loss, so plan B: one point model and one quantile model per bound for each target, each on the rows that have it.
Raw quantiles can cross (~0.4% of rows for CatBoost here); they are sorted per row before calibration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.intervals import BaseOutput, repair_crossing

# Raw quantile levels the quantile models learn: the bounds of the 80/90/95% intervals (p50 is the point model).
BOUNDS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.9, 0.95, 0.975)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


class _CatBoostTqdm:
    """CatBoost ``after_iteration`` callback driving a tqdm bar (CatBoost's own log is switched off)."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def after_iteration(self, info: Any) -> bool:
        self.bar.update(1)
        return True


def _quantile_rows(n: int, max_rows: int | None, seed: int) -> np.ndarray:
    """Rows the quantile models train on: all, or a seeded random ``max_rows`` of them. CQR recalibrates the
    quantile models' bounds per bucket afterwards, so they need the shape of the spread, not every row."""
    keep = np.ones(n, dtype=bool)
    if max_rows is not None and n > max_rows:
        keep[:] = False
        keep[np.random.default_rng([seed, 5]).choice(n, max_rows, replace=False)] = True
    return keep


def _bootstrap(n: int, rows_per_tree: int | None) -> dict[str, Any]:
    """CatBoost bootstrap for a point model on ``n`` rows. Its cost per iteration grows with the rows each tree
    sees; above ``rows_per_tree`` each tree sees a Bernoulli sample of about that many rows (stochastic gradient
    boosting), below it CatBoost's default Bayesian bootstrap over all rows is kept, so small tables train as before."""
    if rows_per_tree is None or n <= rows_per_tree:
        return {}
    return {"bootstrap_type": "Bernoulli", "subsample": rows_per_tree / n}


def _matrix(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return df[columns].to_numpy(dtype=np.float32)


@dataclass
class CatBoostCore:
    """CatBoost point + quantile models over the raw feature columns."""

    columns: list[str]
    targets: list[str]
    groups: list[list[int]]  # target indices per point model
    point: list[Any] = field(default_factory=list)
    quantile: list[Any] = field(default_factory=list)  # one MultiQuantile model per target
    kind: str = "catboost"

    @classmethod
    def fit(cls, train: pd.DataFrame, val: pd.DataFrame, columns: list[str], targets: list[str],
            metrics: list[str], mcfg: Any, seed: int, threads: int, progress: bool = True,
            with_quantiles: bool = True) -> CatBoostCore:
        from catboost import CatBoostRegressor, Pool

        if mcfg.point_grouping == "all":
            groups = [list(range(len(targets)))]
        else:
            groups = [[i for i, m in enumerate(metrics) if m == metric] for metric in dict.fromkeys(metrics)]
        core = cls(list(columns), list(targets), groups)
        Xt, Xv = _matrix(train, columns), _matrix(val, columns)
        Yt, Yv = train[targets].to_numpy(np.float64), val[targets].to_numpy(np.float64)
        common = dict(random_seed=seed, thread_count=mcfg.thread_count or threads, allow_writing_files=False,
                      verbose=False, depth=mcfg.depth, l2_leaf_reg=mcfg.l2_leaf_reg, border_count=mcfg.border_count)
        n_fits = len(groups) + (len(targets) if with_quantiles else 0)
        for gi, g in enumerate(groups):
            # MultiRMSEWithMissingValues wants at least one target present per row.
            keep_t = ~np.isnan(Yt[:, g]).all(axis=1)
            keep_v = ~np.isnan(Yv[:, g]).all(axis=1)
            model = CatBoostRegressor(loss_function="MultiRMSEWithMissingValues", iterations=mcfg.iterations,
                                      learning_rate=mcfg.learning_rate,
                                      **_bootstrap(int(keep_t.sum()), mcfg.rows_per_tree), **common)
            with _progress(mcfg.iterations, f"catboost point {gi + 1}/{len(groups)} ({n_fits} fits)",
                           progress) as bar:
                model.fit(Pool(Xt[keep_t], Yt[keep_t][:, g]),
                          eval_set=Pool(Xv[keep_v], Yv[keep_v][:, g]) if keep_v.any() else None,
                          early_stopping_rounds=mcfg.early_stopping_rounds if keep_v.any() else None,
                          callbacks=[_CatBoostTqdm(bar)])
            core.point.append(model)
        if with_quantiles:
            loss = "MultiQuantile:alpha=" + ",".join(str(a) for a in BOUNDS)
            sub = _quantile_rows(len(Yt), mcfg.quantile_max_rows, seed)
            for h, t in enumerate(targets):
                rt, rv = ~np.isnan(Yt[:, h]) & sub, ~np.isnan(Yv[:, h])
                model = CatBoostRegressor(loss_function=loss, iterations=mcfg.quantile_iterations,
                                          learning_rate=mcfg.quantile_learning_rate,
                                          **{**common, "depth": mcfg.quantile_depth or mcfg.depth})
                with _progress(mcfg.quantile_iterations, f"catboost quantiles {t}", progress) as bar:
                    model.fit(Pool(Xt[rt], Yt[rt, h]),
                              eval_set=Pool(Xv[rv], Yv[rv, h]) if rv.sum() > 1 else None,
                              early_stopping_rounds=mcfg.early_stopping_rounds if rv.sum() > 1 else None,
                              callbacks=[_CatBoostTqdm(bar)])
                core.quantile.append(model)
        return core

    def predict_base(self, raw: pd.DataFrame) -> BaseOutput:
        X = _matrix(raw, self.columns)
        mu = np.empty((len(X), len(self.targets)))
        for g, model in zip(self.groups, self.point, strict=True):
            mu[:, g] = np.asarray(model.predict(X)).reshape(len(X), len(g))
        quantiles = None
        if self.quantile:
            q = np.stack([np.asarray(m.predict(X)).reshape(len(X), len(BOUNDS)) for m in self.quantile], axis=1)
            q = repair_crossing(q)  # (N, H, 6)
            quantiles = {a: q[..., i] for i, a in enumerate(BOUNDS)}
        return BaseOutput(mu, None, quantiles)

    def feature_importance(self) -> pd.Series:
        imp = np.mean([m.get_feature_importance() for m in self.point], axis=0)
        return pd.Series(imp, index=self.columns).sort_values(ascending=False)

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for i, m in enumerate(self.point):
            m.save_model(str(path / f"point_{i}.cbm"))
        for i, m in enumerate(self.quantile):
            m.save_model(str(path / f"quantile_{i}.cbm"))
        (path / "core.json").write_text(json.dumps({
            "kind": self.kind, "columns": self.columns, "targets": self.targets, "groups": self.groups,
            "n_quantile_models": len(self.quantile), "quantile_bounds": list(BOUNDS),
        }, indent=2))

    @classmethod
    def load(cls, path: Path) -> CatBoostCore:
        from catboost import CatBoostRegressor

        meta = json.loads((path / "core.json").read_text())
        core = cls(meta["columns"], meta["targets"], meta["groups"])
        for i in range(len(meta["groups"])):
            core.point.append(CatBoostRegressor().load_model(str(path / f"point_{i}.cbm")))
        for i in range(meta["n_quantile_models"]):
            core.quantile.append(CatBoostRegressor().load_model(str(path / f"quantile_{i}.cbm")))
        return core


@dataclass
class LightGBMCore:
    """LightGBM plan B: per target, a point model and one quantile model per bound, on rows with the target."""

    columns: list[str]
    targets: list[str]
    point: list[Any] = field(default_factory=list)  # lightgbm.Booster per target
    quantile: list[list[Any]] = field(default_factory=list)  # [target][bound] Booster
    kind: str = "lightgbm"

    @classmethod
    def fit(cls, train: pd.DataFrame, val: pd.DataFrame, columns: list[str], targets: list[str],
            metrics: list[str], mcfg: Any, seed: int, threads: int, progress: bool = True,
            with_quantiles: bool = True) -> LightGBMCore:
        import lightgbm as lgb

        core = cls(list(columns), list(targets))
        Xt, Xv = _matrix(train, columns), _matrix(val, columns)
        Yt, Yv = train[targets].to_numpy(np.float64), val[targets].to_numpy(np.float64)
        base = dict(learning_rate=mcfg.learning_rate, num_leaves=mcfg.num_leaves,
                    min_child_samples=mcfg.min_child_samples, subsample=mcfg.subsample, subsample_freq=1,
                    colsample_bytree=mcfg.colsample_bytree, random_state=seed, n_jobs=threads, verbose=-1,
                    deterministic=True, force_row_wise=True)
        n_fits = len(targets) * (1 + (len(BOUNDS) if with_quantiles else 0))
        with _progress(n_fits, "lightgbm models", progress) as bar:
            for h in range(len(targets)):
                rt, rv = ~np.isnan(Yt[:, h]), ~np.isnan(Yv[:, h])
                callbacks = [lgb.early_stopping(mcfg.early_stopping_rounds, verbose=False)] \
                    if mcfg.early_stopping_rounds and rv.sum() > 1 else []
                eval_set = [(Xv[rv], Yv[rv, h])] if callbacks else None
                m = lgb.LGBMRegressor(objective="regression", n_estimators=mcfg.n_estimators, **base)
                m.fit(Xt[rt], Yt[rt, h], eval_set=eval_set, callbacks=callbacks)
                core.point.append(m.booster_)
                bar.update(1)
                qs = []
                for a in BOUNDS if with_quantiles else ():
                    m = lgb.LGBMRegressor(objective="quantile", alpha=a, n_estimators=mcfg.quantile_n_estimators,
                                          **base)
                    m.fit(Xt[rt], Yt[rt, h])
                    qs.append(m.booster_)
                    bar.update(1)
                core.quantile.append(qs)
        return core

    def predict_base(self, raw: pd.DataFrame) -> BaseOutput:
        X = _matrix(raw, self.columns)
        mu = np.stack([b.predict(X) for b in self.point], axis=1)
        quantiles = None
        if self.quantile and self.quantile[0]:
            q = np.stack([np.stack([b.predict(X) for b in qs], axis=1) for qs in self.quantile],
                         axis=1)  # (N, H, 6)
            q = repair_crossing(q)
            quantiles = {a: q[..., i] for i, a in enumerate(BOUNDS)}
        return BaseOutput(mu, None, quantiles)

    def feature_importance(self) -> pd.Series:
        imp = np.mean([b.feature_importance(importance_type="gain") for b in self.point], axis=0)
        return pd.Series(imp / max(imp.sum(), 1e-12) * 100, index=self.columns).sort_values(ascending=False)

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for h, b in enumerate(self.point):
            b.save_model(str(path / f"point_{h}.txt"))
            for j, qb in enumerate(self.quantile[h]):
                qb.save_model(str(path / f"quantile_{h}_{j}.txt"))
        (path / "core.json").write_text(json.dumps({
            "kind": self.kind, "columns": self.columns, "targets": self.targets,
            "n_quantile_models": len(self.quantile[0]) if self.quantile else 0, "quantile_bounds": list(BOUNDS),
        }, indent=2))

    @classmethod
    def load(cls, path: Path) -> LightGBMCore:
        import lightgbm as lgb

        meta = json.loads((path / "core.json").read_text())
        core = cls(meta["columns"], meta["targets"])
        for h in range(len(meta["targets"])):
            core.point.append(lgb.Booster(model_file=str(path / f"point_{h}.txt")))
            core.quantile.append([lgb.Booster(model_file=str(path / f"quantile_{h}_{j}.txt"))
                                  for j in range(meta["n_quantile_models"])])
        return core
