"""What a registered model version carries for trust (issue 18): the licences of the models whose outputs its
features were built from, the training distribution of its inputs, and the SBOM of the environment it was
trained in. Called while the training run is active, right after registration; returns the version tags.

Tags: ``model_licenses`` (JSON ``{model: SPDX expression}``: every Triton model feeding a component the spec
reads, plus the family's own row of ``licenses.yaml``; the registry's ``licenses`` gate re-checks them against
today's policy), ``input_distribution`` (run artifact path of :mod:`features.distribution`'s JSON, read by the
service's out-of-distribution check), ``sbom_artifact`` / ``sbom_sha256`` / ``sbom_environment`` (the CycloneDX
JSON logged under ``sbom/``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from common.paths import REPO_ROOT

DISTRIBUTION_ARTIFACT = "trust/input_distribution.json"


def model_licences(spec: Any, registered_name: str) -> dict[str, str]:
    """``{model: SPDX expression}`` for a version trained on ``spec``'s features under ``registered_name``."""
    from compliance.check import model_licences as feeding
    from compliance.inventory import load_inventory

    out = feeding(set(spec.components), REPO_ROOT)
    row = load_inventory(REPO_ROOT).get(registered_name)
    if row is not None:
        out[registered_name] = row.license
    return out


def log_trust(mlflow: Any, spec: Any, registered_name: str, x_train: np.ndarray, columns: list[str],
              sbom: bool = True) -> dict[str, str]:
    """Log the input distribution (and the SBOM) to the active run; return the version tags that point at them."""
    from features.distribution import input_distribution

    dist = input_distribution(x_train, columns)
    mlflow.log_text(json.dumps(dist.to_dict(), allow_nan=False), DISTRIBUTION_ARTIFACT)
    tags = {"model_licenses": json.dumps(model_licences(spec, registered_name), sort_keys=True),
            "input_distribution": DISTRIBUTION_ARTIFACT}
    if sbom:
        from compliance.sbom import log_with_run

        tags.update(log_with_run(mlflow))
    return tags
