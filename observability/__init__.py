"""ML observability: a per-run metrics store in a real database, the admin page over it, and alert rules.

Owns: the store's schema and migrations (:mod:`observability.schema`, ``observability/migrations``), opening it
(:mod:`observability.store`), fixed latency buckets and ``histogram_quantile`` (:mod:`observability.histogram`),
idempotent ingest of extraction manifests, MLflow training runs, Triton model loads and serving windows
(:mod:`observability.ingest`), the non-blocking serving recorder that writes through a local spool
(:mod:`observability.spool`), queries (:mod:`observability.queries`), in-process evaluation of
``conf/alerts.yaml`` (:mod:`observability.alerts`) and the admin page (:mod:`observability.web`).

May import: :mod:`common`, :mod:`registry` (its audit log: which version was stable when) and the layers below it.
It reads extraction manifests and MLflow as data, so nothing of :mod:`extraction`'s code is needed. The inference
service imports :mod:`observability.spool`; the extraction and training CLIs call :func:`observability.ingest`
from their entry points only (never from library code), wrapped so that a failure never fails the run.
"""
