"""GAN losses as plain functions; a family's step picks the ones it needs.

Discriminator losses take (real_logits, fake_logits); generator losses take fake_logits.
The regularisers below return the unweighted term; the step multiplies by the config's weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def bce_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The standard GAN objective (Goodfellow et al. 2014) in its numerically stable form."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def bce_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(z))."""
    return F.softplus(-fake_logits).mean()


def wasserstein_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return fake_logits.mean() - real_logits.mean()


def wasserstein_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def gradient_penalty(critic, real_images: torch.Tensor, fake_images: torch.Tensor,
                     labels: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): (||grad D(x_hat)|| - 1)^2 on interpolates.

    ``critic(images, labels)`` must return the realness logits first (a tuple is accepted).
    """
    alpha = torch.rand(real_images.shape[0], 1, 1, 1, device=real_images.device)
    mixed = (alpha * real_images.detach() + (1 - alpha) * fake_images.detach()).requires_grad_(True)
    out = critic(mixed, labels)
    logits = out[0] if isinstance(out, tuple) else out
    (grad,) = torch.autograd.grad(logits.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).square().mean()


def r1_penalty(critic, real_images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """R1 penalty (Mescheder et al. 2018): ``mean over the batch of ||grad_x D(x)||^2`` at real x.

    The full R1 regulariser is ``gamma / 2`` times this. ``critic(images, labels)`` must return
    the realness logits first (a tuple is accepted), one per image; the gradient is taken with
    ``create_graph=True`` so the penalty trains the critic's parameters.
    """
    images = real_images.detach().requires_grad_(True)
    out = critic(images, labels)
    logits = out[0] if isinstance(out, tuple) else out
    (grad,) = torch.autograd.grad(logits.sum(), images, create_graph=True)
    return grad.flatten(1).square().sum(dim=1).mean()


def lecam_regularizer(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                      ema_real: torch.Tensor, ema_fake: torch.Tensor) -> torch.Tensor:
    """LeCam regulariser (Tseng et al. 2021): ``mean((D(real) - ema_fake)^2) + mean((D(fake) - ema_real)^2)``.

    ``ema_real`` / ``ema_fake`` are the exponential moving averages of the discriminator's mean
    realness on real / fake images (constants here: no gradient flows into them). Pulling real
    predictions toward the fake anchor and vice versa bounds how far apart the discriminator can
    push the two, which is what keeps it from memorising a small training set.
    """
    ema_real, ema_fake = ema_real.detach(), ema_fake.detach()
    return (real_logits - ema_fake).square().mean() + (fake_logits - ema_real).square().mean()


def mode_seeking_loss(images_a: torch.Tensor, images_b: torch.Tensor,
                      noise_a: torch.Tensor, noise_b: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Mode-seeking term of MSGAN (Mao et al. 2019): ``1 / (mean|G(z1) - G(z2)| / mean|z1 - z2| + eps)``.

    ``images_a`` / ``images_b`` are generated from ``noise_a`` / ``noise_b`` with the same labels
    (row i of each pair shares a label). Minimising it maximises how much the images move per
    unit of noise, the ratio that collapses to 0 when a class's samples ignore the noise; the
    diversity-sensitive loss of Yang et al. 2019 regularises the same ratio. Means are over
    the whole batch, so the term costs one reduction per tensor.
    """
    ratio = (images_a - images_b).abs().mean() / (noise_a - noise_b).abs().mean()
    return 1.0 / (ratio + eps)


ADVERSARIAL_LOSSES = {
    "hinge": (hinge_discriminator_loss, hinge_generator_loss),
    "bce": (bce_discriminator_loss, bce_generator_loss),
    "wgan-gp": (wasserstein_discriminator_loss, wasserstein_generator_loss),
}
