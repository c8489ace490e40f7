"""What runs on each node of the cluster: the probe, the node's Triton actor and its lane actors.

* :func:`probe_node` (a task pinned to the node) reports the node's hardware id and devices with the memory free
  now -- GPUs from NVML, else the GPUs the node declares to Ray (a CPU-only test cluster can declare fake ones).
* :class:`NodeTriton` (one actor per node) starts the node's Triton on loopback (or finds the one already running
  from the node's state folder), resolves the models and reports them; it holds the models' fixed memory and the
  node's GPUs as Ray resources, and stops the server at the end if it started it.
* :class:`VideoLane` (``videos_in_parallel`` actors per node, each holding one video's working memory) runs one
  video at a time with the runner against its node's Triton, under the store's lease for that video, and adds the
  node and device of each component to the manifest.

Ray wraps these classes as actors in :mod:`planning.distributed.ray_executor`; they are plain classes here so that
the module imports without Ray's decorators running at import.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Any

from common.errors import TrendflowError
from planning.distributed.cluster_plan import GPU_MEM, MIB
from planning.specs import Device

POLL_GROUP = "poll"  # a lane's concurrency group for calls that must not wait behind its running video


@dataclasses.dataclass(frozen=True)
class NodeProbe:
    """A node's own view of itself (the driver adds its declared resources)."""

    node_id: str
    address: str
    hardware_id: str
    devices: tuple[Device, ...]
    sees_store: bool
    pid: int


def probe_node(out_root: str, resources: dict[str, float]) -> NodeProbe:
    """The node this runs on: hardware id, CPU RAM free and each GPU's free memory, whether it sees the store.

    ``resources`` are the node's declared Ray resources: the CPU device's concurrency is the CPUs the node gives
    Ray (a node started with ``--num-cpus 1`` is one core to the planner), and without NVML the GPUs Ray says the
    node has are reported with an equal share of the node's declared ``gpu_mem_mb`` (fake GPUs of a test cluster).
    """
    import ray

    from planning.checklist import detect_hardware
    from planning.inputs import discover_devices

    devices = discover_devices(background=0.0, cpus=resources.get("CPU", os.cpu_count() or 1),
                               declared_gpus=int(resources.get("GPU", 0)),
                               declared_gpu_bytes=int(resources.get(GPU_MEM, 0) * MIB))
    root = Path(out_root)
    probe_dir = root if root.exists() else root.parent
    return NodeProbe(node_id=ray.get_runtime_context().get_node_id(), address=ray.util.get_node_ip_address(),
                     hardware_id=detect_hardware().id,
                     devices=tuple(devices), sees_store=probe_dir.is_dir() and os.access(probe_dir, os.W_OK),
                     pid=os.getpid())


@dataclasses.dataclass
class TritonInfo:
    """A node's Triton as its actor reports it."""

    node_id: str
    grpc_url: str
    pid: int
    started_here: bool
    handles: dict[str, Any]  # component -> extraction.provider.ModelHandle
    loaded: frozenset[str] | None
    current_instances: dict[str, int]
    gpu_ids: list[str]  # the GPUs Ray gave this actor (CUDA_VISIBLE_DEVICES for the server)


class NodeTriton:
    """One Triton per node (see the module docstring)."""

    def __init__(self, state_dir: str, model_repository: str, profile: str, mapping: str, seed: int) -> None:
        import ray

        from extraction import triton_server

        self.state_dir = Path(state_dir)
        before = triton_server.read_state(self.state_dir)
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        self.model_repository = Path(model_repository)
        self.state = triton_server.start(self.model_repository, self.state_dir)
        self.started_here = before is None or before.pid != self.state.pid
        self.node_id = ray.get_runtime_context().get_node_id()
        self.profile, self.mapping, self.seed = profile, mapping, seed

    def info(self) -> TritonInfo:
        """The server's models now; a server that died since the last run (this actor outlives runs when kept) is
        started again first."""
        from extraction import triton_server
        from extraction.config import load_profile

        pid = self.state.pid
        self.state = triton_server.start(self.model_repository, self.state_dir)
        self.started_here = self.started_here or self.state.pid != pid
        from extraction.provider import TritonModelProvider
        from extraction.runner import ExtractionRun
        from planning.residency import current_instances, loaded_models

        provider = TritonModelProvider(self.state.grpc_url)
        run = ExtractionRun(cfg=load_profile(self.profile, Path(self.mapping), seed=self.seed), out_root=Path("."),
                            provider=provider, progress=False)
        handles = run.resolve_models()
        loaded = loaded_models(provider)
        names = {c: h.name for c, h in handles.items()}
        return TritonInfo(node_id=self.node_id, grpc_url=self.state.grpc_url, pid=self.state.pid,
                          started_here=self.started_here, handles=handles,
                          loaded=frozenset(c for c, n in names.items() if n in loaded) if loaded is not None else None,
                          current_instances=current_instances(provider.client, names), gpu_ids=self.gpu_ids)

    def place(self, placements: dict[str, tuple[str, int, str]]) -> list[str]:
        """Load each GPU-placed model with one instance group on its planned GPU (``component -> (model,
        instances, device)``); returns the models reloaded. CPU placements are left as loaded."""
        from extraction.provider import TritonModelProvider
        from planning.residency import placement_config

        client = TritonModelProvider(self.state.grpc_url).client
        done = []
        for model, instances, device in placements.values():
            if device.startswith("gpu"):
                client.load_model(model, config=placement_config(client, model, instances, device))
                done.append(model)
        return done

    def alive(self) -> bool:
        from extraction import triton_server

        return bool(triton_server.status(self.state_dir)["ready"])

    def stop(self) -> bool:
        """Stop the server if this actor started it (a server found running is left as found)."""
        from extraction import triton_server

        return triton_server.stop(self.state_dir) if self.started_here else False


