"""Demo corpus generator: realistic synthetic videos, sidecar metadata and performance labels.

``python -m demo.synth --n 40 --out data/demo --seed 0`` (or :func:`generate`) writes::

    OUT/videos/<video_id>.mp4       H.264 (libx264, yuv420p) + AAC audio on most videos
    OUT/videos/<video_id>.json      sidecar metadata (platform, title, channel, first snapshot)
    OUT/labels.csv                  views/likes at 7, 14 and 21 days (7d/14d sometimes missing)
    OUT/generation_truth.csv        the latent factors behind every label (debugging only, never a feature)
    OUT/synth.json                  what made the corpus: generator version, seed, n, config

Everything is a function of ``(seed, config)``: video ``i`` draws from its own ``SeedSequence([seed, 1, i])``
(children per concern: ids, metadata, content, render, labels), so the same seed gives the same bytes of
``labels.csv`` and the same video contents, whatever ``--workers`` is, and the first ``k`` videos of a corpus
of ``n`` are the videos of a corpus of ``k``. x264 runs single-threaded so its output does not depend on
the machine. Writes are atomic: a temp name (``.<name>.<pid>.tmp``, never ``*.mp4``) in the same folder,
then ``os.replace``; the sidecar is written before its video, so a killed run never shows an ``.mp4``
without its sidecar or a half-written file.

Content (what the extractor can observe): shots separated by cuts (each shot its own background texture,
colours and brightness), camera pan and textured shapes moving at a per-video ``motion_level``, faces
(a real photograph, matplotlib's bundled ``sample_data/grace_hopper.jpg``, which OpenCV's Haar cascade
detects, shown as a talking head in some shots, tinted, mirrored, scaled; 1 or 2 per frame), brightness
and colourfulness, and an AAC audio track (speech-like AM harmonics, music, tones or noise at a per-video
loudness; 16-48 kHz, mono or stereo) on most videos.

Generative process of the labels (docs/demo_data.md has the same with the reasoning)::

    ln V_sat = 1.2 + 0.75 ln(1 + subscribers) + q_channel + 0.35 [tiktok]
             + 0.45 motion + 0.25 motion [tiktok] + 0.12 ln(1 + cuts_per_minute) + 0.40 face_fraction
             - 1.5 (brightness - 0.55)^2 + 0.30 colorfulness
             + [audio] (0.20 + 0.015 (rms_dbfs + 30) + 0.10 [speech])
             + topic effect + 0.06 min(hashtags, 5) + 0.12 [? or ! in title] + 0.25 [clickbait]
             - 0.04 duration_s [tiktok] + 0.10 [published 15-21 h UTC]
             + eps,  eps ~ N(0, sigma^2),  sigma = 0.30 + 0.20 [tiktok] + 0.15 [subscribers < 10k]
             + viral (3 %: + Exponential(1))
    V(t) = V_sat ((1 - exp(-(t / tau)^kappa)) + lambda t / 21)     cumulative views, t in days
    ln tau = ln(3.0 youtube | 1.2 tiktok) + 0.25 [how-to topic] - 0.25 [clickbait] - 0.2 (motion - 0.5)
             + N(0, 0.3^2);  kappa ~ U(0.6, 1);  lambda ~ Exp(mean 0.15 how-to | 0.04)
    views_snapshot1 = Poisson(V(age) exp(N(0, s_e^2))),  s_e = 0.15 + 0.35 exp(-age_h / 12), age 1 h-10 d
    views_Hd = views_prev + Poisson((V(H) - V(prev)) exp(m + N(0, 0.08^2)))    H = 7, 14, 21 (monotone),
             m ~ N(0, 0.2^2) one momentum shock per video after the first snapshot
    rho = sigmoid(logit(0.03) + 0.55 [tiktok] + 0.30 face_fraction + like topic effect + 0.15 [speech]
                  - 0.30 [clickbait] + N(0, 0.25^2));  early fans like more: rho_1 = min(0.5, 1.3 rho)
    likes: Binomial of each views increment (rho_1 for the first snapshot, rho after), capped at views - 1
    missing: 7d with p 0.12 (youtube) / 0.20 (tiktok), 14d with p 0.04; 21d never; a horizon before the
             first snapshot (age > 7 d: the 7-day count) is missing

The importable API: :func:`generate` (write a corpus), :func:`sample_specs` (the pure part: specs and labels,
no I/O), :func:`render_video` (one spec to one file), :func:`benchmark`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from common.fsio import atomic_path, atomic_write_bytes
from common.process import pid_alive

# 1.1.0: first-snapshot age log-uniform over 1 h .. 10 d (was 1-48 h), so every age bucket of the spec
# (< 6 h, 6-24 h, 1-3 d, 3-7 d, >= 7 d) appears; a horizon before the first snapshot is missing.
GENERATOR_VERSION = "1.1.0"
AGE_MAX_H = 240.0

SIDECAR_KEYS = ("platform_id", "video_id", "title", "description", "published_at", "snapshot1_at",
                "video_age_hours_at_snapshot1", "views_snapshot1", "likes_snapshot1", "channel")
CHANNEL_KEYS = ("channel_id", "subscribers", "video_count", "avg_views")
LABEL_COLUMNS = ("platform_id", "video_id", "channel_id", "published_at", "video_age_hours_at_snapshot1",
                 "views_snapshot1", "likes_snapshot1", "views_7d", "views_14d", "views_21d",
                 "likes_7d", "likes_14d", "likes_21d")
HORIZONS_DAYS = (7, 14, 21)

# ----------------------------------------------------------------------------------------------- config --


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the corpus. Every field can be passed to :func:`generate` as a keyword.

    Attributes:
        resolution_mix: ``"WxH" -> weight`` (landscape sizes; normalised).
        portrait_fraction: share of TikTok videos rendered vertical (W and H swapped).
        duration_s: ``(min, max)`` seconds, drawn log-uniformly (median ~ geometric mean).
        fps_choices: frame rates and their weights.
        audio_fraction: share of videos with an audio track.
        face_fraction: base share of videos with faces (scaled per topic, see ``TOPICS``).
        tiktok_fraction: share of channels on TikTok.
        n_channels: size of the channel pool videos are drawn from (Zipf-like popularity).
        edge_cases: make video 0 very short (< 1 s) and video 1 silent (no audio stream).
        include_corrupt: make video 2 an unreadable, truncated ``.mp4`` (it keeps its sidecar and labels).
        missing_7d: probability that the 7-day snapshot is missing, per platform.
        missing_14d: probability that the 14-day snapshot is missing.
        crf: x264 constant rate factor (higher = smaller files).
        published_from: first possible publishing day (UTC, ISO date).
        published_days: publishing window length in days.
        sample_rate_mix: audio sample rates and their weights; None = the demo's mix of :data:`SAMPLE_RATES`
            (left out of the corpus record when None, so existing corpora stay the same corpus).
    """

    resolution_mix: dict[str, float] = field(
        default_factory=lambda: {"640x360": 0.85, "1280x720": 0.12, "1920x1080": 0.03})
    portrait_fraction: float = 0.5
    duration_s: tuple[float, float] = (2.0, 10.0)
    fps_choices: dict[int, float] = field(default_factory=lambda: {15: 0.5, 24: 0.2, 25: 0.1, 30: 0.2})
    audio_fraction: float = 0.85
    face_fraction: float = 0.35
    tiktok_fraction: float = 0.4
    n_channels: int = 64
    edge_cases: bool = True
    include_corrupt: bool = False
    missing_7d: dict[str, float] = field(default_factory=lambda: {"youtube": 0.12, "tiktok": 0.20})
    missing_14d: float = 0.04
    crf: int = 26
    published_from: str = "2026-09-01"
    published_days: int = 60
    sample_rate_mix: dict[int, float] | None = None

    def __post_init__(self) -> None:
        for key in self.resolution_mix:
            _parse_resolution(key)
        if not self.resolution_mix or min(self.resolution_mix.values()) < 0:
            raise ValueError(f"resolution_mix needs non-negative weights, got {self.resolution_mix}")
        lo, hi = self.duration_s
        if not 0 < lo <= hi:
            raise ValueError(f"duration_s must be 0 < min <= max, got {self.duration_s}")
        if not self.fps_choices or min(self.fps_choices) < 1:
            raise ValueError(f"fps_choices must be positive frame rates, got {self.fps_choices}")
        for name in ("portrait_fraction", "audio_fraction", "face_fraction", "tiktok_fraction", "missing_14d"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.n_channels < 1:
            raise ValueError("n_channels must be >= 1")


def _parse_resolution(key: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in key.lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"resolution {key!r} is not WxH") from exc
    if w < 32 or h < 32 or w % 2 or h % 2:
        raise ValueError(f"resolution {key!r}: sides must be even and >= 32 (yuv420p)")
    return w, h


# ----------------------------------------------------------------------------------------- vocabulary --
# topic -> (topic words, hashtags, views effect, like-rate effect (logit), face multiplier, evergreen)
TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...], float, float, float, bool]] = {
    "food": (("pasta", "ramen", "street food", "sourdough", "tacos", "sushi", "breakfast", "spicy noodles"),
             ("#food", "#recipe", "#cooking", "#foodie"), 0.10, 0.10, 1.0, True),
    "gaming": (("speedrun", "boss fight", "minecraft build", "ranked match", "retro console", "open world"),
               ("#gaming", "#gamer", "#twitch"), 0.20, 0.00, 0.4, False),
    "tech": (("smartphone", "laptop", "mechanical keyboard", "AI tool", "budget PC", "smartwatch"),
             ("#tech", "#gadgets", "#unboxing"), 0.00, -0.10, 0.8, True),
    "fitness": (("home workout", "abs routine", "marathon training", "yoga flow", "protein shake"),
                ("#fitness", "#gym", "#workout"), 0.05, 0.05, 1.6, True),
    "travel": (("Tokyo", "Iceland", "hidden beach", "night train", "mountain village", "Lisbon"),
               ("#travel", "#wanderlust", "#explore"), 0.05, 0.10, 0.5, False),
    "pets": (("puppy", "kitten", "parrot", "golden retriever", "hamster"),
             ("#pets", "#dog", "#cat", "#cute"), 0.30, 0.35, 0.4, False),
    "music": (("guitar cover", "beat making", "piano piece", "drum solo", "live session"),
              ("#music", "#cover", "#producer"), 0.15, 0.30, 1.0, False),
    "diy": (("woodworking", "room makeover", "3D print", "bike repair", "tiny house"),
            ("#diy", "#howto", "#maker"), -0.05, 0.00, 0.8, True),
    "finance": (("stock market", "budget plan", "crypto", "side hustle", "saving money"),
                ("#money", "#finance", "#investing"), -0.10, -0.25, 1.4, True),
    "news": (("election", "climate report", "city council", "space launch", "heatwave"),
             ("#news", "#breaking", "#update"), -0.20, -0.35, 1.8, False),
    "comedy": (("prank", "sketch", "fail compilation", "impressions", "roommate"),
               ("#funny", "#comedy", "#lol"), 0.25, 0.20, 1.8, False),
    "beauty": (("makeup look", "skincare routine", "hair tutorial", "nail art"),
               ("#beauty", "#makeup", "#skincare"), 0.10, 0.25, 2.2, True),
}
GENERIC_TAGS = {"youtube": ("#shorts", "#vlog", "#trending", "#viral"), "tiktok": ("#fyp", "#foryou", "#viral",
                                                                                   "#trending")}
