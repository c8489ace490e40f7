"""Run a planned extraction over a Ray cluster (``python -m extraction run ... --executor ray``).

1. Connect (``address``: ``auto``, ``ray://...`` or ``host:port``; None starts a local one-node cluster that
   declares this machine's free memory as ``cpu_mem_mb``) and list the nodes that declare ``cpu_mem_mb``.
2. Probe every node (a task pinned to it): hardware id, devices, free memory, whether it sees the store.
3. Start one :class:`~planning.distributed.ray_nodes.NodeTriton` per node (or find the node's running server),
   holding its models' fixed memory; read each node's models and refuse nodes that serve other models than the
   rest, or than the checklist measured (``checklist_stale``).
4. Plan the cluster (:func:`~planning.distributed.cluster_plan.plan_cluster`) before any work: the cache's hits are
   left out, ``insufficient_memory`` fails naming the node.
5. Start the planned lanes per node, each requesting its share of the node's memory resources, and feed them the
   node's videos; a node whose queue runs dry takes videos from the longest queue. A lane that dies with its node
   (raylet gone) loses its in-flight video, which goes to another node with the dead node's lease broken; a node
   whose Triton fails (``triton_unavailable``) gets no more work and its videos move. Every failed attempt is
   recorded in the summary and in the video's manifest (``attempts``).
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
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common.errors import ConfigError, ModelNotFound, TrendflowError, TritonUnavailable
from common.paths import REPO_ROOT
from extraction.config import DEFAULT_MAPPING
from extraction.runner import RunSummary
from planning.distributed.cluster_plan import CPU_MEM, MIB, ClusterPlan, NodeReport, plan_cluster, triton_request
from planning.distributed.ray_nodes import LaneSpec, NodeProbe, NodeTriton, TritonInfo, VideoLane, VideoResult

DEFAULT_STATE_ROOT = REPO_ROOT / ".trendflow" / "triton-nodes"
LOCAL_OBJECT_STORE_BYTES = 128 * MIB  # the run moves paths and small records through Ray, never arrays
RETRY_CODES = ("triton_unavailable", "model_not_found")  # the node's fault, not the video's: retry elsewhere
LANE_START_TIMEOUT_S = 120.0
NODE_DEATH_SETTLE_S = 10.0  # after a lane dies: how long to wait for its node to be marked dead, if it is


@dataclasses.dataclass
class RayRunSummary(RunSummary):
    """The runner's summary for the whole cluster, plus what only a cluster has."""

    retries: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    nodes: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # node -> videos, ok, status
    dashboard_url: str | None = None


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
    task = ray.remote(num_cpus=0)(probe_node)
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


def start_lanes(cp: ClusterPlan, infos: dict[str, TritonInfo], spec_kw: dict[str, Any]) -> dict[str, list[Any]]:
    """The planned lanes per node, each holding its share of the node's memory resources; waits until placed."""
    import ray
    from ray.exceptions import GetTimeoutError

    cls = ray.remote(VideoLane)
    lanes: dict[str, list[Any]] = {}
    for node_id, np_ in cp.nodes.items():
        if np_.plan is None:
            continue
        plan_dict = {**np_.plan.to_dict(), "cluster": {**np_.summary(), "cluster_predicted_makespan_s":
                                                       round(cp.predicted_makespan_s, 3)}}
        spec = LaneSpec(node_id=node_id, address=np_.node.address, grpc_url=infos[node_id].grpc_url,
                        batch_sizes=np_.plan.batch_sizes, plan=plan_dict, devices=np_.plan.device_of, **spec_kw)
        res = {k: v for k, v in np_.lane_request.items() if v > 0}
        lanes[node_id] = [cls.options(num_cpus=0, resources=res, scheduling_strategy=_pinned(node_id),
                                      max_restarts=0, max_concurrency=2).remote(spec) for _ in range(np_.lanes)]
    try:
        ray.get([lane.components_done.remote() for ls in lanes.values() for lane in ls], timeout=LANE_START_TIMEOUT_S)
    except GetTimeoutError as exc:
        raise TrendflowError(f"the planned lanes could not be placed within {LANE_START_TIMEOUT_S:.0f}s: a node "
                             "has less of its memory resources free than it declared (another run?)",
                             code="insufficient_memory") from exc
    return lanes


