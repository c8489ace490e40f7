"""The GC entry points ``python -m extraction gc`` and ``python -m registry gc`` call: compose, print, record."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from common.clock import now_iso
from retention.policy import RetentionPolicy, load_policy, resolve
from retention.report import GcReport, write_records


def _emit(parts: list[tuple[str, GcReport]], report: GcReport, as_json: bool, policy: RetentionPolicy) -> None:
    """Record each part (its kind's record: ``gc.jsonl`` + the observability store), print the whole."""
    write_records(parts, resolve(policy.record), policy.record_store_url)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.render())


def extraction_gc(artifacts: list[Path] | None, *, apply: bool = False, as_json: bool = False,
                  policy_path: Path | None = None, registry_config: Path | None = None, temp: bool = False,
                  weights: bool = False, now: float | None = None) -> int:
    """Artifact stores (given, else the policy's) + temp TTL + model weights; returns the exit status."""
    from retention.artifacts import default_stores, gc_artifacts
    from retention.pins import registry_pins
    from retention.temp import gc_temp
    from retention.weights import gc_weights

    t0 = time.perf_counter()
    policy = load_policy(policy_path)
    full = not artifacts
    stores = list(artifacts) if artifacts else default_stores(policy)
    parts: list[tuple[str, GcReport]] = []
    if stores or not (temp or weights):
        pins = registry_pins(policy, registry_config)
        parts += gc_artifacts(stores, policy, apply=apply, now=now, pins=pins, progress=_progress)
    if temp or full:
        parts.append(("temp", gc_temp(policy, apply=apply, now=now)))
    if weights or full:
        parts.append(("weights", gc_weights(policy, apply=apply, now=now)))
    report = GcReport("extraction", [], apply, started_at=parts[0][1].started_at if parts else now_iso())
    for _, part in parts:
        report.merge(part.finish())
    report.seconds = round(time.perf_counter() - t0, 3)
    _emit(parts, report.finish(), as_json, policy)
    return 0


def _progress(stage: str, n: int) -> None:
    """Long scans and sweeps show progress on stderr (called every 1,000 runs)."""
    print(f"gc: {n} {stage}", file=sys.stderr, flush=True)


def registry_gc(cfg, *, apply: bool = False, as_json: bool = False, policy_path: Path | None = None,
                now: float | None = None) -> int:
    """MLflow runs and versions (:mod:`retention.mlflow_gc`); returns the exit status."""
    from retention.mlflow_gc import gc_registry

    policy = load_policy(policy_path)
    report = gc_registry(policy, cfg, apply=apply, now=now).finish()
    _emit([("mlflow", report)], report, as_json, policy)
    return 0