@dataclasses.dataclass(frozen=True)
class LaneSpec:
    """Everything a lane needs; built by the driver from the node's plan."""

    node_id: str
    address: str
    grpc_url: str
    out_root: str
    profile: str
    mapping: str
    seed: int
    batch_sizes: dict[str, int]
    plan: dict[str, Any]  # the node's plan as manifests record it
    devices: dict[str, str]  # component -> planned device on the node


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """One attempt at one video on one lane."""

    index: int
    video_id: str
    node_id: str
    ok: bool
    status: str  # the manifest's status, or "failed" when the attempt raised
    error_code: str | None
    error_message: str | None
    manifest: str | None
    seconds: float
    components: int  # components finished in this attempt (progress)


class VideoLane:
    """Runs one video at a time on its node (see the module docstring)."""

    def __init__(self, spec: LaneSpec) -> None:
        from extraction.config import load_profile
        from extraction.provider import TritonModelProvider
        from extraction.runner import ExtractionRun
        from extraction.store import SharedFilesystemStore

        self.spec = spec
        self.store = SharedFilesystemStore(Path(spec.out_root))
        self.run = ExtractionRun(cfg=load_profile(spec.profile, Path(spec.mapping), seed=spec.seed),
                                 out_root=Path(spec.out_root), provider=TritonModelProvider(spec.grpc_url),
                                 batch_sizes=dict(spec.batch_sizes), plan=spec.plan, progress=False)
        self.run.resolve_models()
        self._done = 0
        self._lock = threading.Lock()

    def set_plan(self, batch_sizes: dict[str, int], plan: dict[str, Any], devices: dict[str, str]) -> None:
        """Run the next videos under a new plan of the node (the re-plan after the pilot)."""
        self.spec = dataclasses.replace(self.spec, batch_sizes=dict(batch_sizes), plan=plan, devices=dict(devices))
        self.run.batch_sizes, self.run.plan = dict(batch_sizes), plan

    def components_done(self) -> int:
        """Components this lane has finished so far (the driver's progress bar polls it)."""
        with self._lock:
            return self._done

    def _tick(self, _name: str) -> None:
        with self._lock:
            self._done += 1

    def process(self, index: int, path: str, meta: dict[str, Any], run_id: str, attempts: list[dict[str, Any]],
                steal_from: list[str]) -> VideoResult:
        """Extract one video into ``run_id`` under its lease; a Triton failure comes back as a failed result
        (``triton_unavailable``), not an exception, so the driver can retire this node and retry elsewhere."""
        from extraction.components import VideoInput
        from extraction.runner import VideoJob, process_video

        s = self.run.cfg.sampling
        job = VideoJob(VideoInput(str(path), meta, s.fps, s.max_frames, s.max_side), run_id)
        video = job.video
        before = self.components_done()
        t0 = time.perf_counter()
        try:
            with self.store.lease(video.platform_id, video.video_id, self.spec.node_id, run_id,
                                  steal_from=steal_from):
                manifest = process_video(self.run, job, on_component=self._tick)
                mpath = Path(self.spec.out_root) / video.platform_id / video.video_id / run_id / "manifest.json"
                node = {"node_id": self.spec.node_id, "address": self.spec.address, "pid": os.getpid()}
                self.store.annotate_manifest(mpath, {
                    "node": node, "attempts": [*attempts, {**node, "status": manifest["status"]}],
                    "components": {c: {"node_id": self.spec.node_id, "device": self.spec.devices.get(c, "cpu")}
                                   for c in manifest["components"]}})
        except TrendflowError as exc:
            return VideoResult(index, video.video_id, self.spec.node_id, False, "failed", exc.code, exc.message, None,
                               round(time.perf_counter() - t0, 3), self.components_done() - before)
        finally:
            video.release()
        return VideoResult(index, video.video_id, self.spec.node_id, manifest["status"] == "ok", manifest["status"],
                           manifest.get("error_code"), manifest.get("error_message"), str(mpath),
                           round(time.perf_counter() - t0, 3), self.components_done() - before)
