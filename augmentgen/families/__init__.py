"""The built-in model families, one module each: config, networks, generator and training step.

Importing this package registers them by name (``cgan`` with its ``wgan-gp`` preset, ``aae``,
``vae``, ``ae``, ``aegan``, ``ddpm`` with its ``ddpm-large`` preset; ``ddpm`` imports
``diffusers`` only when a model is built). A new family is one more module here that ends with
``@register_family(name, step=...)``; families never import one another (shared layers live in
:mod:`augmentgen.models`).
"""

from . import aae, ae, aegan, ddpm, gan, vae  # noqa: F401  (each module registers its family)
from .aae import AAEConfig, AAEGenerator
from .ae import AEConfig, AEGenerator
from .aegan import AEGANConfig, AEGANGenerator
from .ddpm import DDPMConfig, DDPMGenerator
from .gan import CGANConfig, CGANGenerator
from .vae import VAEConfig, VAEGenerator

__all__ = [
    "AAEConfig",
    "AAEGenerator",
    "AEConfig",
    "AEGANConfig",
    "AEGANGenerator",
    "AEGenerator",
    "CGANConfig",
    "CGANGenerator",
    "DDPMConfig",
    "DDPMGenerator",
    "VAEConfig",
    "VAEGenerator",
]
