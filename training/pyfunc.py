"""MLflow pyfunc wrapper: a thin adapter over :class:`training.model.TrendflowModel`.

Contract (docs/training.md): input is a pandas DataFrame with the columns ``features.raw_columns(spec)`` (raw,
un-imputed; NaN allowed for optional features; extra columns ignored); output is a DataFrame with, for each target
``T`` in views_7d … likes_21d, ``T_p50, T_p10, T_p90, T_p05, T_p95, T_p025, T_p975`` (log1p scale) and
``T_confidence`` in [0, 1]. The model folder (artifact ``model``) carries its manifest, calibration and spec.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd


class TrendflowPyfunc(mlflow.pyfunc.PythonModel):
    """``load_context`` reads the ``model`` artifact folder; ``predict`` delegates to the model."""

    def load_context(self, context: Any) -> None:
        from training.model import TrendflowModel

        self.model = TrendflowModel.load(context.artifacts["model"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
                ) -> pd.DataFrame:
        return self.model.predict(pd.DataFrame(model_input))
