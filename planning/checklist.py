"""The measured checklist the batching planner plans from: memory and time of every model, per batch size.

A checklist is a versioned YAML file, ``conf/checklist/<hardware_id>/<profile>.yaml``, written by
``python -m extraction checklist profile --profile fast`` against the running Triton. It states the hardware,
the Triton version and the model signature (``name:version:weights_digest`` as the server reports it) of every
model it measured, and for each component and input size class:

* ``fixed_bytes``: memory the loaded model holds (server process tree RSS with the model loaded minus with it
  unloaded; on a GPU the device memory it takes);
* ``points``: for several batch sizes, the median seconds per request (warmed up, repeated until the last three
  windows agree within 10%) and the peak working memory of a request of that size above the loaded model;
* ``client_seconds_per_unit``: client-side preparation (resize, packing) per unit.

and for each source size class (360p/720p/1080p) the client's decode cost and memory. The planner interpolates
between measured batch sizes (the batching curve is measured, not assumed linear).

A checklist measured for other model signatures is refused (``checklist_stale``) with a message naming the
models and the command to re-profile. Nothing here starts a server or touches the disk at import.

This module is the schema and the hardware id; :mod:`planning.probes` reads memory and load,
:mod:`planning.profiler` measures a checklist.
"""

from __future__ import annotations

import math
import os
import platform
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.errors import ConfigError, TrendflowError
from common.paths import REPO_ROOT

CHECKLIST_DIR = REPO_ROOT / "conf" / "checklist"
SCHEMA_VERSION = 1
SIZE_CLASSES: tuple[str, ...] = ("360p", "720p", "1080p")  # by the source's short side, ascending


class ChecklistMissing(TrendflowError):
    code = "checklist_missing"


class ChecklistStale(TrendflowError):
    code = "checklist_stale"


def size_class(width: int, height: int) -> str:
    """Source size class of a video from its short side: ``360p`` (<= 480), ``720p`` (<= 800), else ``1080p``."""
    short = min(int(width), int(height))
    if short <= 480:
        return "360p"
    if short <= 800:
        return "720p"
    return "1080p"


def _interp(points: list[tuple[int, float]], b: float) -> float:
    """Piecewise-linear interpolation in ``b`` through sorted ``(batch, value)`` points.

    Below the first point the first value is used; beyond the last, the last segment's slope continues
    (never below the largest per-unit slope seen, so extrapolated costs are not optimistic)."""
    if not points:
        raise ValueError("no measured points")
    if len(points) == 1:  # one measurement: scale per unit
        x0, y0 = points[0]
        return y0 * b / x0
    if b <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if b <= x1:
            return y0 + (y1 - y0) * (b - x0) / (x1 - x0)
    (x0, y0), (x1, y1) = points[-2], points[-1]
    slope = max((y1 - y0) / (x1 - x0), 0.0)
    return y1 + slope * (b - x1)


class BatchPoint(BaseModel):
    """One measured batch size of one model and size class."""

    model_config = ConfigDict(extra="forbid")
    batch: int = Field(gt=0)
    seconds: float = Field(ge=0, description="median seconds per request (client round trip)")
    mem_bytes: int = Field(ge=0, description="peak working memory of one request above the loaded model")
    windows: int = Field(default=0, ge=0, description="measurement windows taken")
    spread: float = Field(default=0.0, ge=0, description="(max-min)/median of the last windows' medians")
    stable: bool = True
    cpu_seconds: float | None = Field(default=None, ge=0, description=(
        "CPU seconds the model's processes spent per request, all threads (OpenCV and torch spread one request "
        "over every core: at idle its wall time is below its CPU time); None = not measured (one core assumed)"))


