"""Extraction throughput: naive vs fixed batch 8 vs the batching planner, the planner vs an exhaustive oracle,
and the planner's predictions vs what happened. Numbers, not a timed test.

``python -m benchmarks.extraction`` (about 8-10 minutes on 2 cores) does everything itself in a temporary folder:

1. starts its own Triton (``extraction.triton_server``, explicit model control) and renders two corpora with
   ``demo.synth``: the main one (``--n`` 16 videos, 360p/720p/1080p, 3-20 s, landscape and portrait) and a
   smaller one for the oracle (``--oracle-n`` 6 videos, same distribution, another seed);
2. uses this hardware's committed checklist (``conf/checklist/<hardware>/<profile>.yaml``) if the server's model
   signatures match it, else profiles one into the temporary folder first (and says so);
3. main corpus, ``--repeats`` rounds of: naive (batch 1, one video at a time), fixed batch 8 (one video at a
   time), planner (plan + execute, under ``--budget``), each on a fresh artifacts folder; medians are reported;
4. oracle: on the small corpus, every plan of a grid -- videos in parallel {1, 2, 4} x one batch size for every
   component {1, 4, 16, 64} (capped by each model's max_batch_size) x instances of the bottleneck model (the
   one with the most predicted server time) {1, 2} -- timed for real from the same server state as the
   planner (instance reloads included); the three best and the planner are timed again and each keeps its best;
5. a corpus of another make (``--other-n`` 24 videos: 480p/720p-heavy, mostly 60 fps, 20-60 s, other audio rates;
   ``OTHER_CORPUS``): ``--other-repeats`` planner runs, predicted vs measured. 24, not 12: after a 2-video pilot a
   12-video corpus leaves too few videos for both the pilot's parallel step and the mid-run re-plan
   (``planning.executor``), so it measured a planner that a real corpus never runs;
6. prints a table and, last, ``planner_vs_naive=<x> planner_efficiency=<x> oracle_gap_pct=<p> makespan_err_pct=<p>
   makespan_err_pct_other=<p> makespan_err_pct_replanned=<p> makespan_err_pct_other_replanned=<p>
   peak_over_budget=<n>``. ``makespan_err_pct`` compares the plan made after the pilot with the time the rest took;
   ``..._replanned`` compares the estimate at the mid-run re-plan (:mod:`planning.recalibrate`: the first part's
   real seconds plus the re-plan's prediction of the second part) with the same time.

The machine's bound: the CPU seconds that every process (this client, Triton and its stubs) spends on the naive run,
divided by the cores other work leaves free; ``planner_efficiency = cpu_bound_s / planner_makespan_s`` (1.0 = the
machine is the limit, batching and parallelism cannot win more).

Peak memory of a run is measured, like the checklist's, as peak RSS (VmHWM after ``clear_refs``) of the stubs of the
models the plan uses, plus the growth of the Triton main process and of this client process, and compared with
the budget the planner was given and with its prediction. The machine may be shared: the background load (cores
kept busy by other processes) is measured around every run and printed; throughput numbers move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MODEL_COMPONENTS = ("visual", "motion", "faces", "audio", "text")
CORPUS = dict(resolution_mix={"640x360": 0.4, "1280x720": 0.35, "1920x1080": 0.25}, duration_s=(3.0, 20.0),
              edge_cases=False)
# A corpus of another make than the demo's and than the checklist's calibration videos: 480p/720p-heavy, mostly 60 fps,
# 20-60 s long (the decoder goes through 2-4x more source frames per sampled frame, audio is 3-6x longer), other
# audio sample rates, every video with sound.
OTHER_CORPUS = dict(resolution_mix={"854x480": 0.45, "1280x720": 0.45, "1920x1080": 0.10}, duration_s=(20.0, 60.0),
                    fps_choices={60: 0.7, 30: 0.2, 50: 0.1}, sample_rate_mix={44100: 0.5, 48000: 0.4, 32000: 0.1},
                    audio_fraction=1.0, portrait_fraction=0.2, edge_cases=False)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class PeakMemory:
    """Peak RSS of a run: the plan's model stubs (whole), plus growth of the Triton main process and this client."""

    def __init__(self, server_pid: int, models: list[str]) -> None:
        from planning.probes import model_processes, reset_peaks, status_bytes

        self._kb, self._stubs = status_bytes, model_processes
        self.server_pid, self.models = server_pid, models
        self.me = os.getpid()
        reset_peaks([server_pid, self.me, *self._stub_pids()])
        self.before = {p: status_bytes(p, "VmRSS") for p in (server_pid, self.me)}

    def _stub_pids(self) -> list[int]:
        return [p for m in self.models for p in self._stubs(self.server_pid, m)]

    def peak(self) -> int:
        stubs = sum(self._kb(p, "VmHWM") for p in self._stub_pids())
        growth = sum(max(0, self._kb(p, "VmHWM") - b) for p, b in self.before.items())
        return stubs + growth


