"""Model families. Importing this package registers every built-in family by name."""

from . import (  # noqa: F401  (the encoder families)
    aae,
    ae,
    aegan,
    gan,  # noqa: F401  (registers "cgan" and the "wgan-gp" preset)
    vae,
)
from .base import ConditionalGenerator, GeneratorConfig
from .registry import (
    available_models,
    build_config,
    build_generator,
    config_from_dict,
    config_to_dict,
    generator_class,
    register_family,
    register_preset,
)

__all__ = [
    "ConditionalGenerator",
    "GeneratorConfig",
    "available_models",
    "build_config",
    "build_generator",
    "config_from_dict",
    "config_to_dict",
    "generator_class",
    "register_family",
    "register_preset",
]