class SizeClassProfile(BaseModel):
    """Measurements of one model for one input size class."""

    model_config = ConfigDict(extra="forbid")
    input_shape: list[int] = Field(default_factory=list, description="shape of one unit sent to the model")
    unit_bytes: int = Field(default=0, ge=0, description="bytes of one unit's input tensor")
    client_seconds_per_unit: float = Field(default=0.0, ge=0)
    points: list[BatchPoint]

    @model_validator(mode="after")
    def _sorted(self) -> SizeClassProfile:
        if not self.points:
            raise ValueError("at least one measured batch size is needed")
        self.points = sorted(self.points, key=lambda p: p.batch)
        if len({p.batch for p in self.points}) != len(self.points):
            raise ValueError("duplicate batch sizes")
        return self

    def seconds(self, batch: int) -> float:
        """Predicted seconds of one request of ``batch`` units (interpolated from the measured curve)."""
        if batch <= 0:
            return 0.0
        pts, best = [], 0.0
        for p in self.points:  # running max: a bigger request is never faster (a dip is measurement noise)
            best = max(best, p.seconds)
            pts.append((p.batch, best))
        return _interp(pts, batch)

    def cpu_ratio(self, batch: int) -> float:
        """Cores one request of ``batch`` units keeps busy at idle (CPU seconds / wall seconds, interpolated;
        1.0 when the checklist did not measure CPU). The makespan simulation charges a request this many cores."""
        pts = [(p.batch, p.cpu_seconds / p.seconds) for p in self.points if p.cpu_seconds is not None and p.seconds > 0]
        if not pts:
            return 1.0
        if len(pts) == 1:
            return max(0.05, pts[0][1])
        b = min(max(batch, pts[0][0]), pts[-1][0])  # no extrapolation of a ratio
        return max(0.05, _interp(pts, b))

    def mem_bytes(self, batch: int) -> int:
        """Predicted peak working bytes of one request of ``batch`` units; monotone in ``batch``."""
        if batch <= 0:
            return 0
        pts, best = [], 0
        for p in self.points:  # running max: memory never shrinks with a bigger batch
            best = max(best, p.mem_bytes)
            pts.append((p.batch, float(best)))
        value = _interp(pts, batch)
        if batch > pts[-1][0]:  # extrapolate with the largest per-unit memory seen, conservatively
            per_unit = max(m / b for b, m in pts)
            value = max(value, pts[-1][1] + per_unit * (batch - pts[-1][0]))
        return int(math.ceil(value))


class ModelEntry(BaseModel):
    """One component's model as measured: identity, placement kind, fixed memory, per-size-class curves."""

    model_config = ConfigDict(extra="forbid")
    component: str
    model: str
    version: str
    weights_digest: str
    device_kind: Literal["cpu", "gpu"] = "cpu"
    unit: str = Field(description="frame | frame_pair | audio_window | text | ...")
    tier: int = 1
    max_batch_size: int = Field(ge=0)
    fixed_bytes: int = Field(ge=0, description="memory of the loaded model (after a warm-up request)")
    load_seconds: float = Field(default=0.0, ge=0, description="explicit load_model time")
    size_classes: dict[str, SizeClassProfile]

    @property
    def signature(self) -> str:
        return f"{self.model}:{self.version}:{self.weights_digest}"

    def curve(self, cls: str) -> SizeClassProfile:
        """The measurements for source size class ``cls``; an unmeasured class uses the next larger one
        measured (conservative), else the largest measured."""
        if cls in self.size_classes:
            return self.size_classes[cls]
        order = list(SIZE_CLASSES)
        if cls in order:
            for bigger in order[order.index(cls) + 1:]:
                if bigger in self.size_classes:
                    return self.size_classes[bigger]
        known = sorted(self.size_classes, key=lambda k: (order.index(k) if k in order else len(order), k))
        return self.size_classes[known[-1]]


class DecodeProfile(BaseModel):
    """Client-side decoding of one source size class (PyAV, the sampling policy of the profile)."""

    model_config = ConfigDict(extra="forbid")
    seconds_per_decoded_frame: float = Field(ge=0, description="wall seconds per decoded source frame")
    cpu_ratio: float = Field(default=1.0, gt=0, description="CPU seconds per wall second while decoding")
    fixed_bytes: int = Field(default=0, ge=0, description="decoder working memory")
    per_frame_bytes: int = Field(default=0, ge=0, description="memory of one sampled frame kept for the video")
    audio_seconds_per_s: float = Field(default=0.0, ge=0, description="decode seconds per second of audio")
    audio_bytes_per_s: int = Field(default=64000, ge=0, description="waveform bytes per second (16 kHz fp32)")


