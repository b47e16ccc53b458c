"""The Accelerate trainer shared by every family; each family brings its own training step."""

from ..models.step import TrainingStep
from .config import TrainingConfig
from .trainer import Trainer

__all__ = ["Trainer", "TrainingConfig", "TrainingStep"]
