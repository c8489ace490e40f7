"""The pilot on a cluster: the nodes measure a few of their own videos, then the rest is re-planned.

The local executor's pilot (:mod:`planning.pilot`) calibrates the stage model on this machine and this corpus. A
cluster needs it on its nodes: a node's checklist was measured on its hardware type, not on the node as it is now
(a node may get fewer cores than the machine the checklist saw, or share them with Ray's own processes), and the
corpus is new to it. So every node with at least :data:`~planning.pilot.PILOT_MIN_VIDEOS` videos in the first plan
runs :func:`~planning.pilot.pilot_size` of them (drawn with probability proportional to their predicted cost on
that node) one at a time on one lane, all nodes at once, after one warm-up video (its cheapest; not measured: a
node's first video pays its Triton's lazy start-up). Measured / predicted seconds per component, pooled over the
nodes of one hardware type, are their time factors; their unmodelled seconds per video, their overhead. The rest
of the corpus is planned again with them (:func:`~planning.distributed.cluster_plan.plan_cluster`). Nodes with
fewer videos plan the rest from their checklist alone.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from planning.checklist import Checklist
from planning.distributed.cluster_plan import ClusterPlan
from planning.pilot import pick_pilot_pps, pilot_factors, pilot_measurements, pilot_size
from planning.planner import predicted_component_seconds
from planning.specs import ComponentSpec, VideoSpec


@dataclasses.dataclass
class NodePilot:
    """One node's pilot: its videos (corpus indices), their weights, and what they measured."""

    videos: list[int]
    weights: list[float]
    warmup: int | None = None  # run first, not measured: a node's first video pays its Triton's lazy start-up
    seconds: float = 0.0
    measured: dict[str, float] = dataclasses.field(default_factory=dict)
    predicted: dict[str, float] = dataclasses.field(default_factory=dict)
    factors: dict[str, float] = dataclasses.field(default_factory=dict)
    video_overhead_s: float | None = None

    @property
    def queue(self) -> list[int]:
        """The videos the node runs in its pilot, in order."""
        return ([self.warmup] if self.warmup is not None else []) + self.videos

    def record(self, video_ids: Sequence[str]) -> dict[str, Any]:
        return {"pilot_videos": list(video_ids), "pilot_seconds": round(self.seconds, 3),
                "pilot_measured_s": {c: round(x, 4) for c, x in self.measured.items()},
                "pilot_predicted_s": {c: round(x, 4) for c, x in self.predicted.items()}}


def node_component_seconds(cp: ClusterPlan, node: str, idx: Sequence[int], specs: Sequence[VideoSpec],
                           components: Sequence[ComponentSpec], checklist: Checklist) -> list[dict[str, float]]:
    """The stage model's seconds per component of the videos ``idx`` on ``node``, at its planned batch sizes."""
    p = cp.nodes[node]
    return predicted_component_seconds([specs[i] for i in idx], components, list(p.node.devices), checklist,
                                       p.plan.batch_sizes)


def pick_node_pilots(cp: ClusterPlan, specs: Sequence[VideoSpec], cached: Sequence[set[str]],
                     components: Sequence[ComponentSpec], checklists: Mapping[str, Checklist],
                     per_node: int | None = None) -> dict[str, NodePilot]:
    """Per node, its pilot videos from its own share of ``cp`` (``per_node`` None: :func:`pilot_size` of the
    share, so none below ``PILOT_MIN_VIDEOS``; 0: no pilot). Videos whose components are all cached are never
    picked. Pure."""
    out: dict[str, NodePilot] = {}
    for n, p in cp.nodes.items():
        if p.plan is None:
            continue
        k = pilot_size(len(p.videos)) if per_node is None else min(per_node, len(p.videos))
        if k <= 0:
            continue
        costs = [sum(v.values()) for v in node_component_seconds(cp, n, p.videos, specs, components,
                                                                 checklists[p.node.hardware_id])]
        picked, weights = pick_pilot_pps([cached[i] for i in p.videos], k, costs)
        if picked:
            others = [j for j in range(len(p.videos)) if j not in picked and not cached[p.videos[j]]]
            warm = min(others, key=lambda j: (costs[j], j)) if others else None
            out[n] = NodePilot(videos=[p.videos[j] for j in picked], weights=list(weights),
                               warmup=p.videos[warm] if warm is not None else None)
    return out


def measure_node_pilots(pilots: Mapping[str, NodePilot], results: Mapping[int, Any], seconds: Mapping[int, float],
                        cp: ClusterPlan, specs: Sequence[VideoSpec], components: Sequence[ComponentSpec],
                        checklists: Mapping[str, Checklist]) -> None:
    """Fill each node's pilot from its videos that it extracted itself (``results``: video -> ``VideoResult``
    with the manifest path; ``seconds``: video -> the driver's wall seconds for it, dispatch included)."""
    for n, pilot in pilots.items():
        mine = [(i, w) for i, w in zip(pilot.videos, pilot.weights, strict=True)
                if i in results and results[i].node_id == n and results[i].manifest]
        if not mine:
            continue
        idx = [i for i, _ in mine]
        manifests = [json.loads(Path(results[i].manifest).read_text()) for i in idx]
        per_video = node_component_seconds(cp, n, idx, specs, components, checklists[cp.nodes[n].node.hardware_id])
        wall = sum(seconds[i] for i in idx)
        measured, predicted, overhead = pilot_measurements(manifests, per_video, wall, [w for _, w in mine])
        pilot.seconds, pilot.measured, pilot.predicted, pilot.video_overhead_s = wall, measured, predicted, overhead
    # Nodes of one hardware type pool their pilots: content varies far more between videos than speed between
    # nodes of one type, and a node's few pilot videos are too few for content (two nodes' face factors from
    # two videos each: x4.2 and x1.8 on the same corpus). A node's own speed is left to work stealing.
    by_hw: dict[str, list[NodePilot]] = {}
    for n, pilot in pilots.items():
        by_hw.setdefault(cp.nodes[n].node.hardware_id, []).append(pilot)
    for group in by_hw.values():
        measured = {c: sum(p.measured.get(c, 0.0) for p in group) for c in {c for p in group for c in p.measured}}
        predicted = {c: sum(p.predicted.get(c, 0.0) for p in group) for c in measured}
        overheads = [p.video_overhead_s for p in group if p.video_overhead_s is not None]
        for p in group:
            if p.measured:
                p.factors = pilot_factors(measured, predicted)
                p.video_overhead_s = sum(overheads) / len(overheads)
