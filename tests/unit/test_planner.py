"""The batching planner on synthetic checklists: the design card's example, tight budgets, several devices,
insufficient memory, residency (passes) and DAG order. Pure: no server, no files."""

from __future__ import annotations

import pytest

from common.errors import InsufficientMemory
from planning.checklist import Checklist
from planning.planner import plan
from planning.simulate import Stage, simulate
from planning.specs import BatchPlan, ComponentSpec, Device, VideoSpec
from testsupport.planning import FRAMES, GB, OD, SC, checklist, entry, videos


def seed_checklist(**kw) -> Checklist:
    """The design example: object detection 1 GB / 7 s per frame, scene classification 1.5 GB / 11 s per frame."""
    return checklist(entry("od", per_unit_bytes=1 * GB, seconds_per_unit=7.0, **kw),
                     entry("sc", per_unit_bytes=1.5 * GB, seconds_per_unit=11.0, **kw))


def test_seed_example_two_hd_videos_16gb():
    """2 HD videos, 16 GB free (25% margin -> 12 GB usable): 2 videos in parallel fit with 3 and 2 frames per
    request, 1 video with 6 and 4; the planner compares them by predicted makespan and picks the best."""
    cl = seed_checklist()
    devs = [Device("gpu0", "gpu", 16 * GB)]
    vids = videos(2, 24)
    best = plan(vids, [FRAMES, OD, SC], devs, cl, safety_margin=0.25)
    two = plan(vids, [FRAMES, OD, SC], devs, cl, safety_margin=0.25, parallel_options=(2,))
    one = plan(vids, [FRAMES, OD, SC], devs, cl, safety_margin=0.25, parallel_options=(1,))
    assert (two.videos_in_parallel, two.batch_sizes) == (2, {"od": 3, "sc": 2})
    assert (one.videos_in_parallel, one.batch_sizes) == (1, {"od": 6, "sc": 4})
    for p in (two, one):
        assert p.predicted_peak("gpu0") == 12 * GB <= p.devices["gpu0"]["budget_bytes"]
    # one serial GPU and per-frame times that do not improve with batching: both take 2 * 24 * (7 + 11) s
    assert two.predicted_makespan_s == pytest.approx(one.predicted_makespan_s) == pytest.approx(2 * 24 * 18)
    assert best.predicted_makespan_s == pytest.approx(min(two.predicted_makespan_s, one.predicted_makespan_s))
    assert best.batch_sizes == {"od": 6, "sc": 4}  # the tie goes to fewer requests
    assert best.candidates >= 2


def test_seed_example_two_gpus_prefers_two_videos_in_parallel():
    """With two GPUs, the two models run on different devices and two videos overlap: faster than one video."""
    cl = seed_checklist()
    devs = [Device("gpu0", "gpu", 16 * GB), Device("gpu1", "gpu", 16 * GB)]
    p = plan(videos(2, 24), [FRAMES, OD, SC], devs, cl, safety_margin=0.25)
    assert p.device_of["od"] != p.device_of["sc"]
    assert p.videos_in_parallel == 2
    # a pipeline: video 2's detection overlaps video 1's classification; the classifier GPU is the bottleneck
    assert p.predicted_makespan_s == pytest.approx(24 * 7 + 2 * 24 * 11)
    for d in ("gpu0", "gpu1"):
        assert p.predicted_peak(d) <= p.devices[d]["budget_bytes"]


