"""The profiler: measure a checklist against the running Triton (``python -m extraction checklist profile``).

Steps (:func:`profile`), each a function here:

1. :func:`_decode_and_capture` -- per size class, decode cost and memory of the calibration videos, then the
   inputs each model component really sends for them (captured, with the client's preparation time per unit);
2. :func:`_measure_model` -- per model: fixed memory and load time (:func:`_fixed_memory`), then the batch-size
   sweep per distinct input shape (:func:`_sweep`, timing by :func:`planning.measure.measure_interleaved`);
3. :func:`_whole_video_runs` -- each calibration video processed for real, twice: the per-video client overhead
   beyond decode, preparation and requests, how much longer requests take inside a real run than in the sweep
   (``request_time_factor``), and what a component reused from the cache costs.

Memory and load come from :mod:`planning.probes`. Imports ``extraction`` (the runner, the components) and renders
calibration videos with ``demo.synth`` when no corpus is given.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.clock import now_iso
from planning.checklist import (
    SIZE_CLASSES,
    BatchPoint,
    Checklist,
    DecodeProfile,
    ModelEntry,
    SizeClassProfile,
    checklist_path,
    detect_hardware,
    save_checklist,
    size_class,
)
from planning.measure import SWEEP_UNITS, measure_interleaved, median, split_requests, sweep_subset
from planning.probes import (
    BackgroundMeter,
    GpuMemory,
    cpu_seconds,
    model_processes,
    peak_delta,
    process_tree,
    reset_peaks,
    rss_bytes,
    speed_probe,
    status_bytes,
)

DEFAULT_BATCHES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
QUICK_BATCHES: tuple[int, ...] = (1, 4, 16)
CALIBRATION_RESOLUTIONS = {"360p": "640x360", "720p": "1280x720", "1080p": "1920x1080"}
Videos = Mapping[str, Sequence[tuple[Path, dict[str, Any]]]]  # size class -> calibration (path, sidecar) pairs


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


@dataclass
class _Session:
    """One profiling session: the server, the run's models and components, settings, and what step 1 gathered."""

    provider: Any
    cfg: Any
    server_pid: int
    run: Any  # the ExtractionRun whose models are measured
    batches: Sequence[int]
    sweep_units: int
    timing: dict[str, Any]
    reload_models: bool
    log: Any
    self_pid: int = field(default_factory=os.getpid)
    decode: dict[str, DecodeProfile] = field(default_factory=dict)
    pools: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)  # comp -> class -> inputs
    client_s: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # comp -> class -> [s per unit]
    prepared: dict[str, list[Any]] = field(default_factory=dict)  # class -> VideoInputs, frames and audio decoded

    @property
    def handles(self) -> dict[str, Any]:
        return self.run.handles

    @property
    def by_name(self) -> dict[str, Any]:
        return {c.name: c for c in self.run.components}

    def server_rss(self) -> int:
        return rss_bytes(p.pid for p in process_tree(self.server_pid))


# 1. decode cost and memory per size class; inputs each model component really sends -----------------------


def _decode_class(s: _Session, cls: str, vids: Sequence[tuple[Path, dict[str, Any]]]) -> None:
    """Decode each calibration video of ``cls`` (frames, then audio) and record the class's decode profile."""
    from extraction.components import VideoInput
    from extraction.decode import AUDIO_SAMPLE_RATE, decode_audio, sample_frames

    sm = s.cfg.sampling
    walls, cpus, per_frame, fixed, audio_rate = [], [], [], [], []
    for path, meta in vids:
        v = VideoInput(str(path), meta, sm.fps, sm.max_frames, sm.max_side)
        reset_peaks([s.self_pid])
        rss0 = status_bytes(s.self_pid, "VmRSS")
        c0, t0 = time.process_time(), time.perf_counter()
        fr = sample_frames(str(path), sm.fps, sm.max_frames, sm.max_side)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak = max(0, status_bytes(s.self_pid, "VmHWM") - rss0)
        kept = sum(f.nbytes for f in fr.rgb)
        walls.append(wall / max(fr.n_decoded, 1))
        cpus.append(cpu / max(wall, 1e-9))
        per_frame.append(kept / max(len(fr.rgb), 1))
        fixed.append(max(0, peak - kept))
        t0 = time.perf_counter()
        wav = decode_audio(str(path))
        if wav is not None and len(wav):
            audio_rate.append((time.perf_counter() - t0) / (len(wav) / AUDIO_SAMPLE_RATE))
        v.__dict__["frames"], v.__dict__["audio"] = fr, wav  # cached_property slots: decoded once
        s.prepared.setdefault(cls, []).append(v)
    d = DecodeProfile(seconds_per_decoded_frame=median(walls), cpu_ratio=max(0.05, median(cpus)),
                      fixed_bytes=int(max(fixed)), per_frame_bytes=int(max(per_frame)),
                      audio_seconds_per_s=median(audio_rate) if audio_rate else 0.0)
    s.decode[cls] = d
    s.log(f"decode {cls}: {d.seconds_per_decoded_frame * 1000:.2f} ms/decoded frame, "
          f"cpu x{d.cpu_ratio:.2f}, {d.per_frame_bytes / 2**20:.2f} MiB/sampled frame")


