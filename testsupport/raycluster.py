"""Real multi-node Ray clusters on one machine, for the tests and the scale-out benchmark.

* :class:`InProcessRayCluster`: ``ray.cluster_utils.Cluster`` (real raylets and GCS, started from this process,
  which is the driver), for the tests: quick to start, nodes added and killed from the test.
* :class:`LocalRayCluster`: one ``ray start --block`` process (and session) per node, for the benchmark.

Each node is a real raylet with its own ``--num-cpus``, ``--resources`` (``cpu_mem_mb``...) and, optionally, a CPU
affinity (``taskset``: its raylet, its workers and every process they start -- the node's Triton -- run on those
cores only). A node is stopped by killing its session (the processes this helper started); :meth:`kill_raylet`
kills only a node's raylet, the fault the Ray executor must survive.

On a loaded 2-core machine ``ray start``'s 30 s deadline for a raylet to register can be missed: a node start is
retried, and the ``ray start`` processes run at a raised priority while they start (put back to normal once the
node is up, so workers and servers run at the machine's normal priority). (Ray is pinned to 2.52.1: later
releases' raylets abort when their agents take more than a hard-coded 15 s to start, ray-project/ray#65983.)

The nodes are set up for a benchmark of one-core nodes, where Ray's own processes are the overhead
(docs/scaleout.md measures each): all nodes share one host, so at most the first runs a log monitor (Ray's advice
for ``--include-log-monitor``: one per physical host), and none with ``log_monitor=False`` (the default: the
benchmark's driver takes no worker logs, ``log_to_driver=False``; the monitor polls the log files 10 times a
second); the dashboard is off (``--include-dashboard=false``), so the agents report process stats for it every
60 s, not Ray's 5 s (``REPORTER_UPDATE_INTERVAL_MS``); and no idle worker is prestarted per CPU
(``RAY_enable_worker_prestart``: the executor's actors take no CPU slot, so a prestarted worker only idles). This
process's environment or ``env`` override these settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

STARTUP_NICE = -5
# the agents' stats for a dashboard that is not started (Ray's default: every 5 s); no idle prestarted workers
LEAN_NODE_ENV = {"REPORTER_UPDATE_INTERVAL_MS": "60000", "RAY_enable_worker_prestart": "0",
                 "RAY_prestart_worker_first_driver": "0"}
MIB = 2**20


@dataclass
class NodeSpec:
    cpus: int = 1
    resources: dict[str, float] = field(default_factory=dict)
    gpus: int = 0
    cores: list[int] | None = None  # CPU affinity of the whole node (taskset)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_bin() -> str:
    return str(Path(sys.executable).parent / "ray")


class LocalRayCluster:
    """Start with :meth:`start`; always :meth:`shutdown` (a fixture finalizer)."""

    def __init__(self, nodes: list[NodeSpec], *, object_store_bytes: int = 80 * 2**20, temp_dir: Path | None = None,
                 attempts: int = 3, env: dict[str, str] | None = None, log_monitor: bool = False) -> None:
        self.specs = nodes
        self.object_store_bytes = object_store_bytes
        self.attempts = attempts
        self.env = {**LEAN_NODE_ENV, **os.environ, **(env or {})}
        self.log_monitor = log_monitor
        self.procs: list[subprocess.Popen] = []
        self.ports: list[int] = []
        self.port = _free_port()
        self.temp_dir = temp_dir

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _cmd(self, i: int, spec: NodeSpec) -> list[str]:
        cmd = [_ray_bin(), "start", "--block", f"--num-cpus={spec.cpus}", f"--num-gpus={spec.gpus}",
               f"--resources={json.dumps(spec.resources)}", f"--object-store-memory={self.object_store_bytes}",
               "--disable-usage-stats"]
        if i == 0:
            cmd += ["--head", f"--port={self.port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                    f"--include-log-monitor={str(self.log_monitor).lower()}"]
            if self.temp_dir is not None:
                cmd.append(f"--temp-dir={self.temp_dir}")
        else:
            cmd += [f"--address={self.address}", "--node-ip-address=127.0.0.1", "--include-log-monitor=false"]
        if spec.cores is not None:
            cmd = ["taskset", "-c", ",".join(map(str, spec.cores)), *cmd]
        return cmd

    def _start_node(self, i: int, spec: NodeSpec, timeout_s: float = 180.0) -> None:
        """Start node ``i`` and wait for ``ray start`` to say it is up (its output, no polling process)."""
        import threading

        for attempt in range(self.attempts):
            port = _free_port()
            p = subprocess.Popen([*self._cmd(i, spec), f"--node-manager-port={port}"], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
                                 preexec_fn=lambda: os.nice(STARTUP_NICE))
            up = threading.Event()
            tail: list[str] = []

            def read(p=p, up=up, tail=tail) -> None:
                for raw in p.stdout:
                    line = raw.decode(errors="replace")
                    tail.append(line)
                    del tail[:-40]
                    if "Ray runtime started" in line:
                        up.set()

            threading.Thread(target=read, daemon=True).start()
            if up.wait(timeout_s) and p.poll() is None:
                self.procs.append(p)
                self.ports.append(port)
                self._renice(p.pid, 0)
                return
            self._kill_session(p)
            if attempt == self.attempts - 1:
                raise RuntimeError(f"ray node {i} did not start after {self.attempts} attempts: {''.join(tail)}")

    def node_id(self, node: int) -> str:
        """Ray's id of node ``node`` (matched by its node manager port); needs ``ray.init`` in this process."""
        import ray

        return next(n["NodeID"] for n in ray.nodes() if n["NodeManagerPort"] == self.ports[node])

    def start(self) -> LocalRayCluster:
        try:
            for i, spec in enumerate(self.specs):
                self._start_node(i, spec)
        except BaseException:
            self.shutdown()
            raise
        return self

    @staticmethod
    def _renice(pid: int, value: int) -> None:
        import psutil

        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                try:
                    proc.nice(value)
                except psutil.Error:
                    continue
        except psutil.Error:
            return

    def raylet_pid(self, node: int) -> int:
        import psutil

        for proc in psutil.Process(self.procs[node].pid).children(recursive=True):
            if proc.name() == "raylet":
                return proc.pid
        raise RuntimeError(f"node {node} has no raylet")

    def kill_raylet(self, node: int) -> None:
        os.kill(self.raylet_pid(node), signal.SIGKILL)

    @staticmethod
    def _kill_session(p: subprocess.Popen) -> None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def shutdown(self) -> None:
        for p in reversed(self.procs):
            self._kill_session(p)
        self.procs.clear()


