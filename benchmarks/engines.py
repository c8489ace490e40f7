"""Engines: the torch models (``visual_embed_fast``, ``visual_embed_quality``, ``text_embed``) exported to ONNX and
run with ONNX Runtime, against torch, in this process or through Triton, at batch 1/4/16/64.

    python -m benchmarks.engines [--repeats 5] [--threads 1]
    python -m benchmarks.engines --triton [--triton-url HOST:PORT] [--repeats 5]

Each net is built as its Triton ``model.py`` builds it (:mod:`extraction.kernels.visual` presets from their seeds;
all-MiniLM-L6-v2 from the bundled package), exported by the export functions the ``*_onnx`` Triton models use
(:mod:`extraction.kernels.onnx_visual`, :mod:`extraction.kernels.onnx_text`: TorchScript exporter, opset 17, dynamic
batch), and run by an ``onnxruntime`` CPU session with the same thread count as torch. For text, the tokenizer and
the mean pooling + L2 normalisation stay in Python for both engines; only the transformer is exported, and both
engines encode one text per forward pass, as served. Outputs are compared on the same inputs (max absolute
difference over all batches; the embeddings are L2-normalised, so 1e-4 is far below what any feature or model
downstream can see). Timing: best of ``--repeats`` per batch size, wall ms per unit (frame or text), interleaved
between engines. Last line:
``onnx_vs_torch_visual=<x> onnx_vs_torch_text=<x> max_abs_diff=<d>`` (ratios of torch time to ONNX Runtime time,
summed over the batch sizes; > 1 = ONNX Runtime faster) and ``via=process|triton``.

``--triton``: the same through the running Triton (the server ``python -m extraction triton start`` recorded, or
``--triton-url``), each torch model against its ``*_onnx`` model, the client round trip per batch (requests of at
most the model's ``max_batch_size``; one instance each, ``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

BATCHES = (1, 4, 16, 64)
TOLERANCE = 1e-4


def _best_ms_per_unit(fn: Callable[[], Any], units: int, repeats: int) -> float:
    fn()  # warm-up (graph optimisation, allocator)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best / units * 1000


def visual_engines(preset: str, threads: int) -> tuple[Callable, Callable, int]:
    """(torch fn, onnxruntime fn, input size) of a visual preset; both take (B, S, S, 3) uint8 -> (B, D)."""
    from extraction.kernels import onnx_visual
    from extraction.kernels.onnx_engine import make_session
    from extraction.kernels.visual import PRESETS, RandomFeatureNet, embed_frames

    net = RandomFeatureNet(PRESETS[preset]).eval()
    sess = make_session(onnx_visual.export_graph(preset), threads)  # the graph the *_onnx Triton model serves
    return (lambda x: embed_frames(net, x)), (lambda x: onnx_visual.embed_frames(sess, x)), PRESETS[preset].input_size


def text_engines(threads: int) -> tuple[Callable, Callable]:
    """(torch fn, onnxruntime fn) of ``text_embed``: a list of strings -> (B, 384) L2-normalised, one text per
    forward pass in both (as served)."""
    from extraction.kernels import onnx_text
    from extraction.kernels.onnx_engine import make_session
    from extraction.kernels.text import embed_texts, load_model

    st = load_model()
    sess = make_session(onnx_text.export_graph(), threads)
    tok, max_len = onnx_text.load_tokenizer(), onnx_text.max_seq_length()
    return (lambda t: embed_texts(st, t)), (lambda t: onnx_text.embed_texts(sess, tok, t, max_len))


def triton_engines(url: str, torch_model: str) -> tuple[Callable, Callable]:
    """(torch model fn, ``<torch_model>_onnx`` fn) through the Triton at ``url``: inputs -> EMBEDDING, sent in
    requests of at most the model's ``max_batch_size`` (visual_embed_quality: 32)."""
    from extraction.provider import TritonModelProvider

    provider = TritonModelProvider(url)
    name = "TEXT" if torch_model == "text_embed" else "FRAMES"

    def through(model: str) -> Callable:
        handle = provider.get_model(model, "1")

        def fn(x: Any) -> np.ndarray:
            arr = np.array([[s.encode()] for s in x], dtype=object) if name == "TEXT" else x
            return provider.infer(handle, {name: arr}, min(len(arr), handle.max_batch_size))["EMBEDDING"]
        return fn

    return through(torch_model), through(f"{torch_model}_onnx")


