"""The contract between the trainer and a family: :class:`TrainingStep`.

A family registers its step with its generator (``register_family(name, step=...)`` in
:mod:`augmentgen.models.registry`); the trainer asks the registry for it and never switches on
the family's name. Whatever the trainer needs to know of a family it asks the step, through
the hooks below; each has a default, so a new family overrides only ``prepare`` and
``__call__``:

- :meth:`TrainingStep.check_training_options`: refuse loop settings the family cannot train
  with (default: none);
- :meth:`TrainingStep.freezable_blocks`: the pretrained layers ``freeze_discriminator_layers``
  counts (default: none, so freezing is refused);
- :meth:`TrainingStep.compilable_modules`: what ``compile`` wraps (default: the generator);
- :meth:`TrainingStep.trained_generator`: the plain generator the EMA follows and the trainer
  saves (default: ``self.generator`` unwrapped).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn

from .base import ConditionalGenerator, GeneratorConfig

#: Conv blocks, first to last; each a list of ``(state-dict name, parameter)`` pairs.
Blocks = list[list[tuple[str, nn.Parameter]]]


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

    # ------------------------------------------------------------------ what the trainer asks
    @classmethod
    def check_training_options(cls, config: GeneratorConfig, training_config: Any) -> None:
        """Raise :class:`~augmentgen.errors.ConfigError` for loop settings (a
        :class:`~augmentgen.training.TrainingConfig`, whose layer this one may not import) that
        this family cannot train with under ``config``. Called first in ``Trainer.fit``,
        before anything is built or written, so a class method. Default: every setting works."""

    @classmethod
    def freezable_blocks(cls, generator: ConditionalGenerator) -> Blocks | None:
        """The pretrained blocks of ``generator`` that ``freeze_discriminator_layers`` freezes
        (FreezeD), first to last, or ``None`` when a saved generator of this family holds no
        network that plays the discriminator's part (then freezing is refused). Called on the
        fresh generator before the step is built: DDP decides what to synchronise when
        ``prepare`` wraps it. Default: ``None``."""
        return None

    def compilable_modules(self) -> dict[str, nn.Module]:
        """The modules ``TrainingConfig.compile`` wraps in ``torch.compile``, by the attribute
        this step calls them through; the trainer replaces each attribute, after :meth:`prepare`,
        with the compiled module. Modules a step differentiates twice (penalties through a
        ``plain_*`` copy) must not be listed: compiled graphs do not support a double backward.
        Default: the generator."""
        return {"generator": self.generator}

    def trained_generator(self) -> ConditionalGenerator:
        """The plain (unwrapped, uncompiled) generator this step trains: the module the EMA
        follows and the trainer saves. Called once, after :meth:`prepare`. Default: ``self.generator``
        unwrapped."""
        return self.accelerator.unwrap_model(self.generator)