def _reset_instances(control: Any, models: list[str]) -> None:
    """Every model back to its repository config's instance count (1 here), reloading only those that differ."""
    from planning.residency import current_instances, placement_config

    for m, n in current_instances(control, {m: m for m in models}).items():
        if n != 1:
            control.load_model(m, config=placement_config(control, m, 1, "cpu"))


def _gpus_or_fail() -> list[Any]:
    """The GPUs to run on; prints a clear error (the caller exits 2) on a machine without one."""
    from planning.probes import gpu_memory, nvidia_driver_present

    gpus = gpu_memory()
    if not gpus:
        why = "no NVIDIA driver" if not nvidia_driver_present() else "the driver answers neither NVML nor CUDA torch"
        print(f"error: no_gpu: --device cuda needs an NVIDIA GPU ({why} on this machine); run it on a GPU host, "
              "or without --device for the CPU benchmark", file=sys.stderr)
    return gpus


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.extraction", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=16, help="videos in the main corpus (>= 16)")
    ap.add_argument("--oracle-n", type=int, default=6, help="videos in the oracle's corpus")
    ap.add_argument("--repeats", type=int, default=2, help="rounds of naive / fixed-8 / planner on the main corpus")
    ap.add_argument("--budget", default="1.5GiB", help="memory budget given to the planner")
    ap.add_argument("--profile", default=None,
                    help="analysis profile (default: fast; with --device cuda fast_torch, because the GPU repository "
                         "has GPU builds of the torch models only, extraction.gpu_repo.GPU_ENGINES)")
    ap.add_argument("--checklist", type=Path, default=None, help="checklist to use (default: this hardware's)")
    ap.add_argument("--no-oracle", action="store_true")
    ap.add_argument("--other-n", type=int, default=24, help="videos in the corpus of another make (0 = skip it)")
    ap.add_argument("--other-repeats", type=int, default=2, help="planner rounds on the other corpus (median)")
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--pilot", type=int, default=None,
                    help="pilot videos before the planner plans the rest (default: executor.pilot_size; 0 = off)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: serve the GPU models with KIND_GPU instances on every GPU (extraction.gpu_repo) and "
                         "profile a checklist on them first; fails at once on a machine without a GPU")
    args = ap.parse_args(argv)
    args.profile = args.profile or ("fast_torch" if args.device == "cuda" else "fast")
    gpus = _gpus_or_fail() if args.device == "cuda" else []
    if args.device == "cuda" and not gpus:
        return 2

    from demo import synth
    from extraction import triton_server
    from extraction.__main__ import parse_bytes
    from extraction.config import load_profile
    from extraction.provider import TritonModelProvider
    from extraction.runner import ExtractionRun, discover_videos, extract
    from planning.checklist import ChecklistMissing, ChecklistStale, load_checklist
    from planning.executor import plan_and_execute
    from planning.inputs import find_checklist, model_signatures, video_specs
    from planning.probes import background_busy_cores, cpu_seconds, process_tree
    from planning.profiler import run_profile
    from planning.residency import placement_config

    budget = parse_bytes(args.budget)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-extraction-"))
    work.mkdir(parents=True, exist_ok=True)
    state_dir = work / "triton"
    t_start = time.perf_counter()
    try:
        _log(f"work folder {work}; starting Triton ...")
        repo = triton_server.DEFAULT_MODEL_REPOSITORY
        if gpus:
            from extraction.gpu_repo import write_gpu_repository

            repo, devices = work / "model_repository_gpu", [g.index for g in gpus]
            _log(f"GPU repository for devices {devices}: KIND_GPU for {write_gpu_repository(repo, devices)}")
        state = triton_server.start(model_repository=repo, state_dir=state_dir)
        provider = TritonModelProvider(state.grpc_url)
        control = provider.client
        cfg = load_profile(args.profile)

        _log(f"rendering {args.n} + {args.oracle_n} videos ...")
        synth.generate(args.n, work / "corpus", seed=args.seed, progress=False, clean=True, **CORPUS)
        synth.generate(args.oracle_n, work / "small", seed=args.seed + 1, progress=False, clean=True, **CORPUS)
        main_vids = discover_videos(work / "corpus" / "videos")
        small_vids = discover_videos(work / "small" / "videos")
        other_vids = []
        if args.other_n > 0:
            _log(f"rendering {args.other_n} videos of another make (480p/720p, 60 fps, 20-60 s) ...")
            synth.generate(args.other_n, work / "other", seed=args.seed + 2, progress=False, clean=True,
                           **OTHER_CORPUS)
            other_vids = discover_videos(work / "other" / "videos")

        probe_run = ExtractionRun(cfg=cfg, out_root=work / "probe", provider=provider, progress=False)
        sigs = model_signatures(probe_run.resolve_models())
        models = sorted({h.name for h in probe_run.handles.values()})
        try:
            if gpus:  # the signatures do not say where a model runs: a CPU checklist would pass the check
                raise ChecklistMissing("--device cuda profiles its own checklist on the GPU")
            cl_path = find_checklist(args.profile, args.checklist)
            cl = load_checklist(cl_path)
            cl.check_signatures(sigs, source=str(cl_path))
            cl_note = f"committed checklist {cl_path.relative_to(REPO) if cl_path.is_relative_to(REPO) else cl_path}"
        except (ChecklistMissing, ChecklistStale) as exc:
            _log(f"{exc}\nprofiling a checklist for this run (quick) ...")
            cl_path, cl = run_profile(args.profile, state_dir=state_dir, out=work / "checklist.yaml", quick=True,
                                      log=_log)
            cl_note = "checklist profiled by this benchmark (quick), the committed one was missing or stale"
        _log(cl_note)

        def frames_of(vids: list) -> int:
            return sum(v.sampled_frames for v in video_specs(vids, cfg, cl))

        def run_fixed(vids: list, batch: int, parallel: int, tag: str) -> dict[str, Any]:
            out = work / "out" / tag
            shutil.rmtree(out, ignore_errors=True)
            run = ExtractionRun(cfg=cfg, out_root=out, provider=provider, progress=False,
                                batch_sizes=dict.fromkeys(MODEL_COMPONENTS, batch))
            bg = background_busy_cores(0.5, [state.pid])
            pids = [os.getpid(), *(p.pid for p in process_tree(state.pid))]  # client, Triton, its stubs
            c0, t0 = cpu_seconds(pids), time.perf_counter()
            s = extract(run, vids, videos_in_parallel=parallel)
            return {"seconds": time.perf_counter() - t0, "ok": s.ok, "background": bg,
                    "cpu_s": cpu_seconds(pids) - c0}

        def run_planner(vids: list, tag: str) -> dict[str, Any]:
            """Plan, pilot (16 videos: the first 2 one at a time), re-plan the rest, execute: all of it timed; the
            prediction compared is the final plan's, for the videos it planned (after the pilot)."""
            out = work / "out" / tag
            shutil.rmtree(out, ignore_errors=True)
            run = ExtractionRun(cfg=cfg, out_root=out, provider=provider, progress=False)
            mem = PeakMemory(state.pid, models)
            marks: dict[str, Any] = {}

            def on_plan(p: Any) -> None:
                marks["plan"], marks["planned"] = p, time.perf_counter()

            def on_replan(p: Any) -> None:
                marks["replan"], marks["replanned"] = p, time.perf_counter()

            t0 = time.perf_counter()
            s = plan_and_execute(run, vids, checklist=cl, memory_budget=budget, on_plan=on_plan,
                                 on_replan=on_replan, pilot_videos=args.pilot)
            done = time.perf_counter()
            plan, planned = marks["plan"], marks["planned"]
            # the estimate at the mid-run re-plan: what the first part took, plus the re-plan's prediction
            replan = marks.get("replan")
            eta = (marks["replanned"] - planned + replan.predicted_makespan_s) if replan else plan.predicted_makespan_s
            m = json.loads(Path(s.manifests[0]).read_text()) if s.manifests else {}
            used_batches = {c: e["batch_size"] for c, e in m.get("components", {}).items() if c in MODEL_COMPONENTS}
            return {"seconds": done - t0, "plan_s": planned - t0, "exec_s": done - planned, "ok": s.ok,
                    "plan": plan, "replan": replan, "eta_replanned_s": eta,
                    "peak": mem.peak(), "background": plan.devices["cpu"]["background"],
                    "manifest_batches": used_batches}

        # ---- main corpus ------------------------------------------------------------------------------------
        n_frames = frames_of(main_vids)
        res: dict[str, list[dict[str, Any]]] = {"naive": [], "fixed8": [], "planner": []}
        for r in range(args.repeats):
            _reset_instances(control, models)
            _log(f"round {r + 1}/{args.repeats}: naive ...")
            res["naive"].append(run_fixed(main_vids, 1, 1, f"naive{r}"))
            _log(f"round {r + 1}/{args.repeats}: fixed batch 8 ...")
            res["fixed8"].append(run_fixed(main_vids, 8, 1, f"fixed{r}"))
            _reset_instances(control, models)
            _log(f"round {r + 1}/{args.repeats}: planner ...")
            res["planner"].append(run_planner(main_vids, f"planner{r}"))
            _log(res["planner"][-1]["plan"].describe())
            _log("  " + ", ".join(f"{k}: {statistics.median(x['seconds'] for x in v):.1f}s" for k, v in res.items()))

        med = {k: statistics.median(x["seconds"] for x in v) for k, v in res.items()}
        best_plan = res["planner"][-1]["plan"]
        errs = [abs(x["exec_s"] - x["plan"].predicted_makespan_s) / x["exec_s"] * 100 for x in res["planner"]]
        errs_re = [abs(x["exec_s"] - x["eta_replanned_s"]) / x["exec_s"] * 100 for x in res["planner"]]
        peaks = [(x["peak"], x["plan"].devices["cpu"]["predicted_peak_bytes"]) for x in res["planner"]]
        # the machine's bound: the CPU seconds all processes spent on the naive run, spread over the cores that
        # other work left free (on an idle machine: all of them); no plan finishes the same work sooner
        cores = os.cpu_count() or 1
        bg_all = statistics.median(x["background"] for v in res.values() for x in v)
        usable = max(1.0, cores - bg_all)
        cpu_naive = statistics.median(x["cpu_s"] for x in res["naive"])
        cpu_bound = cpu_naive / usable
        efficiency = cpu_bound / med["planner"]

        # ---- a corpus of another make -----------------------------------------------------------------------
        other: list[dict[str, Any]] = []
        for r in range(args.other_repeats if other_vids else 0):
            _reset_instances(control, models)
            _log(f"other corpus round {r + 1}/{args.other_repeats}: planner ...")
            other.append(run_planner(other_vids, f"other{r}"))
            peaks.append((other[-1]["peak"], other[-1]["plan"].devices["cpu"]["predicted_peak_bytes"]))
            _log(other[-1]["plan"].describe())
        errs_other = [abs(x["exec_s"] - x["plan"].predicted_makespan_s) / x["exec_s"] * 100 for x in other]
        errs_other_re = [abs(x["exec_s"] - x["eta_replanned_s"]) / x["exec_s"] * 100 for x in other]

        # ---- oracle -----------------------------------------------------------------------------------------
        oracle: dict[tuple, float] = {}
        planner_small: list[float] = []
        gap = float("nan")
        if not args.no_oracle:
            small_frames = frames_of(small_vids)
            bottleneck = max(MODEL_COMPONENTS, key=lambda c: best_plan.components[c].predicted_server_s)
            bmodel = probe_run.handles[bottleneck].name
            grid = [(p, b, i) for i in (1, 2) for p in (1, 2, 4) for b in (1, 4, 16, 64)]
            _log(f"oracle: {len(grid)} plans on {len(small_vids)} videos ({small_frames} frames), "
                 f"bottleneck {bottleneck} ({bmodel}) ...")

            def configure(inst: int) -> float:
                """Server back to one instance everywhere (untimed), then the plan's instances: seconds taken."""
                _reset_instances(control, models)
                t0 = time.perf_counter()
                if inst != 1:
                    control.load_model(bmodel, config=placement_config(control, bmodel, inst, "cpu"))
                return time.perf_counter() - t0

            for k, (p, b, inst) in enumerate(grid):
                reload_s = configure(inst)
                oracle[(p, b, inst)] = reload_s + run_fixed(small_vids, b, p, f"oracle{k}")["seconds"]
            _reset_instances(control, models)
            x = run_planner(small_vids, "planner_small0")
            planner_small.append(x["seconds"])
            peaks.append((x["peak"], x["plan"].devices["cpu"]["predicted_peak_bytes"]))
            _log(x["plan"].describe())
            for k, key in enumerate(sorted(oracle, key=oracle.get)[:3]):  # best-of-two for the front runners
                p, b, inst = key
                reload_s = configure(inst)
                oracle[key] = min(oracle[key], reload_s + run_fixed(small_vids, b, p, f"oracle_again{k}")["seconds"])
            _reset_instances(control, models)
            x = run_planner(small_vids, "planner_small1")
            planner_small.append(x["seconds"])
            peaks.append((x["peak"], x["plan"].devices["cpu"]["predicted_peak_bytes"]))
            best_key = min(oracle, key=oracle.get)
            gap = (min(planner_small) - oracle[best_key]) / oracle[best_key] * 100

        # ---- report -----------------------------------------------------------------------------------------
        n_ok = statistics.median(x["ok"] for x in res["naive"])
        print(f"\nExtraction benchmark ({args.profile} profile) on {cl.hardware.id} ({cl.hardware.cpu_cores} cores), "
              f"{cl_note}; total {time.perf_counter() - t_start:.0f}s")
        print(f"main corpus: {len(main_vids)} videos, {n_frames} sampled frames; medians of {args.repeats} rounds; "
              f"background load (cores busy with other work) "
              f"{statistics.median(x['background'] for v in res.values() for x in v):.2f} median, "
              f"{max(x['background'] for v in res.values() for x in v):.2f} max")
        print(f"{'strategy':<12}{'seconds':>9}{'frames/s':>10}{'videos/min':>12}{'x naive':>9}")
        for k, s in med.items():
            print(f"{k:<12}{s:>9.2f}{n_frames / s:>10.2f}{60 * n_ok / s:>12.1f}{med['naive'] / s:>9.2f}")
        print("planner's plan:\n" + best_plan.describe())
        for i, x in enumerate(res["planner"]):
            pilot_s = x["plan"].calibration.get("pilot_seconds", 0.0)
            print(f"planner round {i + 1}: plan {x['plan_s'] - pilot_s:.2f}s + pilot {pilot_s:.2f}s + execute the "
                  f"remaining {x['plan'].videos} videos {x['exec_s']:.2f}s "
                  f"(predicted {x['plan'].predicted_makespan_s:.2f}s, error {errs[i]:.0f}%{_replan_note(x)}), peak "
                  f"{x['peak'] / 2**20:.0f} MiB (predicted "
                  f"{x['plan'].devices['cpu']['predicted_peak_bytes'] / 2**20:.0f}"
                  f" MiB, budget {budget / 2**20:.0f} MiB), batch sizes in the manifest {x['manifest_batches']}")
        if oracle:
            print(f"oracle grid on {len(small_vids)} videos ({len(oracle)} plans; p=videos in parallel, b=batch, "
                  f"i={bottleneck} instances), best five:")
            for key in sorted(oracle, key=oracle.get)[:5]:
                print(f"  p={key[0]} b={key[1]:<3} i={key[2]}: {oracle[key]:.2f}s")
            print(f"  planner (best of {len(planner_small)}): {min(planner_small):.2f}s -> gap {gap:+.1f}% "
                  f"(worst grid plan {max(oracle.values()):.2f}s)")
        print(f"machine bound: naive spent {cpu_naive:.1f} CPU s (client + Triton + stubs) over {usable:.2f} usable "
              f"cores ({cores} less {bg_all:.2f} busy with other work) = {cpu_bound:.2f} s; planner "
              f"{med['planner']:.2f} s -> efficiency {efficiency:.2f}")
        for i, x in enumerate(other):
            pilot_s = x["plan"].calibration.get("pilot_seconds", 0.0)
            print(f"other corpus ({len(other_vids)} videos, 480p/720p, 60 fps, 20-60 s) round {i + 1}: plan "
                  f"{x['plan_s'] - pilot_s:.2f}s + pilot {pilot_s:.2f}s + execute {x['plan'].videos} videos "
                  f"{x['exec_s']:.2f}s (predicted {x['plan'].predicted_makespan_s:.2f}s, error {errs_other[i]:.0f}%"
                  f"{_replan_note(x)}), "
                  f"peak {x['peak'] / 2**20:.0f} MiB (predicted "
                  f"{x['plan'].devices['cpu']['predicted_peak_bytes'] / 2**20:.0f} MiB)")
        over = sum(1 for peak, _ in peaks if peak > budget)
        vs = med["naive"] / med["planner"]
        err_other = statistics.median(errs_other) if errs_other else float("nan")
        err_other_re = statistics.median(errs_other_re) if errs_other_re else float("nan")
        print(f"planner_vs_naive={vs:.2f} planner_efficiency={efficiency:.2f} oracle_gap_pct={gap:.1f} "
              f"makespan_err_pct={statistics.median(errs):.1f} makespan_err_pct_other={err_other:.1f} "
              f"makespan_err_pct_replanned={statistics.median(errs_re):.1f} "
              f"makespan_err_pct_other_replanned={err_other_re:.1f} peak_over_budget={over}")
        return 0
    finally:
        triton_server.stop(state_dir)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _replan_note(x: dict[str, Any]) -> str:
    """``; re-planned after k videos: estimate Ts, error E%`` when the run re-planned mid-way."""
    r = x.get("replan")
    if r is None:
        return ""
    rec = r.calibration["recalibrated"]
    err = abs(x["exec_s"] - x["eta_replanned_s"]) / x["exec_s"] * 100
    return (f"; re-planned after {rec['first_part_videos']} videos (x{rec['makespan_ratio']:.2f}): estimate "
            f"{x['eta_replanned_s']:.2f}s, error {err:.0f}%")


if __name__ == "__main__":
    sys.exit(main())
