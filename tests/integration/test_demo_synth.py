"""The demo corpus generator: files, decodability, labels, determinism, faces, edge cases, atomic writes."""

from __future__ import annotations

import bisect
import csv
import hashlib
import json
import math
from datetime import datetime
from pathlib import Path

import av
import numpy as np
import pytest

from common.errors import VideoDecodeFailed
from demo import synth
from extraction.decode import decode_audio, probe, sample_frames
from extraction.kernels.faces import HaarConfig, detect_faces, load_cascade

# Short videos keep the suite fast; face_fraction 0.5 puts faces and no-face videos side by side.
SMALL = {"duration_s": (1.0, 2.5), "face_fraction": 0.5, "include_corrupt": True}
N, SEED = 10, 7


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[synth.VideoSpec]]:
    out = tmp_path_factory.mktemp("synth")
    specs = synth.generate(N, out, SEED, workers=1, progress=False, **SMALL)
    return out, specs


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _playable(specs: list[synth.VideoSpec]) -> list[synth.VideoSpec]:
    return [s for s in specs if s.kind != "corrupt"]


def test_files_and_sidecar_keys(corpus: tuple[Path, list[synth.VideoSpec]]) -> None:
    out, specs = corpus
    assert len(specs) == N and {s.kind for s in specs} == {"short", "silent", "corrupt", "normal"}
    mp4s = sorted(p.stem for p in (out / "videos").glob("*.mp4"))
    assert mp4s == sorted(s.video_id for s in specs)
    assert not list((out / "videos").glob(".*.tmp")), "temp files left behind"
    for s in specs:
        side = json.loads((out / "videos" / f"{s.video_id}.json").read_text())
        assert tuple(side) == synth.SIDECAR_KEYS
        assert tuple(side["channel"]) == synth.CHANNEL_KEYS
        assert side["platform_id"] in ("youtube", "tiktok") and side["video_id"] == s.video_id
        assert isinstance(side["title"], str) and side["title"] and isinstance(side["description"], str)
        pub = datetime.fromisoformat(side["published_at"].replace("Z", "+00:00"))
        snap = datetime.fromisoformat(side["snapshot1_at"].replace("Z", "+00:00"))
        assert side["published_at"].endswith("Z") and pub.utcoffset().total_seconds() == 0
        age = side["video_age_hours_at_snapshot1"]
        assert isinstance(age, float) and 1.0 <= age <= 240.0
        assert math.isclose((snap - pub).total_seconds() / 3600, age, abs_tol=1e-5)
        assert isinstance(side["views_snapshot1"], int) and isinstance(side["likes_snapshot1"], int)
        assert 0 <= side["likes_snapshot1"] <= side["views_snapshot1"]
        ch = side["channel"]
        assert isinstance(ch["channel_id"], str) and isinstance(ch["subscribers"], int)
        assert isinstance(ch["video_count"], int) and isinstance(ch["avg_views"], float)
    cols, rows = _read_csv(out / "labels.csv")
    assert tuple(cols) == synth.LABEL_COLUMNS
    assert [r["video_id"] for r in rows] == [s.video_id for s in specs]
    tcols, trows = _read_csv(out / "generation_truth.csv")
    assert len(trows) == N and {"motion_level", "cuts_per_minute", "faces", "brightness", "colorfulness",
                                "has_audio", "log_appeal", "noise_sigma", "like_rate"} <= set(tcols)
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["seed"] == SEED and manifest["n"] == N and manifest["kinds"]["corrupt"] == 1


def test_videos_decode_with_stated_resolution_duration_and_audio(
        corpus: tuple[Path, list[synth.VideoSpec]]) -> None:
    out, specs = corpus
    assert any(s.audio and s.audio.channels == 2 for s in specs) or any(s.audio for s in specs)
    for s in _playable(specs):
        path = out / "videos" / s.filename
        with av.open(str(path)) as c:
            vs = c.streams.video[0]
            assert (vs.codec_context.name, vs.codec_context.width, vs.codec_context.height) == (
                "h264", s.width, s.height)
            assert vs.codec_context.pix_fmt == "yuv420p"
            assert round(float(vs.average_rate)) == s.fps
            assert sum(1 for _ in c.decode(vs)) == s.n_frames
            assert bool(c.streams.audio) == (s.audio is not None)
            if s.audio is not None:
                a = c.streams.audio[0]
                assert (a.codec_context.name, a.rate, a.codec_context.channels) == (
                    "aac", s.audio.sample_rate, s.audio.channels)
        info = probe(str(path))  # what the extractor reads
        assert abs(info.duration_s - s.duration_s) <= 1.0 / s.fps + 1e-6
        if s.audio is not None:
            wav = decode_audio(str(path))
            assert abs(len(wav) / 16000 - s.duration_s) < 0.15
            rms_db = 20 * math.log10(float(np.sqrt(np.mean(wav**2))) + 1e-12)
            assert abs(rms_db - s.audio.rms_dbfs) < 4.0, (s.audio, rms_db)


