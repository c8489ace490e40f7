"""``text_embed_onnx``: all-MiniLM-L6-v2's BERT transformer exported to ONNX and run by ONNX Runtime.

Only the transformer is exported (``input_ids``, ``attention_mask``, ``token_type_ids`` -> ``HIDDEN``
(B, T, 384)); tokenisation (the package's fast tokenizer, truncated at the model's ``max_seq_length``) and the
mean pooling + L2 normalisation of sentence-transformers stay here in numpy. As in
:func:`extraction.kernels.text.embed_texts`, each text runs on its own so its embedding is a function of the text
alone, whatever the dynamic batcher merged it with.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from extraction.kernels.onnx_engine import GraphSpec, export_module
from extraction.kernels.text import EMBED_DIM, model_dir

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def max_seq_length() -> int:
    """The truncation length sentence-transformers uses (``sentence_bert_config.json``; 256 for MiniLM)."""
    return int(json.loads((model_dir() / "sentence_bert_config.json").read_text())["max_seq_length"])


def export_graph() -> bytes:
    """ONNX bytes of the BERT transformer of ``text_embed`` (dynamic batch and sequence axes)."""
    import torch  # noqa: PLC0415 - only builds need torch

    from extraction.kernels.text import load_model  # noqa: PLC0415

    st = load_model()
    bert, tok = st[0].auto_model.eval(), st.tokenizer

    class Exportable(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    enc = tok(["an example", "another example title"], padding=True, truncation=True,
              max_length=int(st.max_seq_length), return_tensors="pt")
    axes = {**{n: {0: "B", 1: "T"} for n in INPUT_NAMES}, "HIDDEN": {0: "B", 1: "T"}}
    spec = GraphSpec(example=tuple(enc[n] for n in INPUT_NAMES), input_names=INPUT_NAMES,
                     output_names=("HIDDEN",), dynamic_axes=axes)
    with torch.no_grad():
        return export_module(Exportable().eval(), spec)


def load_tokenizer() -> Any:
    """The bundled fast tokenizer (the one sentence-transformers loads), without loading the torch model."""
    from transformers import AutoTokenizer  # noqa: PLC0415 - seconds to import

    return AutoTokenizer.from_pretrained(str(model_dir()))


def _pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the unmasked tokens, then L2-normalised (sentence-transformers' Pooling + Normalize)."""
    m = mask[..., None].astype(np.float32)
    pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def embed_texts(session: Any, tokenizer: Any, texts: list[str], max_length: int) -> np.ndarray:
    """``(B, 384)`` float32 L2-normalised embeddings, one session run per text; ``""`` is valid."""
    out = np.zeros((len(texts), EMBED_DIM), np.float32)
    for i, text in enumerate(texts):
        enc = tokenizer([text], truncation=True, max_length=max_length, return_tensors="np")
        feeds = {n: np.asarray(enc[n], dtype=np.int64) for n in INPUT_NAMES}
        hidden = session.run(None, feeds)[0]  # (1, T, 384)
        out[i] = _pool(np.asarray(hidden, np.float32), feeds["attention_mask"])[0]
    return out
