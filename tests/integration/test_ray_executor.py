"""The Ray executor on a real two-node Ray cluster on this machine, each node with its own real Triton.

Protects: ``python -m extraction run --executor ray`` extracts a corpus over the cluster with artifacts identical
(bit for bit in arrays, equal meta apart from run ids, times and the planned request sizes) to the local executor's;
one Triton per node, started by the node's actor or found running; manifests record node and device per component;
the plan's Ray resource requests fit what each node declares; ``insufficient_memory`` names the node before any
video runs; a node whose Triton dies fails its in-flight video with ``triton_unavailable``, gets no more work, and
the run completes elsewhere with the retry recorded; a node whose raylet is killed mid-run loses only its in-flight
videos, retried on the other node; a rerun on another cluster shape (one node, or the local executor) reuses
everything.

The cluster is ``ray.cluster_utils.Cluster`` (``testsupport.raycluster.InProcessRayCluster``: a head and one more
node, real raylets, each ``num_cpus=1`` with its own ``cpu_mem_mb``), shared by the module; the tests run in file
order and the raylet kill comes last (it leaves a one-node cluster). Nothing here is mocked; the fixture only gives
Ray's start-up more time and starts its agents minimal (no dashboard). Nodes with fake GPUs are tested on a cluster
of their own (``test_ray_fake_gpus.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from common.errors import InsufficientMemory
from extraction import triton_server
from extraction.artifacts import latest_runs
from planning.distributed.cluster_plan import CPU_MEM, MIB
from planning.distributed.dispatch import LANE_DEPTH
from testsupport.compare_stores import artifact_differences
from testsupport.planning import synthetic_checklist
from testsupport.raycluster import InProcessRayCluster, NodeSpec

pytestmark = [pytest.mark.triton, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
NODE_MEM_MB = 4000
OBJECT_STORE = 80 * MIB  # Ray moves paths and small records here, never arrays: keep the shared machine's RAM
N_VIDEOS = 6


@pytest.fixture(scope="module")
def cluster():
    """Two nodes: the head (index 0) and the worker (index 1), whose Tritons keep their state where the CLI's
    nodes do (``DEFAULT_STATE_ROOT``), so the CLI run and the tests' runs share them."""
    from planning.distributed.ray_executor import DEFAULT_STATE_ROOT

    node = NodeSpec(cpus=1, resources={CPU_MEM: NODE_MEM_MB})
    c = InProcessRayCluster([node, node], state_root=DEFAULT_STATE_ROOT, object_store_bytes=OBJECT_STORE)
    try:
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from demo.synth import generate

    out = tmp_path_factory.mktemp("ray_corpus")
    generate(N_VIDEOS, out, seed=3, progress=False, workers=1, duration_s=(2.0, 4.0),
             resolution_mix={"640x360": 1.0})
    return out / "videos"


@pytest.fixture(scope="module")
def checklist(cluster, tmp_path_factory) -> Path:
    """A synthetic checklist stamped with the models the head node's Triton serves (started here, found running by
    the head's actor in the first run; the other node's Triton is started by its actor)."""
    state = triton_server.start(REPO / "model_repository", cluster.state_dir(cluster.node_ids[0]))
    return synthetic_checklist(state.grpc_url, tmp_path_factory.mktemp("ray_cl") / "fast.yaml")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ray_store") / "artifacts"


def _run(corpus: Path, out: Path, checklist: Path, cluster: InProcessRayCluster, **kw):
    from planning.distributed.ray_executor import run_on_ray

    return run_on_ray(corpus, out, checklist=checklist, progress=False, state_root=cluster.state_root,
                      keep_tritons=True, **kw)


