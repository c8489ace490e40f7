"""Run the extractor over a folder of videos: resolve models once, plan, compute or reuse, record.

For each video and each component (in dependency order) the runner computes the cache key from
(platform_id, video_id, component, config_hash, sampling_policy_version, producer_version, schema_version,
model_signature, dependency signatures). A key already in the cache index is reused (hard-linked into the
new run folder); otherwise the component computes and its artifact is written atomically and indexed. A
``manifest.json`` per video closes the run folder. A run killed midway leaves complete artifacts indexed and
no manifest; running again reuses them. While it runs, a lease (``extraction.lease``) tells the retention GC which
run folders and cached videos it holds.

Triton problems abort the whole run (``triton_unavailable`` / ``model_not_found``); a video that cannot be
decoded is recorded as ``video_decode_failed`` while the others complete.
"""

from __future__ import annotations

import json
import platform
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from common.clock import now_iso
from common.errors import ConfigError, ModelNotFound, TrendflowError, TritonUnavailable, VideoDecodeFailed
from common.gpu import GpuPeakSampler, gpu_peak_sampler
from common.hashing import json_hash
from extraction.artifacts import lookup_cache, read_artifact, record_cache, run_dir, write_artifact, write_manifest
from extraction.backend import ArtifactNotFound, backend_for
from extraction.components import Component, ComputeContext, VideoInput, default_components
from extraction.components.base import ComponentResult, model_signature
from extraction.config import ExtractionConfig
from extraction.decode import SAMPLING_POLICY_VERSION
from extraction.lease import RunLease
from extraction.provider import InferStats, ModelHandle, ModelProvider
from extraction.schemas import REQUIRED_SIDECAR_KEYS, ArtifactMeta

FATAL = (TritonUnavailable, ModelNotFound)
DEFAULT_BATCH = 8


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def peak_rss_bytes() -> int:
    """This process' peak resident set size (Linux reports ``ru_maxrss`` in KiB)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def runtime_environment() -> dict[str, str]:
    """Versions that can change numbers; hashed into every artifact's ``runtime_env_hash``."""
    import av
    import cv2

    from extraction import __version__

    return {"python": platform.python_version(), "numpy": np.__version__, "av": av.__version__,
            "opencv": cv2.__version__, "machine": platform.machine(), "extraction": __version__}


