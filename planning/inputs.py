"""What the pure planner needs, gathered from the real world: the server's model signatures (checked against the
checklist: a stale checklist is refused), each video's size class and units from its container header (nothing
decoded), what the cache already holds, the devices, the memory free and the cores busy right now.
:func:`plan_run` gathers them and calls :func:`planning.planner.plan`."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from common.errors import VideoDecodeFailed
from planning.checklist import (
    CHECKLIST_DIR,
    Checklist,
    ChecklistMissing,
    checklist_path,
    detect_hardware,
    load_checklist,
    size_class,
    speed_ratio,
)
from planning.planner import plan
from planning.probes import gpu_memory
from planning.residency import current_instances, loaded_models
from planning.specs import (
    DEFAULT_MAX_LOADED_MODELS_PER_DEVICE,
    DEFAULT_MAX_VIDEOS_IN_PARALLEL,
    DEFAULT_SAFETY_MARGIN,
    BatchPlan,
    ComponentSpec,
    Device,
    VideoSpec,
)

# Share of the memory budget a plan's predicted peak leaves free for the memory model's own error: measured peaks
# of planned runs were 1-8% above their prediction (client heap of concurrent lanes, Triton's own growth; six
# rounds of `python -m benchmarks.extraction`), one 8% above put a run 14 MiB over its 1.5 GiB budget; with the
# checklist re-profiled on an idle machine the planner picks larger batches and one peak came out 12% above its
# prediction (1,545 MiB for 1,378 predicted), so the margin covers 15%.
ESTIMATE_MARGIN = 0.15


def component_specs(components: Iterable[Any]) -> list[ComponentSpec]:
    return [ComponentSpec.of(c) for c in components]


def video_specs(videos: Sequence[tuple[Path, dict[str, Any]]], cfg: Any, checklist: Checklist,
                cached: Sequence[set[str]] | None = None, components: Sequence[Any] = ()) -> list[VideoSpec]:
    """Planner view of each video from its container header (PyAV probe; nothing is decoded).

    A video that cannot be probed gets zero units: the run records ``video_decode_failed`` for it. With
    ``cached`` (per video, the components the run will reuse from the cache: ``runner.cached_components``) a reused
    model component sends nothing, and a video decodes frames (audio) only if a component of ``components`` that
    needs them is computed."""
    from extraction.components.base import units_for
    from extraction.decode import probe, target_times

    s = cfg.sampling
    frame_comps = {c.name for c in components if c.uses_frames}
    audio_comps = {c.name for c in components if c.uses_audio}
    unit_of = {c.name: c.unit for c in components if c.unit}  # declared on the component; else as profiled
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
        units = {c: units_for(unit_of.get(c, e.unit), n, info.duration_s, info.has_audio, cfg.params(c))
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


def discover_devices(background: float | None = None, own_pids: Iterable[int] = (), *, cpus: float | None = None,
                     declared_gpus: int = 0, declared_gpu_bytes: int = 0) -> list[Device]:
    """CPU RAM available now, the cores and how many of them other processes keep busy (sampled for
    ``BACKGROUND_SAMPLE_S``; this run's processes ``own_pids`` are excluded), plus each GPU's free memory (NVML,
    else ``torch.cuda``) when an NVIDIA driver is present.

    A Ray node (``planning.distributed``) passes what it declares: ``cpus`` is the CPU device's concurrency (a
    node started with ``--num-cpus 1`` is one core to the planner, whatever the machine has), and when no driver
    reports a GPU, ``declared_gpus`` GPUs share ``declared_gpu_bytes`` equally (the fake GPUs of a test cluster).
    """
    import psutil

    from planning.probes import background_busy_cores

    bg = background if background is not None else background_busy_cores(BACKGROUND_SAMPLE_S, own_pids)
    concurrency = float(cpus) if cpus is not None else float(os.cpu_count() or 1)
    devices = [Device("cpu", "cpu", int(psutil.virtual_memory().available), concurrency=concurrency,
                      background=float(bg))]
    gpus = [Device(f"gpu{g.index}", "gpu", g.free_bytes) for g in gpu_memory()]
    if not gpus and declared_gpus > 0:
        gpus = [Device(f"gpu{i}", "gpu", int(declared_gpu_bytes / declared_gpus)) for i in range(declared_gpus)]
    return devices + gpus


def model_signatures(handles: Mapping[str, Any]) -> dict[str, str]:
    """component -> ``name:version:weights_digest`` as the server reports it."""
    return {c: f"{h.name}:{h.version}:{h.used.weights_digest}" for c, h in handles.items()}


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
    from planning.probes import BackgroundMeter

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
