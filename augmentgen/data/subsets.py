"""Seeded low-data subsets: class-balanced and long-tailed.

Every subset takes a prefix of each class's seeded permutation, so subsets drawn with the same
seed are nested: the 50-per-class subset is inside the 100-per-class one (the benchmark's
"twice the real data" arm), and :func:`per_class_subset` with an ``offset`` gives images that
neither contains (held-out real data from the training split).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import DataError
from .labelled import LabelledImages


def _per_class_indices(data: LabelledImages, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = data.labels.numpy()
    return [rng.permutation(np.flatnonzero(labels == c)) for c in range(data.num_classes)]


def per_class_subset(data: LabelledImages, counts: Sequence[int], *, seed: int = 0,
                     offset: Sequence[int] | int = 0) -> LabelledImages:
    """Images ``offset[c] .. offset[c] + counts[c]`` of class ``c``'s seeded permutation.

    With ``offset=0`` this is the subset :func:`balanced_subset` and :func:`long_tailed_subset`
    draw for the same seed and counts; ``counts = 2 * counts`` gives a superset of it, and
    ``offset = counts`` images outside it.

    Raises:
        DataError: when a class has fewer than ``offset[c] + counts[c]`` images.
    """
    per_class = _per_class_indices(data, seed)
    if len(counts) != len(per_class):
        raise DataError(f"{len(counts)} counts for {len(per_class)} classes")
    offsets = [offset] * len(counts) if isinstance(offset, int) else list(offset)
    short = [c for c, (idx, n, o) in enumerate(zip(per_class, counts, offsets)) if len(idx) < o + n]
    if short:
        raise DataError(f"class(es) {short} have too few images for counts {list(counts)} "
                        f"after offset {offsets}")
    keep = np.concatenate([idx[o: o + n] for idx, n, o in zip(per_class, counts, offsets)])
    return data.subset(torch.from_numpy(np.sort(keep)))


def balanced_subset(data: LabelledImages, per_class: int, *, seed: int = 0) -> LabelledImages:
    """At most ``per_class`` images of every class, drawn with ``seed``."""
    if per_class < 1:
        raise DataError(f"per_class must be at least 1, got {per_class}")
    keep = np.concatenate([idx[:per_class] for idx in _per_class_indices(data, seed)])
    return data.subset(torch.from_numpy(np.sort(keep)))


def long_tailed_counts(num_classes: int, max_per_class: int, imbalance: float) -> list[int]:
    """Exponential profile: class c keeps ``max * imbalance^(-c / (C - 1))`` (at least 1)."""
    if imbalance < 1:
        raise DataError(f"imbalance must be >= 1 (majority / minority count), got {imbalance}")
    exponents = np.arange(num_classes) / max(num_classes - 1, 1)
    return [max(1, int(round(max_per_class * imbalance ** -e))) for e in exponents]


def long_tailed_subset(data: LabelledImages, imbalance: float, *, max_per_class: int | None = None,
                       seed: int = 0) -> LabelledImages:
    """A long-tailed subset: class 0 keeps ``max_per_class`` images, the last ``imbalance`` times fewer."""
    per_class = _per_class_indices(data, seed)
    top = max_per_class or min(len(idx) for idx in per_class)
    counts = long_tailed_counts(data.num_classes, top, imbalance)
    short = [c for c, (idx, n) in enumerate(zip(per_class, counts)) if len(idx) < n]
    if short:
        raise DataError(f"class(es) {short} have fewer images than the long-tailed profile {counts} asks")
    keep = np.concatenate([idx[:n] for idx, n in zip(per_class, counts)])
    return data.subset(torch.from_numpy(np.sort(keep)))
