"""v2: modality tokens + a summary token through a transformer encoder; per-target mean and log-variance heads."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture of :class:`MultiHeadTransformer`.

    Attributes:
        modality_index: per modality, the positions of its columns in the input ``(B, F)``.
        always_present: modalities never padding-masked (the meta token: age and first-snapshot counts).
        n_targets: number of heads.
        d_model, n_heads, n_layers, ff_dim, dropout: encoder shape.
        min_log_var, max_log_var: clamp of the predicted log-variance (numerical safety of the NLL).
    """

    modality_index: tuple[tuple[int, ...], ...]
    always_present: tuple[int, ...] = (0,)
    n_targets: int = 6
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    ff_dim: int = 128
    dropout: float = 0.1
    min_log_var: float = -7.0
    max_log_var: float = 5.0


class MultiHeadTransformer(nn.Module):
    """Each modality's columns are projected to one token (+ a learned modality embedding); a learned summary
    token attends over them. Missing modalities are excluded by the key padding mask; the always-present ones
    (meta: age features) never are, so every row attends to at least the summary and meta tokens."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n_mod = len(cfg.modality_index)
        for i, idx in enumerate(cfg.modality_index):
            self.register_buffer(f"idx_{i}", torch.tensor(idx, dtype=torch.long), persistent=False)
        always = torch.zeros(n_mod, dtype=torch.bool)
        always[list(cfg.always_present)] = True
        self.register_buffer("always", always, persistent=False)
        self.proj = nn.ModuleList(
            nn.Sequential(nn.Linear(len(idx), cfg.d_model), nn.LayerNorm(cfg.d_model)) for idx in cfg.modality_index
        )
        self.modality_emb = nn.Parameter(torch.zeros(n_mod, cfg.d_model))
        self.summary = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        nn.init.normal_(self.modality_emb, std=0.02)
        nn.init.normal_(self.summary, std=0.02)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.ff_dim, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.heads = nn.ModuleList(nn.Linear(cfg.d_model, 2) for _ in range(cfg.n_targets))

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: x ``(B, F)`` standardised inputs; present ``(B, M)`` modality presence in {0, 1}.

        Returns:
            ``(mean (B, H), log_var (B, H))`` on the standardised target scale.
        """
        b = x.shape[0]
        tokens = [proj(x.index_select(1, getattr(self, f"idx_{i}"))) for i, proj in enumerate(self.proj)]
        tok = torch.stack(tokens, dim=1) + self.modality_emb[None]  # (B, M, D)
        tok = torch.cat([self.summary.expand(b, -1, -1), tok], dim=1)  # (B, 1 + M, D)
        missing = (present < 0.5) & ~self.always[None, :]  # (B, M)
        pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=x.device), missing], dim=1)  # (B, 1 + M)
        h = self.norm(self.encoder(tok, src_key_padding_mask=pad)[:, 0])  # (B, D) summary token
        out = torch.stack([head(h) for head in self.heads], dim=1)  # (B, H, 2)
        log_var = out[..., 1].clamp(self.cfg.min_log_var, self.cfg.max_log_var)
        return out[..., 0], log_var
