"""CLI: ``python -m observability {ingest, runs, component-stats, alerts, serve}``.

Thin over :mod:`observability.api`, :mod:`observability.queries`, :mod:`observability.alerts` and
:mod:`observability.web`. Errors print as ``error: code: message`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from common.errors import TrendflowError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m observability", description=__doc__)
    p.add_argument("--config", type=Path, default=None, help="default conf/observability.yaml")
    p.add_argument("--url", default=None, help="store URL (default: config, $TRENDFLOW_OBSERVABILITY_URL, SQLite)")
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("ingest", help="ingest manifests, the serving spool, model loads, the audit log (+ MLflow)")
    i.add_argument("--artifacts", type=Path, default=None, help="artifacts root (default: config's)")
    i.add_argument("--mlflow", action="store_true", help="also ingest MLflow training runs")
    i.add_argument("--mlflow-uri", default=None, help="MLflow tracking URI (default: the training store)")
    r = sub.add_parser("runs", help="list runs, newest first")
    r.add_argument("--kind", choices=["extraction", "training", "serving"], default=None)
    r.add_argument("--status", default=None)
    r.add_argument("--since", default="7d", help="e.g. 24h, 7d")
    r.add_argument("--model-version", default=None, help="substring of the run's model version(s)")
    r.add_argument("--limit", type=int, default=50)
    r.add_argument("--json", action="store_true")
    c = sub.add_parser("component-stats", help="per component: error rate, p95, cache hit rate, OOM rate")
    c.add_argument("--since", default="24h")
    c.add_argument("--json", action="store_true")
    a = sub.add_parser("alerts", help="evaluate conf/alerts.yaml against the store")
    mode = a.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="evaluate once (default)")
    mode.add_argument("--watch", action="store_true", help="evaluate every --interval seconds")
    a.add_argument("--interval", type=float, default=30.0)
    a.add_argument("--triton-url", default=None, help="Triton HTTP URL to probe (default: judge from the store)")
    a.add_argument("--webhook", default=None, help="POST transitions as JSON here (default: config's)")
    a.add_argument("--json", action="store_true")
    s = sub.add_parser("serve", help="the admin page")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8200)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    from observability.config import load_config
    from observability.store import open_store

    try:
        cfg = load_config(args.config)
        url = args.url or cfg.store_url()
        if args.cmd == "serve":
            from observability.web import serve

            serve(cfg, url, host=args.host, port=args.port)
            return 0
        store = open_store(url)
        try:
            return COMMANDS[args.cmd](args, cfg, store)
        finally:
            store.close()
    except TrendflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _ingest(args, cfg, store) -> int:
    from observability.api import ingest

    report = ingest(store, cfg, artifacts=args.artifacts, mlflow=args.mlflow_uri or args.mlflow)
    print(report.line())
    for f in report.failed:
        print(f"  failed: {f}", file=sys.stderr)
    return 0


def _runs(args, cfg, store) -> int:
    from observability.queries import RunFilter, list_runs, parse_duration, utcnow

    rows, total = list_runs(store, RunFilter(kind=args.kind, status=args.status,
                                             since=utcnow() - parse_duration(args.since),
                                             model_version=args.model_version, limit=args.limit))
    if args.json:
        print(json.dumps({"total": total, "runs": [r.to_dict() for r in rows]}, indent=2))
        return 0
    print(f"{total} runs since {args.since} (newest {len(rows)})")
    for r in rows:
        mk = f"{r.measured_makespan_s:.1f}s" if r.measured_makespan_s is not None else "-"
        print(f"{r.id:>7} {r.kind:<10} {r.status:<8} {r.started_at:%Y-%m-%d %H:%M:%S} videos={r.videos:<5} "
              f"errors={r.errors:<4} makespan={mk:<9} {r.model_version or ''}")
    return 0


def _component_stats(args, cfg, store) -> int:
    from observability.api import as_jsonable
    from observability.queries import component_stats_hourly, parse_duration, utcnow

    stats = component_stats_hourly(store, utcnow() - parse_duration(args.since))
    if args.json:
        print(json.dumps(as_jsonable(stats), indent=2))
        return 0
    print(f"{'component':<14} {'runs':>6} {'videos':>7} {'error rate':>10} {'p95 ms':>9} {'cache hit':>9} "
          f"{'OOM rate':>8}")
    for s in stats:
        def pct(x):
            return f"{x:.1%}" if x is not None else "-"
        p95 = f"{s.p95_s * 1000:.1f}" if s.p95_s is not None else "-"
        print(f"{s.component:<14} {s.runs:>6} {s.n:>7} {pct(s.error_rate):>10} {p95:>9} {pct(s.cache_hit_rate):>9} "
              f"{pct(s.oom_rate):>8}")
    return 0


def _alerts(args, cfg, store) -> int:
    from observability.alerts import Context, evaluate, load_rules
    from observability.queries import utcnow

    rules = load_rules(cfg.path(cfg.alerts_file))
    webhook = args.webhook or cfg.webhook_url
    while True:
        ev = evaluate(Context(store=store, now=utcnow(), triton_url=args.triton_url), rules, webhook)
        if args.json:
            print(json.dumps({"firing": ev.firing, "pending": ev.pending,
                              "transitions": [t.to_dict() for t in ev.transitions]}), flush=True)
        else:
            print(f"{len(ev.firing)} firing, {len(ev.pending)} pending: "
                  + (", ".join(f"{n}{'{' + k + '}' if k else ''}={v}" for n, k, v in ev.firing) or "none"),
                  flush=True)
        if not args.watch:
            return 1 if ev.firing else 0
        time.sleep(args.interval)


COMMANDS = {"ingest": _ingest, "runs": _runs, "component-stats": _component_stats, "alerts": _alerts}

if __name__ == "__main__":
    sys.exit(main())
