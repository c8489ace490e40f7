"""Video and audio decoding with PyAV, and the frame sampling policy.

Sampling policy ``uniform-fps-v1``: target times ``t_k = k / fps`` (k = 0, 1, ...) over the stream's
duration, thinned evenly to at most ``max_frames``; for each target the first decoded frame with
``pts >= t_k`` is kept, resized so its longer side is at most ``max_side``. ``coverage`` is the fraction of
target times that received a frame (decode errors midway lower it). Bump the version whenever any of this
changes: it is part of every frame-based cache key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.errors import VideoDecodeFailed

SAMPLING_POLICY_VERSION = "uniform-fps-v1"
AUDIO_SAMPLE_RATE = 16000
# Refused from the container header before any frame is decoded (the video is recorded as failed with the code,
# the others complete): a frame too small for any component (the face detector needs 24 px, optical flow 16 px),
# or a declared duration no platform video of ours reaches (decoding to its sampling targets would hold a worker
# for minutes; a header that declares hours over a few kB is malformed anyway).
MIN_SIDE_PX = 16
MAX_DURATION_S = 3600.0


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float
    duration_s: float
    has_audio: bool


@dataclass
class SampledFrames:
    rgb: list[np.ndarray]  # N x (H, W, 3) uint8, resized to max_side
    timestamps: np.ndarray  # (N,) float64 seconds
    frame_index: np.ndarray  # (N,) int64 decode-order index
    n_decoded: int
    coverage: float
    warnings: list[str]


def _open(path: str):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoDecodeFailed(f"{path}: cannot open video ({exc})", video=str(path)) from exc


def probe(path: str) -> VideoInfo:
    """Stream facts from the container; raises ``video_decode_failed`` when there is no video stream."""
    with _open(path) as c:
        if not c.streams.video:
            raise VideoDecodeFailed(f"{path}: no video stream", video=str(path))
        vs = c.streams.video[0]
        fps = float(vs.average_rate) if vs.average_rate else 25.0
        if vs.duration is not None and vs.time_base is not None:
            duration = float(vs.duration * vs.time_base)
        elif c.duration is not None:
            duration = c.duration / 1_000_000
        else:
            duration = 0.0
        return VideoInfo(vs.codec_context.width, vs.codec_context.height, fps, duration, bool(c.streams.audio))


def target_times(duration_s: float, fps: float, max_frames: int) -> np.ndarray:
    """Sampling targets of ``uniform-fps-v1`` (pure; unit-tested)."""
    n = max(1, int(np.floor(duration_s * fps + 1e-9)))
    t = np.arange(n) / fps
    if n > max_frames:
        t = t[np.linspace(0, n - 1, max_frames).round().astype(int)]
    return t


def _resize(img: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return img
    return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def sample_frames(path: str, fps: float, max_frames: int, max_side: int) -> SampledFrames:
    """Decode ``path`` once and keep the frames of the sampling policy."""
    import av

    info = probe(path)
    if min(info.width, info.height) < MIN_SIDE_PX:
        raise VideoDecodeFailed(f"{path}: the video stream is {info.width}x{info.height} pixels, each side at least "
                                f"{MIN_SIDE_PX}", code="video_too_small", video=str(path))
    if info.duration_s > MAX_DURATION_S:
        raise VideoDecodeFailed(f"{path}: the container declares {info.duration_s:.0f} s, at most "
                                f"{MAX_DURATION_S:.0f} s", code="video_too_long", video=str(path))
    targets = target_times(max(info.duration_s, 1.0 / fps), fps, max_frames)
    rgb: list[np.ndarray] = []
    ts: list[float] = []
    idx: list[int] = []
    warnings: list[str] = []
    k = 0
    n_decoded = 0
    with _open(path) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for i, frame in enumerate(c.decode(stream)):
                n_decoded += 1
                t = float(frame.time) if frame.time is not None else i / (info.fps or 25.0)
                if k < len(targets) and t + 1e-6 >= targets[k]:
                    rgb.append(_resize(frame.to_ndarray(format="rgb24"), max_side))
                    ts.append(t)
                    idx.append(i)
                    while k < len(targets) and targets[k] <= t + 1e-6:
                        k += 1
                if k >= len(targets):
                    break
        except av.error.FFmpegError as exc:
            if n_decoded == 0:
                raise VideoDecodeFailed(f"{path}: no frame could be decoded ({exc})", video=str(path)) from exc
            warnings.append(f"decode stopped after {n_decoded} frames: {exc}")
    if n_decoded == 0:
        raise VideoDecodeFailed(f"{path}: the video stream holds no decodable frame", video=str(path))
    return SampledFrames(rgb, np.asarray(ts, np.float64), np.asarray(idx, np.int64), n_decoded,
                         coverage=min(1.0, len(ts) / len(targets)), warnings=warnings)


def decode_audio(path: str, sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray | None:
    """Mono float32 waveform at ``sample_rate``; None when the file has no audio stream."""
    import av

    with _open(path) as c:
        if not c.streams.audio:
            return None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        parts: list[np.ndarray] = []
        try:
            for frame in c.decode(c.streams.audio[0]):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError:
            pass  # keep what decoded; the audio component reports the coverage
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
