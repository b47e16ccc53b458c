"""Within-class coverage: are a class's synthetic samples as spread out, and as new, as real data?

A generator can draw images that the classifier recognises and that sit close to the real data
(high class consistency and precision) while covering only part of each class: every sample of
a class is a small variation of a few modes, or of training images. These figures say so, class
by class, as ratios to what held-out real data of the same class gives (so about 1 is "as real
data", below 1 is "concentrated" or "memorised"):

* :func:`diversity_ratio`: median pairwise distance among a class's samples over the same median
  among the class's held-out real images. Identical samples give 0; samples shrunk by half
  around the class mean give 0.5.
* :func:`novelty_ratio`: median distance of a class's samples to their nearest training image
  of that class over the same median for held-out real images. Copies of the training set give
  0; new draws from the training distribution give about 1.
* :func:`coverage_report`: both ratios for a generator, in pixel space and on the penultimate
  layer of the :class:`~augmentgen.metrics.ReferenceClassifier`.

Inputs are features (N, D) or images (N, C, H, W) (flattened; uint8 images are first mapped to
[-1, 1]). Distances come from batched ``torch.cdist`` per class on the inputs' device, with no
Python loop over pairs; at most ``max_per_class`` rows per class and side (a seeded random
subset) enter the pairwise distances, so the cost per class is bounded.
"""

from __future__ import annotations

import math
import statistics

import torch

from .._deprecation import renamed_argument
from .._distances import median_pairwise_distance, nearest_distances
from ..data.labelled import LabelledImages, check_integer_labels
from ..errors import ConfigError, DataError
from ..models.base import ConditionalGenerator
from .classifier import EXTRACTOR_NAME, ReferenceClassifier, as_float_images, as_images_and_labels, features
from .scores import synthetic_set

_NAN = float("nan")


