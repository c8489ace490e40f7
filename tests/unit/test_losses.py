"""Masked losses: missing targets contribute nothing (value and gradient), per-head normalisation, beta-NLL."""

from __future__ import annotations

import math

import pytest
import torch

from training.losses import beta_nll, gaussian_nll, masked_huber, masked_mse

NAN = float("nan")


def _pred(values: list[list[float]]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def test_masked_mse_value_ignores_missing_and_normalises_per_head() -> None:
    pred = _pred([[1.0, 0.0], [3.0, 5.0], [0.0, 1.0]])
    y = torch.tensor([[0.0, NAN], [1.0, NAN], [0.0, 3.0]], dtype=torch.float64)
    # head 0: errors 1, 2, 0 -> mean 5/3; head 1: one present, error 2 -> 4; mean over heads
    assert masked_mse(pred, y).item() == pytest.approx((5 / 3 + 4) / 2)


@pytest.mark.parametrize("loss", [masked_mse, masked_huber])
def test_missing_target_has_zero_gradient(loss) -> None:
    pred = _pred([[1.0, 2.0], [3.0, 4.0]])
    y = torch.tensor([[0.5, NAN], [NAN, NAN]], dtype=torch.float64)
    loss(pred, y).backward()
    g = pred.grad
    assert torch.isfinite(g).all(), "a NaN target leaked into the gradient"
    assert g[0, 1] == 0 and g[1, 0] == 0 and g[1, 1] == 0
    assert g[0, 0] != 0


def test_beta_nll_missing_target_zero_gradient_for_mean_and_log_var() -> None:
    mean = _pred([[1.0, 2.0, 0.0]])
    log_var = _pred([[0.1, -0.3, 0.2]])
    y = torch.tensor([[0.0, NAN, 1.0]], dtype=torch.float64)
    beta_nll(mean, log_var, y, beta=0.5).backward()
    for g in (mean.grad, log_var.grad):
        assert torch.isfinite(g).all()
        assert g[0, 1] == 0
        assert g[0, 0] != 0 and g[0, 2] != 0


def test_all_missing_gives_zero_loss_and_zero_gradient() -> None:
    pred = _pred([[1.0, 2.0]])
    y = torch.full((1, 2), NAN, dtype=torch.float64)
    loss = masked_mse(pred, y)
    loss.backward()
    assert loss.item() == 0.0
    assert (pred.grad == 0).all()


def test_gaussian_nll_matches_closed_form() -> None:
    mean = _pred([[0.0], [1.0]])
    log_var = _pred([[math.log(4.0)], [0.0]])
    y = torch.tensor([[2.0], [1.5]], dtype=torch.float64)
    expected = (0.5 * (math.log(4.0) + 4 / 4) + 0.5 * (0.0 + 0.25)) / 2
    assert gaussian_nll(mean, log_var, y).item() == pytest.approx(expected)


def test_beta_nll_weights_by_detached_variance() -> None:
    mean = _pred([[0.0]])
    log_var = _pred([[math.log(4.0)]])
    y = torch.tensor([[2.0]], dtype=torch.float64)
    nll = 0.5 * (math.log(4.0) + 1.0)
    assert beta_nll(mean, log_var, y, beta=0.5).item() == pytest.approx(nll * 4.0**0.5)
    # beta = 1: the mean's gradient equals the MSE gradient (y - mean) / 1, independent of the variance
    beta_nll(mean, log_var, y, beta=1.0).backward()
    assert mean.grad.item() == pytest.approx(-(2.0 - 0.0) * 0.5 * 2 / 4.0 * 4.0)


def test_per_head_normalisation_weighs_rare_targets_equally() -> None:
    # head 0 has 3 present values with error 1, head 1 one present value with error 1: both heads mean 1
    pred = _pred([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([[0.0, 0.0], [0.0, NAN], [0.0, NAN]], dtype=torch.float64)
    assert masked_mse(pred, y).item() == pytest.approx(1.0)
