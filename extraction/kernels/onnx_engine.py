"""ONNX export and ONNX Runtime sessions shared by the ``*_onnx`` Triton models and ``benchmarks.engines``.

One export function (:func:`export_module`: TorchScript exporter, opset :data:`OPSET`, dynamic batch axes) builds
every graph, so the benchmark measures exactly what Triton serves. A built graph is identified by its
``engine_build_hash``: ``sha256:<hex>`` of the exported ``.onnx`` bytes (:func:`graph_hash`). The exporter is
byte-deterministic for these nets (same bytes from fresh processes, checked by
``tests/integration/test_onnx_engines.py``), so the bytes themselves are the identity; they embed the producer
(torch) version, so a torch upgrade is a new build.

Built graphs live outside the repository (MiniLM's is ~90 MB) under
``<engine root>/<triton model>/<version>/<hex>.onnx`` (:func:`engine_path`; the retention GC's ``engines`` folder
cache). Named by their hash, a graph built by older code never shadows the one the config asks for.

torch is imported only by the export functions; nothing here has side effects at import.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.fsio import atomic_write_bytes
from common.paths import STATE_DIR

OPSET = 17
ENGINE_PREFIX = "onnxruntime-"
ENGINE_ROOT_ENV = "TRENDFLOW_ENGINE_DIR"  # another cache root (a shared disk); default .trendflow/engines
DEFAULT_ENGINE_ROOT = STATE_DIR / "engines"


class EngineMismatch(RuntimeError):
    """The graph built here is not the one the model config declares (``engine_build_hash``/``engine``)."""


@dataclass(frozen=True)
class GraphSpec:
    """What :func:`export_module` needs besides the module: example inputs and tensor names.

    Attributes:
        example: positional example inputs (torch tensors) traced by the exporter.
        input_names: graph input names, in the order of ``example``.
        output_names: graph output names.
        dynamic_axes: per tensor name, axis index -> symbolic name (the batch axis at least).
    """

    example: tuple[Any, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]


def _pivot(g: Any, x: Any, args: tuple[Any, ...]) -> tuple[Any, list[int]] | None:
    """(first element of ``x`` along the reduced dims ``args[0]``, kept as size-1 axes; those dims), or None
    when the dims are not constants (a reduction over everything keeps the exporter's default)."""
    import torch  # noqa: PLC0415
    from torch.onnx import symbolic_helper  # noqa: PLC0415

    dims = symbolic_helper._maybe_get_const(args[0], "is") if args else None
    if not isinstance(dims, list | tuple) or not dims:
        return None
    n = len(dims)
    pivot = g.op("Slice", x, g.op("Constant", value_t=torch.zeros(n, dtype=torch.long)),
                 g.op("Constant", value_t=torch.ones(n, dtype=torch.long)),
                 g.op("Constant", value_t=torch.tensor(list(dims), dtype=torch.long)))
    return pivot, [int(d) for d in dims]


def _std_symbolic(g: Any, x: Any, *args: Any) -> Any:
    from torch.onnx import symbolic_opset9  # noqa: PLC0415

    p = _pivot(g, x, args)
    return symbolic_opset9.std(g, x if p is None else g.op("Sub", x, p[0]), *args)


def _var_symbolic(g: Any, x: Any, *args: Any) -> Any:
    from torch.onnx import symbolic_opset9  # noqa: PLC0415

    p = _pivot(g, x, args)
    return symbolic_opset9.var(g, x if p is None else g.op("Sub", x, p[0]), *args)


def _mean_symbolic(g: Any, x: Any, *args: Any) -> Any:
    import torch  # noqa: PLC0415
    from torch.onnx import symbolic_helper  # noqa: PLC0415

    default = symbolic_helper._reduce_with_dtype_helper("ReduceMean", "mean")
    p = _pivot(g, x, args) if len(args) == 3 else None  # mean(x, dim, keepdim, dtype)
    if p is None:
        return default(g, x, *args)
    pivot, dims = p
    mean = default(g, g.op("Sub", x, pivot), *args)
    if not symbolic_helper._maybe_get_const(args[1], "i"):
        pivot = g.op("Squeeze", pivot, g.op("Constant", value_t=torch.tensor(dims, dtype=torch.long)))
    return g.op("Add", mean, pivot)


_SYMBOLICS = {"aten::std": _std_symbolic, "aten::var": _var_symbolic, "aten::mean": _mean_symbolic}


@contextmanager
def _shifted_reductions() -> Iterator[None]:
    """Export ``mean``/``std``/``var`` over given dims as ``x[first] + mean(x - x[first])`` and the variance of
    ``x - x[first]`` (equal in exact arithmetic).

    ONNX Runtime's ReduceMean sums in float32 one element after another: the mean of a flat 112x112 plane is off by
    ~1e-6 and ``sqrt`` turns the residue of its variance into a std of ~1e-3 where torch (pairwise sums) gives
    exactly 0. A flat mid-grey frame, whose statistics are all near 0 before the L2 normalisation, moved by 2e-3.
    Shifted by one of its own elements a flat plane is exactly 0, and the rounding of any other is that of its
    spread, not of its level. Registered for the export only.
    """
    import torch  # noqa: PLC0415

    for name, fn in _SYMBOLICS.items():
        torch.onnx.register_custom_op_symbolic(name, fn, OPSET)
    try:
        yield
    finally:
        for name in _SYMBOLICS:
            torch.onnx.unregister_custom_op_symbolic(name, OPSET)


def export_module(module: Any, spec: GraphSpec) -> bytes:
    """The ONNX bytes of ``module`` (a ``torch.nn.Module`` in eval mode) traced on ``spec.example``."""
    import torch  # noqa: PLC0415 - only builds need torch

    buf = io.BytesIO()
    # dynamo=False: the TorchScript exporter (the one measured byte-deterministic here).
    with _shifted_reductions():
        torch.onnx.export(module, spec.example, buf, input_names=list(spec.input_names),
                          output_names=list(spec.output_names), dynamic_axes=spec.dynamic_axes,
                          opset_version=OPSET, dynamo=False)
    return buf.getvalue()


def graph_hash(onnx_bytes: bytes) -> str:
    """``engine_build_hash`` of a built graph: ``sha256:<hex>`` of its bytes."""
    return f"sha256:{hashlib.sha256(onnx_bytes).hexdigest()}"


def engine_root() -> Path:
    """Root of the built-engine cache: ``$TRENDFLOW_ENGINE_DIR`` or ``.trendflow/engines``."""
    env = os.environ.get(ENGINE_ROOT_ENV)
    return Path(env) if env else DEFAULT_ENGINE_ROOT


def engine_path(root: Path, triton_model: str, version: str, build_hash: str) -> Path:
    """Where the graph of ``build_hash`` for ``<triton_model>/<version>`` is cached."""
    return Path(root) / triton_model / str(version) / f"{build_hash.removeprefix('sha256:')}.onnx"


def ensure_graph(path: Path, expected_hash: str, build: Callable[[], bytes]) -> bytes:
    """The graph of ``expected_hash``: read from ``path`` if cached, else built, checked and written atomically.

    Raises:
        EngineMismatch: the built (or cached) bytes hash to something else than ``expected_hash``; nothing is
            written then, so a wrong graph is never served nor cached.
    """
    path = Path(path)
    if path.is_file():
        data = path.read_bytes()
        origin = f"cached {path}"
    else:
        data, origin = build(), "graph exported now"
    got = graph_hash(data)
    if got != expected_hash:
        raise EngineMismatch(
            f"{origin} hashes to {got}, config.pbtxt declares engine_build_hash {expected_hash}: the code, weights "
            "or exporter changed since `python -m extraction.model_repo sync` (run it and commit the config), or "
            f"the cache file is corrupt (delete {path})")
    if not path.is_file():
        atomic_write_bytes(path, data)
    return data


def check_runtime(engine: str) -> None:
    """Refuse to serve under an ``engine`` parameter that names another onnxruntime than the installed one.

    Raises:
        EngineMismatch: ``engine`` is not ``onnxruntime-<installed version>``.
    """
    import onnxruntime as ort  # noqa: PLC0415

    want = f"{ENGINE_PREFIX}{ort.__version__}"
    if engine != want:
        raise EngineMismatch(f"config.pbtxt engine {engine!r} but the stub's Python has {want}")


def make_session(onnx_bytes: bytes, threads: int = 1) -> Any:
    """A CPU ``onnxruntime.InferenceSession`` with ``threads`` intra-op threads (one Triton instance = one core
    here, as ``OMP_NUM_THREADS=1`` makes torch)."""
    import onnxruntime as ort  # noqa: PLC0415

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])


def open_engine(triton_model: str, version: str, params: dict[str, str], build: Callable[[], bytes],
                threads: int = 1) -> Any:
    """The session a ``*_onnx`` model's ``initialize`` serves: runtime checked against ``params["engine"]``, graph
    from the cache (or built now) and checked against ``params["engine_build_hash"]``.

    Raises:
        EngineMismatch: another onnxruntime, or a graph whose hash is not the declared one.
        KeyError: the config lacks ``engine`` or ``engine_build_hash``.
    """
    check_runtime(params["engine"])
    expected = params["engine_build_hash"]
    graph = ensure_graph(engine_path(engine_root(), triton_model, version, expected), expected, build)
    return make_session(graph, threads)
