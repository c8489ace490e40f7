"""Executing a plan without a server: LRU residency under explicit model control (a fake control client),
instance counts, unit counting, and the planner's CPU-specific choices (instances, shared cores)."""

from __future__ import annotations

import json

import pytest

from common.errors import TrendflowError
from extraction.components.base import units_for
from planning.planner import plan
from planning.residency import ModelResidency, apply_instances, placement_config
from planning.specs import ComponentSpec, Device
from tests.unit.test_planner import FRAMES, GB, checklist, entry, videos


class FakeControl:
    """The slice of tritonclient's InferenceServerClient that residency and instance changes use."""

    def __init__(self, loaded=(), counts=None):
        self.loaded = set(loaded)
        self.counts = dict(counts or {})
        self.log: list[tuple[str, str]] = []
        self.configs: dict[str, dict] = {}

    def load_model(self, model_name, headers=None, config=None):
        self.loaded.add(model_name)
        self.log.append(("load", model_name))
        if config is not None:
            self.configs[model_name] = json.loads(config)
            self.counts[model_name] = self.configs[model_name]["instance_group"][0]["count"]

    def unload_model(self, model_name, headers=None, unload_dependents=False):
        self.loaded.discard(model_name)
        self.log.append(("unload", model_name))

    def is_model_ready(self, model_name, model_version=""):
        return model_name in self.loaded

    def get_model_config(self, model_name, model_version="", as_json=False):
        return {"config": {"name": model_name, "max_batch_size": 16,
                           "instance_group": [{"name": f"{model_name}_0", "kind": "KIND_CPU",
                                               "count": self.counts.get(model_name, 1)}]}}


def test_lru_evicts_the_least_recently_used_unpinned_model():
    ctl = FakeControl(loaded=["vis", "a", "b"])
    res = ModelResidency(ctl, dict.fromkeys(("vis", "a", "b", "c"), "cpu"), pinned={"vis"}, max_loaded_per_device=3,
                         loaded=["vis", "a", "b"])
    assert res.ensure(["c"]) == ["a"]  # vis is older but pinned
    assert ctl.log == [("unload", "a"), ("load", "c")]
    res.touch("b")
    assert res.ensure(["a"]) == ["c"]  # b was used after c
    assert set(res.loaded_on("cpu")) == {"vis", "b", "a"} == ctl.loaded
    assert res.ensure(["vis", "a"]) == []  # already loaded: nothing happens
    assert [e[0] for e in res.events] == ["unload", "load", "unload", "load"]


def test_models_needed_together_are_never_evicted_for_each_other():
    ctl = FakeControl(loaded=["vis", "a"])
    res = ModelResidency(ctl, dict.fromkeys(("vis", "a", "b"), "cpu"), pinned={"vis"}, max_loaded_per_device=2,
                         loaded=["vis", "a"])
    with pytest.raises(TrendflowError) as err:
        res.ensure(["a", "b"])
    assert err.value.code == "residency_exhausted"


def test_memory_limit_evicts_until_the_new_model_fits():
    ctl = FakeControl(loaded=["vis", "a", "b"])
    fixed = {"vis": 2 * GB, "a": 1 * GB, "b": 1 * GB, "big": 3 * GB}
    res = ModelResidency(ctl, dict.fromkeys(fixed, "gpu0"), pinned={"vis"}, max_loaded_per_device=8,
                         fixed_bytes=fixed, memory_limit={"gpu0": 5 * GB}, loaded=["vis", "a", "b"])
    assert res.ensure(["big"]) == ["a", "b"]
    assert ctl.loaded == {"vis", "big"}


def test_devices_are_bounded_separately():
    ctl = FakeControl(loaded=["x0", "x1"])
    res = ModelResidency(ctl, {"x0": "gpu0", "x1": "gpu1", "y0": "gpu0"}, max_loaded_per_device=1,
                         loaded=["x0", "x1"])
    assert res.ensure(["y0"]) == ["x0"]  # gpu1's model stays
    assert ctl.loaded == {"x1", "y0"}


