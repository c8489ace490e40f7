"""Seeded generator of a training table with the real spec's columns (tests and the >= 100k-row benchmark).

``python -m demo.synthetic_table --n 100000 --out data/synthetic_100k.parquet [--seed 0]``

The table has exactly the columns ``features build`` writes that training reads: ``features.raw_columns(spec)``
(features, then masks), ``features.target_columns(spec)`` (log1p), the keys ``platform_id``, ``video_id``,
``channel_id``, ``published_at``, ``age_bucket``; the Parquet metadata carries ``feature_schema_version``,
``feature_extractor_version`` (``synthetic``), ``spec_hash`` and the generator's seed.

Generative story (all on log scale, vectorised; 100k rows take ~1 s):

* channels have a size (log average views) and each video a content quality driven by a few latent content
  factors ``z``; every visual/motion/audio/text column is a fixed random mix of ``z`` plus noise (embeddings too),
  so content is predictive but only through the features;
* the 21-day total is ``0.8 * channel size + quality + noise``, 7/14-day totals follow a per-video saturation
  curve, likes are views times a like rate that also depends on content;
* the first snapshot is taken at an age of 1 h .. 10 d (log-uniform: every age bucket) and sees the curve
  at that age with noise that shrinks with age, so young videos are genuinely less predictable (wider
  calibrated intervals);
* modalities go missing at realistic rates (audio 15%, motion 5%, visual 3%, text 2%), optional targets too
  (the 7-day value when the snapshot is older than 7 days, plus a few percent at random).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

N_LATENT = 6
MODALITY_MISSING = {"visual": 0.03, "motion": 0.05, "audio": 0.15, "text": 0.02}
PUBLISH_START = pd.Timestamp("2025-01-01", tz="UTC")
AGE_MAX_H = 240.0  # first snapshot at 1 h .. 10 days
# 2: first-snapshot age log-uniform over 1 h .. 10 d (was log-normal around 30 h, so the 3-7 d and >= 7 d
# buckets were thin). Tables of another version are other data: benchmarks key their cached files by it.
GENERATOR_VERSION = "2"


def _age_bucket(age_h: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    return np.searchsorted(np.asarray(edges, dtype=np.float64), age_h, side="right").astype(np.float64)


@dataclass
class _World:
    """The simulated videos before they become columns: channels, content, outcomes and the first snapshot."""

    ch: np.ndarray  # (n,) channel of each video
    ch_size: np.ndarray  # (C,) log average views of each channel
    ch_subs: np.ndarray
    ch_count: np.ndarray
    z: np.ndarray  # (n, N_LATENT) latent content factors
    views: dict[int, np.ndarray]  # horizon (days) -> views at that horizon
    likes: dict[int, np.ndarray]
    age_h: np.ndarray  # age of the first snapshot (hours)
    views_s1: np.ndarray
    likes_s1: np.ndarray
    published: pd.DatetimeIndex


def _simulate(rng: np.random.Generator, n: int, n_channels: int, days: float) -> _World:
    """Channels and content, then the view curve, likes and the first snapshot (draw order fixed: seeded tables
    stay the same)."""
    ch = rng.integers(0, n_channels, n)
    ch_size = rng.normal(8.0, 1.6, n_channels)
    ch_subs = ch_size + rng.normal(1.0, 0.7, n_channels)
    ch_count = rng.gamma(2.0, 60.0, n_channels) + 1
    z = rng.normal(size=(n, N_LATENT))
    quality = 0.55 * z[:, 0] + 0.35 * np.tanh(1.5 * z[:, 1]) + 0.25 * z[:, 2] * z[:, 3] - 0.2 * z[:, 4] ** 2 + 0.2
    like_logit = -3.6 + 0.45 * z[:, 5] + 0.25 * z[:, 0] + rng.normal(0, 0.25, n)

    log_total21 = 0.8 * ch_size[ch] + 1.1 * quality + rng.normal(0, 0.45, n) + 1.0
    tau_h = np.exp(rng.normal(np.log(60.0), 0.5, n))  # saturation time constant of the view curve (hours)

    def frac(hours: np.ndarray) -> np.ndarray:
        return (1 - np.exp(-hours / tau_h)) / (1 - np.exp(-21 * 24 / tau_h))

    views = {d: np.exp(log_total21) * frac(np.full(n, d * 24.0)) for d in (7, 14, 21)}
    rate = 1 / (1 + np.exp(-like_logit))
    likes = {d: views[d] * rate * np.exp(rng.normal(0, 0.08, n)) for d in (7, 14, 21)}
    age_h = np.exp(rng.uniform(0.0, np.log(AGE_MAX_H), n))  # log-uniform 1 h .. 10 d: every age bucket
    snap_noise = rng.normal(0, 1, n) * 0.5 / np.sqrt(1 + age_h / 12.0)
    views_s1 = np.floor(np.exp(log_total21 + np.log(frac(age_h)) + snap_noise))
    likes_s1 = np.floor(views_s1 * rate * np.exp(rng.normal(0, 0.15, n)))
    published = PUBLISH_START + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, n)), unit="s")
    published = published[rng.permutation(n)]
    return _World(ch, ch_size, ch_subs, ch_count, z, views, likes, age_h, views_s1, likes_s1, published)


def _meta_columns(rng: np.random.Generator, w: _World, spec: Any, seed: int, n_channels: int
                  ) -> dict[str, np.ndarray]:
    n, ch, age_h, views_s1, likes_s1, published = len(w.ch), w.ch, w.age_h, w.views_s1, w.likes_s1, w.published
    meta = {
        "meta_age_hours": age_h,
        "meta_log_age_hours": np.log1p(age_h),
        "meta_age_bucket": _age_bucket(age_h, spec.age_buckets.edges_hours),
        "meta_log_views_snapshot1": np.log1p(views_s1),
        "meta_log_likes_snapshot1": np.log1p(likes_s1),
        "meta_like_rate_snapshot1": np.where(views_s1 > 0, likes_s1 / np.maximum(views_s1, 1), np.nan),
        "meta_log_views_per_hour_snapshot1": np.log1p(views_s1 / age_h),
        "meta_log_channel_subscribers": np.log1p(np.exp(w.ch_subs[ch])),
        "meta_log_channel_video_count": np.log1p(w.ch_count[ch]),
        "meta_log_channel_avg_views": np.log1p(np.exp(w.ch_size[ch])),
        "meta_log_views_vs_channel_avg": np.log1p(views_s1 / np.exp(w.ch_size[ch])),
        "meta_published_hour_utc": (published.hour + published.minute / 60).to_numpy(np.float64),
        "meta_published_weekday": published.weekday.to_numpy(np.float64),
        # its own stream, so adding the feature left every other column of a seed's table as it was
        "meta_platform": (np.random.default_rng([seed, 13]).random(n_channels) < 0.3).astype(np.float64)[ch],
    }
    for name, p in (("meta_log_likes_snapshot1", 0.05), ("meta_log_channel_subscribers", 0.03),
                    ("meta_log_channel_avg_views", 0.03)):
        meta[name] = np.where(rng.random(n) < p, np.nan, meta[name])
    return meta


def _feature_columns(rng: np.random.Generator, w: _World, meta: dict[str, np.ndarray], spec: Any, seed: int
                     ) -> dict[str, np.ndarray]:
    """Every feature column in spec order: metadata from ``meta``, content features mixed from the latents."""
    n = len(w.ch)
    missing_mod = {m: rng.random(n) < p for m, p in MODALITY_MISSING.items()}
    cols: dict[str, np.ndarray] = {}
    col_rng = np.random.default_rng([seed, 7])  # fixed mixing weights, independent of n
    for f in spec.features:
        for c in f.columns:
            if f.modality == "meta":
                x = meta[c] if c in meta else rng.normal(size=n)
            else:
                wts = col_rng.normal(0, 1, N_LATENT) * (col_rng.random(N_LATENT) < 0.5)
                x = w.z @ wts + rng.normal(0, 0.6, n)
                if f.aggregation in ("count", "rate") or f.transform == "log1p" or c.startswith("aud_has"):
                    x = np.abs(x)
                x = np.where(missing_mod[f.modality], np.nan, x)
                if f.mask and not c.startswith(("vis_emb", "txt_emb")):
                    x = np.where(rng.random(n) < 0.02, np.nan, x)  # optional features missing on their own
            cols[c] = x.astype(f.dtype)
    if "aud_has_audio" in cols:  # no audio track: has_audio is read as 0, the rest of audio is missing
        cols["aud_has_audio"] = np.where(missing_mod["audio"], 0.0, 1.0).astype(np.float32)
    for f in spec.features:
        if f.mask_column:
            cols[f.mask_column] = np.isfinite(cols[f.columns[0]]).astype(np.int8)
    return cols


def _target_columns(rng: np.random.Generator, w: _World, spec: Any) -> dict[str, np.ndarray]:
    n, out = len(w.ch), {}
    for t in spec.targets.columns:
        value = (w.views if t.metric == "views" else w.likes)[t.horizon_days]
        y = np.log1p(value) if spec.targets.transform == "log1p" else value
        if t.optional:
            gone = rng.random(n) < 0.04
            if t.horizon_days == 7:
                gone |= w.age_h > 7 * 24  # the 7-day count was never observed for videos first seen later
            y = np.where(gone, np.nan, y)
        out[t.name] = y
    return out


def generate_table(n: int, spec: Any = None, seed: int = 0, days: float = 365.0) -> pd.DataFrame:
    """A synthetic training table of ``n`` rows for ``spec`` (default: the repository's feature_spec.yaml)."""
    import features

    spec = spec if spec is not None else features.load_spec()
    rng = np.random.default_rng(seed)
    n_channels = max(4, n // 25)
    world = _simulate(rng, n, n_channels, days)
    meta = _meta_columns(rng, world, spec, seed, n_channels)
    cols = _feature_columns(rng, world, meta, spec, seed)
    cols.update(_target_columns(rng, world, spec))
    labels = list(spec.age_buckets.labels)
    keys = {
        "platform_id": np.array(["youtube", "tiktok"], dtype=object)[meta["meta_platform"].astype(int)],
        "video_id": np.array([f"v{i:07d}" for i in range(n)], dtype=object),
        "channel_id": np.array([f"c{c:05d}" for c in world.ch], dtype=object),
        "published_at": world.published,
        "age_bucket": np.array(labels, dtype=object)[cols["meta_age_bucket"].astype(int)]
        if "meta_age_bucket" in cols else np.full(n, "", dtype=object),
    }
    return pd.DataFrame({**keys, **cols})


def write_table(df: pd.DataFrame, path: str | Path, spec: Any, seed: int,
                generator: str = "demo.synthetic_table") -> Path:
    """Write ``df`` as Parquet with the metadata keys ``features.build_table`` writes (plus the generator's),
    through ``features.write_parquet`` (atomic)."""
    import pyarrow as pa

    import features

    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = {
        "feature_schema_version": spec.feature_schema_version,
        "feature_extractor_version": "synthetic",
        "feature_spec_hash": spec.spec_hash,
        "feature_spec": json.dumps(spec.model_dump(mode="json"), sort_keys=True),
        "raw_columns": json.dumps(features.raw_columns(spec)),
        "target_columns": json.dumps(features.target_columns(spec)),
        "generator": json.dumps({"module": generator, "version": GENERATOR_VERSION, "seed": seed,
                                 "rows": len(df)}),
    }
    table = table.replace_schema_metadata({k: v.encode() for k, v in meta.items()})
    return features.write_parquet(table, path)


def main(argv: list[str] | None = None) -> int:
    import features

    p = argparse.ArgumentParser(prog="python -m demo.synthetic_table", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--out", type=Path, default=Path("data/synthetic_100k.parquet"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--spec", type=Path, default=None)
    args = p.parse_args(argv)
    spec = features.load_spec(args.spec)
    df = generate_table(args.n, spec, args.seed)
    write_table(df, args.out, spec, args.seed)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()[:16]
    print(f"wrote {args.out}: {len(df)} rows x {df.shape[1]} columns, sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
