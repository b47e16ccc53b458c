"""The generator interface: what every family implements and everything above it relies on.

- :class:`ConditionalGenerator` / :class:`GeneratorConfig` (``base``): sampling, labels, shapes;
  :class:`sampling_progress`, a progress bar that sampling advances.
- :class:`TrainingStep` (``step``): one family's optimisation step, driven by the trainer.
- the registry (``registry``): family name -> generator class and training step; presets.
- shared pieces the families build on: ``blocks``, ``encoder``, ``losses``, ``regularizers``,
  ``diffaugment``.

The families themselves live in :mod:`augmentgen.families`, one module each; importing
``augmentgen`` registers them.
"""

from .base import ConditionalGenerator, GeneratorConfig, sampling_progress
from .registry import (
    available_models,
    build_config,
    build_generator,
    config_from_dict,
    config_to_dict,
    generator_class,
    register_family,
    register_preset,
    step_class,
)
from .step import TrainingStep

__all__ = [
    "ConditionalGenerator",
    "GeneratorConfig",
    "TrainingStep",
    "available_models",
    "build_config",
    "build_generator",
    "config_from_dict",
    "config_to_dict",
    "generator_class",
    "register_family",
    "register_preset",
    "sampling_progress",
    "step_class",
]
