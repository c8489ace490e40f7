"""The Ray executor's driver loop: hand each node's lanes their videos, move videos off lost nodes, count progress.

A :class:`Dispatcher` runs in phases over one run id: the pilot (:mod:`planning.distributed.cluster_pilot`: each
node's own pilot videos on one lane, no stealing) and then the rest of the corpus on the re-planned lanes
(:meth:`Dispatcher.replan`). Results, failed attempts and retries accumulate over the phases; a node lost in the
pilot stays lost.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from common.errors import TrendflowError, TritonUnavailable
from planning.distributed.cluster_plan import ClusterPlan
from planning.distributed.ray_nodes import POLL_GROUP, VideoResult

RETRY_CODES = ("triton_unavailable", "model_not_found")  # the node's fault, not the video's: retry elsewhere
NODE_DEATH_SETTLE_S = 10.0  # after a lane dies: how long to wait for its node to be marked dead, if it is
PROGRESS_POLL_S = 1.0  # the component bar's refresh (the video bar moves with every result)
LANE_DEPTH = 2  # videos submitted per lane at once: the running one and the next (see Dispatcher.run)


class Dispatcher:
    """Feeds each node's lanes its planned videos, moves videos away from lost nodes, keeps the progress bar."""

    def __init__(self, cp: ClusterPlan, lanes: dict[str, list[Any]], videos: Sequence[tuple[Path, dict]],
                 run_id: str, n_components: int, progress: bool,
                 on_start: Callable[[str, int], None] | None) -> None:
        from tqdm.auto import tqdm

        self.videos, self.run_id, self.on_start = videos, run_id, on_start
        self.lanes = {n: list(ls) for n, ls in lanes.items()}
        self.healthy = set(lanes)
        self.dead: set[str] = set()
        self.cp = cp
        self.queues: dict[str, deque[int]] = {n: deque() for n in lanes}
        self.idle: dict[str, list[Any]] = {n: [] for n in lanes}
        self.steal = True
        self.pending: dict[Any, tuple[str, Any, int, float]] = {}
        self.attempts: dict[int, list[dict[str, Any]]] = {}
        self.retries: list[dict[str, Any]] = []
        self.results: dict[int, VideoResult] = {}
        self.seconds: dict[int, float] = {}  # video -> submission to result of its good attempt (depth 1: its run)
        self.lane_done: dict[Any, int] = {}
        self.progress, self._polled = progress, 0.0
        self.bar = tqdm(total=len(videos) * n_components, desc=f"extract {run_id} (cluster)", unit="comp",
                        disable=not progress, file=sys.stderr)
        self.vbar = tqdm(total=len(videos), desc="videos", unit="video", disable=not progress, file=sys.stderr)

    def replan(self, cp: ClusterPlan, lanes: dict[str, list[Any]]) -> None:
        """Run the rest under ``cp`` with ``lanes`` (nodes lost so far stay lost)."""
        self.cp = cp
        for n, ls in lanes.items():
            self.lanes[n] = list(ls)
            self.queues.setdefault(n, deque())
            self.idle.setdefault(n, [])
        self.healthy &= set(lanes)

    def _submit(self, node: str, index: int) -> None:
        lane = self.idle[node].pop()
        path, meta = self.videos[index]
        ref = lane.process.remote(index, str(path), meta, self.run_id, self.attempts.get(index, []),
                                  sorted(self.dead))
        self.pending[ref] = (node, lane, index, time.perf_counter())
        if self.on_start is not None:
            self.on_start(node, index)

    def _feed(self) -> None:
        for node in sorted(self.healthy):
            while self.idle[node]:
                if not self.queues[node]:
                    donor = max((n for n in self.healthy if n != node), key=lambda n: len(self.queues[n]),
                                default=None)
                    if not self.steal or donor is None or len(self.queues[donor]) == 0:
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

        node, lane, index, t0 = self.pending.pop(ref)
        try:
            r: VideoResult = ray.get(ref)
        except (RayActorError, WorkerCrashedError) as exc:
            lost = not self._node_alive(node)
            self.lanes[node] = [x for x in self.lanes[node] if x is not lane]
            self.idle[node] = [x for x in self.idle[node] if x is not lane]  # its other slot, if free
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
        self.seconds[index] = time.perf_counter() - t0
        self.idle[node].append(lane)
        self.vbar.update(1)

    def _poll_progress(self) -> None:
        """Refresh the component bar from the lanes, at most every :data:`PROGRESS_POLL_S` and only when a bar is
        shown: each poll is a call into every lane, on the node's cores, taking the GIL from its running video."""
        import ray

        if not self.progress or time.monotonic() - self._polled < PROGRESS_POLL_S:
            return
        self._polled = time.monotonic()
        live = [lane for n in self.healthy for lane in self.lanes[n]]
        try:
            counts = ray.get([lane.components_done.options(concurrency_group=POLL_GROUP).remote() for lane in live],
                             timeout=2)
        except Exception:  # a lane on a dying node: the next poll counts again
            return
        done = {**self.lane_done, **dict(zip(live, counts, strict=True))}
        self.bar.n = min(self.bar.total, sum(done.values()))
        self.bar.refresh()

    def run(self, queues: Mapping[str, Sequence[int]] | None = None, *, steal: bool = True,
            lanes_per_node: int | None = None, depth: int = LANE_DEPTH) -> None:
        """One phase: each healthy node takes ``queues[node]`` (default: its videos in the plan) on its lanes (at
        most ``lanes_per_node`` of them), idle nodes steal from the longest queue when ``steal``.

        Each lane has up to ``depth`` videos submitted: the one it runs and the ones queued behind it in its actor,
        so it starts the next without waiting for the driver to hear of the last and send another. A queued video
        is committed to its lane (not stolen) and, if the node is lost, retried elsewhere like the running one.
        The pilot runs with ``depth=1``: its seconds per video are measured from submission to result."""
        import ray

        plan_queues = queues if queues is not None else {n: p.videos for n, p in self.cp.nodes.items()}
        for n in self.healthy:
            self.queues[n] = deque(plan_queues.get(n, ()))
            self.idle[n] = list(self.lanes[n][:lanes_per_node] if lanes_per_node else self.lanes[n]) * depth
        self.steal = steal
        self._feed()
        while self.pending or any(self.queues[n] for n in self.healthy):
            if not self.pending and not self.healthy:
                break
            ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=0.5)
            for ref in ready:
                self._collect(ref)
            self._feed()
            self._poll_progress()

    def close(self) -> None:
        self.bar.close()
        self.vbar.close()

    def check_complete(self) -> None:
        """Raise ``triton_unavailable``/``cluster_unavailable`` if some video got no result on any node."""
        lost = [i for i in range(len(self.videos)) if i not in self.results]
        if not lost:
            return
        why = {a["error_code"]: f'{a["node_id"][:8]}: {a["error_message"][:200]}'
               for i in lost for a in self.attempts.get(i, [])}
        codes = sorted(why)
        code = "triton_unavailable" if "triton_unavailable" in codes else "cluster_unavailable"
        raise (TritonUnavailable if code == "triton_unavailable" else TrendflowError)(
            f"{len(lost)} video(s) could not be extracted: no healthy node left (attempts failed with "
            f"{codes}; one of each: {why})",
            code=code, attempts={str(self.videos[i][1].get('video_id')): self.attempts.get(i, []) for i in lost})