def test_more_videos_in_parallel_must_buy_more_than_the_minimum_gain():
    """Two GPUs, but od is 100x cheaper than sc: a second video in parallel only hides od's 0.1 s per frame
    (predicted 0.5% faster). Below PARALLEL_MIN_GAIN the planner keeps one video at a time (what more lanes cost
    beyond the model -- contention on the cores -- is not simulated); the faster candidate stays on record."""
    from planning.planner import PARALLEL_MIN_GAIN

    cl = checklist(entry("od", per_unit_bytes=1 * GB, seconds_per_unit=0.1),
                   entry("sc", per_unit_bytes=1.5 * GB, seconds_per_unit=10.0))
    devs = [Device("gpu0", "gpu", 16 * GB), Device("gpu1", "gpu", 16 * GB)]
    p = plan(videos(2, 24), [FRAMES, OD, SC], devs, cl, safety_margin=0.25)
    assert p.videos_in_parallel == 1
    assert p.predicted_makespan_s == pytest.approx(2 * 24 * 10.1)
    faster = [a for a in p.alternatives if a["videos_in_parallel"] == 2]
    assert faster and min(a["predicted_makespan_s"] for a in faster) < p.predicted_makespan_s
    assert min(a["predicted_makespan_s"] for a in faster) > p.predicted_makespan_s * (1 - PARALLEL_MIN_GAIN)


def test_sublinear_batching_curve_prefers_big_batches_and_reports_makespan():
    cl = checklist(entry("od", per_unit_bytes=0.1 * GB, seconds_per_unit=1.0, overhead_s=0.5, sublinear=0.5),
                   entry("sc", per_unit_bytes=0.1 * GB, seconds_per_unit=1.0, overhead_s=0.5, sublinear=0.5))
    p = plan(videos(4, 64), [FRAMES, OD, SC], [Device("gpu0", "gpu", 80 * GB)], cl)
    assert p.batch_sizes == {"od": 64, "sc": 64}
    naive = plan(videos(4, 64), [FRAMES, OD, SC], [Device("gpu0", "gpu", 80 * GB)], cl,
                 memory_budget=int(0.15 * GB), parallel_options=(1,))
    assert naive.batch_sizes == {"od": 1, "sc": 1}
    assert naive.passes == [["frames", "od"], ["sc"]]  # both tier-1 models do not fit together
    assert naive.predicted_makespan_s > 5 * p.predicted_makespan_s


def test_tight_budget_shrinks_batches_and_parallelism_within_budget():
    cl = seed_checklist()
    vids = videos(6, 32)
    roomy = plan(vids, [FRAMES, OD, SC], [Device("gpu0", "gpu", 200 * GB)], cl)
    tight = plan(vids, [FRAMES, OD, SC], [Device("gpu0", "gpu", 200 * GB)], cl, memory_budget=5 * GB)
    assert sum(tight.batch_sizes.values()) * tight.videos_in_parallel < \
        sum(roomy.batch_sizes.values()) * roomy.videos_in_parallel
    assert tight.predicted_peak("gpu0") <= 5 * GB
    assert tight.devices["gpu0"]["budget_bytes"] == 5 * GB
    exact = plan(vids, [FRAMES, OD, SC], [Device("gpu0", "gpu", 200 * GB)], cl, memory_budget=int(2.5 * GB))
    assert exact.batch_sizes == {"od": 1, "sc": 1} and exact.videos_in_parallel == 1


def test_estimate_margin_keeps_part_of_the_budget_free_for_the_memory_models_error():
    cl, vids, gpu = seed_checklist(), videos(6, 32), [Device("gpu0", "gpu", 200 * GB)]
    full = plan(vids, [FRAMES, OD, SC], gpu, cl, memory_budget=5 * GB)
    kept = plan(vids, [FRAMES, OD, SC], gpu, cl, memory_budget=5 * GB, estimate_margin=0.2)
    assert kept.predicted_peak("gpu0") <= 4 * GB < full.predicted_peak("gpu0") <= 5 * GB
    assert kept.devices["gpu0"]["budget_bytes"] == 5 * GB and kept.devices["gpu0"]["plannable_bytes"] == 4 * GB
    assert "20% of the budget kept for estimate error" in kept.describe()
    with pytest.raises(InsufficientMemory):  # batch 1 of sc (1.5 GB) fits 2 GB, not 2 GB less 30%
        plan(vids, [FRAMES, OD, SC], gpu, cl, memory_budget=2 * GB, estimate_margin=0.3)


