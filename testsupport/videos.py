"""Tiny deterministic test videos written with PyAV (for integration tests of the extractor)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np


def write_video(path: Path, *, width: int = 160, height: int = 96, seconds: float = 2.0, fps: int = 10,
                audio: bool = True, moving: bool = True, cut_at: float | None = None, seed: int = 0) -> Path:
    """A textured square moving over a background (colour switches at ``cut_at``), optional 440 Hz audio."""
    import av

    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 255, size=(height // 2, width // 4, 3), dtype=np.uint8)
    n = max(1, int(round(seconds * fps)))
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast"}
        a = None
        if audio:
            a = c.add_stream("aac", rate=16000)
            a.layout = "mono"
        for i in range(n):
            t = i / fps
            bg = (40, 90, 160) if cut_at is None or t < cut_at else (200, 120, 30)
            img = np.empty((height, width, 3), np.uint8)
            img[:] = bg
            x = (i * 6) % (width - texture.shape[1]) if moving else width // 3
            y = height // 4
            img[y:y + texture.shape[0], x:x + texture.shape[1]] = texture
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if a is not None:
            sr, total = 16000, int(seconds * 16000)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / sr)).astype(np.float32)
            for start in range(0, total, 1024):
                chunk = tone[start:start + 1024]
                fr = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
                fr.sample_rate = sr
                fr.pts = start
                fr.time_base = Fraction(1, sr)
                for p in a.encode(fr):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path


def write_sidecar(video: Path, video_id: str, *, title: str = "How to cook pasta fast! #food",
                  description: str = "A quick recipe.", platform_id: str = "youtube") -> Path:
    meta = {"platform_id": platform_id, "video_id": video_id, "title": title, "description": description,
            "published_at": "2026-10-01T12:30:00Z", "snapshot1_at": "2026-10-02T00:30:00Z",
            "video_age_hours_at_snapshot1": 12.0, "views_snapshot1": 1500, "likes_snapshot1": 90,
            "channel": {"channel_id": "ch1", "subscribers": 12000, "video_count": 40, "avg_views": 3000.0}}
    side = video.with_suffix(".json")
    side.write_text(json.dumps(meta))
    return side


def make_corpus(folder: Path) -> dict[str, Path]:
    """Four videos covering the edge cases: normal (with a cut), no audio, very short, unreadable."""
    folder.mkdir(parents=True, exist_ok=True)
    vids = {
        "normal": write_video(folder / "normal.mp4", seconds=3.0, cut_at=1.5),
        "silent": write_video(folder / "silent.mp4", audio=False, seconds=2.0, width=128, height=72),
        "short": write_video(folder / "short.mp4", seconds=0.4, fps=10),
        "broken": folder / "broken.mp4",
    }
    vids["broken"].write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    for vid, path in vids.items():
        write_sidecar(path, vid)
    return vids


def write_one_by_one(path: Path, frames: int = 3) -> Path:
    """An mp4 whose video stream is 1x1 pixels (mpeg4: libx264 refuses odd sizes)."""
    import av

    with av.open(str(path), "w") as c:
        vs = c.add_stream("mpeg4", rate=10)
        vs.width, vs.height, vs.pix_fmt = 1, 1, "yuv420p"
        for _ in range(frames):
            for p in vs.encode(av.VideoFrame.from_ndarray(np.zeros((1, 1, 3), np.uint8), format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
    return path


def write_declared_long(path: Path, seconds: int = 7200) -> Path:
    """A 1.5 kB mp4 that declares ``seconds`` of duration: two frames, at t=0 and t=seconds (time base 1 s)."""
    import av

    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=1)
        vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1)
        for pts in (0, seconds):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1)
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
    return path


def write_frames(path: Path, frames: list[np.ndarray], *, fps: int = 10, audio: np.ndarray | None = None,
                 sample_rate: int = 16000) -> Path:
    """An mp4 of exactly these RGB frames (each (H, W, 3) uint8, even sides) and optional mono float audio."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"preset": "ultrafast"}
        a = None
        if audio is not None:
            a = c.add_stream("aac", rate=sample_rate)
            a.layout = "mono"
        for img in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if a is not None:
            wave = np.asarray(audio, np.float32)
            for start in range(0, len(wave), 1024):
                fr = av.AudioFrame.from_ndarray(wave[start:start + 1024].reshape(1, -1), format="flt", layout="mono")
                fr.sample_rate, fr.pts, fr.time_base = sample_rate, start, Fraction(1, sample_rate)
                for p in a.encode(fr):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path
