"""Follow a :class:`~planning.planner.BatchPlan`: plan a run before any work, then execute it.

* :func:`plan_run` gathers what the planner needs from the real world -- the server's model signatures (checked
  against the checklist: a stale checklist is refused), each video's size class and units from its container
  header (nothing decoded), the devices and the memory free right now -- and calls the pure planner.
* :func:`execute` runs the plan with the runner: ``videos_in_parallel`` videos at once sharing the Triton
  client, each component's Triton requests of the planned batch size (every NPZ ``meta.batch_size`` is the size
  really sent), the plan recorded in every manifest. When the plan has several passes (tier-1 models rotate
  because memory or ``max_loaded_models_per_device`` forces it), :class:`ModelResidency` loads and unloads
  models with Triton's explicit model control between passes -- tier-0 models stay loaded, tier-1 models are
  evicted least-recently-used -- and the per-pass manifests are merged into one manifest per video.
* :func:`plan_and_execute` plans the whole corpus first (fail fast), then, for a corpus of at least
  :data:`PILOT_MIN_VIDEOS`, runs a *pilot* (:func:`run_pilot`): the first :func:`pilot_size` videos one at a
  time at the plan's batch sizes, for real (their artifacts are part of the run). Each component's measured time
  divided by the stage model's prediction for the same videos is a factor (this machine now, this corpus's
  content, client work the checklist does not see) that the planner applies when it plans the rest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from common.errors import TrendflowError, VideoDecodeFailed
from planning.checklist import (
    CHECKLIST_DIR,
    Checklist,
    ChecklistMissing,
    checklist_path,
    detect_hardware,
    load_checklist,
    nvidia_driver_present,
    size_class,
    speed_ratio,
)
from planning.planner import (
    DEFAULT_MAX_LOADED_MODELS_PER_DEVICE,
    DEFAULT_MAX_VIDEOS_IN_PARALLEL,
    DEFAULT_SAFETY_MARGIN,
    BatchPlan,
    ComponentSpec,
    Device,
    VideoSpec,
    plan,
    predicted_component_seconds,
)

AUDIO_RATE = 16000
TEXT_UNITS = 2  # title + description
PILOT_VIDEOS = 2  # processed one at a time before the rest of the corpus is planned with what they measured
PILOT_MAX_VIDEOS = 8  # large corpora: up to this many (content varies between videos; 1% of the corpus)
PILOT_MIN_VIDEOS = 12  # below this, serialising the pilot costs more than a better plan can win back
FACTOR_BOUNDS = (0.5, 3.0)  # a pilot factor outside this range is clamped (one odd video must not wreck a plan)
# Share of the memory budget a plan's predicted peak leaves free for the memory model's own error: measured peaks
# of planned runs were 1-8% above their prediction (client heap of concurrent lanes, Triton's own growth; six
# rounds of `python -m benchmarks.extraction`), one 8% above put a run 14 MiB over its 1.5 GiB budget.
ESTIMATE_MARGIN = 0.10


# --------------------------------------------------------------------------------------------- the real world


def component_specs(components: Iterable[Any]) -> list[ComponentSpec]:
    return [ComponentSpec.of(c) for c in components]


def units_for(unit: str, sampled: int, duration_s: float, has_audio: bool, params: Mapping[str, Any]) -> int:
    """Units a component sends to its model for one video, by the checklist's unit kind (pure)."""
    if unit == "frame":
        return sampled
    if unit == "frame_pair":
        return max(sampled - 1, 0)
    if unit == "audio_window":
        win = int(round(float(params.get("window_s", 1.0)) * AUDIO_RATE))
        return int(duration_s * AUDIO_RATE) // win if has_audio and win > 0 else 0
    if unit == "text":
        return TEXT_UNITS
    raise TrendflowError(f"unknown unit kind {unit!r} in the checklist", code="config_invalid")


