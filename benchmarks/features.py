"""Table-building throughput: the vectorised batch path against a straightforward per-row loop.

    python -m benchmarks.features [--n 10000] [--root data/bench/features-10000-s0] [--loop-n N]

The corpus is ``n`` runs' artifacts written directly in the components' schemas with
:func:`extraction.artifacts.write_artifact` (:mod:`testsupport.artifacts`, no video decoded), generated once with
4 processes (fsync-bound) and reused while its stamp matches. Both paths then build the same feature table from the same
run folders, one after the other in this process, on a warm page cache (a first pass reads every byte):

* **loop** — per run :func:`extraction.artifacts.load_run` (every array, meta through pydantic, schema
  validation), then one Python dict of features with numpy's per-array functions; rows -> Arrow at the end.
* **vectorised** — :func:`features.build.build_features`: per run only the fields the spec needs, read from
  one ``read`` of each NPZ (checked meta/ranks), then per chunk of 1,024 runs one segmented numpy operation per
  feature and Arrow columns directly.

IO and compute are timed separately for both, so the ratio can be read honestly: most of the end-to-end gain
is in reading (fewer arrays, no per-file pydantic/zip overhead), the rest in the columnar compute. The tables
are compared (same NaN positions, values within float rounding) before anything is printed. The last line is
``vectorised_vs_loop=<end-to-end ratio> videos_per_s=<vectorised end-to-end throughput>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

GENERATOR_VERSION = "1"  # bump when testsupport.artifacts changes what it writes


def ensure_corpus(root: Path, n: int, seed: int, workers: int) -> tuple[float, bool]:
    """(seconds spent generating, reused?)"""
    from testsupport.artifacts import fabricate_corpus

    stamp = root / "corpus.json"
    want = {"n": n, "seed": seed, "generator": GENERATOR_VERSION}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return 0.0, True
    if root.exists():
        import shutil

        shutil.rmtree(root)
    t0 = time.perf_counter()
    fabricate_corpus(root / "artifacts", n, seed=seed, workers=workers, labels_path=root / "labels.csv")
    stamp.write_text(json.dumps(want))
    return time.perf_counter() - t0, False


def _rate(n: int, s: float) -> float:
    return n / s if s > 0 else float("inf")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.features")
    p.add_argument("--n", type=int, default=10_000, help="runs in the corpus (>= 10,000 for the reported number)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", type=Path, default=None, help="corpus folder (default data/bench/features-<n>-s<seed>)")
    p.add_argument("--loop-n", type=int, default=None, help="runs the loop baseline processes (default: all)")
    p.add_argument("--workers", type=int, default=4,
                   help="processes generating the corpus (fsync-bound: > cores helps)")
    args = p.parse_args(argv)

    import pyarrow as pa

    from features.build import BuildReport, build_features, discover_runs
    from features.io import read_run
    from features.spec import load_spec
    from testsupport.reference_features import row_dict

    root = args.root or Path("data/bench") / f"features-{args.n}-s{args.seed}"
    gen_s, reused = ensure_corpus(root, args.n, args.seed, args.workers)
    spec = load_spec()
    print(f"corpus: {args.n} runs x 9 components under {root} "
          + ("(reused)" if reused else f"(written with write_artifact in {gen_s:.1f}s, {args.workers} processes)"))

    t0 = time.perf_counter()
    dirs = discover_runs(root / "artifacts")
    discover_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    nbytes = sum(len(f.read_bytes()) for d in dirs for f in d.iterdir())
    warm_s = time.perf_counter() - t0
    print(f"discover (manifests, newest run per video): {len(dirs)} runs in {discover_s:.2f}s (shared, not counted)")
    print(f"warm-up pass, raw bytes of every file: {nbytes / 1e6:.0f} MB in {warm_s:.2f}s (not counted)")

    # -- vectorised ------------------------------------------------------------------------------------
    rep = BuildReport()
    t0 = time.perf_counter()
    vec = build_features(dirs, spec, report=rep)
    vec_s = time.perf_counter() - t0
    n_vec = len(dirs)

    # -- loop ------------------------------------------------------------------------------------------
    loop_dirs = dirs[: args.loop_n] if args.loop_n else dirs
    io_s = cmp_s = 0.0
    rows = []
    t0 = time.perf_counter()
    for rd in loop_dirs:
        a = time.perf_counter()
        run = read_run(rd)
        b = time.perf_counter()
        rows.append(row_dict(run, spec))
        io_s += b - a
        cmp_s += time.perf_counter() - b
    b = time.perf_counter()
    loop_table = pa.Table.from_pylist(rows)
    cmp_s += time.perf_counter() - b
    loop_s = time.perf_counter() - t0
    n_loop = len(loop_dirs)

    # -- same answer? -----------------------------------------------------------------------------------
    ids = vec.column("video_id").to_pylist()
    pos = {v: i for i, v in enumerate(ids)}
    take = [pos[v] for v in loop_table.column("video_id").to_pylist() if v in pos]
    keep = [i for i, v in enumerate(loop_table.column("video_id").to_pylist()) if v in pos]
    worst = 0.0
    for c in spec.feature_columns:
        x = vec.column(c).to_numpy()[take].astype(np.float64)
        y = loop_table.column(c).to_numpy(zero_copy_only=False)[keep].astype(np.float64)
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            print(f"MISMATCH: missing values differ in {c}", file=sys.stderr)
            return 1
        both = ~np.isnan(x)
        if both.any():
            worst = max(worst, float(np.max(np.abs(x[both] - y[both]) / np.maximum(1.0, np.abs(y[both])))))
    if worst > 1e-5:
        print(f"MISMATCH: vectorised and loop differ by {worst:.2e} (relative)", file=sys.stderr)
        return 1

    v_rate, l_rate = _rate(n_vec, vec_s), _rate(n_loop, loop_s)
    print(f"\n{'path':<11}{'runs':>7}{'io s':>9}{'compute s':>11}{'total s':>9}{'io runs/s':>11}"
          f"{'compute runs/s':>16}{'runs/s':>9}")
    print(f"{'loop':<11}{n_loop:>7}{io_s:>9.2f}{cmp_s:>11.2f}{loop_s:>9.2f}{_rate(n_loop, io_s):>11.0f}"
          f"{_rate(n_loop, cmp_s):>16.0f}{l_rate:>9.0f}")
    print(f"{'vectorised':<11}{n_vec:>7}{rep.seconds_read:>9.2f}{rep.seconds_compute:>11.2f}{vec_s:>9.2f}"
          f"{_rate(n_vec, rep.seconds_read):>11.0f}{_rate(n_vec, rep.seconds_compute):>16.0f}{v_rate:>9.0f}")
    print(f"\nio speed-up {(_rate(n_vec, rep.seconds_read) / _rate(n_loop, io_s)):.1f}x, compute speed-up "
          f"{(_rate(n_vec, rep.seconds_compute) / _rate(n_loop, cmp_s)):.1f}x; tables agree (max relative "
          f"difference {worst:.1e}, same missing cells); rows dropped as critical-missing: "
          f"{len(rep.dropped_critical)}; 1 process, {len(os.sched_getaffinity(0))} cores available")
    print(f"vectorised_vs_loop={v_rate / l_rate:.2f} videos_per_s={v_rate:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
