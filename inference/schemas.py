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


def request_schema(columns: list[str], critical: set[str], modes: list[str]) -> dict[str, Any]:
    """JSON Schema of the request body for the serving spec (published in OpenAPI)."""
    feats = {"type": "object", "additionalProperties": False,
             "properties": {c: {"anyOf": [{"type": "number"}, {"type": "null"}]} for c in columns},
             "required": sorted(critical),
             "description": "the spec's raw model inputs; optional ones may be null/absent (imputed, with a warning); "
                            "mask__* columns may be omitted (derived from presence)"}
    props: dict[str, Any] = {
        "user_id": {"type": "string", "description": "A/B and shadow hashing key"},
        "video_id": {"type": "string"},
        "request_id": {"type": "string"},
        "model": {"description": "ask for one served model (no fallback): a slot name, {\"slot\": name} or "
                                 "{\"type\": \"v1\"}; one that is not served is a 422 naming it",
                  "anyOf": [{"type": "string"},
                            {"type": "object", "additionalProperties": False,
                             "properties": {"slot": {"type": "string"}, "type": {"type": "string"}}}]},
    }
    one_of = []
    if "features" in modes:
        props["features"] = feats
        one_of.append({"required": ["features"]})
    if "artifacts" in modes:
        props["artifacts_dir"] = {"type": "string", "description": "an extractor run folder on the server"}
        one_of.append({"required": ["artifacts_dir"]})
    if "video" in modes:
        props["video_path"] = {"type": "string", "description": "a video file on the server"}
        props["metadata"] = {"type": "object", "description": "sidecar metadata: platform_id, video_id, "
                             "published_at, first-snapshot views/likes, channel statistics"}
        one_of.append({"required": ["video_path", "metadata"]})
    return {"type": "object", "additionalProperties": False, "properties": props, "oneOf": one_of}


def quantile_block(row: dict[str, float], target: str) -> dict[str, Any]:
    """Contract columns of one target -> the response's TargetPrediction dict."""
    import math

    logq = {q: row[f"{target}_{q}"] for q in QUANTILES}
    counts = {q: max(0.0, math.expm1(min(v, 700.0))) for q, v in logq.items()}
    return {**counts, "confidence_score": min(1.0, max(0.0, row[f"{target}_confidence"])), "log1p": logq}