def test_fixed_model_memory_and_decode_memory_count_against_the_budget():
    cl = checklist(entry("od", per_unit_bytes=10**8, seconds_per_unit=0.01, overhead_s=0.01, fixed=2 * GB, kind="cpu"),
                   decode_bytes=10**7)
    od_only = [FRAMES, ComponentSpec("od", ("frames",), uses_model=True, uses_frames=True)]
    p = plan(videos(4, 64, comps=("od",)), od_only, [Device("cpu", "cpu", 10 * GB, concurrency=2)], cl,
             memory_budget=3 * GB)
    assert p.predicted_peak("cpu") <= 3 * GB
    # 2 GB model + P * (64 frames * 10 MB decoded + batch * 100 MB) <= 3 GB
    P, b = p.videos_in_parallel, p.batch_sizes["od"]
    assert 2 * GB + P * (64 * 10**7 + b * 10**8) <= 3 * GB


def test_insufficient_memory_names_component_need_and_free():
    cl = checklist(entry("od", per_unit_bytes=1 * GB, seconds_per_unit=7.0, fixed=3 * GB),
                   entry("sc", per_unit_bytes=9 * GB, seconds_per_unit=11.0, fixed=2 * GB))
    with pytest.raises(InsufficientMemory) as err:
        plan(videos(2, 8), [FRAMES, OD, SC], [Device("gpu0", "gpu", 10 * GB)], cl)
    exc = err.value
    assert exc.code == "insufficient_gpu_memory"
    assert exc.details["component"] == "sc" and exc.details["device"] == "gpu0"
    assert exc.details["need_bytes"] == 11 * GB and exc.details["free_bytes"] == 10 * GB
    assert exc.message.startswith("component 'sc' (sc_model:1) needs 10.24 GiB on gpu0 at batch 1")
    assert "only 7.45 GiB is usable there (9.31 GiB free, 20% safety margin)" in exc.message


def test_insufficient_memory_on_cpu_uses_the_cpu_code():
    cl = checklist(entry("od", per_unit_bytes=5 * GB, seconds_per_unit=1.0, kind="cpu"))
    with pytest.raises(InsufficientMemory) as err:
        plan(videos(1, 8, comps=("od",)), [FRAMES, OD], [Device("cpu", "cpu", 4 * GB, concurrency=2)], cl)
    assert err.value.code == "insufficient_memory"
    assert err.value.details["component"] == "od"
    assert str(err.value).startswith("insufficient_memory: component 'od'")


def test_component_that_fits_on_one_of_several_gpus_goes_there():
    cl = checklist(entry("od", per_unit_bytes=1 * GB, seconds_per_unit=1.0, fixed=20 * GB),
                   entry("sc", per_unit_bytes=1 * GB, seconds_per_unit=1.0, fixed=1 * GB))
    devs = [Device("gpu0", "gpu", 8 * GB), Device("gpu1", "gpu", 40 * GB)]
    p = plan(videos(2, 16), [FRAMES, OD, SC], devs, cl)
    assert p.device_of["od"] == "gpu1"
    for d in ("gpu0", "gpu1"):
        assert p.predicted_peak(d) <= p.devices[d]["budget_bytes"]


def test_three_gpus_spread_three_models():
    ents = [entry(n, per_unit_bytes=0.5 * GB, seconds_per_unit=1.0, overhead_s=0.1) for n in ("a", "b", "c")]
    comps = [FRAMES] + [ComponentSpec(n, ("frames",), uses_model=True, uses_frames=True) for n in ("a", "b", "c")]
    devs = [Device(f"gpu{i}", "gpu", 16 * GB) for i in range(3)]
    p = plan(videos(6, 16, comps=("a", "b", "c")), comps, devs, checklist(*ents))
    assert len({p.device_of[n] for n in ("a", "b", "c")}) == 3
    assert p.videos_in_parallel >= 3


