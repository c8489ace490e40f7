"""The mid-run re-plan (planning.recalibrate): which videos run before it, and what it changes."""

from __future__ import annotations

import pytest

from planning.pilot import FACTOR_BOUNDS
from planning.recalibrate import RATIO_BOUNDS, head_size, makespan_ratio, parallel_probe, scaled_factors


def test_the_first_part_holds_the_share_of_predicted_seconds_not_of_videos():
    # one long video first: it alone is 60% of the predicted seconds
    assert head_size([6.0, 1.0, 1.0, 1.0, 1.0], share=0.3) == 1
    # equal videos: ceil(30% of 10)
    assert head_size([1.0] * 10, share=0.3) == 3


def test_the_first_part_has_a_video_per_lane_and_leaves_as_many_for_the_second():
    assert head_size([1.0] * 10, share=0.05, min_videos=3) == 3
    assert head_size([1.0] * 8, share=0.9, min_videos=3) == 5  # 3 left for the second part's lanes
    assert head_size([1.0] * 5, share=0.3, min_videos=3) == 0  # too few videos for two parts of 3 lanes


def test_the_ratio_is_clamped_and_neutral_without_a_prediction():
    assert makespan_ratio(12.0, 10.0) == pytest.approx(1.2)
    assert makespan_ratio(100.0, 10.0) == RATIO_BOUNDS[1]
    assert makespan_ratio(1.0, 10.0) == RATIO_BOUNDS[0]
    assert makespan_ratio(5.0, 0.0) == 1.0


def test_every_component_is_scaled_including_those_the_pilot_did_not_measure():
    f = scaled_factors({"faces": 2.0, "audio": 5.0}, 1.5, ["faces", "audio", "visual", "frames"])
    assert f == {"audio": FACTOR_BOUNDS[1], "faces": 3.0, "frames": 1.5, "visual": 1.5}


def test_the_parallel_step_takes_a_video_per_lane_of_about_the_median_cost():
    costs = [9.0, 1.0, 5.0, 4.0, 6.0, 2.0, 5.5, 8.0, 3.0]
    picked = parallel_probe(costs, lanes=3)
    assert len(picked) == 3 and picked == sorted(picked)
    assert sorted(costs[i] for i in picked) == [4.0, 5.0, 5.5]  # the middle of the cost order: they end together


def test_no_parallel_step_for_one_lane_or_a_rest_it_would_not_leave_larger():
    assert parallel_probe([1.0] * 20, lanes=1) == []
    assert parallel_probe([1.0] * 6, lanes=3) == []  # 3 would leave 3: not more than it takes
    assert len(parallel_probe([1.0] * 7, lanes=3)) == 3
