"""The contract between the trainer and a family: :class:`TrainingStep`.

A family registers its step with its generator (``register_family(name, step=...)`` in
:mod:`augmentgen.models.registry`); the trainer asks the registry for it and never switches on
the family's name.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from accelerate import Accelerator

from .base import ConditionalGenerator


class TrainingStep:
    """One family's optimisation step. The trainer owns everything else (loop, precision,
    checkpoints, EMA, logging).

    Subclasses build their auxiliary modules (discriminators, encoders) and optimizers in
    :meth:`prepare`, pass them through ``accelerator.prepare``, and implement :meth:`__call__`.
    After ``prepare``, ``self.generator`` is the prepared (possibly DDP-wrapped) generator.
    """

    def __init__(self, generator: ConditionalGenerator, accelerator: Accelerator):
        self.generator = generator
        self.config = generator.config
        self.accelerator = accelerator

    def prepare(self) -> None:
        raise NotImplementedError

    def __call__(self, real_images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """One update on a batch (images float in [-1, 1]); returns detached scalar losses."""
        raise NotImplementedError

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """Every optimizer, so the trainer can lower learning rates on a rollback."""
        return [v for v in vars(self).values() if isinstance(v, torch.optim.Optimizer)]

    def finish(self, generator: ConditionalGenerator, batches: Iterable) -> None:
        """Called once after the last step with the final (EMA) generator; default: nothing."""
