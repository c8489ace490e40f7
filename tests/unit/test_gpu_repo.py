"""The generated GPU model repository: KIND_GPU per device for the GPU models, CPU models untouched, digests kept."""

from __future__ import annotations

import pytest

from common.errors import ConfigError
from extraction.gpu_repo import GPU_ENGINES, write_gpu_repository
from extraction.model_repo import DEFAULT_MODEL_REPOSITORY, read_committed_digest


def test_gpu_models_get_one_instance_group_per_device_and_cpu_models_stay(tmp_path):
    out = tmp_path / "gpu"
    changed = write_gpu_repository(out, [0, 1])
    assert changed == sorted(GPU_ENGINES)
    for model in GPU_ENGINES:
        text = (out / model / "config.pbtxt").read_text()
        assert ("instance_group [ { kind: KIND_GPU, count: 1, gpus: [ 0 ] }, "
                "{ kind: KIND_GPU, count: 1, gpus: [ 1 ] } ]") in text
        assert f'string_value: "{GPU_ENGINES[model]}"' in text and 'string_value: "fp32"' in text
        # placement is not part of the model: the digest (and so the cache key's weights part) is kept
        assert read_committed_digest(out / model / "config.pbtxt") == read_committed_digest(
            DEFAULT_MODEL_REPOSITORY / model / "config.pbtxt")
    face = (out / "face_detector" / "config.pbtxt").read_text()
    assert "KIND_CPU" in face and "KIND_GPU" not in face.split("\n", 3)[-1].split("instance_group")[1]
    assert not list(out.rglob("__pycache__"))


def test_unvalidated_fp16_and_unknown_models_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="fp16 is not validated"):
        write_gpu_repository(tmp_path / "a", [0], {"visual_embed_fast": "fp16"})
    with pytest.raises(ConfigError, match="without a GPU variant"):
        write_gpu_repository(tmp_path / "b", [0], {"face_detector": "fp32"})
    with pytest.raises(ConfigError, match="at least one device"):
        write_gpu_repository(tmp_path / "c", [])
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()
