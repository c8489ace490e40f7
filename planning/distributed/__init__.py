"""Extraction over a cluster: the same planner per node, one Triton per node, one shared artifact store.

Owns: ``cluster_plan`` (pure: each node's devices, free memory and checklist in, a
:class:`~planning.distributed.cluster_plan.ClusterPlan` out -- videos assigned to nodes, per node a
:class:`~planning.planner.BatchPlan` whose device assignment puts components on GPUs, and the Ray resources each
actor requests), ``ray_executor`` (gathers node reports through Ray, starts one Triton per node through an actor,
runs the videos on lane actors that talk to their node's Triton on loopback, retries the videos of a lost node)
and ``ray_nodes`` (the code that runs on each node: probe, Triton actor, lane actor).

May import: ``common``, ``extraction`` and the rest of ``planning``. It is the only package that imports ``ray``
(an optional extra: ``pip install -e ".[ray]"``); ``cluster_plan`` does not import it, so the planner's unit tests
need no Ray. Nothing imports this package except the executor selection in ``planning.api``.
"""
