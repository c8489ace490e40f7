"""Contracts that need a real video encoded on disk or a fresh interpreter (so they are not unit tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from common.paths import REPO_ROOT


def test_a_video_releases_its_decoded_frames_and_audio(tmp_path: Path):
    from extraction.components import VideoInput
    from testsupport.videos import write_video

    v = VideoInput(str(write_video(tmp_path / "v.mp4", seconds=1.0)), {"platform_id": "youtube", "video_id": "v"},
                   2.0, 8, 160)
    assert len(v.frames.rgb) > 0 and v.audio is not None
    v.release()  # the runner does this when the video is done: a run's job list outlives every video
    assert "frames" not in v.__dict__ and "audio" not in v.__dict__
    assert len(v.frames.rgb) > 0  # decoded again if asked


def test_import_has_no_heavy_or_forbidden_imports():
    code = ("import sys, features, features.build, features.compat, features.impute, features.compute; "
            "bad = [m for m in ('torch', 'mlflow', 'lightning') if m in sys.modules]; "
            "import features as f; assert f.load_spec().spec_hash; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO_ROOT)
    assert out.stdout.strip() == "[]"
