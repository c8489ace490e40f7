"""Plan a corpus over several nodes: the single-node planner per node, videos spread by predicted cost (pure).

Each node reports its devices (CPU RAM and every GPU with the memory free now), its hardware id (which picks its
checklist) and the Ray resources it declares. Ray schedules by declared resources, never by GPU memory
(ray-project/ray#26929), so every node declares its memory budget as custom resources -- :data:`CPU_MEM` and, on
GPU nodes, :data:`GPU_MEM`, in MiB -- and the plan turns its predicted peaks into requests of them: the node's
Triton actor holds its models' fixed memory, each lane (one video at a time) the working memory of one video.
Ray then never places more work on a node than its plan allows.

How it decides:

1. Every node is planned for the whole corpus with :func:`planning.planner.plan` on its own devices and checklist,
   the declared resources as memory budget. A component that cannot fit at batch 1 on a node raises
   ``insufficient_memory``/``insufficient_gpu_memory`` naming the node, before any work anywhere. On a node with
   several GPUs, the planner's device assignment is what puts components on different GPUs.
2. A video's cost on a node is its serial stage-model seconds there (:func:`~planning.planner.
   predicted_component_seconds`), scaled by that node's whole-corpus makespan over the corpus's serial seconds (what
   the node's parallel lanes and pipelining win). Videos go, largest first, to the node that would finish them
   first (longest processing time first), so a faster node gets more.
3. Every node with videos is planned again for exactly its videos: the batch sizes, videos in parallel (its lanes)
   and devices it runs with. The cluster's predicted makespan is the slowest node's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from common.errors import ConfigError, InsufficientMemory
from planning.checklist import Checklist
from planning.planner import plan, predicted_component_seconds
from planning.specs import (
    DEFAULT_MAX_LOADED_MODELS_PER_DEVICE,
    DEFAULT_MAX_VIDEOS_IN_PARALLEL,
    DEFAULT_SAFETY_MARGIN,
    BatchPlan,
    ComponentSpec,
    Device,
    VideoSpec,
)

CPU_MEM = "cpu_mem_mb"  # custom Ray resource: the node's CPU RAM budget for this extraction, MiB
GPU_MEM = "gpu_mem_mb"  # custom Ray resource: the node's GPU memory budget (all its GPUs together), MiB
MIB = 2**20


@dataclasses.dataclass(frozen=True)
class NodeReport:
    """What a node says about itself before planning (``ray_nodes.probe_node`` on that node, then its Triton).

    Attributes:
        node_id: Ray's node id (hex).
        address: the node's IP, for reports.
        hardware_id: picks the node's checklist (``conf/checklist/<hardware_id>/<profile>.yaml``).
        devices: CPU (concurrency = the CPUs the node declares to Ray) and every GPU, with the memory free now.
        resources: the node's declared Ray resources (``CPU``, ``GPU``, :data:`CPU_MEM`, :data:`GPU_MEM`, ...).
        loaded: components whose models the node's Triton has loaded now (None: all).
        current_instances: component -> instances its model is loaded with on the node's Triton.
    """

    node_id: str
    address: str
    hardware_id: str
    devices: tuple[Device, ...]
    resources: Mapping[str, float]
    loaded: frozenset[str] | None = None
    current_instances: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.address}/{self.node_id[:8]}"

    @property
    def gpus(self) -> list[Device]:
        return [d for d in self.devices if d.kind == "gpu"]


@dataclasses.dataclass
class NodePlan:
    """One node's share of the corpus and how it runs it.

    Attributes:
        node: the node's report.
        videos: indices into the corpus, in the order the node takes them.
        plan: the node's batch plan for exactly those videos (None when the node gets none).
        triton_request: Ray resources its Triton actor holds (the models' fixed memory, its GPUs).
        lane_request: Ray resources each of its ``lanes`` lane actors holds (one video's working memory).
    """

    node: NodeReport
    videos: list[int]
    plan: BatchPlan | None
    triton_request: dict[str, float]
    lane_request: dict[str, float]

    @property
    def lanes(self) -> int:
        return self.plan.videos_in_parallel if self.plan is not None else 0

    @property
    def predicted_makespan_s(self) -> float:
        return self.plan.predicted_makespan_s if self.plan is not None else 0.0

    def summary(self) -> dict[str, Any]:
        """What a manifest records of the node's plan besides the batch plan itself."""
        return {"node_id": self.node.node_id, "address": self.node.address, "hardware_id": self.node.hardware_id,
                "videos": len(self.videos), "lanes": self.lanes, "triton_request": self.triton_request,
                "lane_request": self.lane_request, "predicted_makespan_s": round(self.predicted_makespan_s, 3)}


@dataclasses.dataclass
class ClusterPlan:
    """Per node, its videos and its batch plan; the cluster's predicted makespan is the slowest node's."""

    nodes: dict[str, NodePlan]

    @property
    def predicted_makespan_s(self) -> float:
        return max((n.predicted_makespan_s for n in self.nodes.values()), default=0.0)

    def node_of(self, video_index: int) -> str:
        return next(n for n, p in self.nodes.items() if video_index in p.videos)

    def to_dict(self) -> dict[str, Any]:
        return {"predicted_makespan_s": round(self.predicted_makespan_s, 3),
                "nodes": {n: p.summary() for n, p in self.nodes.items()}}

    def describe(self) -> str:
        lines = [f"cluster plan: {sum(len(p.videos) for p in self.nodes.values())} videos on {len(self.nodes)} "
                 f"node(s), predicted makespan {self.predicted_makespan_s:.1f}s"]
        for p in self.nodes.values():
            lines.append(f"node {p.node.name} ({p.node.hardware_id}): {len(p.videos)} videos, {p.lanes} lane(s), "
                         f"Triton holds {p.triton_request}, each lane {p.lane_request}")
            if p.plan is not None:
                lines.extend("  " + line for line in p.plan.describe().splitlines())
        return "\n".join(lines)


def node_budget(node: NodeReport) -> dict[str, int]:
    """The node's declared memory resources as the planner's per-device budget in bytes (GPU memory shared among
    its GPUs in proportion to their free memory). Raises ``config_invalid`` naming the node when it declares no
    :data:`CPU_MEM` (or, with GPUs, no :data:`GPU_MEM`): without them Ray could not keep to the plan."""
    if CPU_MEM not in node.resources:
        raise ConfigError(f"node {node.name} declares no {CPU_MEM!r} resource; start it with "
                          f"`ray start ... --resources '{{\"{CPU_MEM}\": <MiB for extraction>}}'`", node=node.node_id)
    budget = {d.name: int(node.resources[CPU_MEM] * MIB) for d in node.devices if d.kind == "cpu"}
    gpus = node.gpus
    if gpus:
        if GPU_MEM not in node.resources:
            raise ConfigError(f"node {node.name} has {len(gpus)} GPU(s) but declares no {GPU_MEM!r} resource",
                              node=node.node_id)
        total = sum(max(g.free_bytes, 1) for g in gpus)
        for g in gpus:
            budget[g.name] = int(node.resources[GPU_MEM] * MIB * max(g.free_bytes, 1) / total)
    return budget


def fixed_bytes(checklist: Checklist, components: Sequence[ComponentSpec], kind: str,
                instances: Mapping[str, int] | None = None) -> int:
    """Fixed memory of the models of ``components`` measured on device ``kind`` (``cpu``/``gpu``), at
    ``instances`` (default 1 each): what a node's Triton holds while the run keeps them loaded."""
    inst = instances or {}
    return sum(checklist.models[c.name].fixed_bytes * int(inst.get(c.name, 1)) for c in components
               if c.uses_model and c.name in checklist.models and checklist.models[c.name].device_kind == kind)


def triton_request(node: NodeReport, checklist: Checklist, components: Sequence[ComponentSpec]) -> dict[str, float]:
    """Ray resources a node's Triton actor holds: its models' fixed memory at one instance each (the actor asks
    for them before its server can say how many instances it loaded; the lanes hold the rest of the plan's peak,
    extra instances included), and every GPU of the node (one Triton per node serves all of them with
    ``KIND_GPU`` instances)."""
    req: dict[str, float] = {CPU_MEM: math.ceil(fixed_bytes(checklist, components, "cpu") / MIB)}
    if node.gpus:
        req[GPU_MEM] = math.ceil(fixed_bytes(checklist, components, "gpu") / MIB)
        req["GPU"] = float(len(node.gpus))
    return req


def lane_request(p: BatchPlan, held: Mapping[str, float]) -> dict[str, float]:
    """One lane's share of the plan's predicted peak above what the Triton actor already holds (``held``)."""
    lanes = max(1, p.videos_in_parallel)
    cpu_peak = sum(int(i["predicted_peak_bytes"]) for i in p.devices.values() if i["kind"] == "cpu")
    gpu_peak = sum(int(i["predicted_peak_bytes"]) for i in p.devices.values() if i["kind"] == "gpu")
    req: dict[str, float] = {CPU_MEM: math.ceil(max(0, cpu_peak - held.get(CPU_MEM, 0) * MIB) / lanes / MIB)}
    if GPU_MEM in held:
        req[GPU_MEM] = math.ceil(max(0, gpu_peak - held[GPU_MEM] * MIB) / lanes / MIB)
    return req


def _plan_node(node: NodeReport, videos: Sequence[VideoSpec], components: Sequence[ComponentSpec],
               checklist: Checklist, kw: Mapping[str, Any]) -> BatchPlan:
    try:
        return plan(videos, components, list(node.devices), checklist, memory_budget=node_budget(node),
                    loaded=set(node.loaded) if node.loaded is not None else None,
                    current_instances=dict(node.current_instances),
                    # the Triton actor holds the fixed memory of the instances loaded now: Ray resources cannot
                    # grow with a reload, so a node keeps the instance counts its Triton was started with
                    max_instances={c.name: int(node.current_instances.get(c.name, 1)) for c in components
                                   if c.uses_model}, **kw)
    except InsufficientMemory as exc:
        raise InsufficientMemory(f"node {node.name}: {exc.message}", code=exc.code, node=node.node_id,
                                 **exc.details) from exc


def assign_videos(costs: Mapping[str, Sequence[float]]) -> dict[str, list[int]]:
    """Longest processing time first: each video (largest mean cost first) goes to the node whose load plus the
    video's cost there is smallest. ``costs``: node -> predicted seconds of every video on that node."""
    nodes = list(costs)
    n = len(next(iter(costs.values()))) if costs else 0
    load = dict.fromkeys(nodes, 0.0)
    out: dict[str, list[int]] = {k: [] for k in nodes}
    order = sorted(range(n), key=lambda i: (-sum(costs[k][i] for k in nodes) / len(nodes), i))
    for i in order:
        best = min(nodes, key=lambda k: (load[k] + costs[k][i], len(out[k]), nodes.index(k)))
        out[best].append(i)
        load[best] += costs[best][i]
    return {k: sorted(v) for k, v in out.items()}


def plan_cluster(videos: Sequence[VideoSpec], components: Sequence[ComponentSpec], nodes: Sequence[NodeReport],
                 checklists: Mapping[str, Checklist], *, safety_margin: float = DEFAULT_SAFETY_MARGIN,
                 max_videos_in_parallel: int = DEFAULT_MAX_VIDEOS_IN_PARALLEL,
                 max_loaded_models_per_device: int = DEFAULT_MAX_LOADED_MODELS_PER_DEVICE,
                 estimate_margin: float = 0.0, time_factors: Mapping[str, Mapping[str, float]] | None = None,
                 video_overhead_s: Mapping[str, float | None] | None = None,
                 max_lanes: Mapping[str, int] | None = None) -> ClusterPlan:
    """Plan ``videos`` over ``nodes`` (see the module docstring).

    Args:
        videos: the corpus as the planner sees it, in order.
        components: the component DAG.
        nodes: every node that may take work.
        checklists: hardware id -> the checklist measured on that hardware (already checked against the models
            the nodes' Tritons serve).
        safety_margin, max_videos_in_parallel, max_loaded_models_per_device, estimate_margin: as for
            :func:`planning.planner.plan`, per node.
        time_factors, video_overhead_s: node id -> what the node's pilot measured (as for
            :func:`planning.planner.plan`; a node without an entry plans from its checklist alone).
        max_lanes: node id -> at most this many videos in parallel there (below ``max_videos_in_parallel``).

    Raises:
        InsufficientMemory: some node cannot run some component at batch 1 (names the node and the component).
        ConfigError: no nodes, a node without a checklist or without its memory resources.
    """
    if not nodes:
        raise ConfigError("the cluster has no node to plan for")
    missing = sorted({n.hardware_id for n in nodes} - set(checklists))
    if missing:
        raise ConfigError(f"no checklist for hardware {missing} (nodes "
                          f"{[n.name for n in nodes if n.hardware_id in missing]})")
    base = dict(safety_margin=safety_margin, max_videos_in_parallel=max_videos_in_parallel,
                max_loaded_models_per_device=max_loaded_models_per_device, estimate_margin=estimate_margin)
    factors, overheads = time_factors or {}, video_overhead_s or {}
    most = {n: min(max_videos_in_parallel, k) for n, k in (max_lanes or {}).items()}
    kws = {n.node_id: {**base, "time_factors": factors.get(n.node_id), "video_overhead_s": overheads.get(n.node_id),
                       "max_videos_in_parallel": most.get(n.node_id, max_videos_in_parallel)}
           for n in nodes}
    costs: dict[str, list[float]] = {}
    for node in nodes:  # fail fast: every node must hold every component at batch 1 (1.)
        cl, kw = checklists[node.hardware_id], kws[node.node_id]
        whole = _plan_node(node, videos, components, cl, kw)
        serial = [sum(v.values()) for v in predicted_component_seconds(
            videos, components, list(node.devices), cl, whole.batch_sizes, time_factors=kw["time_factors"])]
        scale = whole.predicted_makespan_s / sum(serial) if sum(serial) > 0 else 1.0
        costs[node.node_id] = [s * scale for s in serial]  # (2.)
    share = assign_videos(costs)
    out: dict[str, NodePlan] = {}
    for node in nodes:  # (3.)
        cl = checklists[node.hardware_id]
        idx = share[node.node_id]
        held = triton_request(node, cl, components)
        p = _plan_node(node, [videos[i] for i in idx], components, cl, kws[node.node_id]) if idx else None
        lane = lane_request(p, held) if p is not None else {}
        if p is not None:
            _check_fits(node, held, lane, p.videos_in_parallel)
        out[node.node_id] = NodePlan(node=node, videos=idx, plan=p, triton_request=held, lane_request=lane)
    return ClusterPlan(nodes=out)


def _check_fits(node: NodeReport, held: Mapping[str, float], lane: Mapping[str, float], lanes: int) -> None:
    """The requests add up to at most what the node declares (rounding to whole MiB must not break the plan)."""
    for res in (CPU_MEM, GPU_MEM):
        if res in lane and held.get(res, 0) + lanes * lane[res] > node.resources.get(res, 0):
            code = "insufficient_gpu_memory" if res == GPU_MEM else "insufficient_memory"
            raise InsufficientMemory(
                f"node {node.name}: its Triton ({held.get(res, 0):g} MiB) and {lanes} lane(s) of "
                f"{lane[res]:g} MiB need more {res} than the node declares ({node.resources.get(res, 0):g} MiB)",
                code=code, node=node.node_id)
