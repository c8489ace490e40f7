"""v1 late fusion: one MLP tower per modality, fused late into one head per target."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FusionConfig:
    """Architecture of :class:`LateFusionNet`.

    Attributes:
        modality_index: per modality (in a fixed order), the positions of its columns in the input ``(B, F)``.
        n_targets: number of heads (six: views/likes at 7/14/21 days).
        tower_hidden: hidden width of each tower.
        tower_dim: output width of each tower.
        fusion_hidden: hidden width of the fusion MLP.
        dropout: dropout in towers and fusion.
    """

    modality_index: tuple[tuple[int, ...], ...]
    n_targets: int = 6
    tower_hidden: int = 64
    tower_dim: int = 32
    fusion_hidden: int = 128
    dropout: float = 0.1


def _mlp(d_in: int, d_hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_hidden, d_out),
                         nn.GELU())


class LateFusionNet(nn.Module):
    """Towers see only their modality; a missing modality's tower output is zeroed and its presence flag is
    an input of the fusion MLP, so the heads know what was missing rather than seeing imputed values as real."""

    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        for i, idx in enumerate(cfg.modality_index):
            self.register_buffer(f"idx_{i}", torch.tensor(idx, dtype=torch.long), persistent=False)
        self.towers = nn.ModuleList(
            _mlp(len(idx), cfg.tower_hidden, cfg.tower_dim, cfg.dropout) for idx in cfg.modality_index
        )
        n_mod = len(cfg.modality_index)
        self.fusion = _mlp(n_mod * cfg.tower_dim + n_mod, cfg.fusion_hidden, cfg.fusion_hidden, cfg.dropout)
        self.heads = nn.ModuleList(nn.Linear(cfg.fusion_hidden, 1) for _ in range(cfg.n_targets))

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Args: x ``(B, F)`` standardised inputs; present ``(B, M)`` modality presence in {0, 1}.

        Returns:
            ``(mean (B, H), None)``: point predictions (standardised target scale); no variance.
        """
        parts = []
        for i, tower in enumerate(self.towers):
            xi = x.index_select(1, getattr(self, f"idx_{i}"))  # (B, F_i)
            parts.append(tower(xi) * present[:, i : i + 1])  # (B, D_t), zero when the modality is missing
        z = self.fusion(torch.cat([*parts, present], dim=1))  # (B, D_f)
        return torch.cat([head(z) for head in self.heads], dim=1), None  # (B, H)