def test_dag_order_is_respected_whatever_the_input_order():
    cl = seed_checklist()
    pacing = ComponentSpec("pacing", ("od", "sc"))
    p = plan(videos(2, 8), [pacing, SC, OD, FRAMES], [Device("gpu0", "gpu", 64 * GB)], cl)
    order = [c for ps in p.passes for c in ps]
    assert order.index("frames") < order.index("od") < order.index("pacing")
    assert order.index("sc") < order.index("pacing")
    assert list(p.components) == order


def test_tier1_models_rotate_in_passes_when_memory_forces_it():
    cl = checklist(entry("vis", per_unit_bytes=10**7, seconds_per_unit=0.1, fixed=2 * GB, tier=0),
                   entry("od", per_unit_bytes=10**7, seconds_per_unit=0.1, fixed=3 * GB),
                   entry("sc", per_unit_bytes=10**7, seconds_per_unit=0.1, fixed=3 * GB))
    vis = ComponentSpec("vis", ("frames",), tier=0, uses_model=True, uses_frames=True)
    pacing = ComponentSpec("pacing", ("vis", "sc"))
    comps = [FRAMES, vis, OD, SC, pacing]
    vids = videos(2, 8, comps=("vis", "od", "sc"))
    one = plan(vids, comps, [Device("gpu0", "gpu", 20 * GB)], cl)
    assert len(one.passes) == 1
    p = plan(vids, comps, [Device("gpu0", "gpu", 20 * GB)], cl, memory_budget=int(5.5 * GB))
    assert p.passes == [["frames", "vis", "od"], ["sc", "pacing"]]
    assert p.resident == [{"gpu0": ["od", "vis"]}, {"gpu0": ["sc", "vis"]}]  # vis (tier 0) stays loaded
    assert p.predicted_peak("gpu0") <= int(5.5 * GB)
    counted = plan(vids, comps, [Device("gpu0", "gpu", 20 * GB)], cl, max_loaded_models_per_device=2)
    assert len(counted.passes) == 2 and all(len(r["gpu0"]) <= 2 for r in counted.resident)
    assert counted.predicted_makespan_s > one.predicted_makespan_s  # reload + decode again


def test_plan_describes_itself():
    p = plan(videos(2, 24), [FRAMES, OD, SC], [Device("gpu0", "gpu", 16 * GB)], seed_checklist(), safety_margin=0.25)
    d = p.to_dict()
    assert d["videos_in_parallel"] == 1 and d["batch_sizes"] == {"od": 6, "sc": 4}
    assert d["devices"]["gpu0"]["predicted_peak_bytes"] == 12 * GB
    assert d["checklist"]["hardware"] == "synthetic"
    text = p.describe()
    assert "1 in parallel" in text and "od_model:1" in text and "batch   6" in text
    assert isinstance(p, BatchPlan)


def test_simulate_processor_sharing_and_instance_exclusivity():
    # two jobs, each 1 s on one exclusive instance: serial even with two lanes
    jobs = [[Stage(1.0, (("cpu", 1.0),), instance="m")] for _ in range(2)]
    assert simulate(jobs, 2, {"cpu": 2}) == pytest.approx(2.0)
    # two different instances on 2 cores run together; on 1 core they share it
    jobs = [[Stage(1.0, (("cpu", 1.0),), instance="a")], [Stage(1.0, (("cpu", 1.0),), instance="b")]]
    assert simulate(jobs, 2, {"cpu": 2}) == pytest.approx(1.0)
    assert simulate(jobs, 2, {"cpu": 1}) == pytest.approx(2.0)
    # one lane: sum of the stages
    assert simulate(jobs, 1, {"cpu": 2}) == pytest.approx(2.0)