TITLES = ("{Thing} review", "My {thing} routine", "How to make {thing} at home", "{Thing}: a beginner's guide",
          "Trying {thing} for the first time", "{n} tips for {thing}", "Is {thing} worth it?",
          "Why {thing} is harder than you think", "{Thing} in {n} minutes", "What nobody tells you about {thing}",
          "A day of {thing}", "{Thing} vs {other}: which one?", "Testing {thing} so you don't have to",
          "The best {thing} of {year}", "Can you really do {thing} on a budget?", "{Thing}, explained")
CLICKBAIT = ("You WON'T believe this {thing}!!", "I tried {thing} for {n} days... (SHOCKING)",
             "{THING} GONE WRONG!", "This {thing} changed EVERYTHING", "Nobody talks about this {thing} secret",
             "The TRUTH about {thing}?!", "{THING} HACK that actually works!", "Do NOT try this {thing} at home!")
DESCRIPTIONS = ("In this video I try {thing} and tell you what I think.", "Let me know in the comments what you think!",
                "Subscribe for more {topic} videos every week.", "Filmed on a budget, edited overnight.",
                "Part {n} of my {topic} series.", "Everything I used is linked below.",
                "Thanks for watching, see you in the next one.", "Would you try {thing}?",
                "Shot in one take.", "Timestamps: 0:00 intro, 0:{n:02d} the good part.")

AUDIO_KINDS = ("speech", "music", "tone", "noise")
SAMPLE_RATES = (16000, 22050, 44100, 48000)
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# ------------------------------------------------------------------------------------------ the specs --


@dataclass(frozen=True)
class Channel:
    """A channel of the pool; ``quality`` is latent (it shows only through ``avg_views``)."""

    channel_id: str
    platform_id: str
    topic: str
    subscribers: int
    video_count: int
    avg_views: float
    quality: float

    def sidecar(self) -> dict[str, Any]:
        return {"channel_id": self.channel_id, "subscribers": self.subscribers, "video_count": self.video_count,
                "avg_views": self.avg_views}


@dataclass(frozen=True)
class AudioSpec:
    """The audio track: ``kind`` in ``AUDIO_KINDS``, loudness as RMS in dBFS."""

    kind: str
    sample_rate: int
    channels: int
    rms_dbfs: float


