"""Typed registry configuration (``conf/registry.yaml``): where the store is, names, aliases, gate thresholds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.configfile import read_yaml_mapping
from common.errors import ConfigError
from common.paths import REPO_ROOT

DEFAULT_CONFIG = REPO_ROOT / "conf" / "registry.yaml"
DEFAULT_STORE = REPO_ROOT / ".trendflow" / "mlflow"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Aliases(_Strict):
    stable: str = "stable"
    previous: str = "previous"


class Gates(_Strict):
    metrics: list[str] = Field(default_factory=lambda: [f"test/mae_{t}" for t in (
        "views_7d", "views_14d", "views_21d", "likes_7d", "likes_14d", "likes_21d")])
    metric_rel_tolerance: float = Field(0.02, ge=0)
    metric_abs_tolerance: float = Field(0.0, ge=0)
    coverage: dict[str, float] = Field(default_factory=lambda: {"test/coverage_90": 0.90})
    coverage_tolerance: float = Field(0.02, ge=0, le=1)
    # Sampling error of the empirical coverage on n test rows: |empirical - nominal| may also reach
    # coverage_z * sqrt(nominal (1 - nominal) / n). 0 = the fixed tolerance only.
    coverage_z: float = Field(2.58, ge=0)
    split_keys: list[str] = Field(default_factory=lambda: ["split_hash", "dataset_hash", "dataset_sha256",
                                                                  "data.split.test", "split.test_rows"])
    require_split_identity: bool = True
    # Test splits differ: re-score candidate and stable on the candidate's test rows after the stable's test cut
    # (registry/rescore.py), refusing when fewer than rescore_min_rows remain. False: refuse outright.
    rescore_on_split_change: bool = True
    rescore_min_rows: int = Field(200, ge=1)
    serving_spec: str = "feature_spec.yaml"
    sanity_rows: int = Field(8, ge=1)


class RegistryConfig(_Strict):
    tracking_uri: str | None = None
    artifact_root: str | None = None
    audit_log: str = ".trendflow/registry/audit.jsonl"
    models: dict[str, str] = Field(default_factory=lambda: {
        "baseline": "trendflow-baseline", "v1": "trendflow-v1-late-fusion", "v2": "trendflow-v2-transformer"})
    aliases: Aliases = Aliases()
    gates: Gates = Gates()

    # -- resolved views -----------------------------------------------------------------------------------
    def resolved_tracking_uri(self) -> str:
        """Config, then ``$MLFLOW_TRACKING_URI``, then the embedded SQLite store under ``.trendflow/``."""
        if self.tracking_uri:
            return self.tracking_uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        return f"sqlite:///{DEFAULT_STORE / 'mlflow.db'}"

    def resolved_artifact_root(self) -> str | None:
        if self.artifact_root:
            return str(resolve_path(self.artifact_root))
        if self.resolved_tracking_uri().startswith("sqlite:///") and not self.tracking_uri \
                and not os.environ.get("MLFLOW_TRACKING_URI"):
            return str(DEFAULT_STORE / "artifacts")
        return None

    def audit_path(self) -> Path:
        return resolve_path(self.audit_log)

    def serving_spec_path(self) -> Path:
        return resolve_path(self.gates.serving_spec)

    def name_of(self, model_type: str) -> str:
        if model_type not in self.models:
            raise ConfigError(f"unknown model type {model_type!r}; configured: {sorted(self.models)}",
                              code="unknown_model_type")
        return self.models[model_type]

    def type_of(self, name: str) -> str | None:
        return next((t for t, n in self.models.items() if n == name), None)


def resolve_path(p: str | Path) -> Path:
    p = Path(p)
    return p if p.is_absolute() else REPO_ROOT / p


def _format(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors())


def load_config(path: str | Path | None = None, **overrides: Any) -> RegistryConfig:
    """Load and validate the registry config; ``overrides`` replace top-level keys (tests, CLI flags)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    raw: dict[str, Any] = {}
    if path.exists():
        raw = read_yaml_mapping(path)
    elif path != DEFAULT_CONFIG:
        raise ConfigError(f"{path}: registry config not found")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return RegistryConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_format(exc)}") from None