def test_a_request_that_spreads_over_both_cores_gains_nothing_from_a_second_lane():
    # what curve.cpu_ratio feeds into the server stage's demand: OpenCV's Haar keeps ~2 cores busy per request
    two_cores = [[Stage(1.0, (("cpu", 2.0),), instance="a")], [Stage(1.0, (("cpu", 2.0),), instance="b")]]
    assert simulate(two_cores, 2, {"cpu": 2}) == pytest.approx(2.0)
    assert simulate(two_cores, 1, {"cpu": 2}) == pytest.approx(2.0)


def test_a_slower_machine_than_the_checklists_scales_cpu_times_not_gpu_times():
    cpu_cl = checklist(entry("od", per_unit_bytes=1e6, seconds_per_unit=0.01, kind="cpu"),
                       entry("sc", per_unit_bytes=1e6, seconds_per_unit=0.02, kind="cpu"), decode_s=0.001)
    as_measured = plan(videos(4, 30), [FRAMES, OD, SC], [Device("cpu", "cpu", 8 * GB, concurrency=2)], cpu_cl)
    slower = plan(videos(4, 30), [FRAMES, OD, SC], [Device("cpu", "cpu", 8 * GB, concurrency=2, speed_ratio=1.5)],
                  cpu_cl)
    assert slower.predicted_makespan_s == pytest.approx(1.5 * as_measured.predicted_makespan_s, rel=1e-6)
    assert slower.devices["cpu"]["speed_ratio"] == 1.5 and "CPU x1.50" in slower.describe()
    gpu = [Device("cpu", "cpu", 8 * GB, concurrency=2, speed_ratio=1.5), Device("gpu0", "gpu", 16 * GB)]
    on_gpu = plan(videos(2, 24), [FRAMES, OD, SC], gpu, seed_checklist(), safety_margin=0.25)
    ref = plan(videos(2, 24), [FRAMES, OD, SC], [gpu[0].__class__("cpu", "cpu", 8 * GB, concurrency=2), gpu[1]],
               seed_checklist(), safety_margin=0.25)
    assert on_gpu.predicted_makespan_s == pytest.approx(ref.predicted_makespan_s)  # GPU seconds as measured


def test_speed_ratio_of_a_checklist_with_and_without_a_probe():
    from planning.checklist import SPEED_RATIO_BOUNDS, speed_ratio
    from planning.probes import speed_probe

    cl = seed_checklist()
    assert speed_ratio(cl) == 1.0  # no probe recorded: times as measured
    probed = cl.model_copy(update={"speed_probe_s": 0.004})
    assert speed_ratio(probed, now_s=0.006) == pytest.approx(1.5)
    assert speed_ratio(probed, now_s=0.005) == 1.0  # within the probe's own scatter
    assert speed_ratio(probed, now_s=0.002) == pytest.approx(0.5)
    assert speed_ratio(probed, now_s=1.0) == SPEED_RATIO_BOUNDS[1]  # clamped: a probe is no reason to panic
    t = speed_probe(repeats=2)
    assert 0 < t < 1.0


def test_request_time_factor_scales_server_time_on_every_device():
    base = seed_checklist()
    slower = base.model_copy(update={"request_time_factor": 1.25})
    gpu = [Device("gpu0", "gpu", 16 * GB)]
    p0 = plan(videos(2, 24), [FRAMES, OD, SC], gpu, base, safety_margin=0.25)
    p1 = plan(videos(2, 24), [FRAMES, OD, SC], gpu, slower, safety_margin=0.25)
    assert p1.predicted_makespan_s == pytest.approx(1.25 * p0.predicted_makespan_s)
    assert p1.components["od"].predicted_server_s == pytest.approx(1.25 * p0.components["od"].predicted_server_s)
    assert p1.checklist["request_time_factor"] == 1.25


