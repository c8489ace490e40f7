"""Every model of ``model_repository/`` against the real Triton of the session fixture (gRPC).

Protects: the tensor contracts the clients read from the server config (names, dims, max_batch_size,
provenance parameters), batch 1 and batch > 1, what each model's numbers mean (similar texts closer,
dark vs bright frames, a real face found, a shift measured, a 440 Hz tone), and error responses for bad
requests that leave the server serving.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from matplotlib import cbook
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from extraction.model_repo import compute_digest

pytestmark = pytest.mark.triton
REPO = Path(__file__).resolve().parents[2]
MODELS = ["text_embed", "visual_embed_fast", "visual_embed_quality", "face_detector", "optical_flow", "audio_features",
          "text_embed_onnx", "visual_embed_fast_onnx", "visual_embed_quality_onnx"]  # *_onnx: test_onnx_engines.py


@pytest.fixture(scope="module")
def client(triton_server) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(triton_server.grpc_url)


def infer(client: grpcclient.InferenceServerClient, model: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
    tensors = []
    for name, value in inputs.items():
        t = grpcclient.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
        t.set_data_from_numpy(value)
        tensors.append(t)
    result = client.infer(model, tensors)
    return {o.name: result.as_numpy(o.name) for o in result.get_response().outputs}


def model_config(client, model: str) -> dict:
    return client.get_model_config(model, as_json=True)["config"]


def face_image() -> np.ndarray:
    """Grace Hopper's portrait shipped with matplotlib (public domain), RGB (600, 512, 3)."""
    bgr = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w)).astype(np.uint8), (0, 0), 2.0)


def example_inputs(model: str, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch)
    model = model.removesuffix("_onnx")  # an exported engine takes its torch model's tensors
    if model == "text_embed":
        return {"TEXT": np.array([[f"video title number {i}".encode()] for i in range(batch)], dtype=object)}
    if model in ("visual_embed_fast", "visual_embed_quality"):
        s = 112 if model.endswith("fast") else 224
        return {"FRAMES": rng.integers(0, 256, (batch, s, s, 3), dtype=np.uint8)}
    if model == "face_detector":
        return {"FRAMES": rng.integers(0, 256, (batch, 96, 128, 3), dtype=np.uint8)}
    if model == "optical_flow":
        return {"FRAME_PAIRS": rng.integers(0, 256, (batch, 2, 48, 64), dtype=np.uint8)}
    return {"WAVEFORM": (0.1 * rng.standard_normal((batch, 8000))).astype(np.float32)}


@pytest.mark.parametrize("model", MODELS)
def test_config_declares_contract_and_provenance(client, model):
    cfg = model_config(client, model)
    assert client.is_model_ready(model)
    assert cfg["backend"] == "python"
    assert int(cfg["max_batch_size"]) > 1
    assert [g["kind"] for g in cfg["instance_group"]] == ["KIND_CPU"]
    assert "dynamic_batching" in cfg
    params = {k: v["string_value"] for k, v in cfg["parameters"].items()}
    assert params["precision"] == "fp32" and params["runtime"] == "triton-python" and params["engine"]
    # The server serves exactly the code and weights in this checkout.
    assert params["weights_digest"] == compute_digest(REPO / "model_repository" / model)
    names = [t["name"] for t in cfg["input"] + cfg["output"]]
    assert all(n.isupper() for n in names), names


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("model", MODELS)
def test_output_shapes_follow_server_config(client, model, batch):
    cfg = model_config(client, model)
    out = infer(client, model, **example_inputs(model, batch))
    assert set(out) == {o["name"] for o in cfg["output"]}
    for o in cfg["output"]:
        assert out[o["name"]].shape == (batch, *[int(d) for d in o["dims"]]), o["name"]
        assert np.isfinite(out[o["name"]]).all()


def test_text_embedding_similar_sentences_are_closer(client):
    texts = ["A cat is sleeping on the sofa.", "A kitten naps on the couch.",
             "Quarterly tax filings are due in April.", ""]
    emb = infer(client, "text_embed", TEXT=np.array([[t.encode()] for t in texts], dtype=object))["EMBEDDING"]
    assert emb.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)  # the empty string too
    sim = emb @ emb.T
    assert sim[0, 1] > 0.6
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[1, 0] > sim[1, 2] + 0.3


def test_text_embedding_handles_unicode_and_is_a_function_of_the_text_alone(client):
    # bit for bit whatever the batch partners (a long one pads the batch): artifacts must not depend on how
    # Triton merged requests, or a corpus extracted on a cluster differs from the same corpus extracted locally
    batch = np.array([["Ünïcödé émojis 🚀 — ok".encode()], [b"plain"],
                      [" ".join(["a much longer title about cooking travel and music"] * 6).encode()]], dtype=object)
    a = infer(client, "text_embed", TEXT=batch)["EMBEDDING"]
    for i in range(len(batch)):
        np.testing.assert_array_equal(a[i:i + 1], infer(client, "text_embed", TEXT=batch[i:i + 1])["EMBEDDING"])


@pytest.mark.parametrize("model,size", [("visual_embed_fast", 112), ("visual_embed_quality", 224)])
def test_visual_embeddings_deterministic_and_content_dependent(client, model, size):
    dark = np.full((size, size, 3), 15, np.uint8)
    bright = np.full((size, size, 3), 235, np.uint8)
    face = cv2.resize(face_image(), (size, size), interpolation=cv2.INTER_AREA)
    frames = np.stack([dark, bright, face, face[:, ::-1].copy()])
    first = infer(client, model, FRAMES=frames)["EMBEDDING"]
    second = infer(client, model, FRAMES=frames)["EMBEDDING"]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    cos = first @ first.T
    assert cos[0, 1] < 0.0  # dark vs bright point in different directions
    assert cos[2, 3] > 0.95  # a mirrored photo stays close
    assert cos[2, 3] > cos[2, 0] and cos[2, 3] > cos[2, 1]


