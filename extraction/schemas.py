"""Versioned schemas of the component artifacts (NPZ) and their ``meta``.

An artifact is an ``.npz`` holding named arrays plus one ``meta`` entry (a JSON string). Each component
declares an :class:`ArraySchema` per array: dtype kind and shape, where a shape entry is either an int or a
symbol (``"N"`` frames, ``"P"`` frame pairs, ``"W"`` audio windows, ``"M"`` boxes, ``"K"`` cuts, ``"D"``
embedding width) that must take one value across the arrays of one artifact. Scalars are 0-d arrays.

Schemas are validated when an artifact is written and when it is read (see ``extraction.artifacts``).
Bump a component's ``schema_version`` whenever the arrays or their meaning change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from common.errors import SchemaValidationError

Status = Literal["ok", "empty", "degraded", "error"]
STATUSES: tuple[str, ...] = ("ok", "empty", "degraded", "error")


@dataclass(frozen=True)
class ArraySchema:
    """Expected dtype kind (``f`` float, ``i`` int, ``U`` str) and shape of one array."""

    kind: str
    shape: tuple[int | str, ...]
    description: str = ""


@dataclass(frozen=True)
class ComponentSchema:
    component: str
    version: str
    arrays: dict[str, ArraySchema]

    def validate(self, arrays: dict[str, np.ndarray]) -> None:
        """Raise :class:`SchemaValidationError` naming every problem found."""
        problems: list[str] = []
        missing = sorted(set(self.arrays) - set(arrays))
        extra = sorted(set(arrays) - set(self.arrays))
        if missing:
            problems.append(f"missing arrays {missing}")
        if extra:
            problems.append(f"unexpected arrays {extra}")
        symbols: dict[str, int] = {}
        for name, spec in self.arrays.items():
            if name not in arrays:
                continue
            arr = np.asarray(arrays[name])
            if arr.dtype.kind != spec.kind and not (spec.kind == "f" and arr.dtype.kind == "i" and arr.ndim == 0):
                problems.append(f"{name}: dtype kind {arr.dtype.kind!r}, expected {spec.kind!r}")
            if arr.ndim != len(spec.shape):
                problems.append(f"{name}: rank {arr.ndim}, expected {len(spec.shape)} {spec.shape}")
                continue
            for axis, (got, want) in enumerate(zip(arr.shape, spec.shape, strict=True)):
                if isinstance(want, int):
                    if got != want:
                        problems.append(f"{name}: axis {axis} has {got}, expected {want}")
                elif symbols.setdefault(want, got) != got:
                    problems.append(f"{name}: axis {axis} ({want}) has {got}, other arrays say {symbols[want]}")
        if problems:
            raise SchemaValidationError(
                f"{self.component} artifact (schema {self.version}) is invalid: " + "; ".join(problems),
                component=self.component,
            )


def _s(kind: str, *shape: int | str, description: str = "") -> ArraySchema:
    return ArraySchema(kind, tuple(shape), description)


# Keys every sidecar (and every video request's metadata) must carry: they name the video and place it in time.
REQUIRED_SIDECAR_KEYS: tuple[str, ...] = ("platform_id", "video_id", "published_at")

F, INT, U = "f", "i", "U"

# Component name -> schema. Keep these in step with each component's ``schema_version``.
SCHEMAS: dict[str, ComponentSchema] = {
    s.component: s
    for s in [
        ComponentSchema("metadata", "1.0.0", {
            "video_age_hours_at_snapshot1": _s(F, description="hours between publish and first snapshot"),
            "views_snapshot1": _s(F),
            "likes_snapshot1": _s(F),
            "channel_subscribers": _s(F),
            "channel_video_count": _s(F),
            "channel_avg_views": _s(F),
            "published_hour_utc": _s(F),
            "published_weekday": _s(F),
        }),
        ComponentSchema("frames", "1.0.0", {
            "timestamps": _s(F, "N", description="seconds of each sampled frame"),
            "frame_index": _s(INT, "N", description="index of the sampled frame in decode order"),
            "brightness": _s(F, "N", description="mean luma in [0, 1]"),
            "colorfulness": _s(F, "N", description="Hasler-Suesstrunk colorfulness / 100"),
            "duration_s": _s(F),
            "fps": _s(F),
            "width": _s(F),
            "height": _s(F),
            "n_frames_decoded": _s(F),
        }),
        ComponentSchema("visual", "1.0.0", {
            "timestamps": _s(F, "N"),
            "embeddings": _s(F, "N", "D", description="L2-normalised frame embeddings"),
        }),
        ComponentSchema("motion", "1.0.0", {
            "timestamps": _s(F, "P", description="time of the second frame of each pair"),
            "magnitude_mean": _s(F, "P", description="mean flow magnitude / frame width"),
            "magnitude_p95": _s(F, "P"),
            "moving_fraction": _s(F, "P", description="fraction of pixels moving > 0.5% of width"),
            "direction_coherence": _s(F, "P", description="|mean unit flow vector| in [0, 1]"),
        }),
        ComponentSchema("faces", "1.0.0", {
            "timestamps": _s(F, "N"),
            "face_count": _s(INT, "N"),
            "max_face_area": _s(F, "N", description="largest face box area / frame area (0 if none)"),
            "boxes": _s(F, "M", 4, description="normalised x, y, w, h"),
            "box_frame": _s(INT, "M", description="sampled-frame index of each box"),
            "scores": _s(F, "M", description="detection confidence in [0, 1]"),
        }),
        ComponentSchema("audio", "1.0.0", {
            "window_start_s": _s(F, "W"),
            "rms": _s(F, "W"),
            "spectral_centroid_hz": _s(F, "W"),
            "zero_crossing_rate": _s(F, "W"),
            "logmel": _s(F, "W", "B", description="mean log-mel energy per band over each window"),
            "sample_rate": _s(F),
            "has_audio": _s(F, description="1.0 when the file had an audio stream"),
        }),
        ComponentSchema("text", "1.0.0", {
            "title_embedding": _s(F, "D"),
            "description_embedding": _s(F, "D"),
            "title_chars": _s(F),
            "description_chars": _s(F),
            "title_words": _s(F),
            "hashtag_count": _s(F),
            "question_or_exclaim": _s(F, description="1.0 if the title has ? or !"),
        }),
        ComponentSchema("video_pacing", "1.0.0", {
            "cut_times": _s(F, "K", description="seconds where a shot cut was detected"),
            "cuts_per_minute": _s(F),
            "shot_length_mean_s": _s(F),
            "shot_length_std_s": _s(F),
            "motion_energy_mean": _s(F),
            "motion_energy_std": _s(F),
            "motion_rhythm": _s(F, description="peak autocorrelation of motion energy at lags >= 1"),
        }),
        ComponentSchema("face_presence", "1.0.0", {
            "presence_ratio": _s(F, description="fraction of sampled frames with >= 1 face"),
            "mean_face_count": _s(F),
            "max_face_area": _s(F),
            "first_face_s": _s(F, description="time of the first face, NaN if none"),
            "face_screen_time_s": _s(F),
        }),
    ]
}


class ModelUsed(BaseModel):
    """One Triton model a component called, as reported by the server's model config."""

    model_config = ConfigDict(extra="forbid")

    model_name: str
    model_version: str
    weights_digest: str
    runtime: str
    engine: str
    precision: str
    device: str
    # Hash of what an exported engine was built from (source weights digest, opset, exporter versions); "" for a
    # model served by its source framework. Enters the model signature, so exported and source-framework
    # artifacts never share a cache key even when name, version and weights agree.
    engine_build_hash: str = ""


class ArtifactMeta(BaseModel):
    """The ``meta`` entry of every NPZ: full provenance of one component's output for one video."""

    model_config = ConfigDict(extra="forbid")

    platform_id: str
    video_id: str
    run_id: str
    component: str
    producer_version: str
    schema_version: str
    status: Status
    models_used: list[ModelUsed] = Field(default_factory=list)
    model_signature: str
    dependencies: dict[str, str] = Field(default_factory=dict, description="component -> its artifact signature")
    batch_size: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    coverage: float = Field(ge=0.0, le=1.0)
    config_hash: str
    sampling_policy_version: str
    seed: int
    runtime_env_hash: str
    cache_key: str
    warnings: list[str] = Field(default_factory=list)
    retry_count: int = 0
    created_at: str