def run_on_ray(videos_dir: Path, out: Path, profile: str = "fast", *, address: str | None = None,
               checklist: Path | None = None, mapping: Path = DEFAULT_MAPPING, seed: int = 0,
               safety_margin: float = 0.2, max_videos_in_parallel: int = 8, max_loaded_models_per_device: int = 8,
               progress: bool = True, on_plan=None, run_id: str | None = None,
               model_repository: Path = REPO_ROOT / "model_repository", state_root: Path = DEFAULT_STATE_ROOT,
               on_start: Callable[[str, int], None] | None = None, log: Callable[[str], None] | None = None,
               keep_tritons: bool = False) -> RayRunSummary:
    """Extract every video of ``videos_dir`` into the shared store ``out`` over the cluster at ``address``.

    ``on_plan(cluster_plan)`` sees the plan before any work; ``on_start(node_id, video_index)`` is told when a
    video is handed to a node (tests kill nodes with it); ``keep_tritons`` leaves the Tritons this run started
    running for the next run (as ``python -m extraction triton start`` does). Raises the planner's errors before
    any work."""
    import ray

    from extraction.config import load_profile
    from extraction.runner import ExtractionRun, discover_videos, new_run_id
    from planning.inputs import ESTIMATE_MARGIN, cached_per_video, component_specs, video_specs

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    started, dashboard = connect(address, log=log)
    actors: dict[str, Any] = {}
    lanes: dict[str, list[Any]] = {}
    infos: dict[str, TritonInfo] = {}
    try:
        out = Path(out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        cfg = load_profile(profile, mapping, seed=seed)
        vids = discover_videos(Path(videos_dir))
        probes = probe_nodes(out, log)
        checklists, sources = load_checklists(probes, profile, checklist)
        run = ExtractionRun(cfg=cfg, out_root=out, provider=RecordedModels({}), progress=False)
        comps = component_specs(run.components)
        actors, infos = start_tritons(probes, checklists, comps, profile=profile, mapping=mapping, seed=seed,
                                      model_repository=model_repository, state_root=state_root, keep=keep_tritons)
        check_same_models(infos, checklists, sources)
        run.provider = RecordedModels(next(iter(infos.values())).handles)
        run.resolve_models()
        cached = cached_per_video(run, vids)
        specs = video_specs(vids, cfg, next(iter(checklists.values())), cached, run.components)
        reports = [NodeReport(p.node_id, p.address, p.hardware_id, p.devices, res, infos[p.node_id].loaded,
                              infos[p.node_id].current_instances) for p, res in probes]
        cp = plan_cluster(specs, comps, reports, checklists, safety_margin=safety_margin,
                          max_videos_in_parallel=max_videos_in_parallel,
                          max_loaded_models_per_device=max_loaded_models_per_device, estimate_margin=ESTIMATE_MARGIN)
        for np_ in cp.nodes.values():
            if np_.plan is not None:
                np_.plan.checklist["path"] = sources[np_.node.hardware_id]
                np_.plan.calibration["skipped"] = "the Ray executor runs no pilot"
                if len(np_.plan.passes) > 1:
                    raise ConfigError(f"node {np_.node.name}: the plan rotates models in {len(np_.plan.passes)} "
                                      "passes, which the Ray executor does not run; give the node more memory")
        if on_plan is not None:
            on_plan(cp)
        _place_gpu_models(cp, actors)
        run_id = run_id or new_run_id()
        lanes = start_lanes(cp, infos, dict(out_root=str(out), profile=profile, mapping=str(mapping), seed=seed))
        t0 = time.perf_counter()
        d = Dispatcher(cp, lanes, vids, run_id, len(run.components), progress, on_start)
        d.run()
        return _summary(d, run_id, time.perf_counter() - t0, cp, dashboard, infos)
    finally:
        _teardown(lanes, actors, stop_tritons=not keep_tritons)
        if started:
            ray.shutdown()


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


def _teardown(lanes: dict[str, list[Any]], actors: dict[str, Any], stop_tritons: bool) -> None:
    import ray

    for ls in lanes.values():
        for lane in ls:
            ray.kill(lane)
    stops = []
    for a in actors.values() if stop_tritons else ():
        try:
            stops.append(a.stop.remote())
        except Exception:  # the node is gone: nothing to stop
            continue
    try:
        ray.get(stops, timeout=60)
    except Exception:  # a dead node's actor fails its stop: its server went with the node
        pass
    for a in actors.values() if stop_tritons else ():
        ray.kill(a)


class Dispatcher:
    """Feeds each node's lanes its planned videos, moves videos away from lost nodes, keeps the progress bar."""

    def __init__(self, cp: ClusterPlan, lanes: dict[str, list[Any]], videos: Sequence[tuple[Path, dict]],
                 run_id: str, n_components: int, progress: bool, on_start) -> None:
        from tqdm.auto import tqdm

        self.cp, self.videos, self.run_id, self.on_start = cp, videos, run_id, on_start
        self.queues = {n: deque(p.videos) for n, p in cp.nodes.items() if n in lanes}
        self.idle = {n: list(ls) for n, ls in lanes.items()}
        self.lanes = {n: list(ls) for n, ls in lanes.items()}
        self.healthy = set(lanes)
        self.dead: set[str] = set()
        self.pending: dict[Any, tuple[str, Any, int]] = {}
        self.attempts: dict[int, list[dict[str, Any]]] = {}
        self.retries: list[dict[str, Any]] = []
        self.results: dict[int, VideoResult] = {}
        self.lane_done: dict[Any, int] = {}
        self.bar = tqdm(total=len(videos) * n_components, desc=f"extract {run_id} (cluster)", unit="comp",
                        disable=not progress, file=sys.stderr)
        self.vbar = tqdm(total=len(videos), desc="videos", unit="video", disable=not progress, file=sys.stderr)

    def _submit(self, node: str, index: int) -> None:
        lane = self.idle[node].pop()
        path, meta = self.videos[index]
        ref = lane.process.remote(index, str(path), meta, self.run_id, self.attempts.get(index, []),
                                  sorted(self.dead))
        self.pending[ref] = (node, lane, index)
        if self.on_start is not None:
            self.on_start(node, index)

    def _feed(self) -> None:
        for node in sorted(self.healthy):
            while self.idle[node]:
                if not self.queues[node]:
                    donor = max((n for n in self.healthy if n != node), key=lambda n: len(self.queues[n]),
                                default=None)
                    if donor is None or len(self.queues[donor]) == 0:
                        break
                    self.queues[node].append(self.queues[donor].pop())  # steal from the tail of the longest
                self._submit(node, self.queues[node].popleft())

    def _move(self, index: int, node: str, code: str, message: str) -> None:
        """Record a failed attempt and queue the video on the healthy node with the least queued per lane."""
        self.attempts.setdefault(index, []).append({"node_id": node, "status": "failed", "error_code": code,
                                                    "error_message": message[:500]})
        if not self.healthy:
            return
        to = min(sorted(self.healthy), key=lambda n: (len(self.queues[n]) + 1) / max(len(self.lanes[n]), 1))
        self.queues[to].appendleft(index)
        self.retries.append({"video_id": str(self.videos[index][1].get("video_id")), "from_node": node,
                             "to_node": to, "error_code": code})

    def _retire(self, node: str, code: str) -> None:
        """No more work for ``node``: its queued videos go to the others."""
        self.healthy.discard(node)
        if code == "node_lost":
            self.dead.add(node)
        left = list(self.queues[node])
        self.queues[node].clear()
        for i in left:
            if self.healthy:
                to = min(sorted(self.healthy), key=lambda n: len(self.queues[n]) / max(len(self.lanes[n]), 1))
                self.queues[to].append(i)

    def _node_alive(self, node: str, settle_s: float = NODE_DEATH_SETTLE_S) -> bool:
        """Whether ``node`` is still alive, waiting up to ``settle_s`` for the cluster to notice a death: a lane's
        actor error often arrives before the GCS's health check marks its node dead."""
        import ray

        deadline = time.monotonic() + settle_s
        while True:
            if not any(n["NodeID"] == node and n.get("Alive") for n in ray.nodes()):
                return False
            if time.monotonic() > deadline:
                return True
            time.sleep(0.5)

    def _collect(self, ref: Any) -> None:
        import ray
        from ray.exceptions import RayActorError, WorkerCrashedError

        node, lane, index = self.pending.pop(ref)
        try:
            r: VideoResult = ray.get(ref)
        except (RayActorError, WorkerCrashedError) as exc:
            lost = not self._node_alive(node)
            self.lanes[node] = [x for x in self.lanes[node] if x is not lane]
            if lost or not self.lanes[node]:
                self._retire(node, "node_lost" if lost else "lanes_lost")
            self._move(index, node, "node_lost" if lost else "worker_lost", str(exc).splitlines()[0])
            return
        self.lane_done[lane] = self.lane_done.get(lane, 0) + r.components
        if r.error_code in RETRY_CODES and r.status == "failed":
            self._retire(node, r.error_code)
            self._move(index, node, r.error_code, r.error_message or "")
            return
        self.results[index] = r
        self.idle[node].append(lane)
        self.vbar.update(1)

    def _poll_progress(self) -> None:
        import ray

        live = [lane for n in self.healthy for lane in self.lanes[n]]
        try:
            counts = ray.get([lane.components_done.remote() for lane in live], timeout=2)
        except Exception:  # a lane on a dying node: the next poll counts again
            return
        done = {**self.lane_done, **dict(zip(live, counts, strict=True))}
        self.bar.n = min(self.bar.total, sum(done.values()))
        self.bar.refresh()

    def run(self) -> None:
        import ray

        try:
            self._feed()
            while self.pending or any(self.queues[n] for n in self.healthy):
                if not self.pending and not self.healthy:
                    break
                ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    self._collect(ref)
                self._feed()
                self._poll_progress()
        finally:
            self.bar.close()
            self.vbar.close()
        lost = [i for i in range(len(self.videos)) if i not in self.results]
        if lost:
            why = {a["error_code"]: f'{a["node_id"][:8]}: {a["error_message"][:200]}'
                   for i in lost for a in self.attempts.get(i, [])}
            codes = sorted(why)
            code = "triton_unavailable" if "triton_unavailable" in codes else "cluster_unavailable"
            raise (TritonUnavailable if code == "triton_unavailable" else TrendflowError)(
                f"{len(lost)} video(s) could not be extracted: no healthy node left (attempts failed with "
                f"{codes}; one of each: {why})",
                code=code, attempts={str(self.videos[i][1].get('video_id')): self.attempts.get(i, []) for i in lost})


def _summary(d: Dispatcher, run_id: str, seconds: float, cp: ClusterPlan, dashboard: str | None,
             infos: dict[str, TritonInfo]) -> RayRunSummary:
    manifests = [json.loads(Path(r.manifest).read_text()) for r in d.results.values() if r.manifest]
    comps = [e for m in manifests for e in m["components"].values()]
    failed = {r.video_id: r.error_code or r.status for r in d.results.values() if not r.ok}
    nodes: dict[str, dict[str, Any]] = {}
    for n in cp.nodes:
        mine = [r for r in d.results.values() if r.node_id == n]
        nodes[n] = {"planned": len(cp.nodes[n].videos), "extracted": len(mine),
                    "status": "lost" if n in d.dead else ("retired" if n not in d.healthy else "ok"),
                    "triton": {"grpc_url": infos[n].grpc_url, "pid": infos[n].pid,
                               "started_here": infos[n].started_here, "gpu_ids": infos[n].gpu_ids}}
    return RayRunSummary(
        run_id=run_id, videos=len(d.videos), ok=len(d.results) - len(failed), failed=failed,
        cache_hits=sum(e["cache_hit"] for e in comps),
        computed=sum(not e["cache_hit"] and e["artifact"] is not None for e in comps), seconds=round(seconds, 2),
        manifests=[Path(r.manifest) for r in sorted(d.results.values(), key=lambda r: r.index) if r.manifest],
        plan=cp.to_dict(), retries=d.retries, nodes=nodes, dashboard_url=dashboard)
