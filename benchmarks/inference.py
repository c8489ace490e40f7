"""Serving benchmark: our ``/predict`` against ``mlflow models serve`` on the same registered model version.

    python -m benchmarks.inference [--tracking-uri URI] [--duration 8] [--types v2,baseline] [--video PATH ...]

Models: the registered demo models of the store (the ``stable`` alias, else the newest version) — by default the
embedded store that ``make demo`` fills. If a type is missing there, all types are quick-trained into a temporary
store with the training package's own ``training.train.run`` on a synthetic table (``--quick-rows``).

For each type and each concurrency (1 and 16 clients) the same feature row is POSTed for ``--duration`` seconds
after a warm-up, first to our service (``python -m inference serve``, one uvicorn worker, models pinned by
number, no shadow) and then to ``mlflow models serve -m models:/<name>/<version> --env-manager local --workers 1``
(``dataframe_split`` JSON on ``/invocations``). One server runs at a time; the load comes from a separate,
minimal asyncio HTTP/1.1 keep-alive client (one connection per client) so the client's own cost stays small.
Latency is per request (send -> full body); throughput = completed requests / measured seconds; any non-200
counts as an error.

Then, when Triton is running (or ``--video`` is given, which starts it), the end-to-end time of video-path
predictions split into extraction, features and model (from each response's ``timings_ms``; a fresh artifacts
folder so the extractor computes, not reuses).

The last line is ``throughput_vs_mlflow_serve=<x> p99_ms=<n> mlflow_p99_ms=<n>`` for v2 at 16 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
TYPES = ("baseline", "v1", "v2")


# ---- load generator -------------------------------------------------------------------------------------

async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    body = b""
    while True:  # chunked
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, body
        body += chunk[:-2]


async def _client(port: int, request: bytes, t_start: float, t_stop: float, lat: list[float],
                  errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= t_stop:
                break
            writer.write(request)
            await writer.drain()
            status, _ = await _read_response(reader)
            t1 = time.perf_counter()
            if t0 >= t_start:  # after warm-up
                lat.append(t1 - t0)
                if status != 200:
                    errors.append(status)
    finally:
        writer.close()


def run_load(port: int, path: str, body: dict[str, Any], clients: int, duration: float,
             warmup: float) -> dict[str, float]:
    payload = json.dumps(body).encode()
    request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(payload)}\r\nConnection: keep-alive\r\n\r\n").encode() + payload
    lat: list[float] = []
    errors: list[int] = []

    async def main() -> float:
        t_start = time.perf_counter() + warmup
        t_stop = t_start + duration
        await asyncio.gather(*(_client(port, request, t_start, t_stop, lat, errors) for _ in range(clients)))
        return t_stop - t_start

    measured = asyncio.run(main())
    a = np.asarray(lat) * 1000
    return {"clients": clients, "requests": len(lat), "errors": len(errors), "rps": len(lat) / measured,
            "p50_ms": float(np.percentile(a, 50)) if len(a) else math.nan,
            "p99_ms": float(np.percentile(a, 99)) if len(a) else math.nan}


# ---- models ---------------------------------------------------------------------------------------------

def quick_train(folder: Path, rows: int, seed: int = 0) -> str:
    """Train all three families with ``training.train.run`` (small settings) into a store under ``folder``."""
    import features
    from demo.synthetic_table import generate_table, write_table
    from training.config import compose
    from training.train import run

    spec = features.load_spec()
    table = folder / "table.parquet"
    write_table(generate_table(rows, spec, seed=seed), table, spec, seed)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    for exp in ("baseline", "v1", "v2"):
        extra = ["model.iterations=200", "model.quantile_iterations=100"] if exp == "baseline" \
            else ["trainer.max_epochs=5"]
        run(compose([f"+exp={exp}", f"data.path={table}", f"tracking.uri={uri}",
                     f"tracking.artifact_root={folder / 'artifacts'}", "tracking.plots=false",
                     "trainer.progress_bar=false", *extra]))
    return uri


def pick_versions(uri: str) -> dict[str, dict[str, Any]]:
    """type -> {name, version, alias} (stable alias if set, else newest)."""
    from registry import ops
    from registry.config import load_config
    from registry.store import connect

    cfg = load_config(tracking_uri=uri)
    client = connect(cfg)
    out = {}
    for t, rows in ops.list_versions(client, cfg, metrics=[]).items():
        if not rows:
            continue
        stable = ops.alias_version(client, cfg.name_of(t), cfg.aliases.stable)
        version = str(stable.version) if stable else rows[0]["version"]
        out[t] = {"name": cfg.name_of(t), "version": version, "alias": "stable" if stable else None}
    return out


def example_row(uri: str, name: str, version: str) -> dict[str, float]:
    """One complete row of the model's logged input example (NaN -> 0 so both servers parse the same JSON)."""
    import mlflow.pyfunc

    os.environ["MLFLOW_TRACKING_URI"] = uri
    ex = mlflow.pyfunc.load_model(f"models:/{name}/{version}").input_example
    full = ex.dropna()
    row = (full if len(full) else ex.fillna(0.0)).iloc[0]
    return {k: float(v) for k, v in row.items()}