@dataclass(frozen=True)
class VideoSpec:
    """Everything about one generated video: its content, metadata, labels and latent truth.

    ``shot_starts`` are frame indices (the first is 0); ``face_shots[k]`` says whether shot ``k`` shows faces.
    ``labels`` maps ``views_7d`` .. ``likes_21d`` to an int or None (missing). ``truth`` holds the latent
    factors and effect terms written to ``generation_truth.csv``.
    """

    index: int
    video_id: str
    platform_id: str
    kind: str  # normal | short | silent | corrupt
    width: int
    height: int
    fps: int
    n_frames: int
    motion_level: float
    pan_speed: float  # fraction of the frame width per second
    n_shapes: int
    shot_starts: tuple[int, ...]
    face_shots: tuple[bool, ...]
    n_faces: int
    face_scale: float  # portrait height / frame height
    brightness: float  # target mean luma in [0, 1]
    colorfulness: float  # saturation in [0, 1]
    audio: AudioSpec | None
    topic: str
    title: str
    description: str
    channel: Channel
    published_at: datetime
    snapshot1_at: datetime
    views_snapshot1: int
    likes_snapshot1: int
    labels: dict[str, int | None]
    truth: dict[str, Any]
    render_seed: int

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    @property
    def has_faces(self) -> bool:
        return any(self.face_shots)

    @property
    def age_hours(self) -> float:
        return round((self.snapshot1_at - self.published_at).total_seconds() / 3600.0, 6)

    @property
    def filename(self) -> str:
        return f"{self.video_id}.mp4"

    def sidecar(self) -> dict[str, Any]:
        """The sidecar JSON object (exactly ``SIDECAR_KEYS``)."""
        return {"platform_id": self.platform_id, "video_id": self.video_id, "title": self.title,
                "description": self.description, "published_at": _iso(self.published_at),
                "snapshot1_at": _iso(self.snapshot1_at), "video_age_hours_at_snapshot1": self.age_hours,
                "views_snapshot1": self.views_snapshot1, "likes_snapshot1": self.likes_snapshot1,
                "channel": self.channel.sidecar()}

    def label_row(self) -> dict[str, Any]:
        return {"platform_id": self.platform_id, "video_id": self.video_id, "channel_id": self.channel.channel_id,
                "published_at": _iso(self.published_at), "video_age_hours_at_snapshot1": self.age_hours,
                "views_snapshot1": self.views_snapshot1, "likes_snapshot1": self.likes_snapshot1, **self.labels}


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _choice(rng: np.random.Generator, weights: dict[Any, float]) -> Any:
    keys = list(weights)
    p = np.asarray([weights[k] for k in keys], np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _rngs(seed: int, index: int) -> dict[str, np.random.Generator]:
    names = ("id", "meta", "content", "labels", "render")
    children = np.random.SeedSequence([seed, 1, index]).spawn(len(names))
    return {n: np.random.default_rng(s) for n, s in zip(names, children, strict=True)}


def _video_id(rng: np.random.Generator, platform: str) -> str:
    if platform == "tiktok":
        return "7" + "".join(str(d) for d in rng.integers(0, 10, 18))
    chars = rng.integers(0, len(_ID_ALPHABET), 11)
    chars[0] %= 62  # no leading '-' or '_' (file names starting with '-' read as CLI options)
    return "".join(_ID_ALPHABET[c] for c in chars)


def make_channels(seed: int, cfg: SynthConfig) -> list[Channel]:
    """The channel pool (a function of ``seed`` and the config only, not of ``n``)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    topics = list(TOPICS)
    out = []
    for _ in range(cfg.n_channels):
        platform = "tiktok" if rng.random() < cfg.tiktok_fraction else "youtube"
        subs = int(np.clip(round(math.exp(rng.normal(math.log(20_000), 1.8))), 50, 20_000_000))
        quality = float(rng.normal(0.0, 0.4))
        base = 1.2 + 0.75 * math.log1p(subs) + 0.35 * (platform == "tiktok") + quality + 0.5
        avg_views = round(math.exp(base + rng.normal(0.0, 0.15)), 1)
        cid = ("UC" + "".join(_ID_ALPHABET[c] for c in rng.integers(0, 64, 22)) if platform == "youtube"
               else "".join(str(d) for d in [6, 8, *rng.integers(0, 10, 17)]))
        out.append(Channel(cid, platform, topics[int(rng.integers(len(topics)))], subs,
                           int(rng.integers(5, 60) * (1 + math.log10(subs))), avg_views, quality))
    return out


def _title(rng: np.random.Generator, platform: str, topic: str, clickbait: bool) -> tuple[str, int, bool]:
    words, tags, *_ = TOPICS[topic]
    thing, other = (str(w) for w in rng.choice(words, 2, replace=len(words) < 2))
    fill = {"thing": thing, "Thing": thing[:1].upper() + thing[1:], "THING": thing.upper(), "other": other,
            "n": int(rng.choice([3, 5, 7, 10, 30])), "year": 2026}
    title = str(rng.choice(CLICKBAIT if clickbait else TITLES)).format(**fill)
    n_tags = int(rng.choice([0, 0, 1, 2, 3, 4], p=[0.35, 0.1, 0.2, 0.15, 0.1, 0.1] if platform == "youtube"
                            else [0.1, 0.05, 0.15, 0.25, 0.25, 0.2]))
    pool = list(tags) + list(GENERIC_TAGS[platform])
    chosen = [str(t) for t in rng.choice(pool, min(n_tags, len(pool)), replace=False)]
    if chosen:
        title = f"{title} {' '.join(chosen)}"
    return title, len(chosen), ("?" in title or "!" in title)


def _description(rng: np.random.Generator, platform: str, topic: str) -> tuple[str, int]:
    if rng.random() < 0.06:
        return "", 0
    words, tags, *_ = TOPICS[topic]
    k = int(rng.integers(1, 3 if platform == "tiktok" else 5))
    fill = {"thing": str(rng.choice(words)), "topic": topic, "n": int(rng.integers(2, 40))}
    parts = [str(s).format(**fill) for s in rng.choice(DESCRIPTIONS, k, replace=False)]
    n_tags = int(rng.integers(0, 4))
    chosen = [str(t) for t in rng.choice(list(tags), min(n_tags, len(tags)), replace=False)]
    return " ".join(parts + chosen), len(chosen)


def _published(rng: np.random.Generator, cfg: SynthConfig) -> datetime:
    start = datetime.fromisoformat(cfg.published_from).replace(tzinfo=UTC)
    day = int(rng.integers(0, cfg.published_days))
    hour = float(np.clip(rng.normal(17.0, 4.0), 0.0, 23.99)) if rng.random() < 0.75 else float(rng.uniform(0, 24))
    return start + timedelta(days=day, seconds=int(hour * 3600))


def _content(rng: np.random.Generator, cfg: SynthConfig, kind: str, platform: str, topic: str
             ) -> dict[str, Any]:
    """Visual/audio content factors of one video (no rendering)."""
    (w, h) = _parse_resolution(_choice(rng, cfg.resolution_mix))
    portrait = platform == "tiktok" and rng.random() < cfg.portrait_fraction
    if portrait:
        w, h = h, w
    fps = int(_choice(rng, cfg.fps_choices))
    lo, hi = cfg.duration_s
    duration = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    if kind == "short":
        duration = float(rng.uniform(0.4, 0.9))
    n_frames = max(2, int(round(duration * fps)))
    duration = n_frames / fps

    motion = float(np.clip(rng.beta(1.3, 1.6), 0.0, 1.0))
    pan = motion * float(rng.uniform(0.05, 0.3)) if rng.random() < 0.55 else 0.0
    n_shapes = int(rng.integers(0, 5)) if motion > 0.08 else int(rng.integers(0, 2))
    # Shots: a cut rate per minute (20 % single-shot videos), cuts at least 0.5 s apart.
    rate = 0.0 if rng.random() < 0.2 else math.exp(rng.uniform(math.log(2.0), math.log(40.0)))
    n_cuts = min(int(rng.poisson(rate * duration / 60.0)), max(0, int(duration / 0.5) - 1))
    starts = [0]
    if n_cuts:
        min_gap = max(1, int(0.5 * fps))
        slots = np.arange(min_gap, n_frames - min_gap + 1)
        picked = []
        for s in rng.permutation(slots):
            if all(abs(int(s) - p) >= min_gap for p in picked):
                picked.append(int(s))
            if len(picked) == n_cuts:
                break
        starts += sorted(picked)
    face_mult = TOPICS[topic][4]
    faces = rng.random() < min(0.95, cfg.face_fraction * face_mult)
    n_shots = len(starts)
    if faces:
        face_shots = [bool(rng.random() < 0.7) for _ in range(n_shots)]
        face_shots[int(rng.integers(n_shots))] = True
    else:
        face_shots = [False] * n_shots
    n_faces = 2 if faces and w > h and rng.random() < 0.25 else 1
    face_scale = float(rng.uniform(0.55, 0.9)) if n_faces == 1 else float(rng.uniform(0.5, 0.7))
    brightness = float(np.clip(rng.beta(2.2, 2.0), 0.12, 0.9))
    colorfulness = float(rng.beta(1.6, 1.6))

    audio = None
    has_audio = kind != "silent" and rng.random() < cfg.audio_fraction
    if has_audio:
        if topic == "music":
            akind = "music"
        elif faces:
            akind = str(rng.choice(AUDIO_KINDS, p=[0.7, 0.15, 0.05, 0.1]))
        else:
            akind = str(rng.choice(AUDIO_KINDS, p=[0.25, 0.35, 0.15, 0.25]))
        rates, weights = SAMPLE_RATES, [0.35, 0.2, 0.3, 0.15]
        if cfg.sample_rate_mix:
            rates = list(cfg.sample_rate_mix)
            weights = np.asarray(list(cfg.sample_rate_mix.values()), float) / sum(cfg.sample_rate_mix.values())
        audio = AudioSpec(akind, int(rng.choice(rates, p=weights)),
                          int(rng.choice([1, 2], p=[0.65, 0.35])),
                          float(rng.uniform(-40.0, -10.0)))
    bounds = [*starts, n_frames]
    face_frames = sum(b - a for a, b, f in zip(bounds[:-1], bounds[1:], face_shots, strict=True) if f)
    return {"width": w, "height": h, "fps": fps, "n_frames": n_frames, "motion_level": motion, "pan_speed": pan,
            "n_shapes": n_shapes, "shot_starts": tuple(starts), "face_shots": tuple(face_shots),
            "n_faces": n_faces if faces else 0, "face_scale": face_scale, "brightness": brightness,
            "colorfulness": colorfulness, "audio": audio,
            "cuts_per_minute": 60.0 * (len(starts) - 1) / duration, "face_fraction": face_frames / n_frames}


def _labels(rng: np.random.Generator, cfg: SynthConfig, platform: str, channel: Channel, c: dict[str, Any],
            topic: str, n_hashtags: int, q_or_e: bool, clickbait: bool, published: datetime
            ) -> tuple[datetime, int, int, dict[str, int | None], dict[str, Any]]:
    """The documented generative process (module docstring); returns snapshot1, labels and the truth."""
    tiktok = platform == "tiktok"
    audio: AudioSpec | None = c["audio"]
    duration = c["n_frames"] / c["fps"]
    hour = published.hour + published.minute / 60.0
    effects = {
        "eff_channel": 1.2 + 0.75 * math.log1p(channel.subscribers) + channel.quality + 0.35 * tiktok,
        "eff_motion": 0.45 * c["motion_level"] + 0.25 * c["motion_level"] * tiktok,
        "eff_cuts": 0.12 * math.log1p(c["cuts_per_minute"]),
        "eff_faces": 0.40 * c["face_fraction"],
        "eff_brightness": -1.5 * (c["brightness"] - 0.55) ** 2,
        "eff_colorfulness": 0.30 * c["colorfulness"],
        "eff_audio": (0.20 + 0.015 * (audio.rms_dbfs + 30.0) + 0.10 * (audio.kind == "speech")) if audio else 0.0,
        "eff_topic": TOPICS[topic][2],
        "eff_title": 0.06 * min(n_hashtags, 5) + 0.12 * q_or_e + 0.25 * clickbait,
        "eff_duration": -0.04 * duration * tiktok,
        "eff_publish_hour": 0.10 * (15.0 <= hour < 21.0),
    }
    sigma = 0.30 + 0.20 * tiktok + 0.15 * (channel.subscribers < 10_000)
    noise = float(rng.normal(0.0, sigma))
    viral = float(rng.exponential(1.0)) if rng.random() < 0.03 else 0.0
    log_appeal = sum(effects.values()) + noise + viral
    v_sat = math.exp(log_appeal)
    # Staying power depends on content too: how-to topics decay slowly, clickbait and frantic videos burn out.
    tau = math.exp(math.log(1.2 if tiktok else 3.0) + 0.25 * TOPICS[topic][5] - 0.25 * clickbait
                   - 0.2 * (c["motion_level"] - 0.5) + rng.normal(0.0, 0.3))
    kappa = float(rng.uniform(0.6, 1.0))
    evergreen = float(rng.exponential(0.15 if TOPICS[topic][5] else 0.04))
    momentum = float(rng.normal(0.0, 0.2))  # after the first snapshot: news, recommendations; unobservable

    def curve(t_days: float) -> float:
        return v_sat * ((1.0 - math.exp(-((t_days / tau) ** kappa))) + evergreen * t_days / 21.0)

    age_s = int(3600 * math.exp(rng.uniform(0.0, math.log(AGE_MAX_H))))
    age_h = age_s / 3600.0
    snapshot1 = published + timedelta(seconds=age_s)
    s_e = 0.15 + 0.35 * math.exp(-age_h / 12.0)
    e1 = curve(age_h / 24.0)
    views = [int(rng.poisson(e1 * math.exp(rng.normal(0.0, s_e))))]
    prev = e1
    for hd in HORIZONS_DAYS:
        e = curve(float(hd))
        # A horizon before the first snapshot was never observed (dropped below); its count is the snapshot's.
        views.append(views[-1] + int(rng.poisson(max(e - prev, 0.0) * math.exp(momentum + rng.normal(0.0, 0.08)))))
        prev = max(e, prev)
    rho = _sigmoid(_logit(0.03) + 0.55 * tiktok + 0.30 * c["face_fraction"] + TOPICS[topic][3]
                   + 0.15 * (audio is not None and audio.kind == "speech") - 0.30 * clickbait
                   + rng.normal(0.0, 0.25))
    rho1 = min(0.5, 1.3 * rho)
    likes = [int(rng.binomial(views[0], rho1))]
    for k in range(1, len(views)):
        likes.append(likes[-1] + int(rng.binomial(views[k] - views[k - 1], rho)))
    likes = [min(lk, max(v - 1, 0)) for lk, v in zip(likes, views, strict=True)]  # min of monotone: monotone
    miss7 = rng.random() < cfg.missing_7d.get(platform, 0.15)
    miss14 = rng.random() < cfg.missing_14d
    labels: dict[str, int | None] = {}
    for metric, vals in (("views", views), ("likes", likes)):
        for hd, v in zip(HORIZONS_DAYS, vals[1:], strict=True):
            gone = (hd == 7 and miss7) or (hd == 14 and miss14) or hd * 24.0 < age_h
            labels[f"{metric}_{hd}d"] = None if gone else v
    labels = {k: labels[k] for k in LABEL_COLUMNS[7:]}
    truth = {**effects, "noise_sigma": sigma, "noise": noise, "viral_boost": viral, "log_appeal": log_appeal,
             "tau_days": tau, "kappa": kappa, "evergreen": evergreen, "momentum": momentum, "early_noise_sigma": s_e,
             "expected_views_snapshot1": e1, "like_rate": rho, "like_rate_early": rho1,
             "missing_7d": miss7, "missing_14d": miss14}
    return snapshot1, views[0], likes[0], labels, truth


def sample_spec(index: int, seed: int, cfg: SynthConfig, channels: list[Channel]) -> VideoSpec:
    """Video ``index`` of the corpus of ``seed`` (pure: draws only from ``SeedSequence([seed, 1, index])`` and
    the channel pool)."""
    r = _rngs(seed, index)
    kind = "normal"
    if cfg.edge_cases and index == 0:
        kind = "short"
    elif cfg.edge_cases and index == 1:
        kind = "silent"
    elif cfg.include_corrupt and index == 2:
        kind = "corrupt"
    popularity = 1.0 / (np.arange(len(channels)) + 3.0)
    channel = channels[int(r["meta"].choice(len(channels), p=popularity / popularity.sum()))]
    platform = channel.platform_id
    video_id = _video_id(r["id"], platform)
    topic = channel.topic if r["meta"].random() < 0.7 else str(r["meta"].choice(list(TOPICS)))
    clickbait = bool(r["meta"].random() < (0.18 if platform == "youtube" else 0.10))
    title, title_tags, q_or_e = _title(r["meta"], platform, topic, clickbait)
    description, desc_tags = _description(r["meta"], platform, topic)
    published = _published(r["meta"], cfg)
    c = _content(r["content"], cfg, kind, platform, topic)
    snapshot1, views1, likes1, labels, truth = _labels(r["labels"], cfg, platform, channel, c, topic,
                                                       title_tags + desc_tags, q_or_e, clickbait, published)
    audio: AudioSpec | None = c["audio"]
    truth = {"video_id": video_id, "platform_id": platform, "kind": kind, "channel_id": channel.channel_id,
             "log_subscribers": math.log1p(channel.subscribers), "channel_quality": channel.quality,
             "topic": topic, "width": c["width"], "height": c["height"], "fps": c["fps"],
             "n_frames": c["n_frames"], "duration_s": c["n_frames"] / c["fps"], "motion_level": c["motion_level"],
             "pan_speed": c["pan_speed"], "n_shapes": c["n_shapes"], "n_shots": len(c["shot_starts"]),
             "cuts_per_minute": c["cuts_per_minute"], "faces": any(c["face_shots"]), "n_faces": c["n_faces"],
             "face_fraction": c["face_fraction"], "brightness": c["brightness"],
             "colorfulness": c["colorfulness"], "has_audio": audio is not None,
             "audio_kind": audio.kind if audio else "", "audio_rms_dbfs": audio.rms_dbfs if audio else "",
             "sample_rate": audio.sample_rate if audio else "", "audio_channels": audio.channels if audio else "",
             "hashtags": title_tags + desc_tags, "question_or_exclaim": q_or_e, "clickbait": clickbait,
             "published_hour_utc": published.hour + published.minute / 60.0, **truth}
    return VideoSpec(index=index, video_id=video_id, platform_id=platform, kind=kind, width=c["width"],
                     height=c["height"], fps=c["fps"], n_frames=c["n_frames"], motion_level=c["motion_level"],
                     pan_speed=c["pan_speed"], n_shapes=c["n_shapes"], shot_starts=c["shot_starts"],
                     face_shots=c["face_shots"], n_faces=c["n_faces"], face_scale=c["face_scale"],
                     brightness=c["brightness"], colorfulness=c["colorfulness"], audio=audio, topic=topic,
                     title=title, description=description, channel=channel, published_at=published,
                     snapshot1_at=snapshot1, views_snapshot1=views1, likes_snapshot1=likes1, labels=labels,
                     truth=truth, render_seed=int(r["render"].integers(0, 2**63 - 1)))


def sample_specs(n: int, seed: int = 0, config: SynthConfig | None = None) -> list[VideoSpec]:
    """The ``n`` video specs of a corpus, labels included (pure; no files)."""
    cfg = config or SynthConfig()
    channels = make_channels(seed, cfg)
    specs = [sample_spec(i, seed, cfg, channels) for i in range(n)]
    ids = [s.video_id for s in specs]
    if len(set(ids)) != len(ids):  # 1 in ~10^18; fail loudly rather than overwrite a video
        raise RuntimeError(f"video id collision for seed {seed}")
    return specs


# ---------------------------------------------------------------------------------------- rendering --


@lru_cache(maxsize=1)
def face_photo() -> np.ndarray:
    """Head-and-shoulders crop (RGB uint8) of matplotlib's bundled ``grace_hopper.jpg`` (a real photo)."""
    import cv2
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    img = cv2.imread(str(path))
    if img is None:
        raise FileNotFoundError(f"face photo {path} is missing (it ships with matplotlib)")
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)[30:500, 95:437])  # (470, 342, 3)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.asarray([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], np.float32)