def _capture_class(s: _Session, cls: str) -> None:
    """Run every model component on the decoded videos of ``cls`` through a capturing provider: the inputs they
    send (pooled per component and class for the sweep) and the client's preparation seconds per unit."""
    from extraction.components import ComputeContext
    from extraction.provider import InferStats

    by_name = s.by_name
    for v in s.prepared[cls]:
        fctx = ComputeContext(video=v, params=s.cfg.params("frames"), deps={}, provider=None, model=None,
                              batch_size=1)
        fres = by_name["frames"].compute(fctx)
        deps = {"frames": (fres.arrays, fres.status)}
        for name, h in s.handles.items():
            cap = _Capture(s.provider)
            ctx = ComputeContext(video=v, params=s.cfg.params(name), deps=deps, provider=cap, model=h,
                                 batch_size=max(h.max_batch_size, 1), stats=InferStats())
            t0 = time.perf_counter()
            by_name[name].compute(ctx)
            wall = time.perf_counter() - t0
            if not cap.inputs:
                continue
            units = sum(len(next(iter(x.values()))) for x in cap.inputs)
            s.pools.setdefault(name, {}).setdefault(cls, []).extend(cap.inputs)
            s.client_s.setdefault(name, {}).setdefault(cls, []).append(max(0.0, wall - cap.seconds) / max(units, 1))


# 2. per model: fixed memory, load time, then the batch-size sweep per distinct input shape -------------------


def _unloaded_memory(s: _Session, h: Any, gpu_mem: GpuMemory | None) -> tuple[int, float]:
    """Unload the model, read the memory without it, load it again: (bytes used unloaded, load seconds); (0, 0.0)
    when models are not reloaded. The model is loaded again whatever happens."""
    if not s.reload_models:
        return 0, 0.0
    client = s.provider.client
    try:
        client.unload_model(h.name)
        deadline = time.monotonic() + 60
        while client.is_model_ready(h.name, h.version) and time.monotonic() < deadline:
            time.sleep(0.05)
        while model_processes(s.server_pid, h.name) and time.monotonic() < deadline:
            time.sleep(0.1)  # the stub exits a second or two after the model is reported unloaded
        time.sleep(0.3)
        unloaded_used = gpu_mem.used() if gpu_mem else s.server_rss()
        t0 = time.perf_counter()
        client.load_model(h.name)
        return unloaded_used, time.perf_counter() - t0
    finally:
        if not client.is_model_ready(h.name, h.version):
            client.load_model(h.name)


def _window_memory(s: _Session, gpu_mem: GpuMemory | None):
    """``memory(window)`` for :func:`measure_interleaved`: the peak bytes above the start of the window (GPU:
    sampled device memory; CPU: exact peak RSS of the Triton tree and this process) and the window's result."""
    if gpu_mem:
        def memory(window):
            before = gpu_mem.used()
            top, total = gpu_mem.peak_during(window)
            return max(0, top - before), total
        return memory

    def memory(window):
        procs = [p.pid for p in process_tree(s.server_pid)] + [s.self_pid]
        before = {p: status_bytes(p, "VmRSS") for p in procs}
        reset_peaks(procs)
        total = window()
        return peak_delta(procs, before), total
    return memory


def _stub_cpu(pids: Sequence[int]):
    """Cumulative CPU seconds of the model's stub processes (``cpu()`` for :func:`measure_interleaved`)."""
    return lambda: cpu_seconds(pids)


