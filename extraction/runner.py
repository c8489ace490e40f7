"""Run the extractor over a folder of videos: resolve models once, plan, compute or reuse, record.

For each video and each component (in dependency order) the runner computes the cache key from
(platform_id, video_id, component, config_hash, sampling_policy_version, producer_version, schema_version,
model_signature, dependency signatures). A key already in the cache index is reused (hard-linked into the
new run folder); otherwise the component computes and its artifact is written atomically and indexed. A
``manifest.json`` per video closes the run folder. A run killed midway leaves complete artifacts indexed and
no manifest; running again reuses them.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from common.clock import now_iso
from common.errors import ConfigError, ModelNotFound, TrendflowError, TritonUnavailable, VideoDecodeFailed
from common.fsio import atomic_write_json, link_or_copy
from common.hashing import json_hash
from extraction.artifacts import lookup_cache, read_artifact, record_cache, run_dir, write_artifact
from extraction.components import Component, ComputeContext, VideoInput, default_components
from extraction.components.base import ComponentResult, model_signature
from extraction.config import ExtractionConfig
from extraction.decode import SAMPLING_POLICY_VERSION
from extraction.provider import InferStats, ModelHandle, ModelProvider
from extraction.schemas import ArtifactMeta

FATAL = (TritonUnavailable, ModelNotFound)
DEFAULT_BATCH = 8


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


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
        for k in ("platform_id", "video_id", "published_at"):
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


def process_video(run: ExtractionRun, job: VideoJob, on_component=None) -> dict[str, Any]:
    """Compute or reuse every component for one video and write its manifest. Returns the manifest."""
    video, cfg = job.video, run.cfg
    rdir = run_dir(run.out_root, video.platform_id, video.video_id, job.run_id)
    rdir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "run_id": job.run_id, "platform_id": video.platform_id, "video_id": video.video_id,
        "video_path": str(video.path), "profile": cfg.profile, "started_at": now_iso(),
        "metadata": video.metadata, "config_hash": json_hash(cfg.model_dump()), "seed": cfg.seed,
        "sampling_policy_version": SAMPLING_POLICY_VERSION, "runtime_env": run.env, "runtime_env_hash": run.env_hash,
        "resolved_models": {c: {"model": h.name, "version": h.version, "weights_digest": h.used.weights_digest}
                            for c, h in run.handles.items()},
        "plan": run.plan, "components": {},
    }
    produced: dict[str, tuple[str, str, Path | None]] = {}  # comp -> (cache_key, status, artifact path)
    loaded: dict[str, dict[str, np.ndarray]] = {}

    def arrays_of(dep: str) -> dict[str, np.ndarray]:
        if dep not in loaded:
            loaded[dep] = read_artifact(produced[dep][2])[0]
        return loaded[dep]

    def done(name: str) -> None:  # progress: every component counts once, computed, reused or failed
        if on_component:
            on_component(name)

    for comp in run.components:
        t0 = time.perf_counter()
        params = cfg.params(comp.name)
        handle = run.handles.get(comp.name)
        used = [handle.used] if handle else []
        entry: dict[str, Any] = {"status": "error", "cache_hit": False, "source_artifact": None, "artifact": None,
                                 "signature": None, "cache_key": None, "batch_size": 0, "latency_s": 0.0,
                                 "warnings": [], "error_code": None, "error_message": None, "retry_count": 0,
                                 "model_signature": model_signature(used)}
        manifest["components"][comp.name] = entry
        missing = [d for d in comp.dependencies if d not in produced or produced[d][2] is None]
        if missing:
            entry.update(error_code="dependency_missing",
                         error_message=f"{comp.name} needs {missing}, whose artifacts are absent")
            produced[comp.name] = ("", "error", None)
            done(comp.name)
            continue
        deps_sig = {d: produced[d][0] for d in comp.dependencies}
        key, config_hash, msig = component_key(run, video, comp, deps_sig)
        entry.update(cache_key=key, signature=key)
        dst = rdir / f"{comp.name}.npz"
        hit = lookup_cache(run.out_root, video.platform_id, video.video_id, key)
        if hit is not None:
            if hit.resolve() != dst.resolve():
                link_or_copy(hit, dst)
            arrays, meta = read_artifact(dst)
            loaded[comp.name] = arrays
            entry.update(status=meta.status, cache_hit=True, artifact=dst.name, batch_size=meta.batch_size,
                         source_artifact=str(hit.relative_to(run.out_root)), warnings=meta.warnings,
                         latency_s=round(time.perf_counter() - t0, 4))
            produced[comp.name] = (key, meta.status, dst)
            done(comp.name)
            continue
        stats = InferStats()
        ctx = ComputeContext(video=video, params=params,
                             deps={d: (arrays_of(d), produced[d][1]) for d in comp.dependencies},
                             provider=run.provider, model=handle, batch_size=run.batch_size(comp), stats=stats)
        try:
            result: ComponentResult = comp.compute(ctx)
        except FATAL:
            raise
        except VideoDecodeFailed as exc:
            entry.update(error_code=exc.code, error_message=exc.message)
            manifest.update(status="error", error_code=exc.code, error_message=exc.message)
            produced[comp.name] = ("", "error", None)
            done(comp.name)
            continue
        except TrendflowError as exc:
            entry.update(error_code=exc.code, error_message=exc.message, retry_count=stats.retries)
            produced[comp.name] = ("", "error", None)
            done(comp.name)
            continue
        meta = ArtifactMeta(
            platform_id=video.platform_id, video_id=video.video_id, run_id=job.run_id, component=comp.name,
            producer_version=comp.producer_version, schema_version=comp.schema_version, status=result.status,
            models_used=used, model_signature=msig, dependencies=deps_sig, batch_size=stats.max_batch_sent,
            device=handle.device if handle else "cpu", precision=handle.used.precision if handle else "fp32",
            coverage=float(np.clip(result.coverage, 0, 1)), config_hash=config_hash,
            sampling_policy_version=SAMPLING_POLICY_VERSION if comp.uses_frames else "n/a", seed=cfg.seed,
            runtime_env_hash=run.env_hash, cache_key=key, warnings=result.warnings, retry_count=stats.retries,
            created_at=now_iso())
        write_artifact(dst, result.arrays, meta)
        record_cache(run.out_root, video.platform_id, video.video_id, key, dst)
        loaded[comp.name] = {k: np.asarray(v) for k, v in result.arrays.items()}
        produced[comp.name] = (key, result.status, dst)
        entry.update(status=result.status, artifact=dst.name, batch_size=stats.max_batch_sent,
                     warnings=result.warnings, retry_count=stats.retries,
                     latency_s=round(time.perf_counter() - t0, 4))
        done(comp.name)
    manifest.setdefault("status", "ok" if all(e["status"] != "error" for e in manifest["components"].values())
                        else "partial")
    manifest["finished_at"] = now_iso()
    atomic_write_json(rdir / "manifest.json", manifest)
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
    s = run.cfg.sampling
    jobs = [VideoJob(VideoInput(str(p), meta, s.fps, s.max_frames, s.max_side), run_id) for p, meta in videos]
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

    try:
        if videos_in_parallel <= 1:
            manifests = [one(j) for j in jobs]
        else:
            with ThreadPoolExecutor(max_workers=videos_in_parallel) as pool:
                manifests = list(pool.map(one, jobs))
    finally:
        bar.close()
        vbar.close()
    comps = [e for m in manifests for e in m["components"].values()]
    failed = {m["video_id"]: m.get("error_code") or "partial" for m in manifests if m["status"] != "ok"}
    return RunSummary(
        run_id=run_id, videos=len(jobs), ok=len(jobs) - len(failed), failed=failed,
        cache_hits=sum(e["cache_hit"] for e in comps), computed=sum(not e["cache_hit"] and e["artifact"] is not None
                                                                    for e in comps),
        seconds=round(time.perf_counter() - t0, 2),
        manifests=[run_dir(run.out_root, m["platform_id"], m["video_id"], run_id) / "manifest.json"
                   for m in manifests],
        plan=run.plan)
