"""The training distribution of a model's inputs, and how far one row lies outside it (pure functions).

Training computes :func:`input_distribution` on the training rows (per feature: quantiles 0.1 / 1 / 50 / 99 /
99.9 %, min, max, missing rate) and records it with the model; the service calls :func:`out_of_distribution` on
each request's row. A feature is flagged when its value lies outside [q0.1 %, q99.9 %] of training, or when it is
missing although training never saw it missing (the range may be widened by a margin, see
:func:`out_of_distribution`). What the service does with the flags (a warning naming them,
``confidence_score`` halved per flagged feature) is documented in docs/serving.md and README "Trust".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

QUANTILES = (0.001, 0.01, 0.5, 0.99, 0.999)
DISTRIBUTION_VERSION = "input-distribution-v1"


@dataclass(frozen=True)
class FeatureDistribution:
    q001: float | None   # None: never observed (all missing in training)
    q01: float | None
    q50: float | None
    q99: float | None
    q999: float | None
    min: float | None
    max: float | None
    missing_rate: float


@dataclass(frozen=True)
class InputDistribution:
    n_rows: int
    features: dict[str, FeatureDistribution]
    version: str = DISTRIBUTION_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "n_rows": self.n_rows,
                "quantiles": list(QUANTILES), "features": {k: asdict(v) for k, v in self.features.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputDistribution:
        if d.get("version") != DISTRIBUTION_VERSION:
            raise ValueError(f"input distribution version {d.get('version')!r}, expected {DISTRIBUTION_VERSION}")
        return cls(int(d["n_rows"]), {k: FeatureDistribution(**v) for k, v in d["features"].items()})


@dataclass(frozen=True)
class OutOfDistribution:
    """Which features of one row lie outside the training distribution, and why (``name: reason``)."""

    features: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def flagged(self) -> int:
        return len(self.features)


def _f(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def input_distribution(x: np.ndarray, columns: list[str]) -> InputDistribution:
    """Per-column distribution of ``x`` (N, F) float; NaN = missing. Three rows suffice (quantiles interpolate)."""
    x = np.asarray(x, dtype=np.float64)  # (N, F)
    if x.ndim != 2 or x.shape[1] != len(columns):
        raise ValueError(f"expected an (N, {len(columns)}) array, got {x.shape}")
    out: dict[str, FeatureDistribution] = {}
    for j, c in enumerate(columns):
        col = x[:, j]
        seen = col[np.isfinite(col)]
        missing = 1.0 - len(seen) / len(col) if len(col) else 1.0
        if len(seen) == 0:
            out[c] = FeatureDistribution(None, None, None, None, None, None, None, missing)
            continue
        q = np.quantile(seen, QUANTILES)
        out[c] = FeatureDistribution(*(_f(v) for v in q), _f(seen.min()), _f(seen.max()), round(missing, 6))
    return InputDistribution(int(x.shape[0]), out)


def out_of_distribution(dist: InputDistribution, row: dict[str, float], margin: float = 0.0) -> OutOfDistribution:
    """The features of ``row`` outside ``dist``: beyond [q0.1 %, q99.9 %] widened on each side by ``margin`` times
    the width of that range (so a feature constant in training accepts only that value), or missing where training
    had no missing value. Features ``dist`` does not know are ignored (the schema gate owns them).

    Why a margin: with N training rows, q0.1 %/q99.9 % sit near the sample min/max, and a new row drawn from the
    very same distribution exceeds one of ~120 features' extremes with probability ~240/N; a margin of a quarter
    of the range keeps such rows unflagged while a value far outside anything seen still is."""
    names: list[str] = []
    reasons: dict[str, str] = {}
    for c, fd in dist.features.items():
        if c not in row:
            continue
        v = row[c]
        if v is None or not math.isfinite(v):
            if fd.missing_rate == 0.0:
                names.append(c)
                reasons[c] = "missing; never missing in training"
            continue
        if fd.q001 is None or fd.q999 is None:
            names.append(c)
            reasons[c] = "present; always missing in training"
            continue
        tol = 1e-9 * max(1.0, abs(fd.q001), abs(fd.q999)) + margin * (fd.q999 - fd.q001)
        if v < fd.q001 - tol:
            names.append(c)
            reasons[c] = f"{v:.6g} below the training 0.1% quantile {fd.q001:.6g}"
        elif v > fd.q999 + tol:
            names.append(c)
            reasons[c] = f"{v:.6g} above the training 99.9% quantile {fd.q999:.6g}"
    return OutOfDistribution(names, reasons)
