"""Importable entry points composed by the CLI, the demo, the benchmarks and the inference service."""

from __future__ import annotations

from pathlib import Path

from common.errors import TritonUnavailable
from extraction import triton_server
from extraction.config import DEFAULT_MAPPING, load_profile
from extraction.provider import TritonModelProvider
from extraction.runner import ExtractionRun, RunSummary, discover_videos, extract


def triton_url(url: str | None = None, state_dir: Path = triton_server.DEFAULT_STATE_DIR) -> str:
    """The gRPC address to use: ``url`` if given, else the server recorded by ``triton start``."""
    if url:
        return url
    state = triton_server.read_state(Path(state_dir))
    if state is None:
        raise TritonUnavailable("no Triton server is recorded as running; start it with "
                                "`python -m extraction triton start` (or pass --triton-url)")
    return state.grpc_url


def run_extraction(videos: Path, out: Path, profile: str = "fast", url: str | None = None,
                   mapping: Path = DEFAULT_MAPPING, batch_sizes: dict[str, int] | None = None,
                   videos_in_parallel: int = 1, seed: int = 0, progress: bool = True,
                   state_dir: Path = triton_server.DEFAULT_STATE_DIR, *, plan: bool = True,
                   checklist: Path | None = None, memory_budget: int | None = None, safety_margin: float = 0.2,
                   max_videos_in_parallel: int = 8, max_loaded_models_per_device: int = 8,
                   on_plan=None, on_replan=None) -> RunSummary:
    """Extract every video in ``videos`` into ``out`` with ``profile``. Raises TrendflowError subclasses.

    By default the batching planner decides batch sizes, videos in parallel and model residency from the
    checklist (``conf/checklist/<hardware>/<profile>.yaml`` unless ``checklist`` is given) and the memory free
    now, before any work (``checklist_missing``/``checklist_stale``/``insufficient_memory`` fail fast);
    ``on_plan(plan)`` sees the :class:`~planning.planner.BatchPlan` first, ``on_replan(plan)`` the plan of the
    videos re-planned mid-run (:mod:`planning.recalibrate`). Explicit ``batch_sizes`` or
    ``plan=False`` run without it (``videos_in_parallel`` then applies)."""
    cfg = load_profile(profile, mapping, seed=seed)
    provider = TritonModelProvider(triton_url(url, state_dir))
    run = ExtractionRun(cfg=cfg, out_root=Path(out), provider=provider, batch_sizes=batch_sizes or {},
                        progress=progress)
    vids = discover_videos(Path(videos))
    if batch_sizes or not plan:
        return extract(run, vids, videos_in_parallel=videos_in_parallel)
    from planning.executor import plan_and_execute

    state = triton_server.read_state(Path(state_dir)) if url is None else None
    return plan_and_execute(run, vids, checklist=checklist, memory_budget=memory_budget, safety_margin=safety_margin,
                            max_videos_in_parallel=max_videos_in_parallel,
                            max_loaded_models_per_device=max_loaded_models_per_device,
                            server_pid=state.pid if state else None, on_plan=on_plan,
                            on_replan=on_replan)


def served_signatures(profile: str = "fast", url: str | None = None,
                      state_dir: Path = triton_server.DEFAULT_STATE_DIR) -> dict[str, str]:
    """component -> ``name:version:weights_digest`` of the models the server serves for ``profile`` now."""
    from planning.inputs import model_signatures

    run = ExtractionRun(cfg=load_profile(profile), out_root=Path("."),
                        provider=TritonModelProvider(triton_url(url, state_dir)), progress=False)
    return model_signatures(run.resolve_models())


def ensure_checklist(profile: str = "fast", url: str | None = None,
                     state_dir: Path = triton_server.DEFAULT_STATE_DIR, *,
                     local_dir: Path = triton_server.REPO_ROOT / ".trendflow" / "checklist",
                     committed_dir: Path | None = None, log=print) -> Path:
    """A checklist that is fresh for the models the server serves now, measuring one when there is none.

    The repository's ``conf/checklist/<hardware>/<profile>.yaml`` is used when it exists and matches the
    server's model signatures; else a machine-local one under ``local_dir`` (measured earlier by this function);
    else a quick profile is measured now (about a minute on 2 cores) and written under ``local_dir`` -- never
    over the committed file, which changes only by an explicit ``python -m extraction checklist profile``.
    Used by the main job and by ``python -m extraction run`` without ``--checklist``, so that both work on hardware
    nobody profiled yet (a stale committed checklist is still refused, with the message, and never used); an
    explicit checklist that is missing or stale fails fast (``checklist_missing`` / ``checklist_stale``).
    """
    from planning.checklist import (
        CHECKLIST_DIR,
        ChecklistMissing,
        ChecklistStale,
        checklist_path,
        detect_hardware,
        load_checklist,
    )
    from planning.inputs import find_checklist
    from planning.profiler import run_profile

    current = served_signatures(profile, url, state_dir)
    candidates: list[Path] = []
    try:
        candidates.append(find_checklist(profile, root=committed_dir or CHECKLIST_DIR))
    except ChecklistMissing as exc:
        log(f"checklist: {exc.message}")
    local = checklist_path(profile, detect_hardware().id, Path(local_dir))
    candidates.append(local)
    for path in candidates:
        if not path.exists():
            continue
        try:
            load_checklist(path).check_signatures(current, source=str(path))
            return path
        except ChecklistStale as exc:
            log(f"checklist: {exc}")
    log(f"checklist: measuring a quick one for this machine into {local} (commit a full "
        f"`python -m extraction checklist profile --profile {profile}` to conf/checklist/ to share it)")
    # reload_models=False: never unload a model of a server others may be using (fixed memory from its stub's RSS)
    path, _ = run_profile(profile, url=url, state_dir=state_dir, out=local, quick=True, reload_models=False, log=log)
    return path