def agent_ports() -> dict[str, int]:
    """Fixed ports for a node's agents, chosen here (nothing to discover while the node starts)."""
    out = {}
    for key in ("metrics_agent_port", "metrics_export_port", "dashboard_agent_listen_port", "runtime_env_agent_port"):
        out[key] = _free_port()
    return out


@contextlib.contextmanager
def patient_raylet_startup(wait_s: float = 90.0):
    """Ray gives a starting raylet a fixed 30 s to register with the GCS (``ray._private.node``), which a 2-core
    machine shared with other test runs exceeds; its registration lookup retries here for up to ``wait_s``.
    Nothing else of Ray changes: the raylets, the GCS and the registration are real."""
    from ray._private import services
    from ray._private import utils as ray_utils

    original = services.get_node

    def get_node(*args, **kwargs):
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return original(*args, **kwargs)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    services.get_node = get_node
    # Minimal agents (no dashboard HTTP server, which these tests do not use): the full dashboard agent is the
    # slowest process of a node start on a loaded 2-core machine.
    deps = ray_utils.get_dashboard_dependency_error
    ray_utils.get_dashboard_dependency_error = lambda: "agents started minimal by the test fixture"
    try:
        yield
    finally:
        services.get_node = original
        ray_utils.get_dashboard_dependency_error = deps


