"""Lifecycle of the local Triton server shipped in the ``nvidia-pytriton`` wheel.

``start`` builds a private backends folder (the python backend library plus the Python 3.11 stub),
launches ``tritonserver`` on loopback with free ports and explicit model control (all models loaded at
start-up, so the planner can unload/load later), waits until ready, and records pid and ports in a
state file. ``status`` reports server and per-model readiness; ``stop`` terminates the process.

Nothing here falls back to running models in-process: when the server is down, callers get
:class:`~common.errors.TritonUnavailable`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from common.errors import TrendflowError, TritonUnavailable
from common.fsio import atomic_write_json
from common.paths import REPO_ROOT
from common.process import pid_alive

DEFAULT_MODEL_REPOSITORY = REPO_ROOT / "model_repository"
DEFAULT_STATE_DIR = REPO_ROOT / ".trendflow" / "triton"


@dataclass
class ServerState:
    """What a running server looks like to clients; persisted as ``state.json``."""

    pid: int
    http_port: int
    grpc_port: int
    metrics_port: int
    model_repository: str
    log_path: str
    started_at: float

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def _site_packages() -> Path:
    import pytriton

    return Path(pytriton.__file__).resolve().parent.parent


def _triton_home() -> Path:
    return _site_packages() / "pytriton" / "tritonserver"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_backends(state_dir: Path) -> Path:
    """Build ``state_dir/backends/python`` with the backend library and the 3.11 stub.

    The wheel ships the stub for several Pythons in ``python_backend_stubs/``; Triton looks for it next
    to ``libtriton_python.so``. We link/copy into a folder of our own instead of touching site-packages.
    """
    home = _triton_home()
    dst = state_dir / "backends" / "python"
    dst.mkdir(parents=True, exist_ok=True)
    src_backend = home / "backends" / "python"
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        link = dst / name
        if not link.exists():
            link.symlink_to(src_backend / name)
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dst / "triton_python_backend_stub"
    if not stub.exists():
        shutil.copy2(home / "python_backend_stubs" / ver / "triton_python_backend_stub", stub)
        stub.chmod(0o755)
    return dst.parent


def server_env() -> dict[str, str]:
    """Environment for tritonserver: venv ``bin`` first on PATH (the stub finds Python through it)."""
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    # The stub links libpython3.11.so.1.0 by soname: this interpreter's LIBDIR must come first, otherwise a
    # system libpython is picked that cannot load this interpreter's stdlib extensions (`_ssl ... undefined
    # symbol`, which breaks text_embed's imports).
    libs = [sysconfig.get_config_var("LIBDIR") or "", str(_site_packages() / "nvidia_pytriton.libs")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join([p for p in libs if p] + ([env["LD_LIBRARY_PATH"]]
                                                                     if env.get("LD_LIBRARY_PATH") else []))
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    # The stub's Python must import our kernels even when the project is not pip-installed.
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # Each model instance is single-threaded by default on this 2-core machine; a model may override.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def read_state(state_dir: Path = DEFAULT_STATE_DIR) -> ServerState | None:
    path = _state_file(state_dir)
    if not path.exists():
        return None
    return ServerState(**json.loads(path.read_text()))


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET ``url``; returns (status, body), status 0 when the connection fails."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def start(
    model_repository: Path = DEFAULT_MODEL_REPOSITORY,
    state_dir: Path = DEFAULT_STATE_DIR,
    timeout_s: float = 180.0,
    models: list[str] | None = None,
) -> ServerState:
    """Start Triton (or return the already-running one recorded in ``state_dir``).

    Args:
        model_repository: folder of ``<model>/<version>/model.py`` + ``config.pbtxt``.
        state_dir: where pid/ports/log are recorded.
        timeout_s: how long to wait for ``/v2/health/ready``.
        models: models to load at start-up (default: all of them).
    """
    state_dir = Path(state_dir)
    existing = read_state(state_dir)
    if existing and pid_alive(existing.pid) and http_get(f"http://{existing.http_url}/v2/health/ready")[0] == 200:
        return existing
    state_dir.mkdir(parents=True, exist_ok=True)
    backends = prepare_backends(state_dir)
    http_port, grpc_port, metrics_port = _free_port(), _free_port(), _free_port()
    log_path = state_dir / "tritonserver.log"
    cmd = [
        str(_triton_home() / "bin" / "tritonserver"),
        f"--model-repository={Path(model_repository).resolve()}",
        f"--backend-directory={backends}",
        "--model-control-mode=explicit",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={metrics_port}",
        "--allow-metrics=true",
        "--log-verbose=0",
        "--exit-on-error=false",
        "--strict-readiness=false",  # ready = server up; per-model readiness is asked per model
    ]
    cmd += [f"--load-model={m}" for m in (models or ["*"])]
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=server_env(), start_new_session=True
    )
    state = ServerState(
        pid=proc.pid,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        model_repository=str(Path(model_repository).resolve()),
        log_path=str(log_path),
        started_at=time.time(),
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TritonUnavailable(
                f"tritonserver exited with code {proc.returncode} during start-up; see {log_path}",
                log_path=str(log_path),
            )
        if http_get(f"http://{state.http_url}/v2/health/live")[0] == 200:
            models = _repository_index(state.http_url)
            if models and all(m.get("state") in ("READY", "UNAVAILABLE") for m in models):
                failed = {m["name"]: m.get("reason", "") for m in models if m.get("state") != "READY"}
                if failed:
                    _kill_group(proc.pid)
                    raise TrendflowError(
                        "models failed to load: " + "; ".join(f"{k}: {v[:300]}" for k, v in failed.items())
                        + f" (full log: {log_path})", code="model_load_failed", log_path=str(log_path))
                atomic_write_json(_state_file(state_dir), asdict(state))
                return state
        time.sleep(0.5)
    _kill_group(proc.pid)
    raise TritonUnavailable(f"tritonserver not ready after {timeout_s:.0f}s; see {log_path}", log_path=str(log_path))


def _repository_index(http_url: str) -> list[dict[str, str]]:
    req = urllib.request.Request(f"http://{http_url}/v2/repository/index", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, json.JSONDecodeError):
        return []


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def stop(state_dir: Path = DEFAULT_STATE_DIR, timeout_s: float = 30.0) -> bool:
    """Stop the server recorded in ``state_dir``. Returns True if a process was stopped."""
    state = read_state(state_dir)
    if state is None:
        return False
    stopped = False
    if pid_alive(state.pid):
        try:
            os.killpg(state.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout_s
        while pid_alive(state.pid) and time.monotonic() < deadline:
            _reap(state.pid)
            time.sleep(0.2)
        if pid_alive(state.pid):
            os.killpg(state.pid, signal.SIGKILL)
            _reap(state.pid)
        stopped = True
    _state_file(state_dir).unlink(missing_ok=True)
    return stopped


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def status(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, object]:
    """Server liveness/readiness and per-model readiness (from the repository index)."""
    state = read_state(state_dir)
    if state is None:
        return {"server": "stopped", "ready": False, "models": {}}
    alive = pid_alive(state.pid)
    ready = alive and http_get(f"http://{state.http_url}/v2/health/ready")[0] == 200
    models: dict[str, str] = {}
    if alive:
        for entry in _repository_index(state.http_url):
            models[f"{entry['name']}:{entry.get('version', '-')}"] = entry.get("state", "UNAVAILABLE")
    return {
        "server": "ready" if ready else ("running" if alive else "dead"),
        "ready": ready,
        "pid": state.pid,
        "http": state.http_url,
        "grpc": state.grpc_url,
        "metrics": f"127.0.0.1:{state.metrics_port}",
        "models": models,
    }
