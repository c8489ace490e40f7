"""Request-side feature contract: which raw inputs a request may carry, which are critical, how masks derive.

Built once from the serving ``feature_spec.yaml``. :meth:`FeatureContract.validate` turns a JSON object into a
model-input row (float per column, NaN for absent optional values) or a list of field errors, each naming the
field and a code (``missing_critical_feature``, ``unknown_field``, ``invalid_type``, ``not_finite``,
``invalid_mask``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

NAN = float("nan")


@dataclass
class FieldError:
    field: str
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


@dataclass
class ValidatedRow:
    values: dict[str, float]
    imputed: list[str] = field(default_factory=list)   # optional columns absent -> NaN (model imputes)
    derived_masks: list[str] = field(default_factory=list)


@dataclass
class FeatureContract:
    columns: list[str]                       # features.raw_columns(spec), model input order
    critical: set[str]                       # columns of critical features
    masks: dict[str, list[str]]              # mask column -> the feature columns whose presence it records
    schema_version: str
    spec_hash: str

    @classmethod
    def from_spec(cls, spec: Any) -> FeatureContract:
        from features import raw_columns

        critical = {c for f in spec.features if f.critical for c in f.columns}
        masks = {f.mask_column: list(f.columns) for f in spec.features if f.mask_column}
        return cls(raw_columns(spec), critical, masks, spec.feature_schema_version, spec.spec_hash)

    def validate(self, payload: Any, max_abs: float = math.inf) -> tuple[ValidatedRow | None, list[FieldError]]:
        """Row for the model, or the errors (all of them, not only the first); ``|value| > max_abs`` is an
        ``out_of_range`` error (a hard validity bound, far wider than any training distribution)."""
        if not isinstance(payload, dict):
            return None, [FieldError("features", "invalid_type", "features must be a JSON object")]
        errors: list[FieldError] = []
        known = set(self.columns)
        for k in payload:
            if k not in known:
                errors.append(FieldError(f"features.{k}", "unknown_field", "not an input of the serving spec "
                                         f"{self.schema_version}"))
        values: dict[str, float] = {}
        imputed: list[str] = []
        missing_critical: list[str] = []
        for c in self.columns:
            if c in self.masks:
                continue
            v = payload.get(c)
            if v is None:
                if c in self.critical:
                    missing_critical.append(c)
                else:
                    values[c] = NAN
                    imputed.append(c)
                continue
            if isinstance(v, bool) or not isinstance(v, int | float):
                errors.append(FieldError(f"features.{c}", "invalid_type", f"expected a number, got {type(v).__name__}"))
                continue
            try:
                x = float(v)
            except OverflowError:  # an integer beyond float range
                x = math.inf
            if not math.isfinite(x):
                if c in self.critical:
                    errors.append(FieldError(f"features.{c}", "not_finite", "critical feature must be finite"))
                    continue
                values[c] = NAN
                imputed.append(c)
                continue
            if abs(x) > max_abs:
                errors.append(FieldError(f"features.{c}", "out_of_range", f"|value| must be at most {max_abs:g}"))
                continue
            values[c] = x
        for c in missing_critical:
            errors.append(FieldError(f"features.{c}", "missing_critical_feature",
                                     "critical feature is missing (null or absent)"))
        derived: list[str] = []
        for m, cols in self.masks.items():
            v = payload.get(m)
            if v is None:
                present = all(c in values and not math.isnan(values[c]) for c in cols)
                values[m] = 1.0 if present else 0.0
                derived.append(m)
            elif isinstance(v, bool) or not isinstance(v, int | float) or v not in (0, 1):
                errors.append(FieldError(f"features.{m}", "invalid_mask", "a mask is 0 or 1 (or omitted: derived)"))
            else:
                values[m] = float(v)
        if errors:
            return None, errors
        return ValidatedRow({c: values[c] for c in self.columns}, imputed, derived), []
