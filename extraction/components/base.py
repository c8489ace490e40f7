"""The component contract.

A component is a named producer of one artifact per video. Core providers (``kind="core"``) turn the
video, its audio or its metadata into features, calling Triton models through the :class:`ModelProvider`;
modules (``kind="module"``) only combine artifacts of the components they depend on and never run a model
for data a provider gives. ``producer_version`` is the version of the component's code (not of its model);
``schema_version`` comes from :mod:`extraction.schemas`. ``tier`` 0 means "needed for any prediction".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal

import numpy as np

from common.errors import DependencyMissing
from extraction.decode import AUDIO_SAMPLE_RATE, SampledFrames, decode_audio, sample_frames
from extraction.provider import InferStats, ModelHandle, ModelProvider
from extraction.schemas import SCHEMAS, ModelUsed, Status


@dataclass
class VideoInput:
    """One video to process: the file, its sidecar metadata and the decode settings of the profile."""

    path: str
    metadata: dict[str, Any]
    sampling_fps: float
    max_frames: int
    max_side: int

    @property
    def platform_id(self) -> str:
        return str(self.metadata["platform_id"])

    @property
    def video_id(self) -> str:
        return str(self.metadata["video_id"])

    @cached_property
    def frames(self) -> SampledFrames:
        """Decoded lazily, once per video, only if a frame-based component must be computed."""
        return sample_frames(self.path, self.sampling_fps, self.max_frames, self.max_side)

    @cached_property
    def audio(self) -> np.ndarray | None:
        return decode_audio(self.path)

    def release(self) -> None:
        """Drop the decoded frames and audio (tens of MB per video). The runner calls it when the video is done:
        a run's job list holds every video until the run ends (4,000 demo videos kept ~22 GB of frames)."""
        self.__dict__.pop("frames", None)
        self.__dict__.pop("audio", None)


@dataclass
class ComputeContext:
    video: VideoInput
    params: dict[str, Any]
    deps: dict[str, tuple[dict[str, np.ndarray], str]]  # dependency -> (arrays, status)
    provider: ModelProvider | None
    model: ModelHandle | None
    batch_size: int
    stats: InferStats = field(default_factory=InferStats)

    def dep(self, name: str) -> tuple[dict[str, np.ndarray], str]:
        if name not in self.deps:
            raise DependencyMissing(f"artifact of {name!r} is absent", dependency=name)
        return self.deps[name]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert self.provider is not None and self.model is not None
        return self.provider.infer(self.model, inputs, self.batch_size, self.stats)


@dataclass
class ComponentResult:
    arrays: dict[str, np.ndarray]
    status: Status = "ok"
    coverage: float = 1.0
    warnings: list[str] = field(default_factory=list)


class Component:
    """Base class; subclasses set the class attributes and implement :meth:`compute`."""

    name: ClassVar[str]
    kind: ClassVar[Literal["core", "module"]]
    producer_version: ClassVar[str]
    dependencies: ClassVar[tuple[str, ...]] = ()
    tier: ClassVar[int] = 1
    uses_model: ClassVar[bool] = False
    # The logical models (keys of conf/triton_models.yaml `models:`) this component may call; a profile picks
    # one of them. Empty for model-free components (modules never call a model).
    models: ClassVar[tuple[str, ...]] = ()
    uses_frames: ClassVar[bool] = False  # part of the key: sampling policy applies
    uses_audio: ClassVar[bool] = False  # decodes the audio track
    uses_text: ClassVar[bool] = False  # reads the sidecar's title and description
    # What one unit sent to the model is (one of UNIT_KINDS); None for model-free components. The planner counts a
    # video's units with :func:`units_for` and the profiler records it in the checklist.
    unit: ClassVar[str | None] = None

    @property
    def schema_version(self) -> str:
        return SCHEMAS[self.name].version

    def config_for_key(self, video: VideoInput, params: dict[str, Any]) -> dict[str, Any]:
        """What in the configuration changes this component's output (hashed into ``config_hash``)."""
        cfg: dict[str, Any] = {"params": {k: v for k, v in params.items() if k != "model"}}
        if self.uses_frames:
            cfg["sampling"] = [video.sampling_fps, video.max_frames, video.max_side]
        return cfg

    def compute(self, ctx: ComputeContext) -> ComponentResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "producer_version": self.producer_version,
                "schema_version": self.schema_version, "dependencies": list(self.dependencies),
                "tier": self.tier, "uses_model": self.uses_model, "models": list(self.models)}


TEXT_UNITS = 2  # the text component embeds the title and the description
UNIT_KINDS: tuple[str, ...] = ("frame", "frame_pair", "audio_window", "text")


def units_for(unit: str, sampled: int, duration_s: float, has_audio: bool, params: dict[str, Any]) -> int:
    """Units a component of unit kind ``unit`` sends to its model for one video of ``sampled`` sampled frames and
    ``duration_s`` seconds (``params``: the component's profile parameters, e.g. the audio ``window_s``).

    Raises:
        TrendflowError: ``config_invalid`` for a unit kind outside :data:`UNIT_KINDS`.
    """
    if unit == "frame":
        return sampled
    if unit == "frame_pair":
        return max(sampled - 1, 0)
    if unit == "audio_window":
        win = int(round(float(params.get("window_s", 1.0)) * AUDIO_SAMPLE_RATE))
        return int(duration_s * AUDIO_SAMPLE_RATE) // win if has_audio and win > 0 else 0
    if unit == "text":
        return TEXT_UNITS
    from common.errors import TrendflowError

    raise TrendflowError(f"unknown unit kind {unit!r} in the checklist", code="config_invalid")


def model_signature(models: list[ModelUsed]) -> str:
    """Identity of the models a component used; ``none`` for model-free components."""
    from common.hashing import json_hash

    if not models:
        return "none"
    # The build hash joins the tuple only when set, so models without an exported engine keep their keys.
    return json_hash(sorted((m.model_name, m.model_version, m.weights_digest, m.engine, m.precision, m.device,
                             *((m.engine_build_hash,) if m.engine_build_hash else ()))
                            for m in models))


def empty_like_schema(component: str, **scalars: float) -> dict[str, np.ndarray]:
    """Arrays of ``component``'s schema with every symbolic axis 0, fixed axes kept and scalars NaN."""
    out: dict[str, np.ndarray] = {}
    for name, spec in SCHEMAS[component].arrays.items():
        if not spec.shape:
            out[name] = np.asarray(scalars.get(name, np.nan), np.float64)
            continue
        shape = tuple(d if isinstance(d, int) else 0 for d in spec.shape)
        out[name] = np.zeros(shape, np.int64 if spec.kind == "i" else np.float32)
    return out
