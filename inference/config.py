"""Typed service configuration (``conf/inference.yaml``); a typo fails at start-up naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.configfile import read_yaml_mapping
from common.errors import ConfigError
from inference.access import AdminConfig, Limits
from inference.ood import OODConfig
from registry.config import REPO_ROOT, resolve_path

DEFAULT_CONFIG = REPO_ROOT / "conf" / "inference.yaml"
RequestMode = Literal["features", "artifacts", "video"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlotConfig(_Strict):
    """One served model: a registered type pinned to a ``version`` number or an ``alias`` resolved once."""

    type: str
    version: int | None = Field(None, ge=1)
    alias: str | None = None
    # Tier 0 (true): loaded and sanity-checked at start-up, required for readiness. false: loaded on first use
    # (e.g. a rarely hit canary); its alias is still resolved once, at that first use, then pinned.
    preload: bool = True
    # Readiness needs the primary slot and every slot marked required; any other slot is an optional fallback
    # whose absence is reported as `degraded` in /health/ready (and in a gauge), not a 503.
    required: bool = False

    @model_validator(mode="after")
    def _one_pin(self) -> SlotConfig:
        if (self.version is None) == (self.alias is None):
            raise ValueError("set exactly one of `version` (a number) or `alias` (resolved once at start-up)")
        return self


class Batching(_Strict):
    max_batch: int = Field(64, ge=1)
    max_wait_ms: float = Field(0.0, ge=0)


class Arm(_Strict):
    bucket: str
    slot: str
    weight: float = Field(gt=0)


class ABConfig(_Strict):
    key: Literal["user_id", "video_id"] = "user_id"
    salt: str = "trendflow-ab"
    arms: list[Arm] = Field(min_length=2)


class ShadowConfig(_Strict):
    slot: str
    fraction: float = Field(0.1, ge=0, le=1)


class TritonConfig(_Strict):
    url: str | None = None
    state_dir: str = ".trendflow/triton"
    timeout_s: float = Field(1.0, gt=0)


class ExtractionConfig(_Strict):
    profile: str = "fast"
    artifacts_dir: str = ".trendflow/serving/artifacts"


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"


class InferenceConfig(_Strict):
    registry: str = "conf/registry.yaml"
    tracking_uri: str | None = None
    spec: str = "feature_spec.yaml"
    models: dict[str, SlotConfig]
    primary: str
    fallback: list[str] = Field(default_factory=list)
    # Order the chain by measured quality instead of by name: the loaded versions' tag of this lower-is-better
    # test metric (training tags test/mae_mean), compared only when every ranked version carries the same
    # split_hash tag (the same test rows); otherwise, or when null, the configured order stands.
    primary_by: str | None = "test/mae_mean"
    request_modes: list[RequestMode] = Field(default_factory=lambda: ["features"], min_length=1)
    batching: Batching = Batching()
    ab: ABConfig | None = None
    shadow: ShadowConfig | None = None
    triton: TritonConfig = TritonConfig()
    extraction: ExtractionConfig = ExtractionConfig()
    server: ServerConfig = ServerConfig()
    sanity_rows: int = Field(2, ge=1)
    enforce_mlflow_schema: bool = False
    fault_injection: dict[str, Literal["raise"]] = Field(default_factory=dict)
    # Trust (issue 18): where client-given paths may point, who may call /admin/*, how large a request may be.
    allowed_roots: list[str] = Field(default_factory=lambda: ["data", ".trendflow/serving"], min_length=1)
    admin: AdminConfig = AdminConfig()
    limits: Limits = Limits()
    ood: OODConfig = OODConfig()

    @model_validator(mode="after")
    def _slots_exist(self) -> InferenceConfig:
        named = [self.primary, *self.fallback]
        named += [a.slot for a in self.ab.arms] if self.ab else []
        named += [self.shadow.slot] if self.shadow else []
        named += list(self.fault_injection)
        unknown = sorted({s for s in named if s not in self.models})
        if unknown:
            raise ValueError(f"slots {unknown} are not defined under `models` ({sorted(self.models)})")
        return self

    @property
    def chain(self) -> list[str]:
        """The fallback order: primary, then the fallbacks."""
        return [self.primary, *[s for s in self.fallback if s != self.primary]]

    def required_slots(self, primary: str | None = None) -> list[str]:
        """Slots readiness needs: the primary (``primary``, else the configured one) and every slot marked
        ``required: true``."""
        primary = primary or self.primary
        return [primary, *[s for s, sc in self.models.items() if sc.required and s != primary]]

    def find_slot(self, requested: Any) -> str | None:
        """The slot a request's ``model`` field names: a slot name (``"v1"`` or ``{"slot": "v1"}``) or a model
        type (``{"type": "v1"}``: the first slot of the chain, then of ``models``, serving that type)."""
        if isinstance(requested, str):
            return requested if requested in self.models else None
        if (not isinstance(requested, dict) or len(requested) != 1 or set(requested) - {"slot", "type"}
                or not all(isinstance(v, str) for v in requested.values())):
            return None  # exactly {"slot": name} or {"type": name}: what the published schema allows
        if isinstance(requested.get("slot"), str):
            return requested["slot"] if requested["slot"] in self.models else None
        want = requested.get("type")
        order = [*self.chain, *[s for s in self.models if s not in self.chain]]
        return next((s for s in order if self.models[s].type == want), None)

    @property
    def needs_triton(self) -> bool:
        """Only a video-path request runs the extractor (artifacts and features do not touch Triton)."""
        return "video" in self.request_modes

    def path(self, value: str) -> Path:
        return resolve_path(value)


def _format(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors())


def parse_config(raw: dict[str, Any], origin: str = "<config>") -> InferenceConfig:
    try:
        return InferenceConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {_format(exc)}") from None


def load_config(path: str | Path | None = None, **overrides: Any) -> InferenceConfig:
    """Load ``conf/inference.yaml`` (or ``path``); ``overrides`` replace top-level keys."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.exists():
        raise ConfigError(f"{path}: inference config not found")
    raw = read_yaml_mapping(path)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return parse_config(raw, str(path))
