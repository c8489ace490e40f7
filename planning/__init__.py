"""The batching planner: it stands above decoding, extraction and the models.

Owns the checklist (:mod:`~planning.checklist`: schema, speed ratio, hardware id), the probes of the machine now
(:mod:`~planning.probes`), the profiler that measures a checklist (:mod:`~planning.measure`,
:mod:`~planning.profiler`), the pure planner (:mod:`~planning.specs`, :mod:`~planning.costs`,
:mod:`~planning.simulate`, :mod:`~planning.knapsack`, :mod:`~planning.planner`: plain data in, a
:class:`~planning.specs.BatchPlan` out, no I/O), the executor (:mod:`~planning.inputs` gathers the plan's inputs
from the real world, :mod:`~planning.pilot`, :mod:`~planning.residency`, :mod:`~planning.executor` runs the plan
through ``extraction``) and :mod:`~planning.api` (the planned extraction that the CLI, the demo, the benchmarks
and the service call).

May import: ``common`` and ``extraction`` (the pure modules neither ``extraction`` nor ``tritonclient``). Nothing in
``extraction`` imports it (except the CLI entry point).
"""
