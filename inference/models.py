"""Load the configured slots: resolve each alias ONCE to a version number, load that number, sanity-check it.

A :class:`LoadedModel` is immutable after loading; the service swaps whole :class:`ModelSet`s on reload, so a
request that started on one set finishes on it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from contract.output import check_output, output_columns

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from inference.config import InferenceConfig, SlotConfig
    from registry.config import RegistryConfig

log = logging.getLogger("inference.models")

_NUMPY_OF = {"double": np.float64, "float": np.float32, "long": np.int64, "integer": np.int32, "boolean": np.bool_}


class InjectedFault(RuntimeError):
    """Raised by a slot listed under ``fault_injection`` (test-only configuration)."""


@dataclass
class LoadedModel:
    slot: str
    type: str
    name: str
    version: str
    alias: str | None
    run_id: str | None
    semver: str | None
    features_schema_version: str | None
    tags: dict[str, str]
    pyfunc: Any = None
    columns: list[str] = field(default_factory=list)
    dtypes: dict[str, Any] = field(default_factory=dict)
    load_s: float = 0.0
    sanity_ok: bool = False
    error: str | None = None
    fault: str | None = None
    enforce_schema: bool = False

    @property
    def ready(self) -> bool:
        return self.pyfunc is not None and self.sanity_ok and self.error is None

    def describe(self) -> dict[str, Any]:
        return {"slot": self.slot, "type": self.type, "name": self.name, "version": self.version,
                "alias": self.alias, "run_id": self.run_id, "semver": self.semver,
                "features_schema_version": self.features_schema_version, "loaded": self.pyfunc is not None,
                "sanity_ok": self.sanity_ok, "load_seconds": round(self.load_s, 3), "error": self.error}

    def frame(self, rows: list[dict[str, float]]) -> pd.DataFrame:
        """Rows -> the model's input frame: its signature's columns, order and dtypes."""
        import pandas as pd

        cols = self.columns or list(rows[0])
        nan = float("nan")
        arr = np.array([[r.get(c, nan) for c in cols] for r in rows], dtype=np.float64)  # (N, F)
        frame = pd.DataFrame(arr, columns=cols)
        return frame.astype(self.casts) if self.casts else frame

    @property
    def casts(self) -> dict[str, Any]:
        return {c: dt for c, dt in self.dtypes.items() if dt is not np.float64}

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's predict. With ``enforce_schema=False`` MLflow's per-call signature enforcement (~10 ms for
        ~100 columns) is skipped: the request contract already validated every value and :meth:`frame` built
        exactly the signature's columns and dtypes; outputs are identical (tested)."""
        fn = None if self.enforce_schema else getattr(self.pyfunc, "_predict_fn", None)
        return fn(frame) if fn is not None else self.pyfunc.predict(frame)

    def predict_rows(self, rows: list[dict[str, float]]) -> list[dict[str, float]]:
        """Predict a batch; returns one dict of contract columns per row (log1p scale)."""
        if self.fault == "raise":
            raise InjectedFault(f"fault injected for slot {self.slot!r} by configuration")
        out = self.predict_frame(self.frame(rows))
        cols = output_columns()
        arr = out[cols].to_numpy(dtype=np.float64)  # (N, 6 * 8)
        if arr.shape[0] != len(rows):
            raise RuntimeError(f"model returned {arr.shape[0]} rows for {len(rows)}")
        return [dict(zip(cols, row, strict=True)) for row in arr.tolist()]


def resolve_version(client: MlflowClient, name: str, slot: SlotConfig) -> tuple[str, Any]:
    """(version number, ModelVersion); an alias is looked up here, once."""
    if slot.alias is not None:
        mv = client.get_model_version_by_alias(name, slot.alias)
    else:
        mv = client.get_model_version(name, str(slot.version))
    return str(mv.version), mv


