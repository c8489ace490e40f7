"""The registered version's description (what the MLflow UI shows on the version page), in Markdown.

A version explains itself: family and kind, the data (rows per split, publish-time span, dataset hash), test MAE
and interval coverage per level against their references, the calibration scheme and why it was chosen. The
registry appends the promotion gates' results under :data:`GATES_HEADER` when the version is promoted or refused.
"""

from __future__ import annotations

from typing import Any

GATES_HEADER = "### Promotion gates"


def version_description(manifest: dict[str, Any], metrics: dict[str, float], levels: list[float]) -> str:
    """Markdown description of a trained model from its manifest and run metrics."""
    split = manifest.get("split", {})
    counts = split.get("counts", {})
    span = split.get("time_range", {})
    first = min((v[0] for v in span.values()), default="?")
    last = max((v[1] for v in span.values()), default="?")
    scheme = manifest.get("calibration_scheme", {})
    lines = [
        f"**{manifest.get('family')}** ({manifest.get('model_name')}), {manifest.get('semver')}, "
        f"seed {manifest.get('seed')}, {manifest.get('engine', '')}",
        "",
        f"**Data**: {sum(counts.values())} rows (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + "), "
        f"published {first[:10]} .. {last[:10]}; dataset_hash `{manifest.get('dataset_hash')}`, "
        f"split_hash `{split.get('split_hash')}`, feature schema {manifest.get('feature_schema_version')}",
        "",
        f"**Test** ({int(metrics.get('test/n_rows', 0))} rows, {int(metrics.get('test/n_target_values', 0))} "
        f"target values): MAE (log1p, mean of 6 targets) {metrics.get('test/mae_mean', float('nan')):.4f} "
        f"(x{metrics.get('test/mae_vs_naive', float('nan')):.3f} of naive, "
        f"x{metrics.get('test/mae_vs_loglinear', float('nan')):.3f} of log-linear)",
        "",
        "| level | coverage | mean width |", "|---|---|---|",
    ]
    for lv in levels:
        k = f"{round(lv * 100)}"
        lines.append(f"| {k}% | {metrics.get(f'test/coverage_{k}', float('nan')):.3f} | "
                     f"{metrics.get(f'test/width_{k}', float('nan')):.3f} |")
    lines += ["", f"**Calibration**: {scheme.get('calibration')} conformal ({scheme.get('method')} scores), served "
              f"{scheme.get('served')}" + (f", {scheme['folds']} folds" if scheme.get("folds") else "")
              + f", {scheme.get('calib_scores')} calibration rows; per {scheme.get('group_by')} with "
              f"{scheme.get('shrinkage')} shrinkage toward pooled (min {scheme.get('min_group_size')} points); "
              f"{scheme.get('finite_sample_rank')}. Why: {scheme.get('reason')}. Guarantee: {scheme.get('guarantee')}."]
    return "\n".join(lines)