def test_pilot_time_factors_scale_that_components_stages_and_are_recorded():
    from planning.planner import predicted_component_seconds

    cpu_cl = checklist(entry("od", per_unit_bytes=1e6, seconds_per_unit=0.01, kind="cpu"),
                       entry("sc", per_unit_bytes=1e6, seconds_per_unit=0.02, kind="cpu"), decode_s=0.001)
    dev = [Device("cpu", "cpu", 8 * GB, concurrency=2)]
    vids, comps = videos(3, 30), [FRAMES, OD, SC]
    base = plan(vids, comps, dev, cpu_cl)
    per_video = predicted_component_seconds(vids, comps, dev, cpu_cl, base.batch_sizes)
    assert len(per_video) == 3 and per_video[0]["frames"] == pytest.approx(30 * 0.001)  # decode is the frames stage
    assert per_video[0]["od"] == pytest.approx(base.components["od"].predicted_server_s / 3)
    slow_od = predicted_component_seconds(vids, comps, dev, cpu_cl, base.batch_sizes, time_factors={"od": 2.0})
    assert slow_od[0]["od"] == pytest.approx(2 * per_video[0]["od"]) and slow_od[0]["sc"] == per_video[0]["sc"]
    calibrated = plan(vids, comps, dev, cpu_cl, time_factors={"od": 2.0, "frames": 3.0}, video_overhead_s=0.05)
    assert calibrated.batch_sizes == base.batch_sizes  # a uniform factor does not change the best batch here
    assert calibrated.components["od"].predicted_server_s == pytest.approx(2 * base.components["od"].predicted_server_s)
    assert calibrated.predicted_makespan_s > base.predicted_makespan_s
    assert calibrated.calibration == {"time_factors": {"od": 2.0, "frames": 3.0}, "video_overhead_s": 0.05}
    assert "od x2.00" in calibrated.describe() and calibrated.to_dict()["calibration"]["time_factors"]["frames"] == 3.0
    assert base.calibration == {}


