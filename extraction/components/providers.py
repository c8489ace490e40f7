"""Core providers: metadata, frames, visual embeddings, motion, faces, audio, text.

Each turns the video (or its sidecar) into one artifact. Model work goes through ``ctx.infer`` (Triton);
the numpy here only packs inputs and summarises outputs.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from extraction.components.base import Component, ComponentResult, ComputeContext, empty_like_schema
from extraction.decode import AUDIO_SAMPLE_RATE

SHORT_VIDEO_S = 1.0  # below this a video is "degraded": too little to see pacing or motion


def _f(x: float) -> np.ndarray:
    return np.asarray(float(x), np.float64)


def _frames_status(ctx: ComputeContext) -> tuple[str, list[str]]:
    """Frame-based components inherit ``degraded`` from the frames provider."""
    _, status = ctx.dep("frames")
    return status, ([f"frames provider is {status}"] if status != "ok" else [])


class MetadataProvider(Component):
    name = "metadata"
    kind = "core"
    producer_version = "1.0.0"
    tier = 0

    def config_for_key(self, video, params):
        return {"sidecar": video.metadata}  # new snapshot numbers -> new key

    def compute(self, ctx: ComputeContext) -> ComponentResult:
        m = ctx.video.metadata
        ch = m.get("channel", {}) or {}
        published = datetime.fromisoformat(str(m["published_at"]).replace("Z", "+00:00"))
        def get(d, k):
            return float(d[k]) if d.get(k) is not None else np.nan
        arrays = {
            "video_age_hours_at_snapshot1": _f(get(m, "video_age_hours_at_snapshot1")),
            "views_snapshot1": _f(get(m, "views_snapshot1")),
            "likes_snapshot1": _f(get(m, "likes_snapshot1")),
            "channel_subscribers": _f(get(ch, "subscribers")),
            "channel_video_count": _f(get(ch, "video_count")),
            "channel_avg_views": _f(get(ch, "avg_views")),
            "published_hour_utc": _f(published.hour + published.minute / 60),
            "published_weekday": _f(published.weekday()),
        }
        missing = [k for k, v in arrays.items() if np.isnan(v)]
        return ComponentResult(arrays, status="degraded" if missing else "ok",
                               coverage=1 - len(missing) / len(arrays),
                               warnings=[f"metadata missing: {missing}"] if missing else [])


class FramesProvider(Component):
    name = "frames"
    kind = "core"
    producer_version = "1.0.0"
    tier = 0
    uses_frames = True

    def compute(self, ctx: ComputeContext) -> ComponentResult:
        from extraction.decode import probe

        info = probe(ctx.video.path)
        fr = ctx.video.frames
        bright = np.array([f.mean() / 255.0 for f in fr.rgb], np.float32)
        color = np.array([_colorfulness(f) for f in fr.rgb], np.float32)
        arrays = {
            "timestamps": fr.timestamps, "frame_index": fr.frame_index, "brightness": bright,
            "colorfulness": color, "duration_s": _f(info.duration_s), "fps": _f(info.fps),
            "width": _f(info.width), "height": _f(info.height), "n_frames_decoded": _f(fr.n_decoded),
        }
        warnings = list(fr.warnings)
        status = "ok"
        if not fr.rgb:
            status = "empty"
        elif info.duration_s < SHORT_VIDEO_S:
            status = "degraded"
            warnings.append(f"very short video ({info.duration_s:.2f}s < {SHORT_VIDEO_S}s)")
        elif fr.coverage < 0.9:
            status = "degraded"
        return ComponentResult(arrays, status=status, coverage=fr.coverage, warnings=warnings)


def _colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness, scaled by 1/100."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float((np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())) / 100.0)


class VisualProvider(Component):
    name = "visual"
    kind = "core"
    producer_version = "1.0.0"
    dependencies = ("frames",)
    tier = 0
    uses_model = True
    models = ("visual_embed_fast", "visual_embed_quality", "visual_embed_fast_onnx", "visual_embed_quality_onnx")
    uses_frames = True
    unit = "frame"

    def compute(self, ctx: ComputeContext) -> ComponentResult:
        import cv2

        status, warnings = _frames_status(ctx)
        frames = ctx.video.frames
        if not frames.rgb:
            return ComponentResult(empty_like_schema(self.name), status="empty", coverage=0.0, warnings=warnings)
        h, w, _ = ctx.model.inputs["FRAMES"].dims  # the server config says what the model takes
        batch = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames.rgb])  # (N, h, w, 3)
        emb = ctx.infer({"FRAMES": batch})["EMBEDDING"].astype(np.float32)  # (N, D)
        return ComponentResult({"timestamps": frames.timestamps, "embeddings": emb}, status=status,
                               coverage=frames.coverage, warnings=warnings)


class MotionProvider(Component):
    name = "motion"
    kind = "core"
    producer_version = "1.0.0"
    dependencies = ("frames",)
    uses_model = True
    models = ("optical_flow",)
    uses_frames = True
    unit = "frame_pair"

    def compute(self, ctx: ComputeContext) -> ComponentResult:
        import cv2

        status, warnings = _frames_status(ctx)
        frames = ctx.video.frames
        if len(frames.rgb) < 2:
            return ComponentResult(empty_like_schema(self.name), status="empty", coverage=0.0,
                                   warnings=[*warnings, "fewer than 2 sampled frames: no motion"])
        side = int(ctx.params.get("pair_max_side", 320))
        gray = []
        for f in frames.rgb:
            g = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
            s = side / max(g.shape)
            gray.append(cv2.resize(g, (round(g.shape[1] * s), round(g.shape[0] * s)), interpolation=cv2.INTER_AREA)
                        if s < 1 else g)
        pairs = np.stack([np.stack([a, b]) for a, b in zip(gray[:-1], gray[1:], strict=True)])  # (P, 2, H, W)
        stats = ctx.infer({"FRAME_PAIRS": pairs})["MOTION_STATS"].astype(np.float32)  # (P, 4)
        arrays = {"timestamps": frames.timestamps[1:], "magnitude_mean": stats[:, 0], "magnitude_p95": stats[:, 1],
                  "moving_fraction": stats[:, 2], "direction_coherence": stats[:, 3]}
        return ComponentResult(arrays, status=status, coverage=frames.coverage, warnings=warnings)


class FacesProvider(Component):
    name = "faces"
    kind = "core"
    producer_version = "1.0.0"
    dependencies = ("frames",)
    uses_model = True
    models = ("face_detector",)
    uses_frames = True
    unit = "frame"

    def compute(self, ctx: ComputeContext) -> ComponentResult:
        import cv2

        status, warnings = _frames_status(ctx)
        frames = ctx.video.frames
        if not frames.rgb:
            return ComponentResult(empty_like_schema(self.name), status="empty", coverage=0.0, warnings=warnings)
        side = int(ctx.params.get("max_side", 480))
        imgs = []
        for f in frames.rgb:
            s = side / max(f.shape[:2])
            imgs.append(cv2.resize(f, (round(f.shape[1] * s), round(f.shape[0] * s)), interpolation=cv2.INTER_AREA)
                        if s < 1 else f)
        out = ctx.infer({"FRAMES": np.stack(imgs)})
        boxes, scores, count = out["BOXES"], out["SCORES"], out["COUNT"].reshape(-1).astype(np.int64)  # (N,16,4)
        keep_boxes, keep_scores, keep_frame = [], [], []
        for i, c in enumerate(count):
            keep_boxes.append(boxes[i, :c])
            keep_scores.append(scores[i, :c])
            keep_frame.extend([i] * int(c))
        b = np.concatenate(keep_boxes).astype(np.float32).reshape(-1, 4)
        area = np.zeros(len(count), np.float32)
        if len(b):
            np.maximum.at(area, np.asarray(keep_frame), b[:, 2] * b[:, 3])
        arrays = {"timestamps": frames.timestamps, "face_count": count, "max_face_area": area, "boxes": b,
                  "box_frame": np.asarray(keep_frame, np.int64),
                  "scores": np.concatenate(keep_scores).astype(np.float32)}
        if count.sum() == 0:
            return ComponentResult(arrays, status="empty", coverage=frames.coverage,
                                   warnings=[*warnings, "no faces detected"])
        return ComponentResult(arrays, status=status, coverage=frames.coverage, warnings=warnings)


class AudioProvider(Component):
    name = "audio"
    kind = "core"
    producer_version = "1.0.0"
    uses_model = True
    models = ("audio_features",)
    uses_audio = True
    unit = "audio_window"

    def compute(self, ctx: ComputeContext) -> ComponentResult:
        wave = ctx.video.audio
        if wave is None:
            return ComponentResult(empty_like_schema(self.name, sample_rate=AUDIO_SAMPLE_RATE, has_audio=0.0),
                                   status="empty", coverage=0.0, warnings=["no audio track"])
        win = int(round(float(ctx.params.get("window_s", 1.0)) * AUDIO_SAMPLE_RATE))
        n = len(wave) // win
        if n == 0:
            return ComponentResult(empty_like_schema(self.name, sample_rate=AUDIO_SAMPLE_RATE, has_audio=1.0),
                                   status="empty", coverage=0.0, warnings=["audio shorter than one window"])
        windows = wave[: n * win].reshape(n, win)  # (W, samples)
        out = ctx.infer({"WAVEFORM": np.ascontiguousarray(windows, np.float32)})
        stats = out["STATS"].astype(np.float32)  # (W, 3)
        arrays = {"window_start_s": np.arange(n, dtype=np.float64) * win / AUDIO_SAMPLE_RATE, "rms": stats[:, 0],
                  "spectral_centroid_hz": stats[:, 1], "zero_crossing_rate": stats[:, 2],
                  "logmel": out["LOGMEL"].astype(np.float32), "sample_rate": _f(AUDIO_SAMPLE_RATE),
                  "has_audio": _f(1.0)}
        return ComponentResult(arrays, coverage=min(1.0, n * win / max(len(wave), 1)))


class TextProvider(Component):
    name = "text"
    kind = "core"
    producer_version = "1.0.0"
    tier = 0
    uses_model = True
    models = ("text_embed", "text_embed_onnx")
    uses_text = True
    unit = "text"

    def config_for_key(self, video, params):
        return {"params": {k: v for k, v in params.items() if k != "model"},
                "text": [video.metadata.get("title", ""), video.metadata.get("description", "")]}

    def compute(self, ctx: ComputeContext) -> ComponentResult:
        title = str(ctx.video.metadata.get("title") or "")
        desc = str(ctx.video.metadata.get("description") or "")
        emb = ctx.infer({"TEXT": np.array([[title.encode()], [desc.encode()]], dtype=object)})["EMBEDDING"]  # (2, D)
        arrays = {"title_embedding": emb[0].astype(np.float32), "description_embedding": emb[1].astype(np.float32),
                  "title_chars": _f(len(title)), "description_chars": _f(len(desc)),
                  "title_words": _f(len(title.split())), "hashtag_count": _f((title + " " + desc).count("#")),
                  "question_or_exclaim": _f(float("?" in title or "!" in title))}
        warnings = [] if title or desc else ["empty title and description"]
        return ComponentResult(arrays, status="ok" if title or desc else "degraded", warnings=warnings)
