"""Dense optical flow and the motion statistics of one frame pair (``optical_flow``).

Flow is OpenCV's DIS (Kroeger et al. 2016) at ``PRESET_FAST``. The four statistics are the ones stored by
the motion component (see ``extraction.schemas``), all scale-free:

* ``magnitude_mean``: mean flow magnitude divided by the frame width;
* ``magnitude_p95``: 95th percentile of the same;
* ``moving_fraction``: fraction of pixels whose magnitude exceeds ``0.005`` of the width;
* ``direction_coherence``: ``|mean of unit flow vectors|`` over the moving pixels, in [0, 1]
  (1 = everything moves the same way, e.g. a pan; 0 when nothing moves).
"""

from __future__ import annotations

import cv2
import numpy as np

MOVING_THRESHOLD = 0.005  # of frame width
MIN_SIDE = 16  # DIS needs a side >= 12; smaller pairs carry no usable motion anyway
STAT_NAMES: tuple[str, ...] = ("magnitude_mean", "magnitude_p95", "moving_fraction", "direction_coherence")


def create_dis() -> cv2.DISOpticalFlow:
    """A DIS flow estimator at the fast preset (reusable across calls; it keeps no state between pairs)."""
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)


def check_pairs(pairs: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``pairs`` is ``(B, 2, H, W)`` uint8 with ``H, W >= MIN_SIDE``."""
    if pairs.dtype != np.uint8 or pairs.ndim != 4 or pairs.shape[1] != 2:
        raise ValueError(f"FRAME_PAIRS must be uint8 (B, 2, H, W) grayscale, got {pairs.dtype} {pairs.shape}")
    if min(pairs.shape[2], pairs.shape[3]) < MIN_SIDE:
        raise ValueError(f"frames are {pairs.shape[2]}x{pairs.shape[3]}; both sides must be >= {MIN_SIDE}")


def motion_stats_from_flow(flow: np.ndarray, width: int, threshold: float = MOVING_THRESHOLD) -> np.ndarray:
    """The four motion statistics of one dense flow field.

    Args:
        flow: ``(H, W, 2)`` displacement in pixels (dx, dy).
        width: frame width in pixels (normaliser).
        threshold: moving if magnitude > ``threshold`` (fraction of width).

    Returns:
        ``(4,)`` float32 ``[magnitude_mean, magnitude_p95, moving_fraction, direction_coherence]``.
    """
    flow = np.asarray(flow, np.float64)
    mag = np.hypot(flow[..., 0], flow[..., 1]) / float(width)  # (H, W)
    moving = mag > threshold
    n_moving = int(moving.sum())
    if n_moving:
        unit = flow[moving] / (mag[moving, None] * width)  # (n_moving, 2) unit vectors
        coherence = float(np.hypot(*unit.mean(axis=0)))
    else:
        coherence = 0.0
    return np.array(
        [mag.mean(), np.percentile(mag, 95), n_moving / mag.size, min(coherence, 1.0)], dtype=np.float32
    )


def motion_stats(dis: cv2.DISOpticalFlow, pairs: np.ndarray) -> np.ndarray:
    """Motion statistics of each (previous, next) grayscale pair.

    Args:
        dis: from :func:`create_dis`.
        pairs: ``(B, 2, H, W)`` uint8.

    Returns:
        ``(B, 4)`` float32, columns as :data:`STAT_NAMES`.
    """
    check_pairs(pairs)
    width = pairs.shape[3]
    out = np.empty((pairs.shape[0], 4), np.float32)
    for i, (prev, nxt) in enumerate(pairs):
        flow = dis.calc(np.ascontiguousarray(prev), np.ascontiguousarray(nxt), None)  # (H, W, 2)
        out[i] = motion_stats_from_flow(flow, width)
    return out
