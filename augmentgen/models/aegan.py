"""Autoencoder + GAN hybrid: a conditional VAE-GAN (Larsen et al. 2016).

The decoder of a conditional VAE is also the generator of an image-space discriminator (the
spectral-norm projection discriminator of the ``cgan`` family). The encoder and decoder
minimise λ_rec · reconstruction + β · KL + λ_adv · adversarial, where the adversarial term is
computed on both reconstructions and prior samples; sampling draws z ~ N(0, I).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from ..errors import ConfigError
from ._encoder import EncoderFamilyConfig, EncoderGenerator
from .registry import register_family


@dataclasses.dataclass
class AEGANConfig(EncoderFamilyConfig):
    """Config of the ``aegan`` family (fields of :class:`EncoderFamilyConfig` plus the ones below).

    Args:
        reconstruction_weight (float, defaults to 1.0): λ_rec, weight of the per-pixel
            reconstruction loss.
        adversarial_weight (float, defaults to 0.05): λ_adv, weight of the generator's
            adversarial loss on reconstructions and prior samples.
        kl_weight (float, defaults to 0.01): β, weight of the (per-latent-dimension mean) KL term.
        class_loss_weight (float, defaults to 0.5): weight of the discriminator's auxiliary
            classification loss (trained on real images; the decoder is asked to match it).
        discriminator_width (int, defaults to 32): channels of the discriminator's first conv.
        loss (str, defaults to ``"hinge"``): adversarial loss, ``"hinge"`` or ``"bce"``.
        diffaugment (str, defaults to ``"translation,cutout"``): DiffAugment policy for the
            discriminator's inputs (``""`` for none).
        discriminator_lr_scale (float, defaults to 1.0): discriminator lr / autoencoder lr.
    """

    reconstruction_weight: float = 1.0
    adversarial_weight: float = 0.05
    kl_weight: float = 0.01
    class_loss_weight: float = 0.5
    discriminator_width: int = 32
    loss: Literal["hinge", "bce"] = "hinge"
    diffaugment: str = "translation,cutout"
    discriminator_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("reconstruction_weight", "adversarial_weight", "kl_weight", "class_loss_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.discriminator_width < 4:
            raise ConfigError("discriminator_width must be at least 4")
        if self.discriminator_lr_scale <= 0:
            raise ConfigError("discriminator_lr_scale must be positive")
        known = {"color", "translation", "cutout"}
        bad = [p for p in self.diffaugment.split(",") if p.strip() and p.strip() not in known]
        if bad:
            raise ConfigError(f"unknown DiffAugment op(s) {bad}; choose from {sorted(known)}")


@register_family("aegan")
class AEGANGenerator(EncoderGenerator):
    """Conditional VAE-GAN (decoder shared with an image-space projection discriminator)."""

    config_class = AEGANConfig
    variational = True
