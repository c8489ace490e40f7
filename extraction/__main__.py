"""CLI: ``python -m extraction {run, gc, triton start|stop|status, checklist profile|check}``.

Errors print as ``error_code: message`` and exit with status 2; no stack trace is the only message.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.errors import TrendflowError
from extraction import triton_server


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m extraction", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="extract every video of a folder into artifacts")
    r.add_argument("--videos", type=Path, required=True, help="folder of *.mp4 + sidecar *.json")
    r.add_argument("--out", type=Path, required=True, help="artifacts root")
    r.add_argument("--profile", default="fast", help="analysis profile (fast | quality)")
    r.add_argument("--triton-url", default=None, help="gRPC host:port (default: the server `triton start` recorded)")
    r.add_argument("--videos-in-parallel", type=int, default=None,
                   help="with the planner: the most videos at once it may choose (default 8); with --no-plan: "
                        "exactly this many (default 1)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--no-plan", action="store_true", help="skip the batching planner (fixed batch 8)")
    r.add_argument("--checklist", type=Path, default=None,
                   help="checklist file, refused if stale (default: this hardware's committed one if fresh, else a "
                        "machine-local one, else a quick one measured now into .trendflow/checklist/)")
    r.add_argument("--memory-budget", default=None, help="cap on the memory the run may use, e.g. 2GiB, 800MiB")
    r.add_argument("--safety-margin", type=float, default=0.2, help="fraction of free memory left untouched")
    r.add_argument("--max-loaded-models-per-device", type=int, default=8)
    r.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: this machine and its Triton (default); ray: a Ray cluster, one Triton per node")
    r.add_argument("--ray-address", default=None,
                   help="with --executor ray: the cluster (auto, host:port, ray://...); default: start a local one")
    r.add_argument("--keep-triton", action="store_true",
                   help="with --executor ray: leave the Triton each node started running for later runs")
    c = sub.add_parser("checklist", help="measure (profile) or check the batching planner's checklist")
    c.add_argument("action", choices=["profile", "check"])
    c.add_argument("--profile", default="fast", help="analysis profile (fast | quality)")
    c.add_argument("--videos", type=Path, default=None, help="calibration corpus (default: render a few videos)")
    c.add_argument("--out", type=Path, default=None,
                   help="checklist file written (profile) or read (check); "
                        "default conf/checklist/<hardware>/<profile>.yaml")
    c.add_argument("--quick", action="store_true", help="fewer batch sizes, shorter windows")
    c.add_argument("--calibration-videos", type=int, default=None,
                   help="videos per size class (default 6; quick 1)")
    c.add_argument("--no-reload", action="store_true",
                   help="do not unload/load models (fixed memory from their processes, no load time)")
    c.add_argument("--triton-url", default=None)
    c.add_argument("--state-dir", type=Path, default=triton_server.DEFAULT_STATE_DIR)
    g = sub.add_parser("gc", help="retention GC of artifact stores, temp files and model weights (dry run by default)")
    g.add_argument("--artifacts", type=Path, action="append", default=None,
                   help="artifact store to collect (repeatable; default: the policy's stores, temp files and weights)")
    g.add_argument("--temp", action="store_true", help="also expire temp files (default when no --artifacts)")
    g.add_argument("--weights", action="store_true", help="also collect model weights (default when no --artifacts)")
    g.add_argument("--apply", action="store_true", help="delete (without it: print what would go, why, and bytes)")
    g.add_argument("--json", action="store_true", help="the full report as JSON")
    g.add_argument("--policy", type=Path, default=None, help="retention policy (default conf/retention.yaml)")
    g.add_argument("--registry-config", type=Path, default=None,
                   help="registry config whose versions pin their training runs (default conf/registry.yaml)")
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
        if args.cmd == "checklist":
            return _checklist(args)
        if args.cmd == "gc":
            from retention.cli import extraction_gc

            return extraction_gc(args.artifacts, apply=args.apply, as_json=args.json, policy_path=args.policy,
                                 registry_config=args.registry_config, temp=args.temp, weights=args.weights)
        if args.executor == "ray":
            return _run_on_ray(args)
        if args.ray_address:
            raise TrendflowError("--ray-address needs --executor ray", code="config_invalid")
        from planning.api import ensure_checklist, run_extraction

        checklist = args.checklist
        if checklist is None and not args.no_plan:
            checklist = ensure_checklist(args.profile, args.triton_url,
                                         log=lambda m: print(m, file=sys.stderr, flush=True))
        summary = run_extraction(args.videos, args.out, args.profile, args.triton_url,
                                 videos_in_parallel=args.videos_in_parallel or 1, seed=args.seed,
                                 progress=not args.no_progress, plan=not args.no_plan, checklist=checklist,
                                 memory_budget=parse_bytes(args.memory_budget) if args.memory_budget else None,
                                 safety_margin=args.safety_margin, max_videos_in_parallel=args.videos_in_parallel or 8,
                                 max_loaded_models_per_device=args.max_loaded_models_per_device,
                                 on_plan=lambda p: print(p.describe(), file=sys.stderr, flush=True),
                                 on_replan=lambda p: print(p.describe(), file=sys.stderr, flush=True))
        print(json.dumps(summary.to_dict() | {"manifests": len(summary.manifests)}, indent=2))
        _observe(args.out, summary.run_id)
        return 0
    except TrendflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.cmd == "run":
            _observe(args.out, None, exc)
        return 2
    except Exception as exc:  # a bug or an input no check caught yet: still one line, naming it, not a traceback
        print(f"error: internal_error: {type(exc).__name__}: {exc}"[:2000], file=sys.stderr)
        return 3


def _run_on_ray(args: argparse.Namespace) -> int:
    """``run --executor ray``: the same planned extraction over a Ray cluster (``planning.distributed``)."""
    if args.no_plan or args.memory_budget or args.triton_url:
        raise TrendflowError("--no-plan, --memory-budget and --triton-url are local-executor options; on Ray each "
                             "node declares its budget (cpu_mem_mb) and runs its own Triton", code="config_invalid")
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise TrendflowError('--executor ray needs Ray: pip install -e ".[ray]"', code="config_invalid")
    from planning.distributed.ray_executor import run_on_ray

    summary = run_on_ray(args.videos, args.out, args.profile, address=args.ray_address, checklist=args.checklist,
                         seed=args.seed, safety_margin=args.safety_margin,
                         max_videos_in_parallel=args.videos_in_parallel or 8,
                         max_loaded_models_per_device=args.max_loaded_models_per_device,
                         progress=not args.no_progress, keep_tritons=args.keep_triton,
                         on_plan=lambda p: print(p.describe(), file=sys.stderr, flush=True))
    print(json.dumps(summary.to_dict() | {"manifests": len(summary.manifests)}, indent=2))
    return 0


def _observe(out: Path, run_id: str | None, failure: TrendflowError | None = None) -> None:
    """Ingest the run into the observability store (a failure to start as a failed run); never fails the run."""
    try:
        from observability.api import ingest_after_run, record_failed_run

        if failure is not None:
            record_failed_run("extraction", failure.code, failure.message)
        else:
            ingest_after_run(artifacts=out, run_ids=[run_id] if run_id else None)
    except Exception as exc:  # observability is best effort here: the run's own result stands
        print(f"observability: not recorded ({exc})", file=sys.stderr)


def parse_bytes(text: str) -> int:
    """``2GiB``, ``800MiB``, ``1.5GB``, ``123456`` -> bytes."""
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
    t = text.strip().lower().replace(" ", "")
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    if t[len(num):] not in units or not num:
        raise TrendflowError(f"cannot read {text!r} as bytes (use e.g. 2GiB, 800MiB)", code="config_invalid")
    return int(float(num) * units[t[len(num):]])


def _checklist(args: argparse.Namespace) -> int:
    from planning.checklist import load_checklist
    from planning.profiler import run_profile

    if args.action == "profile":
        run_profile(args.profile, url=args.triton_url, state_dir=args.state_dir, videos_dir=args.videos,
                    out=args.out, quick=args.quick, reload_models=not args.no_reload,
                    per_class=args.calibration_videos,
                    log=lambda m: print(m, file=sys.stderr, flush=True))
        return 0
    from planning.api import served_signatures
    from planning.inputs import find_checklist

    path = find_checklist(args.profile, args.out)
    cl = load_checklist(path)
    cl.check_signatures(served_signatures(args.profile, args.triton_url, args.state_dir), source=str(path))
    print(json.dumps({"checklist": str(path), "ok": True, **cl.summary()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
