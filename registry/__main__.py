"""CLI: ``python -m registry {list, promote, rollback, history, stable-at, verify-audit, gc}``.

Exit status: 0 done, 1 a gate refused (promotion/rollback not applied), 2 an error (``error: code: message``).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from common.errors import TrendflowError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m registry", description=__doc__)
    p.add_argument("--config", type=Path, default=None, help="registry config (default conf/registry.yaml)")
    p.add_argument("--tracking-uri", default=None, help="override the store (else config / $MLFLOW_TRACKING_URI)")
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="versions per model type with tags, metrics and aliases")
    ls.add_argument("--type", dest="model_type", default=None)
    ls.add_argument("--json", action="store_true")
    pr = sub.add_parser("promote", help="run the gates and, if they pass, move stable -> VERSION")
    pr.add_argument("--type", dest="model_type", required=True)
    pr.add_argument("--version", required=True)
    pr.add_argument("--reason", required=True)
    pr.add_argument("--actor", default=None, help="who (default $TRENDFLOW_ACTOR or the OS user)")
    rb = sub.add_parser("rollback", help="move stable back to previous")
    rb.add_argument("--type", dest="model_type", required=True)
    rb.add_argument("--reason", required=True)
    rb.add_argument("--actor", default=None)
    rb.add_argument("--no-load-check", action="store_true", help="skip the loads_and_predicts check")
    hi = sub.add_parser("history", help="audit log entries (records alias moves made in the MLflow UI first)")
    hi.add_argument("--type", dest="model_type", default=None)
    sa = sub.add_parser("stable-at", help="which version was stable at an ISO-8601 time")
    sa.add_argument("--type", dest="model_type", required=True)
    sa.add_argument("when")
    sub.add_parser("verify-audit", help="check the audit log's hash chain")
    gc = sub.add_parser("gc", help="retention GC of MLflow runs and versions (dry run by default)")
    gc.add_argument("--apply", action="store_true", help="soft-delete, `mlflow gc` and archive (else only print)")
    gc.add_argument("--json", action="store_true")
    gc.add_argument("--policy", type=Path, default=None, help="retention policy (default conf/retention.yaml)")
    return p


def _print_list(listing: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(listing, indent=2, default=str))
        return
    for t, rows in listing.items():
        print(f"{t}  ({rows[0]['name'] if rows else 'not registered'})")
        for r in rows:
            created = (datetime.fromtimestamp(r["created"] / 1000, UTC).strftime("%Y-%m-%d %H:%M")
                       if r["created"] else "")
            tags = r["tags"]
            mae = [v for k, v in r["metrics"].items() if k.startswith("test/mae_")]
            cov = r["metrics"].get("test/coverage_90")
            print(f"  v{r['version']:<4} {','.join(r['aliases']) or '-':<16} {tags.get('semver', '-'):<18} "
                  f"run={str(r['run_id'])[:12]:<12} schema={tags.get('feature_schema_version', '-'):<7} "
                  f"seed={tags.get('seed', '-'):<4} {tags.get('engine', '-')}/{tags.get('precision', '-')}/"
                  f"{tags.get('device', '-')}  mean_mae={sum(mae) / len(mae) if mae else float('nan'):.4f} "
                  f"cov90={cov if cov is not None else float('nan'):.3f}  {created}")


def _print_result(res) -> None:
    for g in res.gates:
        print(f"  [{'PASS' if g.passed else 'FAIL'}] {g.name}: {g.reason}")
    if res.ok:
        print(f"{res.action}: {res.name} aliases {res.aliases_before} -> {res.aliases_after}")
    else:
        print(f"{res.action} refused for {res.name} v{res.version}: "
              + "; ".join(f"{g.name}: {g.reason}" for g in res.failed))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from registry import ops
    from registry.config import load_config

    try:
        cfg = load_config(args.config, tracking_uri=args.tracking_uri)
        if args.cmd == "stable-at":
            print(ops.stable_at(cfg, args.model_type, args.when) or "none")
            return 0
        if args.cmd == "gc":
            from retention.cli import registry_gc

            return registry_gc(cfg, apply=args.apply, as_json=args.json, policy_path=args.policy)
        if args.cmd == "verify-audit":
            from registry import audit

            problems = audit.verify(cfg.audit_path())
            print("\n".join(problems) or f"audit log intact ({len(audit.read(cfg.audit_path()))} entries)")
            return 1 if problems else 0
        from registry.store import connect

        client = connect(cfg)
        if args.cmd == "list":
            ops.reconcile(client, cfg)
            _print_list(ops.list_versions(client, cfg, args.model_type), args.json)
            return 0
        if args.cmd == "history":
            ops.reconcile(client, cfg)
            for e in ops.history(cfg, args.model_type):
                print(json.dumps({k: e.get(k) for k in ("ts", "action", "model_type", "version", "from_version",
                                                        "aliases", "actor", "reason")}, default=str))
            return 0
        if args.cmd == "promote":
            res = ops.promote(client, cfg, args.model_type, args.version, args.reason, args.actor)
        else:
            res = ops.rollback(client, cfg, args.model_type, args.reason, args.actor,
                               check_loads=not args.no_load_check)
        _print_result(res)
        return 0 if res.ok else 1
    except TrendflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug or an input no check caught yet: still one line, naming it, not a traceback
        print(f"error: internal_error: {type(exc).__name__}: {exc}"[:2000], file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