class Gpu(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: int
    name: str
    memory_bytes: int


class Hardware(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    cpu_model: str
    cpu_cores: int
    memory_bytes: int
    gpus: list[Gpu] = Field(default_factory=list)
    machine: str = ""


class Checklist(BaseModel):
    """A whole checklist file: where and with what it was measured, and the measurements."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = SCHEMA_VERSION
    profile: str
    hardware: Hardware
    triton_version: str
    measured_at: str
    method: dict[str, Any] = Field(default_factory=dict)
    server_baseline_bytes: int = Field(default=0, ge=0, description="Triton tree RSS with no model loaded")
    client_overhead_s_per_video: float = Field(default=0.0, ge=0, description="artifact IO, modules, bookkeeping")
    background_busy_cores: float = Field(default=0.0, ge=0, description=(
        "cores other processes kept busy while this was measured; CPU times are normalised with it"))
    request_time_factor: float = Field(default=1.0, ge=1.0, description=(
        "how much longer a model's requests took inside whole-video runs (components interleaved, caches cold, "
        "stubs waking up) than in the batch sweep, median over the calibration videos; server times are scaled "
        "by it"))
    reuse_s_per_component: float = Field(default=0.0, ge=0, description=(
        "seconds one component reused from the cache costs (link the artifact, read it, record it in the "
        "manifest), from re-running each calibration video on its own cache; the planner charges it per reused "
        "component (a re-run is not free)"))
    speed_probe_s: float | None = Field(default=None, gt=0, description=(
        "seconds of the fixed single-threaded speed_probe() workload on this machine when it was measured: the "
        "planner runs it again and scales CPU times by now/then outside SPEED_RATIO_DEADBAND"))
    decode: dict[str, DecodeProfile]
    models: dict[str, ModelEntry] = Field(description="component -> its model's measurements")
    notes: list[str] = Field(default_factory=list)

    def decode_for(self, cls: str) -> DecodeProfile:
        if cls in self.decode:
            return self.decode[cls]
        order = list(SIZE_CLASSES)
        if cls in order:
            for bigger in order[order.index(cls) + 1:]:
                if bigger in self.decode:
                    return self.decode[bigger]
        return self.decode[max(self.decode, key=lambda k: order.index(k) if k in order else len(order))]

    def cpu_time_scale(self) -> float:
        """Factor from measured to idle-machine CPU seconds: a single-threaded measurement shared the cores with
        ``background_busy_cores`` of other work (fair share), so it ran at ``min(1, cores / (1 + background))``."""
        return min(1.0, self.hardware.cpu_cores / (1.0 + self.background_busy_cores))

    def signatures(self) -> dict[str, str]:
        return {c: m.signature for c, m in self.models.items()}

    def check_signatures(self, current: dict[str, str], source: str = "") -> None:
        """Refuse the checklist unless every component in ``current`` (component -> the server's
        ``name:version:weights_digest``) was measured with exactly that model.

        Raises:
            ChecklistStale: naming each model that differs and the command that re-profiles.
        """
        problems = []
        for comp, sig in sorted(current.items()):
            entry = self.models.get(comp)
            if entry is None:
                problems.append(f"{comp}: {sig} was never measured")
            elif entry.signature != sig:
                problems.append(f"{comp}: measured {entry.signature}, the server now serves {sig}")
        if problems:
            where = f" ({source})" if source else ""
            raise ChecklistStale(
                f"checklist{where} is stale for profile {self.profile!r}: " + "; ".join(problems)
                + f". Re-profile with `python -m extraction checklist profile --profile {self.profile}`",
                models=[p.split(":")[0] for p in problems])

    def summary(self) -> dict[str, Any]:
        return {"hardware": self.hardware.id, "triton_version": self.triton_version, "profile": self.profile,
                "measured_at": self.measured_at, "signatures": self.signatures(),
                "request_time_factor": self.request_time_factor, "speed_probe_s": self.speed_probe_s}


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_checklist(cl: Checklist) -> str:
    header = (f"# Measured by `python -m extraction checklist profile --profile {cl.profile}` on {cl.hardware.id}\n"
              "# at " + cl.measured_at + ". Seconds are medians per request (client round trip), bytes are peaks.\n"
              "# Do not edit by hand: a model change makes this file stale; re-profile instead.\n")
    return header + yaml.dump(cl.model_dump(mode="json"), Dumper=_Dumper, sort_keys=False, width=120)


def save_checklist(cl: Checklist, path: Path) -> Path:
    from common.fsio import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, dump_checklist(cl).encode())
    return path


def load_checklist(path: Path) -> Checklist:
    """Read and validate a checklist file (``checklist_missing`` / ``config_invalid`` on problems)."""
    path = Path(path)
    if not path.exists():
        raise ChecklistMissing(f"no checklist at {path}", path=str(path))
    try:
        cl = Checklist.model_validate(yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path} is not a valid checklist: {exc}") from exc
    if cl.schema_version != SCHEMA_VERSION:
        raise ConfigError(f"{path}: checklist schema {cl.schema_version}, this code reads {SCHEMA_VERSION}")
    return cl


# ----------------------------------------------------------------------------------------------- speed


SPEED_RATIO_BOUNDS = (0.5, 2.0)
# The probe itself scatters: best-of-7 probes on an idle 2-core EPYC VM read 3.5-4.8 ms within half an hour
# (ratios 0.73-1.37 with no real change; one plan read 0.80 while the run went slower than predicted). Ratios
# within this band of 1 are probe noise and leave the checklist's times alone: only a clearly different host
# (a third slower or faster) moves the plan.
SPEED_RATIO_DEADBAND = 0.35


def speed_ratio(checklist: Checklist, now_s: float | None = None) -> float:
    """How much slower this machine runs now than when ``checklist`` was measured (``now / then``), clamped to
    :data:`SPEED_RATIO_BOUNDS`; 1.0 for a checklist without a probe or within :data:`SPEED_RATIO_DEADBAND`."""
    if not checklist.speed_probe_s:
        return 1.0
    if now_s is None:
        from planning.probes import speed_probe

        now_s = speed_probe()
    ratio = now_s / checklist.speed_probe_s
    if abs(ratio - 1.0) <= SPEED_RATIO_DEADBAND:
        return 1.0
    lo, hi = SPEED_RATIO_BOUNDS
    return min(hi, max(lo, ratio))


# ----------------------------------------------------------------------------------------------- hardware


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_inventory() -> list[Gpu]:
    """GPUs via NVML when installed, else ``torch.cuda``; empty on a CPU-only host."""
    from planning.probes import gpu_memory

    return [Gpu(index=g.index, name=g.name, memory_bytes=g.total_bytes) for g in gpu_memory()]


def _slug(text: str) -> str:
    text = re.sub(r"\(r\)|\(tm\)|cpu|processor|@.*$", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def detect_hardware(gpus: list[Gpu] | None = None) -> Hardware:
    """This machine's identity: CPU model, cores and GPUs -> a stable ``id`` slug (e.g. ``intel-xeon-2c``)."""
    import psutil

    cpu = _cpu_model()
    cores = os.cpu_count() or 1
    mem = int(psutil.virtual_memory().total)
    gpus = gpu_inventory() if gpus is None else gpus
    parts = [_slug(cpu), f"{cores}c"]  # memory is not part of the identity: the planner reads what is free
    if gpus:
        parts.append(f"{len(gpus)}x{_slug(gpus[0].name)}")
    return Hardware(id="-".join(p for p in parts if p), cpu_model=cpu, cpu_cores=cores, memory_bytes=mem, gpus=gpus,
                    machine=platform.machine())


def checklist_path(profile: str, hardware_id: str | None = None, root: Path = CHECKLIST_DIR) -> Path:
    """Where the checklist of ``profile`` for ``hardware_id`` (default: this machine) lives."""
    return Path(root) / (hardware_id or detect_hardware().id) / f"{profile}.yaml"
