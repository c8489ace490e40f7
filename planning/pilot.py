"""The pilot: before the rest of a corpus is planned, a few of its videos run one at a time at the plan's batch
sizes, for real (their artifacts are part of the run). Each component's measured time divided by the stage model's
prediction for the same videos is a factor (this machine now, this corpus's content, client work the checklist does
not see) that the planner applies when it plans the rest."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from planning.checklist import Checklist
from planning.inputs import component_specs, video_specs
from planning.planner import predicted_component_seconds
from planning.specs import BatchPlan, Device

PILOT_VIDEOS = 2  # processed one at a time before the rest of the corpus is planned with what they measured
PILOT_MAX_VIDEOS = 8  # large corpora: up to this many (content varies between videos; 1% of the corpus)
PILOT_MIN_VIDEOS = 12  # below this, serialising the pilot costs more than a better plan can win back
# A pilot factor outside this range is clamped (one odd video must not wreck a plan). The top is wide: on a shared
# machine the pilot's measured / predicted is load x content; with two cores of other work audio, faces and
# decoding all measured above 3 (docs/planner.md).
FACTOR_BOUNDS = (0.5, 6.0)


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
                       wall_s: float, weights: Sequence[float] | None = None
                       ) -> tuple[dict[str, float], dict[str, float], float | None]:
    """From the pilot's manifests and the stage model's per-video prediction (same order): measured and predicted
    seconds per component (computed entries only) and the measured seconds per video that no stage models
    (components without a predicted stage, and the run's own work between components); None when every
    component of every pilot video was reused from the cache (nothing was measured).

    ``weights`` (per video, default 1) weigh each video's measured and predicted seconds: a pilot drawn with
    probability proportional to predicted cost (:func:`pick_pilot` with costs) weighs each video by the inverse of
    its cost, so that ``measured / predicted`` estimates the ratio over the whole corpus, not over the sample."""
    measured: dict[str, float] = {}
    pred: dict[str, float] = {}
    unmodelled = in_components = 0.0
    computed_videos = 0
    weights = [1.0] * len(manifests) if weights is None else list(weights)
    for m, per, w in zip(manifests, predicted, weights, strict=True):
        computed = False
        for c, e in m.get("components", {}).items():
            in_components += float(e.get("latency_s", 0.0))
            if e.get("cache_hit") or e.get("status") == "error":
                continue
            computed = True
            if per.get(c, 0.0) > 0:
                measured[c] = measured.get(c, 0.0) + w * float(e["latency_s"])
                pred[c] = pred.get(c, 0.0) + w * per[c]
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
              run_id: str, weights: Sequence[float] | None = None) -> Pilot:
    """Process ``videos`` one at a time at ``plan_``'s batch sizes (for real, into ``run_id``) and compare each
    component's time with what the stage model predicts for the same videos on the plan's devices (``weights``:
    per video, as :func:`pick_pilot` returns them)."""
    from extraction.runner import extract

    run.batch_sizes = dict(plan_.batch_sizes)
    run.plan = {**plan_.to_dict(), "stage": "pilot"}
    summary = extract(run, list(videos), videos_in_parallel=1, run_id=run_id)
    manifests = [json.loads(Path(m).read_text()) for m in summary.manifests]
    specs = video_specs(videos, run.cfg, checklist, components=run.components)
    per_video = predicted_component_seconds(specs, component_specs(run.components), _devices_of(plan_), checklist,
                                            plan_.batch_sizes)
    measured, predicted, overhead = pilot_measurements(manifests, per_video, summary.seconds, weights)
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


def pick_pilot_pps(cached: Sequence[set[str]], k: int, costs: Sequence[float]) -> tuple[list[int], list[float]]:
    """``k`` videos drawn with probability proportional to their predicted cost, and each one's weight.

    Systematic sampling over the videos with nothing cached, sorted by ``costs`` (the stage model's predicted
    seconds per video): the video under each of the points ``(j + 1/2) / k`` of the cumulative cost is picked (a
    video costing more than ``1/k`` of the total can be hit twice; it is picked once and weighs twice). This covers
    the corpus' real distribution of sizes and content where the time goes -- the long and large videos that weigh
    most in a ratio of sums -- instead of its first videos. Weights are ``hits / cost``: the Hansen-Hurwitz
    estimator's inverse inclusion probabilities, normalised to mean 1.

    Returns:
        (indices in corpus order, their weights); the first-``k`` pick with weight 1 when costs are all zero.
    """
    free = [i for i, hits in enumerate(cached) if not hits]
    total = sum(max(0.0, costs[i]) for i in free)
    if k <= 0 or not free:
        return [], []
    if total <= 0 or len(free) <= k:
        picked = free[:k]
        return picked, [1.0] * len(picked)
    order = sorted(free, key=lambda i: (costs[i], i))
    hits: dict[int, int] = {}
    cum, pos = 0.0, 0
    for j in range(k):
        target = (j + 0.5) * total / k
        while pos < len(order) - 1 and cum + max(0.0, costs[order[pos]]) < target:
            cum += max(0.0, costs[order[pos]])
            pos += 1
        hits[order[pos]] = hits.get(order[pos], 0) + 1
    picked = sorted(hits)
    raw = [hits[i] / max(costs[i], 1e-9) for i in picked]
    mean = sum(raw) / len(raw)
    return picked, [w / mean for w in raw]


def merge_summaries(a: Any, b: Any) -> Any:
    """One run summary of two parts of the same run (the pilot, then the rest)."""
    return dataclasses.replace(b, videos=a.videos + b.videos, ok=a.ok + b.ok, failed={**a.failed, **b.failed},
                               cache_hits=a.cache_hits + b.cache_hits, computed=a.computed + b.computed,
                               seconds=round(a.seconds + b.seconds, 2), manifests=[*a.manifests, *b.manifests])
