"""feature_spec.yaml: loading, validation errors, derived columns, hashing, compatibility rules."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from features import FeatureSpecError, check_compatibility, load_spec, raw_columns, target_columns
from features.spec import DEFAULT_SPEC_PATH, parse_spec

RAW = yaml.safe_load(DEFAULT_SPEC_PATH.read_text())


def _raw() -> dict:
    return copy.deepcopy(RAW)


def _feature(raw: dict, name: str) -> dict:
    return next(f for f in raw["features"] if f["name"] == name)


def _problems(raw: dict) -> str:
    with pytest.raises(FeatureSpecError) as err:
        parse_spec(raw)
    assert err.value.code == "feature_spec_invalid"
    return str(err.value)


def test_repository_spec_loads_with_every_modality_and_required_meta_features():
    spec = load_spec()
    assert spec.feature_schema_version == "1.1.0"
    by_mod = spec.by_modality()
    assert set(by_mod) == {"visual", "motion", "audio", "text", "meta"}
    assert all(len(cols) > 0 for cols in by_mod.values())
    sources = {(f.source.component, f.source.field, f.transform) for f in spec.features if f.modality == "meta"}
    assert ("metadata", "video_age_hours_at_snapshot1", "none") in sources
    assert ("metadata", "video_age_hours_at_snapshot1", "log1p") in sources
    assert ("metadata", "video_age_hours_at_snapshot1", "age_bucket") in sources
    assert ("metadata", "views_snapshot1", "log1p") in sources
    assert ("metadata", "likes_snapshot1", "log1p") in sources
    assert {"channel_subscribers", "channel_video_count", "channel_avg_views"} <= {s[1] for s in sources}
    assert len(raw_columns(spec)) == len(spec.feature_columns) + len(spec.mask_columns) <= 150


def test_raw_and_target_columns_are_stable_names_in_spec_order():
    spec = load_spec()
    cols = raw_columns(spec)
    assert cols[:2] == ["meta_age_hours", "meta_log_age_hours"]
    assert "vis_emb_00" in cols and "vis_emb_15" in cols and "vis_emb" not in cols
    assert cols[-len(spec.mask_columns):] == spec.mask_columns
    assert all(c.startswith("mask__") for c in spec.mask_columns)
    assert len(set(cols)) == len(cols)
    assert target_columns(spec) == ["target_views_7d", "target_views_14d", "target_views_21d",
                                    "target_likes_7d", "target_likes_14d", "target_likes_21d"]
    assert spec.targets.transform == "log1p"
    assert {t.name for t in spec.targets.columns if t.optional} == {
        "target_views_7d", "target_views_14d", "target_likes_7d", "target_likes_14d"}


def test_hash_depends_on_content_not_formatting(tmp_path: Path):
    spec = load_spec()
    p = tmp_path / "spec.yaml"
    p.write_text("# a comment\n" + yaml.safe_dump(RAW, sort_keys=True, default_flow_style=False))
    assert load_spec(p).spec_hash == spec.spec_hash
    raw = _raw()
    _feature(raw, "vis_emb")["projection"]["seed"] = 7
    assert parse_spec(raw).spec_hash != spec.spec_hash


def test_features_without_dtype_take_the_default_and_a_declared_one_wins():
    raw = _raw()
    assert all(f.dtype == "float32" for f in parse_spec(raw).features)
    raw["defaults"]["dtype"] = "float64"
    _feature(raw, "vis_emb")["dtype"] = "float32"
    spec = parse_spec(raw)
    assert {f.name: f.dtype for f in spec.features}["vis_emb"] == "float32"
    assert {f.dtype for f in spec.features if f.name != "vis_emb"} == {"float64"}
    raw["defaults"]["dtype"] = "int8"
    with pytest.raises(FeatureSpecError, match="dtype"):
        parse_spec(raw)


def test_missing_version_is_an_error():
    raw = _raw()
    del raw["feature_schema_version"]
    assert "feature_schema_version: required key is missing" in _problems(raw)
    raw["feature_schema_version"] = "1.0"
    assert "not a semantic version" in _problems(raw)


def test_unknown_component_and_unknown_field_name_the_feature_and_the_choices():
    raw = _raw()
    _feature(raw, "vis_brightness_mean")["source"]["component"] = "framez"
    _feature(raw, "aud_rms_mean")["source"]["field"] = "loudness"
    msg = _problems(raw)
    assert "feature 'vis_brightness_mean': unknown component 'framez'" in msg
    assert "feature 'aud_rms_mean': component 'audio' has no field 'loudness'" in msg
    assert "2 problem(s)" in msg  # every problem in one error


def test_bad_aggregation_and_aggregation_shape_mismatch():
    raw = _raw()
    _feature(raw, "vis_brightness_mean")["aggregation"] = "median_ish"
    _feature(raw, "meta_age_hours")["aggregation"] = "mean"  # scalar field
    _feature(raw, "mot_magnitude_mean")["aggregation"] = "value"  # array field
    _feature(raw, "aud_loud_rate").pop("threshold")
    msg = _problems(raw)
    assert "feature 'vis_brightness_mean': unknown aggregation 'median_ish'" in msg
    assert "feature 'meta_age_hours': aggregation 'mean' needs an array field" in msg
    assert "feature 'mot_magnitude_mean': aggregation 'value' needs a scalar field" in msg
    assert "feature 'aud_loud_rate': aggregation 'rate' needs threshold" in msg


def test_duplicate_names_including_expanded_embedding_columns():
    raw = _raw()
    raw["features"].append(dict(_feature(raw, "vis_brightness_std")))
    raw["features"].append({"name": "vis_emb_03", "modality": "visual", "aggregation": "value",
                            "source": {"component": "frames", "field": "fps"}})
    msg = _problems(raw)
    assert "duplicate name 'vis_brightness_std'" in msg
    assert "duplicate name 'vis_emb_03'" in msg


def test_typos_and_bad_values_are_named():
    raw = _raw()
    _feature(raw, "vis_brightness_mean")["modality"] = "video"
    _feature(raw, "vis_brightness_p10")["agregation"] = "p10"
    raw["targets"]["transform"] = "sqrt"
    msg = _problems(raw)
    assert "features.'vis_brightness_mean'.modality" in msg
    assert "features.'vis_brightness_p10'.agregation: unknown key" in msg
    assert "targets.transform" in msg


def test_embedding_mean_needs_projection_and_unreadable_file(tmp_path: Path):
    raw = _raw()
    _feature(raw, "vis_emb").pop("projection")
    assert "embedding_mean needs a projection" in _problems(raw)
    with pytest.raises(FeatureSpecError, match="cannot read"):
        load_spec(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("features: [\n")
    with pytest.raises(FeatureSpecError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")


# ---- compatibility --------------------------------------------------------------------------------------

def _bump(raw: dict, version: str) -> dict:
    raw["feature_schema_version"] = version
    return raw


def test_identical_and_description_only_changes():
    spec = load_spec()
    assert check_compatibility(spec, spec).kind == "identical"
    raw = _bump(_raw(), "1.1.1")
    _feature(raw, "vis_brightness_mean")["description"] = "reworded"
    res = check_compatibility(spec, parse_spec(raw))
    assert res.kind == "identical" and res.compatible


def test_added_feature_is_additive_with_a_minor_bump():
    raw = _bump(_raw(), "1.2.0")
    raw["features"].append({"name": "vis_fps", "modality": "visual", "aggregation": "value",
                            "source": {"component": "frames", "field": "fps"}})
    res = check_compatibility(load_spec(), parse_spec(raw))
    assert res.kind == "additive" and res.compatible
    assert "feature added 'vis_fps'" in res.reasons


def test_additive_content_with_patch_bump_is_flagged_but_still_additive():
    raw = _bump(_raw(), "1.1.1")
    _feature(raw, "vis_brightness_std")["mask"] = True
    res = check_compatibility(load_spec(), parse_spec(raw))
    assert res.kind == "additive"
    assert any("not a MINOR (or MAJOR) bump" in r for r in res.reasons)


def test_removed_renamed_and_changed_meaning_are_breaking_whatever_the_version():
    spec = load_spec()
    removed = _raw()
    removed["features"] = [f for f in removed["features"] if f["name"] != "aud_zcr_mean"]
    res = check_compatibility(spec, parse_spec(removed))
    assert res.kind == "breaking" and not res.compatible
    assert "feature removed 'aud_zcr_mean'" in res.reasons
    assert any("not a MAJOR bump" in r for r in res.reasons)

    renamed = _bump(_raw(), "2.0.0")
    _feature(renamed, "aud_zcr_mean")["name"] = "aud_zero_crossings"
    res = check_compatibility(spec, parse_spec(renamed))
    assert res.kind == "breaking"
    assert "feature renamed 'aud_zcr_mean' -> 'aud_zero_crossings'" in res.reasons

    changed = _raw()
    _feature(changed, "mot_magnitude_p90")["aggregation"] = "p95"
    _feature(changed, "meta_log_channel_video_count")["transform"] = "none"
    res = check_compatibility(spec, parse_spec(changed))
    assert res.kind == "breaking"
    assert "feature 'mot_magnitude_p90' changed meaning (aggregation)" in res.reasons
    assert "feature 'meta_log_channel_video_count' changed meaning (transform)" in res.reasons


def test_major_bump_alone_is_breaking_and_mask_or_bucket_or_target_changes_break():
    spec = load_spec()
    assert check_compatibility(spec, parse_spec(_bump(_raw(), "2.0.0"))).kind == "breaking"
    raw = _bump(_raw(), "2.0.0")
    _feature(raw, "vis_emb")["mask"] = False
    raw["age_buckets"]["edges_hours"] = [12, 24, 72, 168]
    raw["targets"]["transform"] = "none"
    res = check_compatibility(spec, parse_spec(raw))
    assert res.content_kind == "breaking"
    assert "mask of 'vis_emb' removed" in res.reasons
    assert any(r.startswith("age bucket edges changed") for r in res.reasons)
    assert "targets transform log1p -> none" in res.reasons


def test_critical_and_imputation_changes_do_not_break_serving():
    raw = _bump(_raw(), "1.1.1")
    _feature(raw, "meta_log_likes_snapshot1")["critical"] = True
    _feature(raw, "aud_rms_mean")["imputation"] = {"network": "constant", "value": 0.0}
    res = check_compatibility(load_spec(), parse_spec(raw))
    assert res.kind == "identical"
    assert any("critical False -> True" in r for r in res.reasons)
    assert any("imputation policy changed" in r for r in res.reasons)
