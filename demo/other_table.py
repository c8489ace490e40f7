"""A training table from a *different* generative process than :mod:`demo.synthetic_table` (robustness checks).

``python -m demo.other_table --n 1500 --out data/other_1500.parquet [--seed 0]``

Calibration and model choices are judged on data nobody tuned them to, so this process differs from the demo's
on purpose, in the ways a real user's corpus may: heavier-tailed noise (Student t with 3 degrees of freedom, plus
rare large shocks), other content effects (a platform factor, a threshold effect and an interaction with the
publish hour instead of the demo's smooth mixes), a power-law view curve instead of the demo's saturating one,
first snapshots between 0.5 h and 5 days (log-uniform), other missing rates (audio 30%, the 14-day target
10%), fewer videos per channel. Same columns, metadata and writer as :mod:`demo.synthetic_table`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from demo.synthetic_table import PUBLISH_START, _age_bucket, write_table

N_LATENT = 5
MODALITY_MISSING = {"visual": 0.06, "motion": 0.08, "audio": 0.30, "text": 0.05}


def _outcomes(rng: np.random.Generator, n: int, z: np.ndarray, platform: np.ndarray, hour: np.ndarray,
              ch_size: np.ndarray) -> dict[str, np.ndarray]:
    """Log total views at 21 d, the curve's exponent, the like rate and the first snapshot."""
    effect = (0.6 * (z[:, 0] > 0.3) + 0.4 * z[:, 1] * (platform == 1) + 0.3 * np.sin(2 * z[:, 2])
              + 0.25 * z[:, 3] * np.cos(hour / 24 * 2 * np.pi) - 0.15 * np.abs(z[:, 4]))
    heavy = rng.standard_t(3, n) * (0.35 + 0.25 * (platform == 1))
    shock = np.where(rng.random(n) < 0.02, rng.normal(0, 2.0, n), 0.0)
    log_total21 = 0.9 * ch_size + effect + heavy + shock + 0.5
    # cumulative views ~ t^gamma (power law, no saturation): share of the 21-day total seen at t hours
    gamma = np.clip(rng.normal(0.45, 0.12, n) + 0.1 * (platform == 1), 0.1, 0.9)
    age_h = np.exp(rng.uniform(np.log(0.5), np.log(120.0), n))
    share = (age_h / (21 * 24)) ** gamma
    snap_noise = rng.standard_t(4, n) * 0.6 / np.sqrt(1 + age_h / 6.0)
    views_s1 = np.floor(np.exp(log_total21 + np.log(share) + snap_noise))
    like_logit = -3.2 + 0.5 * z[:, 3] - 0.4 * (platform == 1) + rng.standard_t(5, n) * 0.3
    return {"log_total21": log_total21, "gamma": gamma, "age_h": age_h, "views_s1": views_s1,
            "rate": 1 / (1 + np.exp(-like_logit))}


def _meta(rng: np.random.Generator, o: dict[str, np.ndarray], ch: np.ndarray, ch_size: np.ndarray,
          published: pd.DatetimeIndex, spec: Any, platform: np.ndarray) -> dict[str, np.ndarray]:
    n = len(ch)
    age_h, views_s1 = o["age_h"], o["views_s1"]
    likes_s1 = np.floor(views_s1 * o["rate"] * np.exp(rng.normal(0, 0.3, n)))
    ch_avg = np.exp(ch_size + rng.normal(0, 0.3, n))  # the channel average is itself measured with noise
    meta = {
        "meta_age_hours": age_h, "meta_log_age_hours": np.log1p(age_h),
        "meta_age_bucket": _age_bucket(age_h, spec.age_buckets.edges_hours),
        "meta_log_views_snapshot1": np.log1p(views_s1), "meta_log_likes_snapshot1": np.log1p(likes_s1),
        "meta_like_rate_snapshot1": np.where(views_s1 > 0, likes_s1 / np.maximum(views_s1, 1), np.nan),
        "meta_log_views_per_hour_snapshot1": np.log1p(views_s1 / age_h),
        "meta_log_channel_subscribers": np.log1p(np.exp(ch_size + rng.normal(1.5, 1.0, n))),
        "meta_log_channel_video_count": np.log1p(rng.gamma(1.5, 40.0, n)),
        "meta_log_channel_avg_views": np.log1p(ch_avg),
        "meta_log_views_vs_channel_avg": np.log1p(views_s1 / ch_avg),
        "meta_published_hour_utc": (published.hour + published.minute / 60).to_numpy(np.float64),
        "meta_published_weekday": published.weekday.to_numpy(np.float64),
        "meta_platform": platform.astype(np.float64),
    }
    for name, p in (("meta_log_likes_snapshot1", 0.08), ("meta_log_channel_subscribers", 0.10)):
        meta[name] = np.where(rng.random(n) < p, np.nan, meta[name])
    return meta