def test_residency_loads_with_the_planned_config():
    ctl = FakeControl(loaded=[])
    res = ModelResidency(ctl, {"faces_m": "cpu"}, loaded=[])
    res.configs["faces_m"] = lambda: placement_config(ctl, "faces_m", 2, "cpu")
    res.ensure(["faces_m"])
    assert ctl.configs["faces_m"]["instance_group"] == [{"kind": "KIND_CPU", "count": 2}]


def test_placement_on_a_gpu_names_the_device():
    cfg = json.loads(placement_config(FakeControl(), "m", 1, "gpu1"))
    assert cfg["instance_group"] == [{"kind": "KIND_GPU", "count": 1, "gpus": [1]}]
    assert cfg["max_batch_size"] == 16  # the rest of the server's config is kept


def test_units_per_component_kind():
    assert units_for("frame", 12, 6.0, True, {}) == 12
    assert units_for("frame_pair", 12, 6.0, True, {}) == 11
    assert units_for("frame_pair", 0, 6.0, True, {}) == 0
    assert units_for("audio_window", 12, 6.5, True, {"window_s": 0.5}) == 13
    assert units_for("audio_window", 12, 6.5, False, {"window_s": 0.5}) == 0
    assert units_for("text", 12, 6.0, True, {}) == 2
    with pytest.raises(TrendflowError, match="unknown unit kind"):
        units_for("voxel", 1, 1.0, True, {})


def _cpu_setup(fixed=10**8):
    slow = entry("slow", per_unit_bytes=10**6, seconds_per_unit=0.05, overhead_s=0.001, kind="cpu", fixed=fixed)
    fast = entry("fast", per_unit_bytes=10**6, seconds_per_unit=0.005, overhead_s=0.001, kind="cpu", fixed=fixed)
    comps = [FRAMES, ComponentSpec("slow", ("frames",), uses_model=True, uses_frames=True),
             ComponentSpec("fast", ("frames",), uses_model=True, uses_frames=True)]
    return checklist(slow, fast), comps


def test_cpu_bound_bottleneck_model_gets_a_second_instance_on_two_cores():
    cl, comps = _cpu_setup()
    vids = videos(8, 32, comps=("slow", "fast"))
    p = plan(vids, comps, [Device("cpu", "cpu", 8 * GB, concurrency=2)], cl)
    assert p.instances == {"slow": 2, "fast": 1}
    assert p.videos_in_parallel >= 2
    one = plan(vids, comps, [Device("cpu", "cpu", 8 * GB, concurrency=2)], cl, max_instances=1)
    assert one.instances == {"slow": 1, "fast": 1}
    assert p.predicted_makespan_s < 0.75 * one.predicted_makespan_s
    # a second instance is a second copy of the model in memory: no room, no second instance
    tight = plan(vids, comps, [Device("cpu", "cpu", 8 * GB, concurrency=2)], checklist(*_cpu_setup(fixed=GB)[0]
                                                                                        .models.values()),
                 memory_budget=int(2.5 * GB))
    assert tight.instances == {"slow": 1, "fast": 1}


def test_busy_shared_cores_slow_the_prediction_and_parallelism_helps_less():
    cl, comps = _cpu_setup()
    vids = videos(8, 32, comps=("slow", "fast"))
    idle = plan(vids, comps, [Device("cpu", "cpu", 8 * GB, concurrency=2)], cl, max_instances=1)
    busy = plan(vids, comps, [Device("cpu", "cpu", 8 * GB, concurrency=2, background=2.0)], cl, max_instances=1)
    assert busy.predicted_makespan_s > 1.3 * idle.predicted_makespan_s
    assert busy.devices["cpu"]["background"] == 2.0


def test_apply_instances_reloads_only_what_changes():
    cl, comps = _cpu_setup()
    p = plan(videos(8, 32, comps=("slow", "fast")), comps, [Device("cpu", "cpu", 8 * GB, concurrency=2)], cl)
    ctl = FakeControl(loaded=["slow_model", "fast_model"])
    done = apply_instances(ctl, p, {"slow": "slow_model", "fast": "fast_model"})
    assert [(m, a, b) for m, a, b, _ in done] == [("slow_model", 1, 2)]
    assert ctl.log == [("load", "slow_model")]
    assert apply_instances(ctl, p, {"slow": "slow_model", "fast": "fast_model"}) == []  # already so
