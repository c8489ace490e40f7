"""Compare two artifact stores: the same videos, bit-identical arrays, equal meta apart from execution fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# What two executions of the same work may differ in: which run computed an artifact, when, and the request size
# its node's plan chose (``batch_size`` is what was really sent: each node is planned for its own memory, and the
# arrays are bit-identical whatever it is -- which is what this comparison checks).
EXECUTION_META = ("run_id", "created_at", "batch_size")


def artifact_differences(a: Path, b: Path, ignore: tuple[str, ...] = EXECUTION_META,
                         atol: dict[str, float] | None = None) -> list[str]:
    """Every difference between the newest run of each video in store ``a`` and in store ``b`` (empty: identical).

    Arrays must match in dtype, shape and bytes (within ``atol[component]`` where given); each artifact's meta must be
    equal except the ``ignore`` keys."""
    from extraction.artifacts import latest_runs, load_run

    ra, rb = latest_runs(Path(a)), latest_runs(Path(b))
    out = [f"video {k} only in {a}" for k in sorted(set(ra) - set(rb))]
    out += [f"video {k} only in {b}" for k in sorted(set(rb) - set(ra))]
    for key in sorted(set(ra) & set(rb)):
        _, arts_a = load_run(ra[key])
        _, arts_b = load_run(rb[key])
        if set(arts_a) != set(arts_b):
            out.append(f"{key}: components {sorted(arts_a)} vs {sorted(arts_b)}")
        for comp in sorted(set(arts_a) & set(arts_b)):
            (xa, ma), (xb, mb) = arts_a[comp], arts_b[comp]
            if set(xa) != set(xb):
                out.append(f"{key}/{comp}: arrays {sorted(xa)} vs {sorted(xb)}")
            for name in sorted(set(xa) & set(xb)):
                u, v = xa[name], xb[name]
                tol = (atol or {}).get(comp)
                same = (u.tobytes() == v.tobytes() if tol is None
                        else bool(np.allclose(u, v, rtol=0.0, atol=tol, equal_nan=True)))
                if u.dtype != v.dtype or u.shape != v.shape or not same:
                    out.append(f"{key}/{comp}/{name}: arrays differ ({u.dtype}{u.shape} vs {v.dtype}{v.shape})")
            da, db = ma.model_dump(exclude=set(ignore)), mb.model_dump(exclude=set(ignore))
            for field in sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k)):
                out.append(f"{key}/{comp}: meta {field} {da.get(field)!r} vs {db.get(field)!r}")
    return out
