"""The checklist contract: file round trip, staleness (model signatures), curves, and the measuring helpers
that need no server (stable windows, peak RSS reset). Pure or local-process only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.errors import ConfigError
from planning.checklist import (
    BatchPoint,
    Checklist,
    ChecklistMissing,
    ChecklistStale,
    DecodeProfile,
    Hardware,
    ModelEntry,
    SizeClassProfile,
    detect_hardware,
    load_checklist,
    save_checklist,
    size_class,
)
from planning.measure import measure_until_stable, split_requests, sweep_subset
from planning.probes import peak_delta, reset_peaks


def _entry(component="visual", model="visual_embed_fast", digest="sha256:aaa") -> ModelEntry:
    pts = [BatchPoint(batch=b, seconds=0.002 + 0.001 * b, mem_bytes=1000 * b) for b in (1, 4, 16)]
    return ModelEntry(component=component, model=model, version="1", weights_digest=digest, unit="frame", tier=0,
                      max_batch_size=64, fixed_bytes=10**8, size_classes={"360p": SizeClassProfile(points=pts)})


def _checklist(**models: ModelEntry) -> Checklist:
    return Checklist(profile="fast", hardware=Hardware(id="hw", cpu_model="cpu", cpu_cores=2, memory_bytes=1),
                     triton_version="2.51.0", measured_at="2026-11-24T00:00:00Z",
                     decode={"360p": DecodeProfile(seconds_per_decoded_frame=0.001)},
                     models=models or {"visual": _entry()})


def test_round_trip_through_yaml(tmp_path: Path):
    cl = _checklist()
    path = save_checklist(cl, tmp_path / "hw" / "fast.yaml")
    text = path.read_text()
    assert text.startswith("# Measured by `python -m extraction checklist profile --profile fast` on hw")
    assert "&id" not in text and "*id" not in text  # plain YAML, no anchors
    assert load_checklist(path) == cl


def test_missing_and_invalid_files_have_codes(tmp_path: Path):
    with pytest.raises(ChecklistMissing) as err:
        load_checklist(tmp_path / "nope.yaml")
    assert err.value.code == "checklist_missing"
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: fast\nhardware: {id: x}\n")
    with pytest.raises(ConfigError, match="not a valid checklist"):
        load_checklist(bad)


def test_signature_match_is_accepted():
    _checklist().check_signatures({"visual": "visual_embed_fast:1:sha256:aaa"})


def test_changed_model_makes_the_checklist_stale_naming_it_and_the_fix():
    cl = _checklist()
    with pytest.raises(ChecklistStale) as err:
        cl.check_signatures({"visual": "visual_embed_fast:1:sha256:bbb"}, source="conf/checklist/hw/fast.yaml")
    msg = str(err.value)
    assert err.value.code == "checklist_stale"
    assert "visual: measured visual_embed_fast:1:sha256:aaa, the server now serves visual_embed_fast:1:sha256:bbb" \
        in msg
    assert "python -m extraction checklist profile --profile fast" in msg
    assert "conf/checklist/hw/fast.yaml" in msg
    with pytest.raises(ChecklistStale, match="visual_embed_fast:2:sha256:aaa"):  # another version
        cl.check_signatures({"visual": "visual_embed_fast:2:sha256:aaa"})
    with pytest.raises(ChecklistStale, match="faces: face_detector:1:sha256:c was never measured"):
        cl.check_signatures({"visual": "visual_embed_fast:1:sha256:aaa", "faces": "face_detector:1:sha256:c"})


def test_curve_interpolates_and_extrapolates_conservatively():
    curve = _entry().size_classes["360p"]
    assert curve.seconds(1) == pytest.approx(0.003)
    assert curve.seconds(2) == pytest.approx(0.004)  # between 1 and 4: linear
    assert curve.seconds(32) == pytest.approx(0.034)  # beyond 16: the last slope continues
    assert curve.mem_bytes(8) == 8000 and curve.mem_bytes(32) == 32000
    bumpy = SizeClassProfile(points=[BatchPoint(batch=1, seconds=1, mem_bytes=5000),
                                     BatchPoint(batch=4, seconds=2, mem_bytes=3000)])
    assert bumpy.mem_bytes(2) == 5000  # memory never shrinks with a bigger batch
    dip = SizeClassProfile(points=[BatchPoint(batch=4, seconds=0.4, mem_bytes=1),
                                   BatchPoint(batch=8, seconds=0.3, mem_bytes=1)])
    assert dip.seconds(8) == 0.4  # nor does time: a dip is noise
    single = SizeClassProfile(points=[BatchPoint(batch=4, seconds=0.4, mem_bytes=400)])
    assert single.seconds(8) == pytest.approx(0.8) and single.mem_bytes(2) == 200


def test_unmeasured_size_class_falls_back_to_a_larger_one():
    e = _entry()
    e.size_classes["1080p"] = SizeClassProfile(points=[BatchPoint(batch=1, seconds=9.0, mem_bytes=1)])
    assert e.curve("720p").seconds(1) == 9.0  # next larger measured
    assert e.curve("360p").seconds(1) == pytest.approx(0.003)


def test_cpu_time_scale_normalises_measurements_taken_on_a_busy_machine():
    cl = _checklist()
    assert cl.cpu_time_scale() == 1.0
    cl.background_busy_cores = 2.0  # two cores, two busy elsewhere: a single thread got 2/3 of a core
    assert cl.cpu_time_scale() == pytest.approx(2 / 3)


def test_size_classes_by_short_side():
    assert size_class(640, 360) == "360p" and size_class(360, 640) == "360p"
    assert size_class(1280, 720) == "720p" and size_class(720, 1280) == "720p"
    assert size_class(1920, 1080) == "1080p" and size_class(1080, 1920) == "1080p"


def test_hardware_id_is_a_stable_slug():
    hw = detect_hardware(gpus=[])
    assert hw.id == hw.id.lower() and " " not in hw.id and hw.id.endswith(f"-{hw.cpu_cores}c")


def test_measure_until_stable_stops_when_windows_agree():
    import time

    calls = []

    def send(r):
        calls.append(r)
        time.sleep(0.005)

    sec, windows, spread, stable = measure_until_stable([1, 2, 3], send, warmup=1, window_s=0.0, tolerance=0.5)
    assert stable and windows >= 3 and spread <= 0.5 and sec >= 0.005
    assert len(calls) == 3 * (1 + windows)  # a warm-up pass, then windows of one whole pass each


def test_measure_until_stable_reports_unstable_windows():
    import time

    delays = iter([0.0] * 3 + [0.001, 0.02, 0.001, 0.02, 0.001, 0.02])

    def send(_):
        time.sleep(next(delays, 0.001))

    _, windows, spread, stable = measure_until_stable([0], send, warmup=1, window_s=0.0, max_windows=4)
    assert not stable and windows == 4 and spread > 0.1


def test_sweep_subset_draws_from_every_captured_request_and_splits_evenly():
    pools = [{"X": np.full((10, 2), i)} for i in range(4)]  # four videos, ten units each
    sub = sweep_subset(pools, 64)
    assert sub["X"].shape == (64, 2)
    assert set(np.unique(sub["X"])) == {0, 1, 2, 3}
    assert [len(r["X"]) for r in split_requests(sub, 16)] == [16, 16, 16, 16]
    small = sweep_subset([{"X": np.arange(3)}], 8)
    assert small["X"].tolist() == [0, 1, 2, 0, 1, 2, 0, 1]


def test_peak_rss_is_reset_and_read_per_process():
    import os

    pid = os.getpid()
    reset_peaks([pid])
    before = {pid: int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0]) * 1024}
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    del block
    assert peak_delta([pid], before) >= 60 * 2**20


def test_cpu_ratio_is_cpu_over_wall_per_request_and_one_core_when_unmeasured():
    measured = SizeClassProfile(points=[BatchPoint(batch=1, seconds=0.010, mem_bytes=1, cpu_seconds=0.019),
                                        BatchPoint(batch=16, seconds=0.100, mem_bytes=1, cpu_seconds=0.200)])
    assert measured.cpu_ratio(1) == pytest.approx(1.9)
    assert measured.cpu_ratio(16) == pytest.approx(2.0)
    assert measured.cpu_ratio(64) == pytest.approx(2.0)  # a ratio is not extrapolated
    assert 1.9 < measured.cpu_ratio(8) < 2.0
    old = SizeClassProfile(points=[BatchPoint(batch=1, seconds=0.010, mem_bytes=1)])  # checklists before CPU
    assert old.cpu_ratio(4) == 1.0


def test_measure_interleaved_reports_cpu_seconds_per_request():
    from planning.measure import measure_interleaved

    clock = {"cpu": 0.0}

    def send(_r):
        clock["cpu"] += 0.002  # each request costs 2 ms of (fake) server CPU

    out = measure_interleaved({1: ([0, 1], send), 2: ([0], send)}, warmup=1, window_s=0.0, max_windows=3,
                              cpu=lambda: clock["cpu"])
    assert out[1][5] == pytest.approx(0.002) and out[2][5] == pytest.approx(0.002)
    assert measure_interleaved({1: ([0], send)}, warmup=1, window_s=0.0, max_windows=3)[1][5] is None
