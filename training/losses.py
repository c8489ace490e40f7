"""Masked losses for multi-target regression with missing targets. Pure functions, no state.

Every loss takes predictions and targets of shape ``(B, H)`` (``H`` heads = targets) where missing targets are
NaN. Missing entries are *filled before* the arithmetic and masked with ``torch.where``: multiplying a NaN by 0
still gives NaN, and so does its gradient, so ``(pred - y) ** 2 * mask`` would poison every weight. Each head is
normalised by its own count of present targets (a head with no present target contributes 0), and the heads are
averaged, so a target that is often missing (``views_21d`` of young videos) still weighs as much as the others.
"""

from __future__ import annotations

import torch

__all__ = ["masked_mean", "masked_mse", "masked_huber", "gaussian_nll", "beta_nll", "target_mask"]


def target_mask(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split targets into a NaN-free copy and a presence mask.

    Args:
        y: targets ``(B, H)``, NaN where missing.

    Returns:
        ``(y_filled, present)``: ``y`` with NaN replaced by 0 and a bool mask ``(B, H)``.
    """
    present = ~torch.isnan(y)
    return torch.where(present, y, torch.zeros_like(y)), present


def masked_mean(per_element: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean over present entries per head, then over heads with at least one present entry.

    Args:
        per_element: loss per entry ``(B, H)``; values at missing entries are ignored (not multiplied).
        present: bool mask ``(B, H)``.

    Returns:
        Scalar loss. 0 (with a zero gradient) when nothing is present.
    """
    zeros = torch.zeros_like(per_element)
    summed = torch.where(present, per_element, zeros).sum(dim=0)  # (H,)
    count = present.sum(dim=0)  # (H,)
    per_head = summed / count.clamp(min=1)
    heads = (count > 0).sum()
    return per_head.sum() / heads.clamp(min=1)


def masked_mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Masked mean squared error, normalised per head. ``pred``, ``y``: ``(B, H)``."""
    y_f, present = target_mask(y)
    return masked_mean((pred - y_f) ** 2, present)


def masked_huber(pred: torch.Tensor, y: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Masked Huber loss (quadratic below ``delta``, linear above), normalised per head."""
    y_f, present = target_mask(y)
    err = (pred - y_f).abs()
    per = torch.where(err < delta, 0.5 * err**2, delta * (err - 0.5 * delta))
    return masked_mean(per, present)


def gaussian_nll(mean: torch.Tensor, log_var: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Masked heteroscedastic Gaussian negative log-likelihood (constant dropped).

    Args:
        mean: predicted means ``(B, H)``.
        log_var: predicted log-variances ``(B, H)``.
        y: targets ``(B, H)``, NaN where missing.
    """
    return beta_nll(mean, log_var, y, beta=0.0)


def beta_nll(mean: torch.Tensor, log_var: torch.Tensor, y: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """Masked beta-NLL (Seitzer et al., 2022, "On the pitfalls of heteroscedastic uncertainty estimation").

    The Gaussian NLL of each entry is weighted by ``stop_grad(var) ** beta``. With ``beta = 0`` this is the plain
    NLL, whose gradient for the mean is scaled by ``1 / var``: points the model finds hard get a large variance
    and then stop being fitted (the "poor-fit trap"). ``beta = 1`` gives the mean the MSE gradient; 0.5 is the
    paper's recommended compromise.

    Args:
        mean: predicted means ``(B, H)``.
        log_var: predicted log-variances ``(B, H)``.
        y: targets ``(B, H)``, NaN where missing.
        beta: weight exponent in [0, 1].

    Returns:
        Scalar loss, normalised per head by the count of present targets.
    """
    y_f, present = target_mask(y)
    var = log_var.exp()
    nll = 0.5 * (log_var + (y_f - mean) ** 2 / var)  # (B, H)
    if beta > 0:
        nll = nll * var.detach() ** beta
    return masked_mean(nll, present)