def test_concurrent_requests_each_get_their_own_answer(client):
    """Dynamic batching merges requests into one execute; each response must still match its request."""
    rng = np.random.default_rng(7)
    requests = [rng.integers(0, 256, (n, 112, 112, 3), dtype=np.uint8) for n in (1, 3, 2, 4, 1, 5)]
    expected = [infer(client, "visual_embed_fast", FRAMES=r)["EMBEDDING"] for r in requests]
    with ThreadPoolExecutor(len(requests)) as pool:
        got = list(pool.map(lambda r: infer(client, "visual_embed_fast", FRAMES=r)["EMBEDDING"], requests))
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, atol=1e-5)
    texts = [np.array([[f"request {i} item {j}".encode()] for j in range(i + 1)], dtype=object) for i in range(4)]
    expected_t = [infer(client, "text_embed", TEXT=t)["EMBEDDING"] for t in texts]
    with ThreadPoolExecutor(len(texts)) as pool:
        got_t = list(pool.map(lambda t: infer(client, "text_embed", TEXT=t)["EMBEDDING"], texts))
    for e, g in zip(expected_t, got_t, strict=True):
        np.testing.assert_array_equal(g, e)  # merged by the dynamic batcher or not: the same bits


def test_face_detector_finds_the_face_and_not_noise(client):
    face = face_image()  # (600, 512, 3); the face spans roughly x 155-377, y 105-327
    noise = np.random.default_rng(0).integers(0, 256, face.shape, dtype=np.uint8)
    out = infer(client, "face_detector", FRAMES=np.stack([face, noise]))
    assert out["COUNT"][:, 0].tolist() == [1, 0]
    x, y, w, h = out["BOXES"][0, 0]
    cx, cy = (x + w / 2) * face.shape[1], (y + h / 2) * face.shape[0]
    assert 230 < cx < 300 and 180 < cy < 250, (cx, cy)
    assert 0.25 < w < 0.6
    assert 0.5 < out["SCORES"][0, 0] <= 1.0
    assert not out["BOXES"][0, 1:].any() and not out["SCORES"][0, 1:].any()  # zero padding
    assert not out["BOXES"][1].any() and not out["SCORES"][1].any()


def test_face_detector_other_frame_size(client):
    small = cv2.resize(face_image(), (256, 300), interpolation=cv2.INTER_AREA)
    out = infer(client, "face_detector", FRAMES=small[None])
    assert out["COUNT"][0, 0] == 1 and out["SCORES"][0, 0] > 0.5


def test_optical_flow_measures_a_shift(client):
    base = texture(120, 172)
    width, shift = 160, 4
    moved = np.stack([base[:, shift : shift + width], base[:, :width]])  # content moves right by 4 px
    still = np.stack([base[:, :width], base[:, :width]])
    stats = infer(client, "optical_flow", FRAME_PAIRS=np.stack([moved, still]))["MOTION_STATS"]
    mag_mean, mag_p95, moving, coherence = stats[0]
    assert mag_mean == pytest.approx(shift / width, rel=0.25)
    assert mag_p95 == pytest.approx(shift / width, rel=0.25)
    assert moving > 0.8 and coherence > 0.9
    assert stats[1, 0] < 1e-3 and stats[1, 2] < 0.01
    assert stats[0, 0] > 10 * stats[1, 0]


def test_audio_features_of_a_tone_and_silence(client):
    cfg = model_config(client, "audio_features")
    sr = int(cfg["parameters"]["sample_rate"]["string_value"])
    assert sr == 16000
    t = np.arange(sr) / sr
    waves = np.stack([0.5 * np.sin(2 * np.pi * 440.0 * t), np.zeros(sr)]).astype(np.float32)
    out = infer(client, "audio_features", WAVEFORM=waves)
    rms, centroid, zcr = out["STATS"][0]
    assert centroid == pytest.approx(440.0, abs=30.0)
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    assert zcr == pytest.approx(2 * 440 / sr, rel=0.05)
    assert out["STATS"][1].tolist() == [0.0, 0.0, 0.0]
    assert out["LOGMEL"][0].max() > out["LOGMEL"][1].max() + 10
    assert out["LOGMEL"][0].argmax() < 8  # 440 Hz sits in a low mel band


@pytest.mark.parametrize(
    "model,inputs,fragment",
    [
        ("visual_embed_fast", {"FRAMES": np.zeros((1, 64, 64, 3), np.uint8)}, "unexpected shape"),  # Triton core
        ("optical_flow", {"FRAME_PAIRS": np.zeros((1, 2, 8, 8), np.uint8)}, ">= 16"),  # model.py
        ("face_detector", {"FRAMES": np.zeros((1, 10, 10, 3), np.uint8)}, ">= 24"),
        ("audio_features", {"WAVEFORM": np.zeros((1, 0), np.float32)}, "empty"),
        ("audio_features", {"WAVEFORM": np.full((1, 100), np.nan, np.float32)}, "NaN"),
    ],
)
def test_bad_request_gets_an_error_and_server_keeps_serving(client, model, inputs, fragment):
    with pytest.raises(InferenceServerException) as info:
        infer(client, model, **inputs)
    assert fragment in info.value.message()
    assert "INVALID_ARG" in str(info.value.status())
    assert client.is_server_live() and client.is_model_ready(model)
    out = infer(client, model, **example_inputs(model, 2))  # the same model still answers
    assert all(v.shape[0] == 2 for v in out.values())
