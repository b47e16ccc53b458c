"""The Accelerate trainer shared by every family; each family brings its own training step.

One concern per module: ``trainer`` (the loop), ``checkpoint`` (resumable checkpoints),
``run_folder`` (what a new, overwriting or resumed run may do with its output folder, and what a
resume must repeat), ``ema`` (the generator's moving average), ``transfer`` (starting from a
pretrained generator), ``budget`` (training to a time budget), ``snapshots`` (scoring snapshots
on the training images and keeping the best), ``speed`` (``optimizer_kernel``,
``channels_last``, ``compile``), ``interrupt`` (Ctrl-C: checkpoint, then stop), ``divergence``
(reading the losses, finding the first non-finite step), ``grids`` (sample grids),
``report`` (the summary printed before training), ``devices`` (device and multi-process
helpers) and ``config`` (:class:`TrainingConfig`).
"""

from ..models.step import TrainingStep
from .config import TrainingConfig, parse_duration
from .snapshots import TrainingDataScore
from .trainer import Trainer, TrainingInterrupted

__all__ = ["Trainer", "TrainingConfig", "TrainingDataScore", "TrainingInterrupted", "TrainingStep", "parse_duration"]
