"""Follow a :class:`~planning.specs.BatchPlan`: plan a run before any work, then execute it.

* :func:`planning.inputs.plan_run` gathers what the planner needs from the real world and calls the pure planner.
* :func:`execute` runs the plan with the runner: ``videos_in_parallel`` videos at once sharing the Triton
  client, each component's Triton requests of the planned batch size (every NPZ ``meta.batch_size`` is the size
  really sent), the plan recorded in every manifest. When the plan has several passes (tier-1 models rotate
  because memory or ``max_loaded_models_per_device`` forces it), :class:`~planning.residency.ModelResidency` loads
  and unloads models with Triton's explicit model control between passes -- tier-0 models stay loaded, tier-1
  models are evicted least-recently-used -- and the per-pass manifests are merged into one manifest per video.
* :func:`plan_and_execute` plans the whole corpus first (fail fast), then, for a corpus of at least
  :data:`~planning.pilot.PILOT_MIN_VIDEOS`, runs a *pilot* (:mod:`planning.pilot`): the first
  :func:`~planning.pilot.pilot_size` videos one at a time at the plan's batch sizes, for real; the rest is planned
  with the factors it measured. When the rest's plan runs several videos in parallel, the pilot's *parallel step*
  then runs that many videos of about the median cost at once with a plan of their own: one video at a time sees
  no contention between lanes (server threads, backend stubs, the client's GIL), which the stage simulation
  under-counts by 20-40% on a 2-core VM (`docs/planner.md`); the step's measured / predicted makespan scales every
  factor before the rest is planned (:func:`~planning.recalibrate.parallel_probe`). From
  :data:`~planning.recalibrate.RECALIBRATE_MIN_VIDEOS` videos after the pilot, the rest runs in two parts and the
  second is re-planned with the first part's measured / predicted makespan (:mod:`planning.recalibrate`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common.errors import TrendflowError
from common.graph import closure
from planning.checklist import Checklist, load_checklist
from planning.inputs import cached_per_video, component_specs, find_checklist, plan_inputs, plan_run
from planning.pilot import PILOT_MIN_VIDEOS, merge_summaries, pick_pilot, pick_pilot_pps, pilot_size, run_pilot
from planning.planner import predicted_component_seconds
from planning.recalibrate import (
    RECALIBRATE_AT,
    RECALIBRATE_MIN_VIDEOS,
    head_size,
    makespan_ratio,
    parallel_probe,
    scaled_factors,
)
from planning.residency import ModelResidency, apply_instances, loaded_models, residency_for
from planning.specs import (
    DEFAULT_MAX_LOADED_MODELS_PER_DEVICE,
    DEFAULT_MAX_VIDEOS_IN_PARALLEL,
    DEFAULT_SAFETY_MARGIN,
    BatchPlan,
    Device,
)


def _merge_passes(per_pass: list[dict[str, dict[str, Any]]], plan_: BatchPlan, all_components: Sequence[Any]
                  ) -> list[dict[str, Any]]:
    """One manifest per video from the per-pass manifests (pass -> manifest path -> manifest): each component's
    entry from the pass that computed it, the earliest start, a decode failure of any pass; written back."""
    from common.fsio import atomic_write_json

    where = {c: i for i, comps in enumerate(plan_.passes) for c in comps}
    manifests = []
    for key, final in (per_pass[-1] if per_pass else {}).items():
        merged = dict(final)
        merged["components"] = {}
        for c in all_components:
            src = per_pass[where.get(c.name, len(per_pass) - 1)].get(key, final)
            if c.name in src.get("components", {}):
                merged["components"][c.name] = src["components"][c.name]
        merged["started_at"] = min(per_pass[i][key]["started_at"] for i in range(len(per_pass)) if key in per_pass[i])
        failed_decode = next((p[key] for p in per_pass if key in p and p[key].get("error_code")), None)
        merged.pop("status", None)
        merged.pop("error_code", None)
        merged.pop("error_message", None)
        if failed_decode is not None:
            merged.update(status="error", error_code=failed_decode["error_code"],
                          error_message=failed_decode.get("error_message"))
        else:
            merged["status"] = ("ok" if all(e["status"] != "error" for e in merged["components"].values())
                                else "partial")
        merged["passes"] = plan_.passes
        atomic_write_json(Path(key), merged)
        manifests.append(merged)
    return manifests


def _summary(run: Any, run_id: str, n_videos: int, manifests: list[dict[str, Any]], seconds: float) -> Any:
    from extraction.runner import RunSummary

    return RunSummary.from_manifests(run, run_id, manifests, n_videos, seconds)


def execute(run: Any, videos: Sequence[tuple[Path, dict[str, Any]]], plan_: BatchPlan, *,
            residency: ModelResidency | None = None, control: Any = None, run_id: str | None = None,
            restore: bool = True) -> Any:
    """Run ``plan_`` and return the runner's :class:`~extraction.runner.RunSummary` (merged over passes).

    Args:
        run: the :class:`~extraction.runner.ExtractionRun`; its ``batch_sizes`` and ``plan`` are set here.
        videos: ``(path, sidecar)`` pairs, in the order the plan assumed.
        plan_: from :func:`~planning.inputs.plan_run`.
        residency: required when the plan has several passes (tier-1 models rotate).
        control: Triton client used to reload models whose planned instance count differs from the loaded one
            (default: the provider's client; None on a provider without one).
        run_id: optional fixed run id.
        restore: reload, after the run, the models that residency unloaded (leave the server as found).
    """
    from extraction.runner import extract, new_run_id

    run.batch_sizes = dict(plan_.batch_sizes)
    run.plan = plan_.to_dict()
    control = control if control is not None else getattr(run.provider, "client", None)
    if control is not None and plan_.instances and run.handles:
        loaded_now = list(residency.lru) if residency is not None else None
        names_now = {c: h.name for c, h in run.handles.items()
                     if loaded_now is None or h.name in loaded_now}
        run.plan["reloads"] = apply_instances(control, plan_, names_now)
    if len(plan_.passes) == 1 and residency is None:
        return extract(run, list(videos), videos_in_parallel=plan_.videos_in_parallel, run_id=run_id)
    if residency is None:
        raise TrendflowError("the plan rotates models in passes and needs a ModelResidency", code="config_invalid")
    run_id = run_id or new_run_id()
    t0 = time.perf_counter()
    all_components = list(run.components)
    names = {c: h.name for c, h in run.handles.items()}
    before = list(residency.lru)
    per_pass: list[dict[str, dict[str, Any]]] = []  # pass -> video key -> manifest
    last = None
    try:
        for comps in plan_.passes:
            residency.ensure([names[c] for c in comps if c in names])
            run.components = closure(comps, all_components)
            last = extract(run, list(videos), videos_in_parallel=plan_.videos_in_parallel, run_id=run_id)
            per_pass.append({str(m): json.loads(Path(m).read_text()) for m in last.manifests if Path(m).exists()})
    finally:
        run.components = all_components
        if restore:  # leave the server as found (outside the plan's bound: the run is over)
            for m in before:
                if m not in residency.lru:
                    residency.load(m)
    if last is None:
        return last
    manifests = _merge_passes(per_pass, plan_, all_components)
    return _summary(run, run_id, len(videos), manifests, time.perf_counter() - t0)


def plan_and_execute(run: Any, videos: Sequence[tuple[Path, dict[str, Any]]], *,
                     checklist: Checklist | Path | None = None, memory_budget: int | Mapping[str, int] | None = None,
                     safety_margin: float = DEFAULT_SAFETY_MARGIN,
                     max_videos_in_parallel: int = DEFAULT_MAX_VIDEOS_IN_PARALLEL,
                     max_loaded_models_per_device: int = DEFAULT_MAX_LOADED_MODELS_PER_DEVICE,
                     devices: Sequence[Device] | None = None, server_pid: int | None = None, on_plan=None,
                     run_id: str | None = None, max_instances: int | Mapping[str, int] | None = None,
                     pilot_videos: int | None = None, pilot_sampling: str = "cost", recalibrate: bool = True,
                     on_replan=None) -> Any:
    """Plan the whole corpus before any work (fail fast), run the pilot (see the module docstring; from
    :data:`PILOT_MIN_VIDEOS` videos, single-pass plans; ``pilot_videos`` None = :func:`pilot_size`, 0 = off), plan
    the rest with its factors, tell ``on_plan``, then execute -- in two parts when ``recalibrate`` and the rest has
    :data:`RECALIBRATE_MIN_VIDEOS` videos, telling ``on_replan`` the plan of the second part. Returns the run
    summary of all videos (one run id).

    ``pilot_sampling``: ``cost`` draws the pilot with probability proportional to each video's predicted cost
    (:func:`~planning.pilot.pick_pilot_pps`, weighted factors); ``first`` takes the first uncached videos."""
    from extraction.runner import new_run_id

    run.resolve_models()  # an unreachable server or a missing model is reported before any checklist problem
    cl = checklist if isinstance(checklist, Checklist) else load_checklist(find_checklist(run.cfg.profile, checklist))
    cached = cached_per_video(run, videos)
    x = plan_inputs(run, videos, cl, devices, cached)
    kw = dict(memory_budget=memory_budget, safety_margin=safety_margin, max_videos_in_parallel=max_videos_in_parallel,
              max_loaded_models_per_device=max_loaded_models_per_device, max_instances=max_instances)
    p = plan_run(run, videos, **kw, inputs=x)
    rest, rest_inputs, pilot = list(videos), x, None
    if pilot_videos is None:
        pilot_videos = pilot_size(len(videos))
    picked, weights = [], None
    if pilot_videos > 0 and pilot_sampling == "cost":
        costs = [sum(v.values()) for v in predicted_component_seconds(
            x.specs, component_specs(run.components), x.devices, cl, p.batch_sizes)]
        picked, weights = pick_pilot_pps(cached, pilot_videos, costs)
    elif pilot_videos > 0:
        picked = pick_pilot(cached, pilot_videos)
    if pilot_videos <= 0 and len(videos) >= PILOT_MIN_VIDEOS:
        p.calibration["skipped"] = "turned off"
    elif len(videos) < PILOT_MIN_VIDEOS:
        p.calibration["skipped"] = f"{len(videos)} videos; a pilot runs from {PILOT_MIN_VIDEOS}"
    elif len(p.passes) > 1:
        p.calibration["skipped"] = "the plan rotates models in passes"
    elif not picked:
        p.calibration["skipped"] = f"every video has artifacts to reuse in {run.out_root}"
    else:
        run_id = run_id or new_run_id()
        pilot = run_pilot(run, [videos[i] for i in picked], p, cl, run_id, weights)
        keep = [i for i in range(len(videos)) if i not in set(picked)]
        rest = [videos[i] for i in keep]
        rest_inputs = dataclasses.replace(x, specs=[x.specs[i] for i in keep])  # same devices, speed, server
        p = plan_run(run, rest, **kw, time_factors=pilot.factors, video_overhead_s=pilot.video_overhead_s,
                     inputs=rest_inputs)
        p.calibration.update(pilot.record())
        if weights is not None:
            p.calibration.update(pilot_sampling="cost", pilot_weights=[round(w, 3) for w in weights])
        if not pilot.factors:
            p.calibration["skipped"] = "the pilot videos were all reused from the cache"
        elif recalibrate and len(p.passes) == 1:
            rest, rest_inputs, p, pilot, kw = _parallel_step(run, rest, rest_inputs, p, pilot, kw, run_id)
    if not isinstance(checklist, Checklist):
        p.checklist["path"] = str(find_checklist(run.cfg.profile, checklist))
    parts = None
    if recalibrate and pilot is not None and pilot.factors and len(p.passes) == 1:
        parts = _two_parts(run, rest, rest_inputs, p, pilot, kw)
        if parts is not None:
            k, first_p, second_s = parts
            p = dataclasses.replace(p, predicted_makespan_s=first_p.predicted_makespan_s + second_s, calibration={
                **p.calibration, "two_parts": {"first_part_videos": k,
                                               "first_part_predicted_s": round(first_p.predicted_makespan_s, 3),
                                               "second_part_predicted_s": round(second_s, 3)}})
    if on_plan is not None:
        on_plan(p)
    residency = None
    if len(p.passes) > 1:
        residency = residency_for(run, p, run.provider.client, cl, loaded_models(run.provider), server_pid)
    summary = None
    if parts is not None:  # a single-pass plan: no residency
        run_id = run_id or new_run_id()
        summary = _execute_recalibrated(run, rest, rest_inputs, p, pilot, kw, run_id, parts, on_replan)
    if summary is None:
        summary = execute(run, rest, p, residency=residency, run_id=run_id)
    return merge_summaries(pilot.summary, summary) if pilot is not None else summary


def _predicted_costs(run: Any, inputs: Any, p: BatchPlan, pilot: Any) -> list[float]:
    """Predicted seconds of each video of ``inputs`` at ``p``'s batch sizes with the pilot's factors."""
    per_video = predicted_component_seconds(inputs.specs, component_specs(run.components), inputs.devices,
                                            inputs.checklist, p.batch_sizes, time_factors=pilot.factors)
    return [sum(v.values()) for v in per_video]


def _subset(inputs: Any, idx: Sequence[int]) -> Any:
    """The plan inputs of the videos ``idx`` (same devices, speed, server)."""
    return dataclasses.replace(inputs, specs=[inputs.specs[i] for i in idx])


def _run_part(run: Any, videos: Sequence[tuple[Path, dict[str, Any]]], inputs: Any, pilot: Any,
              kw: Mapping[str, Any], run_id: str, calibration: Mapping[str, Any], checklist_path: str | None = None,
              planned: BatchPlan | None = None) -> tuple[Any, BatchPlan, float, float, dict[str, float], float | None]:
    """Plan ``videos`` with the pilot's factors (or take ``planned``, made so; ``calibration`` and
    ``checklist_path``, when given, recorded in the plan its manifests carry), run them, and scale every factor by
    the part's measured / predicted makespan. Returns ``(summary, the part's plan, seconds it took, ratio, scaled
    factors, scaled per-video overhead)`` -- the measurement behind both the pilot's parallel step and the mid-run
    re-plan."""
    part_p = planned if planned is not None else _plan_part(run, videos, inputs, pilot, kw)
    part_p.calibration.update(calibration)
    if checklist_path is not None:
        part_p.checklist["path"] = checklist_path
    t0 = time.perf_counter()
    summary = execute(run, videos, part_p, run_id=run_id)
    took = time.perf_counter() - t0
    ratio = makespan_ratio(took, part_p.predicted_makespan_s)
    factors = scaled_factors(pilot.factors, ratio, [c.name for c in run.components])
    overhead = None if pilot.video_overhead_s is None else pilot.video_overhead_s * ratio
    return summary, part_p, took, ratio, factors, overhead


def _plan_part(run: Any, videos: Sequence[tuple[Path, dict[str, Any]]], inputs: Any, pilot: Any,
               kw: Mapping[str, Any]) -> BatchPlan:
    """The plan of ``videos`` with the pilot's factors and per-video overhead."""
    return plan_run(run, videos, **kw, time_factors=pilot.factors, video_overhead_s=pilot.video_overhead_s,
                    inputs=inputs)


