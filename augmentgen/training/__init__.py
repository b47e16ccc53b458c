"""The Accelerate trainer shared by every family, and each family's training step."""

from .config import TrainingConfig
from .step import TrainingStep, register_step
from .trainer import Trainer

__all__ = ["Trainer", "TrainingConfig", "TrainingStep", "register_step"]
