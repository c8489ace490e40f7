"""In-process alerting: the conditions of ``conf/alerts.yaml`` evaluated against the store.

The rule file is the Prometheus one (so a real Prometheus can load it); this module reads each rule's name,
``for``, ``keep_firing_for``, severity, summary and the annotations ``threshold`` and ``window``, and evaluates
the same condition with a Python function of the same name over the store (:data:`EVALUATORS`). State follows
Prometheus: a true condition is *pending* until it held for ``for``, then *firing*; a firing alert whose condition
is false for ``keep_firing_for`` is *resolved*. Transitions are written to the store's ``alerts`` table, logged
as one line each, and POSTed as JSON to the webhook when one is configured (a failing webhook is logged only).
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from common.errors import ConfigError
from observability import histogram
from observability.queries import component_rows, component_stats, parse_duration, summarize
from observability.schema import Alert, Run, RunComponent, ServingWindow
from observability.store import Store

log = logging.getLogger("observability.alerts")


@dataclass(frozen=True)
class Rule:
    name: str
    expr: str
    for_s: float
    keep_firing_for_s: float
    severity: str
    summary: str
    runbook_url: str
    threshold: float | None
    window: timedelta


def load_rules(path: Path) -> list[Rule]:
    """Every alerting rule of a Prometheus rule file (``config_invalid`` naming the rule when one is bad)."""
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"alert rules {path} cannot be read: {exc}", code="config_invalid") from None
    rules = []
    for group in doc.get("groups") or []:
        for r in group.get("rules") or []:
            if "alert" not in r:
                continue  # recording rules have no in-process meaning
            ann, name = r.get("annotations") or {}, r["alert"]
            try:
                rules.append(Rule(
                    name=name, expr=str(r["expr"]).strip(),
                    for_s=parse_duration(r["for"]).total_seconds() if r.get("for") else 0.0,
                    keep_firing_for_s=(parse_duration(r["keep_firing_for"]).total_seconds()
                                       if r.get("keep_firing_for") else 0.0),
                    severity=str((r.get("labels") or {}).get("severity", "warning")),
                    summary=str(ann.get("summary", name)), runbook_url=str(ann.get("runbook_url", "")),
                    threshold=float(ann["threshold"]) if "threshold" in ann else None,
                    window=parse_duration(ann.get("window", "10m"))))
            except (KeyError, ValueError, ConfigError) as exc:
                raise ConfigError(f"{path}: alert {name!r} is invalid: {exc}", code="config_invalid") from None
    return rules


@dataclass
class Context:
    """What the evaluators see: the store, the evaluation time, optional probes."""

    store: Store
    now: datetime
    triton_url: str | None = None  # HTTP base URL; None: judge Triton from the error codes in the store
    gpu_free_bytes: Callable[[], dict[str, int]] | None = None


# ---- evaluators: name -> f(rule, ctx) -> {key: value} of the instances whose condition is true now ----------

def _error_code_count(ctx: Context, since: datetime, match: Callable[[str], bool]) -> int:
    """Occurrences of matching error codes in components, failed runs and serving windows since ``since``."""
    n = 0
    with ctx.store.session() as s:
        for codes in s.scalars(select(RunComponent.error_codes).where(RunComponent.started_at >= since)):
            n += sum(v for k, v in (codes or {}).items() if match(k))
        for m in s.scalars(select(Run.metrics).where(Run.started_at >= since, Run.status == "error")):
            n += int(match(str((m or {}).get("error_code") or "")))
        for codes in s.scalars(select(ServingWindow.errors_by_code).where(ServingWindow.window_start >= since)):
            n += sum(v for k, v in (codes or {}).items() if match(k))
    return n


def triton_ready(url: str, timeout: float = 2.0) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/v2/health/ready", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def triton_unavailable(rule: Rule, ctx: Context) -> dict[str, float]:
    if ctx.triton_url:
        return {} if triton_ready(ctx.triton_url) else {"": 1.0}
    n = _error_code_count(ctx, ctx.now - rule.window, lambda c: c == "triton_unavailable")
    return {"": float(n)} if n else {}


def model_not_found(rule: Rule, ctx: Context) -> dict[str, float]:
    n = _error_code_count(ctx, ctx.now - rule.window, lambda c: c == "model_not_found")
    return {"": float(n)} if n else {}


def model_load_failed(rule: Rule, ctx: Context) -> dict[str, float]:
    n = _error_code_count(ctx, ctx.now - rule.window, lambda c: "load_failed" in c)
    return {"": float(n)} if n else {}


def component_error_rate(rule: Rule, ctx: Context) -> dict[str, float]:
    thr = rule.threshold if rule.threshold is not None else 0.02
    return {f"component={s.component}": s.error_rate for s in component_stats(ctx.store, ctx.now - rule.window, ctx.now)
            if s.error_rate is not None and s.error_rate > thr}


def _p95_by_component(ctx: Context, since: datetime, until: datetime) -> dict[str, float]:
    by: dict[str, list[Any]] = {}
    for r in component_rows(ctx.store, since, until):
        by.setdefault(r.component, []).append(r)
    out = {}
    for c, rows in by.items():
        p = summarize(c, rows).p95_s
        if p:
            out[c] = p
    return out


def _p95_doubled(rule: Rule, ctx: Context, p95_of) -> dict[str, float]:
    """Keys of ``p95_of(ctx, since, until)`` whose p95 now is over ``threshold`` (default 2) times its p95 in the
    same window a day earlier, or, without that history, in the previous window; the value is the ratio."""
    thr, w = rule.threshold if rule.threshold is not None else 2.0, rule.window
    now = p95_of(ctx, ctx.now - w, ctx.now)
    day = p95_of(ctx, ctx.now - timedelta(days=1) - w, ctx.now - timedelta(days=1))
    prev = p95_of(ctx, ctx.now - 2 * w, ctx.now - w)
    out = {}
    for key, p in now.items():
        base = day.get(key) or prev.get(key)
        if base and p / base > thr:
            out[key] = round(p / base, 3)
    return out


def component_latency_doubled(rule: Rule, ctx: Context) -> dict[str, float]:
    """Component p95 now vs the same window a day earlier; without that history, vs the previous window."""
    return {f"component={c}": r for c, r in _p95_doubled(rule, ctx, _p95_by_component).items()}


def oom_rate(rule: Rule, ctx: Context) -> dict[str, float]:
    thr = rule.threshold if rule.threshold is not None else 0.01
    with ctx.store.session() as s:
        rows = s.execute(select(Run.oom_count).where(Run.kind == "extraction",
                                                     Run.started_at >= ctx.now - rule.window)).all()
    if not rows:
        return {}
    rate = sum(r.oom_count > 0 for r in rows) / len(rows)
    return {"": round(rate, 6)} if rate > thr else {}


def gpu_free_memory_low(rule: Rule, ctx: Context) -> dict[str, float]:
    """Free bytes per GPU from NVML now (the rule's ``for`` makes it "for 10 minutes"); no GPU: nothing."""
    thr = rule.threshold if rule.threshold is not None else float(1 << 30)
    free = (ctx.gpu_free_bytes or nvml_free_bytes)()
    return {f"gpu={g}": float(b) for g, b in free.items() if b < thr}


def nvml_free_bytes() -> dict[str, int]:
    """Free bytes per GPU index now (:func:`common.gpu.gpu_memory`); empty without a GPU."""
    from common.gpu import gpu_memory

    return {str(g.index): g.free_bytes for g in gpu_memory()}


def _windows(ctx: Context, since: datetime, until: datetime | None = None) -> list[ServingWindow]:
    q = select(ServingWindow).where(ServingWindow.window_start >= since)
    if until:
        q = q.where(ServingWindow.window_start < until)
    with ctx.store.session() as s:
        return list(s.scalars(q))


def fallback_rate(rule: Rule, ctx: Context) -> dict[str, float]:
    thr = rule.threshold if rule.threshold is not None else 0.05
    ws = _windows(ctx, ctx.now - rule.window)
    req = sum(w.requests for w in ws)
    rate = sum(w.fallbacks for w in ws) / req if req else 0.0
    return {"": round(rate, 6)} if rate > thr else {}


def shadow_divergence(rule: Rule, ctx: Context) -> dict[str, float]:
    thr = rule.threshold if rule.threshold is not None else 0.5
    vals = [w.shadow_divergence_mean for w in _windows(ctx, ctx.now - rule.window) if w.shadow_divergence_mean]
    mean = statistics.fmean(vals) if vals else 0.0
    return {"": round(mean, 6)} if mean > thr else {}


def _stage_p95(ctx: Context, since: datetime, until: datetime) -> dict[str, float]:
    """p95 per serving stage and model type (``stage=<stage>,model_type=<type>``) over the windows in a range,
    versions merged (as the Prometheus rule's ``sum by (le, stage, model_type)``)."""
    by: dict[str, list[list[int]]] = {}
    for w in _windows(ctx, since, until):
        for key, h in (w.latency or {}).items():
            parts = key.split(":")
            if parts[0] != "stage" or len(parts) < 3:
                continue
            by.setdefault(f"stage={parts[1]},model_type={parts[2]}", []).append(
                histogram.rebucket(h["bounds"], h["counts"]))
    out = {}
    for key, hs in by.items():
        p = histogram.histogram_quantile(0.95, histogram.merge(hs))
        if p and not math.isnan(p):
            out[key] = p
    return out


def serving_latency_doubled(rule: Rule, ctx: Context) -> dict[str, float]:
    """Serving p95 per stage and model type now vs the same window a day earlier (else the previous window)."""
    return _p95_doubled(rule, ctx, _stage_p95)


def ood_rate(rule: Rule, ctx: Context) -> dict[str, float]:
    """Share of answered requests flagged ``out_of_distribution`` over the window."""
    thr = rule.threshold if rule.threshold is not None else 0.1
    ws = _windows(ctx, ctx.now - rule.window)
    req = sum(w.requests for w in ws)
    rate = sum(w.ood or 0 for w in ws) / req if req else 0.0
    return {"": round(rate, 6)} if rate > thr else {}


def prediction_shift(rule: Rule, ctx: Context) -> dict[str, float]:
    """Mean p50 per target in the window vs the last week's windows: moved more than ``threshold`` standard
    errors (of the week's per-window means)."""
    thr = rule.threshold if rule.threshold is not None else 3.0
    cur: dict[str, list[float]] = {}
    week: dict[str, list[float]] = {}
    for w in _windows(ctx, ctx.now - timedelta(days=7)):
        dst = cur if w.window_start >= ctx.now - rule.window else week
        for target, p in (w.predictions or {}).items():
            if p.get("p50_mean") is not None:
                dst.setdefault(target, []).append(float(p["p50_mean"]))
    out = {}
    for target, vals in cur.items():
        base = week.get(target, [])
        if len(base) < 3:
            continue
        se = statistics.stdev(base) / math.sqrt(len(base)) or 1e-12
        z = abs(statistics.fmean(vals) - statistics.fmean(base)) / se
        if z > thr:
            out[f"target={target}"] = round(z, 3)
    return out


EVALUATORS: dict[str, Callable[[Rule, Context], dict[str, float]]] = {
    "TritonUnavailable": triton_unavailable, "ModelNotFound": model_not_found, "ModelLoadFailed": model_load_failed,
    "ComponentErrorRateHigh": component_error_rate, "ComponentLatencyP95Doubled": component_latency_doubled,
    "OOMRateHigh": oom_rate, "GPUFreeMemoryLow": gpu_free_memory_low, "ServingFallbackRateHigh": fallback_rate,
    "ShadowDivergenceHigh": shadow_divergence, "PredictionDistributionShift": prediction_shift,
    "ServingLatencyP95Doubled": serving_latency_doubled, "ServingOODRateHigh": ood_rate,
}


# ---- state --------------------------------------------------------------------------------------------------

@dataclass
class Transition:
    name: str
    key: str
    state: str  # firing | resolved
    severity: str
    value: float | None
    started_at: datetime
    ended_at: datetime | None
    summary: str
    runbook_url: str

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() + "Z" if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


@dataclass
class Evaluation:
    """One evaluation: the transitions it made and what is firing / pending after it."""

    transitions: list[Transition] = field(default_factory=list)
    firing: list[tuple[str, str, float | None]] = field(default_factory=list)
    pending: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # rules with no in-process evaluator


def _summary(rule: Rule, key: str) -> str:
    """The rule's summary with ``{{ $labels.x }}`` filled from the key (``component=faces``)."""
    text = rule.summary
    for part in filter(None, key.split(",")):
        k, _, v = part.partition("=")
        text = text.replace(f"{{{{ $labels.{k} }}}}", v)
    return text[:500]


def evaluate(ctx: Context, rules: list[Rule], webhook_url: str | None = None) -> Evaluation:
    """Evaluate every rule once at ``ctx.now``; write transitions; notify."""
    ev = Evaluation()
    for rule in rules:
        fn = EVALUATORS.get(rule.name)
        if fn is None:
            ev.skipped.append(rule.name)
            continue
        try:
            active = fn(rule, ctx)
        except Exception as exc:  # one broken evaluator must not hide the others' alerts
            log.error("alert %s not evaluated: %s", rule.name, exc)
            continue
        ev.transitions += _apply(ctx, rule, active)
    with ctx.store.session() as s:
        for a in s.scalars(select(Alert).where(Alert.state.in_(("firing", "pending")))):
            (ev.firing.append((a.name, a.key, a.value)) if a.state == "firing" else ev.pending.append((a.name, a.key)))
    for t in ev.transitions:
        log.warning("alert %s %s%s value=%s: %s", t.state, t.name, f"{{{t.key}}}" if t.key else "", t.value, t.summary)
        if webhook_url:
            send_webhook(webhook_url, t)
    return ev


def _apply(ctx: Context, rule: Rule, active: dict[str, float]) -> list[Transition]:
    out = []
    now = ctx.now
    with ctx.store.session.begin() as s:
        open_rows = {a.key: a for a in s.scalars(select(Alert).where(
            Alert.name == rule.name, Alert.state.in_(("firing", "pending"))))}
        for key, value in active.items():
            a = open_rows.get(key)
            v = None if value is None or math.isnan(value) else float(value)
            if a is None:
                a = Alert(name=rule.name, key=key, severity=rule.severity, state="pending", started_at=now,
                          last_true_at=now, value=v, summary=_summary(rule, key))
                s.add(a)
            a.last_true_at, a.value = now, v
            if a.state == "pending" and (now - a.started_at).total_seconds() >= rule.for_s:
                a.state = "firing"
                out.append(_transition(rule, a))
        for key, a in open_rows.items():
            if key in active:
                continue
            if a.state == "pending":
                s.delete(a)
            elif (now - a.last_true_at).total_seconds() >= rule.keep_firing_for_s:
                a.state, a.ended_at = "resolved", now
                out.append(_transition(rule, a))
    return out


def _transition(rule: Rule, a: Alert) -> Transition:
    return Transition(name=a.name, key=a.key, state=a.state, severity=a.severity, value=a.value,
                      started_at=a.started_at, ended_at=a.ended_at, summary=a.summary, runbook_url=rule.runbook_url)


def send_webhook(url: str, t: Transition, timeout: float = 5.0) -> bool:
    """POST one transition as JSON (Alertmanager-like fields); a failure is logged, never raised."""
    import urllib.request

    body = json.dumps({"status": t.state, "alerts": [t.to_dict()]}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return 200 <= r.status < 300
    except OSError as exc:
        log.warning("alert webhook %s failed: %s", url, exc)
        return False
