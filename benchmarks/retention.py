"""Retention GC speed on a fabricated store, and a check that nothing live was deleted.

    python -m benchmarks.retention [--runs 20000] [--per-run 5] [--root data/bench/retention]

The store (:class:`testsupport.stores.FabricatedStore`) has ``runs`` runs of ``per-run`` artifacts each (default
100,000 artifacts in 20,000 runs): 2,000 videos with 10 runs each, ages spread over 0-120 days, a model signature
that changes every fourth run (a new retention key), cache hits as hard links to the run before when the signature
is unchanged, 1% of runs pinned by a fabricated registered model, and a live lease on 20 videos. It is built fresh
each time (the GC deletes from it). Then, in this process: the dry run (scan + mark, nothing deleted), and the
apply (scan + mark again + sweep). ``wrongly_deleted`` is computed by checking that every file of every run the
dry run judged live still exists, and every cache-index entry still points at an existing file.

The last line is ``gc_artifacts_per_s=<artifacts examined per second of the apply> freed_mib=<m>
wrongly_deleted=<n>``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from common.paths import DATA_DIR


def build(root: Path, runs: int, per_run: int, now: float) -> tuple[object, dict]:
    from retention.pins import Pins
    from testsupport.stores import FabricatedStore

    shutil.rmtree(root, ignore_errors=True)
    store = FabricatedStore(root, now=now, size=1024)
    comps = tuple(f"c{i}" for i in range(per_run))
    videos = max(1, runs // 10)
    pins: dict[tuple[str, str, str], str] = {}
    t0 = time.perf_counter()
    for v in range(videos):
        prev = None
        for k in range(runs // videos):
            age = 120.0 * (1 - k / (runs // videos)) + (v % 7) * 0.1 + 0.05  # never exactly on the cap
            sig = f"m{k // 4}"
            rid = f"r{k:02d}"
            store.add_run(f"v{v:05d}", rid, age, model_sig=sig, components=comps,
                          link_from=prev if k % 4 else None, status="partial" if k % 9 == 8 else "ok")
            prev = rid
            if (v * 10 + k) % 100 == 0:
                pins[("yt", f"v{v:05d}", rid)] = "training data of trendflow-bench v1 (alias stable)"
        if v % 200 == 0:
            print(f"built {v * (runs // videos)}/{runs} runs ({time.perf_counter() - t0:.0f} s)", file=sys.stderr,
                  flush=True)
    for i in range(20):
        store.lease(f"live{i}", [("yt", f"v{i * 50:05d}")])
    return Pins(runs=pins), {"videos": videos, "build_s": round(time.perf_counter() - t0, 1)}


def check(root: Path, live_runs: list[tuple[str, list[str]]]) -> int:
    """Live files that no longer exist, plus index entries pointing at a missing file."""
    missing = sum(not (root / rel / name).exists() for rel, names in live_runs for name in names)
    for idx in root.glob("*/*/cache/*.json"):
        missing += not (root / json.loads(idx.read_text())["artifact"]).exists()
    return missing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.retention", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20000)
    p.add_argument("--per-run", type=int, default=5)
    p.add_argument("--root", type=Path, default=DATA_DIR / "bench" / "retention")
    p.add_argument("--keep", action="store_true", help="leave the store on disk afterwards")
    a = p.parse_args(argv)
    from retention.artifacts import gc_store
    from retention.policy import load_policy

    now = time.time()
    pins, info = build(a.root, a.runs, a.per_run, now)
    policy = load_policy(None, record=str(a.root.parent / "retention-gc.jsonl"))
    t0 = time.perf_counter()
    dry = gc_store(a.root, policy, now=now, pins=pins)
    dry_s = time.perf_counter() - t0
    from retention.store import scan

    live = [(f"{r.platform_id}/{r.video_id}/{r.run_id}", [f.name for f in r.files]) for r in scan(a.root).runs
            if str(a.root / r.rel) not in {i.what for i in dry.items if i.kind in ("run", "incomplete_run")}]
    t0 = time.perf_counter()
    done = gc_store(a.root, policy, apply=True, now=now, pins=pins)
    apply_s = time.perf_counter() - t0
    wrong = check(a.root, live)
    artifacts = a.runs * a.per_run
    print(json.dumps({**info, "runs": a.runs, "artifacts": artifacts, "dry_run_s": round(dry_s, 2),
                      "apply_s": round(apply_s, 2), "runs_deleted": done.by_kind().get("run", {}).get("count", 0),
                      "kept": done.kept, "kept_past_cap": len(done.kept_past_cap), "stats": done.stats,
                      "dry_equals_apply": dry.freed_bytes == done.freed_bytes}, indent=2))
    if not a.keep:
        shutil.rmtree(a.root, ignore_errors=True)
    print(f"gc_artifacts_per_s={artifacts / apply_s:.0f} freed_mib={done.freed_bytes / 2**20:.1f} "
          f"wrongly_deleted={wrong}")
    return 0 if wrong == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
