"""Features for a request that is not a feature vector: a run's artifacts folder, or a video path + metadata.

Both go through the same code as training: the extractor's ``process_video`` (through Triton) and the features
library's ``build_vector``. Blocking functions; the service calls them in a worker thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import TrendflowError
from extraction.schemas import REQUIRED_SIDECAR_KEYS


class RequestInvalid(TrendflowError):
    """A request whose fields are wrong; ``details['errors']`` lists ``{field, code, message}``."""

    code = "invalid_request"


@dataclass
class Built:
    row: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    keys: dict[str, Any] = field(default_factory=dict)


def vector_from_run(run_dir: str | Path, spec: Any) -> Built:
    """Features of one extractor run folder (``features.build.build_vector``: the inference path of training's
    table). Raises ``MissingCriticalFeature`` naming every critical feature it could not compute."""
    from features.build import build_vector

    run_dir = Path(run_dir)
    if not (run_dir / "manifest.json").exists():
        raise RequestInvalid(f"{run_dir.name}: not an extractor run folder (no manifest.json)",
                             code="not_a_run_folder", errors=[{"field": "artifacts_dir", "code": "not_a_run_folder",
                                      "message": "no manifest.json in this folder"}])
    t0 = time.perf_counter()
    fr = build_vector(run_dir, spec)
    keys = {k: v for k, v in fr.keys.items() if k in ("platform_id", "video_id", "run_id")}
    return Built(fr.as_dict(), list(fr.warnings), {"features_s": time.perf_counter() - t0},
                 {**keys, "run_dir": str(run_dir.resolve())})


def check_metadata(metadata: Any) -> list[dict[str, str]]:
    if not isinstance(metadata, dict):
        return [{"field": "metadata", "code": "missing_field",
                 "message": f"a video request needs metadata with {list(REQUIRED_SIDECAR_KEYS)}"}]
    return [{"field": f"metadata.{k}", "code": "missing_field",
             "message": "required for a video request (a non-empty string)"}
            for k in REQUIRED_SIDECAR_KEYS if not isinstance(metadata.get(k), str) or not metadata.get(k)]


class VideoFeaturizer:
    """Runs the shared extractor on one video through Triton, then builds its features.

    Models are resolved against Triton once (on first use, again after a Triton failure); artifacts are written
    under ``out_root`` and cached by key exactly like a batch extraction.
    """

    def __init__(self, out_root: Path, profile: str = "fast", url: str | None = None,
                 state_dir: Path | None = None, seed: int = 0) -> None:
        self.out_root = Path(out_root)
        self.profile = profile
        self.url = url
        self.state_dir = state_dir
        self.seed = seed
        self._run = None
        self._lock = threading.Lock()

    def grpc_url(self) -> str:
        from extraction import triton_server
        from planning.api import triton_url

        return triton_url(self.url, self.state_dir or triton_server.DEFAULT_STATE_DIR)

    def reachable(self, timeout_s: float = 1.0) -> tuple[bool, str]:
        """Is Triton up and ready? (for ``/health/ready`` in a mode that extracts)."""
        try:
            url = self.grpc_url()
        except TrendflowError as exc:
            return False, str(exc)
        try:
            import tritonclient.grpc as grpcclient

            client = grpcclient.InferenceServerClient(url)
            try:
                ok = client.is_server_ready(client_timeout=timeout_s)
            finally:
                client.close()
            return bool(ok), f"{url} {'ready' if ok else 'not ready'}"
        except Exception as exc:
            return False, f"{url} unreachable: {type(exc).__name__}"

    def _extraction_run(self) -> Any:
        with self._lock:
            if self._run is None:
                from extraction.config import load_profile
                from extraction.provider import TritonModelProvider
                from extraction.runner import ExtractionRun

                run = ExtractionRun(cfg=load_profile(self.profile, seed=self.seed), out_root=self.out_root,
                                    provider=TritonModelProvider(self.grpc_url()), progress=False)
                run.resolve_models()
                self._run = run
            return self._run

    def build(self, video_path: str | Path, metadata: dict[str, Any], spec: Any, limits: Any = None) -> Built:
        """Extract ``video_path`` (+ sidecar-style ``metadata``) and build its feature row, timing each stage.

        ``limits`` (:class:`inference.access.Limits`): size, declared duration, frame count and dimensions are
        checked from the container header before anything is decoded."""
        from common.errors import TritonUnavailable
        from extraction.runner import VideoJob, new_run_id, process_video
        from inference.access import check_video

        path = Path(video_path)
        if not path.is_file():
            raise RequestInvalid(f"{path.name}: no such video file", code="not_found", errors=[
                {"field": "video_path", "code": "not_found", "message": "no such file on the server"}])
        if limits is not None:
            check_video(path, limits)
        t0 = time.perf_counter()
        run = self._extraction_run()
        job = VideoJob(run.video_input(path, metadata), new_run_id())
        try:
            manifest = process_video(run, job)
        except TritonUnavailable:
            with self._lock:
                self._run = None  # resolve again next time
            raise
        t1 = time.perf_counter()
        if manifest.get("status") == "error":
            raise TrendflowError(f"{path.name}: {manifest.get('error_message')}",
                                 code=manifest.get("error_code") or "extraction_failed")
        from extraction.artifacts import run_dir

        built = vector_from_run(run_dir(self.out_root, job.video.platform_id, job.video.video_id, job.run_id), spec)
        built.timings = {"extraction_s": t1 - t0, **built.timings}
        return built
