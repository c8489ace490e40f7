"""Triton adapter for ``text_embed``: TEXT (B, 1) string -> EMBEDDING (B, 384) fp32, all-MiniLM-L6-v2.

The SentenceTransformer is loaded once in ``initialize`` (importing sentence_transformers takes seconds);
see ``extraction/kernels/text.py``.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from extraction.kernels.text import decode_texts, embed_texts, load_model


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
        self.out_dtype = pb_utils.triton_string_to_numpy(emb_cfg["data_type"])
        device = "cpu"
        if args.get("model_instance_kind") == "GPU":
            device = f"cuda:{args['model_instance_device_id']}"
        self.model = load_model(device=device)
        width = self.model.get_sentence_embedding_dimension()
        if _dims(emb_cfg) != [width]:
            raise ValueError(f"config.pbtxt EMBEDDING dims {emb_cfg['dims']} != model width {width}")

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
            emb = embed_texts(self.model, texts)  # (B_total, 384), one text per forward pass
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
