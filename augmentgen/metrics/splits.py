"""The validation data of :func:`~augmentgen.metrics.downstream_gain`: a seeded, stratified
(train, validation) split of the training data, and stratified k folds of it, so that choices
are made on data carved from the training set, never on the test set.
"""

from __future__ import annotations

import torch

from ..data.labelled import LabelledImages
from ..errors import ConfigError, DataError


def _ranks_within_class(data: LabelledImages, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's seeded random rank among the rows of its class, and the class counts."""
    counts = torch.bincount(data.labels, minlength=data.num_classes)
    if int(counts.min()) < 2:
        raise DataError("every class needs at least 2 images to carve a validation split")
    gen = torch.Generator().manual_seed(seed)
    # Rank rows randomly within their class: sort by (label, random key) in one pass.
    keys = data.labels.double() + torch.rand(len(data), generator=gen, dtype=torch.float64) * 0.5
    order = keys.argsort()
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(data)) - starts.repeat_interleave(counts)
    return rank, counts


def _split(data: LabelledImages, is_val: torch.Tensor) -> tuple[LabelledImages, LabelledImages]:
    return data.subset(torch.nonzero(~is_val).flatten()), data.subset(torch.nonzero(is_val).flatten())


def validation_split(data: LabelledImages, fraction: float = 0.2, *, seed: int = 0
                     ) -> tuple[LabelledImages, LabelledImages]:
    """A seeded, stratified (train, validation) split: ``fraction`` of every class (at least one
    image, and at least one left for training) goes to validation."""
    if not 0 < fraction < 1:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction}")
    rank, counts = _ranks_within_class(data, seed)
    n_val = (counts.double() * fraction).round().long().clamp(1, None).minimum(counts - 1)
    return _split(data, rank < n_val[data.labels])


def validation_folds(data: LabelledImages, folds: int = 5, *, seed: int = 0
                     ) -> list[tuple[LabelledImages, LabelledImages]]:
    """Seeded, stratified k-fold (train, validation) pairs: every image is in exactly one
    validation fold, and every class keeps at least one training image in every fold.

    On a few images per class one validation split is a coin toss (10 per class leave 2 per class
    to score on); averaging a choice over the folds scores it on every image."""
    if folds < 2:
        raise ConfigError(f"validation folds must be at least 2, got {folds}; use validation_split for one")
    rank, counts = _ranks_within_class(data, seed)
    if int(counts.min()) < folds:
        raise DataError(f"{folds} validation folds need at least {folds} images of every class, the "
                        f"smallest has {int(counts.min())}; use fewer folds")
    fold_of = rank % folds  # ranks are a random order within the class, so this deals them out evenly
    return [_split(data, fold_of == k) for k in range(folds)]


__all__ = ["validation_folds", "validation_split"]