class InProcessRayCluster:
    """A head and more nodes of ``ray.cluster_utils.Cluster`` (each a real raylet with its own ``num_cpus``,
    ``num_gpus`` and ``resources``; :attr:`NodeSpec.cores` is not applied), this process connected as driver.
    :attr:`nodes` / :attr:`node_ids` start with the node the driver is attached to (not always the head: see
    ``__init__``); the specs are applied in order, so give every node the same spec when a test kills one.

    ``state_root`` is where the Ray executor keeps each node's Triton state (``node-<node id>``): the Tritons of
    this cluster's nodes are stopped by :meth:`shutdown`, none of another run's. A killed raylet is noticed by the
    GCS within ~3 s (health checks every second) instead of Ray's default ~30 s. Always :meth:`shutdown`.
    """

    def __init__(self, nodes: list[NodeSpec], *, state_root: Path, object_store_bytes: int = 80 * MIB) -> None:
        import ray
        from ray.cluster_utils import Cluster

        self.state_root = Path(state_root)
        self.cluster = None
        os.environ.setdefault("RAY_agent_register_timeout_ms", "180000")  # agents boot slowly on a loaded machine
        head, *rest = nodes

        def args(spec: NodeSpec) -> dict:
            return dict(num_cpus=spec.cpus, num_gpus=spec.gpus, resources=dict(spec.resources),
                        object_store_memory=object_store_bytes, **agent_ports())

        try:
            with patient_raylet_startup():
                self.cluster = Cluster(initialize_head=True, head_node_args=dict(
                    **args(head), include_dashboard=False,
                    _system_config={"health_check_period_ms": 1000, "health_check_failure_threshold": 3,
                                    "health_check_timeout_ms": 1000}))
                self.nodes = [self.cluster.head_node, *(self.cluster.add_node(**args(spec)) for spec in rest)]
                self.cluster.wait_for_nodes()
            ray.init(address=self.cluster.address, log_to_driver=False)
        except BaseException:
            self.shutdown()
            raise
        # All nodes share this machine's IP, and Ray attaches the driver to any raylet on the driver's IP, not
        # necessarily the head's. The driver's node must come first: a test that kills a node kills one of the
        # others, else the raylets kill every worker the driver owns ("owner's node died") and the test sees
        # its surviving lanes die too.
        mine = ray.get_runtime_context().get_node_id()
        self.nodes.sort(key=lambda n: n.node_id != mine)
        self.node_ids = [n.node_id for n in self.nodes]

    @property
    def address(self) -> str:
        return self.cluster.address

    def state_dir(self, node_id: str) -> Path:
        return self.state_root / f"node-{node_id[:12]}"

    def kill_raylet(self, i: int) -> None:
        """SIGKILL node ``i``'s raylet (the fault of a machine lost mid-run, as the cluster sees it)."""
        from ray._private import ray_constants

        self.nodes[i].all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.kill()

    @staticmethod
    def alive(node_id: str) -> bool:
        """Whether the GCS's node table (Ray's state of the cluster) says the node is alive."""
        import ray

        return any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes())

    def wait_dead(self, node_id: str, timeout_s: float = 120.0) -> float:
        """Wait until the GCS has marked ``node_id`` dead; returns the seconds it took. Raises ``TimeoutError``."""
        t0 = time.monotonic()
        while self.alive(node_id):
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"node {node_id[:8]} still alive after {timeout_s:.0f}s")
            time.sleep(0.2)
        return time.monotonic() - t0

    def shutdown(self) -> None:
        import ray

        from extraction import triton_server

        ray.shutdown()
        try:
            if self.cluster is not None:
                self.cluster.shutdown()
        finally:
            for node_id in getattr(self, "node_ids", ()):
                triton_server.stop(self.state_dir(node_id))
                shutil.rmtree(self.state_dir(node_id), ignore_errors=True)