def generate_other_table(n: int, spec: Any = None, seed: int = 0, days: float = 300.0) -> pd.DataFrame:
    """``n`` rows of the other process with ``spec``'s columns (default: the repository's feature_spec.yaml)."""
    import features

    spec = spec if spec is not None else features.load_spec()
    rng = np.random.default_rng([seed, 2026])
    n_channels = max(4, n // 8)
    ch = rng.integers(0, n_channels, n)
    ch_size = rng.normal(7.0, 2.0, n_channels)[ch]
    platform = (rng.random(n_channels) < 0.4).astype(int)[ch]
    z = rng.normal(size=(n, N_LATENT))
    published = PUBLISH_START + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, n)), unit="s")
    published = published[rng.permutation(n)]
    hour = (published.hour + published.minute / 60).to_numpy(np.float64)
    o = _outcomes(rng, n, z, platform, hour, ch_size)
    meta = _meta(rng, o, ch, ch_size, published, spec, platform)
    cols = _feature_columns(rng, spec, z, meta, seed)
    for t in spec.targets.columns:
        days_h = t.horizon_days * 24.0
        views = np.exp(o["log_total21"]) * (days_h / (21 * 24)) ** o["gamma"]
        views = np.maximum(views, o["views_s1"] * (days_h >= o["age_h"]))
        value = views if t.metric == "views" else views * o["rate"] * np.exp(rng.normal(0, 0.1, n))
        y = np.log1p(np.floor(value)) if spec.targets.transform == "log1p" else np.floor(value)
        if t.optional:
            gone = rng.random(n) < (0.10 if t.horizon_days == 14 else 0.06)
            gone |= o["age_h"] > days_h  # a count from before the first snapshot was never observed
            y = np.where(gone, np.nan, y)
        cols[t.name] = y
    labels = np.array(list(spec.age_buckets.labels), dtype=object)
    keys = {"platform_id": np.where(platform == 1, "tiktok", "youtube").astype(object),
            "video_id": np.array([f"o{i:07d}" for i in range(n)], dtype=object),
            "channel_id": np.array([f"oc{c:05d}" for c in ch], dtype=object), "published_at": published,
            "age_bucket": labels[cols["meta_age_bucket"].astype(int)]}
    return pd.DataFrame({**keys, **cols})


def _feature_columns(rng: np.random.Generator, spec: Any, z: np.ndarray, meta: dict[str, np.ndarray],
                     seed: int) -> dict[str, np.ndarray]:
    """Spec columns: meta from the story; content columns a sparse nonlinear mix of the latents plus noise."""
    n = len(z)
    missing_mod = {m: rng.random(n) < p for m, p in MODALITY_MISSING.items()}
    col_rng = np.random.default_rng([seed, 11])
    cols: dict[str, np.ndarray] = {}
    for f in spec.features:
        for c in f.columns:
            if f.modality == "meta":
                x = meta[c] if c in meta else rng.normal(size=n)
            else:
                w = col_rng.normal(0, 1, N_LATENT) * (col_rng.random(N_LATENT) < 0.35)
                x = np.tanh(z @ w) + rng.standard_t(4, n) * 0.8
                if f.aggregation in ("count", "rate") or f.transform == "log1p" or c.startswith("aud_has"):
                    x = np.abs(x)
                x = np.where(missing_mod.get(f.modality, np.zeros(n, bool)), np.nan, x)
                if f.mask and not c.startswith(("vis_emb", "txt_emb")):
                    x = np.where(rng.random(n) < 0.04, np.nan, x)
            cols[c] = x.astype(f.dtype)
    if "aud_has_audio" in cols:
        cols["aud_has_audio"] = np.where(missing_mod["audio"], 0.0, 1.0).astype(np.float32)
    for f in spec.features:
        if f.mask_column:
            cols[f.mask_column] = np.isfinite(cols[f.columns[0]]).astype(np.int8)
    return cols


def main(argv: list[str] | None = None) -> int:
    import features

    p = argparse.ArgumentParser(prog="python -m demo.other_table", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1500)
    p.add_argument("--out", type=Path, default=Path("data/other_1500.parquet"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    spec = features.load_spec()
    df = generate_other_table(args.n, spec, args.seed)
    write_table(df, args.out, spec, args.seed, generator="demo.other_table")
    print(f"wrote {args.out}: {len(df)} rows x {df.shape[1]} columns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
