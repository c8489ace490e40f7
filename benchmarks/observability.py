"""Observability store: ingest throughput from manifests and admin page latency at 100,000 runs, SQLite and
PostgreSQL.

    python -m benchmarks.observability [--runs 100000] [--ingest-runs 500] [--requests 60] [--pg-url URL]

Per backend: a fresh store; ``--ingest-runs`` extraction runs (4 videos, 9 components each, written as real
manifest files in a temp artifacts root) are ingested by :func:`observability.ingest.ingest_artifacts` (read +
parse + upsert; timed: runs/s), then a second ingest of the same files (idempotent: all unchanged; timed too).
The store is then filled to ``--runs`` runs (bulk insert of the same rows, spread over the last 30 days, so
the filler costs seconds, not the ingest path's minutes) and the admin app is served by uvicorn on loopback; the
runs page (default filter, and kind+status filtered), a run page and the components page (24 h) are fetched
``--requests`` times each over real HTTP. PostgreSQL: a throwaway cluster (``testsupport.postgres``) unless
``--pg-url`` is given. The machine may be shared: compare numbers measured in the same run.

Last line: ``ingest_runs_per_s=<n> page_p95_ms=<ms> pg_page_p95_ms=<ms>`` (SQLite ingest; runs page p95).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

COMPONENTS = [("metadata", None), ("frames", None), ("visual", "visual_embed_fast"), ("motion", "optical_flow"),
              ("faces", "face_detector"), ("audio", "audio_features"), ("text", "text_embed"),
              ("video_pacing", None), ("face_presence", None)]


def write_runs(root: Path, n_runs: int, videos: int = 4, seed: int = 0) -> None:
    """``n_runs`` runs of ``videos`` manifests each, shaped like the runner's (components, models, plan)."""
    from common.fsio import atomic_write_json

    rng = random.Random(seed)
    base = time.time() - 86400
    for r in range(n_runs):
        run_id = f"bench{r:06d}"
        t = base + r * 10
        for v in range(videos):
            comps = {}
            for name, _model in COMPONENTS:
                err = rng.random() < 0.01
                comps[name] = {"status": "error" if err else "ok", "cache_hit": rng.random() < 0.3,
                               "latency_s": round(rng.lognormvariate(-3, 1), 4), "batch_size": rng.choice([1, 4, 8]),
                               "error_code": "video_decode_failed" if err else None, "retry_count": 0}
            m = {"run_id": run_id, "platform_id": "yt", "video_id": f"v{v}", "profile": "fast", "status": "ok",
                 "started_at": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(t + v)),
                 "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(t + v + 2)),
                 "resolved_models": {n: {"model": m_, "version": "1"} for n, m_ in COMPONENTS if m_},
                 "frames_sampled": 32, "peak_rss_bytes": 600 * 2**20, "components": comps,
                 "plan": {"videos": videos, "predicted_makespan_s": 5.0,
                          "devices": {"cpu": {"budget_bytes": 2**31, "kind": "cpu"}}}}
            atomic_write_json(root / "yt" / f"v{v}" / run_id / "manifest.json", m)


def fill(store, template_run_id: int, total: int) -> None:
    """Copy the template run's rows until the store holds ``total`` runs, spread over the last 30 days."""
    from sqlalchemy import func, insert, select, text

    from observability.ingest import add_to_rollups
    from observability.queries import utcnow
    from observability.schema import Run, RunComponent

    with store.session() as s:
        run = s.get(Run, template_run_id)
        row = {c.name: getattr(run, c.name) for c in Run.__table__.columns if c.name != "id"}
        comps = [{c.name: getattr(rc, c.name) for c in RunComponent.__table__.columns if c.name not in ("id", "run_id")}
                 for rc in run.components]
        have = s.scalar(select(func.count(Run.id)))
        next_id = (s.scalar(select(func.max(Run.id))) or 0) + 1
    rng = random.Random(1)
    now = utcnow()
    todo = total - have
    chunk = 2000
    per_hour: dict = {}  # the filler's rollups: each hour's runs x the template's components
    for start in range(0, todo, chunk):
        runs, rcs = [], []
        for i in range(start, min(start + chunk, todo)):
            rid = next_id + i
            at = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
            runs.append({**row, "id": rid, "run_key": f"extraction:filler{rid}", "started_at": at, "finished_at": at,
                         "status": "partial" if rng.random() < 0.05 else "ok"})
            rcs += [{**c, "run_id": rid, "started_at": at} for c in comps]
            hour = at.replace(minute=0, second=0, microsecond=0)
            per_hour[hour] = per_hour.get(hour, 0) + 1
        with store.engine.begin() as conn:
            conn.execute(insert(Run), runs)
            conn.execute(insert(RunComponent), rcs)
        print(f"  filled {have + start + len(runs):,} / {total:,} runs", file=sys.stderr, flush=True)
    with store.session.begin() as s:  # the same rollup rows ingest keeps, one add per hour and component
        for hour, k in per_hour.items():
            add_to_rollups(s, [_Scaled(RunComponent(**{**c, "started_at": hour}), k) for c in comps])
    if store.dialect == "postgresql":  # explicit ids: move the sequences past them
        with store.engine.begin() as conn:
            for t in ("runs", "run_components"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))"))
            conn.execute(text("ANALYZE"))


