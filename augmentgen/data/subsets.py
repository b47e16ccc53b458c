"""Seeded low-data subsets: class-balanced and long-tailed."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from .labelled import LabelledImages


def _per_class_indices(data: LabelledImages, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = data.labels.numpy()
    return [rng.permutation(np.flatnonzero(labels == c)) for c in range(data.num_classes)]


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
