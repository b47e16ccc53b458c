"""Conditional GAN: a class-conditional generator and a projection discriminator.

The generator conditions every upsampling block on the class through conditional batch norm
(de Vries et al. 2017) and concatenates a class embedding to the noise. The discriminator uses
spectral norm (Miyato et al. 2018) and projection conditioning (Miyato & Koyama 2018), with an
optional auxiliary classifier head (Odena et al. 2017) that makes samples more class-consistent
when there are only a few hundred training images.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from ._blocks import ConditionalDecoder, ConvEncoder, sn_linear
from .base import ConditionalGenerator, GeneratorConfig
from .registry import register_family, register_preset


@dataclasses.dataclass
class CGANConfig(GeneratorConfig):
    """Config of the ``cgan`` family.

    Args:
        generator_width (int, defaults to 32): channels of the generator's last block; earlier
            blocks double it.
        discriminator_width (int, defaults to 32): channels of the discriminator's first conv.
        loss (str, defaults to ``"hinge"``): ``"hinge"``, ``"bce"`` (non-saturating) or
            ``"wgan-gp"``.
        gradient_penalty (float, defaults to 10.0): weight of the WGAN-GP penalty.
        discriminator_steps (int, defaults to 1): discriminator updates per generator update.
        class_loss_weight (float, defaults to 0.5): weight of the auxiliary classification loss
            on the discriminator's features (0 disables the head's effect).
        diffaugment (str, defaults to ``"translation,cutout"``): DiffAugment policy applied to real
            and fake images (``"color"``, ``"translation"``, ``"cutout"``, comma separated; ``""``
            for none).
        betas (tuple[float, float], defaults to (0.0, 0.9)): Adam betas of both optimizers.
        discriminator_lr_scale (float, defaults to 2.0): discriminator lr / generator lr (TTUR).
        lecam_weight (float, defaults to 0.0): weight of the LeCam regulariser on the discriminator
            (Tseng et al. 2021, "Regularizing Generative Adversarial Networks under Limited
            Data"): EMAs (decay 0.99) of the mean realness on real and on fake images are kept,
            and ``mean((D(real) - ema_fake)^2) + mean((D(fake) - ema_real)^2)`` is added to the
            discriminator loss, which keeps the discriminator from over-fitting a small training
            set. The EMAs are saved in checkpoints. 0 disables it (the paper's BigGAN runs use 0.3).
        diversity_weight (float, defaults to 0.0): weight of the mode-seeking term on the
            generator (Mao et al. 2019, "Mode Seeking Generative Adversarial Networks for Diverse
            Image Synthesis"; Yang et al. 2019, "Diversity-Sensitive Conditional Generative
            Adversarial Networks"): each generator update also generates a second image per label
            from fresh noise and adds ``1 / (mean|G(z1) - G(z2)| / mean|z1 - z2| + 1e-5)``, which
            penalises samples of a class that stay alike when the noise changes. Both sets also
            get the adversarial and class losses. 0 disables it (and the second set is not
            generated).
        r1_weight (float, defaults to 0.0): gamma of the R1 gradient penalty on real images
            (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?"):
            ``gamma / 2 * mean ||grad_x D(x)||^2`` on the (augmented) real images of the
            discriminator update. 0 disables it; typical values are 0.1 to 10.
    """

    latent_dim: int = 64
    generator_width: int = 32
    discriminator_width: int = 32
    loss: Literal["hinge", "bce", "wgan-gp"] = "hinge"
    gradient_penalty: float = 10.0
    discriminator_steps: int = 1
    class_loss_weight: float = 0.5
    diffaugment: str = "translation,cutout"
    betas: tuple[float, float] = (0.0, 0.9)
    discriminator_lr_scale: float = 2.0
    lecam_weight: float = 0.0
    diversity_weight: float = 0.0
    r1_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.generator_width < 4 or self.discriminator_width < 4:
            raise ConfigError("generator_width and discriminator_width must be at least 4")
        if self.discriminator_steps < 1:
            raise ConfigError(f"discriminator_steps must be >= 1, got {self.discriminator_steps}")
        if self.class_loss_weight < 0 or self.gradient_penalty < 0:
            raise ConfigError("class_loss_weight and gradient_penalty must be >= 0")
        known = {"color", "translation", "cutout"}
        bad = [p for p in self.diffaugment.split(",") if p.strip() and p.strip() not in known]
        if bad:
            raise ConfigError(f"unknown DiffAugment op(s) {bad}; choose from {sorted(known)}")
        for name, what in (("lecam_weight", "LeCam regularisation"),
                           ("diversity_weight", "the mode-seeking diversity term"),
                           ("r1_weight", "the R1 penalty")):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"{name} must be a finite number >= 0, got {value!r}; use 0 to disable {what} "
                    "or a positive weight to enable it"
                )


@register_family("cgan")
class CGANGenerator(ConditionalGenerator):
    """Conditional GAN (conditional batch norm generator, projection discriminator)."""

    config_class = CGANConfig

    def __init__(self, config: CGANConfig):
        super().__init__(config)
        self.decoder = ConditionalDecoder(
            config.latent_dim, config.num_classes, config.in_channels, config.image_size,
            config.generator_width,
        )

    def generate(self, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.decoder(noise, labels)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.decoder(noise, labels)


class ProjectionDiscriminator(nn.Module):
    """Spectral-norm conv discriminator with projection conditioning and a class head.

    ``forward`` returns (realness logits (B,), class logits (B, num_classes)).
    """

    def __init__(self, config: CGANConfig):
        super().__init__()
        self.features = ConvEncoder(
            config.in_channels, config.image_size, config.discriminator_width, spectral=True
        )
        ch = self.features.out_channels
        self.realness = sn_linear(ch, 1)
        self.projection = nn.utils.parametrizations.spectral_norm(
            nn.Embedding(config.num_classes, ch)
        )
        self.classifier = nn.Linear(ch, config.num_classes)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = images.shape[0]
        h = self.features.net(images).sum(dim=(2, 3))  # (b, ch): global sum pooling
        realness = self.realness(h).view(b) + (self.projection(labels) * h).sum(dim=1)
        return realness, self.classifier(h)


register_preset(
    "wgan-gp", family="cgan", description="Conditional GAN trained with the WGAN-GP loss",
    loss="wgan-gp", discriminator_steps=2, betas=[0.0, 0.9], class_loss_weight=0.5,
)
