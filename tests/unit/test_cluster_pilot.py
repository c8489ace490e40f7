"""The cluster pilot on simulated nodes: each node pilots videos of its own share, its factors are measured
from its own manifests against its own stage model, and a node whose pilot ran slow gets fewer of the rest.
Pure: no Ray, no server (the manifests are files written here, as a lane writes them)."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

from planning.distributed.cluster_pilot import (
    NodePilot,
    measure_node_pilots,
    node_component_seconds,
    pick_node_pilots,
)
from planning.distributed.cluster_plan import plan_cluster
from planning.pilot import FACTOR_BOUNDS
from testsupport.planning import COMPS, gpu_checklist, gpu_node, videos

CL = {"synthetic": gpu_checklist()}


def _cluster(n_videos: int = 40):
    a, b = gpu_node("a", [16.0, 16.0]), gpu_node("b", [16.0, 16.0])
    vids = videos(n_videos, 24)
    return [a, b], vids, plan_cluster(vids, COMPS, [a, b], CL, safety_margin=0.1)


def test_each_node_pilots_videos_of_its_own_share():
    nodes, vids, cp = _cluster()
    cached = [set() for _ in vids]
    pilots = pick_node_pilots(cp, vids, cached, COMPS, CL)
    assert set(pilots) == {n.node_id for n in nodes}
    for n, p in pilots.items():
        assert len(p.videos) == 2 and set(p.videos) <= set(cp.nodes[n].videos)  # pilot_size(20) == 2
        assert len(p.weights) == 2 and sum(p.weights) == pytest.approx(2.0)
    assert pick_node_pilots(cp, vids, cached, COMPS, CL, per_node=0) == {}
    assert pick_node_pilots(cp, vids, [{"od"} for _ in vids], COMPS, CL) == {}  # nothing left to measure


def test_a_share_below_the_pilot_minimum_runs_no_pilot_unless_asked():
    _, vids, cp = _cluster(n_videos=16)  # 8 per node, below PILOT_MIN_VIDEOS
    cached = [set() for _ in vids]
    assert pick_node_pilots(cp, vids, cached, COMPS, CL) == {}
    asked = pick_node_pilots(cp, vids, cached, COMPS, CL, per_node=1)
    assert all(len(p.videos) == 1 and p.warmup not in p.videos for p in asked.values()) and len(asked) == 2


def _manifest(tmp_path, i: int, seconds: dict[str, float]) -> str:
    path = tmp_path / f"m{i}.json"
    path.write_text(json.dumps({"components": {c: {"latency_s": s, "cache_hit": False, "status": "ok"}
                                               for c, s in seconds.items()}}))
    return str(path)


def _pilot_run(tmp_path, nodes, vids, cp, slowness: dict[str, float], checklists=CL):
    """Each node's first two videos as its pilot, measured ``slowness`` x its stage model; node a's second video
    was extracted by node b (a retry): it does not count for a."""
    pilots = {n.node_id: NodePilot(videos=cp.nodes[n.node_id].videos[:2], weights=[1.0, 1.0]) for n in nodes}
    a, b = (n.node_id for n in nodes)
    results, seconds = {}, {}
    for n, slow in slowness.items():
        pred = node_component_seconds(cp, n, pilots[n].videos, vids, COMPS, CL["synthetic"])
        for i, per in zip(pilots[n].videos, pred, strict=True):
            results[i] = SimpleNamespace(node_id=n, manifest=_manifest(tmp_path, i, {c: slow * s for c, s in
                                                                                     per.items()}))
            seconds[i] = slow * sum(per.values()) + 0.05
    retried = pilots[a].videos[1]
    results[retried] = SimpleNamespace(node_id=b, manifest=results[retried].manifest)
    measure_node_pilots(pilots, results, seconds, cp, vids, COMPS, checklists)
    assert pilots[a].seconds == pytest.approx(seconds[pilots[a].videos[0]])  # the retried video left out
    return pilots, results


def test_nodes_of_one_hardware_type_pool_their_pilots(tmp_path):
    """Same hardware: a's one counted video at 3x and b's two at 1x give both nodes (3 + 1 + 1) / 3."""
    nodes, vids, cp = _cluster()
    a, b = (n.node_id for n in nodes)
    pilots, _ = _pilot_run(tmp_path, nodes, vids, cp, {a: 3.0, b: 1.0})
    for n in (a, b):
        assert pilots[n].factors == pytest.approx({"od": 5 / 3, "sc": 5 / 3})
    assert all(FACTOR_BOUNDS[0] <= f <= FACTOR_BOUNDS[1] for p in pilots.values() for f in p.factors.values())


def test_a_slow_hardware_type_gets_fewer_of_the_rest(tmp_path):
    """Node a is of another hardware type (same measured checklist) and ran its pilot 3x slower than its stage
    model; node b as predicted. Their factors stay their own, and the re-plan gives b more of the rest."""
    slow_hw = dataclasses.replace(gpu_node("a", [16.0, 16.0]), hardware_id="other")
    nodes, vids = [slow_hw, gpu_node("b", [16.0, 16.0])], videos(40, 24)
    checklists = {**CL, "other": CL["synthetic"]}
    cp = plan_cluster(vids, COMPS, nodes, checklists, safety_margin=0.1)
    a, b = (n.node_id for n in nodes)
    pilots, results = _pilot_run(tmp_path, nodes, vids, cp, {a: 3.0, b: 1.0}, checklists)
    assert pilots[a].factors == pytest.approx({"od": 3.0, "sc": 3.0})
    assert pilots[b].factors == pytest.approx({"od": 1.0, "sc": 1.0})
    rest = [i for i in range(len(vids)) if i not in results]
    again = plan_cluster([vids[i] for i in rest], COMPS, nodes, checklists, safety_margin=0.1,
                         time_factors={n: p.factors for n, p in pilots.items()},
                         video_overhead_s={n: p.video_overhead_s for n, p in pilots.items()})
    assert len(again.nodes[b].videos) > len(again.nodes[a].videos)
    assert again.nodes[a].plan.calibration["time_factors"] == {"od": 3.0, "sc": 3.0}
