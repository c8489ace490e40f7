"""Seed-generated random-feature conv nets for frame embeddings (``visual_embed_fast`` / ``_quality``).

These are NOT pretrained networks (not CLIP, not ImageNet): every filter is drawn from numpy's PCG64
generator with a fixed seed, so the weights are reproduced bit for bit from this file alone and nothing is
downloaded. What makes the embedding carry content:

* a stack of stride-2 conv layers whose filters are random, zero-mean (they ignore flat regions and respond
  to edges, texture and colour contrast) and orthonormal within a layer, each followed by ReLU and global
  average pooling, so every layer contributes a texture descriptor at its own scale;
* 16 handcrafted statistics: per-channel mean/std, luma mean/std, Hasler-Suesstrunk colourfulness,
  saturation, edge density and orientation, dark/bright fractions and coarse layout (top-bottom,
  left-right luma differences).

The texture part is squashed to a norm in [0, 1) that grows with texture energy, concatenated with the
statistics and the whole vector is L2-normalised. Random conv features of this kind are a known, cheap
baseline for image similarity; they are deterministic, but they are not semantic.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

N_STATS = 16
STAT_NAMES: tuple[str, ...] = (
    "mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b", "luma_mean", "luma_std",
    "colorfulness", "saturation", "edge_density", "edge_orientation", "dark_fraction", "bright_fraction",
    "luma_top_minus_bottom", "luma_left_minus_right",
)  # fmt: skip

# ITU-R BT.601 luma weights, as used for ``brightness`` in the frames component.
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class VisualNetConfig:
    """Architecture and seed of one random-feature net.

    Attributes:
        name: preset name (``fast`` / ``quality``).
        input_size: frames are ``(input_size, input_size, 3)`` uint8 RGB.
        embed_dim: output width; ``sum(conv_channels) + N_STATS`` must equal it.
        conv_channels: output channels of each stride-2 conv layer.
        kernel_sizes: square kernel size of each layer.
        seed: PCG64 seed from which all filters are generated.
        texture_scale: pooled-activation norm at which the texture part reaches norm 1/sqrt(2); flat
            frames (norm << scale) are described by their statistics alone.
    """

    name: str
    input_size: int
    embed_dim: int
    conv_channels: tuple[int, ...]
    kernel_sizes: tuple[int, ...]
    seed: int
    texture_scale: float = 0.02

    def __post_init__(self) -> None:
        if len(self.conv_channels) != len(self.kernel_sizes):
            raise ValueError("conv_channels and kernel_sizes must have the same length")
        if sum(self.conv_channels) + N_STATS != self.embed_dim:
            raise ValueError(f"sum(conv_channels) + {N_STATS} = {sum(self.conv_channels) + N_STATS} != embed_dim")


PRESETS: dict[str, VisualNetConfig] = {
    "fast": VisualNetConfig("fast", input_size=112, embed_dim=128, conv_channels=(16, 32, 64),
                            kernel_sizes=(5, 3, 3), seed=20261124),
    "quality": VisualNetConfig("quality", input_size=224, embed_dim=256, conv_channels=(16, 32, 64, 128),
                               kernel_sizes=(5, 3, 3, 3), seed=20261125),
}  # fmt: skip


def generate_weights(cfg: VisualNetConfig) -> list[np.ndarray]:
    """Conv filters of ``cfg``, generated from its seed with numpy's PCG64.

    Each layer's filters are the columns of Q from the QR decomposition of a zero-mean Gaussian matrix
    ``(fan_in, c_out)``: orthonormal, zero-mean (so a flat input gives no response), with the sign fixed by
    ``diag(R)`` so the result is unique. Computed in float64, returned as float32 with He gain sqrt(2).

    Returns:
        One ``(c_out, c_in, k, k)`` float32 array per layer.
    """
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    weights: list[np.ndarray] = []
    c_in = 3
    for c_out, k in zip(cfg.conv_channels, cfg.kernel_sizes, strict=True):
        fan_in = c_in * k * k
        if c_out >= fan_in:
            raise ValueError(f"layer with fan_in {fan_in} cannot hold {c_out} zero-mean orthonormal filters")
        a = rng.standard_normal((fan_in, c_out))  # (fan_in, c_out) float64
        a -= a.mean(axis=0, keepdims=True)
        q, r = np.linalg.qr(a)
        q *= np.where(np.diag(r) < 0, -1.0, 1.0)
        w = (math.sqrt(2.0) * q.T).reshape(c_out, c_in, k, k)
        weights.append(np.ascontiguousarray(w, dtype=np.float32))
        c_in = c_out
    return weights


def weights_sha256(weights: list[np.ndarray]) -> str:
    """sha256 over the float32 bytes and shapes of ``weights`` (pins bit-identical generation)."""
    h = hashlib.sha256()
    for w in weights:
        h.update(repr(w.shape).encode())
        h.update(np.ascontiguousarray(w, dtype="<f4").tobytes())
    return h.hexdigest()


def frame_stats(x: torch.Tensor) -> torch.Tensor:
    """Handcrafted colour/texture/layout statistics, roughly centred on 0 and within [-1, 1].

    Args:
        x: ``(B, 3, H, W)`` RGB in [0, 1].

    Returns:
        ``(B, N_STATS)`` float32, in the order of :data:`STAT_NAMES`.
    """
    mean = x.mean(dim=(2, 3))  # (B, 3)
    std = x.std(dim=(2, 3), unbiased=False)  # (B, 3)
    luma = (x * x.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(dim=1)  # (B, H, W)
    rg = x[:, 0] - x[:, 1]
    yb = 0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]
    # Hasler & Suesstrunk (2003) on the 0-255 scale, divided by 100 (as the frames component stores it).
    colorfulness = 2.55 * (
        torch.sqrt(rg.var(dim=(1, 2), unbiased=False) + yb.var(dim=(1, 2), unbiased=False))
        + 0.3 * torch.sqrt(rg.mean(dim=(1, 2)) ** 2 + yb.mean(dim=(1, 2)) ** 2)
    )
    mx, mn = x.max(dim=1).values, x.min(dim=1).values
    saturation = ((mx - mn) / mx.clamp_min(1e-6)).mean(dim=(1, 2))
    gx = luma[:, :, 2:] - luma[:, :, :-2]  # central differences
    gy = luma[:, 2:, :] - luma[:, :-2, :]
    ex, ey = gx.pow(2).mean(dim=(1, 2)), gy.pow(2).mean(dim=(1, 2))
    edge_density = gx.abs().mean(dim=(1, 2)) + gy.abs().mean(dim=(1, 2))
    orientation = (ex - ey) / (ex + ey + 1e-6)  # +1 vertical edges only, -1 horizontal only
    h, w = luma.shape[1], luma.shape[2]
    cols = [
        mean - 0.5,
        2.0 * std,
        (luma.mean(dim=(1, 2)) - 0.5)[:, None],
        (2.0 * luma.std(dim=(1, 2), unbiased=False))[:, None],
        colorfulness[:, None],
        saturation[:, None],
        (4.0 * edge_density)[:, None],
        (0.5 * orientation)[:, None],
        (luma < 0.15).float().mean(dim=(1, 2))[:, None],
        (luma > 0.85).float().mean(dim=(1, 2))[:, None],
        (luma[:, : h // 2].mean(dim=(1, 2)) - luma[:, h // 2 :].mean(dim=(1, 2)))[:, None],
        (luma[:, :, : w // 2].mean(dim=(1, 2)) - luma[:, :, w // 2 :].mean(dim=(1, 2)))[:, None],
    ]
    return torch.cat(cols, dim=1)


class RandomFeatureNet(nn.Module):
    """Frames ``(B, S, S, 3)`` uint8 RGB -> L2-normalised embeddings ``(B, embed_dim)``."""

    def __init__(self, cfg: VisualNetConfig, weights: list[np.ndarray] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        weights = generate_weights(cfg) if weights is None else weights
        self.n_layers = len(weights)
        for i, w in enumerate(weights):
            self.register_buffer(f"w{i}", torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)))

    @torch.inference_mode()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, S, S) in [0, 1]
        stats = frame_stats(x)  # (B, N_STATS)
        h = x - 0.5
        pooled = []
        for i in range(self.n_layers):
            w = getattr(self, f"w{i}")  # (C_out, C_in, k, k)
            p = w.shape[-1] // 2
            # Reflect padding: a flat frame stays flat up to the border, so it gives no texture response.
            h = F.relu(F.conv2d(F.pad(h, (p, p, p, p), mode="reflect"), w, stride=2))  # (B, C_out, S/2^i, ..)
            pooled.append(h.mean(dim=(2, 3)))  # (B, C_out)
        texture = torch.cat(pooled, dim=1)  # (B, sum C)
        # Soft normalisation: norm -> n / sqrt(n^2 + s^2), so float noise on a flat frame stays ~0.
        norm = texture.norm(dim=1, keepdim=True)
        texture = texture / torch.sqrt(norm**2 + self.cfg.texture_scale**2)
        return F.normalize(torch.cat([texture, stats], dim=1), dim=1)  # (B, embed_dim)


def check_frames(frames: np.ndarray, cfg: VisualNetConfig) -> None:
    """Raise ``ValueError`` unless ``frames`` is ``(B, S, S, 3)`` uint8 with ``S = cfg.input_size``."""
    want = (cfg.input_size, cfg.input_size, 3)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != want:
        raise ValueError(f"FRAMES must be uint8 (B, {want[0]}, {want[1]}, 3), got {frames.dtype} {frames.shape}")


def embed_frames(net: RandomFeatureNet, frames: np.ndarray) -> np.ndarray:
    """Embed a batch of RGB frames.

    Args:
        net: a :class:`RandomFeatureNet` (on any device; frames are moved to it).
        frames: ``(B, S, S, 3)`` uint8 RGB.

    Returns:
        ``(B, embed_dim)`` float32, each row L2-normalised.
    """
    check_frames(frames, net.cfg)
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(net.w0.device)
    return net(x).cpu().numpy().astype(np.float32, copy=False)
