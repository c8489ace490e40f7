"""Extraction configuration: analysis profiles and the component -> Triton model mapping.

``conf/triton_models.yaml`` holds the bootstrap mapping (logical model -> Triton model:version) and the
profiles (``fast``, ``quality``) that pick variants and parameters. :func:`load_profile` validates it
(a typo fails at start-up naming the key) and resolves the mapping once per run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.errors import ConfigError
from common.paths import REPO_ROOT

DEFAULT_MAPPING = REPO_ROOT / "conf" / "triton_models.yaml"


class ModelRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    triton_model: str
    version: str


class Sampling(BaseModel):
    """Frame sampling policy: uniform in time at ``fps``, at most ``max_frames``, resized to ``max_side``."""

    model_config = ConfigDict(extra="forbid")
    fps: float = Field(gt=0)
    max_frames: int = Field(gt=0)
    max_side: int = Field(gt=0)


class ComponentParams(BaseModel):
    model_config = ConfigDict(extra="allow")  # component-specific knobs (window_s, max_side, ...)
    model: str | None = None


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sampling: Sampling
    components: dict[str, ComponentParams]


class MappingFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: dict[str, ModelRef]
    profiles: dict[str, Profile]


class ExtractionConfig(BaseModel):
    """One resolved profile: what every component runs with, recorded in each manifest."""

    model_config = ConfigDict(extra="forbid")
    profile: str
    sampling: Sampling
    components: dict[str, ComponentParams]
    resolved_models: dict[str, ModelRef] = Field(description="component -> Triton model:version")
    seed: int = 0

    def params(self, component: str) -> dict[str, Any]:
        p = self.components.get(component)
        return p.model_dump() if p else {}


def load_profile(profile: str, mapping_path: Path = DEFAULT_MAPPING, seed: int = 0,
                 overrides: dict[str, ModelRef] | None = None) -> ExtractionConfig:
    """Load and validate the mapping file and resolve ``profile``.

    Args:
        profile: profile name (``fast`` | ``quality``).
        mapping_path: YAML mapping file.
        seed: recorded in every artifact.
        overrides: logical model -> ModelRef replacing the file's entry (tests, canaries).
    """
    try:
        raw = yaml.safe_load(Path(mapping_path).read_text())
        mapping = MappingFile.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {mapping_path}: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(f"{mapping_path} is invalid: {exc}") from exc
    if profile not in mapping.profiles:
        raise ConfigError(f"unknown profile {profile!r}; known: {sorted(mapping.profiles)}")
    models = {**mapping.models, **(overrides or {})}
    prof = mapping.profiles[profile]
    resolved: dict[str, ModelRef] = {}
    for comp, params in prof.components.items():
        if params.model is None:
            continue
        if params.model not in models:
            raise ConfigError(f"profile {profile!r}: component {comp!r} uses unknown model {params.model!r}")
        resolved[comp] = models[params.model]
    return ExtractionConfig(profile=profile, sampling=prof.sampling, components=prof.components,
                            resolved_models=resolved, seed=seed)
