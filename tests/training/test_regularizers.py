"""The encoder penalties: Hutchinson contractive estimate, weight penalty, reconstruction, KL."""

import pytest
import torch
from torch import nn

from augmentgen.models import build_config, build_generator
from augmentgen.training.regularizers import (
    contractive_penalty,
    gaussian_kl,
    jacobian_frobenius_norm,
    reconstruction_loss,
    weight_penalty,
)


def test_hutchinson_estimate_matches_the_exact_jacobian_norm():
    config = build_config("ae", num_classes=3, encoder_width=4, decoder_width=4, latent_dim=6)
    encoder = build_generator(config).encoder
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0])
    exact = jacobian_frobenius_norm(lambda x: encoder(x, labels)[0], images)  # (4,)
    assert exact.shape == (4,) and (exact > 0).all()
    # 300 probes per image, drawn at once by repeating the batch (rows are independent).
    probes = 300
    inputs = images.repeat(probes, 1, 1, 1).requires_grad_(True)
    estimate = contractive_penalty(encoder(inputs, labels.repeat(probes))[0], inputs,
                                   generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(estimate, exact.square().mean(), rtol=0.05, atol=0)
    # A single probe is already unbiased but noisy; the estimate is differentiable.
    estimate.backward()
    assert encoder.head.weight.grad is not None and encoder.head.weight.grad.abs().sum() > 0


def test_exact_jacobian_norm_of_a_linear_map():
    linear = nn.Linear(5, 3)
    norms = jacobian_frobenius_norm(linear, torch.randn(4, 5))
    torch.testing.assert_close(norms, linear.weight.norm().detach().expand(4))


def test_contractive_penalty_is_exact_for_a_linear_map_in_expectation():
    linear = nn.Linear(5, 3, bias=False)
    x = torch.randn(2, 5, requires_grad=True)
    estimate = contractive_penalty(linear(x), x, num_projections=2000,
                                   generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(estimate, linear.weight.square().sum().detach(), rtol=0.05, atol=0)


def test_weight_penalty_values():
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
        layer.bias.fill_(100.0)  # biases are not penalised
    assert float(weight_penalty(layer, "l1").detach()) == pytest.approx(3.5)
    assert float(weight_penalty(layer, "l2").detach()) == pytest.approx(5.25)
    assert float(weight_penalty(layer, "none")) == 0.0
    with pytest.raises(ValueError):
        weight_penalty(layer, "l3")


def test_reconstruction_losses_and_kl():
    a, b = torch.full((2, 1, 2, 2), 0.5), torch.full((2, 1, 2, 2), -0.5)
    assert float(reconstruction_loss(a, b, "mse")) == pytest.approx(1.0)
    assert float(reconstruction_loss(a, b, "mse", reduction="sum")) == pytest.approx(4.0)
    assert float(reconstruction_loss(a, a, "bce")) < float(reconstruction_loss(a, b, "bce"))
    mean, logvar = torch.zeros(3, 4), torch.zeros(3, 4)
    assert float(gaussian_kl(mean, logvar)) == pytest.approx(0.0)
    assert float(gaussian_kl(mean + 1, logvar)) == pytest.approx(2.0)  # 0.5 * 4 dims * 1
