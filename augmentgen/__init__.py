"""augmentgen: class-conditional generators for generative data augmentation.

Train a generator on a small labelled dataset, then mix its samples into any training pipeline.
"""

__version__ = "0.1.0"

from .api import train
from .data import LabelledImages, load_data
from .errors import AugmentgenError, CheckpointError, ConfigError, DataError, TrainingDivergedError
from .hub import from_pretrained, save_pretrained
from .models import ConditionalGenerator, available_models, build_config
from .training import Trainer, TrainingConfig

__all__ = [
    "AugmentgenError",
    "CheckpointError",
    "ConditionalGenerator",
    "ConfigError",
    "DataError",
    "LabelledImages",
    "Trainer",
    "TrainingConfig",
    "TrainingDivergedError",
    "available_models",
    "build_config",
    "from_pretrained",
    "load_data",
    "save_pretrained",
    "train",
]
