"""Run a planned extraction over a Ray cluster (``python -m extraction run ... --executor ray``).

1. Connect (``address``: ``auto``, ``ray://...`` or ``host:port``; None starts a local one-node cluster that
   declares this machine's free memory as ``cpu_mem_mb``) and list the nodes that declare ``cpu_mem_mb``.
2. Probe every node (a task pinned to it): hardware id, devices, free memory, whether it sees the store.
3. Start one :class:`~planning.distributed.ray_nodes.NodeTriton` per node (or find the node's running server),
   holding its models' fixed memory; read each node's models and refuse nodes that serve other models than the
   rest, or than the checklist measured (``checklist_stale``).
4. Plan the cluster (:func:`~planning.distributed.cluster_plan.plan_cluster`) before any work: the cache's hits are
   left out, ``insufficient_memory`` fails naming the node.
5. Start the planned lanes per node, each requesting its share of the node's memory resources; every node with
   enough videos runs its pilot (:mod:`~planning.distributed.cluster_pilot`) and the rest is re-planned with the
   measured factors, within what the lanes hold. Feed the lanes the node's videos
   (:class:`~planning.distributed.dispatch.Dispatcher`); a node whose queue runs dry takes videos from the
   longest queue. A lane that dies with its node (raylet gone) loses its in-flight video, which goes to another
   node with the dead node's lease broken; a node whose Triton fails (``triton_unavailable``) gets no more work
   and its videos move. Every failed attempt is recorded in the summary and in the video's manifest
   (``attempts``).
6. Stop the Tritons the run started, return a :class:`RayRunSummary`.

Artifacts are written by the same runner as the local executor, into the same store layout, so a corpus extracted
on any cluster shape (or locally) is reused by a later run on any other.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common.errors import ConfigError, InsufficientMemory, ModelNotFound, TrendflowError
from common.paths import REPO_ROOT
from extraction.config import DEFAULT_MAPPING
from extraction.runner import RunSummary
from planning.distributed.cluster_pilot import NodePilot, measure_node_pilots, pick_node_pilots
from planning.distributed.cluster_plan import (
    CPU_MEM,
    GPU_MEM,
    MIB,
    ClusterPlan,
    NodePlan,
    NodeReport,
    plan_cluster,
    triton_request,
)
from planning.distributed.dispatch import Dispatcher
from planning.distributed.ray_nodes import POLL_GROUP, LaneSpec, NodeProbe, NodeTriton, TritonInfo, VideoLane

DEFAULT_STATE_ROOT = REPO_ROOT / ".trendflow" / "triton-nodes"
LOCAL_OBJECT_STORE_BYTES = 128 * MIB  # the run moves paths and small records through Ray, never arrays
LANE_START_TIMEOUT_S = 120.0


@dataclasses.dataclass
class RayRunSummary(RunSummary):
    """The runner's summary for the whole cluster, plus what only a cluster has."""

    retries: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    nodes: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # node -> videos, ok, status
    dashboard_url: str | None = None
    pilot_seconds: float = 0.0  # of ``seconds``: the nodes' pilots (all at once), before the rest was re-planned


@dataclasses.dataclass
class ClusterHold:
    """What a run holds on the cluster until its teardown: each node's Triton actor and server, its lanes, and the
    spare lanes kept after the re-plan only for the memory they hold (:func:`relane`)."""

    actors: dict[str, Any] = dataclasses.field(default_factory=dict)
    infos: dict[str, TritonInfo] = dataclasses.field(default_factory=dict)
    lanes: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    spare: list[Any] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class PlanInputs:
    """What every (re-)plan of one run is made from: the corpus, its per-video and per-component specs, the nodes'
    reports and checklists, the planner's limits and the lanes' fixed settings."""

    vids: list[Any]
    specs: list[Any]
    comps: list[Any]
    reports: list[NodeReport]
    checklists: dict[str, Any]
    sources: dict[str, str]  # hardware id -> the checklist's path
    limits: dict[str, Any]  # plan_cluster's safety_margin, max_videos_in_parallel, ... keywords
    spec_kw: dict[str, Any]  # LaneSpec's out_root, profile, mapping, seed


