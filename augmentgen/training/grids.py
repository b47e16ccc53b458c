"""The sample grids a run writes (``samples/step-*.png`` and ``samples.png``), and the
per-class mode-collapse warning read off them."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch

from .._images import save_sample_grid
from ..models.base import ConditionalGenerator


def write_grid(generator: ConditionalGenerator, path: Path, *, per_class: int, seed: int,
               step: int) -> Path:
    """A grid of ``per_class`` seeded samples of every class at ``path``; warns (with
    the run's ``step``) when a class's samples are nearly identical."""
    g = torch.Generator(device=generator.device).manual_seed(seed)
    images, labels = generator.sample_per_class(per_class, generator=g)
    warn_if_collapsed(images, labels, generator.class_names, step)
    return save_sample_grid(images, per_class, path)


def warn_if_collapsed(images: torch.Tensor, labels: torch.Tensor, names: list[str], step: int) -> None:
    """Warn when all samples of a class are nearly identical (per-class mode collapse)."""
    count = int((labels == labels[0]).sum())  # images of each class
    if count < 2:
        return
    by_class = images.reshape(-1, count, images[0].numel())  # (classes, n, pixels)
    spread = by_class.std(dim=1).mean(dim=1)  # (classes,)
    collapsed = (spread < 0.02).nonzero().flatten().tolist()
    if collapsed and not math.isnan(float(spread.sum())):
        warnings.warn(
            f"step {step}: samples of class(es) {[names[i] for i in collapsed]} are nearly identical "
            "(per-class mode collapse); try a larger dataset, stronger DiffAugment or a lower learning rate",
            stacklevel=3,  # the trainer's line that wrote the grid
        )
