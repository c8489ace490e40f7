"""The trained model object of every family: core model + conformal calibration + self-description.

:class:`TrendflowModel` is what ``run`` evaluates, what the pyfunc wrapper loads and what the inference service
gets from ``mlflow.pyfunc.load_model``: ``predict(raw_frame) -> output frame``. Saved as one folder::

    model/
      manifest.json      family, kind, versions, spec hash, input columns, targets, config, dataset hash ...
      calibration.json   IntervalCalibrator state (per target, level and age-bucket corrections)
      feature_spec.yaml  the spec the model was trained on (its hash is in the manifest)
      core/              the family's weights (CatBoost .cbm / LightGBM .txt / torch state dict + preprocessing)

Output: the prediction contract of :mod:`contract.output` (per target, the quantiles ``p025 … p975`` on the
spec's log1p scale, monotone, and ``T_confidence`` in [0, 1]).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contract.output import QUANTILES, output_columns
from training.intervals import BaseOutput, IntervalCalibrator

MANIFEST_VERSION = "1"
def group_keys(values: Any) -> np.ndarray:
    """Calibration group labels from the group column: ``2.0 -> "2"``; missing -> ``"nan"`` (pooled)."""
    v = pd.to_numeric(pd.Series(np.asarray(values)), errors="coerce").to_numpy(dtype=np.float64)
    out = np.full(v.shape, "nan", dtype=object)
    ok = np.isfinite(v)
    out[ok] = [str(int(x)) if float(x).is_integer() else str(x) for x in v[ok]]
    return out


class InputError(ValueError):
    """The input frame lacks columns of the model's input contract (all of them are named)."""


@dataclass
class TrendflowModel:
    """Core model + calibration + manifest.

    Attributes:
        core: the family's trained model (``predict_base(frame) -> BaseOutput``).
        calibrator: fitted :class:`IntervalCalibrator`.
        manifest: self-description (see module docstring); ``input_columns``, ``labels`` and ``group_column``
            are required.
    """

    core: Any
    calibrator: IntervalCalibrator
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def input_columns(self) -> list[str]:
        return list(self.manifest["input_columns"])

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    def _frame(self, raw: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.input_columns if c not in raw.columns]
        if missing:
            raise InputError(f"input lacks {len(missing)} column(s) of the model's input contract: {missing}")
        return raw[self.input_columns].apply(pd.to_numeric, errors="coerce").astype(np.float64)

    def base(self, raw: pd.DataFrame) -> BaseOutput:
        """Uncalibrated core predictions on a raw feature frame."""
        return self.core.predict_base(self._frame(raw))

    def groups(self, raw: pd.DataFrame) -> np.ndarray | None:
        g = self.manifest.get("group_column")
        return None if g is None else group_keys(raw[g].to_numpy())

    def predict_arrays(self, raw: pd.DataFrame) -> dict[str, np.ndarray]:
        """``{"p50": (N, H), …, "confidence": (N, H)}`` for a raw (un-imputed) feature frame."""
        frame = self._frame(raw)
        return self.calibrator.apply(self.core.predict_base(frame), self.groups(frame))

    def predict(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The output contract as a DataFrame (index of ``raw`` kept)."""
        arrays = self.predict_arrays(raw)
        data = {}
        for h, t in enumerate(self.labels):
            for s in (*QUANTILES, "confidence"):
                data[f"{t}_{s}"] = arrays[s][:, h]
        return pd.DataFrame(data, index=raw.index, columns=output_columns(tuple(self.labels)))

    # ------------------------------------------------------------------------------------------- I/O
    def save(self, path: str | Path, spec_path: str | Path | None = None) -> Path:
        """Write the model folder (replacing it)."""
        path = Path(path)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        self.core.save(path / "core")
        (path / "calibration.json").write_text(json.dumps(self.calibrator.to_dict(), indent=2))
        if spec_path is not None:
            shutil.copyfile(spec_path, path / "feature_spec.yaml")
        manifest = dict(self.manifest, manifest_version=MANIFEST_VERSION, kind=self.core.kind,
                        output_columns=output_columns(tuple(self.labels)))
        (path / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrendflowModel:
        path = Path(path)
        manifest = json.loads((path / "manifest.json").read_text())
        from training.families import load_core

        core = load_core(manifest["kind"], path / "core")
        calibrator = IntervalCalibrator.from_dict(json.loads((path / "calibration.json").read_text()))
        return cls(core, calibrator, manifest)