def video_specs(videos: Sequence[tuple[Path, dict[str, Any]]], cfg: Any, checklist: Checklist,
                cached: Sequence[set[str]] | None = None, components: Sequence[Any] = ()) -> list[VideoSpec]:
    """Planner view of each video from its container header (PyAV probe; nothing is decoded).

    A video that cannot be probed gets zero units: the run records ``video_decode_failed`` for it. With
    ``cached`` (per video, the components the run will reuse from the cache: ``runner.cached_components``) a reused
    model component sends nothing, and a video decodes frames (audio) only if a component of ``components`` that
    needs them is computed."""
    from extraction.decode import probe, target_times

    s = cfg.sampling
    frame_comps = {c.name for c in components if c.uses_frames}
    audio_comps = {c.name for c in components if ComponentSpec.of(c).uses_audio}
    out = []
    every = {c.name for c in components}
    for i, (path, meta) in enumerate(videos):
        vid = str(meta.get("video_id", Path(path).stem))
        reused = cached[i] if cached is not None else set()
        if every and every <= reused:  # all of it comes from the cache: nothing to probe
            out.append(VideoSpec(vid, "360p", dict.fromkeys(checklist.models, 0), reused=len(reused)))
            continue
        try:
            info = probe(str(path))
        except VideoDecodeFailed:
            out.append(VideoSpec(vid, "360p", {}))
            continue
        targets = target_times(max(info.duration_s, 1.0 / s.fps), s.fps, s.max_frames)
        n = len(targets)
        units = {c: units_for(e.unit, n, info.duration_s, info.has_audio, cfg.params(c))
                 for c, e in checklist.models.items()}
        decoded = int(round(float(targets[-1]) * (info.fps or 25.0))) + 1
        audio_s = info.duration_s if info.has_audio else 0.0
        if reused:
            units = {c: 0 if c in reused else u for c, u in units.items()}
            if frame_comps and frame_comps <= reused:
                decoded = n = 0
            if audio_comps and audio_comps <= reused:
                audio_s = 0.0
        out.append(VideoSpec(vid, size_class(info.width, info.height), units, decoded_frames=decoded,
                             sampled_frames=n, audio_s=audio_s, reused=len(reused)))
    return out


def cached_per_video(run: Any, videos: Sequence[tuple[Path, dict[str, Any]]]) -> list[set[str]]:
    """Per video, the components ``run`` will reuse from its cache (``runner.cached_components``)."""
    from extraction.runner import cached_components

    return [cached_components(run, run.video_input(p, meta)) for p, meta in videos]


BACKGROUND_SAMPLE_S = 0.15  # planning is part of every run's wall time: load is sampled while it gathers inputs


def discover_devices(background: float | None = None, own_pids: Iterable[int] = ()) -> list[Device]:
    """CPU RAM available now, the cores and how many of them other processes keep busy (sampled for
    ``BACKGROUND_SAMPLE_S``; this run's processes ``own_pids`` are excluded), plus each GPU's free memory (NVML,
    else ``torch.cuda``) when an NVIDIA driver is present."""
    import psutil

    from planning.checklist import background_busy_cores

    bg = background if background is not None else background_busy_cores(BACKGROUND_SAMPLE_S, own_pids)
    devices = [Device("cpu", "cpu", int(psutil.virtual_memory().available), concurrency=float(os.cpu_count() or 1),
                      background=float(bg))]
    if not nvidia_driver_present():
        return devices
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            for i in range(pynvml.nvmlDeviceGetCount()):
                free = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).free
                devices.append(Device(f"gpu{i}", "gpu", int(free)))
            return devices
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                free, _total = torch.cuda.mem_get_info(i)
                devices.append(Device(f"gpu{i}", "gpu", int(free)))
    except Exception:
        pass
    return devices


def model_signatures(handles: Mapping[str, Any]) -> dict[str, str]:
    """component -> ``name:version:weights_digest`` as the server reports it."""
    return {c: f"{h.name}:{h.version}:{h.used.weights_digest}" for c, h in handles.items()}


def loaded_models(provider: Any) -> set[str] | None:
    """Names of the models Triton reports READY (None when the provider cannot say)."""
    client = getattr(provider, "client", None)
    if client is None:
        return None
    try:
        index = client.get_model_repository_index(as_json=True).get("models", [])
    except Exception:
        return None
    return {m["name"] for m in index if m.get("state") == "READY"}