def _sweep(s: _Session, name: str, h: Any, members: list[str], key: tuple, gpu_mem: GpuMemory | None
           ) -> tuple[list[int], int, list[BatchPoint]]:
    """The batch-size sweep of one model over the pooled inputs of the size classes ``members`` (whose units have
    the tensor shapes ``key``): (unit shape, unit bytes, one measured point per batch size)."""
    caps_by_class = s.pools[name]
    same = [x for cls in members for x in caps_by_class[cls] if all(x[k].shape[1:] == shp for k, _, shp in key)]
    subset = sweep_subset(same, max(s.sweep_units, max(s.batches)))
    shape = list(next(iter(subset.values())).shape[1:])
    unit_bytes = int(sum(v[0].nbytes for v in subset.values()))
    cap = h.max_batch_size or max(s.batches)
    sizes = [x for x in s.batches if x <= cap]

    def send(r: dict[str, Any]) -> None:
        s.provider.infer(h, r, len(next(iter(r.values()))))

    series = {b: (split_requests(subset, b), send) for b in sizes}
    stubs = [] if gpu_mem else model_processes(s.server_pid, h.name)
    measured = measure_interleaved(series, memory=_window_memory(s, gpu_mem), cpu=_stub_cpu(stubs) if stubs else None,
                                   **s.timing)
    points = []
    for b in sizes:
        sec, wins, spread, stable, mem, cpu_req = measured[b]
        mem = max(mem, 2 * b * unit_bytes)  # the request's tensors exist on both sides at least once
        points.append(BatchPoint(batch=b, seconds=round(sec, 6), mem_bytes=int(mem), windows=wins,
                                 spread=spread, stable=stable,
                                 cpu_seconds=round(cpu_req, 6) if cpu_req is not None else None))
        s.log(f"{name:<7} {h.name}:{h.version} {'/'.join(members):>14} batch {b:>3}: "
              f"{sec * 1000:9.2f} ms/request "
              f"({sec / b * 1000:8.2f} ms/unit), peak +{mem / 2**20:7.1f} MiB, {wins} windows"
              + ("" if stable else f", NOT stable (spread {spread:.0%})"))
    return shape, unit_bytes, points


def _measure_model(s: _Session, name: str, h: Any) -> ModelEntry | None:
    """Fixed memory, load time and per-size-class curves of component ``name``'s model (None: it sent nothing)."""
    gpu = h.device == "gpu"
    gpu_mem = GpuMemory(0) if gpu else None
    unloaded_used, load_s = _unloaded_memory(s, h, gpu_mem)
    caps_by_class = s.pools.get(name, {})
    if not caps_by_class:
        return None
    # classes whose units have the same tensor shapes share one measurement over their pooled content
    groups: dict[tuple, list[str]] = {}
    for cls, caps in caps_by_class.items():
        key = tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(caps[0].items()))
        groups.setdefault(key, []).append(cls)
    warm = split_requests(sweep_subset(next(iter(caps_by_class.values())), 1), 1)[0]
    s.provider.infer(h, warm, 1)
    if s.reload_models:
        used = gpu_mem.used() if gpu_mem else s.server_rss()
        fixed_bytes = max(0, used - unloaded_used)
    else:
        fixed_bytes = rss_bytes(model_processes(s.server_pid, h.name))
    classes: dict[str, SizeClassProfile] = {}
    for key, members in groups.items():
        shape, unit_bytes, points = _sweep(s, name, h, members, key, gpu_mem)
        for cls in members:
            classes[cls] = SizeClassProfile(input_shape=shape, unit_bytes=unit_bytes,
                                            client_seconds_per_unit=round(median(s.client_s[name][cls]), 6),
                                            points=[p.model_copy() for p in points])
    comp = s.by_name[name]
    s.log(f"{name:<7} {h.name}:{h.version}: fixed {fixed_bytes / 2**20:.0f} MiB, load {load_s:.2f}s")
    return ModelEntry(component=name, model=h.name, version=h.version, weights_digest=h.used.weights_digest,
                      device_kind="gpu" if gpu else "cpu", unit=comp.unit or "unit", tier=comp.tier,
                      max_batch_size=h.max_batch_size, fixed_bytes=int(fixed_bytes),
                      load_seconds=round(load_s, 3), size_classes=classes)


# 3. whole-video runs: per-video client overhead beyond decode, preparation and requests; how much longer the
# requests take inside a real run than in the sweep; what a reused component costs --------------------------


@dataclass
class _RunTimes:
    overheads: list[float] = field(default_factory=list)
    request_ratios: list[float] = field(default_factory=list)
    reuse: list[float] = field(default_factory=list)


def _whole_video(s: _Session, models: Mapping[str, ModelEntry], cls: str, v: Any, n_class: int, out: _RunTimes
                 ) -> None:
    """Process calibration video ``v`` for real, then again from its own cache; append what it measured."""
    from extraction.runner import ExtractionRun, VideoJob, process_video

    timed = _Capture(s.provider)
    r = ExtractionRun(cfg=s.cfg, out_root=s.run.out_root / "overhead", provider=timed, components=s.run.components,
                      batch_sizes={c: max(h.max_batch_size, 1) for c, h in s.handles.items()}, progress=False)
    r.handles = dict(s.handles)
    t0 = time.perf_counter()
    process_video(r, VideoJob(v, f"calib-{cls}"))
    wall = time.perf_counter() - t0
    t0 = time.perf_counter()  # the same video again: every component is a cache hit
    again = process_video(r, VideoJob(v, f"calib-{cls}-again"))
    hits = sum(e["cache_hit"] for e in again["components"].values())
    if hits:
        out.reuse.append((time.perf_counter() - t0) / hits)
    units_prep = 0.0  # client preparation measured in step 1, per unit, times this video's units
    for c in s.client_s:
        if cls in s.client_s[c]:
            units = sum(len(next(iter(x.values()))) for x in s.pools.get(c, {}).get(cls, [])) / max(n_class, 1)
            units_prep += median(s.client_s[c][cls]) * units
    out.overheads.append(max(0.0, wall - timed.seconds - units_prep))
    comp_of_model = {h.name: c for c, h in s.handles.items()}
    swept = sum(models[comp_of_model[m]].curve(cls).seconds(u) for m, u in timed.calls
                if comp_of_model.get(m) in models)
    if swept > 0:
        out.request_ratios.append(timed.seconds / swept)


