"""The Ray executor's planning on a real Ray node that declares 4 (fake) GPUs and a GPU memory budget.

Protects: the node's probe reports the GPUs Ray says it has (no NVML here) with an equal share of its declared
``gpu_mem_mb``; its plan puts the detector and the classifier on different GPUs; Ray gives the node's Triton
reservation all 4 GPUs, places the plan's lanes beside it and refuses a second Triton's worth (no GPU memory left
to the plan's requests). No Triton is started: these GPUs cannot run a model.

The cluster is its own (``testsupport.raycluster.InProcessRayCluster``, one real raylet), so that nothing another
test does to a cluster -- a node killed, a node still dying -- is seen here.
"""

from __future__ import annotations

import pytest

from planning.distributed.cluster_plan import CPU_MEM, GPU_MEM, MIB, NodeReport, plan_cluster
from testsupport.planning import COMPS, gpu_checklist, videos
from testsupport.raycluster import InProcessRayCluster, NodeSpec

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory):
    c = InProcessRayCluster([NodeSpec(cpus=1, gpus=4, resources={CPU_MEM: 8000, GPU_MEM: 40000})],
                            state_root=tmp_path_factory.mktemp("ray_gpu_state"))
    try:
        yield c
    finally:
        c.shutdown()


def test_a_node_with_fake_gpus_gets_components_on_its_gpus_per_the_plan(gpu_cluster, tmp_path):
    import ray

    from planning.distributed.ray_executor import _pinned, probe_nodes

    (node_id,) = gpu_cluster.node_ids
    probes = {p.node_id: (p, res) for p, res in probe_nodes(tmp_path, log=lambda _m: None)}
    assert set(probes) == {node_id}
    probe, res = probes[node_id]
    assert [(d.name, d.free_bytes) for d in probe.devices if d.kind == "gpu"] == [
        (f"gpu{i}", 10000 * MIB) for i in range(4)]
    assert [d.concurrency for d in probe.devices if d.kind == "cpu"] == [1.0]  # the one CPU the node declares
    report = NodeReport(probe.node_id, probe.address, probe.hardware_id, probe.devices, res)
    cp = plan_cluster(videos(8, 24), COMPS, [report], {probe.hardware_id: gpu_checklist()}, safety_margin=0.1)
    np_ = cp.nodes[node_id]
    assert np_.plan.device_of["od"].startswith("gpu") and np_.plan.device_of["sc"].startswith("gpu")
    assert np_.plan.device_of["od"] != np_.plan.device_of["sc"]
    assert np_.triton_request["GPU"] == 4 and np_.triton_request[GPU_MEM] > 0

    @ray.remote
    class Holder:
        def gpu_ids(self) -> list[str]:
            return [str(g) for g in ray.get_gpu_ids()]

    req = {k: v for k, v in np_.triton_request.items() if v > 0}
    opts = dict(num_cpus=0, num_gpus=req.pop("GPU"), resources=req, scheduling_strategy=_pinned(node_id))
    triton = Holder.options(**opts).remote()
    assert sorted(ray.get(triton.gpu_ids.remote(), timeout=60)) == ["0", "1", "2", "3"]
    lane_req = {k: v for k, v in np_.lane_request.items() if v > 0}
    lanes = [Holder.options(num_cpus=0, resources=lane_req, scheduling_strategy=_pinned(node_id)).remote()
             for _ in range(np_.lanes)]
    ray.get([lane.gpu_ids.remote() for lane in lanes], timeout=60)  # the plan's lanes all fit beside it
    second = Holder.options(**opts).remote()  # a second Triton's worth: more than the node declares
    ready, _ = ray.wait([second.gpu_ids.remote()], timeout=3)
    assert ready == []
    for a in (triton, second, *lanes):
        ray.kill(a)
