"""Training benchmark: time per family, inference rows/s, quality against the naive and log-linear references.

    python -m benchmarks.training [--n 100000] [--seed 0] [--demo data/dataset.parquet] [--families baseline,v1,v2]
                                  [--sizes 1000,2000,4000] [--other-sizes 2000] [--compare-grouping]

Tables:

* the demo table (``--demo``, default ``data/dataset.parquet``, skipped with a note when absent), trained with
  :data:`training.demo.DEMO_SETTINGS`;
* a generated table of ``--n`` rows (default 100,000) with the real spec's columns (:mod:`demo.synthetic_table`,
  seeded; written once to ``data/bench/training-synthetic-<n>-s<seed>.parquet`` and reused), trained with
  :data:`BENCH_SETTINGS` (the defaults, with fewer boosting rounds / epochs so the run fits in ~15 minutes on 2
  shared CPU cores).

Per family: training time (fit of every model, calibration excluded), inference rows/s (the full
``TrendflowModel.predict``: raw frame -> imputation -> model -> calibrated quantiles -> contract frame, 20,000
rows in one call; MLflow's pyfunc adds schema enforcement on top), test MAE per target against the naive
predictor (training median per target) and the log-linear Szabo-Huberman model (``log1p count at horizon = a + b
log1p count at the first snapshot``, least squares on the training split), and the empirical coverage of the
80/90/95% intervals pooled over the six targets (and of the 90% one per age bucket). Quality floor checked and
printed: every family beats the naive predictor on every target; v2 and the baseline beat the log-linear model on
mean MAE; on the demo table, nominal 90% intervals cover 88-92% of the test split, widened as the registry's
coverage gate widens it on a small split (:func:`coverage_band_90`).

``--compare-grouping`` also fits the CatBoost point model with one MultiRMSEWithMissingValues model over the six
targets and with one per metric (views / likes) on the generated table, and prints time and MAE of both.

Size sweep (``--sizes 1000,2000,4000``, ``--other-sizes 2000``): every family with its *default* settings on
tables of the demo's process (:mod:`demo.synthetic_table`) and of another process (:mod:`demo.other_table`), one
line per run: the calibration scheme chosen (``auto``: split or cross), MAE vs naive and log-linear, coverage at
80/90/95, the 90% width and the worst age bucket (among those with >= 100 test values). On the large table the
baseline also runs with its defaults (the "< 60 s" goal), the networks with :data:`BENCH_SETTINGS`.

The last line is machine readable, for the generated table:
``baseline:mae_vs_naive=<r>,mae_vs_loglinear=<r>,cov90=<p> v1:... v2:... worst_cov90_gap=<max |cov90 - 0.90| over
families, sizes and buckets with >= 100 values> worst_cov90_gap_noise95=<95th percentile of the same maximum's
distance from its cells' own expectations by chance alone, seeds resampled (:func:`worst_gap_noise`)>
v2_vs_baseline_mae=<ratio on the demo table, else on the largest
sweep table> baseline_train_s_100k=<fit + calibration seconds of the default baseline on the large table>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FAMILY_EXP = {"baseline": "+exp=baseline", "v1": "+exp=v1", "v2": "+exp=v2"}
BENCH_SETTINGS: dict[str, list[str]] = {
    "baseline": ["model.iterations=300", "model.quantile_iterations=150", "model.learning_rate=0.15",
                 "model.quantile_learning_rate=0.15"],
    "v1": ["trainer.max_epochs=12", "trainer.batch_size=512", "trainer.patience=3"],
    "v2": ["trainer.max_epochs=12", "trainer.batch_size=512", "trainer.patience=3"],
}


def ensure_table(n: int, seed: int, process: str = "synthetic") -> tuple[Path, float]:
    """The generated table (reused when present); returns (path, seconds spent generating).

    ``process``: ``synthetic`` (:mod:`demo.synthetic_table`, the demo's process) or ``other``
    (:mod:`demo.other_table`, a different one). The file name carries the generator version and the spec hash, so a
    table of another generator or spec is never reused."""
    import features
    from demo.other_table import generate_other_table
    from demo.synthetic_table import GENERATOR_VERSION, generate_table, write_table

    spec = features.load_spec()
    path = ROOT / "data" / "bench" / f"training-{process}-{n}-s{seed}-g{GENERATOR_VERSION}-{spec.spec_hash[:8]}.parquet"
    if path.exists():
        return path, 0.0
    t0 = time.perf_counter()
    gen = generate_table if process == "synthetic" else generate_other_table
    write_table(gen(n, spec, seed), path, spec, seed, generator=f"demo.{process}_table")
    return path, time.perf_counter() - t0


def inference_rate(model: Any, frame: Any, rows: int = 20_000) -> float:
    import pandas as pd

    batch = pd.concat([frame] * (rows // len(frame) + 1), ignore_index=True).head(rows)
    model.predict(batch.head(100))  # warm-up
    t0 = time.perf_counter()
    model.predict(batch)
    return rows / (time.perf_counter() - t0)


def bench_table(path: Path, families: list[str], settings: dict[str, list[str]], fresh: Path | None = None
                ) -> dict[str, dict[str, float]]:
    """Train each family on ``path`` (tracking off); with ``fresh``, also score that table (``fresh/...`` metrics)."""
    from training.config import compose
    from training.data import load_table
    from training.train import evaluate, run

    out = {}
    for fam in families:
        overrides = [FAMILY_EXP[fam], f"data.path={path}", "tracking.enabled=false", "trainer.progress_bar=false",
                     *settings.get(fam, [])]
        print(f"  {fam}: python -m training {' '.join(overrides)}", flush=True)
        m, obj = run(compose(overrides))
        m = dict(m)
        m["bench/inference_rows_per_s"] = inference_rate(obj["model"], obj["test_frame"])
        m["bench/labels"] = obj["columns"].labels  # type: ignore[assignment]
        m["bench/scheme"] = obj["split"]["fit"]["calibration"]  # type: ignore[assignment]
        if fresh is not None:
            cols, c = obj.columns, obj.config
            df = load_table(fresh, cols, c.data.time_column)
            fm, _ = evaluate(obj.model, df, cols, list(c.intervals.levels), "fresh", obj.naive, obj.loglinear)
            m.update(fm)
        out[fam] = m
    return out


def coverage_band_90(n_rows: float) -> tuple[float, float]:
    """The band nominal 90% intervals must cover on a test split of ``n_rows`` rows: the registry's coverage gate
    (``conf/registry.yaml``: 88-92%, widened to ``coverage_z`` binomial standard errors on a small split), so the
    benchmark and promotion accept the same models."""
    from registry.config import load_config
    from registry.gates import coverage_allowance

    gates = load_config().gates
    tol = coverage_allowance(0.90, n_rows, gates.coverage_tolerance, gates.coverage_z)
    return 0.90 - tol, 0.90 + tol


def report(name: str, results: dict[str, dict[str, float]], coverage_band: bool = False) -> list[str]:
    """Print the table and the quality-floor checks (and the 90% coverage band, :func:`coverage_band_90` of each
    family's test rows, when ``coverage_band``); returns the failures."""
    labels = next(iter(results.values()))["bench/labels"]
    print(f"\n## {name}")
    print(f"{'family':<9}{'train_s':>9}{'rows/s':>10}{'mae':>8}{'naive':>8}{'loglin':>8}{'vs_naive':>9}"
          f"{'vs_ll':>7}{'cov80':>7}{'cov90':>7}{'cov95':>7}{'w90':>7}{'n_test':>8}")
    failures = []
    for fam, m in results.items():
        print(f"{fam:<9}{m['time/train_s']:>9.1f}{m['bench/inference_rows_per_s']:>10,.0f}{m['test/mae_mean']:>8.4f}"
              f"{m['test/naive_mae_mean']:>8.4f}{m['test/loglinear_mae_mean']:>8.4f}{m['test/mae_vs_naive']:>9.3f}"
              f"{m['test/mae_vs_loglinear']:>7.3f}{m['test/coverage_80']:>7.3f}{m['test/coverage_90']:>7.3f}"
              f"{m['test/coverage_95']:>7.3f}{m['test/width_90']:>7.3f}{int(m['test/n_target_values']):>8}")
        worse = [t for t in labels if m[f"test/mae_vs_naive_{t}"] >= 1.0]
        if worse:
            failures.append(f"{name}: {fam} does not beat the naive predictor on {worse}")
        if fam in ("baseline", "v2") and m["test/mae_vs_loglinear"] >= 1.0:
            failures.append(f"{name}: {fam} does not beat the log-linear model on mean MAE "
                            f"({m['test/mae_vs_loglinear']:.3f})")
        if coverage_band:
            lo, hi = coverage_band_90(m["test/n_rows"])
            if not lo <= m["test/coverage_90"] <= hi:
                failures.append(f"{name}: {fam} 90% interval coverage {m['test/coverage_90']:.3f} outside "
                                f"{lo:.3f}-{hi:.3f} ({int(m['test/n_rows'])} test rows)")
    per_target = "  ".join(f"{t}=" + "/".join(f"{results[f][f'test/mae_vs_naive_{t}']:.2f}" for f in results)
                           for t in labels)
    print(f"MAE vs naive per target ({'/'.join(results)}): {per_target}")
    print("90% interval per age bucket (test split):")
    from training.metrics import bucket_lines

    print("\n".join(bucket_lines(results)))
    print("quality floor: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    return failures


MIN_BUCKET_VALUES = 100  # the rule: a bucket's coverage counts when it holds >= 100 test target values


def bucket_cells(m: dict[str, Any], level: int = 90, prefix: str = "test") -> list[tuple[str, str, int]]:
    """(bucket, its coverage key at ``level``, values) of every age bucket of ``m`` with >= 100 values of the
    ``prefix`` split: the buckets the coverage goal is judged on."""
    cells = []
    for k in m:
        if not isinstance(k, str) or not k.startswith(f"{prefix}/coverage_{level}_bucket_"):
            continue
        b = k.removeprefix(f"{prefix}/coverage_{level}_bucket_")
        n = int(m.get(f"{prefix}/n_bucket_{b}", 0))
        if n >= MIN_BUCKET_VALUES:
            cells.append((b, k, n))
    return cells


def worst_bucket(m: dict[str, float], level: int = 90, prefix: str = "test") -> tuple[str, float, int]:
    """(bucket, coverage, values) of the bucket farthest from nominal among those with >= 100 values of the
    ``prefix`` split (``test``, or ``fresh``: the fresh draw)."""
    best = ("-", float("nan"), 0)
    for b, k, n in bucket_cells(m, level, prefix):
        if not abs(m[k] - level / 100) <= abs(best[1] - level / 100):
            best = (b, m[k], n)
    return best


FRESH_ROWS = 10_000  # rows of the fresh draw each sweep run is scored on (~57k target values, >2k per bucket)


FUTURE_SHARE = 0.25  # --fresh-split future: the latest quarter of the draw's time span is the fresh rows


def ensure_fresh_split(n: int, seed: int, process: str, fresh: int, how: str = "random") -> tuple[Path, Path]:
    """(table of ``n`` rows to train on, table of other rows of the same draw to score): one table of ``n + fresh``
    rows of one process and seed, cut in two.

    ``how="random"``: its rows shuffled (seeded), the first ``n`` train and the other ``fresh`` are scored -- new
    videos of the same process, exchangeable with the training ones (what the conformal guarantee is about), on
    ~50x more values than the run's own test split holds. ``how="future"``: the rows published in the last
    :data:`FUTURE_SHARE` of the draw's time span are scored (``(n + fresh) / 4`` of them) and ``n`` rows drawn
    (seeded) from the earlier ones train -- what a model meets after it is trained: the videos published after the
    ones it learned from (the issue's own check: 300 videos after 1,500), with every channel's history further on."""
    import numpy as np
    import pandas as pd

    import features
    from demo.synthetic_table import write_table

    if how not in ("random", "future"):
        raise ValueError(f"fresh split must be 'random' or 'future', got {how!r}")
    whole, _ = ensure_table(n + fresh, seed, process)
    tag = "" if how == "random" else "-future"
    train_path = whole.with_name(whole.stem + f"-train{n}{tag}.parquet")
    fresh_path = whole.with_name(whole.stem + f"-fresh{fresh}{tag}.parquet")
    if not (train_path.exists() and fresh_path.exists()):
        df = pd.read_parquet(whole)
        rng = np.random.default_rng(seed)
        if how == "random":
            order = rng.permutation(len(df))
            train_idx, fresh_idx = np.sort(order[:n]), np.sort(order[n:])
        else:
            t = pd.to_datetime(df["published_at"])
            late = (t >= t.quantile(1 - FUTURE_SHARE)).to_numpy()
            train_idx = np.sort(rng.choice(np.flatnonzero(~late), n, replace=False))
            fresh_idx = np.flatnonzero(late)
        spec = features.load_spec()
        write_table(df.iloc[train_idx].reset_index(drop=True), train_path, spec, seed,
                    generator=f"demo.{process}_table")
        write_table(df.iloc[fresh_idx].reset_index(drop=True), fresh_path, spec, seed,
                    generator=f"demo.{process}_table")
    return train_path, fresh_path


def pool_repeats(runs: list[dict[str, float]], prefix: str = "fresh") -> dict[str, Any]:
    """Mean over repeated runs of each coverage, width and MAE metric under ``prefix/`` (bucket counts summed);
    each coverage's sd across the runs under ``sd:<key>`` and its per-run values under ``seeds:<key>``.

    A mean over independent draws (table, calibration split, fresh videos) estimates the coverage the method
    delivers in expectation -- what conformal prediction guarantees -- while one run's bucket also carries the
    sampling spread of its own ~25-50 calibration videos."""
    import numpy as np

    keys = [k for k in runs[0] if isinstance(k, str) and k.startswith(f"{prefix}/")
            and all(k in r for r in runs)]
    out: dict[str, Any] = {}
    for k in keys:
        vals = [float(r[k]) for r in runs]
        out[k] = float(np.sum(vals)) if k.startswith(f"{prefix}/n_") else float(np.mean(vals))
        if "coverage_" in k:
            out[f"sd:{k}"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")
            out[f"seeds:{k}"] = vals
    return out


def worst_gap_noise(tables: list[dict[str, dict]], prefix: str = "fresh", level: int = 90, draws: int = 4000,
                    seed: int = 0) -> tuple[float, float]:
    """How far the worst cell's mean over the seeds can lie from that cell's own expectation by chance alone:
    (median, 95th percentile) of ``max over cells |bootstrap mean - mean|``.

    A cell is a family's coverage at ``level`` overall or in a bucket with >= 100 values (the cells the last
    line's ``worst_cov90_gap`` is the maximum over), of one size sweep table (``{family: pooled}``, as
    :func:`size_sweep` returns per size). The seeds are resampled with replacement, jointly over a table's families
    and buckets (they were trained on the same tables, so they move together) and independently between tables.
    With ten seeds a small bucket's mean carries about 1 point of noise, and the maximum over a dozen such cells
    about 1.5-2.5 points (docs/training.md): a worst gap under this 95th percentile plus the goal's 2 points is
    what an unbiased calibration looks like. ``(nan, nan)`` with fewer than two seeds; with a handful it
    under-states the spread (two seeds resample to one of them half the time), so read it from five seeds up."""
    import numpy as np

    rng = np.random.default_rng(seed)
    worst = np.zeros(draws)
    seen = False
    for table in tables:
        cells = []
        for m in table.values():
            keys = [f"{prefix}/coverage_{level}"] + [k for _, k, _ in bucket_cells(m, level, prefix)]
            cells += [np.asarray(m[f"seeds:{k}"], dtype=np.float64) for k in keys if f"seeds:{k}" in m]
        if not cells or len(cells[0]) < 2:
            continue
        v = np.stack(cells)  # (cells, seeds)
        idx = rng.integers(0, v.shape[1], size=(draws, v.shape[1]))
        boot = v[:, idx].mean(axis=2)  # (cells, draws)
        worst = np.maximum(worst, np.abs(boot - v.mean(axis=1, keepdims=True)).max(axis=0))
        seen = True
    if not seen:
        return float("nan"), float("nan")
    return float(np.median(worst)), float(np.quantile(worst, 0.95))


def size_sweep(sizes: list[int], families: list[str], seeds: list[int], process: str,
               fresh: int = FRESH_ROWS, fresh_split: str = "random") -> dict[int, dict[str, dict]]:
    """Train every family on tables of each size and seed (default settings, tracking off), score each run on
    other rows of its draw (:func:`ensure_fresh_split`, ``fresh_split``: ``random`` or ``future``); print one line
    per run and one per size and family over the seeds.

    Returns ``{rows: {family: metrics}}`` where the metrics are the seeds' mean (:func:`pool_repeats`) under
    ``fresh/`` plus the first seed's own ``test/`` metrics."""
    out: dict[int, dict[str, dict]] = {}
    scored = (f"{fresh:,} other rows of the draw" if fresh_split == "random" else
              f"the rows published in the latest {FUTURE_SHARE:.0%} of the draw's time span (draw: rows + {fresh:,})")
    print(f"\n## table sizes ({process} process, seeds {','.join(map(str, seeds))}; default settings; coverage of "
          f"the run's test split and of {scored})")
    head = (f"{'rows':>6} {'seed':>4} {'family':<9}{'scheme':<7}{'train_s':>8}{'mae':>8}{'vs_naive':>9}{'vs_ll':>7}"
            f"{'cov90':>7}  {'fresh:':<6}{'mae':>7}{'cov80':>7}{'cov90':>7}{'cov95':>7}{'w90':>7}"
            f"  worst fresh bucket cov90")
    print(head)
    for n in sizes:
        runs: dict[str, list[dict]] = {f: [] for f in families}
        for seed in seeds:
            if fresh:
                path, fresh_path = ensure_fresh_split(n, seed, process, fresh, fresh_split)
            else:
                path, fresh_path = ensure_table(n, seed, process)[0], None
            for fam, m in bench_table(path, families, {}, fresh_path).items():
                runs[fam].append(m)
                p = "fresh" if fresh else "test"
                b, cov, nb = worst_bucket(m, prefix=p)
                fit_s = m["time/train_s"] + m["time/calibrate_s"]
                print(f"{n:>6} {seed:>4} {fam:<9}{m['bench/scheme']:<7}{fit_s:>8.1f}"
                      f"{m['test/mae_mean']:>8.4f}{m['test/mae_vs_naive']:>9.3f}{m['test/mae_vs_loglinear']:>7.3f}"
                      f"{m['test/coverage_90']:>7.3f}  {'':<6}{m[f'{p}/mae_mean']:>7.4f}{m[f'{p}/coverage_80']:>7.3f}"
                      f"{m[f'{p}/coverage_90']:>7.3f}{m[f'{p}/coverage_95']:>7.3f}{m[f'{p}/width_90']:>7.3f}"
                      f"  {b} {cov:.3f} (n={nb})", flush=True)
        out[n] = {}
        for fam, rs in runs.items():
            pooled = {**rs[0], **pool_repeats(rs, "fresh" if fresh else "test")}
            out[n][fam] = pooled
        if fresh:
            _print_pooled(n, out[n], len(seeds))
            med, p95 = worst_gap_noise([out[n]])
            print(f"    the worst cell's distance from its own expectation by chance alone (seeds resampled, the "
                  f"cov90 cells above): median {med:.4f}, 95th percentile {p95:.4f}", flush=True)
    return out


def _print_pooled(n: int, by_fam: dict[str, dict], repeats: int) -> None:
    """Per family: the seeds' mean fresh coverage per level, and the coverage per age bucket at each level."""
    print(f"  {n} rows, mean over {repeats} seed(s) (sd across seeds in brackets), fresh draw:")
    for fam, m in by_fam.items():
        levels = " ".join(f"cov{k}={m[f'fresh/coverage_{k}']:.3f}({m[f'sd:fresh/coverage_{k}']:.3f})"
                          for k in (80, 90, 95))
        buckets = [k.removeprefix("fresh/coverage_90_bucket_") for k in m if k.startswith("fresh/coverage_90_bucket_")]
        cells = " ".join(f"{b}={m[f'fresh/coverage_90_bucket_{b}']:.3f}({m[f'sd:fresh/coverage_90_bucket_{b}']:.3f})"
                         for b in buckets)
        print(f"    {fam:<9} mae={m['fresh/mae_mean']:.4f} {levels} | 90% per bucket: {cells}", flush=True)
        for k in (80, 95):  # the goal is per bucket at every level; 90% above, the other two here
            other = " ".join(f"{b}={m[f'fresh/coverage_{k}_bucket_{b}']:.3f}" for b in buckets
                             if f"fresh/coverage_{k}_bucket_{b}" in m)
            print(f"    {'':<9} {k}% per bucket: {other}", flush=True)


def generator_noise_coverage(table: Path, truth: Path, split_overrides: list[str],
                             levels: tuple[float, ...] = (0.8, 0.9, 0.95)) -> dict[str, dict[float, float]]:
    """Per split of the demo table: the share of videos whose generator noise lies in its own central band.

    The demo generator draws each video's log-appeal noise from N(0, sigma_v) and writes both to
    ``generation_truth.csv`` (``noise``, ``noise_sigma``). An oracle that knew sigma_v covers that term at the
    nominal level on average; on one split of n videos the realised share scatters by sqrt(l (1 - l) / n). A
    calib split with heavier draws than the test split makes any calibrated interval over-cover the test split."""
    import numpy as np
    import pandas as pd
    from scipy.stats import norm

    from training.data import SPLITS, time_split

    fractions = dict.fromkeys(SPLITS, 0.0)
    for o in split_overrides:
        key, _, value = o.partition("=")
        if key.startswith("data.split.") and key.rsplit(".", 1)[1] in fractions:
            fractions[key.rsplit(".", 1)[1]] = float(value)
    df = pd.read_parquet(table, columns=["video_id", "published_at"])
    gt = pd.read_csv(truth, usecols=["video_id", "noise", "noise_sigma"], dtype={"video_id": str})
    z = df["video_id"].astype(str).map(dict(zip(gt["video_id"], (gt["noise"] / gt["noise_sigma"]).abs(), strict=True)))
    idx, _ = time_split(df, "published_at", fractions)
    return {s: {lv: float(np.mean(z.to_numpy()[idx[s]] <= norm.ppf((1 + lv) / 2))) for lv in levels} for s in SPLITS}


def compare_grouping(path: Path) -> None:
    """CatBoost point model: one MultiRMSEWithMissingValues over six targets vs one per metric."""
    from training.config import compose
    from training.train import run

    print("\n## CatBoost point model grouping (point model only, split-conformal intervals)")
    for grouping in ("all", "per_metric"):
        overrides = ["+exp=baseline", f"data.path={path}", "tracking.enabled=false", "trainer.progress_bar=false",
                     "model.interval_method=absolute", f"model.point_grouping={grouping}",
                     *BENCH_SETTINGS["baseline"]]
        m, _ = run(compose(overrides))
        print(f"  point_grouping={grouping:<11} train_s={m['time/train_s']:.1f} mae_mean={m['test/mae_mean']:.4f} "
              f"views={sum(m[f'test/mae_views_{h}d'] for h in (7, 14, 21)) / 3:.4f} "
              f"likes={sum(m[f'test/mae_likes_{h}d'] for h in (7, 14, 21)) / 3:.4f}")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    p = argparse.ArgumentParser(prog="python -m benchmarks.training")
    p.add_argument("--n", type=int, default=100_000,
                   help="rows of the generated table (>= 100,000 to report; 0 skips it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--demo", type=Path, default=ROOT / "data" / "dataset.parquet")
    p.add_argument("--demo-truth", type=Path, default=ROOT / "data" / "demo" / "generation_truth.csv",
                   help="the demo generator's per-video truth (noise draws), for the oracle coverage line")
    p.add_argument("--families", default="baseline,v1,v2")
    p.add_argument("--sizes", default="1000,2000,4000", help="rows of the demo-process tables of the size sweep")
    p.add_argument("--other-sizes", default="2000", help="rows of the other-process tables ('' to skip)")
    p.add_argument("--repeats", type=int, default=3,
                   help="seeds per sweep size (seed, seed+1, ...): each a new table, split and fresh draw")
    p.add_argument("--fresh-rows", type=int, default=FRESH_ROWS,
                   help="rows of the fresh draw each sweep run is scored on (0: the run's test split only)")
    p.add_argument("--fresh-split", choices=("random", "future"), default="random",
                   help="which rows of each draw are scored: a random share (exchangeable with the training rows) "
                        "or the latest quarter of its time span (published after every training row)")
    p.add_argument("--compare-grouping", action="store_true")
    args = p.parse_args(argv)
    families = args.families.split(",")
    from training.demo import DEMO_SETTINGS

    failures: list[str] = []
    if args.demo.exists():
        print(f"# demo table {args.demo}")
        demo_settings = {f: [s for s in DEMO_SETTINGS[f] if not s.startswith("+exp=")] for f in families}
        results_demo = bench_table(args.demo, families, demo_settings)
        failures += report(f"demo table ({args.demo.name})", results_demo, coverage_band=True)
        truth = args.demo_truth
        if truth.exists():
            from training.demo import DEMO_SPLIT

            share = generator_noise_coverage(args.demo, truth, DEMO_SPLIT)
            print("generator noise inside its own central band, per split (what an oracle that knew each video's "
                  "noise sigma covers; calib heavier than test = any calibrated interval over-covers test):")
            for lv in (0.8, 0.9, 0.95):
                print(f"  {round(lv * 100)}%: " + "  ".join(f"{s} {v[lv]:.3f}" for s, v in share.items()))
    else:
        print(f"# demo table {args.demo} not found: skipped (python -m demo builds it)")
    demo_results = results_demo if args.demo.exists() else None
    seeds = [args.seed + i for i in range(args.repeats)]
    sweep = size_sweep([int(x) for x in args.sizes.split(",") if x], families, seeds, "synthetic", args.fresh_rows,
                       args.fresh_split)
    sweep_other = size_sweep([int(x) for x in args.other_sizes.split(",") if x], families, seeds, "other",
                             args.fresh_rows, args.fresh_split) if args.other_sizes else {}
    results: dict[str, dict[str, float]] = {}
    if args.n:
        path, gen_s = ensure_table(args.n, args.seed)
        print(f"\n# generated table {path.relative_to(ROOT)} ({args.n:,} rows"
              + (f", generated in {gen_s:.1f}s)" if gen_s else ", reused)"))
        # the baseline with its default settings (the < 60 s goal); the networks with BENCH_SETTINGS
        results = bench_table(path, families, {f: v for f, v in BENCH_SETTINGS.items() if f != "baseline"})
        failures += report(f"generated table ({args.n:,} rows)", results)
        if args.compare_grouping:
            compare_grouping(path)
    print(last_line(results, sweep, sweep_other, demo_results, "fresh" if args.fresh_rows else "test"))
    return 1 if failures else 0


def last_line(results: dict[str, dict], sweep: dict[int, dict], sweep_other: dict[int, dict],
              demo_results: dict[str, dict] | None, sweep_prefix: str) -> str:
    """The machine-readable line: the large table's families, the worst 90% gap (sweep: the seeds' mean on the
    fresh draw, per bucket with >= 100 values; large table: its test split), v2/baseline MAE, baseline seconds."""
    tables = [*sweep.values(), *sweep_other.values()]
    gaps = [abs(m[f"{sweep_prefix}/coverage_90"] - 0.9) for t in tables for m in t.values()]
    gaps += [abs(worst_bucket(m, prefix=sweep_prefix)[1] - 0.9) for t in tables for m in t.values()
             if worst_bucket(m, prefix=sweep_prefix)[2]]
    gaps += [abs(m["test/coverage_90"] - 0.9) for m in results.values()]
    gaps += [abs(worst_bucket(m)[1] - 0.9) for m in results.values() if worst_bucket(m)[2]]
    if demo_results:
        ratio_src, key = demo_results, "test/mae_mean"
    else:
        ratio_src, key = (sweep[max(sweep)] if sweep else {}), f"{sweep_prefix}/mae_mean"
    ratio = ratio_src["v2"][key] / ratio_src["baseline"][key] if {"v2", "baseline"} <= set(ratio_src) \
        else float("nan")
    base_s = results["baseline"]["time/train_s"] + results["baseline"]["time/calibrate_s"] if "baseline" in results \
        else float("nan")
    return (" ".join(f"{fam}:mae_vs_naive={m['test/mae_vs_naive']:.4f},"
                     f"mae_vs_loglinear={m['test/mae_vs_loglinear']:.4f},cov90={m['test/coverage_90']:.4f}"
                     for fam, m in results.items())
            + f" worst_cov90_gap={max(gaps, default=float('nan')):.4f}"
            + f" worst_cov90_gap_noise95={worst_gap_noise(tables, sweep_prefix)[1]:.4f}"
            + f" v2_vs_baseline_mae={ratio:.4f}"
            + f" baseline_train_s_100k={base_s:.1f}").strip()


if __name__ == "__main__":
    sys.exit(main())