def _signature_types(pyfunc: Any) -> tuple[list[str], dict[str, Any]]:
    schema = pyfunc.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        return [], {}
    cols, dtypes = [], {}
    for spec in schema.inputs:
        cols.append(spec.name)
        t = getattr(spec.type, "name", str(spec.type))
        if t in _NUMPY_OF:
            dtypes[spec.name] = _NUMPY_OF[t]
    return cols, dtypes


def load_slot(client: MlflowClient, reg: RegistryConfig, cfg: InferenceConfig, slot_name: str,
              sanity_rows: int | None = None, spec: Any = None) -> LoadedModel:
    """Resolve, load and sanity-check one slot against the serving ``spec`` (default: ``cfg.spec`` read now).
    Never raises: problems land in ``.error``."""
    import mlflow.pyfunc

    from registry.gates import schema_compatible
    from registry.store import version_run_id

    slot = cfg.models[slot_name]
    name = reg.name_of(slot.type)
    lm = LoadedModel(slot_name, slot.type, name, str(slot.version or ""), slot.alias, None, None, None, {},
                     fault=cfg.fault_injection.get(slot_name),
                     enforce_schema=cfg.enforce_mlflow_schema)
    t0 = time.perf_counter()
    try:
        lm.version, mv = resolve_version(client, name, slot)
        lm.tags = dict(mv.tags or {})
        lm.run_id = version_run_id(mv)
        lm.semver = lm.tags.get("semver")
        lm.features_schema_version = lm.tags.get("feature_schema_version")
        log.info("slot %s: %s %s -> version %s", slot_name, name,
                 f"alias @{slot.alias}" if slot.alias else "pinned", lm.version)
        lm.pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{lm.version}")
        lm.columns, lm.dtypes = _signature_types(lm.pyfunc)
        # The promotion gate checks this too, but a version pinned by number or an alias moved by hand in the
        # MLflow UI never went through the gates: the service refuses an incompatible schema itself.
        if spec is None:
            from features import load_spec

            spec = load_spec(cfg.path(cfg.spec))
        ok, why = schema_compatible(lm.features_schema_version or "", lm.columns, spec)
        if not ok:
            lm.pyfunc = None  # never served: requests fall back to the next slot
            lm.error = f"schema_incompatible: {why}"[:500]
            lm.load_s = time.perf_counter() - t0
            log.error("slot %s: %s", slot_name, lm.error)
            return lm
    except Exception as exc:
        lm.error = f"load failed: {type(exc).__name__}: {exc}"[:500]
        lm.load_s = time.perf_counter() - t0
        log.error("slot %s: %s", slot_name, lm.error)
        return lm
    lm.load_s = time.perf_counter() - t0
    lm.sanity_ok, problem = sanity_check(lm, sanity_rows or cfg.sanity_rows)
    if not lm.sanity_ok:
        lm.error = f"sanity inference failed: {problem}"[:500]
        log.error("slot %s: %s", slot_name, lm.error)
    return lm


def sanity_check(lm: LoadedModel, rows: int) -> tuple[bool, str]:
    """Predict the logged input example per the contract (fault injection is per request, not here).

    When the fast path is on, the example is also predicted through MLflow's full ``pyfunc.predict`` (schema
    enforcement included); if the two outputs differ the slot falls back to full enforcement for good.
    """
    example = lm.pyfunc.input_example
    if example is None:
        return False, "no input example logged with the model"
    example = example.head(rows) if hasattr(example, "head") else example
    try:
        frame = lm.frame(example.to_dict("records")) if lm.columns else example
        out = lm.pyfunc.predict(frame)
        if not lm.enforce_schema:
            fast = lm.predict_frame(frame)
            cols = output_columns()
            if not np.array_equal(np.asarray(out[cols], np.float64), np.asarray(fast[cols], np.float64),
                                  equal_nan=True):
                log.warning("slot %s: fast path differs from pyfunc.predict; enforcing the schema", lm.slot)
                lm.enforce_schema = True
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    problems = check_output(out, n_rows=len(example))
    return not problems, "; ".join(problems)
