"""Autoencoder + GAN hybrid: a conditional VAE-GAN (Larsen et al. 2016).

The decoder of a conditional VAE is also the generator of an image-space discriminator (the
spectral-norm projection discriminator of the ``cgan`` family). The encoder and decoder
minimise λ_rec · reconstruction + β · KL + λ_adv · adversarial, where the adversarial term is
computed on both reconstructions and prior samples; sampling draws z ~ N(0, I).

The module holds the family whole: :class:`AEGANConfig`, :class:`AEGANGenerator` and its
training step :class:`AEGANStep`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models.blocks import ProjectionDiscriminator
from ..models.diffaugment import check_policy, diff_augment
from ..models.encoder import AutoencoderStep, EncoderFamilyConfig, EncoderGenerator
from ..models.losses import ADVERSARIAL_LOSSES
from ..models.registry import register_family
from ..models.regularizers import gaussian_kl, reconstruction_loss


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
        check_policy(self.diffaugment)


class AEGANGenerator(EncoderGenerator):
    """Conditional VAE-GAN (decoder shared with an image-space projection discriminator)."""

    config_class = AEGANConfig
    variational = True
    centred_gaussian_prior = True


class AEGANStep(AutoencoderStep):
    """One autoencoder forward per step (reconstructions and prior samples in one decoder call)
    serves both updates: the discriminator on real vs. those images (detached), then the
    autoencoder on λ_rec · rec + β · KL + λ_adv · (adversarial + class loss) through the
    just-updated, frozen and unwrapped discriminator (one DDP forward per backward).

    Since issue 17 the discriminator sees the very reconstructions and prior samples the
    autoencoder then trains on (the textbook GAN's reuse of one fake batch), where it used to
    see those of a second, no-grad forward with its own prior and reparameterisation noise;
    the decoder's batch-norm statistics now move once per step instead of twice.
    """

    def prepare(self) -> None:
        super().prepare()
        c = self.config
        # The cgan family's discriminator (shared in models.blocks): it reads only
        # in_channels, image_size, discriminator_width and num_classes, which this config has.
        self.discriminator = ProjectionDiscriminator(c)
        d_opt = torch.optim.Adam(self.discriminator.parameters(),
                                 lr=c.learning_rate * c.discriminator_lr_scale, betas=tuple(c.betas))
        self.discriminator, self.d_opt = self.accelerator.prepare(self.discriminator, d_opt)
        self.plain_discriminator = self.accelerator.unwrap_model(self.discriminator)
        self.d_loss_fn, self.g_loss_fn = ADVERSARIAL_LOSSES[c.loss]

    def compilable_modules(self) -> dict[str, nn.Module]:
        """The generator and the discriminator; ``plain_discriminator`` (the autoencoder's
        update) stays eager."""
        return {"generator": self.generator, "discriminator": self.discriminator}

    def __call__(self, real_images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        c, g = self.config, self.plain_generator
        b = real_images.shape[0]
        policy = c.diffaugment
        _, out, penalties = self.autoencode(real_images, labels, prior_noise=g.sample_noise(b))

        fakes = torch.cat([out.reconstruction, out.prior_images])  # (2b, c, h, w)
        both = diff_augment(torch.cat([real_images, fakes.detach()]), policy)
        logits, class_logits = self.discriminator(both, labels.repeat(3))
        d_adv = self.d_loss_fn(logits[:b], logits[b:])
        d_cls = F.cross_entropy(class_logits[:b], labels)
        self.d_opt.zero_grad(set_to_none=True)
        self.accelerator.backward(d_adv + c.class_loss_weight * d_cls)
        self.d_opt.step()

        self.plain_discriminator.requires_grad_(False)
        rec = reconstruction_loss(out.reconstruction, real_images, c.reconstruction_loss)
        kl = gaussian_kl(out.mean, out.logvar) / c.latent_dim
        fake_logits, fake_class = self.plain_discriminator(diff_augment(fakes, policy), labels.repeat(2))
        g_adv = self.g_loss_fn(fake_logits)
        g_cls = F.cross_entropy(fake_class, labels.repeat(2))
        loss = (c.reconstruction_weight * rec + c.kl_weight * kl
                + c.adversarial_weight * (g_adv + c.class_loss_weight * g_cls))
        self.update(loss + sum(penalties.values()))
        self.plain_discriminator.requires_grad_(True)
        return {"rec_loss": rec.detach(), "kl_loss": kl.detach(), "d_loss": d_adv.detach(),
                "g_loss": g_adv.detach(), "g_class_loss": g_cls.detach(),
                **{k: v.detach() for k, v in penalties.items()}}


register_family("aegan", AEGANGenerator, step=AEGANStep)
