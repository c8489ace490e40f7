"""Build the service from config and run it: in the foreground (``serve``), in a thread (tests, demo) or as a
child process (benchmarks, signal tests). All real uvicorn over real sockets."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from common.errors import TrendflowError
from inference.config import InferenceConfig


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_service(cfg: InferenceConfig) -> Any:
    """Service for ``cfg``: registry store, serving spec, and the video featurizer when video mode is on."""
    from features import load_spec
    from inference.extract import VideoFeaturizer
    from inference.service import Service
    from registry.config import load_config as load_registry_config

    reg = load_registry_config(cfg.path(cfg.registry), tracking_uri=cfg.tracking_uri)
    spec = load_spec(cfg.path(cfg.spec))
    featurizer = None
    if "video" in cfg.request_modes:
        featurizer = VideoFeaturizer(cfg.path(cfg.extraction.artifacts_dir), cfg.extraction.profile,
                                     cfg.triton.url, cfg.path(cfg.triton.state_dir))
    return Service(cfg, reg, spec, featurizer=featurizer)


def configure_logging(level: str = "info") -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def serve(cfg: InferenceConfig) -> None:
    """Run in the foreground until SIGINT/SIGTERM (SIGHUP reloads the models)."""
    import uvicorn

    from common.auth import require_loopback_unless_configured
    from inference.app import create_app
    from observability.api import serving_recorder

    require_loopback_unless_configured(cfg.server.host, cfg.admin.auth())  # before anything loads
    configure_logging(cfg.server.log_level)
    service = build_service(cfg)
    # Serving windows go to the observability store through a local spool, off the request path.
    recorder = serving_recorder(service.metrics.registry, f"{cfg.server.host}:{cfg.server.port}")
    app = create_app(service, handle_signals=True, recorder=recorder)
    uvicorn.run(app, host=cfg.server.host, port=cfg.server.port, workers=1, log_level=cfg.server.log_level,
                access_log=False, timeout_graceful_shutdown=30)


def wait_ready(url: str, timeout_s: float = 120.0, need_ready: bool = True, proc: Any = None) -> dict[str, Any]:
    """Poll ``/health/ready`` (or ``/health/live``) until it answers 200; returns the last JSON body."""
    deadline = time.monotonic() + timeout_s
    path = "/health/ready" if need_ready else "/health/live"
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise TrendflowError(f"server process exited with {proc.returncode}", code="server_failed")
        try:
            with urllib.request.urlopen(url + path, timeout=2) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            last = json.loads(exc.read() or b"{}")
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TrendflowError(f"{url} not {'ready' if need_ready else 'live'} after {timeout_s:.0f}s: {last}",
                         code="server_not_ready")


class ServerThread:
    """uvicorn serving ``cfg`` from a background thread of this process, on a free port."""

    def __init__(self, cfg: InferenceConfig, port: int | None = None, service: Any | None = None,
                 recorder: Any | None = None) -> None:
        import uvicorn

        from inference.app import create_app

        self.port = port or free_port()
        self.service = service or build_service(cfg)
        self.app = create_app(self.service, recorder=recorder)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise TrendflowError(f"uvicorn did not start on {self.url}", code="server_failed")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess:
    """``python -m inference serve`` as a child process (own interpreter, like production)."""

    def __init__(self, config_path: Path, port: int | None = None, env: dict[str, str] | None = None,
                 log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.config_path = Path(config_path)
        self.env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180.0, need_ready: bool = True) -> ServerProcess:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inference", "serve", "--config", str(self.config_path), "--port", str(self.port)],
            cwd=root, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        wait_ready(self.url, timeout_s, need_ready=need_ready, proc=self.proc)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
