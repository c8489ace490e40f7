"""The planner's plain data: what it is given (:class:`Device`, :class:`ComponentSpec`, :class:`VideoSpec`) and
what it decides (:class:`BatchPlan`, one :class:`ComponentPlan` per component). Pure: no I/O, no runtime imports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

PLANNER_VERSION = "1"
DEFAULT_SAFETY_MARGIN = 0.2
DEFAULT_MAX_VIDEOS_IN_PARALLEL = 8
DEFAULT_MAX_LOADED_MODELS_PER_DEVICE = 8


@dataclass(frozen=True)
class Device:
    """A device the planner may place work on, with the memory usable by this run right now.

    Attributes:
        name: ``cpu`` or ``gpu0``, ``gpu1``...
        kind: ``cpu`` or ``gpu``.
        free_bytes: memory free right now (CPU: available RAM; GPU: free device memory).
        concurrency: how many stages run at full speed at once (CPU cores; 1 for a GPU).
        loaded_bytes: memory already held by models that are loaded now and that the plan keeps loaded
            (they are in use, not free, but count toward the plan's peak).
        background: capacity other processes keep busy now (cores on a shared CPU); the simulation shares the
            device with it.
        speed_ratio: how much longer CPU work takes now than when the checklist was measured
            (:func:`planning.checklist.speed_ratio`; 1.0 = as measured). CPU devices only.
    """

    name: str
    kind: Literal["cpu", "gpu"]
    free_bytes: int
    concurrency: float = 1.0
    loaded_bytes: int = 0
    background: float = 0.0
    speed_ratio: float = 1.0


@dataclass(frozen=True)
class ComponentSpec:
    """What the planner needs to know of a component (see ``extraction.components.base.Component``)."""

    name: str
    dependencies: tuple[str, ...] = ()
    tier: int = 1
    uses_model: bool = False
    uses_frames: bool = False
    uses_audio: bool = False
    uses_text: bool = False
    unit: str | None = None  # what one unit sent to the model is (frame, frame_pair, audio_window, text)

    @classmethod
    def of(cls, component: Any) -> ComponentSpec:
        """The planner's view of an ``extraction`` component: the facts it declares, copied (nothing derived)."""
        return cls(name=component.name, dependencies=tuple(component.dependencies), tier=int(component.tier),
                   uses_model=bool(component.uses_model), uses_frames=bool(component.uses_frames),
                   uses_audio=bool(component.uses_audio), uses_text=bool(component.uses_text), unit=component.unit)


@dataclass(frozen=True)
class VideoSpec:
    """One video as the planner sees it (from the container header; nothing decoded).

    Attributes:
        video_id: for reports.
        size_class: ``360p`` / ``720p`` / ``1080p`` (see :func:`planning.checklist.size_class`).
        units: component -> units sent to its model (frames, frame pairs, audio windows, texts).
        decoded_frames: source frames the decoder goes through to reach the last sampled frame.
        sampled_frames: frames kept by the sampling policy (held in memory while the video is processed).
        audio_s: seconds of audio to decode (0 without an audio track).
        reused: components whose artifact comes from the cache (each costs the checklist's
            ``reuse_s_per_component``; their units are 0).
    """

    video_id: str
    size_class: str
    units: Mapping[str, int]
    decoded_frames: int = 0
    sampled_frames: int = 0
    audio_s: float = 0.0
    reused: int = 0


@dataclass
class ComponentPlan:
    component: str
    model: str | None
    device: str
    batch_size: int
    requests: int
    predicted_server_s: float
    working_bytes: int  # one video's request of batch_size on the device
    pass_index: int
    instances: int = 1  # Triton model instances (one python-backend process each; on a CPU, one core each)


@dataclass
class BatchPlan:
    """The planner's decision; recorded in every manifest and printed by the main job."""

    videos: int
    videos_in_parallel: int
    components: dict[str, ComponentPlan]
    passes: list[list[str]]
    resident: list[dict[str, list[str]]]  # per pass: device -> components whose models are loaded
    devices: dict[str, dict[str, Any]]  # device -> kind, free, budget, predicted peak
    safety_margin: float
    predicted_makespan_s: float
    candidates: int
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    checklist: dict[str, Any] = field(default_factory=dict)
    max_loaded_models_per_device: int = DEFAULT_MAX_LOADED_MODELS_PER_DEVICE
    calibration: dict[str, Any] = field(default_factory=dict)  # pilot on this corpus: factors, what it measured

    @property
    def batch_sizes(self) -> dict[str, int]:
        return {c: p.batch_size for c, p in self.components.items() if p.model}

    @property
    def instances(self) -> dict[str, int]:
        return {c: p.instances for c, p in self.components.items() if p.model}

    @property
    def device_of(self) -> dict[str, str]:
        return {c: p.device for c, p in self.components.items()}

    def predicted_peak(self, device: str) -> int:
        return int(self.devices[device]["predicted_peak_bytes"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "planner_version": PLANNER_VERSION, "videos": self.videos, "videos_in_parallel": self.videos_in_parallel,
            "batch_sizes": self.batch_sizes, "instances": self.instances,
            "components": {c: asdict(p) for c, p in self.components.items()},
            "passes": self.passes, "resident": self.resident, "devices": self.devices,
            "safety_margin": self.safety_margin, "predicted_makespan_s": round(self.predicted_makespan_s, 3),
            "candidates": self.candidates, "alternatives": self.alternatives, "checklist": self.checklist,
            "max_loaded_models_per_device": self.max_loaded_models_per_device, "calibration": self.calibration,
        }

    def describe(self) -> str:
        """A few lines a person reads: parallelism, per-component batch/device, memory, makespan."""
        lines = [f"batch plan: {self.videos} videos, {self.videos_in_parallel} in parallel, "
                 f"predicted makespan {self.predicted_makespan_s:.1f}s ({self.candidates} candidates compared)"]
        for c, p in self.components.items():
            if p.model:
                lines.append(f"  {c:<8} {p.model:<24} on {p.device:<5} batch {p.batch_size:>3}  x{p.instances} "
                             f"instance{'s' if p.instances > 1 else ' '}  {p.requests:>5} requests  "
                             f"~{p.predicted_server_s:.1f}s server  pass {p.pass_index + 1}")
        for d, info in self.devices.items():
            lines.append(f"  {d}: predicted peak {_gib(info['predicted_peak_bytes'])} of budget "
                         f"{_gib(info['budget_bytes'])} (free {_gib(info['free_bytes'])}, "
                         f"margin {self.safety_margin:.0%}"
                         + (f", {info['estimate_margin']:.0%} of the budget kept for estimate error"
                            if info.get("estimate_margin") else "")
                         + (f"; {info['background']:.2f} of {info['concurrency']:g} cores busy with other work"
                            f"; CPU x{info.get('speed_ratio', 1.0):.2f} the checklist's time"
                            if info["kind"] == "cpu" else "") + ")")
        if len(self.passes) > 1:
            lines.append(f"  {len(self.passes)} passes (tier-1 models rotate): "
                         + " | ".join(",".join(p) for p in self.passes))
        cal = self.calibration
        if cal.get("time_factors"):
            pilot = (f"pilot of {len(cal['pilot_videos'])} video(s) in {cal['pilot_seconds']:.1f}s, "
                     if cal.get("pilot_videos") else "")
            lines.append(f"  calibrated on this corpus ({pilot}measured / predicted): "
                         + ", ".join(f"{c} x{f:.2f}" for c, f in cal["time_factors"].items())
                         + (f"; {cal['video_overhead_s']:.3f}s per video outside the components' model"
                            if cal.get("video_overhead_s") is not None else ""))
        elif cal.get("skipped"):
            lines.append(f"  no pilot: {cal['skipped']}")
        if cal.get("recalibrated"):
            r = cal["recalibrated"]
            lines.append(f"  re-planned after {r['first_part_videos']} video(s): they took {r['first_part_s']:.1f}s "
                         f"against {r['first_part_predicted_s']:.1f}s predicted, every factor "
                         f"x{r['makespan_ratio']:.2f}")
        return "\n".join(lines)


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"
