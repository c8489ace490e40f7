"""Engines: the torch models (``visual_embed_fast``, ``visual_embed_quality``, ``text_embed``) exported to ONNX and
run with ONNX Runtime, against torch, in this process, at batch 1/4/16/64.

    python -m benchmarks.engines [--repeats 5] [--threads 1]

Each net is built as its Triton ``model.py`` builds it (:mod:`extraction.kernels.visual` presets from their seeds;
all-MiniLM-L6-v2 from the bundled package), exported with ``torch.onnx.export`` (TorchScript exporter, opset 17,
dynamic batch), and run by an ``onnxruntime`` CPU session with the same thread count as torch. For text, the
tokenizer and the mean pooling + L2 normalisation stay in Python for both engines; only the transformer is
exported. Outputs are compared on the same inputs (max absolute difference over all batches; the embeddings are
L2-normalised, so 1e-4 is far below what any feature or model downstream can see). Timing: best of
``--repeats`` per batch size, wall ms per unit (frame or text), interleaved between engines. Last line:
``onnx_vs_torch_visual=<x> onnx_vs_torch_text=<x> max_abs_diff=<d>`` (ratios of torch time to ONNX Runtime time,
summed over the batch sizes; > 1 = ONNX Runtime faster).

Measured in-process, not through Triton: serving the ONNX graphs as model versions (``engine: onnxruntime-<ver>``,
an ``engine_build_hash`` in the model signature) is not built yet.
"""

from __future__ import annotations

import argparse
import io
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


def _session(onnx_bytes: bytes, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])


def visual_engines(preset: str, threads: int) -> tuple[Callable, Callable, int]:
    """(torch fn, onnxruntime fn, input size) of a visual preset; both take (B, S, S, 3) uint8 -> (B, D)."""
    import torch

    from extraction.kernels.visual import PRESETS, RandomFeatureNet, embed_frames

    net = RandomFeatureNet(PRESETS[preset]).eval()

    class Exportable(torch.nn.Module):  # the net's forward without inference_mode, which the exporter rejects
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return RandomFeatureNet.forward.__wrapped__(self.net, x)

    s = PRESETS[preset].input_size
    buf = io.BytesIO()
    torch.onnx.export(Exportable(), (torch.zeros((2, s, s, 3), dtype=torch.uint8),), buf, input_names=["FRAMES"],
                      output_names=["EMBEDDING"], dynamic_axes={"FRAMES": {0: "B"}, "EMBEDDING": {0: "B"}},
                      opset_version=17, dynamo=False)
    sess = _session(buf.getvalue(), threads)
    return (lambda x: embed_frames(net, x)), (lambda x: sess.run(None, {"FRAMES": x})[0]), s


def text_engines(threads: int) -> tuple[Callable, Callable]:
    """(torch fn, onnxruntime fn) of ``text_embed``: a list of strings -> (B, 384) L2-normalised."""
    import torch

    from extraction.kernels.text import embed_texts, load_model

    st = load_model()
    bert, tok = st[0].auto_model.eval(), st.tokenizer
    max_len = int(st.max_seq_length)

    class Exportable(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    enc = tok(["an example", "another example title"], padding=True, truncation=True, max_length=max_len,
              return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    buf = io.BytesIO()
    torch.onnx.export(Exportable(), tuple(enc[n] for n in names), buf, input_names=names, output_names=["HIDDEN"],
                      dynamic_axes={**{n: {0: "B", 1: "T"} for n in names}, "HIDDEN": {0: "B", 1: "T"}},
                      opset_version=17, dynamo=False)
    sess = _session(buf.getvalue(), threads)

    def ort_embed(texts: list[str]) -> np.ndarray:
        e = tok(texts, padding=True, truncation=True, max_length=max_len, return_tensors="np")
        hidden = sess.run(None, {n: e[n].astype(np.int64) for n in names})[0]  # (B, T, 384)
        mask = e["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    return (lambda t: embed_texts(st, t)), ort_embed


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.engines", description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads of both engines (a stub: 1 instance)")
    args = ap.parse_args(argv)
    import onnxruntime as ort
    import torch

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__} vs onnxruntime {ort.__version__}, {args.threads} thread(s), best of "
          f"{args.repeats}; ms per unit")
    print(f"{'model':<22}{'batch':>6}{'torch':>12}{'onnxrt':>12}{'x':>9}")
    ratios, diffs = {}, []
    for preset in ("fast", "quality"):
        t_fn, o_fn, s = visual_engines(preset, args.threads)
        res, d = compare(f"visual_embed_{preset}", t_fn, o_fn,
                         lambda b, s=s: rng.integers(0, 256, (b, s, s, 3), dtype=np.uint8), args.repeats)
        ratios[preset], diffs = res, [*diffs, d]
    words = "cooking travel cats review budget hack morning routine best worst ever shorts".split()
    t_fn, o_fn = text_engines(args.threads)
    res, d = compare("text_embed", t_fn, o_fn,
                     lambda b: [" ".join(rng.choice(words, int(rng.integers(3, 14)))) for _ in range(b)],
                     args.repeats)
    ratios["text"], diffs = res, [*diffs, d]

    def ratio(*keys: str) -> float:
        return sum(ratios[k][b][0] for k in keys for b in BATCHES) / sum(ratios[k][b][1] for k in keys for b in BATCHES)

    worst = max(diffs)
    print(f"outputs agree within {TOLERANCE:g}: {'yes' if worst <= TOLERANCE else 'NO'} (max abs diff {worst:.2e})")
    print(f"onnx_vs_torch_visual={ratio('fast', 'quality'):.2f} onnx_vs_torch_text={ratio('text'):.2f} "
          f"max_abs_diff={worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
