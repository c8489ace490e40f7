"""The pilot's sample: drawn with probability proportional to predicted cost, weighted back to the whole corpus."""

from __future__ import annotations

import pytest

from planning.pilot import pick_pilot_pps, pilot_measurements


def test_cost_proportional_pilot_reaches_the_expensive_videos_and_skips_cached_ones():
    costs = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 20.0, 1.0, 30.0, 1.0]
    cached = [set()] * 10
    picked, weights = pick_pilot_pps(cached, 2, costs)
    # the cumulative cost (58) is cut at 14.5 and 43.5: both points fall in the two long videos
    assert picked == [6, 8]
    assert weights == pytest.approx([1.2, 0.8])  # 1/cost, mean 1
    cached = [set()] * 8 + [{"frames"}, set()]
    assert 8 not in pick_pilot_pps(cached, 2, costs)[0]


def test_a_video_hit_twice_is_picked_once_and_weighs_twice():
    picked, weights = pick_pilot_pps([set()] * 4, 3, [1.0, 1.0, 1.0, 100.0])
    assert picked[-1] == 3 and len(picked) < 3 + 1
    assert len(picked) == len(weights)


def test_without_costs_the_pilot_is_the_first_uncached_videos():
    assert pick_pilot_pps([{"x"}, set(), set(), set()], 2, [0.0] * 4) == ([1, 2], [1.0, 1.0])
    assert pick_pilot_pps([set()] * 2, 3, [1.0, 2.0]) == ([0, 1], [1.0, 1.0])
    assert pick_pilot_pps([set()] * 3, 0, [1.0] * 3) == ([], [])


def test_weighted_measurements_estimate_the_corpus_ratio():
    def e(latency):
        return {"latency_s": latency, "cache_hit": False, "status": "ok"}

    # a cheap video measured 1.0x its prediction and a costly one 2.0x: weighted by 1/cost each counts alike
    manifests = [{"components": {"faces": e(1.0)}}, {"components": {"faces": e(20.0)}}]
    predicted = [{"faces": 1.0}, {"faces": 10.0}]
    measured, pred, _ = pilot_measurements(manifests, predicted, wall_s=21.0, weights=[1.0, 0.1])
    assert measured["faces"] / pred["faces"] == pytest.approx(1.5)
    measured, pred, _ = pilot_measurements(manifests, predicted, wall_s=21.0)
    assert measured["faces"] / pred["faces"] == pytest.approx(21.0 / 11.0)