# ---- servers --------------------------------------------------------------------------------------------

def _wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 180) -> float:
    import urllib.request

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not up after {timeout_s}s")


def start_ours(uri: str, versions: dict[str, dict[str, Any]], folder: Path, modes: list[str],
               log: Path, roots: list[str] | None = None) -> tuple[subprocess.Popen, int, float]:
    from inference.server import free_port

    raw = yaml.safe_load((ROOT / "conf" / "inference.yaml").read_text())
    chain = [t for t in ("v2", "v1", "baseline") if t in versions]
    raw.update(tracking_uri=uri, models={t: {"type": t, "version": int(v["version"])} for t, v in versions.items()},
               primary=chain[0], fallback=chain[1:], shadow=None, request_modes=modes,
               extraction={"profile": "fast", "artifacts_dir": str(folder / "serving-artifacts")},
               allowed_roots=[*raw["allowed_roots"], str(folder), *(roots or [])])  # the benchmark's videos
    cfg_path = folder / "inference.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "inference", "serve", "--config", str(cfg_path), "--port",
                             str(port)], cwd=ROOT, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    return proc, port, _wait_http(f"http://127.0.0.1:{port}/health/live", proc)


def start_mlflow(uri: str, name: str, version: str, log: Path) -> tuple[subprocess.Popen, int, float]:
    from inference.server import free_port

    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen([str(mlflow_bin), "models", "serve", "-m", f"models:/{name}/{version}",
                             "--env-manager", "local", "--workers", "1", "--host", "127.0.0.1", "-p", str(port)],
                            cwd=ROOT, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true",
                                 # mlflow runs `bash -c "exec uvicorn ..."`: the venv's bin must be on PATH
                                 "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    return proc, port, _wait_http(f"http://127.0.0.1:{port}/ping", proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- video end to end -----------------------------------------------------------------------------------

def video_e2e(port: int, videos: list[Path]) -> list[dict[str, Any]]:
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)

    out = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
        for v in videos:
            meta = json.loads(v.with_suffix(".json").read_text())
            t0 = time.perf_counter()
            r = http.post("/predict", json={"video_path": str(v.resolve()), "metadata": meta})
            wall = (time.perf_counter() - t0) * 1000
            body = r.json()
            t = body.get("timings_ms", {})
            out.append({"video": v.name, "status": r.status_code, "wall_ms": wall, **{k: t.get(k) for k in
                        ("extraction", "features", "model", "total")}, "error": body.get("error_code")})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.inference", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracking-uri", default=None, help="store with the registered models (default: embedded)")
    p.add_argument("--types", default="v2,baseline")
    p.add_argument("--clients", default="1,16")
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--quick-rows", type=int, default=3000)
    p.add_argument("--video", type=Path, nargs="*", default=None, help="videos (+ sidecar .json) for the e2e part")
    p.add_argument("--no-video", action="store_true")
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    from registry.config import load_config

    uri = args.tracking_uri or load_config().resolved_tracking_uri()
    types = [t for t in args.types.split(",") if t]
    versions = pick_versions(uri) if (not uri.startswith("sqlite:///")
                                      or Path(uri.removeprefix("sqlite:///")).exists()) else {}
    if not all(t in versions for t in types):
        print(f"store {uri} lacks {[t for t in types if t not in versions]}: quick-training all families into "
              f"{work} with training.train.run ({args.quick_rows} synthetic rows)", flush=True)
        t0 = time.perf_counter()
        uri = quick_train(work, args.quick_rows)
        print(f"trained in {time.perf_counter() - t0:.0f}s", flush=True)
        versions = pick_versions(uri)
    print("models:", json.dumps(versions), flush=True)
    clients = [int(c) for c in args.clients.split(",")]
    results: dict[str, Any] = {"models": versions, "load": [], "video": []}
    ours_log, mlflow_log = work / "ours.log", work / "mlflow.log"
    print(f"\n{'type':<9}{'server':<14}{'clients':>7}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}{'n':>7}")
    for t in types:
        name, version = versions[t]["name"], versions[t]["version"]
        row = example_row(uri, name, version)
        proc, port, up = start_ours(uri, {t: versions[t]}, work, ["features"], ours_log)
        try:
            for c in clients:
                r = run_load(port, "/predict", {"features": row}, c, args.duration, args.warmup)
                results["load"].append({"type": t, "server": "trendflow", "startup_s": up, **r})
                print(f"{t:<9}{'trendflow':<14}{c:>7}{r['rps']:>10.1f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                      f"{r['errors']:>7}{r['requests']:>7}", flush=True)
        finally:
            stop(proc)
        proc, port, up = start_mlflow(uri, name, version, mlflow_log)
        try:
            body = {"dataframe_split": {"columns": list(row), "data": [list(row.values())]}}
            for c in clients:
                r = run_load(port, "/invocations", body, c, args.duration, args.warmup)
                results["load"].append({"type": t, "server": "mlflow-serve", "startup_s": up, **r})
                print(f"{t:<9}{'mlflow serve':<14}{c:>7}{r['rps']:>10.1f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                      f"{r['errors']:>7}{r['requests']:>7}", flush=True)
        finally:
            stop(proc)

    if not args.no_video:
        from extraction import triton_server

        videos = args.video
        if videos is None:
            demo = sorted((ROOT / "data" / "demo" / "videos").glob("*.mp4"))[3:6]
            if not demo:
                from demo import synth

                synth.generate(n=6, out=work / "corpus", seed=0, progress=False)
                demo = sorted((work / "corpus" / "videos").glob("*.mp4"))[3:6]
            videos = demo
        if triton_server.status()["ready"] or args.video:
            triton_server.start()
            proc, port, _ = start_ours(uri, versions, work, ["features", "video"], ours_log,
                                       roots=sorted({str(Path(v).resolve().parent) for v in videos}))
            try:
                results["video"] = video_e2e(port, videos)
            finally:
                stop(proc)
            print(f"\nvideo path -> prediction (fresh artifacts, {len(videos)} videos)")
            print(f"{'video':<28}{'status':>7}{'extract ms':>12}{'features ms':>13}{'model ms':>10}{'total ms':>10}")
            for v in results["video"]:
                def f(x):
                    return f"{x:.1f}" if isinstance(x, int | float) else "-"
                print(f"{v['video'][:27]:<28}{v['status']:>7}{f(v['extraction']):>12}{f(v['features']):>13}"
                      f"{f(v['model']):>10}{f(v['total']):>10}")
        else:
            print("\nvideo e2e skipped: Triton is not running (`python -m extraction triton start`, or pass --video)")

    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    ours = next((r for r in results["load"] if r["type"] == "v2" and r["server"] == "trendflow"
                 and r["clients"] == 16), None)
    theirs = next((r for r in results["load"] if r["type"] == "v2" and r["server"] == "mlflow-serve"
                   and r["clients"] == 16), None)
    if ours and theirs:
        print(f"throughput_vs_mlflow_serve={ours['rps'] / theirs['rps']:.2f} p99_ms={ours['p99_ms']:.1f} "
              f"mlflow_p99_ms={theirs['p99_ms']:.1f}")
    else:
        print("throughput_vs_mlflow_serve=nan p99_ms=nan mlflow_p99_ms=nan")
    return 0


if __name__ == "__main__":
    sys.exit(main())