def _instance_groups(control: Any, model: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cfg = control.get_model_config(model, as_json=True)["config"]
    return cfg, list(cfg.get("instance_group") or [{"kind": "KIND_CPU", "count": 1}])


def current_instances(control: Any, models: Mapping[str, str]) -> dict[str, int]:
    """component -> instances its model is loaded with now (from the server's model config)."""
    out = {}
    for comp, model in models.items():
        try:
            _, groups = _instance_groups(control, model)
        except Exception:
            continue
        out[comp] = sum(int(g.get("count", 1) or 1) for g in groups)
    return out


def placement_config(control: Any, model: str, instances: int, device: str) -> str:
    """The model's current config with one instance group: ``instances`` copies on ``device`` (``cpu`` or
    ``gpuN``), as JSON for ``load_model(config=...)`` (explicit model control)."""
    cfg, _ = _instance_groups(control, model)
    group: dict[str, Any] = {"kind": "KIND_GPU" if device.startswith("gpu") else "KIND_CPU", "count": int(instances)}
    if device.startswith("gpu"):
        group["gpus"] = [int(device[3:] or 0)]
    cfg["instance_group"] = [group]
    return json.dumps(cfg)


def apply_instances(control: Any, plan_: BatchPlan, models: Mapping[str, str],
                    only: Iterable[str] | None = None) -> list[tuple[str, int, int, float]]:
    """Reload the models whose planned instance count differs from the loaded one (config override; the
    repository's ``config.pbtxt`` is not touched). Returns (model, before, after, seconds) per reload."""
    now = current_instances(control, {c: m for c, m in models.items() if only is None or c in set(only)})
    done = []
    for comp, cur in now.items():
        cp = plan_.components.get(comp)
        if cp is None or cp.instances == cur:
            continue
        t0 = time.perf_counter()
        control.load_model(models[comp], config=placement_config(control, models[comp], cp.instances, cp.device))
        done.append((models[comp], cur, cp.instances, round(time.perf_counter() - t0, 3)))
    return done


def find_checklist(profile: str, path: Path | None = None, root: Path = CHECKLIST_DIR) -> Path:
    """The checklist to use: ``path`` if given, else ``conf/checklist/<this hardware>/<profile>.yaml``."""
    if path is not None:
        return Path(path)
    hw = detect_hardware().id
    p = checklist_path(profile, hw, root)
    if not p.exists():
        known = sorted(str(x.relative_to(root)) for x in Path(root).glob("*/*.yaml")) if Path(root).exists() else []
        raise ChecklistMissing(
            f"no checklist for hardware {hw!r} and profile {profile!r} at {p}; measure one with "
            f"`python -m extraction checklist profile --profile {profile}` (known: {known or 'none'})",
            hardware=hw, profile=profile)
    return p


@dataclasses.dataclass
class PlanInputs:
    """What :func:`plan_run` gathers from the real world before the pure planner runs (reusable for a second plan
    of a subset of the same videos: ``specs`` are per video, in order)."""

    checklist: Checklist
    source: Path
    specs: list[VideoSpec]
    devices: list[Device]
    loaded: set[str] | None
    current_instances: dict[str, int]


def plan_inputs(run: Any, videos: Sequence[tuple[Path, dict[str, Any]]], checklist: Checklist | Path | None = None,
                devices: Sequence[Device] | None = None, cached: Sequence[set[str]] | None = None) -> PlanInputs:
    """Resolve the run's models, refuse a stale checklist, probe the videos (container headers), look up what the
    cache holds, read the free memory, the busy cores and this machine's speed now. The background load is
    sampled over the time this takes (at least ``BACKGROUND_SAMPLE_S``), not in a separate wait."""
    from planning.checklist import BackgroundMeter

    meter = BackgroundMeter(lambda: [os.getpid()]).start() if devices is None else None
    t0 = time.perf_counter()
    if not isinstance(checklist, Checklist):
        source = find_checklist(run.cfg.profile, checklist)
        cl = load_checklist(source)
    else:
        cl, source = checklist, Path("<in-memory>")
    handles = run.resolve_models()
    cl.check_signatures(model_signatures(handles), source=str(source))
    ratio = speed_ratio(cl)  # this machine now vs when the checklist was measured
    if cached is None:
        cached = cached_per_video(run, videos)
    specs = video_specs(videos, run.cfg, cl, cached, run.components)
    control = getattr(run.provider, "client", None)
    inst_now = current_instances(control, {c: h.name for c, h in handles.items()}) if control is not None else {}
    if meter is not None:
        time.sleep(max(0.0, BACKGROUND_SAMPLE_S - (time.perf_counter() - t0)))
        devs = discover_devices(background=meter.busy_cores())
    else:
        devs = list(devices or [])
    now = loaded_models(run.provider)
    if now is not None:
        names = {c: h.name for c, h in handles.items()}
        loaded = {c for c, n in names.items() if n in now}
        by_kind: dict[str, int] = {}
        for c in loaded:
            e = cl.models.get(c)
            if e is not None:
                by_kind[e.device_kind] = by_kind.get(e.device_kind, 0) + e.fixed_bytes
        # models already loaded in RAM hold memory that is "used", not free, and the plan counts it again. (On a
        # GPU which device holds a loaded model is not known here: counted twice, which errs on the safe side.)
        devs = [dataclasses.replace(d, loaded_bytes=d.loaded_bytes or by_kind.get("cpu", 0))
                if d.kind == "cpu" else d for d in devs]
    else:
        loaded = None
    devs = [dataclasses.replace(d, speed_ratio=ratio) if d.kind == "cpu" else d for d in devs]
    return PlanInputs(cl, source, specs, devs, loaded, inst_now)


def plan_run(run: Any, videos: Sequence[tuple[Path, dict[str, Any]]], *, checklist: Checklist | Path | None = None,
             devices: Sequence[Device] | None = None, memory_budget: int | Mapping[str, int] | None = None,
             safety_margin: float = DEFAULT_SAFETY_MARGIN,
             max_videos_in_parallel: int = DEFAULT_MAX_VIDEOS_IN_PARALLEL,
             max_loaded_models_per_device: int = DEFAULT_MAX_LOADED_MODELS_PER_DEVICE,
             max_instances: int | Mapping[str, int] | None = None,
             time_factors: Mapping[str, float] | None = None, video_overhead_s: float | None = None,
             cached: Sequence[set[str]] | None = None, inputs: PlanInputs | None = None,
             estimate_margin: float = ESTIMATE_MARGIN) -> BatchPlan:
    """Plan ``run`` (an :class:`~extraction.runner.ExtractionRun`) over ``videos`` before any work starts.

    Gathers :func:`plan_inputs` (or uses ``inputs``, gathered for exactly these videos) and calls the pure planner.
    Raises ``checklist_missing``/``checklist_stale``/``insufficient_memory`` before anything runs.
    ``time_factors``/``video_overhead_s`` come from a pilot (:func:`run_pilot`). Work the cache already holds is
    not planned (``cached``: per video, as :func:`cached_per_video` returns it; looked up when None)."""
    x = inputs if inputs is not None else plan_inputs(run, videos, checklist, devices, cached)
    p = plan(x.specs, component_specs(run.components), x.devices, x.checklist, safety_margin=safety_margin,
             memory_budget=memory_budget, max_videos_in_parallel=max_videos_in_parallel,
             max_loaded_models_per_device=max_loaded_models_per_device, loaded=x.loaded,
             max_instances=max_instances, current_instances=x.current_instances, time_factors=time_factors,
             video_overhead_s=video_overhead_s, estimate_margin=estimate_margin)
    p.checklist["path"] = str(x.source)
    return p


# --------------------------------------------------------------------------------------------- pilot


@dataclasses.dataclass
class Pilot:
    """What the pilot videos measured against the stage model's prediction for them (seconds per component,
    summed over the videos whose component was computed, not reused from the cache)."""

    videos: list[str]
    seconds: float
    measured: dict[str, float]
    predicted: dict[str, float]
    factors: dict[str, float]
    video_overhead_s: float | None
    summary: Any  # the runner's RunSummary of the pilot videos

    def record(self) -> dict[str, Any]:
        return {"pilot_videos": self.videos, "pilot_seconds": round(self.seconds, 3),
                "pilot_measured_s": {c: round(x, 4) for c, x in self.measured.items()},
                "pilot_predicted_s": {c: round(x, 4) for c, x in self.predicted.items()}}


def pilot_factors(measured: Mapping[str, float], predicted: Mapping[str, float],
                  bounds: tuple[float, float] = FACTOR_BOUNDS, min_predicted_s: float = 1e-3) -> dict[str, float]:
    """``measured / predicted`` per component, clamped to ``bounds``; components predicted below
    ``min_predicted_s`` (nothing to compare) get no factor."""
    lo, hi = bounds
    return {c: min(hi, max(lo, measured[c] / predicted[c])) for c in measured
            if predicted.get(c, 0.0) >= min_predicted_s}


def pilot_measurements(manifests: Sequence[Mapping[str, Any]], predicted: Sequence[Mapping[str, float]],
                       wall_s: float) -> tuple[dict[str, float], dict[str, float], float | None]:
    """From the pilot's manifests and the stage model's per-video prediction (same order): measured and predicted
    seconds per component (computed entries only) and the measured seconds per video that no stage models
    (components without a predicted stage, and the run's own work between components); None when every
    component of every pilot video was reused from the cache (nothing was measured)."""
    measured: dict[str, float] = {}
    pred: dict[str, float] = {}
    unmodelled = in_components = 0.0
    computed_videos = 0
    for m, per in zip(manifests, predicted, strict=True):
        computed = False
        for c, e in m.get("components", {}).items():
            in_components += float(e.get("latency_s", 0.0))
            if e.get("cache_hit") or e.get("status") == "error":
                continue
            computed = True
            if per.get(c, 0.0) > 0:
                measured[c] = measured.get(c, 0.0) + float(e["latency_s"])
                pred[c] = pred.get(c, 0.0) + per[c]
            else:
                unmodelled += float(e["latency_s"])
        computed_videos += computed
    if not computed_videos:
        return {}, {}, None
    overhead = (max(0.0, wall_s - in_components) + unmodelled) / max(len(manifests), 1)
    return measured, pred, overhead


def _devices_of(p: BatchPlan) -> list[Device]:
    return [Device(name=d, kind=i["kind"], free_bytes=int(i["free_bytes"]), concurrency=float(i["concurrency"]),
                   loaded_bytes=int(i["loaded_bytes"]), background=float(i["background"]),
                   speed_ratio=float(i.get("speed_ratio", 1.0))) for d, i in p.devices.items()]


def run_pilot(run: Any, videos: Sequence[tuple[Path, dict[str, Any]]], plan_: BatchPlan, checklist: Checklist,
              run_id: str) -> Pilot:
    """Process ``videos`` one at a time at ``plan_``'s batch sizes (for real, into ``run_id``) and compare each
    component's time with what the stage model predicts for the same videos on the plan's devices."""
    from extraction.runner import extract

    run.batch_sizes = dict(plan_.batch_sizes)
    run.plan = {**plan_.to_dict(), "stage": "pilot"}
    summary = extract(run, list(videos), videos_in_parallel=1, run_id=run_id)
    manifests = [json.loads(Path(m).read_text()) for m in summary.manifests]
    specs = video_specs(videos, run.cfg, checklist)
    per_video = predicted_component_seconds(specs, component_specs(run.components), _devices_of(plan_), checklist,
                                            plan_.batch_sizes)
    measured, predicted, overhead = pilot_measurements(manifests, per_video, summary.seconds)
    return Pilot(videos=[m["video_id"] for m in manifests], seconds=summary.seconds, measured=measured,
                 predicted=predicted, factors=pilot_factors(measured, predicted), video_overhead_s=overhead,
                 summary=summary)


def pilot_size(n_videos: int) -> int:
    """Pilot videos for a corpus of ``n_videos``: 0 below :data:`PILOT_MIN_VIDEOS`, else 1% of the corpus within
    [:data:`PILOT_VIDEOS`, :data:`PILOT_MAX_VIDEOS`] (16 videos: 2; 4,000: 8)."""
    if n_videos < PILOT_MIN_VIDEOS:
        return 0
    return max(PILOT_VIDEOS, min(PILOT_MAX_VIDEOS, n_videos // 100))


def pick_pilot(cached: Sequence[set[str]], k: int) -> list[int]:
    """Indices of the first ``k`` videos with nothing to reuse from the cache (``cached``: per video, the reused
    components; a reused artifact measures nothing); fewer, or none, when the corpus is (mostly) extracted."""
    return [i for i, hits in enumerate(cached) if not hits][:k]


def merge_summaries(a: Any, b: Any) -> Any:
    """One run summary of two parts of the same run (the pilot, then the rest)."""
    return dataclasses.replace(b, videos=a.videos + b.videos, ok=a.ok + b.ok, failed={**a.failed, **b.failed},
                               cache_hits=a.cache_hits + b.cache_hits, computed=a.computed + b.computed,
                               seconds=round(a.seconds + b.seconds, 2), manifests=[*a.manifests, *b.manifests])


# --------------------------------------------------------------------------------------------- residency


class ModelControl(Protocol):
    """The part of ``tritonclient.grpc.InferenceServerClient`` residency uses."""

    def load_model(self, model_name: str, headers: Any = None, config: str | None = None) -> None: ...

    def unload_model(self, model_name: str, headers: Any = None, unload_dependents: bool = False) -> None: ...

    def is_model_ready(self, model_name: str, model_version: str = "") -> bool: ...


class ModelResidency:
    """Which Triton models are loaded, per device, under explicit model control.

    Pinned (tier-0) models are never unloaded. Loading a model when its device already holds
    ``max_loaded_per_device`` models, or when their fixed memory would exceed ``memory_limit`` for the device,
    first unloads the least recently used unpinned model that the caller does not need right now.
    """

    def __init__(self, control: ModelControl, device_of: Mapping[str, str], *, pinned: Iterable[str] = (),
                 max_loaded_per_device: int = DEFAULT_MAX_LOADED_MODELS_PER_DEVICE,
                 fixed_bytes: Mapping[str, int] | None = None, memory_limit: Mapping[str, int] | None = None,
                 loaded: Iterable[str] = (), wait_s: float = 60.0, released=None) -> None:
        self.control = control
        self.device_of = dict(device_of)
        self.pinned = set(pinned)
        self.max_loaded = max_loaded_per_device
        self.fixed = dict(fixed_bytes or {})
        self.limit = dict(memory_limit or {})
        self.lru: OrderedDict[str, None] = OrderedDict((m, None) for m in loaded if m in self.device_of)
        self.wait_s = wait_s
        self.released = released  # model -> bool: its memory is really given back (stub processes gone)
        self.configs: dict[str, Any] = {}  # model -> callable returning the config JSON to load it with
        self.events: list[tuple[str, str, float]] = []  # (load|unload, model, seconds)

    def loaded_on(self, device: str) -> list[str]:
        return [m for m in self.lru if self.device_of.get(m) == device]

    def touch(self, model: str) -> None:
        if model in self.lru:
            self.lru.move_to_end(model)

    def _fits(self, device: str, extra: str) -> bool:
        on = self.loaded_on(device)
        if len(on) + 1 > self.max_loaded:
            return False
        if device in self.limit:
            return sum(self.fixed.get(m, 0) for m in on) + self.fixed.get(extra, 0) <= self.limit[device]
        return True

    def unload(self, model: str) -> None:
        t0 = time.perf_counter()
        self.control.unload_model(model)
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline:  # the unload completes asynchronously; wait for it to free memory
            try:
                if not self.control.is_model_ready(model):
                    break
            except Exception:
                break
            time.sleep(0.05)
        while self.released is not None and not self.released(model) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.lru.pop(model, None)
        self.events.append(("unload", model, time.perf_counter() - t0))

    def load(self, model: str, config: str | None = None) -> None:
        t0 = time.perf_counter()
        if config is None and model in self.configs:
            config = self.configs[model]()
        if config is None:
            self.control.load_model(model)
        else:
            self.control.load_model(model, config=config)
        self.lru[model] = None
        self.events.append(("load", model, time.perf_counter() - t0))

    def ensure(self, models: Sequence[str]) -> list[str]:
        """Make every model in ``models`` loaded (most recently used), evicting LRU unpinned models that are not
        in ``models`` when the count or memory bound requires it. Returns the models unloaded."""
        need = set(models)
        evicted: list[str] = []
        for m in models:
            if m in self.lru:
                self.touch(m)
                continue
            dev = self.device_of[m]
            while not self._fits(dev, m):
                victims = [v for v in self.lru if self.device_of.get(v) == dev and v not in self.pinned
                           and v not in need]
                if not victims:
                    raise TrendflowError(
                        f"cannot load {m} on {dev}: {len(self.loaded_on(dev))} models loaded "
                        f"(max {self.max_loaded}) and none of them may be unloaded", code="residency_exhausted")
                self.unload(victims[0])
                evicted.append(victims[0])
            self.load(m)
        return evicted


# --------------------------------------------------------------------------------------------- execution


def _closure(names: Iterable[str], components: Sequence[Any]) -> list[Any]:
    by = {c.name: c for c in components}
    keep: set[str] = set()
    stack = list(names)
    while stack:
        n = stack.pop()
        if n in keep:
            continue
        keep.add(n)
        stack.extend(by[n].dependencies)
    return [c for c in components if c.name in keep]


def residency_for(run: Any, plan_: BatchPlan, control: ModelControl, checklist: Checklist,
                  loaded: set[str] | None = None, server_pid: int | None = None) -> ModelResidency:
    """A :class:`ModelResidency` for ``plan_``: tier-0 models pinned, the plan's per-device bound and, as each
    device's memory limit, the largest fixed memory the plan keeps resident there in any pass."""
    names = {c: h.name for c, h in run.handles.items()}
    device_of = {names[c]: p.device for c, p in plan_.components.items() if c in names}
    comps = {c.name: c for c in run.components}
    pinned = {names[c] for c in names if c in comps and comps[c].tier == 0}
    inst = plan_.instances
    fixed = {names[c]: checklist.models[c].fixed_bytes * inst.get(c, 1) for c in names if c in checklist.models}
    limit: dict[str, int] = {}
    for res in plan_.resident:
        for dev, cs in res.items():
            limit[dev] = max(limit.get(dev, 0), sum(fixed.get(names[c], 0) for c in cs if c in names))
    now = set(device_of) if loaded is None else {m for m in loaded if m in device_of}
    released = None
    if server_pid is not None:
        from planning.checklist import model_processes

        def released(model: str) -> bool:
            return not model_processes(server_pid, model)
    res = ModelResidency(control, device_of, pinned=pinned, max_loaded_per_device=plan_.max_loaded_models_per_device,
                         fixed_bytes=fixed, memory_limit=limit, loaded=sorted(now), released=released)
    for c, n in names.items():
        cp = plan_.components.get(c)
        if cp is not None and (cp.instances != 1 or cp.device.startswith("gpu")):
            res.configs[n] = lambda n=n, cp=cp: placement_config(control, n, cp.instances, cp.device)
    return res


def execute(run: Any, videos: Sequence[tuple[Path, dict[str, Any]]], plan_: BatchPlan, *,
            residency: ModelResidency | None = None, control: Any = None, run_id: str | None = None,
            restore: bool = True) -> Any:
    """Run ``plan_`` and return the runner's :class:`~extraction.runner.RunSummary` (merged over passes).

    Args:
        run: the :class:`~extraction.runner.ExtractionRun`; its ``batch_sizes`` and ``plan`` are set here.
        videos: ``(path, sidecar)`` pairs, in the order the plan assumed.
        plan_: from :func:`plan_run`.
        residency: required when the plan has several passes (tier-1 models rotate).
        control: Triton client used to reload models whose planned instance count differs from the loaded one
            (default: the provider's client; None on a provider without one).
        run_id: optional fixed run id.
        restore: reload, after the run, the models that residency unloaded (leave the server as found).
    """
    from common.fsio import atomic_write_json
    from extraction.runner import RunSummary, extract, new_run_id

    run.batch_sizes = dict(plan_.batch_sizes)
    run.plan = plan_.to_dict()
    control = control if control is not None else getattr(run.provider, "client", None)
    if control is not None and plan_.instances and run.handles:
        loaded_now = list(residency.lru) if residency is not None else None
        names_now = {c: h.name for c, h in run.handles.items()
                     if loaded_now is None or h.name in loaded_now}
        run.plan["reloads"] = apply_instances(control, plan_, names_now)
    if len(plan_.passes) == 1 and residency is None:
        return extract(run, list(videos), videos_in_parallel=plan_.videos_in_parallel, run_id=run_id)
    if residency is None:
        raise TrendflowError("the plan rotates models in passes and needs a ModelResidency", code="config_invalid")
    run_id = run_id or new_run_id()
    t0 = time.perf_counter()
    all_components = list(run.components)
    names = {c: h.name for c, h in run.handles.items()}
    before = list(residency.lru)
    per_pass: list[dict[str, dict[str, Any]]] = []  # pass -> video key -> manifest
    last = None
    try:
        for comps in plan_.passes:
            residency.ensure([names[c] for c in comps if c in names])
            run.components = _closure(comps, all_components)
            last = extract(run, list(videos), videos_in_parallel=plan_.videos_in_parallel, run_id=run_id)
            per_pass.append({str(m): json.loads(Path(m).read_text()) for m in last.manifests if Path(m).exists()})
    finally:
        run.components = all_components
        if restore:  # leave the server as found (outside the plan's bound: the run is over)
            for m in before:
                if m not in residency.lru:
                    residency.load(m)
    where = {c: i for i, comps in enumerate(plan_.passes) for c in comps}
    manifests = []
    for key, final in (per_pass[-1] if per_pass else {}).items():
        merged = dict(final)
        merged["components"] = {}
        for c in all_components:
            src = per_pass[where.get(c.name, len(per_pass) - 1)].get(key, final)
            if c.name in src.get("components", {}):
                merged["components"][c.name] = src["components"][c.name]
        merged["started_at"] = min(per_pass[i][key]["started_at"] for i in range(len(per_pass)) if key in per_pass[i])
        failed_decode = next((p[key] for p in per_pass if key in p and p[key].get("error_code")), None)
        merged.pop("status", None)
        merged.pop("error_code", None)
        merged.pop("error_message", None)
        if failed_decode is not None:
            merged.update(status="error", error_code=failed_decode["error_code"],
                          error_message=failed_decode.get("error_message"))
        else:
            merged["status"] = ("ok" if all(e["status"] != "error" for e in merged["components"].values())
                                else "partial")
        merged["passes"] = plan_.passes
        atomic_write_json(Path(key), merged)
        manifests.append(merged)
    if last is None:
        return None
    return RunSummary.from_manifests(run, run_id, manifests, len(videos), time.perf_counter() - t0)


def plan_and_execute(run: Any, videos: Sequence[tuple[Path, dict[str, Any]]], *,
                     checklist: Checklist | Path | None = None, memory_budget: int | Mapping[str, int] | None = None,
                     safety_margin: float = DEFAULT_SAFETY_MARGIN,
                     max_videos_in_parallel: int = DEFAULT_MAX_VIDEOS_IN_PARALLEL,
                     max_loaded_models_per_device: int = DEFAULT_MAX_LOADED_MODELS_PER_DEVICE,
                     devices: Sequence[Device] | None = None, server_pid: int | None = None, on_plan=None,
                     run_id: str | None = None, max_instances: int | Mapping[str, int] | None = None,
                     pilot_videos: int | None = None) -> Any:
    """Plan the whole corpus before any work (fail fast), run the pilot (see the module docstring; from
    :data:`PILOT_MIN_VIDEOS` videos, single-pass plans; ``pilot_videos`` None = :func:`pilot_size`, 0 = off), plan
    the rest with its factors, tell ``on_plan``, then execute. Returns the run summary of all videos (one run id)."""
    from extraction.runner import new_run_id

    run.resolve_models()  # an unreachable server or a missing model is reported before any checklist problem
    cl = checklist if isinstance(checklist, Checklist) else load_checklist(find_checklist(run.cfg.profile, checklist))
    cached = cached_per_video(run, videos)
    x = plan_inputs(run, videos, cl, devices, cached)
    kw = dict(memory_budget=memory_budget, safety_margin=safety_margin, max_videos_in_parallel=max_videos_in_parallel,
              max_loaded_models_per_device=max_loaded_models_per_device, max_instances=max_instances)
    p = plan_run(run, videos, **kw, inputs=x)
    rest, pilot = list(videos), None
    if pilot_videos is None:
        pilot_videos = pilot_size(len(videos))
    picked = pick_pilot(cached, pilot_videos) if pilot_videos > 0 else []
    if pilot_videos <= 0 and len(videos) >= PILOT_MIN_VIDEOS:
        p.calibration["skipped"] = "turned off"
    elif len(videos) < PILOT_MIN_VIDEOS:
        p.calibration["skipped"] = f"{len(videos)} videos; a pilot runs from {PILOT_MIN_VIDEOS}"
    elif len(p.passes) > 1:
        p.calibration["skipped"] = "the plan rotates models in passes"
    elif not picked:
        p.calibration["skipped"] = f"every video has artifacts to reuse in {run.out_root}"
    else:
        run_id = run_id or new_run_id()
        pilot = run_pilot(run, [videos[i] for i in picked], p, cl, run_id)
        keep = [i for i in range(len(videos)) if i not in set(picked)]
        rest = [videos[i] for i in keep]
        rest_inputs = dataclasses.replace(x, specs=[x.specs[i] for i in keep])  # same devices, speed, server
        p = plan_run(run, rest, **kw, time_factors=pilot.factors, video_overhead_s=pilot.video_overhead_s,
                     inputs=rest_inputs)
        p.calibration.update(pilot.record())
        if not pilot.factors:
            p.calibration["skipped"] = "the pilot videos were all reused from the cache"
    if not isinstance(checklist, Checklist):
        p.checklist["path"] = str(find_checklist(run.cfg.profile, checklist))
    if on_plan is not None:
        on_plan(p)
    residency = None
    if len(p.passes) > 1:
        residency = residency_for(run, p, run.provider.client, cl, loaded_models(run.provider), server_pid)
    summary = execute(run, rest, p, residency=residency, run_id=run_id)
    return merge_summaries(pilot.summary, summary) if pilot is not None else summary
