"""The served model of cross-conformal calibration: the fold models themselves, averaged.

With ``intervals.calibration=cross`` (chosen automatically for small calibration splits) every row of
``train + calib`` is scored by the fold model that did not see it. Serving those same K fold models (their mean
point, mean scale and mean raw quantiles) keeps the served predictions on the scale the scores were computed on:
a sigma or quantile model refit on all rows would not be (it is fit on 1/(K-1) more rows and its scale drifts).
The mean of K models errs less than a typical member, so calibrated on member scores alone the intervals would
err on the wide side; :func:`training.intervals.ensemble_group_shift` sizes that gain per age bucket from the
members' disagreement and lowers each bucket's rank level by it. CV+ (Barber et al. 2021), quantiles over the K
shifted score sets, would widen the interval further instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.intervals import BaseOutput, repair_crossing


@dataclass
class FoldEnsemble:
    """K fold cores of one kind; ``predict_base`` averages them.

    Attributes:
        members: the fold cores (each has ``predict_base``, ``save`` and a ``kind``).
    """

    members: list[Any]
    kind: str = "fold_ensemble"
    history: list[dict[str, float]] = field(default_factory=list)
    val_check: Any = None  # the members' outputs on val, while training only

    @property
    def member_kind(self) -> str:
        return self.members[0].kind

    def predict_base(self, raw: pd.DataFrame) -> BaseOutput:
        outs = [m.predict_base(raw) for m in self.members]
        mu = np.mean([o.mu for o in outs], axis=0)
        sigma = None if outs[0].sigma is None else np.mean([o.sigma for o in outs], axis=0)
        quantiles = None
        if outs[0].quantiles is not None:
            levels = sorted(outs[0].quantiles)
            q = np.stack([np.mean([o.quantiles[a] for o in outs], axis=0) for a in levels], axis=-1)
            q = repair_crossing(q)
            quantiles = {a: q[..., i] for i, a in enumerate(levels)}
        return BaseOutput(mu, sigma, quantiles)

    def feature_importance(self) -> pd.Series:
        """Mean importance over the members (trees only)."""
        parts = [m.feature_importance() for m in self.members]
        return pd.concat(parts, axis=1).mean(axis=1).sort_values(ascending=False)

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for i, m in enumerate(self.members):
            m.save(path / f"member_{i}")
        (path / "core.json").write_text(json.dumps({"kind": self.kind, "member_kind": self.member_kind,
                                                    "n_members": len(self.members)}, indent=2))

    @classmethod
    def load(cls, path: Path) -> FoldEnsemble:
        from training.families import load_core

        meta = json.loads((path / "core.json").read_text())
        return cls([load_core(meta["member_kind"], path / f"member_{i}") for i in range(meta["n_members"])])


def has_feature_importance(core: Any) -> bool:
    """Whether ``core`` (or every member of an ensemble) reports feature importance."""
    if isinstance(core, FoldEnsemble):
        return all(hasattr(m, "feature_importance") for m in core.members)
    return hasattr(core, "feature_importance")


__all__ = ["FoldEnsemble", "has_feature_importance"]
