"""Train the three families on one table with small settings and print their key test metrics side by side.

    python -m training.demo --data data/dataset.parquet [--no-tracking] [--families baseline,v1,v2]

The main job (``python -m demo``) calls :func:`train_all`. Each family is one :func:`training.train.run` with the
overrides in :data:`DEMO_SETTINGS` (sized so the three train within a few minutes on 2 CPU cores for a few
hundred to a few thousand rows), tracked and registered in the embedded MLflow store unless told otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

FAMILIES = ("baseline", "v1", "v2")

# Split for small demo tables: more rows for calibration and test than the default 70/10/10/10. The realised
# coverage of a nominal 90% interval on n test rows, calibrated on m rows, scatters by about
# sqrt(0.09/n + 0.09/m) / 1.3 (the six targets are not one draw; measured on the demo table: sd 0.024 for
# 180 + 180 rows, by random re-splits): 0.016 at the 2,000 videos make demo generates (400 + 400 rows). A fixed
# 88-92% band would refuse a calibrated model about a fifth of the time there, so the acceptance band (the registry's
# coverage gate, and benchmarks.training's) widens to 2.58 binomial standard errors of the test rows: +-3.9 points.
# Calibration itself holds at 2,000 rows (docs/training.md, "2,000 rows: the main job's size").
DEMO_SPLIT = ["data.split.train=0.5", "data.split.val=0.1", "data.split.calib=0.2", "data.split.test=0.2"]
DEMO_SETTINGS: dict[str, list[str]] = {
    "baseline": ["+exp=baseline", "model.iterations=300", "model.quantile_iterations=150",
                 "model.learning_rate=0.1", "model.quantile_learning_rate=0.1", *DEMO_SPLIT],
    "v1": ["+exp=v1", "trainer.max_epochs=40", "trainer.batch_size=64", *DEMO_SPLIT],
    "v2": ["+exp=v2", "trainer.max_epochs=60", "trainer.batch_size=64", *DEMO_SPLIT],
}

ROWS = [  # (label, metric key, format)
    ("train time (s)", "time/train_s", "{:.1f}"),
    ("inference (rows/s)", "time/inference_rows_per_s", "{:,.0f}"),
    ("test MAE, mean (log1p)", "test/mae_mean", "{:.4f}"),
    ("  vs naive (ratio)", "test/mae_vs_naive", "{:.3f}"),
    ("  vs log-linear (ratio)", "test/mae_vs_loglinear", "{:.3f}"),
    ("Spearman, mean", "test/spearman_mean", "{:.3f}"),
    ("coverage 80%", "test/coverage_80", "{:.3f}"),
    ("coverage 90%", "test/coverage_90", "{:.3f}"),
    ("coverage 95%", "test/coverage_95", "{:.3f}"),
    ("width 90% (log1p)", "test/width_90", "{:.3f}"),
    ("confidence, mean", "test/confidence_mean", "{:.3f}"),
    ("test values (6 targets)", "test/n_target_values", "{:.0f}"),
]


def train_all(data: str | Path, families: tuple[str, ...] = FAMILIES, tracking: bool = True,
              extra: list[str] | None = None) -> dict[str, tuple[dict[str, float], dict[str, Any]]]:
    """Train each family on ``data`` with :data:`DEMO_SETTINGS`; returns ``{family: (metrics, objects)}``."""
    from training.config import compose
    from training.train import run

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    out = {}
    for fam in families:
        overrides = [*DEMO_SETTINGS[fam], f"data.path={Path(data).resolve()}", *(extra or [])]
        if not tracking:
            overrides.append("tracking.enabled=false")
        print(f"\n--- training {fam}: python -m training {' '.join(overrides)}", flush=True)
        out[fam] = tuple(run(compose(overrides)))  # (metrics, TrainResult)
    return out


def comparison_table(results: dict[str, tuple[dict[str, float], dict[str, Any]]]) -> str:
    """Key test metrics of each family side by side (plain text)."""
    fams = list(results)
    width = 26
    lines = [f"{'':<{width}}" + "".join(f"{f:>14}" for f in fams)]
    for label, key, fmt in ROWS:
        cells = []
        for f in fams:
            v = results[f][0].get(key)
            cells.append(f"{fmt.format(v) if v is not None else '-':>14}")
        lines.append(f"{label:<{width}}" + "".join(cells))
    from training.metrics import bucket_lines

    lines.append("90% interval per age bucket (test split, pooled over targets):")
    lines += bucket_lines({f: results[f][0] for f in fams})
    reg = []
    for f in fams:
        o = results[f][1]
        if o.get("model_version"):
            reg.append(f"{o['registered_name']} v{o['model_version']} ({o['semver']}, run {o['run_id'][:8]})")
    if reg:
        lines.append("registered: " + "; ".join(reg))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.demo", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("data/dataset.parquet"))
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--no-tracking", action="store_true", help="do not log/register in MLflow")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides applied to every family")
    args = p.parse_args(argv)
    if not args.data.exists():
        print(f"error: {args.data} does not exist (python -m features build ... writes it)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    results = train_all(args.data, tuple(args.families.split(",")), not args.no_tracking, args.overrides)
    print(f"\n=== test metrics on {args.data} (all three families in {time.perf_counter() - t0:.0f}s) ===")
    print(comparison_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
