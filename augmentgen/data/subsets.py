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

from .._seeds import check_seed
from ..errors import ConfigError, DataError
from .labelled import LabelledImages


def _per_class_indices(data: LabelledImages, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(check_seed(seed, use="it seeds the subset draws"))
    labels = data.labels.numpy()
    return [rng.permutation(np.flatnonzero(labels == c)) for c in range(data.num_classes)]


def _check_count(value, what: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _short_classes(data: LabelledImages, per_class: list[np.ndarray], wanted: Sequence[int]) -> str:
    """"class 8 ('Bag') has 3, ..." for the classes with fewer images than ``wanted`` (at most 5)."""
    short = [f"class {c} ({data.class_names[c]!r}) has {len(idx)}"
             for c, (idx, n) in enumerate(zip(per_class, wanted)) if len(idx) < n]
    return ", ".join(short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")


def per_class_subset(data: LabelledImages, counts: Sequence[int], *, seed: int = 0,
                     offset: Sequence[int] | int = 0) -> LabelledImages:
    """Images ``offset[c] .. offset[c] + counts[c]`` of class ``c``'s seeded permutation.

    With ``offset=0`` this is the subset :func:`balanced_subset` and :func:`long_tailed_subset`
    draw for the same seed and counts; ``counts = 2 * counts`` gives a superset of it, and
    ``offset = counts`` images outside it.

    Raises:
        ConfigError: a count below 1 or an offset below 0.
        DataError: when a class has fewer than ``offset[c] + counts[c]`` images (naming it and
            its count).
    """
    per_class = _per_class_indices(data, seed)
    if len(counts) != len(per_class):
        raise DataError(f"{len(counts)} counts for {len(per_class)} classes")
    counts = [_check_count(n, f"counts[{c}]") for c, n in enumerate(counts)]
    offsets = [offset] * len(counts) if isinstance(offset, (int, np.integer)) else list(offset)
    offsets = [_check_count(o, f"offset[{c}]", minimum=0) for c, o in enumerate(offsets)]
    wanted = [o + n for n, o in zip(counts, offsets)]
    if any(len(idx) < n for idx, n in zip(per_class, wanted)):
        raise DataError(f"too few images for counts {counts} after offset {offsets}: "
                        f"{_short_classes(data, per_class, wanted)}; lower the counts or the offset")
    keep = np.concatenate([idx[o: o + n] for idx, n, o in zip(per_class, counts, offsets)])
    return data.subset(torch.from_numpy(np.sort(keep)))


def balanced_subset(data: LabelledImages, per_class: int, *, seed: int = 0) -> LabelledImages:
    """Exactly ``per_class`` images of every class, drawn with ``seed``.

    Raises:
        ConfigError: ``per_class`` below 1.
        DataError: a class has fewer than ``per_class`` images (the subset would silently be
            imbalanced and smaller than asked); the message names each such class and its count.
    """
    per_class = _check_count(per_class, "per_class")
    indices = _per_class_indices(data, seed)
    if any(len(idx) < per_class for idx in indices):
        smallest = min(len(idx) for idx in indices)
        raise DataError(
            f"per_class={per_class} asks for more images than some classes have: "
            f"{_short_classes(data, indices, [per_class] * len(indices))}; use per_class={smallest} "
            "or less, or imbalance=... for a long-tailed subset")
    keep = np.concatenate([idx[:per_class] for idx in indices])
    return data.subset(torch.from_numpy(np.sort(keep)))


def long_tailed_counts(num_classes: int, max_per_class: int, imbalance: float) -> list[int]:
    """Exponential profile: class c keeps ``max * imbalance^(-c / (C - 1))`` (at least 1)."""
    max_per_class = _check_count(max_per_class, "max_per_class")
    if (isinstance(imbalance, bool) or not isinstance(imbalance, (int, float, np.number))
            or not imbalance >= 1 or not np.isfinite(imbalance)):  # also refuses NaN
        raise DataError(f"imbalance must be a number >= 1 (majority / minority count), got {imbalance!r}; like "
                        "imbalance=10 (the commonest class keeps 10x the images of the rarest)")
    exponents = np.arange(num_classes) / max(num_classes - 1, 1)
    return [max(1, int(round(max_per_class * imbalance ** -e))) for e in exponents]


def long_tailed_subset(data: LabelledImages, imbalance: float, *, max_per_class: int | None = None,
                       seed: int = 0) -> LabelledImages:
    """A long-tailed subset: class 0 keeps ``max_per_class`` images, the last ``imbalance`` times fewer.

    Raises:
        DataError: a class has fewer images than the profile asks (naming it and its count).
    """
    per_class = _per_class_indices(data, seed)
    top = max_per_class if max_per_class is not None else min(len(idx) for idx in per_class)
    counts = long_tailed_counts(data.num_classes, top, imbalance)
    if any(len(idx) < n for idx, n in zip(per_class, counts)):
        raise DataError(f"the long-tailed profile {counts} asks for more images than some classes have: "
                        f"{_short_classes(data, per_class, counts)}; lower max_per_class (per_class)")
    keep = np.concatenate([idx[:n] for idx, n in zip(per_class, counts)])
    return data.subset(torch.from_numpy(np.sort(keep)))
