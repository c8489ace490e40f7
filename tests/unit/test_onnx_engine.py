"""The engine-build bookkeeping, without torch or Triton: ``engine_build_hash``, the engine cache, and
``python -m extraction.model_repo`` reading, checking and writing the hash.

Protects: the hash is the sha256 of the graph bytes; a graph is cached under its hash in the retention GC's
``<root>/<model>/<version>/`` layout and written only when it hashes to the declared value (a wrong graph is
never served nor cached); check/sync find and fix a stale ``engine_build_hash`` and leave models without one
alone; every committed model that declares a build is one ``ENGINE_BUILDS`` knows, and its model.py uses that
export module. The exports themselves (seconds) are tested in ``tests/integration/test_onnx_engines.py``.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from extraction import model_repo
from extraction.kernels import onnx_engine
from extraction.kernels.onnx_engine import EngineMismatch, engine_path, ensure_graph, graph_hash

REPO = Path(__file__).resolve().parents[2]
MODEL_REPOSITORY = REPO / "model_repository"


def test_graph_hash_is_sha256_of_the_bytes():
    assert graph_hash(b"graph") == "sha256:" + hashlib.sha256(b"graph").hexdigest()
    assert graph_hash(b"graph") != graph_hash(b"graph ")


def test_engine_path_follows_the_retention_folder_layout(tmp_path):
    h = graph_hash(b"g")
    p = engine_path(tmp_path, "text_embed_onnx", "1", h)
    assert p == tmp_path / "text_embed_onnx" / "1" / f"{h.removeprefix('sha256:')}.onnx"


def test_engine_root_env_override(monkeypatch, tmp_path):
    monkeypatch.delenv(onnx_engine.ENGINE_ROOT_ENV, raising=False)
    assert onnx_engine.engine_root() == REPO / ".trendflow" / "engines"
    monkeypatch.setenv(onnx_engine.ENGINE_ROOT_ENV, str(tmp_path))
    assert onnx_engine.engine_root() == tmp_path


def test_ensure_graph_builds_once_then_reads_the_cache(tmp_path):
    calls = []

    def build() -> bytes:
        calls.append(1)
        return b"onnx bytes"

    h = graph_hash(b"onnx bytes")
    path = engine_path(tmp_path, "m", "1", h)
    assert ensure_graph(path, h, build) == b"onnx bytes"
    assert path.read_bytes() == b"onnx bytes" and len(calls) == 1
    assert ensure_graph(path, h, build) == b"onnx bytes"
    assert len(calls) == 1  # served from the cache
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_ensure_graph_refuses_a_build_with_another_hash_and_writes_nothing(tmp_path):
    declared = graph_hash(b"what the config declares")
    path = engine_path(tmp_path, "m", "1", declared)
    with pytest.raises(EngineMismatch, match="engine_build_hash"):
        ensure_graph(path, declared, lambda: b"what this code exports")
    assert not path.exists()


def test_ensure_graph_refuses_a_corrupt_cache_file(tmp_path):
    declared = graph_hash(b"good")
    path = engine_path(tmp_path, "m", "1", declared)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"truncated")
    with pytest.raises(EngineMismatch, match="corrupt"):
        ensure_graph(path, declared, lambda: b"good")


def test_check_runtime_names_the_installed_onnxruntime():
    import onnxruntime as ort

    onnx_engine.check_runtime(f"onnxruntime-{ort.__version__}")
    with pytest.raises(EngineMismatch, match="onnxruntime-0.0"):
        onnx_engine.check_runtime("onnxruntime-0.0")


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "model_repository"
    shutil.copytree(MODEL_REPOSITORY, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def _fake_build(model: str) -> bytes:
    return f"graph of {model}".encode()


def test_check_and_sync_builds_with_a_fake_export(repo_copy):
    statuses = model_repo.check_builds(repo_copy, build=_fake_build)
    assert {s.model for s in statuses} == set(model_repo.ENGINE_BUILDS)  # torch models declare no build
    assert not any(s.ok for s in statuses)  # the committed hashes are of real graphs, not of the fakes
    assert sorted(model_repo.sync_builds(repo_copy, build=_fake_build)) == sorted(model_repo.ENGINE_BUILDS)
    assert all(s.ok for s in model_repo.check_builds(repo_copy, build=_fake_build))
    config = repo_copy / "text_embed_onnx" / "config.pbtxt"
    assert model_repo.read_committed_build_hash(config) == graph_hash(b"graph of text_embed_onnx")
    assert model_repo.sync_builds(repo_copy, build=_fake_build) == []  # nothing left to change
    # sync rewrote only the hash parameter: everything else is the committed file
    committed = (MODEL_REPOSITORY / "text_embed_onnx" / "config.pbtxt").read_text()
    assert config.read_text().replace(graph_hash(b"graph of text_embed_onnx"), "") == committed.replace(
        model_repo.read_committed_build_hash(MODEL_REPOSITORY / "text_embed_onnx" / "config.pbtxt"), "")


def test_build_hash_parameter_read_and_write(tmp_path):
    config = tmp_path / "config.pbtxt"
    config.write_text('name: "m"\nparameters: { key: "weights_digest" value: { string_value: "sha256:aa" } }\n')
    assert model_repo.read_committed_build_hash(config) is None
    with pytest.raises(ValueError, match="engine_build_hash"):
        model_repo.write_build_hash(config, "sha256:00")
    config.write_text(config.read_text()
                      + 'parameters: { key: "engine_build_hash" value: { string_value: "sha256:old" } }\n')
    assert model_repo.read_committed_build_hash(config) == "sha256:old"
    assert model_repo.write_build_hash(config, "sha256:new") is True
    assert model_repo.read_committed_build_hash(config) == "sha256:new"
    assert model_repo.read_committed_digest(config) == "sha256:aa"  # the other parameter is untouched
    assert model_repo.write_build_hash(config, "sha256:new") is False


def test_export_engine_refuses_an_unregistered_model():
    with pytest.raises(KeyError, match="ENGINE_BUILDS"):
        model_repo.export_engine("face_detector")


@pytest.mark.parametrize("model", sorted(model_repo.ENGINE_BUILDS))
def test_committed_onnx_models_declare_their_build_and_use_the_registered_export(model):
    config = MODEL_REPOSITORY / model / "config.pbtxt"
    declared = model_repo.read_committed_build_hash(config)
    assert declared and declared.startswith("sha256:") and len(declared) == len("sha256:") + 64
    assert 'key: "engine" value: { string_value: "onnxruntime-1.20.1" }' in config.read_text()
    module, args = model_repo.ENGINE_BUILDS[model]
    source = (MODEL_REPOSITORY / model / "1" / "model.py").read_text()
    assert f"from {module} import" in source and "export_graph" in source and "open_engine" in source
    for arg in args:  # the preset the adapter exports is the one the hash was computed for
        assert f'PRESET = "{arg}"' in source
    assert f"kernel/{module}" in [label for label, _ in model_repo.digest_parts(MODEL_REPOSITORY / model)]


def test_every_declared_build_is_registered():
    declared = {d.name for d in model_repo.model_dirs() if model_repo.read_committed_build_hash(d / "config.pbtxt")}
    assert declared == set(model_repo.ENGINE_BUILDS)


def test_the_committed_fast_checklist_measured_the_onnx_engines_that_fast_serves():
    # `fast` serves the ONNX engines; its committed checklist must have measured them (a model it never measured
    # makes it stale and an explicit --checklist is refused), and the torch profile is the one it does not cover.
    from extraction.config import load_profile
    from planning.checklist import ChecklistStale, load_checklist

    checklist = load_checklist(REPO / "conf" / "checklist" / "amd-epyc-2c" / "fast.yaml")
    digests = {d.name: model_repo.read_committed_digest(d / "config.pbtxt") for d in model_repo.model_dirs()}

    def signatures(profile: str) -> dict[str, str]:
        refs = load_profile(profile).resolved_models
        return {c: f"{m.triton_model}:{m.version}:{digests[m.triton_model]}" for c, m in refs.items()
                if c in checklist.models}

    checklist.check_signatures(signatures("fast"))  # current: raises nothing
    assert checklist.models["visual"].model == "visual_embed_fast_onnx"
    assert checklist.models["text"].model == "text_embed_onnx"
    with pytest.raises(ChecklistStale) as exc:
        checklist.check_signatures(signatures("fast_torch"))
    # exactly the two components whose engine differs are stale; the others are the same models in both
    assert sorted(exc.value.details["models"]) == ["text", "visual"]
    assert "faces" not in str(exc.value) and "motion" not in str(exc.value)


@pytest.mark.parametrize("preset", ["fast", "quality"])
def test_a_frames_embedding_does_not_depend_on_its_batch_partners(preset):
    # ORT's GEMM rows left over after the last full block take another kernel (last-bit differences); the
    # measured row block pads them away, so any plan's batch sizes give the same artifact bytes.
    import numpy as np

    from extraction.kernels.onnx_engine import make_session
    from extraction.kernels.onnx_visual import ROW_BLOCKS, embed_frames, export_graph, row_block
    from extraction.kernels.visual import PRESETS

    size = PRESETS[preset].input_size
    session = make_session(export_graph(preset), threads=1)
    block = row_block(session, size)
    assert block in ROW_BLOCKS
    frames = np.random.default_rng(7).integers(0, 256, (11, size, size, 3), dtype=np.uint8)
    frames[2] = 0  # a black frame, like the padding itself
    whole = embed_frames(session, frames, block)
    assert whole.shape == (11, PRESETS[preset].embed_dim)
    for batch in (1, 2, 4, 6):
        parts = np.concatenate([embed_frames(session, frames[i : i + batch], block) for i in range(0, 11, batch)])
        assert np.array_equal(parts, whole), batch
