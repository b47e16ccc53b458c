"""The validation data of :func:`~augmentgen.metrics.downstream_gain`: a seeded, stratified
(train, validation) split of the training data, and stratified k folds of it, so that choices
are made on data carved from the training set, never on the test set.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import torch

from ..data.fingerprints import shared_images
from ..data.labelled import LabelledImages
from ..errors import ConfigError, DataError

#: The share of the test images that may be copies of training images before the test is refused:
#: real datasets hold a few duplicates across their splits (a warning names them); more is a mix-up.
MAX_TEST_COPIES = 0.1

T = TypeVar("T")

#: Decimals to which choices compare validation scores: scores equal to them are a tie, which every
#: choice gives to the simpler option. Accuracies are float32 means, and averaged over folds, so two
#: choices with the same number of correct images differ in their last bits (0.9299999833 and
#: 0.9299999952 for 93 of 100); below a millionth a difference in validation score means nothing.
SCORE_DECIMALS = 6


def comparable_score(score: float) -> float:
    """``score`` rounded to :data:`SCORE_DECIMALS`: what a choice between candidates compares, so
    that float noise never breaks a tie."""
    return round(float(score), SCORE_DECIMALS)


def best_candidate(candidates: Iterable[T], score: Callable[[T], float]) -> T:
    """The candidate with the highest validation ``score``; a tie (to :data:`SCORE_DECIMALS`)
    goes to the earliest, so order the candidates simplest first."""
    return max(candidates, key=lambda candidate: comparable_score(score(candidate)))


def beats(score: float, other: float) -> bool:
    """Whether validation ``score`` is above ``other``; a tie (to :data:`SCORE_DECIMALS`) is not."""
    return comparable_score(score) > comparable_score(other)


def check_held_out(train_data: LabelledImages, test_data: LabelledImages, *, test: str = "test_data",
                   warn: bool = True) -> None:
    """The test data holds out the training data: a :class:`DataError` where half the training
    images or more, or more than :data:`MAX_TEST_COPIES` of the test images, are in it as exact
    copies (the same data passed twice, or the split a subset was drawn from); with ``warn``, a
    warning for a few copies."""
    import warnings

    train_in_test, test_in_train = shared_images(train_data.images, test_data.images)
    copies, of_train = int(test_in_train.sum()), int(train_in_test.sum())
    if not copies:
        return
    said = (f"{copies} of the {len(test_data)} images of {test} are exact copies of training images "
            f"({of_train} of the {len(train_data)} training images are among them)")
    if copies > MAX_TEST_COPIES * len(test_data) or of_train >= len(train_data) / 2:
        raise DataError(f"{said}: a test on them measures what the classifiers memorised, not what they learnt. "
                        "Pass held-out images instead: a built-in dataset's test split is (augmentgen eval uses it "
                        "when --test-data is left out)")
    if warn:
        warnings.warn(f"{said}; their test figures are not held out", UserWarning, stacklevel=3)


def check_splittable(class_counts: Sequence[int], fraction: float = 0.2, class_names: Sequence[str] | None = None
                     ) -> None:
    """Whether :func:`validation_split` can split data with ``class_counts`` at ``fraction``, checked
    before anything trains: a fraction in (0, 1) (:class:`ConfigError`) and at least 2 images of
    every class, one to hold out and one to train on (:class:`DataError` naming the class)."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
        raise ConfigError(f"validation_fraction must be a number in (0, 1) (the share of each class held out to "
                          f"choose), got {fraction!r}; like validation_fraction=0.2")
    short = [k for k, count in enumerate(class_counts) if int(count) < 2]
    if short:
        k = short[0]
        name = class_names[k] if class_names else str(k)
        more = f" (and {len(short) - 1} more classes have fewer than 2)" if len(short) > 1 else ""
        raise DataError(f"the validation split needs at least 2 training images of every class, but class "
                        f"{name!r} has {int(class_counts[k])}{more}; pass more images of it (a larger per_class / --per-class), "
                        "or leave the class out of the data")


def _ranks_within_class(data: LabelledImages, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's seeded random rank among the rows of its class, and the class counts."""
    counts = torch.bincount(data.labels, minlength=data.num_classes)
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
    check_splittable(data.class_counts, fraction, data.class_names)
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


__all__ = ["MAX_TEST_COPIES", "SCORE_DECIMALS", "beats", "best_candidate", "check_held_out", "check_splittable",
           "comparable_score", "validation_folds", "validation_split"]
