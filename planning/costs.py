"""What a plan costs, from the checklist's measured curves: server seconds and requests of a component at a batch
size, working and client memory of a request, a video's decode memory, candidate batch sizes. Pure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from planning.checklist import Checklist, ModelEntry
from planning.specs import VideoSpec

BATCH_LADDER: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256)
CLIENT_COPIES = 2  # the client holds a request's input array and its serialised copy


def server_time(entry: ModelEntry, videos: Sequence[VideoSpec], comp: str, b: int) -> tuple[float, int]:
    """Summed request seconds and request count of ``comp`` at batch ``b`` over ``videos``."""
    total, reqs = 0.0, 0
    for v in videos:
        u = int(v.units.get(comp, 0))
        if u <= 0:
            continue
        curve = entry.curve(v.size_class)
        q, r = divmod(u, b)
        total += q * curve.seconds(b) + (curve.seconds(r) if r else 0.0)
        reqs += q + (1 if r else 0)
    return total, reqs


def working_bytes(entry: ModelEntry, classes: Iterable[str], b: int) -> int:
    """Device working memory of one request of ``b`` units (worst size class present)."""
    return max((entry.curve(c).mem_bytes(b) for c in classes), default=0)


def client_bytes(entry: ModelEntry, classes: Iterable[str], b: int) -> int:
    return CLIENT_COPIES * b * max((entry.curve(c).unit_bytes for c in classes), default=0)


def decode_bytes(cl: Checklist, v: VideoSpec) -> int:
    d = cl.decode_for(v.size_class)
    return int(d.fixed_bytes + v.sampled_frames * d.per_frame_bytes + v.audio_s * d.audio_bytes_per_s)


def batch_options(entry: ModelEntry, max_units: int) -> list[int]:
    """Candidate batch sizes: a ladder, the measured sizes and even splits of the largest video."""
    if max_units <= 0:
        return [1]
    measured = [p.batch for c in entry.size_classes.values() for p in c.points]
    cap = max(measured)
    if entry.max_batch_size:
        cap = min(cap, entry.max_batch_size)
    cap = max(1, min(cap, max_units))
    opts = {b for b in (*BATCH_LADDER, *measured) if b <= cap}
    opts |= {max(1, min(cap, math.ceil(max_units / k))) for k in range(1, 5)}
    return sorted(opts)
