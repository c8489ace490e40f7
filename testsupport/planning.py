"""Synthetic checklists, model entries, video specs and cluster nodes for the planner's tests.

Everything here is pure data except :func:`synthetic_checklist`, which stamps made-up costs with the model
signatures a real Triton serves now (so that the checklist is fresh for that server)."""

from __future__ import annotations

from pathlib import Path

from planning.checklist import BatchPoint, Checklist, DecodeProfile, Hardware, ModelEntry, SizeClassProfile
from planning.distributed.cluster_plan import CPU_MEM, GPU_MEM, MIB, NodeReport
from planning.specs import ComponentSpec, Device, VideoSpec

GB = 10**9
MB = 10**6


def entry(component: str, *, per_unit_bytes: float, seconds_per_unit: float, overhead_s: float = 0.0,
          fixed: int = 0, tier: int = 1, kind: str = "gpu", max_batch: int = 64, batches=(1, 2, 4, 8, 16, 32, 64),
          classes=("720p",), sublinear: float = 1.0) -> ModelEntry:
    """A model whose request of b units takes ``overhead_s + seconds_per_unit * b**sublinear`` and holds
    ``per_unit_bytes * b`` above its ``fixed`` memory."""
    pts = [BatchPoint(batch=b, seconds=overhead_s + seconds_per_unit * b**sublinear, mem_bytes=int(per_unit_bytes * b))
           for b in batches if b <= max_batch]
    return ModelEntry(component=component, model=f"{component}_model", version="1", weights_digest="sha256:x",
                      device_kind=kind, unit="frame", tier=tier, max_batch_size=max_batch, fixed_bytes=fixed,
                      load_seconds=2.0, size_classes={c: SizeClassProfile(points=pts) for c in classes})


def checklist(*entries: ModelEntry, decode_s: float = 0.0, decode_bytes: int = 0) -> Checklist:
    return Checklist(profile="test", hardware=Hardware(id="synthetic", cpu_model="x", cpu_cores=2, memory_bytes=0),
                     triton_version="2.51.0", measured_at="2026-01-01T00:00:00Z",
                     decode={c: DecodeProfile(seconds_per_decoded_frame=decode_s, per_frame_bytes=decode_bytes)
                             for c in ("360p", "720p", "1080p")},
                     models={e.component: e for e in entries})


def videos(n: int, frames: int, comps=("od", "sc"), size_class="720p") -> list[VideoSpec]:
    return [VideoSpec(f"v{i}", size_class, dict.fromkeys(comps, frames), decoded_frames=frames, sampled_frames=frames)
            for i in range(n)]


# The frames provider: no model, tier 0 (decoded on the client).
FRAMES = ComponentSpec("frames", uses_frames=True, tier=0)

# Two model components downstream of the frames, and the three as a DAG.
OD = ComponentSpec("od", ("frames",), uses_model=True, uses_frames=True)
SC = ComponentSpec("sc", ("frames",), uses_model=True, uses_frames=True)
COMPS = [FRAMES, OD, SC]


def gpu_checklist() -> Checklist:
    """od holds 3 GB of weights, sc 1 GB; 0.5 GB / 0.25 GB per frame of a request (both measured on a GPU)."""
    return checklist(entry("od", per_unit_bytes=0.5 * GB, seconds_per_unit=0.02, overhead_s=0.01, fixed=3 * GB),
                     entry("sc", per_unit_bytes=0.25 * GB, seconds_per_unit=0.01, overhead_s=0.01, fixed=1 * GB))


def gpu_node(name: str, free_gb: list[float], *, declared_gpu_gb: float | None = None) -> NodeReport:
    """A simulated Ray node with one GPU per ``free_gb`` entry (that much free), 64 GB of RAM over 8 cores, and
    :data:`CPU_MEM`/:data:`GPU_MEM` declared (GPU: the free total unless ``declared_gpu_gb``)."""
    gpus = tuple(Device(f"gpu{i}", "gpu", int(f * GB)) for i, f in enumerate(free_gb))
    declared = declared_gpu_gb if declared_gpu_gb is not None else sum(free_gb)
    return NodeReport(node_id=name * 8, address=f"10.0.0.{len(name)}", hardware_id="synthetic",
                      devices=(Device("cpu", "cpu", 64 * GB, concurrency=8.0), *gpus),
                      resources={"CPU": 8, "GPU": len(gpus), CPU_MEM: 32 * GB / MIB, GPU_MEM: declared * GB / MIB})


UNITS = {"visual": "frame", "faces": "frame", "motion": "frame_pair", "audio": "audio_window", "text": "text"}


def served_handles(url: str) -> dict:
    """component -> the model handle the Triton at ``url`` serves for the fast profile now."""
    from extraction.config import load_profile
    from extraction.provider import TritonModelProvider
    from extraction.runner import ExtractionRun

    run = ExtractionRun(cfg=load_profile("fast"), out_root=Path("."), provider=TritonModelProvider(url),
                        progress=False)
    return run.resolve_models()


def synthetic_checklist(url: str, path: Path, *, per_unit_bytes: int = 100 * MB, digest_of: dict | None = None
                        ) -> Path:
    """Made-up costs (every unit ``per_unit_bytes``, cheap and flat time) for the models the server at ``url``
    serves now, saved to ``path``. Loads are priced at a minute so that the planner never reloads a model to change
    its instances. ``digest_of`` (component -> digest) makes the checklist stale for those components."""
    from planning.checklist import detect_hardware, save_checklist

    entries = {}
    for comp, h in served_handles(url).items():
        pts = [BatchPoint(batch=b, seconds=0.002 + 0.001 * b, mem_bytes=per_unit_bytes * b) for b in (1, 2, 4, 8, 16)]
        entries[comp] = ModelEntry(
            component=comp, model=h.name, version=h.version,
            weights_digest=(digest_of or {}).get(comp, h.used.weights_digest), unit=UNITS[comp],
            tier=0 if comp in ("visual", "text") else 1, max_batch_size=h.max_batch_size, fixed_bytes=10 * MB,
            load_seconds=60.0, size_classes={"360p": SizeClassProfile(points=pts)})
    cl = Checklist(profile="fast", hardware=detect_hardware(gpus=[]), triton_version="test",
                   measured_at="2026-11-24T00:00:00Z",
                   decode={"360p": DecodeProfile(seconds_per_decoded_frame=0.001, per_frame_bytes=50_000)},
                   models=entries)
    return save_checklist(cl, path)