# --------------------------------------------------------------------------- input checks
def _check_rows(name: str, rows, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows`` (N, D) or (N, C, H, W), uint8 or float, and integer ``labels`` (N,)."""
    rows = torch.as_tensor(rows)
    if rows.ndim not in (2, 4):
        raise DataError(f"{name} must be features (N, D) or images (N, C, H, W), got shape {tuple(rows.shape)}")
    if rows.dtype != torch.uint8 and not rows.dtype.is_floating_point:
        raise DataError(f"{name} must be uint8 or float, got dtype {rows.dtype}")
    try:
        labels = check_integer_labels(labels)
    except DataError as error:
        raise DataError(f"{name} labels: {error}") from None
    if len(labels) != len(rows):
        raise DataError(f"{name} has {len(rows)} rows but {len(labels)} labels")
    return rows, labels


def _check_inputs(sides: dict, num_classes: int | None, max_per_class: int) -> tuple[dict, int]:
    """Validate every side (name -> (rows, labels)) against the first one and settle ``num_classes``."""
    if max_per_class < 2:
        raise ConfigError(f"max_per_class must be at least 2, got {max_per_class}")
    checked = {name: _check_rows(name, rows, labels) for name, (rows, labels) in sides.items()}
    (first, (rows0, _)), *others = checked.items()
    for name, (rows, _) in others:
        if rows.shape[1:] != rows0.shape[1:]:
            raise DataError(f"{name} rows are shaped {tuple(rows.shape[1:])} but {first} rows "
                            f"{tuple(rows0.shape[1:])}; compare features with features and images "
                            f"with images of one size")
    top = max((int(labels.max()) for _, labels in checked.values() if len(labels)), default=-1)
    if num_classes is None:
        if top < 0:
            raise DataError("every input is empty; pass num_classes to get a NaN per class")
        num_classes = top + 1
    elif num_classes < 1:
        raise ConfigError(f"num_classes must be positive, got {num_classes}")
    elif top >= num_classes:
        raise DataError(f"label {top} is out of range for num_classes={num_classes}")
    return checked, num_classes


# --------------------------------------------------------------------------- per-class groups
def _groups(rows: torch.Tensor, labels: torch.Tensor, num_classes: int, device: torch.device,
            max_per_class: int | None = None, seed: int = 0) -> list[torch.Tensor]:
    """Each class's rows as float (n_c, D) on ``device``; at most ``max_per_class`` of them.

    The subset is drawn by one seeded random key per row: rows are sorted by (label, key) in one
    pass and the first ``max_per_class`` of every class are kept, a uniform random subset that
    does not depend on the other classes' rows. Only the kept rows are converted to float.
    """
    labels = labels.cpu()
    counts = torch.bincount(labels, minlength=num_classes).tolist()
    if max_per_class is None or max(counts, default=0) <= max_per_class:
        order = torch.argsort(labels, stable=True)
    else:
        gen = torch.Generator().manual_seed(seed)
        keys = labels.double() + torch.rand(len(labels), generator=gen, dtype=torch.float64) * 0.5
        order = keys.argsort()
    groups, start = [], 0
    for count in counts:
        keep = count if max_per_class is None else min(count, max_per_class)
        index = order[start: start + keep].to(rows.device)
        groups.append(as_float_images(rows[index].to(device)).flatten(1))
        start += count
    return groups


def _summary(numerators: list, denominators: list) -> dict:
    """Per-class ratios (NaN where a class is missing on a side or its real-data figure is 0)
    and their median and mean over the classes that have one; one host sync for all classes."""
    present = [n for n in numerators if n is not None]
    missing = torch.full((2,), _NAN, dtype=torch.float64, device=present[0].device if present else None)
    pairs = [torch.stack([n, d]).double() if n is not None else missing
             for n, d in zip(numerators, denominators)]
    per_class = [n / d if d > 0 else _NAN for n, d in (torch.stack(pairs).tolist() if pairs else [])]
    finite = [r for r in per_class if not math.isnan(r)]
    return {"per_class": per_class,
            "median": statistics.median(finite) if finite else _NAN,
            "mean": statistics.fmean(finite) if finite else _NAN}


# --------------------------------------------------------------------------- the two ratios
def diversity_ratio(samples: torch.Tensor, sample_labels: torch.Tensor, reference: torch.Tensor,
                    reference_labels: torch.Tensor, *, num_classes: int | None = None,
                    max_per_class: int = 500, seed: int = 0) -> dict:
    """Per class: median pairwise distance among the samples over that among real images.

    For every class ``c``, the median Euclidean distance over the distinct pairs of class-``c``
    ``samples`` (no point paired with itself) divided by the same median over the class-``c``
    ``reference`` rows (held-out real images). 1: the samples are as spread out as real data;
    0.5: half as diverse (e.g. real data shrunk by half around the class mean); 0: every sample
    of the class is the same.

    Args:
        samples: synthetic features (N, D) or images (N, C, H, W); uint8 images are mapped to
            [-1, 1], float images are taken to be in [-1, 1] already.
        sample_labels: their classes (N,).
        reference: held-out real rows, shaped like ``samples`` apart from the first dimension.
        reference_labels: their classes (M,).
        num_classes: defaults to the largest label on either side + 1.
        max_per_class: at most this many rows per class and side enter the pairwise distances
            (a random subset seeded by ``seed``): memory and time grow with its square.
        seed: seeds the subsets.

    Returns:
        ``{"per_class": [ratio per class], "median": median over classes, "mean": mean over
        classes}``. A class with fewer than 2 rows on either side, or whose real rows are all
        the same (a real-data median of 0), is NaN and left out of the median and the mean.
        Computed on ``samples``' device.
    """
    sides, num_classes = _check_inputs({"samples": (samples, sample_labels),
                                        "reference": (reference, reference_labels)},
                                       num_classes, max_per_class)
    device = sides["samples"][0].device
    synthetic, real = (_groups(*sides[name], num_classes, device, max_per_class, seed)
                       for name in ("samples", "reference"))
    numerators, denominators = [], []
    for fake_c, real_c in zip(synthetic, real):
        enough = len(fake_c) >= 2 and len(real_c) >= 2
        numerators.append(median_pairwise_distance(fake_c) if enough else None)
        denominators.append(median_pairwise_distance(real_c) if enough else None)
    return _summary(numerators, denominators)


def novelty_ratio(samples: torch.Tensor, sample_labels: torch.Tensor, train: torch.Tensor,
                  train_labels: torch.Tensor, reference: torch.Tensor, reference_labels: torch.Tensor,
                  *, num_classes: int | None = None, max_per_class: int = 500, seed: int = 0,
                  chunk: int = 2048) -> dict:
    """Per class: how far samples lie from the training images, next to held-out real images.

    For every class ``c``, the median over the class-``c`` ``samples`` of the distance to the
    nearest class-``c`` ``train`` row, divided by the same median over the class-``c``
    ``reference`` rows (held-out real images, never trained on). 0: the samples are copies of
    training images; about 1: they are as new as fresh real images of the class; above 1: they
    lie farther from the training data than real images do (often off the data altogether).

    Args:
        samples: synthetic features (N, D) or images (N, C, H, W); uint8 images are mapped to
            [-1, 1], float images are taken to be in [-1, 1] already.
        sample_labels: their classes (N,).
        train: the generator's training rows, shaped like ``samples`` apart from the first
            dimension; every one of them is searched (the nearest-neighbour distance depends
            on how many there are, and a copy of any of them must give 0).
        train_labels: their classes.
        reference: held-out real rows, shaped like ``samples`` apart from the first dimension.
        reference_labels: their classes.
        num_classes: defaults to the largest label on any side + 1.
        max_per_class: at most this many ``samples`` and ``reference`` rows per class (a random
            subset seeded by ``seed``) are looked up.
        seed: seeds the subsets.
        chunk: query rows per ``torch.cdist`` call (memory: ``chunk`` x the class's training rows).

    Returns:
        ``{"per_class": [ratio per class], "median": median over classes, "mean": mean over
        classes}``. A class with no row on some side, or whose held-out rows all coincide with
        training rows (a real-data median of 0), is NaN and left out of the median and the mean.
        Computed on ``samples``' device.
    """
    if chunk < 1:
        raise ConfigError(f"chunk must be positive, got {chunk}")
    sides, num_classes = _check_inputs({"samples": (samples, sample_labels), "train": (train, train_labels),
                                        "reference": (reference, reference_labels)},
                                       num_classes, max_per_class)
    device = sides["samples"][0].device
    synthetic, real = (_groups(*sides[name], num_classes, device, max_per_class, seed)
                       for name in ("samples", "reference"))
    bank = _groups(*sides["train"], num_classes, device)
    numerators, denominators = [], []
    for fake_c, train_c, real_c in zip(synthetic, bank, real):
        enough = len(fake_c) >= 1 and len(train_c) >= 1 and len(real_c) >= 1
        numerators.append(nearest_distances(fake_c, train_c, chunk=chunk).median() if enough else None)
        denominators.append(nearest_distances(real_c, train_c, chunk=chunk).median() if enough else None)
    return _summary(numerators, denominators)


# --------------------------------------------------------------------------- for a generator
@renamed_argument("n_per_class", "per_class")
def coverage_report(generator: ConditionalGenerator, classifier: ReferenceClassifier, train_data,
                    heldout_data, *, per_class: int = 200, seed: int = 0,
                    max_per_class: int = 500, synthetic: LabelledImages | None = None) -> dict:
    """Diversity and novelty ratios of ``generator``'s samples, in pixel and feature space.

    ``per_class`` images per class are drawn from ``generator`` (seeded by ``seed``) and
    compared, class by class, with ``train_data`` (the data the generator was trained on) and
    ``heldout_data`` (real images of the same classes it never saw), both :class:`LabelledImages`
    or ``(images uint8, labels)``. Pixel space is the flattened images in [-1, 1]; feature space
    is ``classifier``'s penultimate layer (:func:`~augmentgen.metrics.features`), the
    extractor of every other feature-space figure.

    Args:
        generator: the conditional generator to check.
        classifier: a :class:`ReferenceClassifier` trained on the real training data.
        train_data: the generator's training data.
        heldout_data: real images of the same classes, not in ``train_data``.
        per_class: synthetic images per class (at least 2).
        seed: seeds the generator's noise and the subsets.
        max_per_class: see :func:`diversity_ratio`.
        synthetic: the images to measure instead of sampling them: ``per_class`` images of every
            class of the generator (see :func:`~augmentgen.metrics.scores.synthetic_set`), e.g. one
            set shared by several metrics.

    Returns:
        ``{"diversity_pixels", "diversity_features", "novelty_pixels", "novelty_features"}``,
        each as :func:`diversity_ratio` / :func:`novelty_ratio` return it (a ratio per class
        and their median and mean), with ``per_class``, ``seed``, ``max_per_class`` and
        ``extractor`` (the feature space's name). Computed on ``classifier``'s device.
    """
    if isinstance(per_class, bool) or per_class < 2:
        raise ConfigError(f"per_class must be at least 2 to measure diversity, got {per_class!r}")
    train_images, train_labels, train_names = as_images_and_labels(train_data)
    held_images, held_labels, held_names = as_images_and_labels(heldout_data)
    for name, images, names in (("train_data", train_images, train_names),
                                ("heldout_data", held_images, held_names)):
        if tuple(images.shape[1:]) != tuple(generator.image_shape):
            raise DataError(f"the generator makes {tuple(generator.image_shape)} images but {name} "
                            f"holds {tuple(images.shape[1:])}")
        if names is not None and len(names) != generator.num_classes:
            raise DataError(f"the generator has {generator.num_classes} classes, {name} {len(names)}")
    num_classes = generator.num_classes
    for name, labels in (("train_data", train_labels), ("heldout_data", held_labels)):
        if int(labels.max()) >= num_classes:
            raise DataError(f"{name} has label {int(labels.max())}, out of range for the "
                            f"generator's {num_classes} classes")
    in_channels = getattr(classifier, "in_channels", generator.image_shape[0])
    if in_channels != generator.image_shape[0]:
        raise DataError(f"the classifier takes {in_channels}-channel images, the generator makes "
                        f"{generator.image_shape[0]}")

    synthetic = synthetic_set(generator, per_class, seed=seed, synthetic=synthetic, call="coverage_report")
    device = next(classifier.parameters()).device
    spaces = {"pixels": lambda images: images.to(device),
              "features": lambda images: features(classifier, images)}
    common = dict(num_classes=num_classes, max_per_class=max_per_class, seed=seed)
    report = {}
    for space, embed in spaces.items():
        fake, train, held = embed(synthetic.images), embed(train_images), embed(held_images)
        fake_labels = synthetic.labels.to(device)
        report[f"diversity_{space}"] = diversity_ratio(fake, fake_labels, held, held_labels, **common)
        report[f"novelty_{space}"] = novelty_ratio(fake, fake_labels, train, train_labels, held,
                                                   held_labels, **common)
    return {"diversity_pixels": report["diversity_pixels"],
            "diversity_features": report["diversity_features"],
            "novelty_pixels": report["novelty_pixels"],
            "novelty_features": report["novelty_features"],
            "per_class": per_class, "seed": seed, "max_per_class": max_per_class,
            "extractor": EXTRACTOR_NAME}


__all__ = ["coverage_report", "diversity_ratio", "novelty_ratio"]
