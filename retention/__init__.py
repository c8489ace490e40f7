"""Retention and garbage collection: what the platform may delete, and deleting it safely.

Owns: the retention policy (``conf/retention.yaml``, :mod:`retention.policy`), the live-set computation as pure
functions on plain data (:mod:`retention.live`: mark), the artifact-store scanner and sweep (:mod:`retention.store`:
index first, rename to trash, remove), the GCs of artifact stores (:mod:`retention.artifacts`), temp files
(:mod:`retention.temp`), model weights (:mod:`retention.weights`) and the MLflow store (:mod:`retention.mlflow_gc`),
the registry pins (:mod:`retention.pins`), the GC report and its record (:mod:`retention.report`,
``.trendflow/gc.jsonl``) and the CLI composition (:mod:`retention.cli`).

May import: :mod:`common`; :mod:`extraction` (artifact layout, cache index, run leases, Triton status);
:mod:`registry` and :mod:`training.data` (the store, version runs, the recorded training runs);
:mod:`observability` (``observability.api.record_gc``, lazily, for the GC records). Entry points:
``python -m extraction gc`` and ``python -m registry gc`` delegate here. Importing has no side effects.

Every GC is a dry run unless told to apply; rules in ``docs/retention.md``.
"""
