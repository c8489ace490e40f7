"""The cluster planner on simulated nodes: videos spread by predicted cost, components on the GPUs of multi-GPU
nodes per the single-node planner, Ray resource requests that add up to what each node declares, and
insufficient memory named by node before any work. Pure: no Ray, no server."""

from __future__ import annotations

import math

import pytest

from common.errors import ConfigError, InsufficientMemory
from planning.distributed.cluster_plan import CPU_MEM, GPU_MEM, MIB, NodeReport, assign_videos, plan_cluster
from testsupport.planning import COMPS, GB, gpu_checklist, gpu_node, videos


def test_two_nodes_of_four_gpus_with_different_free_memory():
    """2 nodes x 4 GPUs: each node's plan puts od and sc on different GPUs that can hold them (od's 3 GB model
    never on a GPU with 2 GB free); both nodes get videos; what Ray is asked for adds up within each node's
    declared budget."""
    a = gpu_node("a", [2.0, 24.0, 8.0, 4.0])
    b = gpu_node("b", [16.0, 2.0, 2.0, 12.0])
    cp = plan_cluster(videos(16, 24), COMPS, [a, b], {"synthetic": gpu_checklist()}, safety_margin=0.1)
    assert sorted(i for p in cp.nodes.values() for i in p.videos) == list(range(16))
    for node in (a, b):
        np_ = cp.nodes[node.node_id]
        assert np_.videos and np_.plan is not None
        dev = np_.plan.device_of
        assert dev["od"] != dev["sc"], dev  # components of one run on different GPUs
        free = {d.name: d.free_bytes for d in node.devices}
        assert free[dev["od"]] >= 3 * GB and free[dev["sc"]] >= 1 * GB
        for g, info in np_.plan.devices.items():
            assert info["predicted_peak_bytes"] <= info["budget_bytes"], g
        # Triton holds both models' weights and all four GPUs; each lane one video's working memory
        assert np_.triton_request == {CPU_MEM: 0, GPU_MEM: math.ceil(4 * GB / MIB), "GPU": 4.0}
        for res in (CPU_MEM, GPU_MEM):
            total = np_.triton_request[res] + np_.lanes * np_.lane_request[res]
            assert total <= node.resources[res], (node.name, res)
    assert cp.predicted_makespan_s == max(p.predicted_makespan_s for p in cp.nodes.values())


def test_a_node_with_more_room_gets_more_videos():
    """A node whose GPUs fit larger batches and more parallel videos finishes a video sooner: it gets more."""
    big = gpu_node("big", [24.0, 24.0, 24.0, 24.0])
    small = gpu_node("small", [4.5, 1.5, 1.5, 1.5])
    cp = plan_cluster(videos(20, 24), COMPS, [big, small], {"synthetic": gpu_checklist()}, safety_margin=0.1)
    nb, ns = cp.nodes[big.node_id], cp.nodes[small.node_id]
    assert len(nb.videos) > len(ns.videos)


def test_insufficient_gpu_memory_names_the_node_before_any_work():
    ok = gpu_node("fits", [8.0, 8.0])
    tiny = gpu_node("tiny", [2.0, 2.0])  # od's 3 GB model fits on no GPU of this node
    with pytest.raises(InsufficientMemory) as err:
        plan_cluster(videos(4, 24), COMPS, [ok, tiny], {"synthetic": gpu_checklist()}, safety_margin=0.1)
    assert err.value.code == "insufficient_gpu_memory"
    assert "node 10.0.0.4/tinytiny" in err.value.message and err.value.details["node"] == tiny.node_id


def test_a_declared_budget_below_the_free_memory_is_what_the_node_plans_with():
    """Free memory says 24 GB, the node declares 2 GB of gpu_mem_mb for this extraction: od does not fit."""
    with pytest.raises(InsufficientMemory) as err:
        plan_cluster(videos(2, 24), COMPS, [gpu_node("capped", [24.0], declared_gpu_gb=2.0)],
                     {"synthetic": gpu_checklist()})
    assert err.value.code == "insufficient_gpu_memory" and "capped" in err.value.message


def test_a_node_without_memory_resources_is_refused_naming_it():
    node = gpu_node("bare", [8.0])
    bare = NodeReport(node.node_id, node.address, node.hardware_id, node.devices, {"CPU": 8, "GPU": 1})
    with pytest.raises(ConfigError, match="declares no 'cpu_mem_mb'") as err:
        plan_cluster(videos(2, 24), COMPS, [bare], {"synthetic": gpu_checklist()})
    assert "bare" in err.value.message
    with pytest.raises(ConfigError, match="no checklist for hardware"):
        plan_cluster(videos(2, 24), COMPS, [node], {"other-hw": gpu_checklist()})


def test_assign_videos_longest_first_balances_the_load():
    costs = {"n1": [5.0, 1.0, 1.0, 3.0, 2.0, 2.0], "n2": [5.0, 1.0, 1.0, 3.0, 2.0, 2.0]}
    share = assign_videos(costs)
    loads = {k: sum(costs[k][i] for i in v) for k, v in share.items()}
    assert sorted(i for v in share.values() for i in v) == list(range(6))
    assert loads == {"n1": 7.0, "n2": 7.0}
    # a node twice as fast takes twice the work
    fast = assign_videos({"fast": [1.0] * 9, "slow": [2.0] * 9})
    assert (len(fast["fast"]), len(fast["slow"])) == (6, 3)
