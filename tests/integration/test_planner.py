"""The batching planner against the real Triton of the session fixture.

Protects: a planned run records its plan in every manifest and the batch size really sent in every NPZ; a small
memory budget forces smaller batches and the run still completes; a stale checklist and a budget that cannot
hold one request are refused before any work; tier-1 models rotate through Triton's explicit model control when
the residency bound forces it and the server is left as found; the profiler measures a real checklist.

Checklists here are synthetic numbers stamped with the server's real model signatures (so they are fresh), except
in the profiler test, which measures one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import InsufficientMemory
from extraction.artifacts import latest_runs, load_run
from extraction.config import load_profile
from extraction.provider import TritonModelProvider
from planning.api import run_extraction
from planning.checklist import (
    ChecklistStale,
    detect_hardware,
    load_checklist,
    save_checklist,
)
from planning.profiler import profile
from testsupport.planning import UNITS, synthetic_checklist
from testsupport.videos import write_sidecar, write_video

pytestmark = pytest.mark.triton
REPO = Path(__file__).resolve().parents[2]
MB = 10**6


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("planner_videos")
    for i in range(3):  # 6 s at the fast profile's 2 fps: 12 frames, 11 pairs, 6 audio windows each
        write_sidecar(write_video(folder / f"p{i}.mp4", seconds=6.0, fps=10, seed=20 + i, cut_at=3.0), f"p{i}")
    return folder


def _manifests(out: Path) -> list[tuple[dict, dict]]:
    return [load_run(rd) for rd in latest_runs(out).values()]


def test_planned_run_records_the_plan_and_the_batch_sizes_really_sent(triton_server, videos, tmp_path):
    cl = synthetic_checklist(triton_server.grpc_url, tmp_path / "cl.yaml")
    seen = []
    summary = run_extraction(videos, tmp_path / "out", url=triton_server.grpc_url, checklist=cl,
                             progress=False, on_plan=seen.append)
    assert summary.ok == 3 and summary.plan is not None
    (plan,) = seen
    assert summary.plan == plan.to_dict() | {"reloads": summary.plan.get("reloads", [])}
    for manifest, arts in _manifests(tmp_path / "out"):
        assert manifest["plan"]["batch_sizes"] == plan.batch_sizes
        assert manifest["plan"]["checklist"]["path"] == str(cl)
        for comp, b in plan.batch_sizes.items():
            meta = arts[comp][1]
            units = {"visual": 12, "faces": 12, "motion": 11, "audio": 6, "text": 2}[comp]
            assert meta.batch_size == min(b, units), comp
            assert manifest["components"][comp]["batch_size"] == meta.batch_size


def test_small_memory_budget_forces_smaller_batches_and_the_run_still_completes(triton_server, videos, tmp_path):
    cl = synthetic_checklist(triton_server.grpc_url, tmp_path / "cl.yaml")
    roomy = run_extraction(videos, tmp_path / "roomy", url=triton_server.grpc_url, checklist=cl, progress=False)
    tight = run_extraction(videos, tmp_path / "tight", url=triton_server.grpc_url, checklist=cl, progress=False,
                           memory_budget=800 * MB)
    assert roomy.ok == tight.ok == 3
    big, small = roomy.plan["batch_sizes"], tight.plan["batch_sizes"]
    assert sum(small.values()) < sum(big.values())
    assert tight.plan["videos_in_parallel"] * sum(small.values()) < roomy.plan["videos_in_parallel"] * sum(big.values())
    assert tight.plan["devices"]["cpu"]["budget_bytes"] == 800 * MB
    assert tight.plan["devices"]["cpu"]["predicted_peak_bytes"] <= 800 * MB
    for manifest, arts in _manifests(tmp_path / "tight"):
        assert manifest["status"] == "ok"
        for comp, b in small.items():
            assert arts[comp][1].batch_size <= b


def test_pilot_videos_calibrate_the_plan_of_the_rest_in_one_run(triton_server, tmp_path):
    from planning.pilot import FACTOR_BOUNDS, PILOT_MIN_VIDEOS, PILOT_VIDEOS
    from planning.recalibrate import scaled_factors

    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(PILOT_MIN_VIDEOS):  # 2 s at 2 fps: 4 frames each
        write_sidecar(write_video(folder / f"q{i:02d}.mp4", seconds=2.0, fps=10, seed=40 + i), f"q{i:02d}")
    cl = synthetic_checklist(triton_server.grpc_url, tmp_path / "cl.yaml")
    seen, replanned = [], []
    # two lanes at most, so that the 10 videos after the pilot make two parts of at least a video per lane
    summary = run_extraction(folder, tmp_path / "out", url=triton_server.grpc_url, checklist=cl, progress=False,
                             max_videos_in_parallel=2, on_plan=seen.append, on_replan=replanned.append)
    assert summary.ok == summary.videos == PILOT_MIN_VIDEOS and len(summary.manifests) == PILOT_MIN_VIDEOS
    (plan,) = seen  # the plan of the rest, made with what the pilot measured
    cal = plan.calibration
    # the pilot's parallel step: a video per lane at once, its measured / predicted makespan scales the factors
    step = cal["parallel_step"]
    assert step["videos_in_parallel"] == len(step["videos"]) == 2 and step["seconds"] > 0 and step["predicted_s"] > 0
    assert plan.videos == PILOT_MIN_VIDEOS - PILOT_VIDEOS - 2 and len(cal["pilot_videos"]) == PILOT_VIDEOS
    assert set(cal["time_factors"]) >= set(UNITS) | {"frames"}  # every model component and decoding
    assert all(FACTOR_BOUNDS[0] <= f <= FACTOR_BOUNDS[1] for f in cal["time_factors"].values())
    assert cal["video_overhead_s"] >= 0 and cal["pilot_seconds"] > 0
    # the synthetic checklist's flat 2-3 ms per request is far from the real models: the factors say so
    assert max(cal["time_factors"].values()) > 1.0
    manifests = {m["video_id"]: m for m, _ in _manifests(tmp_path / "out")}
    assert len(manifests) == PILOT_MIN_VIDEOS and len({m["run_id"] for m in manifests.values()}) == 1
    for vid in cal["pilot_videos"]:
        assert manifests[vid]["plan"]["stage"] == "pilot" and manifests[vid]["status"] == "ok"
    stepped = [m for m in manifests.values() if m["plan"]["calibration"].get("stage") == "pilot, parallel step"]
    assert sorted(m["video_id"] for m in stepped) == sorted(step["videos"])
    rest = [m for v, m in manifests.items() if v not in cal["pilot_videos"] and v not in step["videos"]]
    # the rest ran in two parts: the first with the pilot's factors, the second re-planned with every factor times
    # the first part's measured / predicted makespan
    (second,) = replanned
    r = second.calibration["recalibrated"]
    first = [m for m in rest if m["plan"]["calibration"].get("part") == "1 of 2"]
    later = [m for m in rest if m["plan"]["calibration"].get("part") == "2 of 2"]
    assert len(first) == r["first_part_videos"] and len(first) + len(later) == len(rest) == plan.videos
    assert second.videos == len(later) > 0
    assert all(m["plan"]["calibration"]["time_factors"] == cal["time_factors"] for m in first)
    assert r["first_part_s"] > 0 and r["first_part_predicted_s"] > 0
    expected = scaled_factors(cal["time_factors"], r["makespan_ratio"], second.calibration["time_factors"])
    assert second.calibration["time_factors"] == pytest.approx(expected, rel=5e-3)  # both rounded to 3 places
    assert all(m["plan"]["calibration"]["time_factors"] == second.calibration["time_factors"] for m in later)
    # the prediction made before the rest started is of the two parts as they ran (each planned on its own videos),
    # and no part runs more videos at once than the parallel step measured its ratio at
    two = cal["two_parts"]
    assert two["first_part_videos"] == r["first_part_videos"]
    assert r["first_part_predicted_s"] == pytest.approx(two["first_part_predicted_s"], abs=2e-3)
    assert plan.predicted_makespan_s == pytest.approx(two["first_part_predicted_s"] + two["second_part_predicted_s"],
                                                      abs=2e-3)
    assert all(m["plan"]["videos_in_parallel"] <= step["videos_in_parallel"] for m in rest)


def test_the_plan_leaves_out_what_the_cache_already_holds(triton_server, videos, tmp_path):
    cl = synthetic_checklist(triton_server.grpc_url, tmp_path / "cl.yaml")
    first = run_extraction(videos, tmp_path / "out", url=triton_server.grpc_url, checklist=cl, progress=False)
    assert first.computed > 0 and all(c["requests"] > 0 for c in first.plan["components"].values() if c["model"])
    seen = []
    again = run_extraction(videos, tmp_path / "out", url=triton_server.grpc_url, checklist=cl, progress=False,
                           on_plan=seen.append)
    (plan,) = seen
    assert again.computed == 0 and again.cache_hits == first.computed  # everything reused, as the plan knew
    assert all(c.requests == 0 and c.predicted_server_s == 0 for c in plan.components.values() if c.model)
    assert plan.predicted_makespan_s < first.plan["predicted_makespan_s"] / 5


def test_stale_checklist_is_refused_before_any_work(triton_server, videos, tmp_path):
    cl = synthetic_checklist(triton_server.grpc_url, tmp_path / "cl.yaml", digest_of={"faces": "sha256:old"})
    with pytest.raises(ChecklistStale) as err:
        run_extraction(videos, tmp_path / "out", url=triton_server.grpc_url, checklist=cl, progress=False)
    assert "faces: measured face_detector:2:sha256:old, the server now serves face_detector:2:sha256:" in str(err.value)
    assert "python -m extraction checklist profile --profile fast" in str(err.value)
    assert not list(tmp_path.glob("out/**/*.npz"))


def test_budget_below_one_request_fails_fast_naming_the_component(triton_server, videos, tmp_path):
    cl = synthetic_checklist(triton_server.grpc_url, tmp_path / "cl.yaml", per_unit_bytes=400 * MB)
    with pytest.raises(InsufficientMemory) as err:
        run_extraction(videos, tmp_path / "out", url=triton_server.grpc_url, checklist=cl, progress=False,
                       memory_budget=300 * MB)
    assert err.value.code == "insufficient_memory"
    assert err.value.details["component"] in UNITS and err.value.details["need_bytes"] > 300 * MB
    assert not list(tmp_path.glob("out/**/*.npz"))
    cli = subprocess.run([sys.executable, "-m", "extraction", "run", "--videos", str(videos), "--out",
                          str(tmp_path / "out"), "--triton-url", triton_server.grpc_url, "--checklist", str(cl),
                          "--memory-budget", "300MB", "--no-progress"], capture_output=True, text=True, cwd=REPO)
    assert cli.returncode == 2, cli.stderr
    assert "error: insufficient_memory: component '" in cli.stderr and "Traceback" not in cli.stderr


@pytest.mark.slow
def test_tier1_models_rotate_lru_with_explicit_model_control(triton_server, videos, tmp_path):
    import tritonclient.grpc as g

    cl = synthetic_checklist(triton_server.grpc_url, tmp_path / "cl.yaml")
    summary = run_extraction(videos, tmp_path / "out", url=triton_server.grpc_url, checklist=cl, progress=False,
                             max_loaded_models_per_device=3)  # 2 pinned tier-0 models + 1 tier-1 slot
    plan = summary.plan
    assert len(plan["passes"]) == 3 and plan["passes"][0][:2] == ["metadata", "frames"]
    assert all(len(r["cpu"]) <= 3 and {"visual", "text"} <= set(r["cpu"]) for r in plan["resident"])
    assert summary.ok == 3
    for manifest, arts in _manifests(tmp_path / "out"):
        assert set(arts) == {"metadata", "frames", "visual", "motion", "faces", "audio", "text", "video_pacing",
                             "face_presence"}
        assert manifest["passes"] == plan["passes"] and manifest["status"] == "ok"
        assert not any(e["cache_hit"] for e in manifest["components"].values())  # each computed once, this run
    client = g.InferenceServerClient(triton_server.grpc_url)
    for model in ("visual_embed_fast_onnx", "optical_flow", "face_detector", "audio_features", "text_embed_onnx"):
        assert client.is_model_ready(model), f"{model} was not reloaded after the run"


@pytest.mark.slow
def test_profiler_measures_a_checklist_the_planner_accepts(triton_server, videos, tmp_path):
    from extraction.runner import discover_videos
    from planning.profiler import pick_calibration

    cfg = load_profile("fast")
    provider = TritonModelProvider(triton_server.grpc_url)
    lines = []
    cl = profile(provider, cfg, triton_server.pid, pick_calibration(discover_videos(videos), per_class=1),
                 batches=(1, 4), quick=True, reload_models=False, log=lines.append)
    save_checklist(cl, tmp_path / "measured.yaml")
    back = load_checklist(tmp_path / "measured.yaml")
    assert set(back.models) == set(UNITS) and set(back.decode) == {"360p"}
    for comp, e in back.models.items():
        assert e.fixed_bytes > 0 and e.unit == UNITS[comp]
        pts = e.curve("360p").points
        assert [p.batch for p in pts] == [1, 4] and all(p.seconds > 0 and p.mem_bytes > 0 for p in pts)
    assert back.models["visual"].curve("360p").input_shape == [112, 112, 3]
    assert back.models["text"].max_batch_size == 64
    assert 0 < back.reuse_s_per_component < 0.1  # re-running a calibration video: every component a cache hit
    summary = run_extraction(videos, tmp_path / "out", url=triton_server.grpc_url,
                             checklist=tmp_path / "measured.yaml", progress=False)
    assert summary.ok == 3 and json.dumps(summary.plan)


@pytest.mark.slow
def test_ensure_checklist_uses_a_fresh_one_refuses_a_stale_one_and_measures_when_there_is_none(
        triton_server, tmp_path):
    """What `python -m extraction run` (without --checklist) and the main job do on a machine nobody profiled."""
    from planning.api import ensure_checklist

    hw = detect_hardware().id
    committed, local = tmp_path / "committed", tmp_path / "local"
    fresh = synthetic_checklist(triton_server.grpc_url, committed / hw / "fast.yaml")
    said: list[str] = []
    kw = dict(url=triton_server.grpc_url, state_dir=Path(triton_server.log_path).parent, local_dir=local,
              committed_dir=committed, log=said.append)
    assert ensure_checklist("fast", **kw) == fresh and not said
    synthetic_checklist(triton_server.grpc_url, fresh, digest_of={"faces": "sha256:old"})  # now stale
    measured = ensure_checklist("fast", **kw)
    assert measured == local / hw / "fast.yaml" and measured.exists()
    assert any("checklist_stale" in m and "faces: measured face_detector:2:sha256:old" in m for m in said)
    assert any(m.startswith("checklist: measuring a quick one for this machine") for m in said)
    assert load_checklist(measured).models["faces"].weights_digest != "sha256:old"
    said.clear()
    assert ensure_checklist("fast", **kw) == measured and not any("measuring" in m for m in said)  # reused