def test_cli_run_on_two_nodes_equals_the_local_executor(cluster, corpus, checklist, store, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "extraction", "run", "--videos", str(corpus), "--out", str(store), "--checklist",
         str(checklist), "--executor", "ray", "--ray-address", cluster.address, "--keep-triton",
         "--no-progress"],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["ok"] == N_VIDEOS and not summary["failed"] and summary["retries"] == []
    assert "cluster plan: 6 videos on 2 node(s)" in proc.stderr
    nodes = summary["nodes"]
    assert set(nodes) == {cluster.node_ids[0], cluster.node_ids[1]}
    # one Triton per node: the head's found running, the other's started by its node's actor; both on loopback
    assert nodes[cluster.node_ids[0]]["triton"]["started_here"] is False
    assert nodes[cluster.node_ids[1]]["triton"]["started_here"] is True
    assert {n["triton"]["pid"] for n in nodes.values()} == {
        triton_server.read_state(cluster.state_dir(n)).pid for n in nodes}
    assert all(n["triton"]["grpc_url"].startswith("127.0.0.1:") for n in nodes.values())
    assert all(n["extracted"] >= 1 for n in nodes.values())
    for n, p in summary["plan"]["nodes"].items():  # what Ray is asked to hold fits what the node declares
        assert p["triton_request"][CPU_MEM] + p["lanes"] * p["lane_request"][CPU_MEM] <= NODE_MEM_MB, n
    seen_nodes = set()
    for rd in latest_runs(store).values():
        m = json.loads((rd / "manifest.json").read_text())
        assert m["node"]["node_id"] in nodes and m["plan"]["cluster"]["node_id"] == m["node"]["node_id"]
        seen_nodes.add(m["node"]["node_id"])
        for comp, e in m["components"].items():
            assert e["node_id"] == m["node"]["node_id"] and e["device"] == "cpu", comp
    assert seen_nodes == set(nodes)

    from planning.api import run_extraction

    local = tmp_path / "local"
    head_url = nodes[cluster.node_ids[0]]["triton"]["grpc_url"]
    run_extraction(corpus, local, url=head_url, checklist=checklist, progress=False)
    assert artifact_differences(store, local) == [], "bit for bit, text included (one text per forward pass)"


def test_rerun_with_the_local_executor_reuses_everything(cluster, corpus, checklist, store):
    from planning.api import run_extraction

    url = triton_server.read_state(cluster.state_dir(cluster.node_ids[0])).grpc_url
    s = run_extraction(corpus, store, url=url, checklist=checklist, progress=False)
    assert s.ok == N_VIDEOS and s.computed == 0 and s.cache_hits == N_VIDEOS * 9


def test_insufficient_memory_names_the_node_before_any_video_runs(cluster, corpus, tmp_path):
    url = triton_server.read_state(cluster.state_dir(cluster.node_ids[0])).grpc_url
    greedy = synthetic_checklist(url, tmp_path / "greedy.yaml", per_unit_bytes=5000 * MIB)  # > a node's 4000 MiB
    with pytest.raises(InsufficientMemory) as err:
        _run(corpus, tmp_path / "out", greedy, cluster)
    assert err.value.code == "insufficient_memory"
    assert err.value.details["node"] in (cluster.node_ids[0], cluster.node_ids[1])
    assert f"/{err.value.details['node'][:8]}: component" in err.value.message
    assert not list((tmp_path / "out").rglob("*.npz")) and not list((tmp_path / "out").rglob("manifest.json"))


def test_a_node_whose_triton_dies_gets_no_more_work_and_the_run_completes(cluster, corpus, checklist, store,
                                                                          tmp_path):
    killed = threading.Event()

    def on_start(node: str, _index: int) -> None:
        if node == cluster.node_ids[1] and not killed.is_set():
            killed.set()
            pid = triton_server.read_state(cluster.state_dir(cluster.node_ids[1])).pid
            os.killpg(pid, signal.SIGKILL)  # the node's Triton dies with this video in flight

    s = _run(corpus, tmp_path / "out", checklist, cluster, on_start=on_start)
    assert killed.is_set()
    assert s.ok == N_VIDEOS and not s.failed
    assert s.nodes[cluster.node_ids[1]]["status"] == "retired"
    moved = [r for r in s.retries if r["from_node"] == cluster.node_ids[1]]
    assert moved and {r["error_code"] for r in moved} == {"triton_unavailable"}
    assert all(r["to_node"] == cluster.node_ids[0] for r in moved)
    for r in moved:  # the retried video's manifest records the failed attempt and where it finally ran
        (rd,) = [p for (_, v), p in latest_runs(tmp_path / "out").items() if v == r["video_id"]]
        m = json.loads((rd / "manifest.json").read_text())
        assert m["node"]["node_id"] == cluster.node_ids[0]
        assert m["attempts"][0] == {**m["attempts"][0], "node_id": cluster.node_ids[1],
                                    "error_code": "triton_unavailable"}
    assert artifact_differences(tmp_path / "out", store) == []
    # the node's kept actor starts a new server when the next run asks it (the recorded one is dead)


