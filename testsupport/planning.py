"""Synthetic checklists, model entries and video specs for the planner's tests (pure data, no server)."""

from __future__ import annotations

from planning.checklist import BatchPoint, Checklist, DecodeProfile, Hardware, ModelEntry, SizeClassProfile
from planning.specs import ComponentSpec, VideoSpec

GB = 10**9


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
