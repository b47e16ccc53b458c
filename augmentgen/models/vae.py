"""Conditional VAE (Kingma & Welling 2014; Sohn et al. 2015).

Encoder q(z | x, y) gives a diagonal Gaussian; the decoder p(x | z, y) gets the class through
conditional batch norm and an embedding. Training maximises the ELBO with a ``beta`` weight on
the KL term (Higgins et al. 2017); sampling draws z ~ N(0, I) and decodes with the label.
"""

from __future__ import annotations

import dataclasses

from ..errors import ConfigError
from ._encoder import EncoderFamilyConfig, EncoderGenerator
from .registry import register_family


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


@register_family("vae")
class VAEGenerator(EncoderGenerator):
    """Conditional variational autoencoder (reparameterised encoder, class-conditional decoder)."""

    config_class = VAEConfig
    variational = True