def test_each_node_pilots_its_own_videos_and_the_rest_is_replanned(cluster, corpus, checklist, store, tmp_path):
    """``pilot_videos=1``: each node first extracts one video of its own share on one lane; the rest is planned
    again with what each node measured, and the plan the rest runs with records every node's pilot and time
    factors. The artifacts are those of the local executor."""
    plans = []
    s = _run(corpus, tmp_path / "out", checklist, cluster, pilot_videos=1, on_plan=plans.append)
    assert s.ok == N_VIDEOS and not s.failed and s.retries == []
    assert 0 < s.pilot_seconds < s.seconds
    (cp,) = plans
    assert sum(len(p.videos) for p in cp.nodes.values()) == N_VIDEOS - 4  # pilots: one warm-up, one measured
    for n in cluster.node_ids:
        assert s.nodes[n]["extracted"] >= 1
        if cp.nodes[n].plan is not None:
            cal = cp.nodes[n].plan.calibration
            assert len(cal["pilot_videos"]) == 1 and cal["pilot_seconds"] > 0 and cal["time_factors"]
    assert artifact_differences(tmp_path / "out", store) == []


def test_a_killed_raylet_loses_only_its_in_flight_video(cluster, corpus, checklist, store, tmp_path):
    """The worker node dies with a video provably in flight: it holds the video's lease in the store (its lane is
    computing it) when the test freezes that lane (SIGSTOP, so that it cannot finish the video in the second the
    worker process takes to notice its raylet is gone), kills the node's raylet and waits until the GCS has marked
    the node dead; then the lane is killed too (the machine is gone). That video, and at most the one queued behind
    it in the lane (one lane per node, ``LANE_DEPTH`` videos submitted to it), is retried on the head -- nothing the
    node had finished; the run completes with the retries recorded in the summary and in the videos' manifests; a
    rerun on the one node left reuses everything."""
    from extraction.runner import discover_videos
    from extraction.store import SharedFilesystemStore

    head, worker = cluster.node_ids
    out, run_id = tmp_path / "out", "killed-raylet"
    vids = discover_videos(corpus)
    leases = SharedFilesystemStore(out)
    victim: dict[str, object] = {}

    def on_start(node: str, index: int) -> None:
        if node != worker or victim:
            return
        meta = vids[index][1]
        deadline = time.monotonic() + 120
        while (lease := leases.current(str(meta["platform_id"]), str(meta["video_id"]))) is None or (
                lease.run_id != run_id):
            assert time.monotonic() < deadline, "the worker's lane never took the video's lease"
            time.sleep(0.05)
        os.kill(lease.pid, signal.SIGSTOP)  # mid-video: the lease is held, the manifest not written
        cluster.kill_raylet(1)
        victim.update(video_id=str(meta["video_id"]), pid=lease.pid, death_s=cluster.wait_dead(worker))
        os.kill(lease.pid, signal.SIGKILL)

    s = _run(corpus, out, checklist, cluster, on_start=on_start, run_id=run_id, max_videos_in_parallel=1)
    assert victim and not cluster.alive(worker)
    assert s.ok == N_VIDEOS and not s.failed
    assert s.nodes[worker]["status"] == "lost" and s.plan["nodes"][worker]["lanes"] == 1
    retried = [r["video_id"] for r in s.retries]
    assert victim["video_id"] in retried and len(retried) <= LANE_DEPTH, s.retries
    assert all(r == {"video_id": r["video_id"], "from_node": worker, "to_node": head, "error_code": "node_lost"}
               for r in s.retries)
    for video_id in retried:
        (rd,) = [p for (_, v), p in latest_runs(out).items() if v == video_id]
        m = json.loads((rd / "manifest.json").read_text())
        assert m["run_id"] == run_id and m["node"]["node_id"] == head
        assert [(a["node_id"], a["status"], a.get("error_code")) for a in m["attempts"]] == [
            (worker, "failed", "node_lost"), (head, "ok", None)]
    assert artifact_differences(out, store) == []
    again = _run(corpus, out, checklist, cluster)  # one node now: another cluster shape
    assert set(again.nodes) == {head}
    assert again.ok == N_VIDEOS and again.computed == 0 and again.cache_hits == N_VIDEOS * 9
