"""Out-of-distribution requests: compare a request's row with the answering model's training distribution.

Each registered version carries its training input distribution (run artifact named by the version tag
``input_distribution``, written by ``training.trust`` with :mod:`features.distribution`). The rule, applied to
the answer of a 200:

- a feature is *outside* when it lies beyond the training [q0.1 %, q99.9 %] range widened on each side by
  ``ood.margin`` (default 0.25) times its width, or is missing although training never had it missing
  (:func:`features.distribution.out_of_distribution`);
- when at least ``ood.min_features`` features are outside, the response carries a warning
  ``out_of_distribution`` naming them (``fields``) and why (``message``), and every target's ``confidence_score``
  is multiplied by ``ood.confidence_factor ** n`` (n = features outside; default 0.5: each one halves it);
- the quantiles themselves are left exactly as the model produced them: nothing is widened silently;
- a version that records no distribution answers with a warning ``input_distribution_unknown`` instead.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from features.distribution import InputDistribution, out_of_distribution

log = logging.getLogger("inference.ood")


class OODConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    min_features: int = Field(1, ge=1, description="features outside the training range that flag a request")
    margin: float = Field(0.25, ge=0, description="widening of [q0.1%, q99.9%], in units of its width")
    confidence_factor: float = Field(0.5, gt=0, le=1, description="confidence x factor ** features outside")


class DistributionCache:
    """Training distributions by (registered name, version), downloaded once per process."""

    def __init__(self) -> None:
        self._by_version: dict[tuple[str, str], InputDistribution | None] = {}
        self._lock = threading.Lock()

    def get(self, client: Any, lm: Any) -> InputDistribution | None:
        key = (lm.name, lm.version)
        with self._lock:
            if key in self._by_version:
                return self._by_version[key]
        dist = self._load(client, lm)
        with self._lock:
            self._by_version[key] = dist
        return dist

    @staticmethod
    def _load(client: Any, lm: Any) -> InputDistribution | None:
        path = (lm.tags or {}).get("input_distribution")
        if not path or not lm.run_id:
            return None
        try:
            with tempfile.TemporaryDirectory(prefix="trendflow-dist-") as tmp:
                local = client.download_artifacts(lm.run_id, path, tmp)
                with open(local) as fh:
                    return InputDistribution.from_dict(json.load(fh))
        except Exception as exc:  # a broken record must not break serving: the answer says it was not checked
            log.warning("input distribution of %s v%s unreadable: %s", lm.name, lm.version, exc)
            return None


def annotate(payload: dict[str, Any], dist: InputDistribution | None, row: dict[str, float],
             cfg: OODConfig) -> list[str]:
    """Apply the module's rule to a 200 ``payload`` in place; returns the features flagged (empty: none)."""
    if not cfg.enabled:
        return []
    if dist is None:
        payload["warnings"].append({"code": "input_distribution_unknown", "fields": [],
                                    "message": "the answering version records no training input distribution: "
                                               "out-of-distribution inputs were not checked"})
        return []
    ood = out_of_distribution(dist, row, cfg.margin)
    if ood.flagged < cfg.min_features:
        return []
    factor = cfg.confidence_factor ** ood.flagged
    for block in payload["prediction"]["values"].values():
        block["confidence_score"] = min(1.0, max(0.0, block["confidence_score"] * factor))
    shown = "; ".join(f"{k}: {ood.reasons[k]}" for k in ood.features[:20])
    payload["warnings"].append({"code": "out_of_distribution", "fields": ood.features,
                                "message": f"{ood.flagged} feature(s) outside the training distribution "
                                           f"(confidence x {factor:.3g}): {shown}"[:2000]})
    return ood.features
