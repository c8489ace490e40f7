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
"""

from __future__ import annotations

import math
import os
import platform
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.clock import now_iso
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


# ----------------------------------------------------------------------------------------------- hardware


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA driver is loaded (its /proc entry or device nodes). Without one no GPU probe is worth
    its time: NVML is absent and ``import torch`` alone costs 1-2 s, on every run's planning path."""
    return Path("/proc/driver/nvidia").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def gpu_inventory() -> list[Gpu]:
    """GPUs via NVML when installed, else ``torch.cuda``; empty on a CPU-only host."""
    if not nvidia_driver_present():
        return []
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            out = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                name = pynvml.nvmlDeviceGetName(h)
                out.append(Gpu(index=i, name=name.decode() if isinstance(name, bytes) else str(name),
                               memory_bytes=int(pynvml.nvmlDeviceGetMemoryInfo(h).total)))
            return out
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            return [Gpu(index=i, name=torch.cuda.get_device_name(i),
                        memory_bytes=int(torch.cuda.get_device_properties(i).total_memory))
                    for i in range(torch.cuda.device_count())]
    except Exception:
        pass
    return []


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


# ----------------------------------------------------------------------------------------------- profiler
#
# Memory on CPU is the resident set of the Triton server's process tree (python backend stubs are child
# processes, one per model instance) read from /proc: ``clear_refs`` = 5 resets each process's peak (VmHWM), so
# the peak during a measured window is exact, not sampled. On a GPU it is the device memory in use (NVML or
# ``torch.cuda.mem_get_info``), sampled while requests run.

UNIT_OF = {"visual": "frame", "faces": "frame", "motion": "frame_pair", "audio": "audio_window", "text": "text"}
DEFAULT_BATCHES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
QUICK_BATCHES: tuple[int, ...] = (1, 4, 16)
CALIBRATION_RESOLUTIONS = {"360p": "640x360", "720p": "1280x720", "1080p": "1920x1080"}


def _tree(pid: int) -> list[Any]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def rss_bytes(pids: Iterable[int]) -> int:
    return sum(_status_kb(p, "VmRSS") for p in pids)


def reset_peaks(pids: Iterable[int]) -> None:
    """Reset the peak RSS (VmHWM) of each process to its current RSS (Linux ``clear_refs`` = 5)."""
    for p in pids:
        try:
            Path(f"/proc/{p}/clear_refs").write_text("5")
        except OSError:
            pass


def peak_delta(pids: Iterable[int], before: Mapping[int, int]) -> int:
    """Sum over processes of (peak RSS since the reset - RSS at the reset)."""
    return sum(max(0, _status_kb(p, "VmHWM") - before.get(p, 0)) for p in pids)


class BackgroundMeter:
    """Cores kept busy by *other* processes over an interval: system busy CPU time minus that of ``own`` pids
    (this process, the Triton tree), divided by wall time."""

    def __init__(self, own: Callable[[], Iterable[int]]) -> None:
        self.own = own
        self._t = self._sys = self._mine = 0.0

    @staticmethod
    def _busy() -> float:
        import psutil

        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)

    def _mine_now(self) -> float:
        import psutil

        total = 0.0
        for pid in self.own():
            try:
                c = psutil.Process(pid).cpu_times()
                total += c.user + c.system + getattr(c, "children_user", 0.0) + getattr(c, "children_system", 0.0)
            except psutil.Error:
                pass
        return total

    def start(self) -> BackgroundMeter:
        import time

        self._t, self._sys, self._mine = time.perf_counter(), self._busy(), self._mine_now()
        return self

    def busy_cores(self) -> float:
        """Since :meth:`start` (processes that exited in between are counted as background: a lower bound on
        our own use, so an upper bound on the background)."""
        import time

        wall = max(time.perf_counter() - self._t, 1e-6)
        other = (self._busy() - self._sys) - max(0.0, self._mine_now() - self._mine)
        return round(max(0.0, other / wall), 3)