def test_pilot_factors_are_clamped_and_need_something_predicted():
    from planning.pilot import FACTOR_BOUNDS, pilot_factors

    f = pilot_factors({"a": 1.5, "b": 100.0, "c": 0.001, "d": 0.2}, {"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.0})
    assert f == {"a": 1.5, "b": FACTOR_BOUNDS[1], "c": FACTOR_BOUNDS[0]}  # d: nothing predicted to compare


def test_pilot_measurements_skip_cache_hits_and_charge_unmodelled_work_per_video():
    from planning.pilot import pilot_measurements

    def e(latency, hit=False, status="ok"):
        return {"latency_s": latency, "cache_hit": hit, "status": status}

    manifests = [{"components": {"frames": e(0.4), "faces": e(1.0), "face_presence": e(0.05)}},
                 {"components": {"frames": e(0.5), "faces": e(0.001, hit=True), "face_presence": e(0.05)}}]
    predicted = [{"frames": 0.2, "faces": 0.5}, {"frames": 0.25, "faces": 0.6}]
    measured, pred, overhead = pilot_measurements(manifests, predicted, wall_s=2.2)
    assert measured == pytest.approx({"frames": 0.9, "faces": 1.0})
    assert pred == pytest.approx({"frames": 0.45, "faces": 0.5})  # the reused faces artifact is not compared
    # 2.2 s wall - 2.001 s inside components + 0.1 s of components without a stage, per video
    assert overhead == pytest.approx((2.2 - 2.001 + 0.1) / 2)
    cached = [{"components": {"frames": e(0.01, hit=True)}}]
    assert pilot_measurements(cached, [{"frames": 0.2}], wall_s=0.1) == ({}, {}, None)


def test_pilot_size_grows_with_the_corpus_within_bounds():
    from planning.pilot import PILOT_MAX_VIDEOS, PILOT_MIN_VIDEOS, PILOT_VIDEOS, pilot_size

    assert pilot_size(PILOT_MIN_VIDEOS - 1) == 0
    assert pilot_size(PILOT_MIN_VIDEOS) == pilot_size(16) == PILOT_VIDEOS
    assert pilot_size(500) == 5 and pilot_size(4000) == PILOT_MAX_VIDEOS


def test_pilot_videos_are_the_first_ones_with_nothing_cached():
    from planning.pilot import pick_pilot

    cached = [{"frames", "visual"}, set(), {"metadata"}, set(), set()]
    assert pick_pilot(cached, 2) == [1, 3]
    assert pick_pilot(cached[:3], 2) == [1]
    assert pick_pilot([{"text"}, {"frames"}], 2) == []


def test_reused_components_cost_the_checklists_reuse_time_and_nothing_else():
    cpu_cl = checklist(entry("od", per_unit_bytes=1e6, seconds_per_unit=0.01, kind="cpu"),
                       entry("sc", per_unit_bytes=1e6, seconds_per_unit=0.02, kind="cpu"), decode_s=0.001)
    cpu_cl = cpu_cl.model_copy(update={"reuse_s_per_component": 0.002})
    dev = [Device("cpu", "cpu", 8 * GB, concurrency=2)]
    cached = [VideoSpec(f"v{i}", "720p", {"od": 0, "sc": 0}, reused=3) for i in range(10)]
    p = plan(cached, [FRAMES, OD, SC], dev, cpu_cl)
    assert all(c.requests == 0 for c in p.components.values() if c.model)
    # 10 videos x 3 reused components x 2 ms, one lane at a time (pure Python in the client's interpreter), so more
    # lanes buy nothing and the tie goes to one
    assert p.predicted_makespan_s == pytest.approx(10 * 3 * 0.002, rel=0.05) and p.videos_in_parallel == 1


def test_a_one_core_nodes_component_seconds_are_what_its_simulation_runs():
    """A CPU model whose request kept two cores busy where the checklist was measured runs at half speed on a
    one-core node (a Ray node pinned to one core). The per-component seconds a pilot divides its measurements by
    must say so, as the makespan simulation does: otherwise a factor measured on that node carries the slowdown
    once and the simulation applies it again (a one-core Ray node predicted 36.6 s for a rest that took 26.5 s)."""
    from planning.checklist import SizeClassProfile
    from planning.pilot import pilot_factors
    from planning.planner import predicted_component_seconds

    od = entry("od", per_unit_bytes=1e6, seconds_per_unit=0.01, kind="cpu")
    two_cores = od.model_copy(update={"size_classes": {
        c: SizeClassProfile(points=[p.model_copy(update={"cpu_seconds": 2 * p.seconds}) for p in s.points])
        for c, s in od.size_classes.items()}})
    cl = checklist(two_cores)
    vids, comps = videos(3, 30, comps=("od",)), [FRAMES, OD]
    one_core = [Device("cpu", "cpu", 8 * GB, concurrency=1)]
    both = [Device("cpu", "cpu", 8 * GB, concurrency=2)]
    p = plan(vids, comps, one_core, cl, parallel_options=(1,))
    alone_one = predicted_component_seconds(vids, comps, one_core, cl, p.batch_sizes)
    alone_both = predicted_component_seconds(vids, comps, both, cl, p.batch_sizes)
    assert alone_both[0]["od"] > 0 and alone_one[0]["od"] == pytest.approx(2 * alone_both[0]["od"])
    # one video at a time: the plan's makespan is the videos' component seconds, one after another
    assert p.predicted_makespan_s == pytest.approx(sum(sum(v.values()) for v in alone_one))
    # a serial run on the node that measured just that calibrates to x1, and the re-plan predicts the same
    measured = {"od": sum(v["od"] for v in alone_one)}
    factors = pilot_factors(measured, dict(measured))
    assert factors == {"od": pytest.approx(1.0)}
    again = plan(vids, comps, one_core, cl, parallel_options=(1,), time_factors=factors)
    assert again.predicted_makespan_s == pytest.approx(p.predicted_makespan_s)
