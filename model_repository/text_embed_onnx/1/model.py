"""Triton adapter for ``text_embed_onnx``: TEXT (B, 1) string -> EMBEDDING (B, 384) fp32, all-MiniLM-L6-v2.

The BERT transformer of ``text_embed`` exported to ONNX and run by ONNX Runtime; tokenisation and pooling in
``extraction/kernels/onnx_text.py``. ``initialize`` takes the graph from the engine cache (exporting it when
missing) and refuses one whose hash is not the config's ``engine_build_hash``.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from extraction.kernels.onnx_engine import open_engine
from extraction.kernels.onnx_text import embed_texts, export_graph, load_tokenizer, max_seq_length
from extraction.kernels.text import EMBED_DIM, decode_texts


def _dims(tensor_config):
    return [int(d) for d in tensor_config["dims"]]


def _error(message, internal=False):
    # TritonError exists only once the stub runs the model, not when model.py is imported.
    code = pb_utils.TritonError.INTERNAL if internal else pb_utils.TritonError.INVALID_ARG
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        emb_cfg = pb_utils.get_output_config_by_name(config, "EMBEDDING")
        if _dims(emb_cfg) != [EMBED_DIM]:
            raise ValueError(f"config.pbtxt EMBEDDING dims {emb_cfg['dims']} != model width {EMBED_DIM}")
        self.out_dtype = pb_utils.triton_string_to_numpy(emb_cfg["data_type"])
        params = {k: v["string_value"] for k, v in config["parameters"].items()}
        self.session = open_engine(args["model_name"], args["model_version"], params, export_graph)
        self.tokenizer = load_tokenizer()
        self.max_length = max_seq_length()

    def execute(self, requests):
        responses = [None] * len(requests)
        texts, owners, counts = [], [], []
        for i, request in enumerate(requests):
            raw = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy()
            try:
                batch = decode_texts(raw)
            except ValueError as exc:
                responses[i] = _error(str(exc))
                continue
            texts.extend(batch)
            owners.append(i)
            counts.append(len(batch))
        if not owners:
            return responses
        try:
            emb = embed_texts(self.session, self.tokenizer, texts, self.max_length)  # (B_total, 384), one per run
        except Exception as exc:  # noqa: BLE001 - every request still gets its one response
            for i in owners:
                responses[i] = _error(f"text embedding failed: {exc}", internal=True)
            return responses
        start = 0
        for i, n in zip(owners, counts):
            out = np.ascontiguousarray(emb[start : start + n], dtype=self.out_dtype)
            start += n
            responses[i] = pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("EMBEDDING", out)])
        return responses
