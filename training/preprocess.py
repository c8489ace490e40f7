"""Network input preprocessing: imputation (the spec's network policy), standardisation, modality presence.

Tree models take the raw columns as they are (NaN kept). Networks need finite inputs: missing values are filled
by the imputation the spec declares for networks (``features.Imputer`` when the features library provides it,
else :class:`SpecImputer`, the same policy), the mask columns already say what was missing, and a per-modality
presence flag (any of the modality's values present) feeds the towers/tokens. The fitted state travels with the
model (:meth:`NetworkPreprocessor.to_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.data import Columns

CLIP = 8.0  # standardised inputs are clipped to [-CLIP, CLIP]: one wild value must not saturate a tower


@dataclass
class SpecImputer:
    """Per-column fill values for networks, learned on the training rows by the spec's network policy
    (``median`` | ``mean`` | ``constant``; the constant is also the fallback for an all-missing column)."""

    fill: dict[str, float] = field(default_factory=dict)

    @classmethod
    def fit(cls, spec: Any, df: pd.DataFrame, columns: list[str]) -> SpecImputer:
        policy: dict[str, tuple[str, float]] = {}
        for f in spec.features:
            imp = spec.imputation_for(f)
            for c in f.columns:
                policy[c] = (imp.network, float(imp.value))
        fill = {}
        for c in columns:
            strategy, value = policy.get(c, ("constant", 0.0))  # mask columns are never missing
            x = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64)
            x = x[np.isfinite(x)]
            if strategy == "median" and x.size:
                fill[c] = float(np.median(x))
            elif strategy == "mean" and x.size:
                fill[c] = float(np.mean(x))
            else:
                fill[c] = value
        return cls(fill)

    def transform(self, X: np.ndarray, columns: list[str]) -> np.ndarray:
        fill = np.array([self.fill[c] for c in columns], dtype=X.dtype)
        return np.where(np.isfinite(X), X, fill[None, :])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "spec_imputer", "fill": self.fill}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpecImputer:
        return cls(dict(d["fill"]))


@dataclass
class NetworkPreprocessor:
    """Raw feature frame -> standardised finite matrix ``(N, F)`` + modality presence ``(N, M)``, and the target
    standardisation the networks train in (predictions are mapped back to the log1p scale)."""

    columns: list[str]
    modalities: list[str]
    modality_index: dict[str, list[int]]
    modality_values: dict[str, list[int]]
    imputer: SpecImputer
    mean: np.ndarray
    std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray

    @classmethod
    def fit(cls, spec: Any, cols: Columns, train: pd.DataFrame) -> NetworkPreprocessor:
        columns = list(cols.features)
        pos = {c: i for i, c in enumerate(columns)}
        mods = [m for m in ("meta", "visual", "motion", "audio", "text") if cols.modalities.get(m)]
        mods += [m for m in cols.modalities if m not in mods]
        imputer = SpecImputer.fit(spec, train, columns)
        X = imputer.transform(train[columns].to_numpy(dtype=np.float64), columns)
        mean, std = X.mean(axis=0), X.std(axis=0)
        std = np.where(std > 1e-8, std, 1.0)
        Y = train[cols.targets].to_numpy(dtype=np.float64)
        y_mean = np.nanmean(Y, axis=0)
        y_std = np.nanstd(Y, axis=0)
        y_mean = np.where(np.isfinite(y_mean), y_mean, 0.0)
        y_std = np.where(np.isfinite(y_std) & (y_std > 1e-8), y_std, 1.0)
        return cls(columns, mods, {m: [pos[c] for c in cols.modalities[m]] for m in mods},
                   {m: [pos[c] for c in cols.modality_values[m]] for m in mods},
                   imputer, mean, std, y_mean, y_std)

    def transform(self, raw: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(X (N, F) float32, present (N, M) float32)`` from raw (un-imputed) feature columns."""
        R = raw[self.columns].to_numpy(dtype=np.float64)
        present = np.stack([np.isfinite(R[:, self.modality_values[m]]).any(axis=1) for m in self.modalities],
                           axis=1)
        X = (self.imputer.transform(R, self.columns) - self.mean) / self.std
        return np.clip(X, -CLIP, CLIP).astype(np.float32), present.astype(np.float32)

    def scale_targets(self, Y: np.ndarray) -> np.ndarray:
        return ((Y - self.y_mean) / self.y_std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns, "modalities": self.modalities, "modality_index": self.modality_index,
            "modality_values": self.modality_values, "imputer": self.imputer.to_dict(),
            "mean": self.mean.tolist(), "std": self.std.tolist(),
            "y_mean": self.y_mean.tolist(), "y_std": self.y_std.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkPreprocessor:
        return cls(list(d["columns"]), list(d["modalities"]),
                   {k: list(v) for k, v in d["modality_index"].items()},
                   {k: list(v) for k, v in d["modality_values"].items()},
                   SpecImputer.from_dict(d["imputer"]),
                   np.asarray(d["mean"]), np.asarray(d["std"]), np.asarray(d["y_mean"]), np.asarray(d["y_std"]))
