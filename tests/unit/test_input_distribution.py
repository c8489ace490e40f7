"""features.distribution on three-row arrays: quantiles, missing rates, the out-of-distribution rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from features.distribution import InputDistribution, input_distribution, out_of_distribution


def test_three_rows_quantiles_and_missing_rate() -> None:
    x = np.array([[0.0, 1.0, np.nan], [1.0, 1.0, np.nan], [2.0, 1.0, 5.0]])
    d = input_distribution(x, ["a", "const", "sparse"])
    a = d.features["a"]
    assert (a.min, a.q50, a.max, a.missing_rate) == (0.0, 1.0, 2.0, 0.0)
    assert a.q001 == pytest.approx(0.002) and a.q999 == pytest.approx(1.998)
    assert d.features["sparse"].missing_rate == pytest.approx(2 / 3)
    assert InputDistribution.from_dict(d.to_dict()) == d
    assert all(q is not None and math.isfinite(q) for q in (a.q001, a.q01, a.q50, a.q99, a.q999))


def test_out_of_distribution_names_each_feature_and_why() -> None:
    x = np.array([[0.0, 1.0, np.nan], [1.0, 1.0, np.nan], [2.0, 1.0, 5.0]])
    d = input_distribution(x, ["a", "const", "sparse"])
    assert out_of_distribution(d, {"a": 1.0, "const": 1.0, "sparse": float("nan")}).features == []
    ood = out_of_distribution(d, {"a": 50.0, "const": 0.0, "sparse": 5.0, "unknown": 1e9})
    assert ood.features == ["a", "const"]
    assert "above the training 99.9% quantile" in ood.reasons["a"]
    assert "below" in ood.reasons["const"]  # a constant in training: any other value is unseen
    missing = out_of_distribution(d, {"a": float("nan"), "const": 1.0})
    assert missing.features == ["a"] and "never missing" in missing.reasons["a"]


def test_all_missing_column_and_bad_shape() -> None:
    d = input_distribution(np.array([[np.nan], [np.nan], [np.nan]]), ["gone"])
    assert d.features["gone"].q50 is None and d.features["gone"].missing_rate == 1.0
    assert out_of_distribution(d, {"gone": 3.0}).features == ["gone"]
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        input_distribution(np.zeros((3, 3)), ["a", "b"])