class RecordedModels:
    """The driver's model provider: the handles the nodes' Tritons reported (the driver computes cache keys and
    plans; it never sends a request)."""

    def __init__(self, handles: dict[str, Any]) -> None:
        self._by = {(h.name, h.version): h for h in handles.values()}

    def get_model(self, name: str, version: str, logical: str = "") -> Any:
        h = self._by.get((name, str(version)))
        if h is None:
            raise ModelNotFound(f"no node's Triton serves {name}:{version}", model=name, version=version)
        return h

    def infer(self, *_a: Any, **_k: Any) -> Any:
        raise ConfigError("the Ray driver sends no inference requests; its nodes' lanes do")


def connect(address: str | None, *, log: Callable[[str], None] = print) -> tuple[bool, str | None]:
    """Connect to the cluster at ``address`` (None: start a local one). Returns (started here, dashboard URL)."""
    import psutil
    import ray

    if ray.is_initialized():
        return False, None
    kw: dict[str, Any] = dict(configure_logging=False, log_to_driver=False, namespace="trendflow-extraction")
    if address is None:
        ctx = ray.init(num_cpus=os.cpu_count() or 1, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                       resources={CPU_MEM: int(psutil.virtual_memory().available / MIB)}, **kw)
    else:
        ctx = ray.init(address=address, **kw)
    url = getattr(ctx, "dashboard_url", None) or None
    if url:
        log(f"ray dashboard: http://{url}" if "://" not in url else f"ray dashboard: {url}")
    return address is None, url