def background_busy_cores(sample_s: float = 1.0, own: Iterable[int] = ()) -> float:
    """Cores other processes keep busy now, sampled over ``sample_s`` (this process and ``own`` excluded)."""
    import time

    pids = [os.getpid(), *own]
    m = BackgroundMeter(lambda: pids).start()
    time.sleep(sample_s)
    return m.busy_cores()


class GpuMemory:
    """Used memory of one GPU, sampled in a thread while a block runs (NVML, else ``torch.cuda``)."""

    def __init__(self, index: int, period_s: float = 0.002) -> None:
        self.index, self.period_s = index, period_s
        self._read = self._reader()

    def _reader(self):
        try:
            import pynvml

            pynvml.nvmlInit()
            h = pynvml.nvmlDeviceGetHandleByIndex(self.index)
            return lambda: int(pynvml.nvmlDeviceGetMemoryInfo(h).used)
        except Exception:
            import torch

            def used() -> int:
                free, total = torch.cuda.mem_get_info(self.index)
                return int(total - free)
            return used

    def used(self) -> int:
        return self._read()

    def peak_during(self, fn) -> tuple[int, Any]:
        """Run ``fn`` while sampling; returns (peak used bytes, fn's result)."""
        import threading

        peak = [self._read()]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], self._read())
                stop.wait(self.period_s)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            out = fn()
        finally:
            stop.set()
            t.join()
        return max(peak[0], self._read()), out


