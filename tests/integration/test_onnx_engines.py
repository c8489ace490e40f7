"""The ``*_onnx`` models against their torch models, through the real Triton of the session fixture (gRPC).

Protects: ONNX Runtime's outputs agree with torch's within :data:`TOLERANCE` on the same inputs at batch 1 and
> 1 (what makes the engines interchangeable for a profile); the ONNX variant has its own model signature (so the
cache keeps the engines' artifacts apart); a model whose graph does not hash to its config's
``engine_build_hash`` is refused at load; the export behind the committed hashes is byte-deterministic.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from extraction.components.base import model_signature
from extraction.kernels.onnx_engine import engine_path, engine_root, graph_hash
from extraction.model_repo import check_builds, read_committed_build_hash
from extraction.provider import TritonModelProvider

from .test_triton_models import example_inputs, face_image, infer, model_config

pytestmark = pytest.mark.triton
REPO = Path(__file__).resolve().parents[2]
# L2-normalised embeddings: 1e-4 is far below what any feature or model downstream can see (measured: ~1e-6).
TOLERANCE = 1e-4
PAIRS = [("visual_embed_fast", "visual_embed_fast_onnx"), ("visual_embed_quality", "visual_embed_quality_onnx"),
         ("text_embed", "text_embed_onnx")]


@pytest.fixture(scope="module")
def client(triton_server) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(triton_server.grpc_url)


def _params(client, model: str) -> dict[str, str]:
    return {k: v["string_value"] for k, v in model_config(client, model)["parameters"].items()}


def _texts() -> np.ndarray:
    texts = ["A cat is sleeping on the sofa.", "", "Ünïcödé émojis 🚀 — ok",
             " ".join(["a much longer title about cooking travel and music"] * 40)]  # > 256 tokens: truncated
    return np.array([[t.encode()] for t in texts], dtype=object)


def _frames(size: int) -> np.ndarray:
    """A photo, a flat frame (texture ~0: the soft normalisation's edge) and random noise."""
    import cv2

    face = cv2.resize(face_image(), (size, size), interpolation=cv2.INTER_AREA)
    flat = np.full((size, size, 3), 128, np.uint8)
    noise = np.random.default_rng(size).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    return np.concatenate([np.stack([face, flat]), noise])


@pytest.mark.parametrize("torch_model,onnx_model", PAIRS)
def test_onnx_outputs_agree_with_torch(client, torch_model, onnx_model):
    if torch_model == "text_embed":
        inputs = {"TEXT": _texts()}
    else:
        size = int(model_config(client, torch_model)["input"][0]["dims"][0])
        inputs = {"FRAMES": _frames(size)}
    for batch in (1, len(next(iter(inputs.values())))):
        part = {k: v[:batch] for k, v in inputs.items()}
        want = infer(client, torch_model, **part)["EMBEDDING"]
        got = infer(client, onnx_model, **part)["EMBEDDING"]
        assert got.shape == want.shape and got.dtype == want.dtype == np.float32
        diff = float(np.abs(got - want).max())
        assert diff <= TOLERANCE, f"{onnx_model} vs {torch_model} at batch {batch}: max abs diff {diff:.2e}"
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_onnx_text_embedding_is_a_function_of_the_text_alone(client):
    batch = _texts()
    a = infer(client, "text_embed_onnx", TEXT=batch)["EMBEDDING"]
    for i in range(len(batch)):
        np.testing.assert_array_equal(a[i:i + 1], infer(client, "text_embed_onnx", TEXT=batch[i:i + 1])["EMBEDDING"])


@pytest.mark.parametrize("torch_model,onnx_model", PAIRS)
def test_onnx_variant_declares_its_engine_and_has_its_own_signature(client, triton_server, torch_model, onnx_model):
    provider = TritonModelProvider(triton_server.grpc_url)
    t_used = provider.get_model(torch_model, "1").used
    o_used = provider.get_model(onnx_model, "1").used
    committed = read_committed_build_hash(REPO / "model_repository" / onnx_model / "config.pbtxt")
    assert o_used.engine == "onnxruntime-1.20.1" and o_used.engine_build_hash == committed
    assert committed and committed.startswith("sha256:") and len(committed) == 7 + 64
    assert t_used.engine_build_hash == "" and not t_used.engine.startswith("onnxruntime")
    assert model_signature([o_used]) != model_signature([t_used])
    # the build hash alone moves the signature: a rebuilt graph is a new cache key
    rebuilt = o_used.model_copy(update={"engine_build_hash": "sha256:" + "0" * 64})
    assert model_signature([rebuilt]) != model_signature([o_used])
    # the served graph is cached under its hash, where the retention GC's `engines` folder cache looks
    cached = engine_path(engine_root(), onnx_model, "1", committed)
    assert cached.is_file() and graph_hash(cached.read_bytes()) == committed


def test_initialize_refuses_a_graph_that_does_not_match_engine_build_hash(client):
    model = "visual_embed_fast_onnx"
    cfg = model_config(client, model)
    wrong = "sha256:" + "ab" * 32
    cfg["parameters"]["engine_build_hash"] = {"string_value": wrong}
    with pytest.raises(InferenceServerException, match="engine_build_hash"):
        client.load_model(model, config=json.dumps(cfg))
    # nothing cached under the wrong name, and the repository's config loads and serves again
    assert not engine_path(engine_root(), model, "1", wrong).exists()
    client.load_model(model)
    assert client.is_model_ready(model)
    assert infer(client, model, **example_inputs("visual_embed_fast", 1))["EMBEDDING"].shape == (1, 128)


def test_initialize_refuses_another_onnxruntime(client):
    model = "visual_embed_quality_onnx"
    cfg = model_config(client, model)
    cfg["parameters"]["engine"] = {"string_value": "onnxruntime-0.0.1"}
    with pytest.raises(InferenceServerException, match="onnxruntime-0.0.1"):
        client.load_model(model, config=json.dumps(cfg))
    client.load_model(model)
    assert client.is_model_ready(model)


def test_committed_engine_build_hashes_match_a_fresh_export():
    stale = [f"{s.model}: committed {s.committed}, export gives {s.computed}" for s in check_builds() if not s.ok]
    assert not stale, "run `python -m extraction.model_repo sync`:\n" + "\n".join(stale)
    assert {s.model for s in check_builds(build=lambda m: b"")} == {m for _, m in PAIRS}


def test_export_is_byte_deterministic_across_processes(tmp_path):
    code = ("import sys; from extraction.kernels.onnx_visual import export_graph; "
            "open(sys.argv[1], 'wb').write(export_graph('fast'))")
    outs = []
    for i, threads in enumerate(("1", "2")):
        out = tmp_path / f"{i}.onnx"
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": threads,
               "PYTHONHASHSEED": str(i)}
        subprocess.run([sys.executable, "-c", code, str(out)], check=True, cwd=REPO, env=env, capture_output=True)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and len(outs[0]) > 10_000
