"""The retention policy (``conf/retention.yaml``), validated at start-up: a typo or a bad value fails naming the key."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from common.errors import ConfigError
from common.paths import CONF_DIR, REPO_ROOT

DEFAULT_POLICY = CONF_DIR / "retention.yaml"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(value: Any) -> int:
    """``20GiB``, ``800MiB``, ``1.5GB``, ``123456`` -> bytes (``ValueError`` otherwise)."""
    if isinstance(value, int | float):
        return int(value)
    t = str(value).strip().lower().replace(" ", "")
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = t[len(num):]
    if not num or unit not in _UNITS:
        raise ValueError(f"cannot read {value!r} as a size (use e.g. 20GiB, 800MiB)")
    return int(float(num) * _UNITS[unit])


def resolve(p: str | Path) -> Path:
    """A policy path: ``$TMPDIR`` is the system temp dir, relative paths are relative to the repo root."""
    s = str(p)
    if s.startswith("$TMPDIR"):
        return Path(tempfile.gettempdir()) / s[len("$TMPDIR"):].lstrip("/")
    q = Path(os.path.expanduser(s))
    return q if q.is_absolute() else REPO_ROOT / q


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArtifactsPolicy(_Strict):
    stores: list[str] = Field(default_factory=list)
    serving_store: str | None = ".trendflow/serving/artifacts"
    lease_timeout_s: float = Field(120.0, gt=0)
    pin_archived_versions: bool = False


class TempRoot(_Strict):
    folder: str
    glob: str = "*"


class TempPolicy(_Strict):
    ttl_days: float = Field(7.0, ge=0)
    stale_tmp_hours: float = Field(24.0, ge=0)
    roots: list[TempRoot] = Field(default_factory=list)
    tmp_file_roots: list[str] = Field(default_factory=list)


class WeightCache(_Strict):
    """A weight cache outside the model repository (``weights.caches``; conf/retention.yaml says what each kind
    means)."""

    name: str
    kind: Literal["package", "folder"]
    package: str | None = None  # kind package: the importable name of the installed package
    path: str | None = None  # kind folder: <path>/<triton model>/<version>/ build folders
    used_by: list[str] = Field(default_factory=list)  # kind package: Triton models whose weights it holds

    @model_validator(mode="after")
    def _where(self) -> WeightCache:
        if self.kind == "package" and not self.package:
            raise ValueError(f"cache {self.name!r}: kind package needs `package` (the importable name)")
        if self.kind == "folder" and not self.path:
            raise ValueError(f"cache {self.name!r}: kind folder needs `path`")
        return self


class WeightsPolicy(_Strict):
    model_repository: str = "model_repository"
    mapping: str = "conf/triton_models.yaml"
    grace_days: float = Field(14.0, ge=0)
    archive_dir: str = ".trendflow/retention/archive/model_repository"
    archive_days: float = Field(30.0, ge=0)
    max_bytes: int = Field(20 * 2**30, ge=0)
    caches: list[WeightCache] = Field(default_factory=list)

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _size(cls, v: Any) -> int:
        return parse_size(v)


class MlflowArchive(_Strict):
    # keep: archived versions' artifacts stay in the MLflow store; move: copied to `location`, verified, removed
    mode: Literal["keep", "move"] = "keep"
    location: str = ".trendflow/retention/archive/mlflow"


class MlflowPolicy(_Strict):
    archive_tag: str = "archived"
    archive: MlflowArchive = MlflowArchive()
    keep_aliases: list[str] = Field(default_factory=lambda: ["stable", "previous"])


class RetentionPolicy(_Strict):
    """The whole policy; see ``conf/retention.yaml`` for what each key means."""

    cap_days: float = Field(60.0, gt=0)
    keep_previous: int = Field(2, ge=0)
    min_age_hours: float = Field(1.0, ge=0)
    artifacts: ArtifactsPolicy = ArtifactsPolicy()
    temp: TempPolicy = TempPolicy()
    weights: WeightsPolicy = WeightsPolicy()
    mlflow: MlflowPolicy = MlflowPolicy()
    record: str = ".trendflow/gc.jsonl"
    record_store_url: str | None = None

    @property
    def cap_s(self) -> float:
        return self.cap_days * 86400.0

    @property
    def min_age_s(self) -> float:
        return self.min_age_hours * 3600.0


def _format(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors())


def load_policy(path: str | Path | None = None, **overrides: Any) -> RetentionPolicy:
    """Load and validate the policy file; ``overrides`` replace top-level keys (tests, CLI flags).

    Raises:
        ConfigError: the file is missing or unreadable, or a key is unknown or has a bad value (named).
    """
    path = Path(path) if path is not None else DEFAULT_POLICY
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the retention policy ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the retention policy must be a mapping")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return RetentionPolicy.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_format(exc)}") from None
