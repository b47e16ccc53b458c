"""The encoder penalties (Hutchinson contractive estimate, weight penalty, reconstruction, KL)
and the GAN regularisers of issue 21 (R1, LeCam and its EMA state, mode seeking)."""

import pytest
import torch
from torch import nn

from augmentgen.errors import CheckpointError
from augmentgen.families.gan import LeCamEMA
from augmentgen.models import build_config, build_generator
from augmentgen.models.losses import lecam_regularizer, mode_seeking_loss, r1_penalty
from augmentgen.models.regularizers import (
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


class LinearCritic(nn.Module):
    """D(x, y) = <w_y, x>: its input gradient at any x is w_y, so R1 has a closed form."""

    def __init__(self, num_classes=3, shape=(1, 2, 2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, *shape, generator=torch.Generator().manual_seed(0)))

    def forward(self, images, labels):
        realness = (self.weight[labels] * images).flatten(1).sum(dim=1)
        return realness, torch.zeros(images.shape[0], 3)  # (realness, class logits) like the cgan's


def test_r1_of_a_linear_critic_is_the_mean_squared_norm_of_its_class_weights():
    critic = LinearCritic()
    labels = torch.tensor([0, 0, 2, 1])
    images = torch.randn(4, 1, 2, 2)
    penalty = r1_penalty(critic, images, labels)
    w = critic.weight.detach()
    expected = (w[labels].flatten(1).square().sum(dim=1)).mean()
    torch.testing.assert_close(penalty, expected)
    assert not images.requires_grad  # the caller's tensor is left alone
    # Differentiable in the critic's parameters: d/dw_k mean_i ||w_{y_i}||^2 = 2 w_k n_k / n.
    penalty.backward()
    counts = torch.tensor([2.0, 1.0, 1.0])[:, None, None, None]
    torch.testing.assert_close(critic.weight.grad, 2 * w * counts / 4)
    # A critic returning a plain tensor works too: D(x) = 3 sum(x) has gradient 3 in each of 4 pixels.
    scaled_sum = r1_penalty(lambda x, y: 3.0 * x.flatten(1).sum(dim=1), images, labels)
    assert float(scaled_sum.detach()) == pytest.approx(9.0 * 4)


def test_lecam_is_zero_at_the_anchors_and_a_mean_square_elsewhere():
    ema_real, ema_fake = torch.tensor(0.7), torch.tensor(-0.4)
    at_anchors = lecam_regularizer(torch.full((5,), -0.4), torch.full((3,), 0.7), ema_real, ema_fake)
    assert float(at_anchors) == 0.0
    real, fake = torch.tensor([1.0, 3.0], requires_grad=True), torch.tensor([-1.0], requires_grad=True)
    ema_real = torch.tensor(1.0, requires_grad=True)
    value = lecam_regularizer(real, fake, ema_real, torch.tensor(0.0))
    assert float(value.detach()) == pytest.approx((1 + 9) / 2 + 4)  # mean((real - 0)^2) + mean((fake - 1)^2)
    value.backward()
    torch.testing.assert_close(real.grad, torch.tensor([1.0, 3.0]))  # 2 (r - ema_fake) / 2
    torch.testing.assert_close(fake.grad, torch.tensor([-4.0]))
    assert ema_real.grad is None  # the anchors are constants


def test_mode_seeking_term_is_huge_for_identical_outputs_and_small_for_spread_ones():
    z1, z2 = torch.randn(6, 4), torch.randn(6, 4)
    images = torch.rand(6, 1, 8, 8)
    assert float(mode_seeking_loss(images, images.clone(), z1, z2)) == pytest.approx(1e5)  # 1 / eps
    a, b = torch.ones(6, 1, 8, 8), -torch.ones(6, 1, 8, 8)
    spread = mode_seeking_loss(a, b, torch.ones(6, 4), torch.zeros(6, 4))
    assert float(spread) == pytest.approx(1 / (2 + 1e-5))  # mean|a - b| = 2, mean|z1 - z2| = 1
    # The ratio is per unit of noise: twice the noise distance for the same images is twice the term.
    farther = mode_seeking_loss(a, b, 2 * torch.ones(6, 4), torch.zeros(6, 4))
    assert float(farther) == pytest.approx(2 * float(spread), rel=1e-4)
    # Minimising it pushes the two sets apart.
    a = a.clone().requires_grad_(True)
    mode_seeking_loss(a, b, torch.ones(6, 4), torch.zeros(6, 4)).backward()
    assert (a.grad < 0).all()  # a > b, so lowering the loss raises a


def test_lecam_ema_starts_at_the_first_means_then_decays_and_round_trips():
    ema = LeCamEMA(decay=0.99)
    ema.update(torch.tensor(2.0), torch.tensor(-1.0))
    assert (float(ema.real), float(ema.fake), int(ema.num_updates)) == (2.0, -1.0, 1)
    ema.update(torch.tensor(4.0), torch.tensor(1.0))
    assert float(ema.real) == pytest.approx(0.99 * 2 + 0.01 * 4)
    assert float(ema.fake) == pytest.approx(0.99 * -1 + 0.01 * 1)
    restored = LeCamEMA()
    restored.load_state_dict(ema.state_dict())
    assert {k: float(v) for k, v in restored.state_dict().items()} == {k: float(v) for k, v in ema.state_dict().items()}
    with pytest.raises(CheckpointError, match="lecam_weight"):
        restored.load_state_dict({"n_averaged": torch.tensor(1)})  # e.g. the trainer's EMA state
