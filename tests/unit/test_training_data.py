"""Training table: spec-derived columns, chronological split without channel leakage, synthetic generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import features
from demo.synthetic_table import generate_table
from training.data import (
    SPLITS,
    check_no_channel_leakage,
    columns_from_spec,
    load_table,
    parquet_metadata,
    time_split,
)

FRACTIONS = {"train": 0.7, "val": 0.1, "calib": 0.1, "test": 0.1}


@pytest.fixture(scope="module")
def spec():
    return features.load_spec()


def test_columns_come_from_the_spec(spec) -> None:
    cols = columns_from_spec(spec)
    assert cols.features == features.raw_columns(spec)
    assert cols.targets == features.target_columns(spec)
    assert cols.labels == ["views_7d", "views_14d", "views_21d", "likes_7d", "likes_14d", "likes_21d"]
    assert cols.group == "meta_age_bucket" and cols.group_labels["0"] == spec.age_buckets.labels[0]
    assert set(cols.modalities) == {"meta", "visual", "motion", "audio", "text"}
    assert sorted(c for cs in cols.modalities.values() for c in cs) == sorted(cols.features)
    assert cols.snapshot == {"views": "meta_log_views_snapshot1", "likes": "meta_log_likes_snapshot1"}


def test_synthetic_table_has_the_spec_columns_and_metadata(spec, tmp_path: Path) -> None:
    from demo.synthetic_table import write_table

    df = generate_table(300, spec, seed=1)
    for c in [*features.raw_columns(spec), *features.target_columns(spec), "platform_id", "video_id",
              "channel_id", "published_at", "age_bucket"]:
        assert c in df.columns, c
    path = write_table(df, tmp_path / "t.parquet", spec, 1)
    meta = parquet_metadata(path)
    assert meta["feature_spec_hash"] == spec.spec_hash
    assert meta["feature_schema_version"] == spec.feature_schema_version
    assert meta["feature_extractor_version"] == "synthetic"
    # same seed -> same table
    pd.testing.assert_frame_equal(df, generate_table(300, spec, seed=1))
    # masks say what is missing
    assert (df["mask__aud_rms_mean"] == df["aud_rms_mean"].notna()).all()
    loaded = load_table(path, columns_from_spec(spec), "published_at")
    assert len(loaded) == 300


def _frame(times: list[str], channels: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"published_at": pd.to_datetime(times, utc=True), "channel_id": channels,
                         "video_id": [f"v{i}" for i in range(len(times))]})


def test_time_split_is_chronological_and_disjoint(spec) -> None:
    df = generate_table(1000, spec, seed=2)
    idx, record = time_split(df, "published_at", FRACTIONS, channel_column="channel_id")
    t = df["published_at"]
    for a, b in zip(SPLITS[:-1], SPLITS[1:], strict=True):
        assert t.iloc[idx[a]].max() < t.iloc[idx[b]].min()
    allidx = np.concatenate([idx[s] for s in SPLITS])
    assert len(allidx) == len(set(allidx)) == 1000
    assert record["counts"]["train"] == pytest.approx(700, abs=2)
    assert len(record["split_hash"]) == 16 and set(record["video_ids_sha256"]) == set(SPLITS)
    # the record is deterministic
    assert time_split(df, "published_at", FRACTIONS)[1]["split_hash"] == record["split_hash"]


def test_rows_with_the_same_timestamp_never_straddle_a_cut() -> None:
    times = ["2025-01-01"] * 5 + ["2025-01-02"] * 5 + ["2025-01-03"] * 5 + ["2025-01-04"] * 5
    df = _frame(times, ["c"] * 20)
    idx, _ = time_split(df, "published_at", {"train": 0.4, "val": 0.2, "calib": 0.2, "test": 0.2})
    for s in SPLITS:
        assert df["published_at"].iloc[idx[s]].nunique() <= 2
    for a, b in zip(SPLITS[:-1], SPLITS[1:], strict=True):
        assert set(df["published_at"].iloc[idx[a]]).isdisjoint(df["published_at"].iloc[idx[b]])


def test_embargo_drops_rows_whose_labels_reach_into_the_next_split() -> None:
    days = pd.date_range("2025-01-01", periods=400, freq="D", tz="UTC")
    df = _frame([str(d) for d in days], ["c"] * 400)
    idx0, _ = time_split(df, "published_at", FRACTIONS)
    idx21, rec = time_split(df, "published_at", FRACTIONS, embargo_days=21)
    t = df["published_at"]
    assert rec["dropped_by_embargo"] > 0
    assert t.iloc[idx21["train"]].max() + pd.Timedelta(days=21) < t.iloc[idx0["val"]].min()
    assert len(idx21["test"]) == len(idx0["test"])  # the last split has no next split


def test_channel_leakage_is_detected() -> None:
    df = _frame(["2025-01-01", "2025-01-05", "2025-01-03", "2025-01-04"], ["a", "a", "a", "b"])
    leaky = {"train": np.array([0, 1]), "val": np.array([2]), "calib": np.array([3]), "test": np.array([], int)}
    with pytest.raises(AssertionError, match="channel leakage between train and val"):
        check_no_channel_leakage(df, leaky, "published_at", "channel_id")


def test_empty_split_is_an_error() -> None:
    df = _frame(["2025-01-01"] * 10, ["c"] * 10)
    with pytest.raises(ValueError, match="is empty"):
        time_split(df, "published_at", FRACTIONS)


def test_missing_spec_column_is_named(spec, tmp_path: Path) -> None:
    df = generate_table(50, spec, seed=3).drop(columns=["aud_rms_mean"])
    df.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(ValueError, match="aud_rms_mean"):
        load_table(tmp_path / "t.parquet", columns_from_spec(spec), "published_at")


def test_content_hash_ignores_run_ids_and_file_bytes_but_not_values() -> None:
    from training.data import content_hash

    df = pd.DataFrame({"video_id": ["a", "b"], "run_id": ["r1", "r2"], "x": [1.0, np.nan],
                       "feature_warnings": [np.array(["audio: empty"]), np.array([], dtype=str)]})
    base = content_hash(df)
    assert content_hash(df.assign(run_id=["r9", "r8"])) == base  # re-extraction links artifacts into new runs
    assert content_hash(df[["x", "feature_warnings", "run_id", "video_id"]]) == base  # column order
    assert content_hash(df.assign(x=[1.0, 2.0])) != base
    assert content_hash(df.assign(video_id=["b", "a"])) != base