def _background(rng: np.random.Generator, h: int, w: int, brightness: float, colorfulness: float) -> np.ndarray:
    """A textured background (uint8 RGB, ``h x w``) of mean luma ~ ``brightness``: smooth blobs, stripes or
    a tiled pattern, in two colours of the same hue family."""
    import cv2

    hue = float(rng.random())
    a = _hsv_to_rgb(hue, 0.9 * colorfulness, 1.0)
    b = _hsv_to_rgb((hue + rng.uniform(0.08, 0.5)) % 1.0, 0.9 * colorfulness, 1.0)
    style = int(rng.integers(3))
    if style == 0:  # smooth blobs
        cell = int(rng.integers(16, 48))
        small = rng.random((h // cell + 2, w // cell + 2)).astype(np.float32)
        m = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif style == 1:  # slanted stripes with some noise
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        period = float(rng.uniform(20, 90))
        ang = float(rng.uniform(0, math.pi))
        m = 0.5 + 0.5 * np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * (2 * math.pi / period))
        m += cv2.resize(rng.random((h // 32 + 2, w // 32 + 2)).astype(np.float32), (w, h)) * 0.4
    else:  # blocky tiles
        cell = int(rng.integers(12, 40))
        small = rng.random((h // cell + 2, w // cell + 2)).astype(np.float32)
        m = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    m = (m - m.min()) / max(float(m.max() - m.min()), 1e-6)
    img = a[None, None, :] * m[..., None] + b[None, None, :] * (1.0 - m[..., None])
    luma = float((img @ np.asarray([0.299, 0.587, 0.114], np.float32)).mean())
    img *= brightness / max(luma, 1e-3)
    return np.clip(img * 255.0, 0, 255).astype(np.uint8)


def _sprite(rng: np.random.Generator, size: tuple[int, int], colorfulness: float, brightness: float
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """A textured shape: RGB ``(h, w, 3)`` and a boolean ``(h, w, 3)`` ellipse mask (None: a rectangle)."""
    import cv2

    h, w = size
    col = _hsv_to_rgb(float(rng.random()), colorfulness, float(np.clip(brightness + rng.uniform(-0.2, 0.3), 0.1, 1)))
    cell = int(rng.integers(4, 12))
    tex = cv2.resize(rng.random((h // cell + 1, w // cell + 1)).astype(np.float32), (w, h),
                     interpolation=cv2.INTER_NEAREST)
    img = np.clip(col[None, None, :] * (0.55 + 0.7 * tex[..., None]) * 255.0, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        return img, None
    yy, xx = np.ogrid[0:h, 0:w]
    mask = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2 <= 1.0
    return img, np.ascontiguousarray(np.repeat(mask[..., None], 3, axis=2))


def _face_sprite(rng: np.random.Generator, height: int, brightness: float, mirror: bool
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The portrait scaled to ``height`` px, tinted and lit, premultiplied by a feathered alpha.

    Returns ``(face * alpha, 1 - alpha)`` as uint8 ``(h, w, 3)`` images (alpha in 0..255), so blending onto
    ``region`` is ``region * (1 - alpha) / 255 + face * alpha`` (two SIMD OpenCV calls per frame).
    """
    import cv2

    photo = face_photo()
    width = max(8, int(round(photo.shape[1] * height / photo.shape[0])))
    img = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    if mirror:
        img = img[:, ::-1]
    tint = np.asarray([rng.uniform(0.85, 1.15) for _ in range(3)], np.float32)
    gain = float(np.clip(0.75 + 0.5 * brightness, 0.8, 1.15))
    yy, xx = np.ogrid[0:height, 0:width]
    d = ((yy - 0.48 * height) / (0.56 * height)) ** 2 + ((xx - width / 2) / (0.56 * width)) ** 2
    alpha = np.clip((1.15 - d) / 0.3, 0.0, 1.0).astype(np.float32)[..., None]
    pre = np.clip(img * tint * gain, 0, 255) * alpha
    inv = np.repeat(255.0 * (1.0 - alpha), 3, axis=2)
    return np.ascontiguousarray(pre.round().astype(np.uint8)), np.ascontiguousarray(inv.round().astype(np.uint8))


def _bounce(p0: float, v: float, t: float, span: float) -> float:
    """Position at time ``t`` of a point moving at ``v`` inside ``[0, span]``, reflecting at the ends."""
    if span <= 0:
        return 0.0
    x = (p0 + v * t) % (2 * span)
    return x if x <= span else 2 * span - x


def iter_frames(spec: VideoSpec) -> Iterator[np.ndarray]:
    """The video's frames, ``(H, W, 3)`` uint8 RGB (the same buffer is reused: copy to keep one)."""
    import cv2

    rng = np.random.default_rng(spec.render_seed)
    w, h, fps = spec.width, spec.height, spec.fps
    frame = np.empty((h, w, 3), np.uint8)
    bounds = [*spec.shot_starts, spec.n_frames]
    face_h = int(round(min(spec.face_scale * h, 0.9 * w * face_photo().shape[0] / face_photo().shape[1]
                           / max(spec.n_faces, 1))))
    faces = [_face_sprite(rng, face_h, spec.brightness, mirror=bool(k % 2) ^ bool(rng.random() < 0.5))
             for k in range(spec.n_faces)] if spec.n_faces else []
    for shot, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        shot_b = float(np.clip(spec.brightness + rng.normal(0.0, 0.06), 0.06, 0.95))
        pan_px = spec.pan_speed * w  # px per second
        extent = int(min(pan_px * (stop - start) / fps, 0.6 * w)) if pan_px > 0 else 0
        vertical = rng.random() < 0.25
        bg = _background(rng, h + (extent if vertical else 0), w + (0 if vertical else extent), shot_b,
                         spec.colorfulness)
        p0 = float(rng.uniform(0, extent)) if extent else 0.0
        shapes = []
        for _ in range(spec.n_shapes):
            sh = int(min(h, w) * rng.uniform(0.08, 0.25))
            sw = int(sh * rng.uniform(0.6, 1.6))
            sw = min(sw, w - 2)
            img, mask = _sprite(rng, (sh, sw), spec.colorfulness, shot_b)
            speed = spec.motion_level * w * 0.5 * rng.uniform(0.5, 1.0)
            ang = rng.uniform(0, 2 * math.pi)
            shapes.append((img, mask, rng.uniform(0, w - sw), rng.uniform(0, h - sh), speed * math.cos(ang),
                           speed * math.sin(ang)))
        face_pos = []
        if spec.face_shots[shot]:
            for k, (fimg, _a) in enumerate(faces):
                fh, fw = fimg.shape[:2]
                slot = (k + 0.5) / len(faces) if len(faces) > 1 else rng.uniform(0.3, 0.7)
                cx = float(np.clip(slot * w - fw / 2, 0, w - fw))
                cy = float(np.clip(h - fh - rng.uniform(0.0, 0.1) * h, 0, h - fh))
                face_pos.append((cx, cy, rng.uniform(0, 2 * math.pi)))
        for i in range(start, stop):
            t = (i - start) / fps
            off = int(_bounce(p0, pan_px, t, extent))
            frame[:] = bg[off:off + h, :w] if vertical else bg[:h, off:off + w]
            for img, mask, x0, y0, vx, vy in shapes:
                sh, sw = img.shape[:2]
                x = int(_bounce(x0, vx, t, w - sw))
                y = int(_bounce(y0, vy, t, h - sh))
                if mask is None:
                    frame[y:y + sh, x:x + sw] = img
                else:
                    np.copyto(frame[y:y + sh, x:x + sw], img, where=mask)
            for (pre, inv), (cx, cy, phase) in zip(faces, face_pos, strict=False):
                fh, fw = pre.shape[:2]
                bob = 0.02 * h * (0.3 + spec.motion_level) * math.sin(2 * math.pi * 0.7 * t + phase)
                x, y = int(cx), int(min(max(cy + bob, 0.0), h - fh))
                region = frame[y:y + fh, x:x + fw]
                region[:] = cv2.add(cv2.multiply(np.ascontiguousarray(region), inv, scale=1.0 / 255.0), pre)
            yield frame


def render_audio(spec: VideoSpec) -> np.ndarray | None:
    """The audio track, ``(channels, samples)`` float32 in [-1, 1]; None when the video has none."""
    a = spec.audio
    if a is None:
        return None
    rng = np.random.default_rng([spec.render_seed, 0xA0D10])
    sr, n = a.sample_rate, max(1, int(round(spec.duration_s * a.sample_rate)))
    t = np.arange(n, dtype=np.float64) / sr
    if a.kind == "speech":  # harmonics of a gliding f0, amplitude-modulated at syllable rate, with pauses
        f0 = rng.uniform(95, 240) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        x = sum(np.sin(k * phase) / k for k in range(1, 9))
        syl = rng.uniform(3.0, 6.0)
        env = np.clip(np.sin(2 * np.pi * syl * t + rng.uniform(0, 6)), 0, None) ** 1.5
        words = np.repeat(rng.random(int(np.ceil(spec.duration_s / 0.4)) + 1) < 0.8, int(0.4 * sr))[:n]
        x = x * env * words + 0.02 * rng.standard_normal(n)
    elif a.kind == "music":  # a chord per second plus a decaying kick on each beat
        beat = 60.0 / rng.uniform(80, 140)
        notes = 220.0 * 2 ** (rng.integers(0, 24, (int(spec.duration_s) + 2, 3)) / 12.0)
        idx = np.minimum(t.astype(int), len(notes) - 1)
        x = sum(np.sin(2 * np.pi * notes[idx, k] * t) for k in range(3)) / 3
        tb = t % beat
        x = x + 1.5 * np.sin(2 * np.pi * 60 * tb) * np.exp(-tb * 18)
    elif a.kind == "tone":  # one or two steady tones with a slow tremolo
        x = np.sin(2 * np.pi * rng.uniform(200, 1200) * t) * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(1, 5) * t))
        if rng.random() < 0.5:
            x = x + 0.5 * np.sin(2 * np.pi * rng.uniform(200, 1200) * t)
    else:  # pink-ish noise (1/sqrt(f) spectrum)
        spec_ = np.fft.rfft(rng.standard_normal(n))
        spec_ /= np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0))
        x = np.fft.irfft(spec_, n)
    x = np.asarray(x, np.float64)
    x *= 10 ** (a.rms_dbfs / 20.0) / max(float(np.sqrt(np.mean(x**2))), 1e-9)
    out = np.stack([x] * a.channels)
    if a.channels == 2:  # panned a little left (a level difference only: a delay would comb-filter a mono mix)
        out[1] *= 0.8
    return np.clip(out, -1.0, 1.0).astype(np.float32)


X264_OPTIONS = {"preset": "ultrafast", "threads": "1"}  # one thread: the same bytes on any machine


def render_video(spec: VideoSpec, path: Path, crf: int = 26) -> int:
    """Encode ``spec`` to ``path`` (H.264 + AAC in MP4), atomically. Returns the bytes written.

    A ``corrupt`` spec is encoded, then truncated to its first third (the ``moov`` index is lost), so it exists
    but nothing can decode it.
    """
    import av
    import cv2

    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4") as c:
            vs = c.add_stream("libx264", rate=spec.fps)
            vs.width, vs.height, vs.pix_fmt = spec.width, spec.height, "yuv420p"
            vs.options = {**X264_OPTIONS, "crf": str(crf)}
            audio = render_audio(spec)
            if audio is not None:
                astream = c.add_stream("aac", rate=spec.audio.sample_rate)
                astream.layout = "stereo" if spec.audio.channels == 2 else "mono"
                astream.bit_rate = 64000 * spec.audio.channels
                astream.options = {"aac_coder": "fast"}  # ~3x faster than the default two-loop search
            tb = Fraction(1, spec.fps)
            for i, img in enumerate(iter_frames(spec)):
                # OpenCV's BT.601 RGB->I420 is ~4x faster than swscale's and decodes back to the same RGB
                fr = av.VideoFrame.from_ndarray(cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
                fr.pts, fr.time_base = i, tb
                for p in vs.encode(fr):
                    c.mux(p)
            for p in vs.encode():
                c.mux(p)
            if audio is not None:
                sr = spec.audio.sample_rate
                layout = "stereo" if spec.audio.channels == 2 else "mono"
                for s in range(0, audio.shape[1], 1024):
                    af = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, s:s + 1024]), format="fltp",
                                                    layout=layout)
                    af.sample_rate, af.pts, af.time_base = sr, s, Fraction(1, sr)
                    for p in astream.encode(af):
                        c.mux(p)
                for p in astream.encode():
                    c.mux(p)
        if spec.kind == "corrupt":
            data = tmp.read_bytes()
            tmp.write_bytes(data[: max(64, len(data) // 3)])
    return path.stat().st_size


def _write_one(spec: VideoSpec, videos_dir: str, crf: int) -> tuple[str, float, float, int]:
    """Worker: sidecar first, then the video (so no visible ``.mp4`` lacks its sidecar).

    Returns ``(WxH, wall seconds, CPU seconds, frames)``.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    d = Path(videos_dir)
    atomic_write_bytes(d / f"{spec.video_id}.json", _sidecar_bytes(spec))
    render_video(spec, d / spec.filename, crf=crf)
    return f"{spec.width}x{spec.height}", time.perf_counter() - t0, time.process_time() - c0, spec.n_frames


# ------------------------------------------------------------------------------------------- writing --


def _fmt(v: Any) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float):
        return repr(round(v, 6))
    return str(v)


def _csv_bytes(columns: tuple[str, ...] | list[str], rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_fmt(r[c]) for c in columns])
    return buf.getvalue().encode()


def write_tables(specs: list[VideoSpec], out: Path, seed: int, cfg: SynthConfig) -> None:
    """``labels.csv``, ``generation_truth.csv`` and ``synth.json`` (each atomic, each deterministic)."""
    atomic_write_bytes(out / "labels.csv", _csv_bytes(LABEL_COLUMNS, [s.label_row() for s in specs]))
    truth_cols = list(specs[0].truth) if specs else ["video_id"]
    atomic_write_bytes(out / "generation_truth.csv", _csv_bytes(truth_cols, [s.truth for s in specs]))
    kinds: dict[str, int] = {}
    for s in specs:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    manifest = {"generator": "demo.synth", "generator_version": GENERATOR_VERSION, "seed": seed,
                "n": len(specs), "kinds": kinds, "faces": sum(s.has_faces for s in specs),
                "no_audio": sum(s.audio is None for s in specs),
                "face_source": "matplotlib mpl-data/sample_data/grace_hopper.jpg",
                "config": _config_record(cfg)}
    atomic_write_bytes(out / "synth.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def _config_record(cfg: SynthConfig) -> dict[str, Any]:
    """The config as ``synth.json`` records it (JSON types)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def _same_corpus(out: Path, seed: int, cfg: SynthConfig) -> bool:
    """Whether ``out/synth.json`` was written by this generator version with this seed and config."""
    try:
        manifest = json.loads((out / "synth.json").read_text())
    except (OSError, ValueError):
        return False
    return (manifest.get("generator_version") == GENERATOR_VERSION and manifest.get("seed") == seed
            and manifest.get("config") == _config_record(cfg))


def _already_rendered(spec: VideoSpec, videos: Path) -> bool:
    """True when ``spec``'s video and its identical sidecar are on disk (call only for the same corpus,
    :func:`_same_corpus`).

    A video is a pure function of its spec and the config (bytes do not depend on the worker count), so growing a
    corpus (``--n 2000`` then ``--n 4000``: the first 2,000 specs are the same) renders only the new videos. Any
    doubt renders again: a missing or different sidecar, or a missing video.
    """
    mp4, sidecar = videos / spec.filename, videos / f"{spec.video_id}.json"
    if not (mp4.is_file() and mp4.stat().st_size > 0 and sidecar.is_file()):
        return False
    return sidecar.read_bytes() == _sidecar_bytes(spec)


def _sidecar_bytes(spec: VideoSpec) -> bytes:
    return (json.dumps(spec.sidecar(), indent=2) + "\n").encode()


def _prepare(videos: Path, ids: set[str], clean: bool) -> None:
    videos.mkdir(parents=True, exist_ok=True)
    for tmp in videos.glob(".*.tmp"):  # leftovers of a killed run: our temp names, of a process now gone
        pid = tmp.name.rsplit(".", 2)[-2]
        if not (pid.isdigit() and pid_alive(int(pid))):
            tmp.unlink(missing_ok=True)
    foreign = [p for p in videos.iterdir() if p.suffix in (".mp4", ".json") and p.stem not in ids]
    if foreign and not clean:
        raise FileExistsError(f"{videos} holds {len(foreign)} video/sidecar files that are not part of this corpus "
                              f"(e.g. {foreign[0].name}); delete the folder or pass clean=True / --clean")
    for p in foreign:
        p.unlink()


def _config_to_json(cfg: SynthConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["fps_choices"] = {str(k): v for k, v in cfg.fps_choices.items()}
    if cfg.sample_rate_mix is None:
        d.pop("sample_rate_mix")
    else:
        d["sample_rate_mix"] = {str(k): v for k, v in cfg.sample_rate_mix.items()}
    return d


def _config_from_json(d: dict[str, Any]) -> SynthConfig:
    d = dict(d)
    d["fps_choices"] = {int(k): float(v) for k, v in d["fps_choices"].items()}
    d["duration_s"] = tuple(d["duration_s"])
    if d.get("sample_rate_mix") is not None:
        d["sample_rate_mix"] = {int(k): float(v) for k, v in d["sample_rate_mix"].items()}
    return SynthConfig(**d)


def _worker_main() -> None:
    """Entry of a worker process: a JSON job on stdin, one JSON line per finished video on stdout.

    The worker re-derives the specs from ``(n, seed, config)`` (pure and cheap), so nothing but the job
    crosses the process boundary.
    """
    import cv2

    cv2.setNumThreads(1)  # one process per core already
    job = json.loads(sys.stdin.read())
    specs = sample_specs(job["n"], job["seed"], _config_from_json(job["config"]))
    for i in job["indices"]:
        res, wall, cpu, frames = _write_one(specs[i], job["videos"], job["config"]["crf"])
        print(json.dumps([res, wall, cpu, frames]), flush=True)


def _run_workers(n: int, seed: int, cfg: SynthConfig, videos: Path, workers: int, indices: list[int]
                 ) -> Iterator[tuple[str, float, float, int]]:
    """Render videos ``indices`` in ``workers`` fresh interpreters (round-robin); yields each video's timing.

    Fresh interpreters rather than a fork pool: forking a process that already ran OpenCV/FFmpeg threads can
    deadlock the children, and ``spawn`` re-imports the caller's ``__main__`` (breaking scripts without a main
    guard).
    """
    import queue
    import subprocess
    import threading

    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)  # importable even when the package is not installed
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    lines: queue.Queue[tuple[int, str | None]] = queue.Queue()
    procs = []
    try:
        for k in range(workers):
            job = {"n": n, "seed": seed, "config": _config_to_json(cfg), "videos": str(videos),
                   "indices": indices[k::workers]}
            p = subprocess.Popen([sys.executable, "-c", "from demo.synth import _worker_main; _worker_main()"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env)
            p.stdin.write(json.dumps(job))
            p.stdin.close()
            procs.append(p)

            def pump(k: int = k, p: subprocess.Popen = p) -> None:
                for line in p.stdout:
                    lines.put((k, line))
                lines.put((k, None))

            threading.Thread(target=pump, daemon=True).start()
        running = workers
        while running:
            k, line = lines.get()
            if line is None:
                running -= 1
                if procs[k].wait() != 0:
                    err = procs[k].stderr.read()
                    raise RuntimeError(f"synth worker {k} failed (exit {procs[k].returncode}):\n{err[-4000:]}")
                continue
            res, wall, cpu, frames = json.loads(line)
            yield res, wall, cpu, frames
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()


def generate(n: int, out: Path | str, seed: int = 0, *, config: SynthConfig | None = None,
             workers: int | None = None, progress: bool = True, clean: bool = False,
             **overrides: Any) -> list[VideoSpec]:
    """Write a demo corpus of ``n`` videos to ``out`` (see the module docstring for the layout).

    Args:
        n: number of videos (edge cases take indices 0-2, see ``SynthConfig``).
        out: corpus folder (created).
        seed: everything is a function of it (and of the config).
        config: corpus knobs; ``overrides`` replace single fields (``face_fraction=0.5``; an unknown name is a
            ``TypeError`` naming it).
        workers: processes rendering videos (fresh interpreters); None = all CPU cores for n >= 8, else 1.
            Output bytes do not depend on it.
        progress: show a tqdm bar on stderr.
        clean: delete ``*.mp4``/``*.json`` in ``out/videos`` that are not part of this corpus (else they are
            an error).

    Returns:
        The specs of the videos, in index order.
    """
    cfg = dataclasses.replace(config or SynthConfig(), **overrides)
    if n < 1:
        raise ValueError("n must be >= 1")
    out = Path(out)
    specs = sample_specs(n, seed, cfg)
    videos = out / "videos"
    _prepare(videos, {s.video_id for s in specs}, clean)
    same = _same_corpus(out, seed, cfg)  # else everything is rendered again
    todo = [i for i, s in enumerate(specs) if not (same and _already_rendered(s, videos))]
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if len(todo) >= 8 else 1
    workers = max(1, min(workers, len(todo) or 1))
    from tqdm.auto import tqdm

    timings: list[tuple[str, float, float, int]] = []
    with tqdm(total=n, initial=n - len(todo), desc="synth videos", unit="video", disable=not progress,
              file=sys.stderr) as bar:
        if workers <= 1:
            for i in todo:
                timings.append(_write_one(specs[i], str(videos), cfg.crf))
                bar.update()
        else:
            for t in _run_workers(n, seed, cfg, videos, workers, todo):
                timings.append(t)
                bar.update()
    write_tables(specs, out, seed, cfg)
    if progress:
        for line in _timing_lines(timings):
            print(line, file=sys.stderr)
    return specs


def _timing_lines(timings: list[tuple[str, float, float, int]]) -> list[str]:
    by: dict[str, list[tuple[float, float, int]]] = {}
    for res, wall, cpu, frames in timings:
        by.setdefault(res, []).append((wall, cpu, frames))
    lines = []
    for res, v in sorted(by.items(), key=lambda kv: int(kv[0].split("x")[0]) * int(kv[0].split("x")[1])):
        st = _summary(v)
        lines.append(f"{res:>9}: {len(v):4d} videos, {st['s_per_video']:.3f} s/video wall, {st['cpu_s_per_video']:.3f} "
                     f"s/video CPU, {st['cpu_ms_per_frame']:.2f} CPU ms/frame, {st['frames_per_video']:.0f} "
                     "frames/video")
    return lines


def _summary(v: list[tuple[float, float, int]]) -> dict[str, float]:
    wall, cpu, frames = (sum(x[k] for x in v) for k in range(3))
    return {"videos": len(v), "s_per_video": wall / len(v), "cpu_s_per_video": cpu / len(v),
            "cpu_ms_per_frame": 1000 * cpu / max(frames, 1), "frames_per_video": frames / len(v)}


def benchmark(out: Path | str, n_per_resolution: int = 10, seed: int = 0,
              resolutions: tuple[str, ...] = ("640x360", "1280x720", "1920x1080"), **overrides: Any
              ) -> dict[str, dict[str, float]]:
    """Render ``n_per_resolution`` corpus videos at each resolution alone, in this process, under ``out``.

    Returns per resolution: videos, wall and CPU seconds per video (sidecar + render + encode + write),
    CPU milliseconds per frame, frames per video and MiB per video. CPU time is the number to compare on a
    shared machine; wall time is what a user waits with one worker.
    """
    res = {}
    for r in resolutions:
        cfg = dataclasses.replace(SynthConfig(), resolution_mix={r: 1.0}, portrait_fraction=0.0, **overrides)
        specs = sample_specs(n_per_resolution, seed, cfg)
        videos = Path(out) / r / "videos"
        _prepare(videos, {s.video_id for s in specs}, clean=True)
        face_photo()  # load once, outside the timing
        timings = [_write_one(s, str(videos), cfg.crf) for s in specs]
        res[r] = _summary([t[1:] for t in timings]) | {
            "mib_per_video": sum((videos / s.filename).stat().st_size for s in specs) / len(specs) / 2**20}
    return res


# ------------------------------------------------------------------------------------------------ CLI --


def _mix(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        key, _, w = part.partition("=")
        out[key.strip()] = float(w) if w else 1.0
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demo.synth", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=40, help="videos to generate")
    p.add_argument("--out", type=Path, default=Path("data/demo"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores when n >= 8)")
    p.add_argument("--include-corrupt", action="store_true", help="make video 2 an unreadable .mp4")
    p.add_argument("--no-edge-cases", action="store_true", help="no very short / silent video at indices 0, 1")
    p.add_argument("--resolution-mix", type=_mix, default=None, help="e.g. 640x360=0.8,1280x720=0.2")
    p.add_argument("--duration", type=float, nargs=2, default=None, metavar=("MIN", "MAX"), help="seconds")
    p.add_argument("--fps", type=_mix, default=None, help="frame rates and weights, e.g. 15=0.5,30=0.5")
    p.add_argument("--face-fraction", type=float, default=None)
    p.add_argument("--audio-fraction", type=float, default=None)
    p.add_argument("--clean", action="store_true", help="delete videos in OUT/videos that are not of this corpus")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--bench", type=int, default=0, metavar="K",
                   help="instead: time K videos per resolution (one process) under OUT and print JSON")
    a = p.parse_args(argv)
    over: dict[str, Any] = {"include_corrupt": a.include_corrupt, "edge_cases": not a.no_edge_cases}
    if a.resolution_mix:
        over["resolution_mix"] = a.resolution_mix
    if a.duration:
        over["duration_s"] = tuple(a.duration)
    if a.fps:
        over["fps_choices"] = {int(k): v for k, v in a.fps.items()}
    if a.face_fraction is not None:
        over["face_fraction"] = a.face_fraction
    if a.audio_fraction is not None:
        over["audio_fraction"] = a.audio_fraction
    try:
        if a.bench:
            over.pop("resolution_mix", None)
            print(json.dumps(benchmark(a.out, a.bench, a.seed, **over), indent=2))
            return 0
        t0 = time.perf_counter()
        specs = generate(a.n, a.out, a.seed, workers=a.workers, progress=not a.no_progress, clean=a.clean, **over)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(a.out), "videos": len(specs), "seconds": round(time.perf_counter() - t0, 2),
                      "faces": sum(s.has_faces for s in specs), "no_audio": sum(s.audio is None for s in specs),
                      "kinds": sorted({s.kind for s in specs})}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
