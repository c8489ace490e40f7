"""The published JSON contract of ``POST /predict`` (pydantic models -> OpenAPI / JSON Schema).

Front ends read ``prediction.values[<target>].p50`` (and the interval bounds next to it): **counts** (views or
likes), back-transformed with ``expm1`` from the models' log1p scale and clipped at 0. The same quantiles on the
models' own scale are under ``prediction.values[<target>].log1p`` (for analysis; averaging counts is fine,
averaging log1p values is what the models were trained on). Quantiles commute with the monotone ``expm1``, so the
count p50 is the median count.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from contract.output import QUANTILES, TARGETS


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Quantiles(_Out):
    p025: float
    p05: float
    p10: float
    p50: float
    p90: float
    p95: float
    p975: float


class TargetPrediction(_Out):
    """Counts (expm1 of the model's log1p quantiles, clipped at 0) + confidence; ``log1p``: model scale."""

    p025: float = Field(ge=0)
    p05: float = Field(ge=0)
    p10: float = Field(ge=0, description="lower bound of the default 80% interval")
    p50: float = Field(ge=0, description="median count: the number to show")
    p90: float = Field(ge=0, description="upper bound of the default 80% interval")
    p95: float = Field(ge=0)
    p975: float = Field(ge=0)
    confidence_score: float = Field(ge=0, le=1, description="the model's calibrated confidence, 1 = narrow interval")
    log1p: Quantiles


Values = create_model("Values", __base__=_Out, **dict.fromkeys(TARGETS, (TargetPrediction, ...)))  # type: ignore[call-overload]


class ModelInfo(_Out):
    type: str = Field(description="model family: v2 | v1 | baseline")
    slot: str = Field(description="configured slot that answered (differs from type for e.g. a canary)")
    name: str = Field(description="registered model name")
    version: str = Field(description="the pinned registered version number that answered")
    alias: str | None = Field(None, description="alias it was resolved from at start-up/reload, if any")
    run_id: str | None = None
    semver: str | None = None
    features_schema_version: str | None = None
    requested: str | dict[str, str] | None = Field(None, description="the request's `model` field when it asked "
                                                   "for this model explicitly (no fallback then)")


class Prediction(_Out):
    values: Values  # type: ignore[valid-type]
    scale: Literal["count"] = Field("count", description="scale of the top-level quantiles in values")
    model: ModelInfo
    experiment_bucket: str | None = Field(None, description="A/B bucket; present only when a split is configured")


class Notice(_Out):
    code: str
    message: str
    fields: list[str] = Field(default_factory=list)


class Attempt(_Out):
    slot: str
    type: str
    version: str | None
    error_code: str
    message: str


class Source(_Out):
    """Where the features came from (the extractor run for video/artifacts requests)."""

    mode: Literal["features", "artifacts", "video"]
    platform_id: str | None = None
    video_id: str | None = None
    run_id: str | None = None
    run_dir: str | None = None


class PredictResponse(_Out):
    request_id: str
    prediction_status: Literal["ok", "degraded"]
    prediction: Prediction
    warnings: list[Notice] = Field(default_factory=list)
    fallback: list[Attempt] = Field(default_factory=list, description="failed attempts before the answer")
    source: Source
    timings_ms: dict[str, float] = Field(default_factory=dict)


class FieldErrorOut(_Out):
    field: str
    code: str
    message: str


class ErrorResponse(_Out):
    error_code: str
    message: str
    request_id: str | None = None
    errors: list[FieldErrorOut] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)


class Live(_Out):
    status: Literal["live"]


def _path_pattern(roots: list[str]) -> str:
    """Absolute paths under one of ``roots`` whose segments cannot be ``.``/``..`` (no segment starts with a dot)
    nor carry percent escapes: what the server may accept; it still resolves symlinks itself."""
    import re

    alts = "|".join(re.escape(r.rstrip("/")) for r in roots)
    return rf"^({alts})(/[A-Za-z0-9_\-][A-Za-z0-9_.\-]{{0,254}})*/?$"


def _model_choice(slots: list[str] | None, types: list[str] | None) -> dict[str, Any]:
    """The ``model`` field: a configured slot name, or an object naming a slot and/or a model type. Only the
    configured names are valid (a name the service does not configure is a schema violation and a 422)."""
    slot = {"type": "string", **({"enum": sorted(slots)} if slots else {})}
    kind = {"type": "string", **({"enum": sorted(types)} if types else {})}
    return {"description": "ask for one served model (no fallback): a slot name, {\"slot\": name} or "
                           "{\"type\": \"v1\"}; one that is not served is a 422 naming it",
            "anyOf": [slot,
                      {"type": "object", "additionalProperties": False, "required": ["slot"],
                       "properties": {"slot": slot}},
                      {"type": "object", "additionalProperties": False, "required": ["type"],
                       "properties": {"type": kind}}]}


