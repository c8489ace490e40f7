"""Face detection with OpenCV's bundled Haar cascade (``face_detector``).

Viola-Jones frontal-face cascade ``haarcascade_frontalface_default.xml`` as shipped in ``cv2.data``.
Confidence is ``sigmoid(levelWeight)`` from ``detectMultiScale3(..., outputRejectLevels=True)``: the
final-stage margin of the grouped detection, mapped to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CASCADE_FILE = "haarcascade_frontalface_default.xml"
WINDOW_PX = 24  # the frontal-face cascade's detection window


@dataclass(frozen=True)
class HaarConfig:
    """Detector settings (part of the model: changing them changes this file, hence the digest).

    Attributes:
        max_faces: boxes kept per frame (highest score first); the output is padded to this many.
        scale_factor: image pyramid step of ``detectMultiScale``.
        min_neighbors: overlapping raw detections needed to keep a grouped box.
        min_size_frac: smallest face side as a fraction of the frame's shorter side (floored at 24 px,
            the cascade's window).
        min_side: smallest frame side accepted; smaller frames are a bad request.
        detect_min_face_frac: when set, the smallest face looked for, as a fraction of the frame's shorter side:
            each frame is first downscaled (area interpolation) so that a face of this size spans the cascade's
            24-px window, and detection runs on the small frame. The cascade's cost grows with the pixels of the
            pyramid's first levels, so this stops paying for the small scales where the demo's faces never are
            (``face_detector`` version 2; ``python -m benchmarks.faces`` measures it against version 1).
    """

    max_faces: int = 16
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size_frac: float = 0.05
    min_side: int = 24
    detect_min_face_frac: float | None = None


# face_detector's versions differ only in these settings (each version's model.py asks for its own).
VERSION_SETTINGS: dict[str, dict[str, float | int]] = {
    "1": {},
    # Downscale so that a face of 20% of the short side meets the 24-px window (the fast profile's 480x270 frames
    # become 213x120); the finer pyramid step and fewer neighbours give back the raw detections the smaller image
    # loses (at 1.1 / 5 the second, smaller face of two-face shots was dropped). Measured by benchmarks.faces.
    "2": {"detect_min_face_frac": 0.2, "scale_factor": 1.05, "min_neighbors": 3},
}


def haar_config(version: str, max_faces: int = 16) -> HaarConfig:
    """The detector settings of ``face_detector`` version ``version``."""
    if version not in VERSION_SETTINGS:
        raise ValueError(f"face_detector has no version {version!r} (known: {sorted(VERSION_SETTINGS)})")
    return HaarConfig(max_faces=max_faces, **VERSION_SETTINGS[version])


def cascade_path() -> Path:
    """Location of the bundled frontal-face cascade."""
    return Path(cv2.data.haarcascades) / CASCADE_FILE


def asset_files() -> list[tuple[str, Path]]:
    """External files the detector's output depends on (for the model digest)."""
    return [(f"cv2.data/{CASCADE_FILE}", cascade_path())]


def load_cascade(path: Path | None = None) -> cv2.CascadeClassifier:
    """Load the cascade; raises ``FileNotFoundError`` when it is missing or unreadable."""
    path = cascade_path() if path is None else Path(path)
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise FileNotFoundError(f"could not load Haar cascade {path}")
    return cascade


def check_frames(frames: np.ndarray, cfg: HaarConfig = HaarConfig()) -> None:
    """Raise ``ValueError`` unless ``frames`` is ``(B, H, W, 3)`` uint8 with ``H, W >= cfg.min_side``."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"FRAMES must be uint8 (B, H, W, 3) RGB, got {frames.dtype} {frames.shape}")
    if min(frames.shape[1], frames.shape[2]) < cfg.min_side:
        raise ValueError(f"FRAMES are {frames.shape[1]}x{frames.shape[2]}; both sides must be >= {cfg.min_side}")


def detect_faces(
    cascade: cv2.CascadeClassifier, frames: np.ndarray, cfg: HaarConfig = HaarConfig()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detect frontal faces in each frame.

    Args:
        cascade: from :func:`load_cascade`.
        frames: ``(B, H, W, 3)`` uint8 RGB.
        cfg: detector settings.

    Returns:
        boxes ``(B, max_faces, 4)`` float32 normalised ``x, y, w, h`` (zero-padded), scores
        ``(B, max_faces)`` float32 in [0, 1] (zero-padded), count ``(B, 1)`` int32, boxes sorted by score.
    """
    check_frames(frames, cfg)
    b, h, w = frames.shape[:3]
    boxes = np.zeros((b, cfg.max_faces, 4), np.float32)
    scores = np.zeros((b, cfg.max_faces), np.float32)
    count = np.zeros((b, 1), np.int32)
    min_px = max(WINDOW_PX, int(round(cfg.min_size_frac * min(h, w))))
    scale = 1.0
    if cfg.detect_min_face_frac:
        scale = min(1.0, WINDOW_PX / (cfg.detect_min_face_frac * min(h, w)))
        min_px = WINDOW_PX
    small = (max(WINDOW_PX, round(w * scale)), max(WINDOW_PX, round(h * scale)))
    for i in range(b):
        gray = cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, small, interpolation=cv2.INTER_AREA)
        rects, _levels, weights = cascade.detectMultiScale3(
            gray,
            scaleFactor=cfg.scale_factor,
            minNeighbors=cfg.min_neighbors,
            minSize=(min_px, min_px),
            outputRejectLevels=True,
        )
        if len(rects) == 0:
            continue
        rects = np.asarray(rects, np.float64).reshape(-1, 4)
        conf = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float64).reshape(-1)))
        order = np.argsort(-conf, kind="stable")[: cfg.max_faces]
        n = len(order)
        gh, gw = gray.shape
        boxes[i, :n] = rects[order] / np.array([gw, gh, gw, gh], np.float64)
        scores[i, :n] = conf[order]
        count[i, 0] = n
    return boxes, scores, count