def _method(s: _Session, models: Mapping[str, ModelEntry], videos: Videos, quick: bool) -> dict[str, Any]:
    t = s.timing
    return {"statistic": "median of the last 3 window means (seconds per request); windows of all batch sizes "
                         "interleaved, each window whole passes over the same units", "windows_agree_within": 0.10,
            "min_windows": 3, "warmup_requests": t["warmup"], "window_s": t["window_s"],
            "max_windows": t["max_windows"], "batches": list(s.batches),
            "memory": "GPU used memory (sampled)" if any(m.device_kind == "gpu" for m in models.values())
            else "Triton process tree peak RSS (VmHWM after clear_refs) above the loaded model",
            "calibration_videos": {c: [Path(p).name for p, _ in v] for c, v in videos.items()},
            "quick": quick}


def _session(provider: Any, cfg: Any, server_pid: int, batches: Sequence[int], quick: bool, reload_models: bool,
             log) -> _Session:
    from extraction.components import default_components
    from extraction.runner import ExtractionRun

    if quick and tuple(batches) == DEFAULT_BATCHES:
        batches = QUICK_BATCHES
    timing = dict(warmup=1, window_s=0.1, max_windows=4) if quick else dict(warmup=1, window_s=0.5, max_windows=6)
    run = ExtractionRun(cfg=cfg, out_root=Path(tempfile.mkdtemp(prefix="checklist-")), provider=provider,
                        components=default_components(), progress=False)
    run.resolve_models()
    return _Session(provider=provider, cfg=cfg, server_pid=server_pid, run=run, batches=tuple(batches),
                    sweep_units=16 if quick else SWEEP_UNITS, timing=timing, reload_models=reload_models, log=log)


def profile(provider: Any, cfg: Any, server_pid: int, videos: Videos, *, batches: Sequence[int] = DEFAULT_BATCHES,
            quick: bool = False, reload_models: bool = True, log=print) -> Checklist:
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
    hw = detect_hardware()
    triton_version = str(provider.client.get_server_metadata(as_json=True).get("version", "unknown"))
    s = _session(provider, cfg, server_pid, batches, quick, reload_models, log)
    probes = [speed_probe()]
    meter = BackgroundMeter(lambda: [s.self_pid, *(p.pid for p in process_tree(server_pid))]).start()
    for cls, vids in videos.items():
        _decode_class(s, cls, vids)
        _capture_class(s, cls)
    models: dict[str, ModelEntry] = {}
    for name, h in s.handles.items():
        entry = _measure_model(s, name, h)
        if entry is not None:
            models[name] = entry
    times = _RunTimes()
    for cls, vs in s.prepared.items():
        for v in vs:
            _whole_video(s, models, cls, v, len(vs), times)
    shutil.rmtree(s.run.out_root, ignore_errors=True)
    main_rss = rss_bytes([server_pid])
    background = meter.busy_cores()
    probes.append(speed_probe())
    run_factor = max(1.0, median(times.request_ratios)) if times.request_ratios else 1.0
    log(f"requests inside whole-video runs took x{run_factor:.2f} the sweep's time "
        f"(median of {len(times.request_ratios)} videos; the planner scales server times by it)")
    if times.reuse:
        log(f"a component reused from the cache costs {median(times.reuse) * 1000:.2f} ms "
            f"(median of {len(times.reuse)} videos)")
    log(f"speed probe {min(probes) * 1000:.2f} ms (start {probes[0] * 1000:.2f}, end {probes[1] * 1000:.2f})")
    log(f"other processes kept {background:.2f} of {hw.cpu_cores} cores busy while profiling "
        "(CPU times are normalised with it)")
    return Checklist(profile=cfg.profile, hardware=hw, triton_version=triton_version,
                     measured_at=now_iso(precision="seconds"), method=_method(s, models, videos, quick),
                     server_baseline_bytes=int(main_rss),
                     client_overhead_s_per_video=round(median(times.overheads), 4) if times.overheads else 0.0,
                     background_busy_cores=background, speed_probe_s=round(min(probes), 7),
                     request_time_factor=round(run_factor, 4),
                     reuse_s_per_component=round(median(times.reuse), 5) if times.reuse else 0.0,
                     decode=s.decode, models=models)


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
