"""``python -m demo``: generate demo data, start Triton, extract, build features, train, promote, serve, GC dry run.

Each step is an importable function of the package that owns it; this file only composes them and prints
what a person wants to see. Embedded defaults: a local Triton, a SQLite-backed MLflow, files on disk.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common.errors import TrendflowError

ROOT = Path(__file__).resolve().parent.parent
MLFLOW_UI = (".venv/bin/mlflow ui --backend-store-uri sqlite:///.trendflow/mlflow/mlflow.db "
             "--default-artifact-root ./.trendflow/mlflow/artifacts --host 127.0.0.1 --port 5000 --workers 1")


def _step(title: str) -> float:
    print(f"\n=== {title} ===", flush=True)
    return time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demo")
    p.add_argument("--n", type=int, default=2000, help="demo videos to generate")
    p.add_argument("--data", type=Path, default=ROOT / "data")
    p.add_argument("--profile", default="fast")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    demo_dir, artifacts = args.data / "demo", args.data / "artifacts"
    try:
        from demo import synth
        from extraction import triton_server
        from planning.api import ensure_checklist, run_extraction

        t = _step(f"1. demo corpus: {args.n} videos -> {demo_dir}")
        if (demo_dir / "labels.csv").exists() and len(list((demo_dir / "videos").glob("*.mp4"))) >= args.n:
            print("reusing the existing corpus (delete data/demo to regenerate)")
        else:
            synth.generate(n=args.n, out=demo_dir, seed=args.seed)
        print(f"done in {time.perf_counter() - t:.1f}s")

        t = _step("2. Triton")
        state = triton_server.start()
        print(json.dumps(triton_server.status(), indent=2))
        print(f"ready at grpc {state.grpc_url} in {time.perf_counter() - t:.1f}s")

        t = _step(f"3. extraction ({args.profile} profile) under the batching planner")
        checklist = ensure_checklist(args.profile)
        print(f"checklist: {checklist}")
        summary = run_extraction(demo_dir / "videos", artifacts, profile=args.profile, seed=args.seed,
                                 checklist=checklist, on_plan=lambda p: print(p.describe(), flush=True),
                                 on_replan=lambda p: print(p.describe(), flush=True))
        print(f"videos={summary.videos} ok={summary.ok} failed={summary.failed} computed={summary.computed} "
              f"cache_hits={summary.cache_hits} in {summary.seconds:.1f}s")

        from features import build_dataset

        t = _step("4. features: training table")
        ds = build_dataset(artifacts, demo_dir / "labels.csv", args.data / "dataset.parquet")
        print("\n".join(ds.lines()))
        print(f"done in {time.perf_counter() - t:.1f}s")

        from training.demo import comparison_table, train_all

        t = _step("5. training: baseline, v1, v2 (tracked and registered in the embedded MLflow store)")
        results = train_all(args.data / "dataset.parquet")
        print(f"\n--- test metrics, all three families ({time.perf_counter() - t:.0f}s) ---")
        print(comparison_table(results))

        from inference.demo import run_demo

        t = _step("6. registry promotion, service on the pinned versions, one prediction for a video by path")
        video = sorted((demo_dir / "videos").glob("*.mp4"))[0]
        result = run_demo(video)
        print(f"POST /predict {{video_path: {video.relative_to(ROOT) if video.is_relative_to(ROOT) else video}}}"
              f" -> HTTP {result['status']} in {result['seconds']:.1f}s (promotion and service start included)")
        print(json.dumps(result["response"], indent=2))
        if result["status"] != 200:
            return 1
        _observability(artifacts)
        from extraction.__main__ import main as extraction_cli

        t = _step("8. retention: what `python -m extraction gc` would free in this store (dry run)")
        stores = [artifacts] + [s for s in [ROOT / ".trendflow" / "serving" / "artifacts"] if s.is_dir()]
        extraction_cli(["gc", *(a for s in stores for a in ("--artifacts", str(s)))])
        print("\nMLflow UI on this store: " + MLFLOW_UI)
        print(f"Triton keeps running (pid {state.pid}); stop it with: make triton-stop")
    except TrendflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _observability(artifacts: Path) -> None:
    """Step 7: ingest what the demo produced into the observability store, print the page URL and a summary
    (reported, never failing the demo)."""
    _step("7. observability: runs, components, alerts")
    try:
        from observability.api import ingest_and_summarize

        report, summary, url = ingest_and_summarize(artifacts, mlflow=True)
        print(report.line())
        print("\n".join(summary.lines()))
        print(f"admin page: TRENDFLOW_ADMIN_TOKEN=<token> .venv/bin/python -m observability serve -> {url}")
    except Exception as exc:  # the demo's own results stand
        print(f"observability: skipped ({exc})")


if __name__ == "__main__":
    sys.exit(main())
