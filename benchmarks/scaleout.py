"""Scale-out: the local executor vs the Ray executor on one node vs on two nodes, one core each. Numbers, not a test.

``python -m benchmarks.scaleout`` (``--n`` 48 videos from ``demo.synth``, 360p, 2-8 s) in a temporary folder:

1. local: this process and a Triton it starts are pinned to core 0 (``sched_setaffinity``, inherited by the server
   and its model stubs); ``planning.api.run_extraction`` plans (checklist: this hardware's committed one when fresh
   for the served models, else a quick one measured now, ``ensure_checklist``) and extracts into a fresh store;
2. Ray, one node: ``ray start`` under ``taskset -c 0`` (its raylet, its workers -- the lanes -- and the Triton its
   actor starts all on core 0), ``--num-cpus 1``, ``cpu_mem_mb`` declared; the Ray executor extracts into a fresh
   store. The node is the head (``--head worker``, default) and the driver (this process, which only dispatches)
   is pinned to its core too: all of Ray is on the one core the local executor gets. ``--head control`` makes the
   head a node of its own with no work, unpinned like the driver (Ray's layout for clusters);
3. Ray, two nodes: the same with a second node under ``taskset -c 1`` (head and driver on the first node's core).

``--rounds R`` repeats the three runs R times. Local and one-node Ray are always adjacent, their order alternating
(local -> 1 node -> 2 nodes, then 2 nodes -> 1 node -> local, ...), and the overhead is the median of the rounds' own
ratios: on a VM whose speed drifts, a ratio of two runs minutes apart measures the drift (one-node Ray moved by 28%
between single rounds, docs/scaleout.md), two adjacent runs share most of it.

``--paired``: local and Ray on one node run at the same time, each on its own core (swapped every round); the
overhead is the median of the rounds' ratios. Each side then has the other as a busy neighbour (the cores share
caches and memory bandwidth), which costs Ray's extra processes more than it costs the one local process.

Times are each run's extraction makespan (the runner's ``seconds``: servers already up, plans made; pilots
included, as in the local executor's). The cluster's predicted makespan (the slowest node's plan for the rest,
made after each node's pilot) is compared with the time the two-node run took for the rest. The stores are compared with
``testsupport.compare_stores.artifact_differences`` (arrays bit for bit, meta apart from run ids, times and
request sizes).
Last line: ``ray_overhead_pct=<p> two_node_vs_one_node=<x> makespan_err_pct=<p> artifacts_identical=<true|false>``,
then ``ray_overhead_ci95=<lo>,<hi>``: the distribution-free 95% interval of the rounds' median ratio
(:func:`median_interval`; ``none`` under 6 rounds). A round's ratio moves by tens of percent on a shared VM, so the
interval, not the median alone, says whether a goal is shown.
The machine may be shared with other work: the load average is printed with every run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = dict(resolution_mix={"640x360": 1.0}, duration_s=(2.0, 8.0), edge_cases=False)
NODE_MEM_MB = 4000


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free interval for the median of what ``values`` were drawn from (independent rounds): the
    order statistics ``x_(j)`` and ``x_(n+1-j)``, ``j`` the largest rank with ``1 - 2 P(B <= j - 1) >= confidence``,
    ``B ~ Binomial(n, 1/2)`` (the median lies below ``x_(j)`` only if fewer than ``j`` values fall under it). None
    when no rank reaches ``confidence`` (n < 6 at 95%). Fifteen rounds: the 4th and the 12th smallest."""
    n = len(values)
    below = 0.0  # P(B <= j - 1)
    best = None
    for j in range(1, n // 2 + 1):
        below += math.comb(n, j - 1) / 2**n
        if 1 - 2 * below < confidence:
            break
        best = j
    if best is None:
        return None
    x = sorted(values)
    return x[best - 1], x[n - best]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


@contextlib.contextmanager
def pinned(cores: set[int] | None):
    """This process (and what it starts meanwhile) on ``cores``; its affinity is restored after, also on failure.
    ``None`` leaves it as it is."""
    before = os.sched_getaffinity(0)
    if cores is not None:
        os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_local(corpus: Path, out: Path, state: Path, profile: str, checklist: Path | None, core: int = 0,
              go: Path | None = None) -> tuple[float, Path]:
    """Local executor and its Triton on ``core``. Returns (makespan, checklist used). With ``go``, the extraction
    starts only once that file exists (the paired mode's barrier: servers up and plans ready first)."""
    from extraction import triton_server
    from planning.api import ensure_checklist, run_extraction

    with pinned({core}):
        server = triton_server.start(REPO / "model_repository", state)
        try:
            cl = checklist or ensure_checklist(profile, server.grpc_url, log=_log)
            _wait_for(go)
            _log(f"local: {_load()}")
            s = run_extraction(corpus, out, profile, url=server.grpc_url, checklist=cl, progress=False)
        finally:
            triton_server.stop(state)
    if s.failed:
        raise SystemExit(f"local run failed videos: {s.failed}")
    return s.seconds, Path(cl)


def _wait_for(path: Path | None, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while path is not None and not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {path}")
        time.sleep(0.05)


def run_cluster(n_nodes: int, corpus: Path, out: Path, profile: str, checklist: Path, work: Path,
                head: str = "worker", cores: list[int] | None = None, on_start=None):
    """The Ray executor on ``n_nodes`` one-core nodes (node i on core i). Returns the run summary and the plan.

    ``head="worker"``: the first worker node is the head (its GCS on that node's core) and the driver is pinned to
    that core as well. ``"control"``: the head is a node of its own that takes no work (``--num-cpus 0``, no
    ``cpu_mem_mb``), unpinned like the driver -- the layout Ray recommends for a cluster, where the GCS and the
    head's agents do not share a worker's cores."""
    import ray

    from planning.distributed.ray_executor import run_on_ray
    from testsupport.raycluster import LocalRayCluster, NodeSpec

    cores = cores or list(range(os.cpu_count() or 1))
    nodes = [NodeSpec(cpus=1, resources={"cpu_mem_mb": NODE_MEM_MB}, cores=[cores[i % len(cores)]])
             for i in range(n_nodes)]
    if head == "control":
        nodes = [NodeSpec(cpus=0, cores=cores if len(cores) == 1 else None), *nodes]
    plans = []
    # each node sets its own affinity (taskset); with head="worker" the driver joins the head's core
    with pinned({cores[0]} if head == "worker" else None):
        cluster = LocalRayCluster(nodes).start()
        try:
            ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
            _log(f"ray, {n_nodes} node(s): {_load()}")
            s = run_on_ray(corpus, out, profile, checklist=checklist, progress=False, on_plan=plans.append,
                           state_root=work / f"triton-{n_nodes}n-{os.getpid()}", log=_log, on_start=on_start)
        finally:
            ray.shutdown()
            cluster.shutdown()
    if s.failed:
        raise SystemExit(f"ray run on {n_nodes} node(s) failed videos: {s.failed}")
    return s, plans[0]


def resolve_checklist(profile: str, state: Path) -> Path:
    """This hardware's checklist for the served models (``ensure_checklist``; a server started for it)."""
    from extraction import triton_server
    from planning.api import ensure_checklist

    server = triton_server.start(REPO / "model_repository", state)
    try:
        return Path(ensure_checklist(profile, server.grpc_url, log=_log))
    finally:
        triton_server.stop(state)


def run_part(args: argparse.Namespace) -> int:
    """One side of a paired round (``--part``), in a process of its own pinned to ``--core`` with everything it
    starts. The Ray side writes ``--go`` when its first video starts; the local side, its server up, waits for it,
    so the two extractions run over the same seconds of the machine."""
    os.sched_setaffinity(0, {args.core})
    if args.part == "local":
        seconds, _ = run_local(args.corpus, args.out, args.work / f"triton-local-{args.core}", args.profile,
                               args.checklist, args.core, go=args.go)
    else:
        def on_start(_node: str, _index: int) -> None:
            if not args.go.exists():
                args.go.write_text("go")

        summary, _ = run_cluster(1, args.corpus, args.out, args.profile, args.checklist, args.work, args.head,
                                 cores=[args.core], on_start=on_start)
        seconds = summary.seconds
    args.result.write_text(json.dumps({"seconds": seconds}))
    return 0


def paired_round(r: int, corpus: Path, stores: dict[str, Path], work: Path, args: argparse.Namespace,
                 checklist: Path) -> tuple[float, float]:
    """Local (one core) and Ray on one node (the other core: its head, node, Triton and the driver) at the same
    time; the cores swap every round. Returns (local seconds, Ray seconds)."""
    import subprocess

    cores = {"local": r % 2, "ray1": 1 - r % 2}
    go = work / f"go-{r}"
    procs, results = {}, {}
    for part in ("ray1", "local"):
        shutil.rmtree(stores[part], ignore_errors=True)
        results[part] = work / f"result-{part}-{r}.json"
        procs[part] = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.scaleout", "--part", part, "--core", str(cores[part]),
             "--corpus", str(corpus), "--out", str(stores[part]), "--work", str(work), "--go", str(go),
             "--result", str(results[part]), "--checklist", str(checklist), "--profile", args.profile,
             "--head", args.head], cwd=REPO)
    for part, p in procs.items():
        if p.wait() != 0:
            for q in procs.values():
                q.kill()
            raise SystemExit(f"paired round {r + 1}: the {part} side failed (exit {p.returncode})")
    return (json.loads(results["local"].read_text())["seconds"], json.loads(results["ray1"].read_text())["seconds"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scaleout", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=48, help="videos in the corpus")
    ap.add_argument("--profile", default="fast")
    ap.add_argument("--checklist", type=Path, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--head", choices=("control", "worker"), default="worker",
                    help="worker (default): the first worker node is the head, the driver pinned to its core; "
                         "control: the head is a node of its own with no work, unpinned (Ray's layout for clusters)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds of the three runs (local and one node adjacent, their order alternating); "
                         "medians are reported, the overhead as the median of the rounds' own ratios")
    ap.add_argument("--paired", action="store_true",
                    help="run local and Ray on one node at the same time, each on its own core (swapped every "
                         "round); the overhead is the median of the rounds' ratios")
    # one side of a paired round (internal: the parent starts these)
    ap.add_argument("--part", choices=("local", "ray1"), help=argparse.SUPPRESS)
    ap.add_argument("--core", type=int, default=0, help=argparse.SUPPRESS)
    for name in ("--corpus", "--out", "--work", "--go", "--result"):
        ap.add_argument(name, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.part:
        return run_part(args)
    from demo.synth import generate
    from testsupport.compare_stores import artifact_differences

    if (os.cpu_count() or 1) < 2:
        _log("warning: one core: the two nodes share it")
    work = args.keep or Path(tempfile.mkdtemp(prefix="scaleout-"))
    try:
        corpus = work / "corpus"
        t0 = time.perf_counter()
        generate(args.n, corpus, seed=args.seed, progress=False, **CORPUS)
        _log(f"corpus: {args.n} videos in {time.perf_counter() - t0:.0f}s")
        stores = {k: work / k for k in ("local", "ray1", "ray2")}
        seconds: dict[str, list[float]] = {k: [] for k in stores}
        errs: list[float] = []
        cl, one, two, plan2 = args.checklist, None, None, None
        if args.paired and cl is None:
            cl = resolve_checklist(args.profile, work / "triton-checklist")
        # Local and one node are adjacent, their order alternating (round 1 starts with local, which settles the
        # checklist), so each round's ratio compares two runs over nearly the same spell of the machine. Paired:
        # local and one node at once.
        for r in range(args.rounds):
            order = ["pair", "ray2"] if args.paired else [*stores][::1 if r % 2 == 0 else -1]
            _log(f"round {r + 1}/{args.rounds}: {' -> '.join(order)}")
            for k in order:
                if k in stores:  # a paired round clears its two stores itself
                    shutil.rmtree(stores[k], ignore_errors=True)
                if k == "pair":
                    local_s, ray1_s = paired_round(r, corpus / "videos", stores, work, args, cl)
                    seconds["local"].append(local_s)
                    seconds["ray1"].append(ray1_s)
                    _log(f"paired round {r + 1}: local {local_s:.2f}s, ray 1 node {ray1_s:.2f}s")
                elif k == "local":
                    local_s, cl = run_local(corpus / "videos", stores[k], work / "triton-local", args.profile, cl)
                    seconds[k].append(local_s)
                elif k == "ray1":
                    one, _ = run_cluster(1, corpus / "videos", stores[k], args.profile, cl, work, args.head)
                    seconds[k].append(one.seconds)
                else:
                    two, plan2 = run_cluster(2, corpus / "videos", stores[k], args.profile, cl, work, args.head)
                    seconds[k].append(two.seconds)
                    # the plan the rest runs with, after each node's pilot, against the time the rest took (as the
                    # local executor's benchmark compares its post-pilot plan)
                    rest_s = two.seconds - two.pilot_seconds
                    errs.append(abs(plan2.predicted_makespan_s - rest_s) / rest_s * 100)
        diffs = artifact_differences(stores["local"], stores["ray1"]) + artifact_differences(stores["local"],
                                                                                             stores["ray2"])
        for d in diffs[:20]:
            _log(f"differs: {d}")
        med = {k: statistics.median(v) for k, v in seconds.items()}
        # the rounds' own ratios: each pair met (nearly) the same seconds of the machine
        ratios = [(b - a) / a * 100 for a, b in zip(seconds["local"], seconds["ray1"], strict=True)]
        overhead = statistics.median(ratios)
        ci = median_interval(ratios)
        speedup = med["ray1"] / med["ray2"]
        err = statistics.median(errs)
        print(f"{'run':<16}{'median_s':>10}{'runs_s':>30}{'videos/node (last)':>22}"
              + ("  (paired: local and ray 1 node at the same time, one core each)" if args.paired else ""))
        print(f"{'local (1 core)':<16}{med['local']:>10.2f}{' '.join(f'{x:.2f}' for x in seconds['local']):>30}"
              f"{args.n:>22}")
        for name, k, s in (("ray 1 node", "ray1", one), ("ray 2 nodes", "ray2", two)):
            per = "/".join(str(v["extracted"]) for v in s.nodes.values()) if s is not None else str(args.n)
            print(f"{name:<16}{med[k]:>10.2f}{' '.join(f'{x:.2f}' for x in seconds[k]):>30}{per:>22}")
        print(f"last round: cluster plan predicted {plan2.predicted_makespan_s:.2f}s for 2 nodes after their pilots "
              f"({two.pilot_seconds:.2f}s), measured {two.seconds - two.pilot_seconds:.2f}s; lanes per node "
              f"{[p['lanes'] for p in two.plan['nodes'].values()]}; prediction errors "
              f"{' '.join(f'{e:.0f}%' for e in errs)}; checklist {cl}")
        print(f"one node over local, per round: {' '.join(f'{x:+.1f}%' for x in ratios)}")
        print(f"ray_overhead_pct={overhead:.1f} two_node_vs_one_node={speedup:.2f} makespan_err_pct={err:.1f} "
              f"artifacts_identical={'true' if not diffs else 'false'} "
              f"ray_overhead_ci95={'none' if ci is None else f'{ci[0]:.1f},{ci[1]:.1f}'}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
