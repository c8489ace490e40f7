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


def embed_frames(session: Any, frames: np.ndarray) -> np.ndarray:
    """``(B, S, S, 3)`` uint8 -> ``(B, D)`` float32 L2-normalised, through an ONNX Runtime session of
    :func:`export_graph` (callers check the shape with :func:`extraction.kernels.visual.check_frames`)."""
    return np.asarray(session.run(None, {"FRAMES": np.ascontiguousarray(frames)})[0], dtype=np.float32)
