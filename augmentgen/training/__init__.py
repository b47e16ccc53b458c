"""The Accelerate trainer shared by every family; each family brings its own training step.

One concern per module: ``trainer`` (the loop), ``checkpoint`` (resumable checkpoints),
``run_folder`` (what a new, overwriting or resumed run may do with its output folder), ``ema``
(the generator's moving average), ``transfer`` (starting from a pretrained generator) and
``config`` (:class:`TrainingConfig`).
"""

from ..models.step import TrainingStep
from .config import TrainingConfig
from .trainer import Trainer, TrainingInterrupted

__all__ = ["Trainer", "TrainingConfig", "TrainingInterrupted", "TrainingStep"]
