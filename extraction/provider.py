"""The one way components call models: a :class:`ModelProvider` backed by Triton.

``get_model`` checks the server and the model, reads tensor names/dims, ``max_batch_size`` and the
model's declared ``weights_digest``/``engine``/``precision`` from the server's model config (the config is
the truth about tensors), and returns a :class:`ModelHandle` whose ``models_used`` entry goes into every
artifact. ``infer`` splits inputs into requests of the planned batch size and concatenates the outputs.

There is deliberately no in-process fallback: a down server raises ``triton_unavailable`` and a missing or
unloaded model ``model_not_found``. Transient transport errors are retried at most ``max_retries`` times with
exponential backoff, and the count is reported.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from common.errors import ModelNotFound, TrendflowError, TritonUnavailable
from extraction.schemas import ModelUsed

_TRANSIENT = ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "Socket closed", "Connection reset",
              "failed to connect", "connection refused")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # Triton datatype, e.g. "FP32", "UINT8", "BYTES"
    dims: tuple[int, ...]  # per-item dims (without the batch axis); -1 = variable


@dataclass
class ModelHandle:
    """A loaded Triton model as the client sees it."""

    logical: str
    name: str
    version: str
    max_batch_size: int
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    parameters: dict[str, str]
    device: str

    @property
    def used(self) -> ModelUsed:
        p = self.parameters
        return ModelUsed(model_name=self.name, model_version=self.version,
                         weights_digest=p.get("weights_digest", "unknown"), runtime=p.get("runtime", "triton-python"),
                         engine=p.get("engine", "unknown"), precision=p.get("precision", "fp32"), device=self.device,
                         engine_build_hash=p.get("engine_build_hash", ""))


@dataclass
class InferStats:
    requests: int = 0
    retries: int = 0
    max_batch_sent: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, batch: int, retries: int, seconds: float) -> None:
        with self._lock:
            self.requests += 1
            self.retries += retries
            self.max_batch_sent = max(self.max_batch_sent, batch)
            self.seconds += seconds


class ModelProvider(Protocol):
    def get_model(self, name: str, version: str, logical: str = "") -> ModelHandle: ...

    def infer(self, handle: ModelHandle, inputs: dict[str, np.ndarray], batch_size: int,
              stats: InferStats | None = None) -> dict[str, np.ndarray]: ...


def _np_to_triton(arr: np.ndarray) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return np_to_triton_dtype(arr.dtype)


class TritonModelProvider:
    """gRPC client for the local (or any) Triton server."""

    def __init__(self, url: str, max_retries: int = 3, backoff_s: float = 0.2, timeout_s: float = 120.0) -> None:
        import tritonclient.grpc as grpcclient

        self._grpc = grpcclient
        self.url = url
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._handles: dict[tuple[str, str], ModelHandle] = {}

    @property
    def client(self):  # one client per thread: the gRPC stub is shared-safe but keep streams separate
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._grpc.InferenceServerClient(self.url)
            self._local.client = c
        return c

    def server_ready(self) -> bool:
        try:
            return bool(self.client.is_server_ready(client_timeout=5))
        except Exception:
            return False

    def get_model(self, name: str, version: str, logical: str = "") -> ModelHandle:
        key = (name, version)
        if key in self._handles:
            return self._handles[key]
        if not self.server_ready():
            raise TritonUnavailable(f"Triton at {self.url} is not reachable or not ready "
                                    "(start it with `python -m extraction triton start`)", url=self.url)
        try:
            ready = self.client.is_model_ready(name, version, client_timeout=5)
        except Exception as exc:
            raise TritonUnavailable(f"Triton at {self.url} failed while checking {name}:{version}: {exc}") from exc
        if not ready:
            raise ModelNotFound(f"model {name}:{version} is not loaded on Triton at {self.url}",
                                model=name, version=version)
        cfg = self.client.get_model_config(name, version, as_json=True)["config"]
        handle = ModelHandle(
            logical=logical or name,
            name=name,
            version=str(version),
            max_batch_size=int(cfg.get("max_batch_size", 0)),
            inputs={t["name"]: TensorSpec(t["name"], t["data_type"].removeprefix("TYPE_").replace("STRING", "BYTES"),
                                          tuple(int(d) for d in t["dims"])) for t in cfg["input"]},
            outputs={t["name"]: TensorSpec(t["name"], t["data_type"].removeprefix("TYPE_").replace("STRING", "BYTES"),
                                           tuple(int(d) for d in t["dims"])) for t in cfg["output"]},
            parameters={k: v.get("string_value", "") for k, v in cfg.get("parameters", {}).items()},
            device="gpu" if any(g.get("kind") == "KIND_GPU" for g in cfg.get("instance_group", [])) else "cpu",
        )
        self._handles[key] = handle
        return handle

    def _infer_once(self, handle: ModelHandle, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        grpc = self._grpc
        req = []
        for name, arr in inputs.items():
            dtype = "BYTES" if arr.dtype.kind in "OUS" else _np_to_triton(arr)
            t = grpc.InferInput(name, list(arr.shape), dtype)
            t.set_data_from_numpy(arr.astype(object) if dtype == "BYTES" else arr)
            req.append(t)
        outs = [grpc.InferRequestedOutput(n) for n in handle.outputs]
        res = self.client.infer(handle.name, req, model_version=handle.version, outputs=outs,
                                client_timeout=self.timeout_s)
        return {n: res.as_numpy(n) for n in handle.outputs}

    def infer(self, handle: ModelHandle, inputs: dict[str, np.ndarray], batch_size: int,
              stats: InferStats | None = None) -> dict[str, np.ndarray]:
        """Run ``inputs`` (each with a leading item axis of equal length) in requests of ``batch_size``."""
        from tritonclient.utils import InferenceServerException

        n = len(next(iter(inputs.values())))
        if handle.max_batch_size:
            batch_size = max(1, min(batch_size, handle.max_batch_size))
        chunks: dict[str, list[np.ndarray]] = {k: [] for k in handle.outputs}
        for start in range(0, n, batch_size):
            part = {k: np.ascontiguousarray(v[start:start + batch_size]) for k, v in inputs.items()}
            attempt = 0
            t0 = time.perf_counter()
            while True:
                try:
                    out = self._infer_once(handle, part)
                    break
                except InferenceServerException as exc:
                    msg = str(exc)
                    transient = any(s.lower() in msg.lower() for s in _TRANSIENT)
                    if not transient:
                        if "unknown model" in msg.lower() or "is not found" in msg.lower():
                            raise ModelNotFound(f"{handle.name}:{handle.version}: {msg}") from exc
                        raise TrendflowError(f"{handle.name}:{handle.version} rejected the request: {msg}",
                                             code="inference_failed") from exc
                    if attempt >= self.max_retries:
                        raise TritonUnavailable(
                            f"{handle.name}:{handle.version}: Triton unreachable after {attempt} retries: {msg}",
                            retry_count=attempt) from exc
                    attempt += 1
                    time.sleep(self.backoff_s * 2 ** (attempt - 1))
            if stats is not None:
                stats.add(len(part[next(iter(part))]), attempt, time.perf_counter() - t0)
            for k, v in out.items():
                chunks[k].append(v)
        return {k: np.concatenate(v, axis=0) if v else np.zeros((0, *handle.outputs[k].dims), np.float32)
                for k, v in chunks.items()}
