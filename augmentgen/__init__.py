"""augmentgen: class-conditional generators for generative data augmentation.

Train a generator on a small labelled dataset, mix its samples into any training pipeline, and
measure whether they help::

    import augmentgen

    generator = augmentgen.train("aae", "fashion-mnist-small", "runs/aae")
    mix = augmentgen.SyntheticMix(generator, ratio=0.25, output_range=(0, 1))
    images, labels = mix(images, labels)          # in your loop: B real rows + round(0.25 * B) synthetic
    report = augmentgen.evaluate_generator(generator, train_data, test_data)
"""

from __future__ import annotations

from typing import Any

from . import families  # noqa: F401  (registers the built-in model families by name)
from ._version import __version__ as __version__
from .api import train
from .data import LabelledImages, load_data
from .errors import (
    AugmentgenError,
    CheckpointError,
    ConfigError,
    DataError,
    TrainingDivergedError,
    UnknownFamilyError,
)
from .hub import from_pretrained, list_pretrained, push_to_hub, save_pretrained
from .metrics.report import evaluate_generator
from .mixing import (
    GeneratorSource,
    PixelMixSource,
    PoolSource,
    RealRowSource,
    SyntheticMix,
    SyntheticPool,
    TeacherLabels,
    VariationSource,
    augment_loader,
    weighted_cross_entropy,
    write_samples,
    write_shards,
    write_variation_shards,
)
from .models import ConditionalGenerator, available_models, build_config
from .training import Trainer, TrainingConfig

# Hugging Face datasets helpers are imported on first use: `datasets` is slow to import.
_LAZY = {"synthesize": "augmentgen.mixing.hf", "synthesize_iterable": "augmentgen.mixing.hf",
         "synthesize_variations": "augmentgen.mixing.hf"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'augmentgen' has no attribute {name!r}")


__all__ = [
    "AugmentgenError",
    "CheckpointError",
    "ConditionalGenerator",
    "ConfigError",
    "DataError",
    "GeneratorSource",
    "LabelledImages",
    "PixelMixSource",
    "PoolSource",
    "RealRowSource",
    "SyntheticMix",
    "SyntheticPool",
    "TeacherLabels",
    "Trainer",
    "TrainingConfig",
    "TrainingDivergedError",
    "UnknownFamilyError",
    "VariationSource",
    "augment_loader",
    "available_models",
    "build_config",
    "evaluate_generator",
    "from_pretrained",
    "list_pretrained",
    "load_data",
    "push_to_hub",
    "save_pretrained",
    "synthesize",
    "synthesize_iterable",
    "synthesize_variations",
    "train",
    "weighted_cross_entropy",
    "write_samples",
    "write_shards",
    "write_variation_shards",
]
