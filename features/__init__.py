"""TrendFlow features: one library turns extractor artifacts into model inputs, for training and inference.

Stable API (later issues build on these; change them only with a spec/major bump):
    load_spec(path=None) -> FeatureSpec        validated feature_spec.yaml (FeatureSpecError on problems)
    raw_columns(spec) -> list[str]             model input columns: features (spec order), then masks
    target_columns(spec) -> list[str]          log1p-transformed target columns
    FeatureSpec, FeatureSpecError

Importing this package has no side effects and imports neither torch nor mlflow.
"""

from features.spec import FeatureSpec, FeatureSpecError, load_spec, raw_columns, target_columns

__version__ = "1.0.0"

__all__ = ["FeatureSpec", "FeatureSpecError", "__version__", "load_spec", "raw_columns", "target_columns"]
