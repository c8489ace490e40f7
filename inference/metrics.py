"""Prometheus metrics of one service instance (own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest

# The store's bounds, so its percentiles and Prometheus' histogram_quantile agree (one definition).
from observability.histogram import LATENCY_BUCKETS


class ServiceMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("inference_requests", "Predict requests answered, per model that answered",
                                ["model_type", "model_version", "status"], registry=r)
        self.errors = Counter("inference_errors", "Failures per model and error code (a failure may fall back)",
                              ["model_type", "model_version", "error_code"], registry=r)
        self.rejected = Counter("inference_rejected", "Requests refused before any model ran", ["error_code"],
                                registry=r)
        self.inference_seconds = Histogram("inference_seconds", "Model call time seen by a request",
                                           ["model_type", "model_version"], buckets=LATENCY_BUCKETS, registry=r)
        self.request_seconds = Histogram("request_seconds", "Whole /predict handling time", ["mode"],
                                         buckets=LATENCY_BUCKETS, registry=r)
        # Per stage and the model that answered (conf/alerts.yaml ServingLatencyP95Doubled compares by type, since
        # a promotion changes the version).
        self.stage_seconds = Histogram("stage_seconds", "Per-stage time of a request",
                                       ["stage", "model_type", "model_version"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("inference_batch_size", "Rows per model call", ["model_type"],
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.model_load_seconds = Gauge("model_load_seconds", "Time to resolve, load and sanity-check a model",
                                        ["model_type", "model_version", "slot"], registry=r)
        self.fallbacks = Counter("inference_fallbacks", "Requests answered by a later slot of the chain",
                                 ["from_type", "to_type"], registry=r)
        self.shadow_divergence = Histogram("shadow_divergence", "Mean |p50 difference| (log1p) shadow vs served",
                                           ["served_type", "shadow_type"],
                                           buckets=(0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5), registry=r)
        self.shadow_errors = Counter("shadow_errors", "Shadow predictions that failed", ["shadow_type"], registry=r)
        self.reloads = Counter("model_reloads", "Reloads of the model set", ["outcome"], registry=r)
        self.out_of_distribution = Counter("inference_out_of_distribution", "Answers flagged out_of_distribution",
                                           ["model_type"], registry=r)
        # Per feature: which inputs drift (the feature spec bounds the label's values).
        self.ood_features = Counter("inference_out_of_distribution_features",
                                    "Answers in which this feature was flagged out_of_distribution", ["feature"],
                                    registry=r)
        self.ready = Gauge("service_ready", "1 when /health/ready is OK", registry=r)
        # The prediction distribution (log1p scale) per target, so a shift is visible (observability windows,
        # conf/alerts.yaml PredictionDistributionShift), and the A/B bucket of each answered request.
        self.prediction_p50 = Summary("prediction_p50_log1p", "p50 of each answered prediction (log1p)", ["target"],
                                      registry=r)
        self.prediction_width = Summary("prediction_width80_log1p", "p90 - p10 of each answered prediction (log1p)",
                                        ["target"], registry=r)
        self.load_failures = Counter("model_load_failures", "Slots whose model failed to load or its sanity check",
                                     ["model_type", "slot"], registry=r)
        self.ab_buckets = Counter("ab_bucket_requests", "Answered requests per A/B bucket", ["bucket"], registry=r)
        self.degraded = Gauge("service_degraded_slots", "Optional slots configured but not loaded or failed "
                              "(the service stays ready; alert on > 0)", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
