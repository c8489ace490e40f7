"""TrendFlow features: one library turns extractor artifacts into model inputs, for training and inference.

Every feature is declared once in ``feature_spec.yaml``; the same code computes one run's vector (inference)
and the rows of the training table (a run's vector equals its table row bit for bit).

Stable API (the training, registry and serving packages build on these; change them only with a spec/major bump):
    load_spec(path=None) -> FeatureSpec              validated feature_spec.yaml (FeatureSpecError on problems)
    raw_columns(spec) -> list[str]                   model input columns: features (spec order), then masks
    target_columns(spec) -> list[str]                targets, already log1p-transformed per the spec
    build_vector(run, spec) -> FeatureRow            one run (folder, RunData or load_run output); raises
                                                     MissingCriticalFeature (code missing_critical_feature)
    FeatureRow.to_frame(spec)                        1-row pandas frame of raw_columns(spec)
    build_table(artifacts_root, spec, labels=None) -> pyarrow.Table   keys, split columns, features, masks,
                                                     targets; metadata: versions, spec hash, build report
    build_dataset(artifacts, labels, out, spec)      build_table + Parquet + summary (CLI, demo)
    write_parquet(table, path), read_table_metadata(path)
    Imputer.fit(df, spec, mode) / .transform(df) / .to_dict() / Imputer.from_dict(d)
    check_compatibility(old_spec, new_spec) -> Compatibility(kind, reasons, compatible)
    FeatureSpec, FeatureSpecError, MissingCriticalFeature, feature_extractor_version()

Importing this package has no side effects; heavy modules (pyarrow, pandas) load on first use of the
functions that need them; neither torch nor mlflow is ever imported.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from features.errors import FeatureColumnsMissing, FeatureSpecError, MissingCriticalFeature
from features.spec import FeatureSpec, load_spec, raw_columns, target_columns

__version__ = "1.0.0"

_LAZY = {
    "build_vector": "features.build", "build_table": "features.build", "build_dataset": "features.build",
    "write_parquet": "features.build", "read_table_metadata": "features.build", "FeatureRow": "features.build",
    "BuildReport": "features.build", "feature_extractor_version": "features.build",
    "Imputer": "features.impute", "check_compatibility": "features.compat", "Compatibility": "features.compat",
}

__all__ = ["FeatureColumnsMissing", "FeatureSpec", "FeatureSpecError", "MissingCriticalFeature", "__version__",
           "load_spec", "raw_columns", "target_columns", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'features' has no attribute {name!r}")
