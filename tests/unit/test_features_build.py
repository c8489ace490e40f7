"""Vector / table building on fabricated run folders: parity, empty providers, optional and critical missing
features, imputation, labels and targets, Parquet metadata, the lean reader, the CLI."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from common.errors import SchemaValidationError
from extraction.artifacts import load_run
from features import (
    Imputer,
    MissingCriticalFeature,
    build_table,
    build_vector,
    load_spec,
    raw_columns,
    read_table_metadata,
    target_columns,
    write_parquet,
)
from features.__main__ import main as cli
from features.build import discover_runs
from features.io import read_npz, read_run, read_run_lean
from features.spec import DEFAULT_SPEC_PATH
from testsupport.artifacts import empty_arrays, fabricate_arrays, fabricate_labels, fabricate_metadata, write_run
from testsupport.reference_features import row_dict

SPEC = load_spec()
FRAME_BASED = ("frames", "visual", "motion", "faces", "face_presence", "video_pacing")


def _make(root: Path, i: int, *, empty: tuple[str, ...] = (), errors: tuple[str, ...] = (), meta_edit=None,
          **kw) -> tuple[Path, dict]:
    rng = np.random.default_rng([7, i])
    meta = fabricate_metadata(rng, "youtube", f"v{i:03d}")
    if meta_edit:
        meta_edit(meta)
    arrays = fabricate_arrays(rng, meta, n_frames=6, visual_dim=8, text_dim=12, n_mels=4, **kw)
    for comp in empty:
        arrays[comp] = (empty_arrays(comp, **({"has_audio": 0.0} if comp == "audio" else {})), "empty")
    rd = write_run(root, meta, arrays, errors=errors)
    return rd, fabricate_labels(rng, meta, arrays)


def _missing(row) -> set[str]:
    return {c for c, v in zip(row.columns, row.values, strict=True) if math.isnan(v)}


def _features_of(*components: str) -> set[str]:
    return {c for f in SPEC.features if f.source.component in components for c in f.columns}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path, list[Path]]:
    """Twelve runs covering every scenario, and their labels."""
    root = tmp_path_factory.mktemp("artifacts")
    cases = [
        {}, {}, {"faces": False}, {"has_audio": False, "empty": ("audio",)}, {"empty": FRAME_BASED},
        {"errors": ("text",)}, {"errors": ("metadata",)},
        {"meta_edit": lambda m: m.update(likes_snapshot1=None)},
        {"meta_edit": lambda m: m["channel"].update(subscribers=None, avg_views=None)},
        {}, {"faces": False, "has_audio": False, "empty": ("audio",)}, {},
    ]
    dirs, labels = [], []
    for i, case in enumerate(cases):
        rd, lab = _make(root, i, **case)
        dirs.append(rd)
        labels.append(lab)
    labels[1]["views_21d"] = None  # a required target missing: the row is dropped
    labels[2]["views_7d"] = None  # an optional one: kept, NaN
    labels.append({**labels[0], "video_id": "v999"})  # a label without a run
    lab_path = root.parent / f"{root.name}-labels.csv"
    pd.DataFrame(labels).to_csv(lab_path, index=False)
    return root, lab_path, dirs


def test_parity_inference_vector_equals_training_row_bit_for_bit(corpus):
    root, labels, dirs = corpus
    table = build_table(root, SPEC, labels=None)
    df = table.to_pandas()
    compared = 0
    for rd in dirs:
        try:
            row = build_vector(rd, SPEC)
        except MissingCriticalFeature:
            continue
        t = df[df.video_id == row.keys["video_id"]]
        assert len(t) == 1
        vals = t[SPEC.feature_columns].to_numpy(np.float64)[0]
        assert vals.tobytes() == row.values.tobytes()  # bit for bit, NaN payloads included
        assert t[SPEC.mask_columns].to_numpy(np.int8)[0].tobytes() == row.masks.tobytes()
        assert list(t.feature_warnings.iloc[0]) == row.warnings
        assert t.age_bucket.iloc[0] == row.keys["age_bucket"]
        one = row.to_frame(SPEC)
        assert list(one.columns) == raw_columns(SPEC)
        for c in raw_columns(SPEC):
            assert one[c].dtype == df[c].dtype
            assert one[c].to_numpy().tobytes() == t[c].to_numpy().tobytes()
        # the same vector from load_run's output and from a RunData
        assert build_vector(load_run(rd), SPEC).values.tobytes() == row.values.tobytes()
        assert build_vector(read_run(rd), SPEC).values.tobytes() == row.values.tobytes()
        compared += 1
    assert compared == len(dirs) - 1  # all but the run whose metadata failed
    small = build_table(root, SPEC, chunk=3)  # chunk boundaries change nothing either
    for c in raw_columns(SPEC):
        assert small.column(c).to_numpy().tobytes() == table.column(c).to_numpy().tobytes()


def test_reference_loop_agrees_with_the_vectorised_path(corpus):
    root, _, dirs = corpus
    table = build_table(root, SPEC).to_pandas().set_index("video_id")
    for rd in dirs:
        ref = row_dict(read_run(rd), SPEC)
        if ref["video_id"] not in table.index:
            continue
        got = table.loc[ref["video_id"], SPEC.feature_columns].to_numpy(np.float64)
        want = np.array([ref[c] for c in SPEC.feature_columns], np.float64)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, equal_nan=True)
        assert [ref[c] for c in SPEC.mask_columns] == table.loc[ref["video_id"], SPEC.mask_columns].tolist()


def test_empty_audio_makes_exactly_the_audio_fields_missing(tmp_path):
    ok, _ = _make(tmp_path / "a", 1)
    rd, _ = _make(tmp_path / "b", 1, empty=("audio",))  # same content, audio provider empty (no track)
    base, row = build_vector(ok, SPEC), build_vector(rd, SPEC)
    assert _missing(base) == set()
    expected = _features_of("audio") - {"aud_has_audio"}  # has_audio is read on empty (on_empty: read)
    assert _missing(row) == expected
    assert row.as_dict()["aud_has_audio"] == 0.0 and base.as_dict()["aud_has_audio"] == 1.0
    masks = row.as_dict()
    assert masks["mask__aud_rms_mean"] == 0 and masks["mask__vis_emb"] == 1 and masks["mask__txt_emb"] == 1
    assert len(row.warnings) == 1 and row.warnings[0].startswith("optional features missing (audio: empty): ")
    same = [c for c in SPEC.feature_columns if c not in expected | {"aud_has_audio"}]
    assert [base.as_dict()[c] for c in same] == [row.as_dict()[c] for c in same]


def test_empty_frames_make_exactly_the_frame_based_fields_missing(tmp_path):
    rd, _ = _make(tmp_path, 2, empty=FRAME_BASED)
    row = build_vector(rd, SPEC)
    # frame-based: missing, including the on_empty: read face fields (zero-length arrays, NaN scalars)
    assert _missing(row) == _features_of(*FRAME_BASED)
    d = row.as_dict()
    for m in ("mask__vis_brightness_mean", "mask__vis_emb", "mask__vis_face_presence_ratio", "mask__mot_magnitude_mean",
              "mask__vis_cuts_per_minute", "mask__vis_log_duration_s"):
        assert d[m] == 0, m
    assert d["mask__aud_rms_mean"] == 1 and d["mask__txt_emb"] == 1 and d["mask__meta_log_likes_snapshot1"] == 1
    assert {w.split("):")[0] for w in row.warnings} == {f"optional features missing ({c}: empty" for c in FRAME_BASED}


def test_no_faces_reads_zero_presence_and_only_face_times_are_missing(tmp_path):
    rd, _ = _make(tmp_path, 3, faces=False)
    row = build_vector(rd, SPEC)
    d = row.as_dict()
    assert d["vis_face_presence_ratio"] == 0.0 and d["vis_face_count_max"] == 0.0
    assert _missing(row) == {"vis_first_face_s", "vis_face_score_mean"}
    assert d["mask__vis_first_face_s"] == 0 and d["mask__vis_face_presence_ratio"] == 1
    assert row.warnings == ["optional features missing (face_presence: empty): vis_first_face_s",
                            "optional features missing (faces: empty): vis_face_score_mean"]


def test_optional_missing_is_recorded_then_filled_by_the_imputer(tmp_path):
    dirs = [_make(tmp_path, i)[0] for i in range(4)]
    rd, _ = _make(tmp_path, 9, errors=("text",), meta_edit=lambda m: m.update(likes_snapshot1=None))
    row = build_vector(rd, SPEC)
    assert _missing(row) == _features_of("text") | {"meta_log_likes_snapshot1", "meta_like_rate_snapshot1"}
    assert "optional features missing (text: error): txt_title_chars" in row.warnings[1]
    assert row.warnings[0] == ("optional features missing (no value): meta_log_likes_snapshot1, "
                               "meta_like_rate_snapshot1")
    train = build_table(None, SPEC, run_dirs=dirs).to_pandas()
    imp = Imputer.fit(train, SPEC, mode="network")
    filled = imp.transform(row.to_frame(SPEC))
    assert not filled[SPEC.feature_columns].isna().any().any()
    assert filled["txt_title_chars"].iloc[0] == np.float32(np.median(train["txt_title_chars"]))
    assert filled["mask__txt_emb"].iloc[0] == 0  # masks still say what was missing
    assert imp.missing_counts(row.to_frame(SPEC)) == dict.fromkeys(_missing(row), 1)
    back = Imputer.from_dict(json.loads(json.dumps(imp.to_dict())))
    pd.testing.assert_frame_equal(back.transform(row.to_frame(SPEC)), filled)
    assert back.spec_hash == SPEC.spec_hash
    tree = Imputer.fit(train, SPEC, mode="tree")
    assert tree.fill == {} and tree.transform(row.to_frame(SPEC))["txt_title_chars"].isna().all()


def test_imputer_constant_policy_fallback_and_missing_columns(tmp_path):
    raw = yaml.safe_load(DEFAULT_SPEC_PATH.read_text())
    next(f for f in raw["features"] if f["name"] == "aud_rms_mean")["imputation"] = {"network": "constant",
                                                                                    "value": -1.0}
    from features.spec import parse_spec

    spec = parse_spec(raw)
    df = build_table(None, spec, run_dirs=[_make(tmp_path, i, has_audio=False, empty=("audio",))[0]
                                           for i in range(2)]).to_pandas()
    imp = Imputer.fit(df, spec)
    assert imp.fill["aud_rms_mean"] == -1.0
    assert "aud_rms_std" in imp.fallbacks and imp.fill["aud_rms_std"] == 0.0  # never observed: policy value
    with pytest.raises(Exception) as err:
        imp.transform(df.drop(columns=["aud_rms_std"]))
    assert getattr(err.value, "code", "") == "feature_columns_missing"


def test_critical_missing_names_every_missing_critical_feature(corpus, tmp_path):
    root, _, dirs = corpus
    with pytest.raises(MissingCriticalFeature) as err:
        build_vector(dirs[6], SPEC)  # metadata component failed
    assert err.value.code == "missing_critical_feature"
    assert err.value.details["missing"] == ["meta_age_hours", "meta_log_age_hours", "meta_age_bucket",
                                            "meta_log_views_snapshot1"]
    assert "metadata: error" in str(err.value)
    rd, _ = _make(tmp_path, 5, meta_edit=lambda m: m.update(views_snapshot1=None))
    with pytest.raises(MissingCriticalFeature) as err:
        build_vector(rd, SPEC)
    assert err.value.details["missing"] == ["meta_log_views_snapshot1"]
    with pytest.raises(MissingCriticalFeature):
        build_table(root, SPEC, errors="raise")


def test_table_keys_split_columns_targets_and_report(corpus):
    root, labels, dirs = corpus
    table = build_table(root, SPEC, labels=labels)
    cols = table.column_names
    for c in ("platform_id", "video_id", "run_id", "channel_id", "published_at", "age_bucket", *raw_columns(SPEC),
              *target_columns(SPEC)):
        assert c in cols, c
    assert table.schema.field("published_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("vis_emb_00").type == pa.float32()
    assert table.schema.field("mask__vis_emb").type == pa.int8()
    df = table.to_pandas()
    lab = pd.read_csv(labels, dtype={"video_id": str}).set_index("video_id")
    # 12 runs - 1 critical (metadata error) - 1 missing required target
    assert len(df) == 10 and "v006" not in set(df.video_id) and "v001" not in set(df.video_id)
    for t in SPEC.targets.columns:
        want = np.log1p(lab.loc[df.video_id, t.label].to_numpy(np.float64))
        np.testing.assert_array_equal(df[t.name].to_numpy(), want)
    assert math.isnan(df.set_index("video_id").loc["v002", "target_views_7d"])
    assert df.channel_id.notna().all()
    assert set(df.age_bucket) <= set(SPEC.age_buckets.labels)
    report = json.loads(table.schema.metadata[b"build_report"])
    assert report["runs_found"] == 12 and report["rows"] == 10
    assert list(report["dropped_critical"]) == ["youtube/v006"]
    assert report["dropped_missing_target"]["target_views_21d"] == 1
    assert report["labels_without_run"] == 1 and report["unlabeled_runs"] == 0
    assert report["missing_values"] == int(df[SPEC.feature_columns].isna().sum().sum())


def test_dataset_summary_names_each_row_dropped_for_a_missing_critical_feature(corpus, tmp_path):
    from features import build_dataset

    root, labels, _ = corpus
    summary = build_dataset(root, labels, tmp_path / "ds.parquet", SPEC)
    lines = summary.lines()
    assert summary.rows == 10 and any("dropped_critical=1" in line for line in lines)
    (dropped,) = [line for line in lines if line.strip().startswith("dropped youtube/")]
    assert dropped.strip().startswith("dropped youtube/v006: missing_critical_feature [")
    assert "meta_age_hours" in dropped  # names the missing critical features


def test_parquet_file_metadata_carries_versions_and_spec_hash(corpus, tmp_path):
    root, labels, _ = corpus
    path = write_parquet(build_table(root, SPEC, labels=labels), tmp_path / "ds.parquet")
    md = read_table_metadata(path)
    assert md["feature_schema_version"] == "1.1.0"
    assert md["feature_spec_hash"] == SPEC.spec_hash
    assert md["feature_extractor_version"].startswith("features-1.0.0+extraction-")
    assert json.loads(md["raw_columns"]) == raw_columns(SPEC)
    assert json.loads(md["target_columns"]) == target_columns(SPEC)
    assert json.loads(md["feature_spec"])["feature_schema_version"] == "1.1.0"
    assert pd.read_parquet(path).shape[0] == 10


def test_latest_run_per_video_is_used(tmp_path):
    rng = np.random.default_rng(1)
    meta = fabricate_metadata(rng, "youtube", "v1")
    old = write_run(tmp_path, meta, fabricate_arrays(rng, meta, n_frames=4, visual_dim=8, text_dim=8),
                    run_id="r1", finished_at="2026-01-01T00:00:00Z")
    new = write_run(tmp_path, meta, fabricate_arrays(rng, meta, n_frames=4, visual_dim=8, text_dim=8),
                    run_id="r2", finished_at="2026-02-01T00:00:00Z")
    assert discover_runs(tmp_path) == [new] and old != new
    assert build_table(tmp_path, SPEC).column("run_id").to_pylist() == ["r2"]


def test_lean_reader_equals_numpy_load_and_falls_back(tmp_path):
    arrays = {"scalar": np.asarray(1.5), "meta": np.array('{"a": "é"}'), "empty": np.zeros((0, 3), np.float32),
              "ints": np.arange(5, dtype=np.int64), "mat": np.arange(6, dtype=np.float32).reshape(2, 3)}
    np.savez(tmp_path / "a.npz", **arrays)
    np.savez_compressed(tmp_path / "b.npz", **arrays)
    for name in ("a.npz", "b.npz"):
        got = read_npz(tmp_path / name)
        with np.load(tmp_path / name) as z:
            assert set(got) == set(z.files)
            for k in z.files:
                assert got[k].dtype == z[k].dtype and got[k].shape == z[k].shape
                np.testing.assert_array_equal(got[k], z[k])
    assert read_npz(tmp_path / "a.npz", ["ints"]).keys() == {"ints"}


def test_lean_reader_refuses_an_unknown_schema_version(corpus, tmp_path):
    _, _, dirs = corpus
    rd = dirs[0]
    with np.load(rd / "audio.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta["schema_version"] = "0.9.0"
    arrays["meta"] = np.array(json.dumps(meta))
    target = tmp_path / "run"
    target.mkdir()
    for f in rd.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (target / "audio.npz").write_bytes(buf.getvalue())
    with pytest.raises(SchemaValidationError, match="schema '0.9.0'"):
        read_run_lean(target, SPEC.fields_needed())
    with pytest.raises(SchemaValidationError):
        read_run(target)


def test_cli_build_and_check_compat(corpus, tmp_path):
    root, labels, _ = corpus
    out = io.StringIO()
    with redirect_stdout(out):
        rc = cli(["build", "--artifacts", str(root), "--labels", str(labels), "--out", str(tmp_path / "d.parquet")])
    text = out.getvalue()
    assert rc == 0
    assert f"shape=(10, {pq_columns(tmp_path / 'd.parquet')})" in text
    assert "feature_schema_version=1.1.0" in text and "imputed_values=" in text
    imputed = int(text.split("imputed_values=")[1].split()[0])
    df = pd.read_parquet(tmp_path / "d.parquet")
    assert imputed == int(df[SPEC.feature_columns].isna().sum().sum()) > 0

    new = yaml.safe_load(DEFAULT_SPEC_PATH.read_text())
    new["features"] = new["features"][:-1]
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(new))
    out = io.StringIO()
    with redirect_stdout(out):
        rc = cli(["check-compat", str(DEFAULT_SPEC_PATH), str(tmp_path / "new.yaml")])
    assert rc == 1 and json.loads(out.getvalue())["kind"] == "breaking"
    with redirect_stdout(io.StringIO()):
        assert cli(["check-compat", str(DEFAULT_SPEC_PATH), str(DEFAULT_SPEC_PATH)]) == 0
        assert cli(["check-compat", str(DEFAULT_SPEC_PATH), str(tmp_path / "missing.yaml")]) == 2


def pq_columns(path: Path) -> int:
    import pyarrow.parquet as pq

    return len(pq.read_schema(path).names)


def test_an_empty_artifacts_folder_gives_an_empty_table_with_the_full_schema(tmp_path):
    table = build_table(tmp_path, SPEC)
    assert table.num_rows == 0
    assert set(raw_columns(SPEC)) <= set(table.column_names)
    assert read_table_metadata(write_parquet(table, tmp_path / "e.parquet"))["feature_spec_hash"] == SPEC.spec_hash
