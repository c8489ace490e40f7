"""Log-mel band energies and simple spectral statistics of audio windows (``audio_features``).

Plain numpy: Hann-windowed STFT (``n_fft`` 512 = 32 ms, hop 160 = 10 ms at 16 kHz, no centring, windows
shorter than ``n_fft`` zero-padded to one frame), power spectrum, a triangular mel filterbank on the HTK
mel scale, natural-log energies averaged over the frames of the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STAT_NAMES: tuple[str, ...] = ("rms", "spectral_centroid_hz", "zero_crossing_rate")
_LOG_FLOOR = 1e-10


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 512
    hop: int = 160
    n_mels: int = 32
    fmin: float = 0.0
    fmax: float | None = None  # None: Nyquist


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(cfg: MelConfig) -> np.ndarray:
    """Triangular filters, peak 1, equally spaced on the mel scale.

    Returns:
        ``(n_mels, n_fft // 2 + 1)`` float64.
    """
    fmax = cfg.sample_rate / 2.0 if cfg.fmax is None else cfg.fmax
    freqs = np.fft.rfftfreq(cfg.n_fft, d=1.0 / cfg.sample_rate)  # (F,)
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(fmax), cfg.n_mels + 2))  # (n_mels + 2,)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    return np.clip(np.minimum(up, down), 0.0, None)


def power_spectrogram(waves: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """Hann-windowed power STFT.

    Args:
        waves: ``(B, N)`` float.

    Returns:
        ``(B, T, n_fft // 2 + 1)`` float64 with ``T = 1 + max(0, N - n_fft) // hop``.
    """
    waves = np.asarray(waves, np.float64)
    if waves.shape[1] < cfg.n_fft:
        waves = np.pad(waves, ((0, 0), (0, cfg.n_fft - waves.shape[1])))
    frames = np.lib.stride_tricks.sliding_window_view(waves, cfg.n_fft, axis=1)[:, :: cfg.hop]  # (B, T, n_fft)
    return np.abs(np.fft.rfft(frames * np.hanning(cfg.n_fft + 2)[1:-1], axis=-1)) ** 2


def check_waveforms(waves: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``waves`` is a non-empty ``(B, N)`` float array of finite samples."""
    if waves.ndim != 2 or waves.dtype.kind != "f":
        raise ValueError(f"WAVEFORM must be float (B, N), got {waves.dtype} {waves.shape}")
    if waves.shape[1] == 0:
        raise ValueError("WAVEFORM windows are empty (N = 0)")
    if not np.isfinite(waves).all():
        raise ValueError("WAVEFORM contains NaN or inf")


def audio_features(
    waves: np.ndarray, cfg: MelConfig = MelConfig(), fb: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean log-mel energies and ``[rms, spectral_centroid_hz, zero_crossing_rate]`` of each window.

    Args:
        waves: ``(B, N)`` mono samples in [-1, 1] at ``cfg.sample_rate``.
        cfg: STFT and filterbank settings.
        fb: precomputed :func:`mel_filterbank` (built when None).

    Returns:
        logmel ``(B, n_mels)`` float32 and stats ``(B, 3)`` float32. The centroid is the power-weighted mean
        frequency of the window's summed spectrum (0 for silence); the zero-crossing rate is the fraction of
        adjacent sample pairs whose sign differs.
    """
    check_waveforms(waves)
    fb = mel_filterbank(cfg) if fb is None else fb
    x = np.asarray(waves, np.float64)
    power = power_spectrogram(x, cfg)  # (B, T, F)
    logmel = np.log(power @ fb.T + _LOG_FLOOR).mean(axis=1)  # (B, n_mels)
    spectrum = power.sum(axis=1)  # (B, F)
    freqs = np.fft.rfftfreq(cfg.n_fft, d=1.0 / cfg.sample_rate)
    total = spectrum.sum(axis=1)
    centroid = np.where(total > 0, spectrum @ freqs / np.where(total > 0, total, 1.0), 0.0)
    rms = np.sqrt(np.mean(x**2, axis=1))
    signs = np.signbit(x)
    zcr = (signs[:, 1:] != signs[:, :-1]).mean(axis=1) if x.shape[1] > 1 else np.zeros(len(x))
    stats = np.stack([rms, centroid, zcr], axis=1)
    return logmel.astype(np.float32), stats.astype(np.float32)
