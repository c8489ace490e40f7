"""Helpers for tests and smoke runs: a tiny synthetic table and the overrides of a fast run."""

from __future__ import annotations

from pathlib import Path

# Settings of a fast run: tiny trees, one or two epochs, small networks. Whole families train in seconds.
FAST = {
    "catboost": ["model.iterations=40", "model.quantile_iterations=30", "model.depth=4",
                 "model.early_stopping_rounds=null"],
    "lightgbm": ["model.n_estimators=30", "model.quantile_n_estimators=20", "model.num_leaves=8",
                 "model.early_stopping_rounds=null"],
    "late_fusion": ["trainer.max_epochs=2", "model.tower_hidden=16", "model.tower_dim=8", "model.fusion_hidden=16"],
    "transformer": ["trainer.max_epochs=2", "model.d_model=16", "model.n_heads=2", "model.n_layers=1",
                    "model.ff_dim=32"],
}
EXP_OF = {"catboost": "baseline", "lightgbm": "baseline", "late_fusion": "v1", "transformer": "v2"}


def tiny_table(path: str | Path, n: int = 600, seed: int = 0) -> Path:
    """Write a synthetic training table of ``n`` rows with the repository spec's columns."""
    import features
    from demo.synthetic_table import generate_table, write_table

    spec = features.load_spec()
    return write_table(generate_table(n, spec, seed), path, spec, seed)


def fast_overrides(kind: str, data_path: str | Path, tracking_dir: str | Path | None = None) -> list[str]:
    """Overrides for a fast run of model ``kind`` on ``data_path``; MLflow into ``tracking_dir`` or disabled."""
    out = [f"+exp={EXP_OF[kind]}", f"data.path={data_path}", "trainer.progress_bar=false",
           "intervals.min_group_size=20", "intervals.calibration=split", *FAST[kind]]
    if kind == "lightgbm":
        out.append("model=lightgbm")
    if tracking_dir is None:
        out.append("tracking.enabled=false")
    else:
        d = Path(tracking_dir)
        out += [f"tracking.uri=sqlite:///{d / 'mlflow.db'}", f"tracking.artifact_root={d / 'artifacts'}",
                "tracking.plots=true"]
    return out
