"""The batching planner: it stands above decoding, extraction and the models.

Owns: ``checklist`` (what this hardware costs: schema, hardware id, probes and the profiler that measures it),
``planner`` (the pure planner: plain data in, a :class:`~planning.planner.BatchPlan` out, no I/O), ``executor``
(gathers the plan's inputs from the real world, runs the pilot, keeps model residency, executes the plan through
``extraction``) and ``api`` (the planned extraction that the CLI, the demo, the benchmarks and the service call).

May import: ``common`` and ``extraction``. Nothing in ``extraction`` imports it (except the CLI entry point).
"""