def request_schema(columns: list[str], critical: set[str], modes: list[str], *, roots: list[str] | None = None,
                   max_abs: float = 1e9, max_text: int = 5000, masks: set[str] | None = None,
                   slots: list[str] | None = None, types: list[str] | None = None) -> dict[str, Any]:
    """JSON Schema of the request body (published in OpenAPI): ``oneOf`` the enabled input modes, each an object
    with exactly its own fields, so a body valid by the schema is a body the service accepts."""
    masks = masks if masks is not None else {c for c in columns if c.startswith("mask__")}
    number = {"type": "number", "minimum": -max_abs, "maximum": max_abs}
    props_f: dict[str, Any] = {}
    for c in columns:
        if c in masks:
            props_f[c] = {"anyOf": [{"enum": [0, 1]}, {"type": "null"}], "description": "omit: derived from presence"}
        elif c in critical:
            props_f[c] = dict(number)
        else:
            props_f[c] = {"anyOf": [dict(number), {"type": "null"}]}
    feats = {"type": "object", "additionalProperties": False, "properties": props_f, "required": sorted(critical),
             "description": "the spec's raw model inputs; optional ones may be null/absent (imputed, with a warning); "
                            "mask__* columns may be omitted (derived from presence)"}
    common: dict[str, Any] = {
        "user_id": {"type": ["string", "integer"], "description": "A/B and shadow hashing key"},
        "video_id": {"type": ["string", "integer"]},
        "request_id": {"type": "string"},
        "model": _model_choice(slots, types),
    }
    path = {"type": "string", "pattern": _path_pattern(roots or ["/"]), "maxLength": 4096}
    text = {"type": "string", "minLength": 1, "maxLength": max_text}
    metadata = {"type": "object", "required": ["platform_id", "video_id", "published_at"],
                "properties": {"platform_id": text, "video_id": text, "published_at": text,
                               "title": {"type": "string", "maxLength": max_text},
                               "description": {"type": "string", "maxLength": max_text}},
                "description": "sidecar metadata: platform_id, video_id, published_at, first-snapshot views/likes, "
                               "channel statistics; every string at most max_text_chars"}
    branches = {
        "features": ("features mode", {"features": feats}, ["features"]),
        "artifacts": ("artifacts mode", {"artifacts_dir": {**path, "description": "an extractor run folder under "
                                                            "an allowed root"}}, ["artifacts_dir"]),
        "video": ("video mode", {"video_path": {**path, "description": "a video file under an allowed root"},
                                 "metadata": metadata}, ["video_path", "metadata"]),
    }
    one_of = [{"title": title, "type": "object", "additionalProperties": False,
               "properties": {**own, **common}, "required": required}
              for mode, (title, own, required) in branches.items() if mode in modes]
    return {"type": "object", "oneOf": one_of}


def _drop_null_defaults(node: Any) -> Any:
    """FastAPI leaves ``default: null`` out of OpenAPI; drop it here too (it constrains nothing)."""
    if isinstance(node, dict):
        return {k: _drop_null_defaults(v) for k, v in node.items() if not (k == "default" and v is None)}
    if isinstance(node, list):
        return [_drop_null_defaults(v) for v in node]
    return node


def published_schemas(request: dict[str, Any]) -> dict[str, Any]:
    """What ``GET /schema`` and ``python -m inference schema`` publish; equal to /openapi.json's (tested)."""
    return {"request": request,
            "response": _drop_null_defaults(PredictResponse.model_json_schema(mode="serialization")),
            "error": _drop_null_defaults(ErrorResponse.model_json_schema(mode="serialization"))}


def quantile_block(row: dict[str, float], target: str) -> dict[str, Any]:
    """Contract columns of one target -> the response's TargetPrediction dict."""
    import math

    logq = {q: row[f"{target}_{q}"] for q in QUANTILES}
    counts = {q: max(0.0, math.expm1(min(v, 700.0))) for q, v in logq.items()}
    return {**counts, "confidence_score": min(1.0, max(0.0, row[f"{target}_confidence"])), "log1p": logq}