def _carried(calibration: Mapping[str, Any]) -> dict[str, Any]:
    """What a re-planned part keeps of the plan before it: everything but the factors it replaces."""
    return {key: v for key, v in calibration.items() if key not in ("time_factors", "video_overhead_s")}


def _parallel_step(run: Any, rest: Sequence[tuple[Path, dict[str, Any]]], inputs: Any, p: BatchPlan, pilot: Any,
                   kw: Mapping[str, Any], run_id: str) -> tuple[list, Any, BatchPlan, Any, Mapping[str, Any]]:
    """The pilot's parallel step: when ``p`` runs several videos at once, run ``p.videos_in_parallel`` videos of
    about the median cost (:func:`~planning.recalibrate.parallel_probe`) at once with a plan of their own, scale
    the pilot's factors by their measured / predicted makespan and plan what is left with them. Returns
    ``(rest, its inputs, its plan, the pilot with the scaled factors and both parts' summary, the planning limits
    for the rest)`` -- at most the step's lanes, the parallelism its ratio was measured at; the inputs unchanged
    when the rest is too short for the step and the mid-run re-plan after it (the re-plan measures
    30% of the rest, more than the step's one video per lane, so a short rest keeps the re-plan)."""
    picked = parallel_probe(_predicted_costs(run, inputs, p, pilot), p.videos_in_parallel)
    if not picked or len(rest) - len(picked) < RECALIBRATE_MIN_VIDEOS:  # the mid-run re-plan corrects more
        return list(rest), inputs, p, pilot, kw
    keep = [i for i in range(len(rest)) if i not in set(picked)]
    step, step_p, took, ratio, factors, overhead = _run_part(
        run, [rest[i] for i in picked], _subset(inputs, picked), pilot,
        {**kw, "max_videos_in_parallel": len(picked)}, run_id, {**p.calibration, "stage": "pilot, parallel step"})
    pilot = dataclasses.replace(pilot, factors=factors, video_overhead_s=overhead,
                                summary=merge_summaries(pilot.summary, step))
    rest_inputs = _subset(inputs, keep)
    # the ratio is measured at the step's lanes: at more lanes the contention is another one, so the rest runs at
    # most as many (docs/planner.md; the other corpus' up-front error is its content, not this, measured since)
    kw = {**kw, "max_videos_in_parallel": min(kw["max_videos_in_parallel"], step_p.videos_in_parallel)}
    new_p = plan_run(run, [rest[i] for i in keep], **kw, time_factors=factors, video_overhead_s=overhead,
                     inputs=rest_inputs)
    new_p.calibration.update(_carried(p.calibration))
    new_p.calibration["parallel_step"] = {
        "videos": [str(rest[i][1].get("video_id", rest[i][0].stem)) for i in picked],
        "videos_in_parallel": step_p.videos_in_parallel, "seconds": round(took, 3),
        "predicted_s": round(step_p.predicted_makespan_s, 3), "makespan_ratio": round(ratio, 3)}
    return [rest[i] for i in keep], rest_inputs, new_p, pilot, kw


