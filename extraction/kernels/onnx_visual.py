"""``visual_embed_fast_onnx`` / ``visual_embed_quality_onnx``: the random-feature nets of
:mod:`extraction.kernels.visual`, exported whole (uint8 frames in, L2-normalised embedding out) and run by
ONNX Runtime.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from extraction.kernels.onnx_engine import GraphSpec, export_module


def export_graph(preset: str) -> bytes:
    """ONNX bytes of the ``preset`` net: ``FRAMES`` (B, S, S, 3) uint8 -> ``EMBEDDING`` (B, D) fp32."""
    import torch  # noqa: PLC0415 - only builds need torch

    from extraction.kernels.visual import PRESETS, RandomFeatureNet  # noqa: PLC0415

    net = RandomFeatureNet(PRESETS[preset]).eval()

    class Exportable(torch.nn.Module):  # the net's forward without inference_mode, which the exporter rejects
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return RandomFeatureNet.forward.__wrapped__(self.net, x)

    s = PRESETS[preset].input_size
    spec = GraphSpec(example=(torch.zeros((2, s, s, 3), dtype=torch.uint8),), input_names=("FRAMES",),
                     output_names=("EMBEDDING",), dynamic_axes={"FRAMES": {0: "B"}, "EMBEDDING": {0: "B"}})
    return export_module(Exportable().eval(), spec)


def embed_frames(session: Any, frames: np.ndarray, row_block: int = 1) -> np.ndarray:
    """``(B, S, S, 3)`` uint8 -> ``(B, D)`` float32 L2-normalised, through an ONNX Runtime session of
    :func:`export_graph` (callers check the shape with :func:`extraction.kernels.visual.check_frames`).

    The batch is padded with black frames to a multiple of ``row_block`` (see :func:`row_block`), so that each
    frame's embedding does not depend on how many frames share its request."""
    n = len(frames)
    pad = -n % max(1, row_block)
    x = np.ascontiguousarray(frames)
    if pad:
        x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
    return np.asarray(session.run(None, {"FRAMES": x})[0][:n], dtype=np.float32)


ROW_BLOCKS = (1, 2, 4, 8, 16)


def row_block(session: Any, input_size: int, seed: int = 0) -> int:
    """The smallest batch multiple at which this CPU's ONNX Runtime gives a frame the same embedding whatever its
    batch partners; the largest of :data:`ROW_BLOCKS` when none does.

    Why: MLAS computes GEMM rows in blocks and the rows left over after the last full block take another kernel,
    whose float sums differ in the last bit (measured on AMD EPYC: batches of 1, 2, 3, 7 moved embeddings by up to
    1.2e-7 against the same frames in a batch of 37; multiples of 4 agreed exactly). Torch's kernels are batch
    invariant, and artifacts must not depend on the batch sizes a plan picks (the local executor and a cluster of any shape write
    identical artifacts), so the block is measured here on the machine that serves, not assumed."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (13, input_size, input_size, 3), dtype=np.uint8)
    for block in ROW_BLOCKS:
        whole = embed_frames(session, frames, block)
        if all(np.array_equal(np.concatenate([embed_frames(session, frames[i : i + size], block)
                                              for i in range(0, len(frames), size)]), whole)
               for size in (1, 3, 5)):
            return block
    return ROW_BLOCKS[-1]
