"""The serving recorder: the inference service's Prometheus counters, cut into windows, through a local spool.

A background thread snapshots the service's own :class:`prometheus_client.CollectorRegistry` every ``window_s``
seconds and writes the difference to the previous snapshot (requests, errors per code, fallbacks, latency
histograms per stage and model version, shadow divergence, A/B counts per version, model load seconds,
answers flagged out of distribution and per feature) as one
JSON file in the spool folder (atomically, :mod:`common.fsio`). Then it tries to ingest the spool into the store.
Nothing here runs on the request path, and no failure leaves the thread: a full disk, a dead or locked database
is logged and retried at the next window (the files stay in the spool until a commit took them).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.fsio import atomic_write_json

log = logging.getLogger("observability.spool")
Snapshot = dict[tuple[str, tuple[tuple[str, str], ...]], float]
# Histograms of the service (inference.metrics) -> name prefix in the window, and the label that names the series.
HISTOGRAMS = {"request_seconds": ("request", ("mode",)),
              "stage_seconds": ("stage", ("stage", "model_type", "model_version")),
              "inference_seconds": ("model", ("model_type", "model_version"))}


def snapshot(registry: Any) -> Snapshot:
    """Every sample of ``registry`` now: (sample name, sorted labels) -> value."""
    out: Snapshot = {}
    for metric in registry.collect():
        for s in metric.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def _delta(now: Snapshot, before: Snapshot) -> Snapshot:
    return {k: v - before.get(k, 0.0) for k, v in now.items() if not k[0].startswith("model_load_seconds")}


def _sum(d: Snapshot, name: str, by: tuple[str, ...] = ()) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for (n, labels), v in d.items():
        if n == name:
            lab = dict(labels)
            out[":".join(lab.get(b, "") for b in by)] += v
    return dict(out)


def _histograms(d: Snapshot) -> dict[str, dict[str, Any]]:
    """Cumulative ``_bucket`` deltas -> per-bucket counts with their bounds, per series."""
    series: dict[str, dict[float, float]] = defaultdict(dict)
    sums: dict[str, float] = defaultdict(float)
    for (n, labels), v in d.items():
        for metric, (prefix, by) in HISTOGRAMS.items():
            lab = dict(labels)
            key = ":".join([prefix, *(lab.get(b, "") for b in by)])
            if n == f"{metric}_bucket":
                series[key][float(lab["le"])] = v
            elif n == f"{metric}_sum":
                sums[key] += v
    out = {}
    for key, cum in series.items():
        les = sorted(cum)
        counts = [max(int(round(cum[le] - (cum[les[i - 1]] if i else 0.0))), 0) for i, le in enumerate(les)]
        if sum(counts):
            out[key] = {"bounds": [le for le in les if le != float("inf")], "counts": counts,
                        "sum": round(sums[key], 6)}
    return out


def window_record(now: Snapshot, before: Snapshot, instance: str, start: datetime, end: datetime) -> dict[str, Any]:
    """The JSON a window spools: what changed between two snapshots."""
    d = _delta(now, before)
    errors = _sum(d, "inference_errors_total", ("error_code",))
    load_failed = int(_sum(d, "model_reloads_total", ("outcome",)).get("failed", 0)
                      + sum(_sum(d, "model_load_failures_total").values()))
    if load_failed:  # a slot that failed to load, or a failed reload: ModelLoadFailed reads this code
        errors["model_load_failed"] = errors.get("model_load_failed", 0) + load_failed
    div_n = sum(_sum(d, "shadow_divergence_count").values())
    loads = [{"model": dict(k[1]).get("model_type"), "version": dict(k[1]).get("model_version"),
              "seconds": v, "observed_at": end.isoformat()}
             for k, v in now.items() if k[0] == "model_load_seconds" and before.get(k) != v]
    return {
        "instance": instance, "window_start": start.isoformat(), "window_end": end.isoformat(),
        "window_s": round((end - start).total_seconds(), 3),
        "requests": int(sum(_sum(d, "inference_requests_total").values())),
        "requests_by_version": {k: int(v) for k, v in _sum(d, "inference_requests_total",
                                                           ("model_type", "model_version")).items() if v},
        "errors": int(sum(errors.values())), "errors_by_code": {k: int(v) for k, v in errors.items() if v},
        "rejected": int(sum(_sum(d, "inference_rejected_total").values())),
        "fallbacks": int(sum(_sum(d, "inference_fallbacks_total").values())),
        "shadow_divergence_mean": (round(sum(_sum(d, "shadow_divergence_sum").values()) / div_n, 6)
                                   if div_n else None),
        "latency": _histograms(d), "model_loads": loads, "predictions": _predictions(d),
        "ab_buckets": {k: int(v) for k, v in _sum(d, "ab_bucket_requests_total", ("bucket",)).items() if v},
        "ood": int(sum(_sum(d, "inference_out_of_distribution_total").values())),
        "ood_features": {k: int(v) for k, v in _sum(d, "inference_out_of_distribution_features_total",
                                                    ("feature",)).items() if v},
    }


def _predictions(d: Snapshot) -> dict[str, dict[str, float]]:
    """target -> mean p50 and mean 80% interval width (log1p) over the window's answered requests."""
    n = _sum(d, "prediction_p50_log1p_count", ("target",))
    p50 = _sum(d, "prediction_p50_log1p_sum", ("target",))
    width = _sum(d, "prediction_width80_log1p_sum", ("target",))
    return {t: {"p50_mean": round(p50.get(t, 0.0) / c, 6), "width_mean": round(width.get(t, 0.0) / c, 6),
                "n": int(c)} for t, c in sorted(n.items()) if c}


@dataclass
class ServingRecorder:
    """Spool a window of the service's metrics every ``window_s`` seconds, then try to ingest the spool.

    Args:
        registry: the service's Prometheus registry (``ServiceMetrics.registry``).
        spool_dir: where window files go.
        instance: this service instance's name (host:port).
        window_s: window length.
        ingest: called with the spool folder after each window (e.g. open the store and ingest); any exception
            is logged and the files stay for the next try. None: spool only.
    """

    registry: Any
    spool_dir: Path
    instance: str
    window_s: float = 60.0
    ingest: Callable[[Path], Any] | None = None
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self) -> None:
        self._before = snapshot(self.registry)
        self._start = datetime.now(UTC)
        self._thread = threading.Thread(target=self._loop, name="observability-recorder", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.window_s):
            self.flush()

    def flush(self) -> Path | None:
        """Spool the window that ends now (skipped when nothing happened) and try the ingest. Never raises."""
        try:
            now, end = snapshot(self.registry), datetime.now(UTC)
            rec = window_record(now, self._before, self.instance, self._start, end)
            self._before, self._start = now, end
            path = None
            if rec["requests"] or rec["errors"] or rec["rejected"] or rec["model_loads"]:
                name = f"{self.instance.replace(':', '_').replace('/', '_')}-{end.strftime('%Y%m%dT%H%M%S%f')}"
                path = Path(self.spool_dir) / f"{name}.json"
                atomic_write_json(path, rec)
        except Exception as exc:  # the recorder must never take the service down
            log.warning("serving window not spooled (retried next window): %s", exc)
            return None
        if self.ingest is not None:
            try:
                self.ingest(Path(self.spool_dir))
            except Exception as exc:  # dead or locked database: the files stay in the spool
                log.warning("observability store unavailable, spool kept for the next window: %s", exc)
        return path

    def close(self) -> None:
        """Stop the thread and spool the last partial window."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