def _two_parts(run: Any, rest: Sequence[tuple[Path, dict[str, Any]]], inputs: Any, p: BatchPlan, pilot: Any,
               kw: Mapping[str, Any]) -> tuple[int, BatchPlan, float] | None:
    """How the rest will run: ``(k, the first part's plan, the second part's predicted seconds)`` -- the first
    :data:`RECALIBRATE_AT` of ``rest`` by predicted seconds, each part planned on its own videos as it will run, so
    that the prediction made before the rest starts is of the two parts (the barrier between them included), not
    of one plan of all. None when ``rest`` is too short for two parts."""
    if len(rest) < RECALIBRATE_MIN_VIDEOS:
        return None
    k = head_size(_predicted_costs(run, inputs, p, pilot), RECALIBRATE_AT, p.videos_in_parallel)
    if k == 0:
        return None
    first_p = _plan_part(run, rest[:k], _subset(inputs, range(k)), pilot, kw)
    second_p = _plan_part(run, rest[k:], _subset(inputs, range(k, len(rest))), pilot, kw)
    return k, first_p, second_p.predicted_makespan_s


def _execute_recalibrated(run: Any, rest: Sequence[tuple[Path, dict[str, Any]]], inputs: Any, p: BatchPlan,
                          pilot: Any, kw: Mapping[str, Any], run_id: str, parts: tuple[int, BatchPlan, float],
                          on_replan=None) -> Any:
    """Run the first part of ``rest`` (``parts``, from :func:`_two_parts`) with its plan, then re-plan the other
    videos with every factor times the first part's measured / predicted makespan and run them."""
    k, planned, _ = parts
    first, first_p, took, ratio, factors, overhead = _run_part(
        run, rest[:k], _subset(inputs, range(k)), pilot, kw, run_id, {**p.calibration, "part": "1 of 2"},
        p.checklist.get("path"), planned=planned)
    second_p = plan_run(run, rest[k:], **kw, time_factors=factors, video_overhead_s=overhead,
                        inputs=_subset(inputs, range(k, len(rest))))
    second_p.calibration.update({**_carried(p.calibration), "part": "2 of 2", "recalibrated": {
        "first_part_videos": k, "first_part_s": round(took, 3),
        "first_part_predicted_s": round(first_p.predicted_makespan_s, 3), "makespan_ratio": round(ratio, 3)}})
    second_p.checklist["path"] = p.checklist.get("path", second_p.checklist.get("path"))
    if on_replan is not None:
        on_replan(second_p)
    second = execute(run, rest[k:], second_p, run_id=run_id)
    return merge_summaries(first, second)
