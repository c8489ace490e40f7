"""Imputation with fitted state that travels with the model.

The table keeps missing values as NaN (tree models use them as is). :meth:`Imputer.fit` learns, on the
training table only, the fill value of every column whose policy (``feature_spec.yaml``: ``imputation.tree`` /
``imputation.network``) asks for one; :meth:`Imputer.to_dict` is saved with the model and
:meth:`Imputer.from_dict` restores it at serving time, so serving never re-learns anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from features.errors import FeatureColumnsMissing
from features.spec import FeatureSpec, raw_columns

Mode = Literal["tree", "network"]


@dataclass
class Imputer:
    """Column -> fill value (columns absent from ``fill`` keep NaN)."""

    mode: Mode
    fill: dict[str, float]
    columns: list[str]  # raw_columns(spec) at fit time: what transform expects
    spec_hash: str
    feature_schema_version: str
    fallbacks: list[str] = field(default_factory=list)  # columns with no observed value: fell back to `value`

    @classmethod
    def fit(cls, df, spec: FeatureSpec, mode: Mode = "network") -> Imputer:
        """Learn fill values from ``df`` (pandas, the training rows only) per the spec's policy for ``mode``."""
        _require(df, raw_columns(spec))
        fill: dict[str, float] = {}
        fallbacks: list[str] = []
        for f in spec.features:
            policy = spec.imputation_for(f)
            strategy = policy.tree if mode == "tree" else policy.network
            if strategy == "keep_nan":
                continue
            for col in f.columns:
                x = df[col].to_numpy(np.float64)
                x = x[np.isfinite(x)]
                if strategy == "constant":
                    v = policy.value
                elif len(x) == 0:
                    v = policy.value
                    fallbacks.append(col)
                else:
                    v = float(np.median(x)) if strategy == "median" else float(np.mean(x))
                fill[col] = float(v)
        return cls(mode=mode, fill=fill, columns=raw_columns(spec), spec_hash=spec.spec_hash,
                   feature_schema_version=spec.feature_schema_version, fallbacks=fallbacks)

    def missing_counts(self, df) -> dict[str, int]:
        """Per column, how many values :meth:`transform` would fill."""
        _require(df, self.columns)
        out = {}
        for col in self.fill:
            n = int(df[col].isna().sum())
            if n:
                out[col] = n
        return out

    def transform(self, df):
        """Copy of ``df`` with missing values of the fitted columns filled (dtypes kept)."""
        _require(df, self.columns)
        out = df.copy()
        for col, v in self.fill.items():
            if out[col].isna().any():
                out[col] = out[col].fillna(np.asarray(v, out[col].dtype).item())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "trendflow.features.Imputer", "mode": self.mode, "fill": dict(self.fill),
                "columns": list(self.columns), "spec_hash": self.spec_hash,
                "feature_schema_version": self.feature_schema_version, "fallbacks": list(self.fallbacks)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Imputer:
        fill = {k: float(v) for k, v in d["fill"].items()}
        if any(math.isnan(v) for v in fill.values()):
            raise ValueError("imputer state has NaN fill values")
        return cls(mode=d["mode"], fill=fill, columns=list(d["columns"]), spec_hash=d["spec_hash"],
                   feature_schema_version=d["feature_schema_version"], fallbacks=list(d.get("fallbacks", [])))


def _require(df, columns: list[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FeatureColumnsMissing(f"{len(missing)} feature column(s) missing: {', '.join(missing[:20])}"
                                    + (" ..." if len(missing) > 20 else ""), missing=missing)