def discover_videos(videos_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every ``*.mp4`` in ``videos_dir`` with its sidecar ``<stem>.json`` (missing sidecar -> error)."""
    out = []
    for mp4 in sorted(Path(videos_dir).glob("*.mp4")):
        side = mp4.with_suffix(".json")
        if not side.exists():
            raise TrendflowError(f"{mp4.name}: sidecar metadata {side.name} is missing", code="metadata_missing")
        meta = read_sidecar(side)
        for k in REQUIRED_SIDECAR_KEYS:
            if k not in meta:
                raise TrendflowError(f"{side.name}: required key {k!r} is missing", code="metadata_missing")
        out.append((mp4, meta))
    return out


MAX_TEXT_CHARS = 20_000  # title/description: far above any platform's limit (YouTube: 100 / 5,000 characters)
_NUMBERS = ("video_age_hours_at_snapshot1", "views_snapshot1", "likes_snapshot1")


def read_sidecar(side: Path) -> dict[str, Any]:
    """A sidecar's metadata, or ``metadata_invalid`` naming the file and every wrong key (before any work)."""
    try:
        meta = json.loads(side.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TrendflowError(f"{side.name}: not UTF-8 JSON ({type(exc).__name__}: {exc})"[:400],
                             code="metadata_invalid") from None
    if not isinstance(meta, dict):
        raise TrendflowError(f"{side.name}: the sidecar is a JSON object", code="metadata_invalid")
    problems = [f"{k} must be a non-empty string or integer" for k in ("platform_id", "video_id")
                if k in meta and (isinstance(meta[k], bool) or not isinstance(meta[k], str | int) or meta[k] == "")]
    problems += [f"{k} must be a number or null" for k in _NUMBERS
                 if meta.get(k) is not None and (isinstance(meta[k], bool) or not isinstance(meta[k], int | float))]
    problems += [f"{k} must be a string of at most {MAX_TEXT_CHARS} characters" for k in ("title", "description")
                 if meta.get(k) is not None and (not isinstance(meta[k], str) or len(meta[k]) > MAX_TEXT_CHARS)]
    if meta.get("published_at") is not None and not isinstance(meta["published_at"], str):
        problems.append("published_at must be an ISO-8601 string")
    if meta.get("channel") is not None and not isinstance(meta["channel"], dict):
        problems.append("channel must be an object")
    if problems:
        raise TrendflowError(f"{side.name}: {'; '.join(problems)}", code="metadata_invalid")
    return meta


@dataclass
class VideoJob:
    video: VideoInput
    run_id: str


@dataclass
class ExtractionRun:
    """Everything one invocation needs; built once, shared by all videos."""

    cfg: ExtractionConfig
    out_root: Path
    provider: ModelProvider
    components: list[Component] = field(default_factory=default_components)
    batch_sizes: dict[str, int] = field(default_factory=dict)
    plan: dict[str, Any] | None = None
    handles: dict[str, ModelHandle] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=runtime_environment)
    progress: bool = True
    # Samples GPU memory while :func:`extract` runs (each component's peak goes into the manifest); None without
    # a GPU, and the manifests then say null, not 0.
    gpu: GpuPeakSampler | None = None

    def __post_init__(self) -> None:
        self.env_hash = json_hash(self.env)

    def resolve_models(self) -> dict[str, ModelHandle]:
        """Check every model this run needs, once, before any work (fail fast): first the mapping against what
        each component calls, then each model on the server."""
        wanted: dict[str, tuple[Any, str]] = {}
        for comp in self.components:
            if comp.uses_model:
                ref = self.cfg.resolved_models.get(comp.name)
                if ref is None:
                    raise ModelNotFound(f"profile {self.cfg.profile!r} maps no model for component {comp.name!r}")
                model = self.cfg.params(comp.name).get("model") or ref.triton_model
                if comp.models and model not in comp.models:
                    raise ConfigError(f"profile {self.cfg.profile!r} maps component {comp.name!r} to model "
                                      f"{model!r}; the component calls one of {list(comp.models)}")
                wanted[comp.name] = (ref, model)
        for name, (ref, model) in wanted.items():
            self.handles[name] = self.provider.get_model(ref.triton_model, ref.version, logical=model)
        return self.handles

    def video_input(self, path: str | Path, metadata: dict[str, Any]) -> VideoInput:
        """A video as this run samples it (the profile's fps, frame cap and size cap)."""
        s = self.cfg.sampling
        return VideoInput(str(path), dict(metadata), s.fps, s.max_frames, s.max_side)

    def batch_size(self, comp: Component) -> int:
        h = self.handles.get(comp.name)
        want = self.batch_sizes.get(comp.name, DEFAULT_BATCH)
        return max(1, min(want, h.max_batch_size)) if h and h.max_batch_size else want


def cache_key(platform_id: str, video_id: str, component: str, config_hash: str, sampling_policy_version: str,
              producer_version: str, schema_version: str, model_signature: str,
              dependencies: dict[str, str]) -> str:
    """The artifact's cache key: a hash of every input that can change its content. ``dependencies`` maps each
    input component to its own key (its signature), so a change anywhere upstream changes every key below it."""
    return json_hash({"platform_id": platform_id, "video_id": video_id, "component": component,
                        "config_hash": config_hash, "sampling_policy_version": sampling_policy_version,
                        "producer_version": producer_version, "schema_version": schema_version,
                        "model_signature": model_signature, "dependencies": dependencies}, n=32)


def component_key(run: ExtractionRun, video: VideoInput, comp: Component, dep_keys: dict[str, str]
                  ) -> tuple[str, str, str]:
    """``(cache key, config hash, model signature)`` of ``comp`` for ``video`` given its dependencies' keys."""
    handle = run.handles.get(comp.name)
    msig = model_signature([handle.used] if handle else [])
    config_hash = json_hash(comp.config_for_key(video, run.cfg.params(comp.name)))
    key = cache_key(video.platform_id, video.video_id, comp.name, config_hash,
                    SAMPLING_POLICY_VERSION if comp.uses_frames else "n/a", comp.producer_version,
                    comp.schema_version, msig, dep_keys)
    return key, config_hash, msig


def cached_components(run: ExtractionRun, video: VideoInput) -> set[str]:
    """Components whose artifact for ``video`` is in ``run``'s cache under the key this run would compute (the
    models resolved now, the config, every upstream key): what :func:`process_video` will reuse, known before any
    work (nothing decoded). Call after ``run.resolve_models()``."""
    keys: dict[str, str] = {}
    hits = set()
    for comp in run.components:
        if any(d not in keys for d in comp.dependencies):
            continue
        keys[comp.name] = component_key(run, video, comp, {d: keys[d] for d in comp.dependencies})[0]
        if lookup_cache(run.out_root, video.platform_id, video.video_id, keys[comp.name], verify=False) is not None:
            hits.add(comp.name)
    return hits


@dataclass(frozen=True)
class Produced:
    """What one component left for the components downstream of it in this video."""

    key: str  # its cache key ("" when it failed): the signature its dependants hash
    status: str  # ok | empty | degraded | error
    path: Path | None  # its artifact in this run's folder (None when it failed)


FAILED = Produced("", "error", None)


def _new_manifest(run: ExtractionRun, job: VideoJob) -> dict[str, Any]:
    video, cfg = job.video, run.cfg
    return {
        "run_id": job.run_id, "platform_id": video.platform_id, "video_id": video.video_id,
        "video_path": str(video.path), "profile": cfg.profile, "started_at": now_iso(),
        "metadata": video.metadata, "config_hash": json_hash(cfg.model_dump()), "seed": cfg.seed,
        "sampling_policy_version": SAMPLING_POLICY_VERSION, "runtime_env": run.env, "runtime_env_hash": run.env_hash,
        "resolved_models": {c: {"model": h.name, "version": h.version, "weights_digest": h.used.weights_digest}
                            for c, h in run.handles.items()},
        "plan": run.plan, "components": {},
    }


def _new_entry(run: ExtractionRun, comp: Component) -> dict[str, Any]:
    handle = run.handles.get(comp.name)
    return {"status": "error", "cache_hit": False, "source_artifact": None, "artifact": None,
            "signature": None, "cache_key": None, "batch_size": 0, "latency_s": 0.0,
            "warnings": [], "error_code": None, "error_message": None, "retry_count": 0,
            "model_signature": model_signature([handle.used] if handle else [])}


class _VideoState:
    """The components produced so far for one video, with their arrays loaded on first use."""

    def __init__(self) -> None:
        self.produced: dict[str, Produced] = {}
        self.loaded: dict[str, dict[str, np.ndarray]] = {}

    def arrays_of(self, dep: str) -> dict[str, np.ndarray]:
        if dep not in self.loaded:
            self.loaded[dep] = read_artifact(self.produced[dep].path)[0]
        return self.loaded[dep]


def _reuse(run: ExtractionRun, comp: Component, state: _VideoState, hit: Path, dst: Path,
           entry: dict[str, Any]) -> Produced | None:
    """Hard-link the cached artifact ``hit`` into this run's folder and record it as a cache hit; None when a GC
    removed it between the lookup and the link (no lease held it), so the component is computed instead."""
    if hit.resolve() != dst.resolve():
        store = backend_for(run.out_root)
        try:
            store.link_or_copy(store.key_of(hit), store.key_of(dst))
        except ArtifactNotFound:
            return None
    state.loaded[comp.name], meta = read_artifact(dst)
    entry.update(status=meta.status, cache_hit=True, artifact=dst.name, batch_size=meta.batch_size,
                 source_artifact=str(hit.relative_to(run.out_root)), warnings=meta.warnings)
    return Produced(entry["cache_key"], meta.status, dst)


def _compute(run: ExtractionRun, job: VideoJob, comp: Component, state: _VideoState, dst: Path,
             keys: tuple[str, str, str], entry: dict[str, Any], manifest: dict[str, Any]) -> Produced:
    """Compute ``comp``, write its artifact atomically and index it; a component error is recorded in
    ``entry`` (and a decode failure in ``manifest``) while Triton failures abort the run."""
    video, cfg = job.video, run.cfg
    handle = run.handles.get(comp.name)
    used = [handle.used] if handle else []
    deps_sig = {d: state.produced[d].key for d in comp.dependencies}
    key, config_hash, msig = keys
    stats = InferStats()
    ctx = ComputeContext(video=video, params=cfg.params(comp.name),
                         deps={d: (state.arrays_of(d), state.produced[d].status) for d in comp.dependencies},
                         provider=run.provider, model=handle, batch_size=run.batch_size(comp), stats=stats)
    try:
        result: ComponentResult = comp.compute(ctx)
    except FATAL:
        raise
    except VideoDecodeFailed as exc:
        entry.update(error_code=exc.code, error_message=exc.message)
        manifest.update(status="error", error_code=exc.code, error_message=exc.message)
        return FAILED
    except TrendflowError as exc:
        entry.update(error_code=exc.code, error_message=exc.message, retry_count=stats.retries)
        return FAILED
    meta = ArtifactMeta(
        platform_id=video.platform_id, video_id=video.video_id, run_id=job.run_id, component=comp.name,
        producer_version=comp.producer_version, schema_version=comp.schema_version, status=result.status,
        models_used=used, model_signature=msig, dependencies=deps_sig, batch_size=stats.max_batch_sent,
        device=handle.device if handle else "cpu", precision=handle.used.precision if handle else "fp32",
        coverage=float(np.clip(result.coverage, 0, 1)), config_hash=config_hash,
        sampling_policy_version=SAMPLING_POLICY_VERSION if comp.uses_frames else "n/a", seed=cfg.seed,
        runtime_env_hash=run.env_hash, cache_key=key, warnings=result.warnings, retry_count=stats.retries,
        created_at=now_iso())
    write_artifact(dst, result.arrays, meta, root=run.out_root)
    record_cache(run.out_root, video.platform_id, video.video_id, key, dst)
    state.loaded[comp.name] = {k: np.asarray(v) for k, v in result.arrays.items()}
    entry.update(status=result.status, artifact=dst.name, batch_size=stats.max_batch_sent,
                 warnings=result.warnings, retry_count=stats.retries)
    return Produced(key, result.status, dst)


def _one_component(run: ExtractionRun, job: VideoJob, comp: Component, state: _VideoState, rdir: Path,
                   entry: dict[str, Any], manifest: dict[str, Any], t0: float) -> Produced:
    """One component of one video: its dependencies checked, then reused from the cache or computed."""
    video = job.video
    missing = [d for d in comp.dependencies if d not in state.produced or state.produced[d].path is None]
    if missing:
        entry.update(error_code="dependency_missing",
                     error_message=f"{comp.name} needs {missing}, whose artifacts are absent")
        produced = FAILED
    else:
        keys = component_key(run, video, comp, {d: state.produced[d].key for d in comp.dependencies})
        entry.update(cache_key=keys[0], signature=keys[0])
        dst = rdir / f"{comp.name}.npz"
        hit = lookup_cache(run.out_root, video.platform_id, video.video_id, keys[0])
        produced = _reuse(run, comp, state, hit, dst, entry) if hit is not None else None
        if produced is None:
            produced = _compute(run, job, comp, state, dst, keys, entry, manifest)
        if produced.path is not None:
            entry["latency_s"] = round(time.perf_counter() - t0, 4)
    return produced


def process_video(run: ExtractionRun, job: VideoJob, on_component=None) -> dict[str, Any]:
    """Compute or reuse every component for one video (in dependency order) and write its manifest.

    Returns the manifest (the JSON document written to the run folder)."""
    video = job.video
    rdir = run_dir(run.out_root, video.platform_id, video.video_id, job.run_id)
    rdir.mkdir(parents=True, exist_ok=True)
    manifest = _new_manifest(run, job)
    state = _VideoState()
    for comp in run.components:
        t0 = time.perf_counter()
        entry = manifest["components"][comp.name] = _new_entry(run, comp)
        with run.gpu.window() if run.gpu is not None else nullcontext() as gpu_window:
            produced = _one_component(run, job, comp, state, rdir, entry, manifest, t0)
        entry["gpu_peak_bytes"] = gpu_window.peak if gpu_window is not None else None
        state.produced[comp.name] = produced
        if on_component:  # progress: every component counts once, computed, reused or failed
            on_component(comp.name)
    manifest.setdefault("status", "ok" if all(e["status"] != "error" for e in manifest["components"].values())
                        else "partial")
    manifest["finished_at"] = now_iso()
    # For the observability store (throughput, peak memory vs budget): frames this run decoded (None when every
    # frame-based component was reused) and this process' peak RSS so far.
    frames = video.__dict__.get("frames")
    manifest["frames_sampled"] = len(frames.rgb) if frames is not None else None
    manifest["peak_rss_bytes"] = peak_rss_bytes()
    # GPU memory in use (all GPUs, device-wide) at the video's busiest component, and the GPUs' total: null
    # without a GPU.
    peaks = [e["gpu_peak_bytes"] for e in manifest["components"].values() if e.get("gpu_peak_bytes") is not None]
    manifest["gpu_peak_bytes"] = max(peaks) if peaks else None
    manifest["gpu_total_bytes"] = run.gpu.total_bytes if run.gpu is not None else None
    write_manifest(rdir, manifest)
    return manifest


@dataclass
class RunSummary:
    run_id: str
    videos: int
    ok: int
    failed: dict[str, str]
    cache_hits: int
    computed: int
    seconds: float
    manifests: list[Path]
    plan: dict[str, Any] | None

    @classmethod
    def from_manifests(cls, run: ExtractionRun, run_id: str, manifests: list[dict[str, Any]], videos: int,
                       seconds: float) -> RunSummary:
        """The roll-up of one run's video manifests (counts of failures, cache hits and computed components)."""
        comps = [e for m in manifests for e in m["components"].values()]
        failed = {m["video_id"]: m.get("error_code") or "partial" for m in manifests if m["status"] != "ok"}
        return cls(run_id=run_id, videos=videos, ok=len(manifests) - len(failed), failed=failed,
                   cache_hits=sum(e["cache_hit"] for e in comps),
                   computed=sum(not e["cache_hit"] and e["artifact"] is not None for e in comps),
                   seconds=round(seconds, 2),
                   manifests=[run_dir(run.out_root, m["platform_id"], m["video_id"], run_id) / "manifest.json"
                              for m in manifests],
                   plan=run.plan)

    def to_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["manifests"] = [str(p) for p in self.manifests]
        return d


def extract(run: ExtractionRun, videos: list[tuple[Path, dict[str, Any]]], videos_in_parallel: int = 1,
            run_id: str | None = None) -> RunSummary:
    """Process ``videos`` under ``run``; ``videos_in_parallel`` threads share the Triton client."""
    from tqdm.auto import tqdm

    run_id = run_id or new_run_id()
    t0 = time.perf_counter()
    run.resolve_models()
    jobs = [VideoJob(run.video_input(p, meta), run_id) for p, meta in videos]
    manifests: list[dict[str, Any]] = []
    lock = threading.Lock()
    bar = tqdm(total=len(jobs) * len(run.components), desc=f"extract {run_id}", unit="comp",
               disable=not run.progress, file=sys.stderr)
    vbar = tqdm(total=len(jobs), desc="videos", unit="video", disable=not run.progress, file=sys.stderr)

    def one(job: VideoJob) -> dict[str, Any]:
        def tick(name: str) -> None:
            with lock:
                bar.update(1)
                bar.set_postfix_str(f"{job.video.video_id}:{name}")
        try:
            m = process_video(run, job, on_component=tick)
        finally:
            job.video.release()  # the job list outlives the video: its decoded frames must not
        with lock:
            vbar.update(1)
        return m

    # The lease tells a concurrent retention GC which run folders and cached videos this run holds.
    lease = RunLease(run.out_root, run_id, [(j.video.platform_id, j.video.video_id) for j in jobs])
    own_sampler = run.gpu is None
    if own_sampler:
        run.gpu = gpu_peak_sampler()
        if run.gpu is not None:
            run.gpu.start()
    try:
        with lease:
            if videos_in_parallel <= 1:
                manifests = [one(j) for j in jobs]
            else:
                with ThreadPoolExecutor(max_workers=videos_in_parallel) as pool:
                    manifests = list(pool.map(one, jobs))
    finally:
        bar.close()
        vbar.close()
        if own_sampler and run.gpu is not None:
            run.gpu.stop()
            run.gpu = None
    return RunSummary.from_manifests(run, run_id, manifests, len(jobs), time.perf_counter() - t0)