def test_edge_cases_short_silent_corrupt(corpus: tuple[Path, list[synth.VideoSpec]]) -> None:
    out, specs = corpus
    by_kind = {s.kind: s for s in specs}
    short, silent, corrupt = by_kind["short"], by_kind["silent"], by_kind["corrupt"]
    assert short.duration_s < 1.0 and probe(str(out / "videos" / short.filename)).duration_s < 1.0
    with av.open(str(out / "videos" / silent.filename)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 0
    assert decode_audio(str(out / "videos" / silent.filename)) is None
    bad = out / "videos" / corrupt.filename
    assert bad.stat().st_size > 0 and (out / "videos" / f"{corrupt.video_id}.json").exists()
    with pytest.raises(av.error.FFmpegError):
        with av.open(str(bad)) as c:
            for _ in c.decode(video=0):
                pass
    with pytest.raises(VideoDecodeFailed):
        sample_frames(str(bad), 2.0, 48, 480)


def test_labels_csv_monotone_with_missing_values(corpus: tuple[Path, list[synth.VideoSpec]]) -> None:
    out, specs = corpus
    _, rows = _read_csv(out / "labels.csv")
    for r in rows:
        for metric in ("views", "likes"):
            vals = [int(r[f"{metric}_snapshot1"])] + [int(r[f"{metric}_{h}d"]) for h in (7, 14, 21)
                                                      if r[f"{metric}_{h}d"] != ""]
            assert vals == sorted(vals), r
            assert (r[f"{metric}_7d"] == "") == (r["views_7d"] == "")  # a missed snapshot loses both
        assert r["views_21d"] != "" and int(r["likes_21d"]) < int(r["views_21d"])
    assert [s.label_row()["views_21d"] for s in specs] == [int(r["views_21d"]) for r in rows]


def test_label_process_statistics() -> None:
    """On many specs (no rendering): missing pattern, monotonicity, early-vs-late correlation, truth sums."""
    specs = synth.sample_specs(800, seed=3)
    rows = [s.label_row() for s in specs]
    miss7 = np.mean([r["views_7d"] is None for r in rows])
    miss14 = np.mean([r["views_14d"] is None for r in rows])
    assert 0.08 <= miss7 <= 0.25 and 0.005 <= miss14 <= 0.1
    assert all(r["views_21d"] is not None and r["likes_21d"] is not None for r in rows)
    for r in rows:
        for metric in ("views", "likes"):
            vals = [r[f"{metric}_snapshot1"]] + [r[f"{metric}_{h}d"] for h in (7, 14, 21)]
            vals = [v for v in vals if v is not None]
            assert vals == sorted(vals)
        for key in ("snapshot1", "7d", "14d", "21d"):
            v, lk = r[f"views_{key}"], r[f"likes_{key}"]
            if v is not None:
                assert lk < v or v == 0
    early = np.log1p([r["views_snapshot1"] for r in rows])
    late = np.log1p([r["views_21d"] for r in rows])
    assert np.corrcoef(early, late)[0, 1] > 0.7  # Szabo-Huberman: log early views predict log later views
    for s in specs[:50]:
        t = s.truth
        parts = sum(v for k, v in t.items() if k.startswith("eff_")) + t["noise"] + t["viral_boost"]
        assert math.isclose(parts, t["log_appeal"], rel_tol=1e-9, abs_tol=1e-9)
    sigmas = {round(s.truth["noise_sigma"], 2) for s in specs}
    assert len(sigmas) >= 3  # heteroscedastic: groups get different noise levels
    faces = [s.truth["like_rate"] for s in specs if s.truth["face_fraction"] > 0.5]
    no_faces = [s.truth["like_rate"] for s in specs if not s.has_faces]
    assert np.mean(faces) > np.mean(no_faces)


def test_specs_are_prefix_stable_and_seed_dependent() -> None:
    a, b = synth.sample_specs(5, seed=11), synth.sample_specs(9, seed=11)
    assert [s.label_row() for s in a] == [s.label_row() for s in b[:5]]
    c = synth.sample_specs(5, seed=12)
    assert [s.video_id for s in a] != [s.video_id for s in c]


def _first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


def test_same_seed_same_bytes_with_any_worker_count(tmp_path: Path) -> None:
    kw = {"duration_s": (0.8, 1.5), "resolution_mix": {"640x360": 1.0}, "progress": False}
    a = synth.generate(4, tmp_path / "a", 5, workers=1, **kw)
    b = synth.generate(4, tmp_path / "b", 5, workers=2, **kw)
    assert (tmp_path / "a" / "labels.csv").read_bytes() == (tmp_path / "b" / "labels.csv").read_bytes()
    assert (tmp_path / "a" / "generation_truth.csv").read_bytes() == (
        tmp_path / "b" / "generation_truth.csv").read_bytes()
    for sa, sb in zip(a, b, strict=True):
        pa, pb = tmp_path / "a" / "videos" / sa.filename, tmp_path / "b" / "videos" / sb.filename
        assert np.array_equal(_first_frame(pa), _first_frame(pb))
        assert hashlib.sha256(pa.read_bytes()).digest() == hashlib.sha256(pb.read_bytes()).digest()
        assert pa.with_suffix(".json").read_bytes() == pb.with_suffix(".json").read_bytes()
    synth.generate(4, tmp_path / "c", 6, workers=1, **kw)
    assert (tmp_path / "a" / "labels.csv").read_bytes() != (tmp_path / "c" / "labels.csv").read_bytes()


def test_growing_a_corpus_renders_only_new_videos_and_equals_a_fresh_one(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    kw = {"duration_s": (0.8, 1.2), "resolution_mix": {"640x360": 1.0}, "progress": False, "workers": 1}
    synth.generate(3, tmp_path / "grow", 5, **kw)
    rendered: list[str] = []
    real = synth.render_video
    monkeypatch.setattr(synth, "render_video", lambda spec, *a, **k: (rendered.append(spec.video_id),
                                                                        real(spec, *a, **k))[1])
    grown = synth.generate(5, tmp_path / "grow", 5, **kw)
    assert rendered == [s.video_id for s in grown[3:]]  # the first 3 were reused, not rendered again
    fresh = synth.generate(5, tmp_path / "fresh", 5, **kw)
    for a, b in zip(grown, fresh, strict=True):
        pa, pb = tmp_path / "grow" / "videos" / a.filename, tmp_path / "fresh" / "videos" / b.filename
        assert pa.read_bytes() == pb.read_bytes()
    assert (tmp_path / "grow" / "labels.csv").read_bytes() == (tmp_path / "fresh" / "labels.csv").read_bytes()
    # another config (a different crf) means other bytes: everything is rendered again
    rendered.clear()
    synth.generate(5, tmp_path / "grow", 5, crf=30, **kw)
    assert rendered == [s.video_id for s in grown]


def test_haar_cascade_detects_faces_only_in_face_videos(corpus: tuple[Path, list[synth.VideoSpec]]) -> None:
    """Frames sampled the way the extractor's fast profile does (2 fps, longer side 480)."""
    out, specs = corpus
    cascade = load_cascade()
    face_hits, face_frames, false_hits, other_frames = 0, 0, 0, 0
    face_videos = [s for s in _playable(specs) if s.has_faces]
    plain_videos = [s for s in _playable(specs) if not s.has_faces]
    assert face_videos and plain_videos
    for s in _playable(specs):
        fr = sample_frames(str(out / "videos" / s.filename), 2.0, 48, 480)
        _, _, count = detect_faces(cascade, np.stack(fr.rgb), HaarConfig())
        shot = [bisect.bisect_right(s.shot_starts, int(i)) - 1 for i in fr.frame_index]
        has_face = np.asarray([s.face_shots[k] for k in shot])
        face_hits += int((count[has_face, 0] > 0).sum())
        face_frames += int(has_face.sum())
        false_hits += int((count[~has_face, 0] > 0).sum())
        other_frames += int((~has_face).sum())
    assert face_frames >= 5 and other_frames >= 5
    assert face_hits / face_frames >= 0.9, (face_hits, face_frames)
    assert false_hits / other_frames <= 0.05, (false_hits, other_frames)


def test_failed_render_leaves_no_visible_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = next(s for s in synth.sample_specs(6, seed=2, config=synth.SynthConfig(duration_s=(1.0, 1.5)))
                if s.audio is not None)

    def boom(_spec: synth.VideoSpec) -> None:
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(synth, "render_audio", boom)
    with pytest.raises(RuntimeError):
        synth._write_one(spec, str(tmp_path), crf=26)
    assert not (tmp_path / spec.filename).exists()
    assert [p.name for p in tmp_path.iterdir()] == [f"{spec.video_id}.json"]  # sidecar first, no temp file


def test_generate_refuses_foreign_videos_and_cli_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "videos").mkdir(parents=True)
    (tmp_path / "videos" / "someone_else.mp4").write_bytes(b"x")
    args = ["--n", "2", "--out", str(tmp_path), "--seed", "1", "--duration", "0.5", "1.0", "--no-progress",
            "--no-edge-cases"]
    assert synth.main(args) == 2
    assert "not part of this corpus" in capsys.readouterr().err
    assert synth.main([*args, "--clean"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["videos"] == 2 and summary["kinds"] == ["normal"]
    assert sorted(p.suffix for p in (tmp_path / "videos").iterdir()) == [".json", ".json", ".mp4", ".mp4"]
    with pytest.raises(TypeError, match="no_such_knob"):
        synth.generate(1, tmp_path / "x", 0, no_such_knob=1)
