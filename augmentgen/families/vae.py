"""Conditional VAE (Kingma & Welling 2014; Sohn et al. 2015).

Encoder q(z | x, y) gives a diagonal Gaussian; the decoder p(x | z, y) gets the class through
conditional batch norm and an embedding. Training maximises the ELBO with a ``beta`` weight on
the KL term (Higgins et al. 2017); sampling draws z ~ N(0, I) and decodes with the label.

The module holds the family whole: :class:`VAEConfig`, :class:`VAEGenerator` and its training
step :class:`VAEStep`.
"""

from __future__ import annotations

import dataclasses

import torch

from ..errors import ConfigError
from ..models.encoder import AutoencoderStep, EncoderFamilyConfig, EncoderGenerator
from ..models.registry import register_family
from ..models.regularizers import gaussian_kl, reconstruction_loss


@dataclasses.dataclass
class VAEConfig(EncoderFamilyConfig):
    """Config of the ``vae`` family (fields of :class:`EncoderFamilyConfig` plus the ones below).

    Args:
        beta (float, defaults to 1.0): weight of KL(q(z|x,y) ‖ N(0, I)) against the
            reconstruction term (summed over pixels, i.e. a Gaussian likelihood with variance
            1/2 for ``"mse"``). Below 1 sharpens reconstructions, above 1 makes prior samples
            look more like the data.
    """

    beta: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta < 0:
            raise ConfigError(f"beta must be >= 0, got {self.beta}")


class VAEGenerator(EncoderGenerator):
    """Conditional variational autoencoder (reparameterised encoder, class-conditional decoder)."""

    config_class = VAEConfig
    variational = True
    centred_gaussian_prior = True


class VAEStep(AutoencoderStep):
    """Minimise reconstruction (summed over pixels) + beta * KL(q(z|x,y) ‖ N(0, I))."""

    def __call__(self, real_images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        _, out, penalties = self.autoencode(real_images, labels)
        rec = reconstruction_loss(out.reconstruction, real_images, c.reconstruction_loss, reduction="sum")
        kl = gaussian_kl(out.mean, out.logvar)
        self.update(rec + c.beta * kl + sum(penalties.values()))
        pixels = real_images[0].numel()
        return {"rec_loss": rec.detach() / pixels, "kl_loss": kl.detach(),
                **{k: v.detach() for k, v in penalties.items()}}


register_family("vae", VAEGenerator, step=VAEStep)