class _Scaled:
    """A component row counted ``k`` times (``runs`` = k): what k identical runs in one hour add to a rollup."""



    def __init__(self, c, k: int) -> None:
        self.component, self.started_at, self.runs = c.component, c.started_at, k
        self.n, self.errors, self.cache_hits, self.retries = c.n * k, c.errors * k, c.cache_hits * k, c.retries * k
        self.oom_count, self.latency_sum_s = c.oom_count, c.latency_sum_s * k
        self.latency_buckets = [b * k for b in c.latency_buckets]
        self.error_codes = {e: v * k for e, v in (c.error_codes or {}).items()}


def page_latency(store, paths: list[str], requests: int) -> dict[str, list[float]]:
    import httpx
    import uvicorn

    from observability.config import ObservabilityConfig
    from observability.web import create_app
    from testsupport.postgres import free_port

    os.environ["TRENDFLOW_BENCH_TOKEN"] = "bench"
    cfg = ObservabilityConfig.model_validate({"admin": {"token_env": "TRENDFLOW_BENCH_TOKEN"}})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(cfg, store=store), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.05)
    out: dict[str, list[float]] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer bench"},
                          timeout=60) as http:
            for p in paths:
                http.get(p).raise_for_status()  # warm
                times = []
                for _ in range(requests):
                    t0 = time.perf_counter()
                    r = http.get(p)
                    times.append((time.perf_counter() - t0) * 1000)
                    r.raise_for_status()
                out[p] = times
    finally:
        server.should_exit = True
        th.join(timeout=10)
    return out


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1] if len(xs) >= 2 else xs[0]


def bench_backend(name: str, url: str, artifacts: Path, args) -> dict[str, float]:
    from observability.ingest import ingest_artifacts
    from observability.queries import RunFilter, list_runs
    from observability.store import open_store

    store = open_store(url)
    try:
        t0 = time.perf_counter()
        rep = ingest_artifacts(store, artifacts)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = ingest_artifacts(store, artifacts)
        second = time.perf_counter() - t0
        assert rep.new == args.ingest_runs and again.unchanged == args.ingest_runs, (rep, again)
        print(f"{name}: ingest {rep.new} runs ({rep.components} components) in {first:.2f}s = "
              f"{rep.new / first:.0f} runs/s; re-ingest (all unchanged) {second:.2f}s", flush=True)
        template = list_runs(store, RunFilter(limit=1))[0][0].id
        t0 = time.perf_counter()
        fill(store, template, args.runs)
        print(f"{name}: filled to {args.runs:,} runs in {time.perf_counter() - t0:.1f}s", flush=True)
        paths = ["/", "/?kind=extraction&status=partial&since=7d", f"/runs/{template}", "/components?since=24h"]
        lat = page_latency(store, paths, args.requests)
        for p, xs in lat.items():
            print(f"{name}: GET {p:<45} p50 {statistics.median(xs):7.1f} ms  p95 {p95(xs):7.1f} ms", flush=True)
        return {"ingest_runs_per_s": rep.new / first, "page_p95_ms": max(p95(lat["/"]), p95(lat[paths[1]])),
                "run_p95_ms": p95(lat[paths[2]]), "components_p95_ms": p95(lat[paths[3]])}
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed benchmark still stops its PostgreSQL
    p = argparse.ArgumentParser(prog="python -m benchmarks.observability", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=100_000)
    p.add_argument("--ingest-runs", type=int, default=500)
    p.add_argument("--requests", type=int, default=60)
    p.add_argument("--pg-url", default=None, help="an empty PostgreSQL database (default: a throwaway cluster)")
    args = p.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="obs-bench-") as tmp:
        artifacts = Path(tmp) / "artifacts"
        t0 = time.perf_counter()
        write_runs(artifacts, args.ingest_runs)
        print(f"wrote {args.ingest_runs} runs x 4 manifests in {time.perf_counter() - t0:.1f}s", flush=True)
        lite = bench_backend("sqlite", f"sqlite:///{Path(tmp) / 'obs.db'}", artifacts, args)
        cluster = None
        if args.pg_url:
            pg_url = args.pg_url
        else:
            from testsupport.postgres import start_cluster

            cluster = start_cluster()
            pg_url = cluster.create_database("obs_bench")
        try:
            pg = bench_backend("postgresql", pg_url, artifacts, args)
        finally:
            if cluster is not None:
                cluster.stop()
    print(json.dumps({"sqlite": lite, "postgresql": pg}, indent=None))
    print(f"ingest_runs_per_s={lite['ingest_runs_per_s']:.0f} page_p95_ms={lite['page_p95_ms']:.1f} "
          f"pg_page_p95_ms={pg['page_p95_ms']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
