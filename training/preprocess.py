"""Network input preprocessing: imputation (the spec's network policy), standardisation, modality presence.

Tree models take the raw columns as they are (NaN kept). Networks need finite inputs: missing values are filled
by ``features.Imputer`` in ``network`` mode (the spec's policy, fitted on the training rows: one code path with
inference), the mask columns already say what was missing, and a per-modality presence flag (any of the
modality's values present) feeds the towers/tokens. The fitted state (imputer included) travels with the model
(:meth:`NetworkPreprocessor.to_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from training.data import Columns

CLIP = 8.0  # standardised inputs are clipped to [-CLIP, CLIP]: one wild value must not saturate a tower


def _finite(X: np.ndarray) -> np.ndarray:
    """Anything the imputer does not fill (a NaN mask column sent by a client) becomes 0 before scaling."""
    return np.where(np.isfinite(X), X, 0.0)


@dataclass
class NetworkPreprocessor:
    """Raw feature frame -> standardised finite matrix ``(N, F)`` + modality presence ``(N, M)``, and the target
    standardisation the networks train in (predictions are mapped back to the log1p scale)."""

    columns: list[str]
    modalities: list[str]
    modality_index: dict[str, list[int]]
    modality_values: dict[str, list[int]]
    imputer: Any  # features.Imputer (mode "network")
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
        import features

        imputer = features.Imputer.fit(train[columns], spec, mode="network")
        X = _finite(imputer.transform(train[columns]).to_numpy(dtype=np.float64))
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
        frame = raw[self.columns]
        R = frame.to_numpy(dtype=np.float64)
        present = np.stack([np.isfinite(R[:, self.modality_values[m]]).any(axis=1) for m in self.modalities],
                           axis=1)
        X = (_finite(self.imputer.transform(frame).to_numpy(dtype=np.float64)) - self.mean) / self.std
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
        import features

        return cls(list(d["columns"]), list(d["modalities"]),
                   {k: list(v) for k, v in d["modality_index"].items()},
                   {k: list(v) for k, v in d["modality_values"].items()},
                   features.Imputer.from_dict(d["imputer"]),
                   np.asarray(d["mean"]), np.asarray(d["std"]), np.asarray(d["y_mean"]), np.asarray(d["y_std"]))