class _Capture:
    """Provider wrapper: forwards to the real provider, keeps the inputs it was sent and times the calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.inputs: list[dict[str, Any]] = []
        self.calls: list[tuple[str, int]] = []  # (model, units) per request
        self.seconds = 0.0

    def get_model(self, name: str, version: str, logical: str = "") -> Any:
        return self.inner.get_model(name, version, logical)

    def infer(self, handle: Any, inputs: dict[str, Any], batch_size: int, stats: Any = None) -> dict[str, Any]:
        import time

        import numpy as np

        self.inputs.append({k: np.array(v, copy=True) for k, v in inputs.items()})
        self.calls.append((handle.name, int(batch_size)))
        t0 = time.perf_counter()
        out = self.inner.infer(handle, inputs, batch_size, stats)
        self.seconds += time.perf_counter() - t0
        return out


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return float(s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2]))


def measure_interleaved(series: Mapping[int, tuple[Sequence[Any], Callable[[Any], None]]], *, warmup: int = 1,
                        window_s: float = 0.5, min_windows: int = 3, max_windows: int = 8, tolerance: float = 0.10,
                        memory: Callable[[Callable[[], float]], tuple[int, float]] | None = None,
                        cpu: Callable[[], float] | None = None
                        ) -> dict[int, tuple[float, int, float, bool, int, float | None]]:
    """perf_analyzer-style timing of several batch sizes at once.

    ``series`` maps a batch size to (requests that cover a fixed set of units once -- one *pass* --, a function
    sending one request). A window is as many whole passes as take at least ``window_s``, so every window sees
    the same content (model time can depend on content by 10x and more). Rounds run one window of every batch
    size in turn -- a busy spell on a shared machine then hits all sizes alike instead of bending the curve --
    until, for every size, the mean seconds per request of the last ``min_windows`` windows agree within
    ``tolerance`` (at most ``max_windows`` rounds). ``memory(window)`` may wrap each window and return
    (peak bytes, its result). ``cpu()`` may return the cumulative CPU seconds of the processes serving the
    requests; the CPU per request is then the total over all windows divided by the requests sent.

    Returns batch -> (median of the last window means, windows, their spread, stable, peak bytes, CPU seconds per
    request or None)."""
    import time

    def one_pass(reqs: Sequence[Any], send: Callable[[Any], None]) -> float:
        t0 = time.perf_counter()
        for r in reqs:
            send(r)
        return time.perf_counter() - t0

    passes: dict[int, int] = {}
    for b, (reqs, send) in series.items():
        est = 0.0
        for _ in range(max(1, warmup)):
            est = one_pass(reqs, send)
        passes[b] = max(1, math.ceil(window_s / max(est, 1e-4)))
    means: dict[int, list[float]] = {b: [] for b in series}
    peak: dict[int, int] = dict.fromkeys(series, 0)
    cpu_s: dict[int, float] = dict.fromkeys(series, 0.0)
    sent: dict[int, int] = dict.fromkeys(series, 0)

    def spread(xs: Sequence[float]) -> float:
        return (max(xs) - min(xs)) / max(_median(xs), 1e-12)

    for rnd in range(max_windows):
        for b, (reqs, send) in series.items():
            def window(reqs: Sequence[Any] = reqs, send: Callable[[Any], None] = send, n: int = passes[b]) -> float:
                return sum(one_pass(reqs, send) for _ in range(n))

            c0 = cpu() if cpu is not None else 0.0
            if memory is not None:
                m, total = memory(window)
                peak[b] = max(peak[b], int(m))
            else:
                total = window()
            if cpu is not None:
                cpu_s[b] += cpu() - c0
                sent[b] += passes[b] * len(reqs)
            means[b].append(total / (passes[b] * len(reqs)))
        if rnd + 1 >= min_windows and all(spread(v[-min_windows:]) <= tolerance for v in means.values()):
            break
    out = {}
    for b, v in means.items():
        last = v[-min_windows:]
        sp = spread(last) if len(last) >= min_windows else float("inf")
        out[b] = (_median(last), len(v), round(sp, 4), sp <= tolerance, peak[b],
                  cpu_s[b] / sent[b] if cpu is not None and sent[b] else None)
    return out


def measure_until_stable(requests: Sequence[Any], send, *, warmup: int = 1, window_s: float = 0.5,
                         min_windows: int = 3, max_windows: int = 8, tolerance: float = 0.10
                         ) -> tuple[float, int, float, bool]:
    """One batch size of :func:`measure_interleaved`: (median seconds per request, windows, spread, stable)."""
    sec, wins, sp, stable, _, _ = measure_interleaved({1: (requests, send)}, warmup=warmup, window_s=window_s,
                                                   min_windows=min_windows, max_windows=max_windows,
                                                   tolerance=tolerance)[1]
    return sec, wins, sp, stable


SWEEP_UNITS = 64  # units per pass: divisible by every measured batch size


def sweep_subset(pools: Sequence[dict[str, Any]], n: int = SWEEP_UNITS) -> dict[str, Any]:
    """``n`` units drawn evenly from every captured request (so every video contributes), cycled if fewer."""
    import numpy as np

    keys = list(pools[0])
    allu = {k: np.concatenate([p[k] for p in pools]) for k in keys}
    total = len(allu[keys[0]])
    idx = np.linspace(0, total - 1, n).round().astype(int) if total >= n else np.arange(n) % total
    return {k: np.ascontiguousarray(v[idx]) for k, v in allu.items()}


def split_requests(subset: dict[str, Any], b: int) -> list[dict[str, Any]]:
    n = len(next(iter(subset.values())))
    return [{k: v[i:i + b] for k, v in subset.items()} for i in range(0, n, b)]


def calibration_videos(folder: Path, per_class: int = 4, seed: int = 7, classes: Iterable[str] = SIZE_CLASSES,
                       duration_s: tuple[float, float] = (6.0, 16.0)) -> dict[str, list[tuple[Path, dict[str, Any]]]]:
    """Render ``per_class`` demo-like videos per size class with :mod:`demo.synth` (its default content mix:
    faces in about a third, shots, motion; landscape, every one with audio) into ``folder``; returns
    size class -> ``(path, sidecar)`` pairs. Model time depends on content (the Haar detector by 10x and more
    between frames), so several videos per class are pooled."""
    import json

    from demo import synth

    out: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for cls in classes:
        d = Path(folder) / cls
        specs = synth.generate(per_class, d, seed=seed, resolution_mix={CALIBRATION_RESOLUTIONS[cls]: 1.0},
                               portrait_fraction=0.0, duration_s=duration_s, audio_fraction=1.0,
                               edge_cases=False, progress=False, workers=1, clean=True)
        out[cls] = [(d / "videos" / s.filename, json.loads((d / "videos" / f"{s.video_id}.json").read_text()))
                    for s in specs]
    return out


def pick_calibration(videos: Sequence[tuple[Path, dict[str, Any]]], per_class: int = 4
                     ) -> dict[str, list[tuple[Path, dict[str, Any]]]]:
    """From an existing corpus: per size class the ``per_class`` longest landscape videos."""
    from common.errors import VideoDecodeFailed
    from extraction.decode import probe

    by: dict[str, list[tuple[float, Path, dict[str, Any]]]] = {}
    for path, meta in videos:
        try:
            info = probe(str(path))
        except VideoDecodeFailed:
            continue
        by.setdefault(size_class(info.width, info.height), []).append((info.duration_s, Path(path), meta))
    return {c: [(p, m) for _, p, m in sorted(v, key=lambda x: -x[0])[:per_class]] for c, v in by.items()}


SPEED_RATIO_BOUNDS = (0.5, 2.0)
# The probe itself scatters: best-of-7 probes on an idle 2-core EPYC VM read 3.5-4.8 ms within half an hour
# (ratios 0.73-1.37 with no real change; one plan read 0.80 while the run went slower than predicted). Ratios
# within this band of 1 are probe noise and leave the checklist's times alone: only a clearly different host
# (a third slower or faster) moves the plan.
SPEED_RATIO_DEADBAND = 0.35


def speed_probe(repeats: int = 7) -> float:
    """Seconds of a fixed single-threaded CPU workload (best of ``repeats``; ~5 ms each on a 2-core EPYC VM).

    OpenCV image pyramid work (grayscale, resize, integral image, blur: what Haar detection and decoding do) and
    small float32 matrix products (what the CPU models do). The best of several runs measures the core's speed,
    not momentary contention (the planner measures that separately, as background busy cores). The checklist
    records it (``speed_probe_s``); the planner measures it again before planning and scales CPU times by the
    ratio when it is outside :data:`SPEED_RATIO_DEADBAND` (:func:`speed_ratio`).
    """
    import time

    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    a = rng.standard_normal((192, 192)).astype(np.float32)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
            for f in (1.0, 0.8, 0.64, 0.5, 0.4):
                r = cv2.resize(g, None, fx=f, fy=f, interpolation=cv2.INTER_LINEAR)
                cv2.integral(r)
                cv2.GaussianBlur(r, (5, 5), 0)
            b = a
            for _ in range(8):
                b = np.tanh(b @ a)
            best = min(best, time.perf_counter() - t0)
        return best
    finally:
        cv2.setNumThreads(threads)


def speed_ratio(checklist: Checklist, now_s: float | None = None) -> float:
    """How much slower this machine runs now than when ``checklist`` was measured (``now / then``), clamped to
    :data:`SPEED_RATIO_BOUNDS`; 1.0 for a checklist without a probe or within :data:`SPEED_RATIO_DEADBAND`."""
    if not checklist.speed_probe_s:
        return 1.0
    now_s = speed_probe() if now_s is None else now_s
    ratio = now_s / checklist.speed_probe_s
    if abs(ratio - 1.0) <= SPEED_RATIO_DEADBAND:
        return 1.0
    lo, hi = SPEED_RATIO_BOUNDS
    return min(hi, max(lo, ratio))


def profile(provider: Any, cfg: Any, server_pid: int, videos: Mapping[str, Sequence[tuple[Path, dict[str, Any]]]],
            *, batches: Sequence[int] = DEFAULT_BATCHES, quick: bool = False, reload_models: bool = True,
            log=print) -> Checklist:
    """Measure the checklist of ``cfg``'s profile against the running Triton (see the module docstring).

    Args:
        provider: a :class:`~extraction.provider.TritonModelProvider` for the server.
        cfg: the resolved :class:`~extraction.config.ExtractionConfig` (profile).
        server_pid: tritonserver's pid (its process tree is what memory is measured on).
        videos: size class -> calibration videos ``(path, sidecar)``.
        batches: batch sizes to measure (capped by each model's ``max_batch_size``).
        quick: fewer batch sizes (unless ``batches`` is given), 16 units per pass, shorter windows (tests).
        reload_models: unload/load each model to measure its fixed memory and load time (the model is
            unavailable for a few seconds); otherwise its stub processes' RSS is used and load time is unknown.
        log: progress lines.
    """
    import contextlib
    import tempfile
    import time

    import psutil

    from extraction.components import ComputeContext, VideoInput, default_components
    from extraction.decode import decode_audio, sample_frames
    from extraction.provider import InferStats
    from extraction.runner import ExtractionRun, VideoJob, process_video

    if quick and tuple(batches) == DEFAULT_BATCHES:
        batches = QUICK_BATCHES
    sweep_units = 16 if quick else SWEEP_UNITS
    timing = dict(warmup=1, window_s=0.1, max_windows=4) if quick else dict(warmup=1, window_s=0.5, max_windows=6)
    hw = detect_hardware()
    client = provider.client
    triton_version = str(client.get_server_metadata(as_json=True).get("version", "unknown"))
    comps = default_components()
    tmp_out = Path(tempfile.mkdtemp(prefix="checklist-"))
    run = ExtractionRun(cfg=cfg, out_root=tmp_out, provider=provider, components=comps, progress=False)
    handles = run.resolve_models()
    by_name = {c.name: c for c in comps}
    s = cfg.sampling
    self_pid = os.getpid()
    probes = [speed_probe()]
    meter = BackgroundMeter(lambda: [self_pid, *(p.pid for p in _tree(server_pid))]).start()

    # 1. decode cost and memory per size class; inputs each model component really sends ------------------
    decode: dict[str, DecodeProfile] = {}
    pools: dict[str, dict[str, list[dict[str, Any]]]] = {}  # comp -> class -> captured inputs
    client_s: dict[str, dict[str, list[float]]] = {}  # comp -> class -> [seconds per unit]
    prepared: dict[str, list[VideoInput]] = {}
    for cls, vids in videos.items():
        walls, cpus, per_frame, fixed, audio_rate = [], [], [], [], []
        for path, meta in vids:
            v = VideoInput(str(path), meta, s.fps, s.max_frames, s.max_side)
            reset_peaks([self_pid])
            rss0 = _status_kb(self_pid, "VmRSS")
            c0, t0 = time.process_time(), time.perf_counter()
            fr = sample_frames(str(path), s.fps, s.max_frames, s.max_side)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            peak = max(0, _status_kb(self_pid, "VmHWM") - rss0)
            kept = sum(f.nbytes for f in fr.rgb)
            walls.append(wall / max(fr.n_decoded, 1))
            cpus.append(cpu / max(wall, 1e-9))
            per_frame.append(kept / max(len(fr.rgb), 1))
            fixed.append(max(0, peak - kept))
            t0 = time.perf_counter()
            wav = decode_audio(str(path))
            if wav is not None and len(wav):
                audio_rate.append((time.perf_counter() - t0) / (len(wav) / 16000))
            v.__dict__["frames"], v.__dict__["audio"] = fr, wav  # cached_property slots: decoded once
            prepared.setdefault(cls, []).append(v)
        decode[cls] = DecodeProfile(seconds_per_decoded_frame=_median(walls), cpu_ratio=max(0.05, _median(cpus)),
                                    fixed_bytes=int(max(fixed)), per_frame_bytes=int(max(per_frame)),
                                    audio_seconds_per_s=_median(audio_rate) if audio_rate else 0.0)
        log(f"decode {cls}: {decode[cls].seconds_per_decoded_frame * 1000:.2f} ms/decoded frame, "
            f"cpu x{decode[cls].cpu_ratio:.2f}, {decode[cls].per_frame_bytes / 2**20:.2f} MiB/sampled frame")
        for v in prepared[cls]:
            frames_comp = by_name["frames"]
            fctx = ComputeContext(video=v, params=cfg.params("frames"), deps={}, provider=None, model=None,
                                  batch_size=1)
            fres = frames_comp.compute(fctx)
            deps = {"frames": (fres.arrays, fres.status)}
            for name, h in handles.items():
                cap = _Capture(provider)
                ctx = ComputeContext(video=v, params=cfg.params(name), deps=deps, provider=cap, model=h,
                                     batch_size=max(h.max_batch_size, 1), stats=InferStats())
                t0 = time.perf_counter()
                by_name[name].compute(ctx)
                wall = time.perf_counter() - t0
                if not cap.inputs:
                    continue
                units = sum(len(next(iter(x.values()))) for x in cap.inputs)
                pools.setdefault(name, {}).setdefault(cls, []).extend(cap.inputs)
                client_s.setdefault(name, {}).setdefault(cls, []).append(max(0.0, wall - cap.seconds) / max(units, 1))

    # 2. per model: fixed memory, load time, then the batch-size sweep per distinct input shape ---------------
    models: dict[str, ModelEntry] = {}
    for name, h in handles.items():
        gpu = h.device == "gpu"
        gpu_mem = GpuMemory(0) if gpu else None
        fixed_bytes, load_s = 0, 0.0
        if reload_models:
            try:
                unloaded_used = 0
                client.unload_model(h.name)
                deadline = time.monotonic() + 60
                while client.is_model_ready(h.name, h.version) and time.monotonic() < deadline:
                    time.sleep(0.05)
                while model_processes(server_pid, h.name) and time.monotonic() < deadline:
                    time.sleep(0.1)  # the stub exits a second or two after the model is reported unloaded
                time.sleep(0.3)
                base = gpu_mem.used() if gpu_mem else rss_bytes(p.pid for p in _tree(server_pid))
                unloaded_used = base
                t0 = time.perf_counter()
                client.load_model(h.name)
                load_s = time.perf_counter() - t0
            finally:
                if not client.is_model_ready(h.name, h.version):
                    client.load_model(h.name)
        caps_by_class = pools.get(name, {})
        if not caps_by_class:
            continue
        # classes whose units have the same tensor shapes share one measurement over their pooled content
        groups: dict[tuple, list[str]] = {}
        for cls, caps in caps_by_class.items():
            key = tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(caps[0].items()))
            groups.setdefault(key, []).append(cls)
        warm = split_requests(sweep_subset(next(iter(caps_by_class.values())), 1), 1)[0]
        provider.infer(h, warm, 1)
        if reload_models:
            used = gpu_mem.used() if gpu_mem else rss_bytes(p.pid for p in _tree(server_pid))
            fixed_bytes = max(0, used - unloaded_used)
        else:
            fixed_bytes = rss_bytes(model_processes(server_pid, h.name))
        classes: dict[str, SizeClassProfile] = {}
        cap = h.max_batch_size or max(batches)
        for key, members in groups.items():
            same = [x for cls in members for x in caps_by_class[cls]
                    if all(x[k].shape[1:] == shp for k, _, shp in key)]
            subset = sweep_subset(same, max(sweep_units, max(batches)))
            shape = list(next(iter(subset.values())).shape[1:])
            unit_bytes = int(sum(v[0].nbytes for v in subset.values()))
            sizes = [x for x in batches if x <= cap]

            def send(r: dict[str, Any], h: Any = h) -> None:  # bind this model's handle
                provider.infer(h, r, len(next(iter(r.values()))))

            series = {b: (split_requests(subset, b), send) for b in sizes}
            if gpu_mem:
                def memory(window, gpu_mem=gpu_mem):
                    before = gpu_mem.used()
                    top, total = gpu_mem.peak_during(window)
                    return max(0, top - before), total
            else:
                def memory(window):
                    procs = [p.pid for p in _tree(server_pid)] + [self_pid]
                    before_kb = {p: _status_kb(p, "VmRSS") for p in procs}
                    reset_peaks(procs)
                    total = window()
                    return peak_delta(procs, before_kb), total
            stubs = [] if gpu else model_processes(server_pid, h.name)

            def stub_cpu(pids: list[int] = stubs) -> float:
                total = 0.0
                for pid in pids:
                    with contextlib.suppress(psutil.Error):
                        t = psutil.Process(pid).cpu_times()
                        total += t.user + t.system
                return total

            measured = measure_interleaved(series, memory=memory, cpu=stub_cpu if stubs else None, **timing)
            points = []
            for b in sizes:
                sec, wins, spread, stable, mem, cpu_req = measured[b]
                mem = max(mem, 2 * b * unit_bytes)  # the request's tensors exist on both sides at least once
                points.append(BatchPoint(batch=b, seconds=round(sec, 6), mem_bytes=int(mem), windows=wins,
                                         spread=spread, stable=stable,
                                         cpu_seconds=round(cpu_req, 6) if cpu_req is not None else None))
                log(f"{name:<7} {h.name}:{h.version} {'/'.join(members):>14} batch {b:>3}: "
                    f"{sec * 1000:9.2f} ms/request "
                    f"({sec / b * 1000:8.2f} ms/unit), peak +{mem / 2**20:7.1f} MiB, {wins} windows"
                    + ("" if stable else f", NOT stable (spread {spread:.0%})"))
            for cls in members:
                classes[cls] = SizeClassProfile(input_shape=shape, unit_bytes=unit_bytes,
                                                client_seconds_per_unit=round(_median(client_s[name][cls]), 6),
                                                points=[p.model_copy() for p in points])
        models[name] = ModelEntry(component=name, model=h.name, version=h.version,
                                  weights_digest=h.used.weights_digest, device_kind="gpu" if gpu else "cpu",
                                  unit=UNIT_OF.get(name, "unit"), tier=by_name[name].tier,
                                  max_batch_size=h.max_batch_size, fixed_bytes=int(fixed_bytes),
                                  load_seconds=round(load_s, 3), size_classes=classes)
        log(f"{name:<7} {h.name}:{h.version}: fixed {fixed_bytes / 2**20:.0f} MiB, load {load_s:.2f}s")

    # 3. whole-video runs: per-video client overhead (artifact IO, modules, bookkeeping) beyond decode, preparation
    # and requests, and how much longer the requests take inside a real run than the batch sweep measured --------
    overheads, request_ratios, reuse = [], [], []
    comp_of_model = {h.name: c for c, h in handles.items()}
    for cls, vs in prepared.items():
        for v in vs:
            timed = _Capture(provider)
            r = ExtractionRun(cfg=cfg, out_root=tmp_out / "overhead", provider=timed, components=comps,
                              batch_sizes={c: max(h.max_batch_size, 1) for c, h in handles.items()}, progress=False)
            r.handles = dict(handles)
            t0 = time.perf_counter()
            process_video(r, VideoJob(v, f"calib-{cls}"))
            wall = time.perf_counter() - t0
            t0 = time.perf_counter()  # the same video again: every component is a cache hit
            again = process_video(r, VideoJob(v, f"calib-{cls}-again"))
            hits = sum(e["cache_hit"] for e in again["components"].values())
            if hits:
                reuse.append((time.perf_counter() - t0) / hits)
            units_prep = 0.0  # client preparation measured in step 1, per unit, times this video's units
            for c in client_s:
                if cls in client_s[c]:
                    units = sum(len(next(iter(x.values()))) for x in pools.get(c, {}).get(cls, [])) / max(len(vs), 1)
                    units_prep += _median(client_s[c][cls]) * units
            overheads.append(max(0.0, wall - timed.seconds - units_prep))
            swept = sum(models[comp_of_model[m]].curve(cls).seconds(u) for m, u in timed.calls
                        if comp_of_model.get(m) in models)
            if swept > 0:
                request_ratios.append(timed.seconds / swept)
    import shutil

    shutil.rmtree(tmp_out, ignore_errors=True)
    main_rss = rss_bytes([server_pid])
    background = meter.busy_cores()
    probes.append(speed_probe())
    run_factor = max(1.0, _median(request_ratios)) if request_ratios else 1.0
    log(f"requests inside whole-video runs took x{run_factor:.2f} the sweep's time "
        f"(median of {len(request_ratios)} videos; the planner scales server times by it)")
    if reuse:
        log(f"a component reused from the cache costs {_median(reuse) * 1000:.2f} ms (median of {len(reuse)} videos)")
    log(f"speed probe {min(probes) * 1000:.2f} ms (start {probes[0] * 1000:.2f}, end {probes[1] * 1000:.2f})")
    log(f"other processes kept {background:.2f} of {hw.cpu_cores} cores busy while profiling "
        "(CPU times are normalised with it)")
    method = {"statistic": "median of the last 3 window means (seconds per request); windows of all batch sizes "
                           "interleaved, each window whole passes over the same units", "windows_agree_within": 0.10,
              "min_windows": 3, "warmup_requests": timing["warmup"], "window_s": timing["window_s"],
              "max_windows": timing["max_windows"], "batches": list(batches),
              "memory": "GPU used memory (sampled)" if any(m.device_kind == "gpu" for m in models.values())
              else "Triton process tree peak RSS (VmHWM after clear_refs) above the loaded model",
              "calibration_videos": {c: [Path(p).name for p, _ in v] for c, v in videos.items()},
              "quick": quick}
    return Checklist(profile=cfg.profile, hardware=hw, triton_version=triton_version,
                     measured_at=now_iso(precision="seconds"),
                     method=method, server_baseline_bytes=int(main_rss),
                     client_overhead_s_per_video=round(_median(overheads), 4) if overheads else 0.0,
                     background_busy_cores=background, speed_probe_s=round(min(probes), 7),
                     request_time_factor=round(run_factor, 4),
                     reuse_s_per_component=round(_median(reuse), 5) if reuse else 0.0,
                     decode=decode, models=models)


def model_processes(server_pid: int, model: str) -> list[int]:
    """Pids of the python backend stubs serving ``model`` (their command line names its ``model.py``)."""
    return [p.pid for p in _tree(server_pid)[1:] if any(f"/{model}/" in a for a in _cmdline(p))]


def _cmdline(p: Any) -> list[str]:
    try:
        return list(p.cmdline())
    except Exception:
        return []


def run_profile(profile_name: str = "fast", *, url: str | None = None, state_dir: Path | None = None,
                videos_dir: Path | None = None, out: Path | None = None, quick: bool = False,
                reload_models: bool = True, per_class: int | None = None, log=print) -> tuple[Path, Checklist]:
    """``python -m extraction checklist profile``: measure against the running Triton and write the checklist.

    Args:
        profile_name: analysis profile (``fast`` | ``quality``).
        url: Triton gRPC address (default: the server ``triton start`` recorded in ``state_dir``).
        state_dir: Triton state folder (its ``state.json`` gives the server pid whose memory is measured).
        videos_dir: take calibration videos from this corpus (default: render a few with ``demo.synth``).
        out: where to write (default ``conf/checklist/<hardware>/<profile>.yaml``).
        quick: fewer batch sizes and shorter windows.
        reload_models: unload/load each model to measure its fixed memory and load time.
        per_class: calibration videos per size class (default 6, quick 1).
        log: progress lines.
    """
    import tempfile

    from common.errors import TritonUnavailable
    from extraction import triton_server
    from extraction.config import load_profile
    from extraction.provider import TritonModelProvider
    from extraction.runner import discover_videos

    state_dir = Path(state_dir or triton_server.DEFAULT_STATE_DIR)
    state = triton_server.read_state(state_dir)
    if state is None:
        raise TritonUnavailable(f"no Triton server is recorded in {state_dir}; start it with "
                                "`python -m extraction triton start` (profiling measures its process memory)")
    cfg = load_profile(profile_name)
    provider = TritonModelProvider(url or state.grpc_url)
    per_class = per_class or (1 if quick else 6)
    with tempfile.TemporaryDirectory(prefix="calibration-") as tmp:
        if videos_dir is not None:
            vids = pick_calibration(discover_videos(Path(videos_dir)), per_class=per_class)
        else:
            log(f"rendering {per_class} calibration videos per size class (demo.synth) ...")
            vids = calibration_videos(Path(tmp), per_class=per_class)
        cl = profile(provider, cfg, state.pid, vids, quick=quick, reload_models=reload_models, log=log)
    path = Path(out) if out is not None else checklist_path(profile_name, cl.hardware.id)
    save_checklist(cl, path)
    log(f"wrote {path}")
    return path, cl
