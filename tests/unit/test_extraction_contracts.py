"""Pure units of the extractor: schemas, meta, artifact IO, keys, sampling, DAG, module maths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common.errors import ConfigError, SchemaValidationError
from common.fsio import atomic_write_bytes
from common.hashing import json_hash
from extraction.artifacts import read_artifact, write_artifact
from extraction.components import default_components, topo_order
from extraction.components.base import empty_like_schema, model_signature
from extraction.components.modules import autocorr_peak, detect_cuts
from extraction.config import load_profile
from extraction.decode import target_times
from extraction.schemas import SCHEMAS, ModelUsed


def _meta(component: str, **kw) -> dict:
    base = dict(platform_id="yt", video_id="v1", run_id="r1", component=component, producer_version="1.0.0",
                schema_version=SCHEMAS[component].version, status="ok", model_signature="none", coverage=1.0,
                config_hash="c", sampling_policy_version="n/a", seed=0, runtime_env_hash="e", cache_key="k",
                created_at="2026-01-01T00:00:00Z")
    return base | kw


def test_schema_accepts_consistent_arrays_and_names_every_problem():
    schema = SCHEMAS["visual"]
    schema.validate({"timestamps": np.zeros(3), "embeddings": np.zeros((3, 8), np.float32)})
    with pytest.raises(SchemaValidationError) as err:
        schema.validate({"timestamps": np.zeros(3), "embeddings": np.zeros((4, 8), np.int64), "extra": np.zeros(1)})
    msg = str(err.value)
    assert "unexpected arrays ['extra']" in msg
    assert "dtype kind 'i'" in msg
    assert "(N) has 4, other arrays say 3" in msg


def test_empty_arrays_are_valid_for_every_schema():
    for name, schema in SCHEMAS.items():
        schema.validate(empty_like_schema(name))


def test_artifact_round_trip_keeps_arrays_and_meta(tmp_path: Path):
    arrays = {"timestamps": np.arange(3.0), "embeddings": np.eye(3, 4, dtype=np.float32)}
    used = ModelUsed(model_name="m", model_version="1", weights_digest="sha256:x", runtime="triton-python",
                     engine="torch", precision="fp32", device="cpu")
    path = write_artifact(tmp_path / "visual.npz", arrays, _meta("visual", models_used=[used], batch_size=4))
    back, meta = read_artifact(path)
    np.testing.assert_array_equal(back["embeddings"], arrays["embeddings"])
    assert meta.models_used[0].weights_digest == "sha256:x"
    assert meta.batch_size == 4


def test_write_refuses_invalid_meta_and_arrays(tmp_path: Path):
    with pytest.raises(ValueError, match="status"):
        write_artifact(tmp_path / "a.npz", empty_like_schema("visual"), _meta("visual", status="fine"))
    with pytest.raises(SchemaValidationError, match="missing arrays"):
        write_artifact(tmp_path / "b.npz", {"timestamps": np.zeros(2)}, _meta("visual"))
    assert not list(tmp_path.iterdir()), "nothing may be written when validation fails"


def test_read_refuses_other_schema_version(tmp_path: Path):
    path = write_artifact(tmp_path / "v.npz", empty_like_schema("visual"), _meta("visual"))
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta["schema_version"] = "9.0.0"
    np.savez(tmp_path / "old.npz", meta=np.array(json.dumps(meta)), **arrays)
    with pytest.raises(SchemaValidationError, match="not readable by this code"):
        read_artifact(tmp_path / "old.npz")


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path: Path, monkeypatch):
    target = tmp_path / "x.bin"
    atomic_write_bytes(target, b"old")

    # Fault injection (a crash between write and rename cannot be produced otherwise in-process).
    def boom(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr("common.fsio.os.replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"], "the temp file is cleaned up"


def test_json_hash_depends_on_every_part():
    base = {"a": 1, "b": [1, 2], "c": {"d": "x"}}
    assert json_hash(base) == json_hash({"c": {"d": "x"}, "b": [1, 2], "a": 1})
    for changed in ({**base, "a": 2}, {**base, "b": [2, 1]}, {**base, "c": {"d": "y"}}):
        assert json_hash(changed) != json_hash(base)


def test_model_signature_changes_with_version_and_digest():
    m = ModelUsed(model_name="m", model_version="1", weights_digest="sha256:a", runtime="r", engine="e",
                  precision="fp32", device="cpu")
    assert model_signature([]) == "none"
    sig = model_signature([m])
    assert model_signature([m.model_copy(update={"model_version": "2"})]) != sig
    assert model_signature([m.model_copy(update={"weights_digest": "sha256:b"})]) != sig


def test_model_signature_keeps_exported_engines_apart():
    torch_m = ModelUsed(model_name="visual_embed_fast", model_version="1", weights_digest="sha256:a",
                        runtime="triton-python", engine="torch-2.13-cpu", precision="fp32", device="cpu")
    onnx_m = torch_m.model_copy(update={"engine": "onnxruntime-1.20", "engine_build_hash": "sha256:build1"})
    assert model_signature([onnx_m]) != model_signature([torch_m])
    # A rebuilt export (other opset or exporter) is another engine build: another key, same weights.
    rebuilt = onnx_m.model_copy(update={"engine_build_hash": "sha256:build2"})
    assert model_signature([rebuilt]) != model_signature([onnx_m])
    # No build hash: the signature is the one models had before build hashes existed (torch caches keep their keys).
    assert model_signature([torch_m]) == json_hash(sorted([("visual_embed_fast", "1", "sha256:a", "torch-2.13-cpu",
                                                            "fp32", "cpu")]))


def test_components_come_after_their_dependencies():
    order = [c.name for c in default_components()]
    for comp in default_components():
        for dep in comp.dependencies:
            assert order.index(dep) < order.index(comp.name)
    assert {c.kind for c in default_components() if c.name in ("video_pacing", "face_presence")} == {"module"}
    assert not any(c.uses_model for c in default_components() if c.kind == "module")


def test_components_declare_the_logical_models_they_call_and_profiles_choose_among_them():
    profiles = [load_profile(p) for p in ("fast", "quality", "fast_torch", "quality_torch")]
    for comp in default_components():
        assert comp.uses_model == bool(comp.models), comp.name
        assert comp.describe()["models"] == list(comp.models)
        for prof in profiles:
            if comp.uses_model:
                assert prof.params(comp.name)["model"] in comp.models, (prof.profile, comp.name)


def test_a_profile_mapping_a_component_to_a_model_it_does_not_call_is_refused():
    from extraction.runner import ExtractionRun

    cfg = load_profile("fast")
    cfg.components["faces"].model = "optical_flow"  # a model that exists, but not one faces calls
    run = ExtractionRun(cfg=cfg, out_root=Path("."), provider=None, progress=False)  # refused before any call
    with pytest.raises(ConfigError, match="maps component 'faces' to model 'optical_flow'"):
        run.resolve_models()


KEY_PARTS = dict(platform_id="yt", video_id="v1", component="faces", config_hash="c1",
                 sampling_policy_version="uniform-fps-v1", producer_version="1.0.0", schema_version="1.0.0",
                 model_signature="m1", dependencies={"frames": "k-frames"})


@pytest.mark.parametrize("part, other", [
    ("platform_id", "tt"), ("video_id", "v2"), ("component", "visual"), ("config_hash", "c2"),
    ("sampling_policy_version", "uniform-fps-v2"), ("producer_version", "1.0.1"), ("schema_version", "1.1.0"),
    ("model_signature", "m2"), ("dependencies", {"frames": "k-frames-2"}), ("dependencies", {}),
])
def test_cache_key_changes_with_every_part(part, other):
    from extraction.runner import cache_key

    base = cache_key(**KEY_PARTS)
    assert cache_key(**KEY_PARTS) == base  # deterministic
    assert cache_key(**(KEY_PARTS | {part: other})) != base


def test_topo_order_rejects_cycles_and_unknown_dependencies():
    class A:
        name, dependencies = "a", ("b",)

    class B:
        name, dependencies = "b", ("a",)

    with pytest.raises(ValueError, match="cycle"):
        topo_order([A(), B()])
    with pytest.raises(ValueError, match="unknown component 'b'"):
        topo_order([A()])


def test_sampling_targets_are_uniform_and_capped():
    np.testing.assert_allclose(target_times(2.0, 2.0, 10), [0.0, 0.5, 1.0, 1.5])
    capped = target_times(100.0, 2.0, 5)
    assert len(capped) == 5 and capped[0] == 0.0 and capped[-1] == pytest.approx(99.5)
    assert len(target_times(0.1, 2.0, 5)) == 1, "a very short video still gets its first frame"


def test_detect_cuts_finds_embedding_jumps_only():
    t = np.arange(8, dtype=float)
    shot_a, shot_b = np.tile([1.0, 0.0, 0.0], (4, 1)), np.tile([0.0, 1.0, 0.0], (4, 1))
    emb = np.vstack([shot_a, shot_b]) + 0.01 * np.random.default_rng(0).normal(size=(8, 3))
    np.testing.assert_array_equal(detect_cuts(t, emb), [4.0])
    assert len(detect_cuts(t, shot_a.repeat(2, axis=0))) == 0
    assert len(detect_cuts(t[:1], emb[:1])) == 0


def test_autocorr_peak_sees_rhythm():
    assert autocorr_peak(np.tile([0.0, 1.0], 10)) > 0.8
    assert autocorr_peak(np.ones(10)) == 0.0


def test_profiles_resolve_models_and_typos_fail_naming_the_key(tmp_path: Path):
    fast, quality = load_profile("fast"), load_profile("quality")
    assert fast.resolved_models["visual"].triton_model == "visual_embed_fast_onnx"
    assert quality.resolved_models["visual"].triton_model == "visual_embed_quality_onnx"
    assert load_profile("fast_torch").resolved_models["visual"].triton_model == "visual_embed_fast"
    with pytest.raises(ConfigError, match="unknown profile 'turbo'"):
        load_profile("turbo")
    bad = tmp_path / "m.yaml"
    bad.write_text("models: {}\nprofiles: {fast: {sampling: {fps: 1, max_frames: 2, max_sid: 3}, components: {}}}\n")
    with pytest.raises(ConfigError, match="max_sid"):
        load_profile("fast", bad)
