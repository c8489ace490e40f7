"""CLI: ``python -m inference {serve, predict, reload, schema, demo}``.

    serve   [--config conf/inference.yaml] [--port N] [--host H] [--tracking-uri URI]
    predict --url http://127.0.0.1:8000 (--features FILE|JSON | --artifacts DIR | --video PATH [--metadata FILE|JSON])
    reload  --url URL            (or send SIGHUP to the serve process)
    schema                       print the request/response JSON Schemas for the configured spec
    demo    --video PATH [--metadata FILE]   promote the demo models (gates), serve the pinned versions,
                                             print one prediction's JSON for the video

Errors print as ``error: code: message`` with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from common.errors import TrendflowError


def _json_arg(value: str | None) -> Any:
    if value is None:
        return None
    p = Path(value)
    return json.loads(p.read_text()) if p.exists() else json.loads(value)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m inference", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=None, help="inference config (default conf/inference.yaml)")
    p.add_argument("--tracking-uri", default=None)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--config", type=Path, default=None, dest="config_sub")
    s.add_argument("--host", default=None)
    s.add_argument("--port", type=int, default=None)
    pr = sub.add_parser("predict")
    pr.add_argument("--url", default="http://127.0.0.1:8000")
    g = pr.add_mutually_exclusive_group(required=True)
    g.add_argument("--features")
    g.add_argument("--artifacts")
    g.add_argument("--video")
    pr.add_argument("--metadata", default=None, help="JSON or a file (default: the video's sidecar .json)")
    pr.add_argument("--user-id", default=None)
    rl = sub.add_parser("reload")
    rl.add_argument("--url", default="http://127.0.0.1:8000")
    sub.add_parser("schema")
    d = sub.add_parser("demo")
    d.add_argument("--video", type=Path, required=True)
    d.add_argument("--metadata", default=None)
    d.add_argument("--no-promote", action="store_true", help="serve whatever is stable now")
    return p


def _post(url: str, body: dict[str, Any] | None, token: str | None = None) -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from inference.config import load_config

    try:
        config = getattr(args, "config_sub", None) or args.config
        if args.cmd == "serve":
            from inference.server import serve

            cfg = load_config(config, tracking_uri=args.tracking_uri)
            if args.host:
                cfg.server.host = args.host
            if args.port is not None:
                cfg.server.port = args.port
            serve(cfg)
            return 0
        if args.cmd == "predict":
            if args.features:
                body: dict[str, Any] = {"features": _json_arg(args.features)}
            elif args.artifacts:
                body = {"artifacts_dir": str(Path(args.artifacts).resolve())}
            else:
                meta = _json_arg(args.metadata) or json.loads(Path(args.video).with_suffix(".json").read_text())
                body = {"video_path": str(Path(args.video).resolve()), "metadata": meta}
            if args.user_id:
                body["user_id"] = args.user_id
            status, payload = _post(args.url.rstrip("/") + "/predict", body)
            print(json.dumps(payload, indent=2))
            return 0 if status == 200 else 1
        if args.cmd == "reload":
            token = load_config(config).admin.auth().token()  # the same variable/file the server reads
            status, payload = _post(args.url.rstrip("/") + "/admin/reload", None, token)
            print(json.dumps(payload, indent=2))
            return 0 if status == 200 else 1
        if args.cmd == "schema":
            from features import load_spec
            from inference.access import PathPolicy
            from inference.contract import FeatureContract
            from inference.schemas import published_schemas, request_schema

            cfg = load_config(config)
            c = FeatureContract.from_spec(load_spec(cfg.path(cfg.spec)))
            roots = [str(r) for r in PathPolicy.from_config(cfg.allowed_roots, cfg.path).roots]
            print(json.dumps(published_schemas(request_schema(
                c.columns, c.critical, list(cfg.request_modes), roots=roots, max_abs=cfg.limits.max_abs_feature,
                max_text=cfg.limits.max_text_chars, slots=list(cfg.models),
                types=sorted({sc.type for sc in cfg.models.values()}))), indent=2))
            return 0
        from inference.demo import run_demo

        result = run_demo(args.video, _json_arg(args.metadata), config_path=config, promote=not args.no_promote,
                          tracking_uri=args.tracking_uri)
        print(json.dumps(result["response"], indent=2))
        return 0 if result["status"] == 200 else 1
    except TrendflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
