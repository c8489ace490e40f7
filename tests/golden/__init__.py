"""Golden values of extracted artifacts: a compact summary per array, compared with float tolerances.

The summaries live next to this file as JSON. Regenerate them deliberately (after a model, kernel or component
change that is meant to change outputs) with ``TRENDFLOW_UPDATE_GOLDEN=1 python -m pytest -k golden`` and
review the diff like code. A missing golden file fails the test; it is never skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RTOL, ATOL = 1e-3, 1e-5  # float kernels may differ in the last bits between CPUs (SIMD width), not more


def summarise(arts: dict[str, tuple[dict[str, np.ndarray], Any]]) -> dict[str, Any]:
    """component -> {status, arrays: name -> {shape, mean, std, head}} for a run's artifacts."""
    out: dict[str, Any] = {}
    for comp, (arrays, meta) in sorted(arts.items()):
        summ = {}
        for name, arr in sorted(arrays.items()):
            a = np.asarray(arr)
            if a.dtype.kind not in "fiub":
                continue
            flat = a.astype(np.float64).ravel()
            summ[name] = {"shape": list(a.shape),
                          "mean": float(flat.mean()) if flat.size else None,
                          "std": float(flat.std()) if flat.size else None,
                          "head": [float(x) for x in flat[:4]]}
        out[comp] = {"status": meta.status, "arrays": summ}
    return out


def _close(a: Any, b: Any, scale: float = 0.0) -> bool:
    """Equal within ``RTOL`` relative, plus an absolute slack of ``ATOL + RTOL * scale`` (the array's magnitude:
    a near-constant array's std or a value near zero is compared at the array's scale, not its own)."""
    if a is None or b is None:
        return a is b
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    return bool(np.isclose(a, b, rtol=RTOL, atol=ATOL + RTOL * scale))


def compare(name: str, got: dict[str, Any]) -> list[str]:
    """Differences between ``got`` and the golden file ``<name>.json`` (empty = equal within tolerance).

    With ``TRENDFLOW_UPDATE_GOLDEN=1`` the file is (re)written instead and nothing is reported."""
    path = HERE / f"{name}.json"
    if os.environ.get("TRENDFLOW_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        return []
    if not path.exists():
        return [f"golden file {path} is missing: create it with TRENDFLOW_UPDATE_GOLDEN=1 and review it"]
    want = json.loads(path.read_text())
    problems = []
    if set(want) != set(got):
        problems.append(f"components differ: golden {sorted(want)}, got {sorted(got)}")
    for comp in sorted(set(want) & set(got)):
        w, g = want[comp], got[comp]
        if w["status"] != g["status"]:
            problems.append(f"{comp}: status {g['status']!r}, golden {w['status']!r}")
        if set(w["arrays"]) != set(g["arrays"]):
            problems.append(f"{comp}: arrays {sorted(g['arrays'])}, golden {sorted(w['arrays'])}")
        for arr in sorted(set(w["arrays"]) & set(g["arrays"])):
            wa, ga = w["arrays"][arr], g["arrays"][arr]
            if wa["shape"] != ga["shape"]:
                problems.append(f"{comp}.{arr}: shape {ga['shape']}, golden {wa['shape']}")
                continue
            scale = abs(wa["mean"] or 0.0) + (wa["std"] or 0.0) if wa["mean"] == wa["mean"] else 0.0  # NaN-safe
            for stat in ("mean", "std"):
                if not _close(ga[stat], wa[stat], scale):
                    problems.append(f"{comp}.{arr}: {stat} {ga[stat]!r}, golden {wa[stat]!r}")
            if len(ga["head"]) != len(wa["head"]) or not all(
                    _close(g, w, scale) for g, w in zip(ga["head"], wa["head"], strict=True)):
                problems.append(f"{comp}.{arr}: head {ga['head']}, golden {wa['head']}")
    return problems
