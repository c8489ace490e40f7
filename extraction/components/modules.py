"""Modules: components built only from other components' artifacts (no model calls of their own)."""

from __future__ import annotations

import numpy as np

from extraction.components.base import Component, ComponentResult, ComputeContext, empty_like_schema


def _f(x: float) -> np.ndarray:
    return np.asarray(float(x), np.float64)


def detect_cuts(timestamps: np.ndarray, embeddings: np.ndarray, z: float = 3.0, floor: float = 0.15) -> np.ndarray:
    """Cut times where consecutive frame embeddings jump: cosine distance above
    ``max(floor, median + z * MAD)`` of the video's own distances (pure; unit-tested)."""
    if len(embeddings) < 2:
        return np.zeros(0, np.float64)
    e = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-8)
    dist = 1.0 - np.sum(e[1:] * e[:-1], axis=1)  # (N-1,)
    med = np.median(dist)
    mad = np.median(np.abs(dist - med)) + 1e-6
    thr = max(floor, med + z * 1.4826 * mad)
    return np.asarray(timestamps[1:][dist > thr], np.float64)


def autocorr_peak(x: np.ndarray) -> float:
    """Largest autocorrelation of ``x`` at lags >= 1 (0 for constant or too-short series)."""
    if len(x) < 4 or np.std(x) < 1e-9:
        return 0.0
    x = (x - x.mean()) / x.std()
    ac = np.correlate(x, x, mode="full")[len(x):] / len(x)
    return float(np.clip(ac[: len(x) // 2].max(), -1, 1)) if len(ac) else 0.0


class VideoPacing(Component):
    name = "video_pacing"
    kind = "module"
    producer_version = "1.0.0"
    dependencies = ("visual", "motion", "frames")

    def compute(self, ctx: ComputeContext) -> ComponentResult:
        vis, vis_status = ctx.dep("visual")
        mot, mot_status = ctx.dep("motion")
        frames, _ = ctx.dep("frames")
        duration = float(frames["duration_s"])
        if vis_status == "empty" or len(vis["embeddings"]) < 2:
            return ComponentResult(empty_like_schema(self.name), status="empty", coverage=0.0,
                                   warnings=["visual provider empty: no pacing"])
        cuts = detect_cuts(vis["timestamps"], vis["embeddings"])
        bounds = np.concatenate([[0.0], cuts, [max(duration, float(vis["timestamps"][-1]))]])
        shots = np.diff(bounds)
        energy = mot["magnitude_mean"] if mot_status != "empty" else np.zeros(0, np.float32)
        arrays = {
            "cut_times": cuts, "cuts_per_minute": _f(60.0 * len(cuts) / max(duration, 1e-3)),
            "shot_length_mean_s": _f(shots.mean()), "shot_length_std_s": _f(shots.std()),
            "motion_energy_mean": _f(energy.mean() if len(energy) else np.nan),
            "motion_energy_std": _f(energy.std() if len(energy) else np.nan),
            "motion_rhythm": _f(autocorr_peak(energy) if len(energy) else np.nan),
        }
        warnings = [] if mot_status != "empty" else ["motion provider empty: motion fields NaN"]
        status = "degraded" if "degraded" in (vis_status, mot_status) or mot_status == "empty" else "ok"
        return ComponentResult(arrays, status=status, warnings=warnings)


class FacePresence(Component):
    name = "face_presence"
    kind = "module"
    producer_version = "1.0.0"
    dependencies = ("faces",)

    def compute(self, ctx: ComputeContext) -> ComponentResult:
        faces, status = ctx.dep("faces")
        ts, count = faces["timestamps"], faces["face_count"]
        if len(ts) == 0:
            return ComponentResult(empty_like_schema(self.name), status="empty", coverage=0.0,
                                   warnings=["faces provider has no frames"])
        present = count > 0
        step = float(np.median(np.diff(ts))) if len(ts) > 1 else 0.0
        arrays = {"presence_ratio": _f(present.mean()), "mean_face_count": _f(count.mean()),
                  "max_face_area": _f(faces["max_face_area"].max()),
                  "first_face_s": _f(ts[present][0] if present.any() else np.nan),
                  "face_screen_time_s": _f(present.sum() * step)}
        if status == "empty":  # no faces: the face fields say so, other modules are unaffected
            return ComponentResult(arrays, status="empty", warnings=["no faces in the video"])
        return ComponentResult(arrays, status=status)