def compare(name: str, torch_fn: Callable, ort_fn: Callable, make: Callable[[int], Any], repeats: int
            ) -> tuple[dict[int, tuple[float, float]], float]:
    """batch -> (torch ms/unit, onnxruntime ms/unit), and the max abs output difference."""
    out, diff = {}, 0.0
    for b in BATCHES:
        x = make(b)
        diff = max(diff, float(np.abs(np.asarray(torch_fn(x)) - np.asarray(ort_fn(x))).max()))
        t = _best_ms_per_unit(lambda x=x: torch_fn(x), b, repeats)
        o = _best_ms_per_unit(lambda x=x: ort_fn(x), b, repeats)
        out[b] = (t, o)
        print(f"{name:<22}{b:>6}{t:>12.3f}{o:>12.3f}{t / o:>9.2f}", flush=True)
    return out, diff


def _engines(args: argparse.Namespace, url: str | None) -> list[tuple[str, Callable, Callable, Callable]]:
    """(model, torch fn, onnxruntime fn, batch -> inputs) for the three models, in process or through Triton."""
    rng = np.random.default_rng(0)
    words = "cooking travel cats review budget hack morning routine best worst ever shorts".split()
    out = []
    for preset, s in (("fast", 112), ("quality", 224)):
        model = f"visual_embed_{preset}"
        t_fn, o_fn = triton_engines(url, model) if url else visual_engines(preset, args.threads)[:2]
        out.append((model, t_fn, o_fn, lambda b, s=s: rng.integers(0, 256, (b, s, s, 3), dtype=np.uint8)))
    t_fn, o_fn = triton_engines(url, "text_embed") if url else text_engines(args.threads)
    out.append(("text_embed", t_fn, o_fn,
                lambda b: [" ".join(rng.choice(words, int(rng.integers(3, 14)))) for _ in range(b)]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.engines", description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads of both engines (a stub: 1 instance)")
    ap.add_argument("--triton", action="store_true",
                    help="through the running Triton: each torch model against its *_onnx model (client round trip)")
    ap.add_argument("--triton-url", default=None, help="gRPC host:port (default: the server `triton start` recorded)")
    args = ap.parse_args(argv)
    import onnxruntime as ort
    import torch

    url = None
    if args.triton or args.triton_url:
        from extraction import triton_server

        state = triton_server.read_state()
        url = args.triton_url or (state.grpc_url if state else None)
        if url is None:
            print("no Triton recorded as running: `python -m extraction triton start` or --triton-url", file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    where = (f"through Triton at {url} (torch model vs its *_onnx model)" if url
             else f"in process, {args.threads} thread(s)")
    print(f"torch {torch.__version__} vs onnxruntime {ort.__version__}, {where}, best of {args.repeats}; ms per unit")
    print(f"{'model':<22}{'batch':>6}{'torch':>12}{'onnxrt':>12}{'x':>9}")
    ratios, diffs = {}, []
    for model, t_fn, o_fn, make in _engines(args, url):
        ratios[model], d = compare(model, t_fn, o_fn, make, args.repeats)
        diffs.append(d)

    def ratio(*keys: str) -> float:
        return sum(ratios[k][b][0] for k in keys for b in BATCHES) / sum(ratios[k][b][1] for k in keys for b in BATCHES)

    worst = max(diffs)
    print(f"outputs agree within {TOLERANCE:g}: {'yes' if worst <= TOLERANCE else 'NO'} (max abs diff {worst:.2e})")
    print(f"onnx_vs_torch_visual={ratio('visual_embed_fast', 'visual_embed_quality'):.2f} "
          f"onnx_vs_torch_text={ratio('text_embed'):.2f} max_abs_diff={worst:.2e}"
          + (" via=triton" if url else " via=process"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
