"""Every aggregation and transform on tiny arrays, through the segmented primitives and through a spec."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import yaml

from features.compute import (
    compute_block,
    pool_rows,
    project,
    projection_matrix,
    segment_max,
    segment_mean,
    segment_min,
    segment_percentile,
    segment_rate,
    segment_std,
    segment_sum,
)
from features.io import RunData
from features.spec import DEFAULT_SPEC_PATH, parse_spec

# three runs: [1, 2, 3], [], [4, 10]
VALUES = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
LENGTHS = np.array([3, 0, 2])


def _nan_equal(a, b):
    np.testing.assert_array_equal(np.asarray(a, np.float64), np.asarray(b, np.float64))


def test_segment_reductions_on_three_runs_with_an_empty_one():
    _nan_equal(segment_sum(VALUES, LENGTHS), [6.0, 0.0, 14.0])
    _nan_equal(segment_mean(VALUES, LENGTHS), [2.0, np.nan, 7.0])
    _nan_equal(segment_max(VALUES, LENGTHS), [3.0, np.nan, 10.0])
    _nan_equal(segment_min(VALUES, LENGTHS), [1.0, np.nan, 4.0])
    np.testing.assert_allclose(segment_std(VALUES, LENGTHS), [np.std([1, 2, 3]), np.nan, 3.0])
    _nan_equal(segment_rate(VALUES, LENGTHS, threshold=2.0), [1 / 3, np.nan, 1.0])


def test_segment_percentile_matches_numpy_linear_method():
    _nan_equal(segment_percentile(VALUES, LENGTHS, 50), [2.0, np.nan, 7.0])
    rng = np.random.default_rng(0)
    lengths = np.array([1, 5, 0, 8, 2])
    values = rng.normal(size=lengths.sum())
    starts = np.cumsum(lengths) - lengths
    for q in (0, 10, 25, 50, 75, 90, 99):
        got = segment_percentile(values, lengths, q)
        for i, (s, n) in enumerate(zip(starts, lengths, strict=True)):
            want = np.percentile(values[s:s + n], q) if n else np.nan
            _nan_equal(got[i], want)  # same lerp: bit-identical to numpy


def test_segments_are_independent_of_their_neighbours():
    lengths = np.array([3, 0, 2])
    alone = segment_std(np.array([4.0, 10.0]), np.array([2]))
    assert segment_std(VALUES, lengths)[2] == alone[0]


def test_pool_rows_means_over_fields_and_rows():
    a = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])  # run0: 2 rows, run1: 0 rows, run2: 1 row
    b = np.array([[2.0, 4.0], [7.0, 1.0]])  # run0: 1 row, run1: 1 row
    pooled, rows = pool_rows([(a, np.array([2, 0, 1])), (b, np.array([1, 1, 0]))])
    _nan_equal(rows, [3, 1, 1])
    np.testing.assert_allclose(pooled, [[2.0, 2.0], [7.0, 1.0], [5.0, 5.0]])
    pooled, rows = pool_rows([(np.zeros((0, 2)), np.array([0, 0]))])
    assert np.isnan(pooled).all() and rows.tolist() == [0, 0]


def test_projection_is_seeded_fixed_and_equals_matmul():
    m1, m2 = projection_matrix(3, 4, 2), projection_matrix(3, 4, 2)
    assert m1 is m2 and m1.shape == (4, 2) and not m1.flags.writeable
    assert not np.array_equal(projection_matrix(4, 4, 2), m1)
    fresh = np.random.default_rng([3, 4]).standard_normal((4, 2)) / math.sqrt(2)
    np.testing.assert_array_equal(m1, fresh)
    # golden values: a NumPy that changed the Generator stream would silently change every embedding feature
    golden = [[0.5497479136114629, -0.1330053363649411], [-0.3986657456497764, 0.4518909350582087],
              [-0.7779679485545477, -0.009711240031166645]]
    np.testing.assert_array_equal(projection_matrix(1701, 3, 2), golden)
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    np.testing.assert_allclose(project(x, m1), x @ m1)
    np.testing.assert_array_equal(project(x[1:2], m1)[0], project(x, m1)[1])  # row-independent, bit for bit


# ---- through a spec ----------------------------------------------------------------------------------

BASE = yaml.safe_load(DEFAULT_SPEC_PATH.read_text())


def _spec(*features: dict):
    raw = copy.deepcopy(BASE)
    crit = {"name": "crit_age", "modality": "meta", "critical": True, "aggregation": "value",
            "source": {"component": "metadata", "field": "video_age_hours_at_snapshot1"}}
    raw["features"] = [crit, *features]
    return parse_spec(raw)


def _f(name: str, component: str, field: str, aggregation: str, **kw) -> dict:
    return {"name": name, "modality": "visual", "source": {"component": component, "field": field},
            "aggregation": aggregation, "dtype": "float64", **kw}


def _run(**components) -> RunData:
    arrays = {"metadata": {"video_age_hours_at_snapshot1": np.asarray(30.0)}}
    status = {"metadata": "ok"}
    for comp, (arrs, st) in components.items():
        arrays[comp] = arrs
        status[comp] = st
    return RunData(manifest={"metadata": {"channel": {"subscribers": 1000}}}, arrays=arrays, status=status)


def test_every_aggregation_of_the_spec_on_tiny_runs():
    spec = _spec(
        _f("b_mean", "frames", "brightness", "mean"), _f("b_max", "frames", "brightness", "max"),
        _f("b_min", "frames", "brightness", "min"), _f("b_std", "frames", "brightness", "std"),
        _f("b_sum", "frames", "brightness", "sum"), _f("b_p50", "frames", "brightness", "p50"),
        _f("b_p90", "frames", "brightness", "p90"), _f("b_count", "frames", "brightness", "count"),
        _f("b_rate", "frames", "brightness", "rate", threshold=0.25),
        _f("aspect", "frames", "width", "ratio", source={"component": "frames", "field": "width",
                                                          "denominator": "height"}),
        _f("fps", "frames", "fps", "value"),
        _f("fps_log", "frames", "fps", "value", transform="log1p"),
        _f("age_bucket", "metadata", "video_age_hours_at_snapshot1", "value", transform="age_bucket"),
        {"name": "subs", "modality": "meta", "source": {"metadata": "channel.subscribers"}, "aggregation": "value",
         "dtype": "float64"},
        {"name": "emb", "modality": "visual", "source": {"component": "visual", "field": "embeddings"},
         "aggregation": "embedding_mean", "projection": {"dim": 2, "seed": 1}, "dtype": "float64"},
        {"name": "emb_norm", "modality": "visual", "source": {"component": "visual", "field": "embeddings"},
         "aggregation": "embedding_mean_norm", "dtype": "float64"},
        {"name": "logmel_mean", "modality": "audio", "source": {"component": "audio", "field": "logmel"},
         "aggregation": "mean", "dtype": "float64"},
    )
    frames = {"brightness": np.array([0.1, 0.2, 0.6]), "width": np.asarray(1280.0),
              "height": np.asarray(720.0), "fps": np.asarray(29.0)}
    emb = np.array([[1.0, 0.0], [0.0, 1.0]])
    run = _run(frames=(frames, "ok"), visual=({"embeddings": emb}, "ok"),
               audio=({"logmel": np.array([[1.0, 2.0], [3.0, 6.0]])}, "ok"))
    block = compute_block([run], spec)
    c = {k: v[0] for k, v in block.columns.items()}
    b = frames["brightness"]
    assert c["b_mean"] == pytest.approx(0.3) and c["b_max"] == 0.6 and c["b_min"] == 0.1
    assert c["b_std"] == pytest.approx(np.std(b)) and c["b_sum"] == pytest.approx(0.9)
    assert c["b_p50"] == 0.2 and c["b_p90"] == pytest.approx(np.percentile(b, 90))
    assert c["b_count"] == 3 and c["b_rate"] == pytest.approx(1 / 3)
    assert c["aspect"] == pytest.approx(16 / 9) and c["fps"] == 29.0 and c["fps_log"] == pytest.approx(math.log(30))
    assert c["age_bucket"] == 2.0  # 30 h: [24, 72) -> bucket 2
    assert c["subs"] == 1000.0
    want = np.array([0.5, 0.5]) @ projection_matrix(1, 2, 2)
    np.testing.assert_allclose([c["emb_00"], c["emb_01"]], want)
    assert c["emb_norm"] == pytest.approx(math.sqrt(0.5))
    assert c["logmel_mean"] == 3.0  # (W, B) fields are flattened per run
    assert block.warnings == [[]] and block.critical_missing == [[]]


def test_nan_elements_are_ignored_ratio_by_zero_and_empty_arrays_are_missing():
    spec = _spec(_f("b_mean", "frames", "brightness", "mean"), _f("b_count", "frames", "brightness", "count"),
                 _f("aspect", "frames", "width", "ratio", source={"component": "frames", "field": "width",
                                                                   "denominator": "height"}))
    with_nan = _run(frames=({"brightness": np.array([0.2, np.nan, 0.4]), "width": np.asarray(10.0),
                             "height": np.asarray(0.0)}, "ok"))
    empty = _run(frames=({"brightness": np.zeros(0), "width": np.asarray(10.0), "height": np.asarray(5.0)}, "ok"))
    block = compute_block([with_nan, empty], spec)
    assert block.columns["b_mean"][0] == pytest.approx(0.3)
    assert block.columns["b_count"].tolist() == [3.0, 0.0]  # count is of elements, NaN included
    assert math.isnan(block.columns["aspect"][0]) and block.columns["aspect"][1] == 2.0
    assert math.isnan(block.columns["b_mean"][1]) and not block.present["b_mean"][1]
    assert block.warnings[1] == ["optional features missing (no value): b_mean"]
    assert block.warnings[0] == ["optional features missing (no value): aspect"]


def test_dtype_is_applied_and_log1p_of_invalid_is_missing():
    spec = _spec({"name": "v32", "modality": "meta", "source": {"component": "metadata", "field": "views_snapshot1"},
                  "aggregation": "value", "transform": "log1p"})
    run = _run()
    run.arrays["metadata"]["views_snapshot1"] = np.asarray(1e6 + 0.1)
    bad = _run()
    bad.arrays["metadata"]["views_snapshot1"] = np.asarray(-3.0)
    block = compute_block([run, bad], spec)
    assert block.columns["v32"].dtype == np.float32
    assert block.columns["v32"][0] == np.float32(math.log1p(1e6 + 0.1))
    assert math.isnan(block.columns["v32"][1])