def _pinned(node_id: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


def probe_nodes(out_root: Path, log: Callable[[str], None]) -> list[tuple[NodeProbe, dict[str, float]]]:
    """Every alive node that declares ``cpu_mem_mb``, probed on itself (see ``ray_nodes.probe_node``)."""
    import ray

    from planning.distributed.ray_nodes import probe_node

    alive = [n for n in ray.nodes() if n.get("Alive")]
    usable = [n for n in alive if CPU_MEM in n.get("Resources", {})]
    for n in alive:
        if n not in usable:
            log(f"node {n['NodeManagerAddress']}/{n['NodeID'][:8]} declares no {CPU_MEM!r}: it takes no work")
    if not usable:
        raise ConfigError(f"no node of the cluster declares the {CPU_MEM!r} resource; start nodes with "
                          f"`ray start ... --resources '{{\"{CPU_MEM}\": <MiB>}}'`")
    # max_calls=1: the probe's worker process exits after it; kept idle it would cost its node ~1% of a core
    task = ray.remote(num_cpus=0, max_calls=1)(probe_node)
    refs = [task.options(scheduling_strategy=_pinned(n["NodeID"])).remote(str(out_root), dict(n["Resources"]))
            for n in usable]
    probes = ray.get(refs)
    for p in probes:
        if not p.sees_store:
            raise TrendflowError(f"node {p.address}/{p.node_id[:8]} cannot write the artifact store {out_root}: "
                                 "every node must mount it at the same path", code="store_unreachable",
                                 node=p.node_id)
    return [(p, dict(n["Resources"])) for p, n in zip(probes, usable, strict=True)]


def start_tritons(probes, checklists, components, *, profile: str, mapping: Path, seed: int,
                  model_repository: Path, state_root: Path, keep: bool = False
                  ) -> tuple[dict[str, Any], dict[str, TritonInfo]]:
    """One :class:`NodeTriton` actor per node, holding its models' fixed memory (and its GPUs); their reports.

    Actors are named per node: with ``keep`` they are detached and outlive this driver (Ray kills a worker's child
    processes with it, so a kept server needs a kept actor), and a later run finds and reuses them."""
    import ray

    actors: dict[str, Any] = {}
    cls = ray.remote(NodeTriton)
    for p, res in probes:
        report = NodeReport(p.node_id, p.address, p.hardware_id, p.devices, res)
        req = triton_request(report, checklists[p.hardware_id], components)
        actors[p.node_id] = cls.options(
            num_cpus=0, num_gpus=req.pop("GPU", 0), resources={k: v for k, v in req.items() if v > 0},
            scheduling_strategy=_pinned(p.node_id), max_restarts=0, max_concurrency=2,
            name=f"trendflow-triton-{p.node_id[:16]}", get_if_exists=True, lifetime="detached" if keep else None,
        ).remote(str(state_root / f"node-{p.node_id[:12]}"), str(model_repository), profile, str(mapping), seed)
    infos = dict(zip(actors, ray.get([a.info.remote() for a in actors.values()]), strict=True))
    return actors, infos


def check_same_models(infos: dict[str, TritonInfo], checklists: dict[str, Any], sources: dict[str, str]) -> None:
    """Every node serves the same models, and each node's checklist measured them (else ``checklist_stale``)."""
    from planning.inputs import model_signatures

    sigs = {n: model_signatures(i.handles) for n, i in infos.items()}
    first_node, first = next(iter(sigs.items()))
    for n, s in sigs.items():
        if s != first:
            diff = sorted(c for c in set(s) | set(first) if s.get(c) != first.get(c))
            raise ConfigError(f"node {n[:8]} serves other models than node {first_node[:8]} for {diff}: every node "
                              "must serve the same model repository", node=n)
    for hw, cl in checklists.items():
        cl.check_signatures(first, source=sources[hw])


def load_checklists(probes, profile: str, checklist: Path | None) -> tuple[dict[str, Any], dict[str, str]]:
    """hardware id -> its checklist (``checklist`` given: that one for every node's hardware)."""
    from planning.checklist import CHECKLIST_DIR, ChecklistMissing, checklist_path, load_checklist

    out, src = {}, {}
    for hw in sorted({p.hardware_id for p, _ in probes}):
        path = Path(checklist) if checklist is not None else checklist_path(profile, hw, CHECKLIST_DIR)
        if not path.exists():
            nodes = [p.address + "/" + p.node_id[:8] for p, _ in probes if p.hardware_id == hw]
            raise ChecklistMissing(f"no checklist for hardware {hw!r} (nodes {nodes}) and profile {profile!r} at "
                                   f"{path}; measure one on such a node with `python -m extraction checklist "
                                   f"profile --profile {profile}`", hardware=hw, profile=profile)
        out[hw], src[hw] = load_checklist(path), str(path)
    return out, src


def _lane_spec(cp: ClusterPlan, node_id: str, infos: dict[str, TritonInfo], spec_kw: dict[str, Any]) -> LaneSpec:
    np_ = cp.nodes[node_id]
    plan_dict = {**np_.plan.to_dict(), "cluster": {**np_.summary(), "cluster_predicted_makespan_s":
                                                   round(cp.predicted_makespan_s, 3)}}
    return LaneSpec(node_id=node_id, address=np_.node.address, grpc_url=infos[node_id].grpc_url,
                    batch_sizes=np_.plan.batch_sizes, plan=plan_dict, devices=np_.plan.device_of, **spec_kw)


def start_lanes(cp: ClusterPlan, infos: dict[str, TritonInfo], spec_kw: dict[str, Any],
                nodes: Sequence[str] | None = None) -> dict[str, list[Any]]:
    """The planned lanes of ``nodes`` (default: every node with videos), each holding its share of the node's
    memory resources; waits until placed."""
    import ray
    from ray.exceptions import GetTimeoutError

    cls = ray.remote(concurrency_groups={POLL_GROUP: 1})(VideoLane)
    lanes: dict[str, list[Any]] = {}
    for node_id in nodes if nodes is not None else list(cp.nodes):
        np_ = cp.nodes[node_id]
        if np_.plan is None:
            continue
        spec = _lane_spec(cp, node_id, infos, spec_kw)
        res = {k: v for k, v in np_.lane_request.items() if v > 0}
        # Videos run one at a time in the default group, in order, so the driver can queue the next one behind the
        # running one; the progress polls have a group of their own and never wait behind a video.
        lanes[node_id] = [cls.options(num_cpus=0, resources=res, scheduling_strategy=_pinned(node_id),
                                      max_restarts=0, max_concurrency=1).remote(spec) for _ in range(np_.lanes)]
    try:
        ray.get([lane.components_done.options(concurrency_group=POLL_GROUP).remote()
                 for ls in lanes.values() for lane in ls], timeout=LANE_START_TIMEOUT_S)
    except GetTimeoutError as exc:
        raise TrendflowError(f"the planned lanes could not be placed within {LANE_START_TIMEOUT_S:.0f}s: a node "
                             "has less of its memory resources free than it declared (another run?)",
                             code="insufficient_memory") from exc
    return lanes


def relane(old: ClusterPlan, new: ClusterPlan, lanes: dict[str, list[Any]], infos: dict[str, TritonInfo],
           spec_kw: dict[str, Any], healthy: set[str]) -> tuple[dict[str, list[Any]], list[Any]]:
    """The lanes for ``new`` (the re-plan after the pilot) and the spare lanes that only hold memory.

    A node keeps its lanes (told the new batch sizes) when it runs no more of them than before and they hold at
    least the memory the new plan's lanes need together: a new lane is a new worker process, seconds on a busy
    node. Surplus lanes stay as spares holding their memory (the new lanes may each need more than an old one
    holds), idle. Otherwise the node's lanes are replaced. Nodes with no more work lose their lanes."""
    import ray

    out: dict[str, list[Any]] = {}
    spare: list[Any] = []
    restart: list[str] = []
    told = []  # the kept lanes' set_plan calls, awaited together
    for n, np_ in new.nodes.items():
        have = lanes.get(n, [])
        if n not in healthy or np_.plan is None:
            for lane in have:
                ray.kill(lane)
            continue
        held = old.nodes[n].lane_request if n in old.nodes else {}
        if np_.lanes <= len(have) and all(np_.lanes * v <= len(have) * held.get(k, 0)
                                          for k, v in np_.lane_request.items()):
            spec = _lane_spec(new, n, infos, spec_kw)
            out[n], rest = have[:np_.lanes], have[np_.lanes:]
            per_lane_fits = all(v <= held.get(k, 0) for k, v in np_.lane_request.items())
            for lane in rest:
                if per_lane_fits:
                    ray.kill(lane)
                else:
                    spare.append(lane)
            told += [lane.set_plan.remote(spec.batch_sizes, spec.plan, spec.devices) for lane in out[n]]
        else:
            for lane in have:
                ray.kill(lane)
            restart.append(n)
    ray.get(told)
    if restart:
        out.update(start_lanes(new, infos, spec_kw, nodes=restart))
    return out, spare


def within_reserved(report: NodeReport, held: NodePlan, estimate_margin: float) -> NodeReport:
    """``report`` as the re-plan after the pilot sees it: its memory resources capped at what the node's Triton
    actor and lanes hold now (less 1 MiB per lane for the requests' rounding), so that the re-plan's lanes fit in
    the running ones (:func:`relane`). The planner fills ``1 - estimate_margin`` of a budget: the cap is scaled
    back up by it."""
    res = dict(report.resources)
    for k in (CPU_MEM, GPU_MEM):
        if k in res and k in held.lane_request:
            have = held.triton_request.get(k, 0) + held.lanes * (held.lane_request[k] - 1)
            res[k] = min(res[k], int(have / (1 - estimate_margin)))
    return dataclasses.replace(report, resources=res)


def run_on_ray(videos_dir: Path, out: Path, profile: str = "fast", *, address: str | None = None,
               checklist: Path | None = None, mapping: Path = DEFAULT_MAPPING, seed: int = 0,
               safety_margin: float = 0.2, max_videos_in_parallel: int = 8, max_loaded_models_per_device: int = 8,
               progress: bool = True, on_plan=None, run_id: str | None = None,
               model_repository: Path = REPO_ROOT / "model_repository", state_root: Path = DEFAULT_STATE_ROOT,
               on_start: Callable[[str, int], None] | None = None, log: Callable[[str], None] | None = None,
               keep_tritons: bool = False, pilot_videos: int | None = None) -> RayRunSummary:
    """Extract every video of ``videos_dir`` into the shared store ``out`` over the cluster at ``address``.

    The whole corpus is planned before any work (the planner's errors are raised then); the nodes' pilots run
    (``pilot_videos`` per node; None: ``planning.pilot.pilot_size`` of its share, 0: none) and the rest is
    re-planned with what they measured (:mod:`planning.distributed.cluster_pilot`). ``on_plan(cluster_plan)``
    sees the plan the rest of the corpus runs with; ``on_start(node_id, video_index)`` is told when a video is
    handed to a node (tests kill nodes with it); ``keep_tritons`` leaves the Tritons this run started running for
    the next run (as ``python -m extraction triton start`` does)."""
    import ray

    from extraction.config import load_profile
    from extraction.runner import ExtractionRun, discover_videos, new_run_id
    from planning.inputs import ESTIMATE_MARGIN, cached_per_video, component_specs, video_specs

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    started, dashboard = connect(address, log=log)
    hold = ClusterHold()
    try:
        out = Path(out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        cfg = load_profile(profile, mapping, seed=seed)
        vids = discover_videos(Path(videos_dir))
        probes = probe_nodes(out, log)
        checklists, sources = load_checklists(probes, profile, checklist)
        run = ExtractionRun(cfg=cfg, out_root=out, provider=RecordedModels({}), progress=False)
        comps = component_specs(run.components)
        hold.actors, hold.infos = start_tritons(probes, checklists, comps, profile=profile, mapping=mapping,
                                                seed=seed, model_repository=model_repository,
                                                state_root=state_root, keep=keep_tritons)
        infos = hold.infos
        check_same_models(infos, checklists, sources)
        run.provider = RecordedModels(next(iter(infos.values())).handles)
        run.resolve_models()
        cached = cached_per_video(run, vids)
        specs = video_specs(vids, cfg, next(iter(checklists.values())), cached, run.components)
        reports = [NodeReport(p.node_id, p.address, p.hardware_id, p.devices, res, infos[p.node_id].loaded,
                              infos[p.node_id].current_instances) for p, res in probes]
        inputs = PlanInputs(vids=vids, specs=specs, comps=comps, reports=reports, checklists=checklists,
                            sources=sources, spec_kw=dict(out_root=str(out), profile=profile, mapping=str(mapping),
                                                          seed=seed),
                            limits=dict(safety_margin=safety_margin, max_videos_in_parallel=max_videos_in_parallel,
                                        max_loaded_models_per_device=max_loaded_models_per_device,
                                        estimate_margin=ESTIMATE_MARGIN))
        cp = _checked(plan_cluster(specs, comps, reports, checklists, **inputs.limits), sources)
        pilots = pick_node_pilots(cp, specs, cached, comps, checklists, per_node=pilot_videos)
        _place_gpu_models(cp, hold.actors)
        run_id = run_id or new_run_id()
        hold.lanes = start_lanes(cp, infos, inputs.spec_kw)
        t0 = time.perf_counter()
        d = Dispatcher(cp, hold.lanes, vids, run_id, len(run.components), progress, on_start)
        try:
            if pilots:
                d.run({n: p.queue for n, p in pilots.items()}, steal=False, lanes_per_node=1, depth=1)
                t1 = time.perf_counter()
                measure_node_pilots(pilots, d.results, d.seconds, cp, specs, comps, checklists)
                rest = [i for i in range(len(vids)) if i not in d.results]
                cp = _replan(cp, pilots, rest, inputs, hold, d)
                log(f"pilots: {sum(len(p.queue) for p in pilots.values())} videos on {len(pilots)} node(s) in "
                    f"{t1 - t0:.1f}s, re-planned in {time.perf_counter() - t1:.1f}s")
            pilot_s = time.perf_counter() - t0
            if on_plan is not None:
                on_plan(cp)
            d.run()
        finally:
            d.close()
        d.check_complete()
        return _summary(d, run_id, time.perf_counter() - t0, cp, dashboard, infos, pilots, pilot_s if pilots else 0.0)
    finally:
        _teardown(hold, stop_tritons=not keep_tritons)
        if started:
            ray.shutdown()


def _checked(cp: ClusterPlan, sources: dict[str, str]) -> ClusterPlan:
    """Record each node's checklist path; refuse plans that rotate models (the Ray executor runs one pass)."""
    for np_ in cp.nodes.values():
        if np_.plan is not None:
            np_.plan.checklist["path"] = sources[np_.node.hardware_id]
            if len(np_.plan.passes) > 1:
                raise ConfigError(f"node {np_.node.name}: the plan rotates models in {len(np_.plan.passes)} "
                                  "passes, which the Ray executor does not run; give the node more memory")
    return cp


def _replan(cp: ClusterPlan, pilots: dict[str, NodePilot], rest: list[int], inputs: PlanInputs,
            hold: ClusterHold, d: Dispatcher) -> ClusterPlan:
    """After the pilots: plan ``rest`` on the healthy nodes with each node's factors, move ``hold``'s lanes to it
    and hand the dispatcher the new plan."""
    healthy = [r for r in inputs.reports if r.node_id in d.healthy]
    if not rest or not healthy:
        return cp
    calibrated = dict(time_factors={n: p.factors for n, p in pilots.items() if p.factors},
                      video_overhead_s={n: p.video_overhead_s for n, p in pilots.items()})
    kw, rest_specs = inputs.limits, [inputs.specs[i] for i in rest]
    try:  # first within what the running lanes hold, with at most as many lanes (they can stay)
        reserved = [within_reserved(r, cp.nodes[r.node_id], kw["estimate_margin"]) if cp.nodes[r.node_id].plan
                    else r for r in healthy]
        new = plan_cluster(rest_specs, inputs.comps, reserved, inputs.checklists, **kw, **calibrated,
                           max_lanes={n: p.lanes for n, p in cp.nodes.items() if p.plan is not None})
    except InsufficientMemory:  # the rest holds bigger videos than the pilot's plan: new lanes
        new = plan_cluster(rest_specs, inputs.comps, healthy, inputs.checklists, **kw, **calibrated)
    new = _checked(new, inputs.sources)
    for n, np_ in new.nodes.items():
        np_.videos = [rest[i] for i in np_.videos]  # back to corpus indices
        if np_.plan is None:
            continue
        if n in pilots:
            p = pilots[n]
            np_.plan.calibration.update(p.record([str(inputs.vids[i][1].get("video_id")) for i in p.videos]))
        else:
            np_.plan.calibration["skipped"] = "the node had too few videos for a pilot"
    if any(new.nodes[n].plan is not None and cp.nodes[n].plan is not None
           and new.nodes[n].plan.device_of != cp.nodes[n].plan.device_of for n in new.nodes):
        _place_gpu_models(new, hold.actors)
    hold.lanes, spare = relane(cp, new, hold.lanes, hold.infos, inputs.spec_kw, d.healthy)
    hold.spare += spare
    d.replan(new, hold.lanes)
    return new


def _place_gpu_models(cp: ClusterPlan, actors: dict[str, Any]) -> None:
    import ray

    refs = []
    for node_id, np_ in cp.nodes.items():
        if np_.plan is None or not any(d.startswith("gpu") for d in np_.plan.device_of.values()):
            continue
        placements = {c: (p.model.split(":")[0], p.instances, p.device) for c, p in np_.plan.components.items()
                      if p.model}
        refs.append(actors[node_id].place.remote(placements))
    ray.get(refs)


def _teardown(hold: ClusterHold, stop_tritons: bool) -> None:
    import ray

    for lane in [*(lane for ls in hold.lanes.values() for lane in ls), *hold.spare]:
        ray.kill(lane)
    actors = hold.actors.values() if stop_tritons else ()
    stops = []
    for a in actors:
        try:
            stops.append(a.stop.remote())
        except Exception:  # the node is gone: nothing to stop
            continue
    try:
        ray.get(stops, timeout=60)
    except Exception:  # a dead node's actor fails its stop: its server went with the node
        pass
    for a in actors:
        ray.kill(a)


def _summary(d: Dispatcher, run_id: str, seconds: float, cp: ClusterPlan, dashboard: str | None,
             infos: dict[str, TritonInfo], pilots: dict[str, NodePilot], pilot_seconds: float) -> RayRunSummary:
    manifests = [json.loads(Path(r.manifest).read_text()) for r in d.results.values() if r.manifest]
    comps = [e for m in manifests for e in m["components"].values()]
    failed = {r.video_id: r.error_code or r.status for r in d.results.values() if not r.ok}
    nodes: dict[str, dict[str, Any]] = {}
    for n in infos:  # every node that took part, also one lost in the pilot (gone from the re-plan)
        mine = [r for r in d.results.values() if r.node_id == n]
        planned = len(cp.nodes[n].videos) if n in cp.nodes else 0
        nodes[n] = {"planned": planned + len(pilots[n].queue if n in pilots else ()), "extracted": len(mine),
                    "status": "lost" if n in d.dead else ("retired" if n not in d.healthy else "ok"),
                    "triton": {"grpc_url": infos[n].grpc_url, "pid": infos[n].pid,
                               "started_here": infos[n].started_here, "gpu_ids": infos[n].gpu_ids}}
    return RayRunSummary(
        run_id=run_id, videos=len(d.videos), ok=len(d.results) - len(failed), failed=failed,
        cache_hits=sum(e["cache_hit"] for e in comps),
        computed=sum(not e["cache_hit"] and e["artifact"] is not None for e in comps), seconds=round(seconds, 2),
        manifests=[Path(r.manifest) for r in sorted(d.results.values(), key=lambda r: r.index) if r.manifest],
        plan=cp.to_dict(), retries=d.retries, nodes=nodes, dashboard_url=dashboard,
        pilot_seconds=round(pilot_seconds, 2))
