"""Triton adapter for ``visual_embed_quality_onnx``: FRAMES (B, 224, 224, 3) uint8 RGB -> EMBEDDING (B, 256) fp32.

The net of ``visual_embed_quality`` exported to ONNX and run by ONNX Runtime. ``initialize`` takes the graph from the
engine cache (exporting it when missing) and refuses one whose hash is not the config's ``engine_build_hash``;
see ``extraction/kernels/onnx_engine.py``.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from extraction.kernels.onnx_engine import open_engine
from extraction.kernels.onnx_visual import embed_frames, export_graph, row_block
from extraction.kernels.visual import PRESETS, check_frames

PRESET = "quality"


def _dims(tensor_config):
    return [int(d) for d in tensor_config["dims"]]


def _error(message, internal=False):
    # TritonError exists only once the stub runs the model, not when model.py is imported.
    code = pb_utils.TritonError.INTERNAL if internal else pb_utils.TritonError.INVALID_ARG
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.cfg = PRESETS[PRESET]
        frames_cfg = pb_utils.get_input_config_by_name(config, "FRAMES")
        emb_cfg = pb_utils.get_output_config_by_name(config, "EMBEDDING")
        size = self.cfg.input_size
        if _dims(frames_cfg) != [size, size, 3] or _dims(emb_cfg) != [self.cfg.embed_dim]:
            raise ValueError(f"config.pbtxt dims disagree with preset {self.cfg}")
        self.out_dtype = pb_utils.triton_string_to_numpy(emb_cfg["data_type"])
        params = {k: v["string_value"] for k, v in config["parameters"].items()}
        self.session = open_engine(args["model_name"], args["model_version"], params, lambda: export_graph(PRESET))
        self.row_block = row_block(self.session, size)  # padding that makes a frame's embedding batch-invariant

    def execute(self, requests):
        responses = [None] * len(requests)
        batch, owners = [], []
        for i, request in enumerate(requests):
            frames = pb_utils.get_input_tensor_by_name(request, "FRAMES").as_numpy()
            try:
                check_frames(frames, self.cfg)
            except ValueError as exc:
                responses[i] = _error(str(exc))
                continue
            batch.append(frames)
            owners.append(i)
        if not batch:
            return responses
        try:
            emb = embed_frames(self.session, np.concatenate(batch), self.row_block)  # (B_total, embed_dim)
        except Exception as exc:  # noqa: BLE001 - every request still gets its one response
            for i in owners:
                responses[i] = _error(f"visual embedding failed: {exc}", internal=True)
            return responses
        start = 0
        for i, frames in zip(owners, batch):
            out = emb[start : start + len(frames)].astype(self.out_dtype, copy=False)
            start += len(frames)
            responses[i] = pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("EMBEDDING", out)])
        return responses
