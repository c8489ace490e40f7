"""Importable entry points composed by the CLI, the demo, the benchmarks and the inference service."""

from __future__ import annotations

from pathlib import Path

from extraction import triton_server
from extraction.config import DEFAULT_MAPPING, load_profile
from extraction.errors import TritonUnavailable
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
                   state_dir: Path = triton_server.DEFAULT_STATE_DIR) -> RunSummary:
    """Extract every video in ``videos`` into ``out`` with ``profile``. Raises TrendflowError subclasses."""
    cfg = load_profile(profile, mapping, seed=seed)
    provider = TritonModelProvider(triton_url(url, state_dir))
    run = ExtractionRun(cfg=cfg, out_root=Path(out), provider=provider, batch_sizes=batch_sizes or {},
                        progress=progress)
    return extract(run, discover_videos(Path(videos)), videos_in_parallel=videos_in_parallel)
