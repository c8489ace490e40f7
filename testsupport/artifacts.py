"""Fabricated extractor output for tests and the benchmark: real run folders (artifacts written with
:func:`extraction.artifacts.write_artifact` in the components' schemas, plus ``manifest.json``) without
decoding any video. Deterministic: run ``i`` of a corpus depends only on ``(seed, i)``.

Not used by training or inference; importing it has no side effects.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from common.fsio import atomic_write_json
from extraction.artifacts import run_dir, write_artifact
from extraction.schemas import SCHEMAS, ArtifactMeta

COMPONENTS: tuple[str, ...] = ("metadata", "frames", "visual", "motion", "faces", "audio", "text", "video_pacing",
                               "face_presence")
LABEL_COLUMNS: tuple[str, ...] = ("platform_id", "video_id", "channel_id", "published_at",
                                  "video_age_hours_at_snapshot1", "views_snapshot1", "likes_snapshot1", "views_7d",
                                  "views_14d", "views_21d", "likes_7d", "likes_14d", "likes_21d")


def empty_arrays(component: str, **scalars: float) -> dict[str, np.ndarray]:
    """Arrays of ``component`` with every symbolic axis 0 and scalars NaN (what an "empty" provider writes)."""
    out: dict[str, np.ndarray] = {}
    for name, spec in SCHEMAS[component].arrays.items():
        if not spec.shape:
            out[name] = np.asarray(scalars.get(name, np.nan), np.float64)
        else:
            shape = tuple(d if isinstance(d, int) else 0 for d in spec.shape)
            out[name] = np.zeros(shape, np.int64 if spec.kind == "i" else np.float32)
    return out


def _f(x: float) -> np.ndarray:
    return np.asarray(float(x), np.float64)


def _unit(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


def fabricate_metadata(rng: np.random.Generator, platform_id: str, video_id: str) -> dict[str, Any]:
    """A sidecar metadata dict like the demo generator's."""
    subs = float(np.round(rng.lognormal(9, 2)))
    views1 = float(np.round(rng.lognormal(6, 1.5)))
    published = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=int(rng.integers(0, 300 * 24 * 60)))
    age = float(np.round(rng.uniform(1, 240), 2))
    return {
        "platform_id": platform_id, "video_id": video_id, "title": f"video {video_id}",
        "description": "fabricated #demo", "published_at": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "snapshot1_at": (published + timedelta(hours=age)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "video_age_hours_at_snapshot1": age, "views_snapshot1": views1,
        "likes_snapshot1": float(np.round(views1 * rng.uniform(0.01, 0.1))),
        "channel": {"channel_id": f"ch{int(rng.integers(0, 500)):04d}", "subscribers": subs,
                    "video_count": float(rng.integers(1, 2000)),
                    "avg_views": float(np.round(subs * rng.uniform(0.05, 1)))},
    }


def fabricate_arrays(rng: np.random.Generator, metadata: dict[str, Any], *, n_frames: int = 24, visual_dim: int = 128,
                     text_dim: int = 384, n_mels: int = 32, faces: bool = True, has_audio: bool = True
                     ) -> dict[str, tuple[dict[str, np.ndarray], str]]:
    """``component -> (arrays, status)`` for a plausible video; ``faces=False`` gives the extractor's
    "no face seen" (faces / face_presence status empty, counts 0), ``has_audio=False`` "no audio track"."""
    m, ch = metadata, metadata.get("channel", {})
    published = datetime.fromisoformat(str(m["published_at"]).replace("Z", "+00:00"))
    def get(d, k):
        return float(d[k]) if d.get(k) is not None else math.nan
    out: dict[str, tuple[dict[str, np.ndarray], str]] = {}
    meta_arrays = {
        "video_age_hours_at_snapshot1": _f(get(m, "video_age_hours_at_snapshot1")),
        "views_snapshot1": _f(get(m, "views_snapshot1")), "likes_snapshot1": _f(get(m, "likes_snapshot1")),
        "channel_subscribers": _f(get(ch, "subscribers")), "channel_video_count": _f(get(ch, "video_count")),
        "channel_avg_views": _f(get(ch, "avg_views")),
        "published_hour_utc": _f(published.hour + published.minute / 60), "published_weekday": _f(published.weekday()),
    }
    out["metadata"] = (meta_arrays, "degraded" if any(np.isnan(v) for v in meta_arrays.values()) else "ok")
    n = n_frames
    ts = np.arange(n, dtype=np.float64) * 0.5
    duration = max(n * 0.5, 0.5)
    vertical = bool(rng.random() < 0.4)
    out["frames"] = ({
        "timestamps": ts, "frame_index": np.arange(n, dtype=np.int64) * 15,
        "brightness": rng.uniform(0.1, 0.9, n).astype(np.float32),
        "colorfulness": rng.uniform(0.0, 1.2, n).astype(np.float32), "duration_s": _f(duration), "fps": _f(30),
        "width": _f(720 if vertical else 1280), "height": _f(1280 if vertical else 720),
        "n_frames_decoded": _f(duration * 30)}, "ok")
    base = _unit(rng, (visual_dim,))
    emb = _unit(rng, (n, visual_dim)) * 0.5 + base  # frames of one video resemble each other
    out["visual"] = ({"timestamps": ts, "embeddings": (emb / np.linalg.norm(emb, axis=1, keepdims=True))
                      .astype(np.float32)}, "ok")
    p = max(n - 1, 0)
    mag = rng.gamma(2.0, 0.01, p).astype(np.float32)
    out["motion"] = ({"timestamps": ts[1:], "magnitude_mean": mag, "magnitude_p95": (mag * 2.5).astype(np.float32),
                      "moving_fraction": rng.uniform(0, 0.6, p).astype(np.float32),
                      "direction_coherence": rng.uniform(0, 1, p).astype(np.float32)}, "ok")
    count = rng.integers(0, 3, n).astype(np.int64) if faces else np.zeros(n, np.int64)
    box_frame = np.repeat(np.arange(n, dtype=np.int64), count)
    mm = len(box_frame)
    boxes = np.column_stack([rng.uniform(0, 0.7, (mm, 2)), rng.uniform(0.05, 0.3, (mm, 2))]).astype(np.float32)
    area = np.zeros(n, np.float32)
    np.maximum.at(area, box_frame, boxes[:, 2] * boxes[:, 3])
    faces_status = "ok" if count.sum() else "empty"
    out["faces"] = ({"timestamps": ts, "face_count": count, "max_face_area": area, "boxes": boxes.reshape(-1, 4),
                     "box_frame": box_frame, "scores": rng.uniform(0.5, 1, mm).astype(np.float32)}, faces_status)
    present = count > 0
    out["face_presence"] = ({
        "presence_ratio": _f(present.mean() if n else math.nan), "mean_face_count": _f(count.mean() if n else math.nan),
        "max_face_area": _f(area.max() if n else math.nan),
        "first_face_s": _f(ts[present][0] if present.any() else math.nan),
        "face_screen_time_s": _f(present.sum() * 0.5)}, faces_status)
    if has_audio:
        w = max(int(duration), 1)
        out["audio"] = ({"window_start_s": np.arange(w, dtype=np.float64),
                         "rms": rng.uniform(0, 0.3, w).astype(np.float32),
                         "spectral_centroid_hz": rng.uniform(300, 4000, w).astype(np.float32),
                         "zero_crossing_rate": rng.uniform(0, 0.3, w).astype(np.float32),
                         "logmel": rng.normal(-8, 2, (w, n_mels)).astype(np.float32), "sample_rate": _f(16000),
                         "has_audio": _f(1)}, "ok")
    else:
        out["audio"] = (empty_arrays("audio", sample_rate=16000, has_audio=0.0), "empty")
    title, desc = str(m.get("title", "")), str(m.get("description", ""))
    out["text"] = ({"title_embedding": _unit(rng, (text_dim,)), "description_embedding": _unit(rng, (text_dim,)),
                    "title_chars": _f(len(title)), "description_chars": _f(len(desc)),
                    "title_words": _f(len(title.split())), "hashtag_count": _f((title + " " + desc).count("#")),
                    "question_or_exclaim": _f("?" in title or "!" in title)}, "ok")
    cuts = np.sort(rng.uniform(0, duration, int(rng.integers(0, max(n // 4, 1) + 1)))).astype(np.float64)
    shots = np.diff(np.concatenate([[0.0], cuts, [duration]]))
    out["video_pacing"] = ({
        "cut_times": cuts, "cuts_per_minute": _f(60 * len(cuts) / duration), "shot_length_mean_s": _f(shots.mean()),
        "shot_length_std_s": _f(shots.std()), "motion_energy_mean": _f(mag.mean() if p else math.nan),
        "motion_energy_std": _f(mag.std() if p else math.nan), "motion_rhythm": _f(rng.uniform(-0.2, 0.9))}, "ok")
    return out


def _meta(platform_id: str, video_id: str, run_id: str, component: str, status: str) -> ArtifactMeta:
    return ArtifactMeta(platform_id=platform_id, video_id=video_id, run_id=run_id, component=component,
                        producer_version="1.0.0", schema_version=SCHEMAS[component].version, status=status,
                        model_signature="none", coverage=0.0 if status == "empty" else 1.0, config_hash="fabricated",
                        sampling_policy_version="uniform-fps-v1", seed=0, runtime_env_hash="fabricated",
                        cache_key=f"{video_id}-{component}", created_at="2026-11-24T00:00:00Z")


def write_run(root: str | Path, metadata: dict[str, Any], components: dict[str, tuple[dict[str, np.ndarray], str]],
              *, run_id: str = "r0001", errors: Iterable[str] = (), finished_at: str = "2026-11-24T00:00:01Z",
              profile: str = "fast") -> Path:
    """Write one run folder: each component's artifact (status as given) and a manifest in the extractor's
    format; components in ``errors`` get a manifest entry with status "error" and no artifact."""
    pid, vid = str(metadata["platform_id"]), str(metadata["video_id"])
    rd = run_dir(Path(root), pid, vid, run_id)
    entries: dict[str, Any] = {}
    errors = set(errors)
    for comp in COMPONENTS:
        entry: dict[str, Any] = {"status": "error", "artifact": None, "cache_hit": False, "source_artifact": None,
                                 "signature": f"{vid}-{comp}", "cache_key": f"{vid}-{comp}", "batch_size": 0,
                                 "latency_s": 0.0, "warnings": [], "error_code": None, "error_message": None,
                                 "retry_count": 0}
        if comp in errors or comp not in components:
            entry.update(error_code="fabricated_error", error_message=f"{comp} failed (fabricated)")
        else:
            arrays, status = components[comp]
            write_artifact(rd / f"{comp}.npz", arrays, _meta(pid, vid, run_id, comp, status))
            entry.update(status=status, artifact=f"{comp}.npz")
        entries[comp] = entry
    manifest = {"run_id": run_id, "platform_id": pid, "video_id": vid, "video_path": f"/fabricated/{vid}.mp4",
                "profile": profile, "started_at": "2026-11-24T00:00:00Z", "finished_at": finished_at,
                "status": "ok" if not errors else "partial", "metadata": metadata, "resolved_models": {},
                "config_hash": "fabricated", "components": entries}
    atomic_write_json(rd / "manifest.json", manifest)
    return rd


def fabricate_labels(rng: np.random.Generator, metadata: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    """Label row whose targets depend on the content (so a model has something to learn); some 7d/14d empty."""
    m = metadata
    quality = float(arrays["frames"][0]["brightness"].mean()) if len(arrays["frames"][0]["brightness"]) else 0.5
    growth = math.exp(1.0 + 1.5 * quality + 0.3 * float(rng.standard_normal()))
    v1, l1 = float(m["views_snapshot1"] or 0.0), float(m["likes_snapshot1"] or 0.0)
    row: dict[str, Any] = {"platform_id": m["platform_id"], "video_id": m["video_id"],
                           "channel_id": m["channel"]["channel_id"], "published_at": m["published_at"],
                           "video_age_hours_at_snapshot1": m["video_age_hours_at_snapshot1"],
                           "views_snapshot1": v1, "likes_snapshot1": l1}
    for days in (7, 14, 21):
        g = growth ** (days / 21)
        row[f"views_{days}d"] = float(np.round(v1 * (1 + g)))
        row[f"likes_{days}d"] = float(np.round(l1 * (1 + g)))
    if rng.random() < 0.1:
        row["views_7d"] = row["likes_7d"] = None
    if rng.random() < 0.05:
        row["views_14d"] = row["likes_14d"] = None
    return row


def fabricate_one(root: str | Path, seed: int, i: int, *, scenarios: bool = True) -> dict[str, Any]:
    """Run ``i`` of a corpus (mix of ok / no faces / no audio / degraded / failed components when
    ``scenarios``); returns its label row."""
    rng = np.random.default_rng([seed, i])
    meta = fabricate_metadata(rng, "youtube", f"v{i:06d}")
    kw: dict[str, Any] = {"n_frames": int(rng.integers(8, 49))}
    errors: list[str] = []
    if scenarios:
        r = rng.random()
        kw["faces"] = r >= 0.3
        kw["has_audio"] = r < 0.92 or r >= 0.97
        if 0.97 <= r < 0.98:
            meta["likes_snapshot1"] = None  # metadata degraded
        elif 0.98 <= r < 0.99:
            errors = ["text"]
        elif r >= 0.998:
            errors = ["metadata"]  # critical features missing: the table drops this run
    arrays = fabricate_arrays(rng, meta, **kw)
    write_run(root, meta, arrays, errors=errors)
    return fabricate_labels(rng, meta, arrays)


def _chunk(args: tuple[str, int, list[int], bool]) -> list[dict[str, Any]]:
    root, seed, idx, scenarios = args
    return [fabricate_one(root, seed, i, scenarios=scenarios) for i in idx]


def fabricate_corpus(root: str | Path, n: int, *, seed: int = 0, workers: int = 1, scenarios: bool = True,
                     labels_path: str | Path | None = None) -> list[dict[str, Any]]:
    """Write ``n`` fabricated runs under ``root`` (``workers`` processes); returns (and optionally writes as
    CSV) the label rows."""
    import pandas as pd

    idx = list(range(n))
    if workers <= 1:
        rows = _chunk((str(root), seed, idx, scenarios))
    else:
        step = max(1, math.ceil(n / (workers * 8)))
        chunks = [(str(root), seed, idx[k:k + step], scenarios) for k in range(0, n, step)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = [r for part in pool.map(_chunk, chunks) for r in part]
    if labels_path is not None:
        Path(labels_path).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows, columns=list(LABEL_COLUMNS)).to_csv(labels_path, index=False)
    return rows


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))
