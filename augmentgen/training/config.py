"""``TrainingConfig``: what the trainer needs that is not part of a model family."""

from __future__ import annotations

import dataclasses
from typing import Literal

from .._config import Config
from ..errors import ConfigError


@dataclasses.dataclass
class TrainingConfig(Config):
    """Settings of the one trainer, shared by every family.

    Args:
        steps (int, defaults to 2000): optimisation steps (one step = one batch).
        batch_size (int, defaults to 64): images per step and process.
        seed (int, defaults to 0): seeds the initialisation, the data order and the noise.
        mixed_precision (str, defaults to ``"no"``): ``"no"``, ``"bf16"`` or ``"fp16"`` (fp16 only
            acts on GPUs).
        ema_decay (float, defaults to 0.999): decay of the generator's exponential moving
            average; the saved generator is the EMA one. 0 disables EMA.
        checkpoint_every (int, defaults to 500): steps between resumable checkpoints (0: never).
        keep_checkpoints (int, defaults to 2): how many of the newest checkpoints to keep.
        sample_every (int, defaults to 500): steps between sample grids (0: only at the end).
        samples_per_class (int, defaults to 8): columns of the sample grid.
        log_every (int, defaults to 50): steps between logged loss values.
        log_with (str, optional): an Accelerate tracker (``"tensorboard"``, ``"wandb"``, ``"all"``).
        num_workers (int, defaults to 0): DataLoader workers when the trainer builds the loader.
        on_divergence (str, defaults to ``"stop"``): on a NaN/inf loss, ``"stop"`` with an error or
            ``"rollback"`` to the last checkpoint with half the learning rate.
    """

    steps: int = 2000
    batch_size: int = 64
    seed: int = 0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    sample_every: int = 500
    samples_per_class: int = 8
    log_every: int = 50
    log_with: str | None = None
    num_workers: int = 0
    on_divergence: Literal["stop", "rollback"] = "stop"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "samples_per_class", "log_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "sample_every", "num_workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
