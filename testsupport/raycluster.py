"""A real multi-node Ray cluster on one machine: one ``ray start --block`` process (and session) per node.

Each node is a real raylet with its own ``--num-cpus``, ``--resources`` (``cpu_mem_mb``...) and, optionally, a CPU
affinity (``taskset``: its raylet, its workers and every process they start -- the node's Triton -- run on those
cores only). A node is stopped by killing its session (the processes this helper started); :meth:`kill_raylet`
kills only a node's raylet, the fault the Ray executor must survive.

On a loaded 2-core machine ``ray start``'s 30 s deadline for a raylet to register can be missed: a node start is
retried, and the ``ray start`` processes run at a raised priority while they start (put back to normal once the
node is up, so workers and servers run at the machine's normal priority). (Ray is pinned to 2.52.1: later
releases' raylets abort when their agents take more than a hard-coded 15 s to start, ray-project/ray#65983.)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

STARTUP_NICE = -5


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
                 attempts: int = 3, env: dict[str, str] | None = None) -> None:
        self.specs = nodes
        self.object_store_bytes = object_store_bytes
        self.attempts = attempts
        self.env = {**os.environ, **(env or {})}
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
            cmd += ["--head", f"--port={self.port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false"]
            if self.temp_dir is not None:
                cmd.append(f"--temp-dir={self.temp_dir}")
        else:
            cmd += [f"--address={self.address}", "--node-ip-address=127.0.0.1"]
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
