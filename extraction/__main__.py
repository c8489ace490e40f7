"""CLI: ``python -m extraction {run, triton start|stop|status}``.

Errors print as ``error_code: message`` and exit with status 2; no stack trace is the only message.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from extraction import triton_server
from extraction.errors import TrendflowError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m extraction", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="extract every video of a folder into artifacts")
    r.add_argument("--videos", type=Path, required=True, help="folder of *.mp4 + sidecar *.json")
    r.add_argument("--out", type=Path, required=True, help="artifacts root")
    r.add_argument("--profile", default="fast", help="analysis profile (fast | quality)")
    r.add_argument("--triton-url", default=None, help="gRPC host:port (default: the server `triton start` recorded)")
    r.add_argument("--videos-in-parallel", type=int, default=1)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-progress", action="store_true")
    t = sub.add_parser("triton", help="manage the local Triton server")
    t.add_argument("action", choices=["start", "stop", "status"])
    t.add_argument("--model-repository", type=Path, default=triton_server.DEFAULT_MODEL_REPOSITORY)
    t.add_argument("--state-dir", type=Path, default=triton_server.DEFAULT_STATE_DIR)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "triton":
            if args.action == "start":
                s = triton_server.start(args.model_repository, args.state_dir)
                print(json.dumps({"pid": s.pid, "http": s.http_url, "grpc": s.grpc_url,
                                  "metrics": f"127.0.0.1:{s.metrics_port}", "log": s.log_path}, indent=2))
            elif args.action == "stop":
                print("stopped" if triton_server.stop(args.state_dir) else "not running")
            else:
                st = triton_server.status(args.state_dir)
                print(json.dumps(st, indent=2))
                return 0 if st["ready"] else 1
            return 0
        from extraction.api import run_extraction  # noqa: PLC0415

        summary = run_extraction(args.videos, args.out, args.profile, args.triton_url,
                                 videos_in_parallel=args.videos_in_parallel, seed=args.seed,
                                 progress=not args.no_progress)
        print(json.dumps(summary.to_dict() | {"manifests": len(summary.manifests)}, indent=2))
        return 0
    except TrendflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
