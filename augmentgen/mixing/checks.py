"""The input checks of :class:`~augmentgen.mixing.SyntheticMix`: options, sources and batches.

Each check raises :class:`~augmentgen.errors.ConfigError` (options) or
:class:`~augmentgen.errors.DataError` (batches) with a message that names the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from .._labels import check_class_indices, check_one_label_per_image
from ..errors import ConfigError, DataError
from ..models.base import ConditionalGenerator, Temperature
from .filter import TeacherFilter, is_finite_number
from .free_sources import FreeSource, GeneratorSource, PoolSource
from .pool import SyntheticPool
from .sources import AnchoredSource, PixelMixSource, RealRowSource, VariationSource
from .teacher import TeacherLabels
from .value_range import check_mean_std, check_output_range

__all__ = ["check_batch", "check_batch_labels", "check_output_range", "check_source", "check_teacher",
           "infer_output_range", "parse_balance"]

Balance = None | Literal["uniform", "inverse-frequency"] | Mapping[int | str, float]

#: How the mixer takes labels, for a refusal of their form.
_BATCH_LABELS = "mix before one-hot encoding, CutMix or MixUp"

#: The row sources augmentgen ships, as an error message names them.
SOURCE_CLASSES = ("GeneratorSource", "PoolSource", "VariationSource", "RealRowSource", "PixelMixSource")


def check_source(source, *, mode: str, ratio: float, mean, std, balance: Balance, temperature: Temperature,
                 autocast: bool, compile: bool, prefetch: bool, filter_threshold: float | None,
                 min_acceptance: float) -> FreeSource | AnchoredSource:
    """Check what a mixer draws from and its mode; the row source (a bare generator or pool wrapped)."""
    if not isinstance(source, (ConditionalGenerator, SyntheticPool, FreeSource, AnchoredSource)):
        raise ConfigError(f"source must be a ConditionalGenerator, a SyntheticPool or a row source "
                          f"({', '.join(SOURCE_CLASSES)}, or a subclass of FreeSource or AnchoredSource), "
                          f"got {type(source).__name__}")
    if mode not in ("replace", "append"):
        raise ConfigError(f"mode must be 'replace' or 'append', got {mode!r}")
    if not _is_scalar(ratio):
        raise ConfigError(f"ratio must be a number (synthetic rows per real row), got {ratio!r} of type "
                          f"{type(ratio).__name__}: give e.g. ratio=0.5")
    if not (ratio >= 0 and not (mode == "replace" and ratio > 1)):
        raise ConfigError(f"ratio must be in [0, 1] for mode='replace' (>= 0 for 'append'), got {ratio!r}")
    if not math.isfinite(ratio):  # append: round(ratio * B) rows
        raise ConfigError(f"ratio must be a finite number (round(ratio * B) synthetic rows are appended to a "
                          f"batch of B real rows), got {ratio!r}: give e.g. ratio=0.5 or ratio=2")
    check_mean_std(mean, std)
    if isinstance(source, (SyntheticPool, PoolSource)):
        check_pool_options(temperature=temperature, autocast=autocast, compile=compile, prefetch=prefetch,
                           filter_threshold=filter_threshold, min_acceptance=min_acceptance)
    elif isinstance(source, AnchoredSource):
        check_anchored_options(source, mode=mode, balance=balance, temperature=temperature, autocast=autocast,
                               compile=compile, prefetch=prefetch, filter_threshold=filter_threshold)
    elif isinstance(source, FreeSource):
        check_free_source_options(source, temperature=temperature, autocast=autocast, compile=compile)
    if prefetch and not (balance == "uniform" or isinstance(balance, Mapping)):
        raise ConfigError("prefetch=True needs balance='uniform' or a {class: weight} dict: "
                          "the next batch's classes must be known before it arrives")
    if isinstance(source, ConditionalGenerator):
        return GeneratorSource(source, temperature, autocast=autocast, compile=compile)
    return PoolSource(source) if isinstance(source, SyntheticPool) else source


def check_free_source_options(source: FreeSource, *, temperature: Temperature, autocast: bool,
                              compile: bool) -> None:
    """The sampling options belong to a free source given as one, not to the mixer."""
    if not _is_one(temperature):
        raise ConfigError(f"temperature belongs to the source: {type(source).__name__} samples its own rows. "
                          "Give it there (GeneratorSource(generator, temperature=...)), or pass the bare "
                          "generator with SyntheticMix(generator, temperature=...)")
    for name, value in (("autocast", autocast), ("compile", compile)):
        if value:
            raise ConfigError(f"{name}=True belongs to the source: {type(source).__name__} samples its own "
                              f"rows. Give it there (GeneratorSource(generator, {name}=True)), or pass the "
                              f"bare generator with SyntheticMix(generator, {name}=True)")
    _check_source_shape(source)


def _is_scalar(value: Any) -> bool:
    """A real scalar: a Python or numpy number or a 0-d tensor (wider than ``is_finite_number``: the
    ratio has always taken numpy scalars and 0-d tensors, and NaN / inf get their own messages)."""
    if isinstance(value, (str, bytes, bool)):
        return False
    try:
        float(value)
    except (TypeError, ValueError, RuntimeError):  # None, a list, a tensor of several values
        return False
    return True


def _is_one(temperature: Temperature) -> bool:
    """Whether ``temperature`` is the plain number 1 (the default: no temperature)."""
    return isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature == 1.0


def _check_source_shape(source: FreeSource | AnchoredSource) -> None:
    """A user's source must say what it makes and where."""
    for name in ("num_classes", "image_shape", "device"):
        if getattr(source, name, None) is None:
            raise ConfigError(f"{type(source).__name__} has no {name}; build it with one")


def check_pool_options(*, temperature: Temperature, autocast: bool, compile: bool, prefetch: bool,
                       filter_threshold: float | None, min_acceptance: float) -> None:
    """Options that act on a generator in the step: a clear error naming where they go instead."""
    if filter_threshold is not None:
        raise ConfigError(
            "filter_threshold cannot apply to a SyntheticPool source: the pool's images are made when "
            "it fills, not in the step. Filter them there, once per refresh: SyntheticPool(generator, "
            "per_class, teacher=teacher, filter_threshold=...), or filter a bank already made without "
            "sampling again: pool.filtered(teacher, filter_threshold=...); keep teacher=... here only "
            "for soft_labels=True")
    if min_acceptance != 0.0:
        raise ConfigError(
            "min_acceptance cannot apply to a SyntheticPool source: acceptance is measured when the "
            "pool fills (pool.acceptance_rates()); to leave a class out of the mix give it weight 0 "
            "in balance={class: weight}")
    if not _is_one(temperature):
        raise ConfigError(
            "temperature cannot apply to a SyntheticPool source: its images are already sampled. "
            "Give it to the pool: SyntheticPool(generator, temperature=...)")
    for name, value in (("autocast", autocast), ("compile", compile)):
        if value:
            raise ConfigError(
                f"{name}=True speeds up the generator's forward in the step, but a SyntheticPool "
                f"source runs no generator in the step: drop {name}=True")
    if prefetch:
        raise ConfigError("prefetch=True overlaps generation with the step, but a SyntheticPool source "
                          "only indexes its bank: drop prefetch=True")


def check_anchored_options(source: AnchoredSource, *, mode: str, balance: Balance, temperature: Temperature,
                           autocast: bool, compile: bool, prefetch: bool,
                           filter_threshold: float | None) -> None:
    """Options that have nothing to act on with a source made from the batch's real rows."""
    if mode == "replace" and balance is not None:
        raise ConfigError(f"{type(source).__name__} makes each row from a real row and keeps its label, so "
                          "mode='replace' varies rows in place and cannot rebalance classes: use "
                          "mode='append' with balance=..., or balance=None")
    if not _is_one(temperature):
        raise ConfigError(f"temperature does not apply to {type(source).__name__}: its rows are made from "
                          "real rows, not sampled; VariationSource(strength=...) sets how far they move")
    if filter_threshold is not None:
        raise ConfigError(f"filter_threshold does not apply to {type(source).__name__}: rows made from real "
                          "rows keep their real row's label; use teacher=..., soft_labels=True for soft targets")
    for name, value in (("autocast", autocast), ("compile", compile), ("prefetch", prefetch)):
        if value:
            raise ConfigError(f"{name}=True acts on a free generator's sampling; {type(source).__name__} "
                              f"makes rows from the batch: drop {name}=True")
    _check_source_shape(source)


def parse_balance(balance: Balance, num_classes: int, class_names: list[str]) -> torch.Tensor | None:
    """``balance`` as (K,) class weights; None for ``None`` / ``"inverse-frequency"`` (no fixed weights)."""
    k = num_classes
    if balance is None or balance == "inverse-frequency":
        return None
    if balance == "uniform":
        return torch.ones(k)
    if isinstance(balance, Mapping):
        names = class_names
        weights = torch.zeros(k)
        for key, weight in balance.items():
            index = names.index(key) if isinstance(key, str) and key in names else key
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < k:
                raise ConfigError(f"balance key {key!r} is not a class index in [0, {k - 1}] "
                                  f"or a class name of {names}")
            if not _is_weight(weight):
                raise ConfigError(f"balance weights must be finite numbers >= 0, got {weight!r} for {key!r}: "
                                  "give each class a number, e.g. balance={0: 1.0, 1: 2.0}")
            weights[index] = float(weight)
        if weights.sum() <= 0:
            raise ConfigError("balance weights must not all be zero")
        return weights
    raise ConfigError(f"balance must be None, 'uniform', 'inverse-frequency' or a "
                      f"{{class: weight}} dict, got {balance!r}")


def _is_weight(weight: Any) -> bool:
    """A finite number >= 0 (a bool or a string is not one)."""
    if isinstance(weight, (bool, str, bytes)) or (isinstance(weight, torch.Tensor) and weight.dtype == torch.bool):
        return False
    try:
        value = float(weight)
    except (TypeError, ValueError, RuntimeError):
        return False
    return math.isfinite(value) and value >= 0


def check_teacher(num_classes: int, device: torch.device, teacher: nn.Module | None, *,
                  filter_threshold: float | None, oversample: int, max_rounds: int,
                  min_acceptance: float, soft_labels: bool, label_temperature: float,
                  soft_label_weight: float, soft_real_labels: bool, prefetch: bool,
                  output_range: tuple[float, float], mean: Sequence[float] | None,
                  std: Sequence[float] | None) -> TeacherLabels | None:
    """Validate the teacher options; the :class:`TeacherLabels` the mixer uses, or None."""
    TeacherFilter.check_options(threshold=filter_threshold, oversample=oversample, max_rounds=max_rounds,
                                min_acceptance=min_acceptance)
    if not (is_finite_number(label_temperature) and label_temperature > 0):
        raise ConfigError(f"label_temperature must be a finite number > 0, got {label_temperature!r}")
    if not (is_finite_number(soft_label_weight) and 0 <= soft_label_weight <= 1):
        raise ConfigError(f"soft_label_weight must be in [0, 1] (0: one-hot labels, 1: the teacher's "
                          f"soft targets only), got {soft_label_weight!r}")
    if min_acceptance > 0 and filter_threshold is None:
        raise ConfigError("min_acceptance needs filter_threshold: acceptance rates are those of "
                          "the teacher filter")
    if soft_real_labels and not soft_labels:
        raise ConfigError("soft_real_labels=True needs soft_labels=True")
    if teacher is None:
        if filter_threshold is not None:
            raise ConfigError("filter_threshold needs a teacher: pass teacher=<a classifier "
                              "trained on the real data>, e.g. an augmentgen.metrics.ReferenceClassifier")
        if soft_labels:
            raise ConfigError("soft_labels=True needs a teacher: pass teacher=<a classifier "
                              "trained on the real data>, e.g. an augmentgen.metrics.ReferenceClassifier")
        return None
    TeacherFilter.check_teacher(teacher, device)
    if filter_threshold is None and not soft_labels:
        raise ConfigError("a teacher is given but unused: set filter_threshold=... (teacher "
                          "filtering) and/or soft_labels=True")
    if prefetch and filter_threshold is not None:
        raise ConfigError("prefetch=True cannot be combined with filter_threshold: the rejection "
                          "rounds need the accepted counts before the batch is built")
    return TeacherLabels(teacher, label_temperature, soft_label_weight, num_classes,
                         output_range=output_range, mean=mean, std=std)


def _is_pixel_source(source) -> bool:
    """A source without a generator, told the data's classes, shape and device when built."""
    return isinstance(source, (RealRowSource, PixelMixSource))


def _has_generator(source) -> bool:
    return isinstance(source, (GeneratorSource, VariationSource))


def check_batch(images: torch.Tensor, labels: torch.Tensor, *, image_shape: tuple[int, int, int],
                device: torch.device, from_pool: bool, source: FreeSource | AnchoredSource | None = None) -> None:
    """A collated batch the mixer can take: shapes, dtypes and device, each with its fix.

    ``source`` (the mixer's) names what made the shape and device in the messages: the pool, a
    generator, or a source built for them (``RealRowSource(..., image_shape=...)``)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise DataError("SyntheticMix takes collated batches: images (B, C, H, W) and labels (B,); "
                        f"got images {type(images).__name__} "
                        f"{tuple(images.shape) if isinstance(images, torch.Tensor) else ''}")
    c, h, w = image_shape
    shape = tuple(images.shape[1:])
    other = source is not None and not from_pool and not _has_generator(source)  # neither pool nor generator
    name = type(source).__name__
    if shape != (c, h, w):
        if _is_pixel_source(source):
            raise DataError(f"{name} was built for ({c}, {h}, {w}) images but the batch is {shape}: build "
                            f"it with image_shape={shape}")
        made = f"{name} makes" if other else "the pool holds" if from_pool else "the generator makes"
        raise DataError(
            f"{made} ({c}, {h}, {w}) images but the batch is {shape}: "
            f"resize / convert the batch to {c} channel(s) at {h}x{w} before mixing (e.g. "
            "v2.Resize, v2.Grayscale(num_output_channels=...)), or use "
            + (f"a {name} made for that shape" if other else "a generator trained at that shape")
        )
    if images.device != device:
        if from_pool:
            raise DataError(
                f"the batch is on {images.device} but the pool's bank is on {device}: build the "
                f"pool there (SyntheticPool(generator, ..., device={str(images.device)!r})) or move "
                "the batch, so that mixing needs no host-device copy")
        if other:
            build = (f"build it with device={str(images.device)!r}" if _is_pixel_source(source)
                     else f"make {name} on {images.device}")
            raise DataError(f"the batch is on {images.device} but {name} is on {device}: {build} or move the "
                            "batch (images.to(...)), so that mixing needs no host-device copy")
        raise DataError(
            f"the batch is on {images.device} but the generator is on {device}: "
            f"move one of them (generator.to({str(images.device)!r}) or images.to(...)) so that "
            "mixing needs no host-device copy"
        )
    if not (images.dtype.is_floating_point or images.dtype == torch.uint8):
        raise DataError(f"images must be float or uint8, got {images.dtype}")
    if not isinstance(labels, torch.Tensor):
        raise DataError(f"SyntheticMix takes collated batches: labels a tensor (B,) of class indices, got "
                        f"{type(labels).__name__}; {_BATCH_LABELS}")
    # The form only (no values read): the range is check_batch_labels', read when the mixer asks.
    check_class_indices(labels, range_check="none", hint=_BATCH_LABELS)
    check_one_label_per_image(images, labels, what="SyntheticMix")
    if labels.device != images.device:
        raise DataError(f"labels are on {labels.device} but images on {images.device}; "
                        f"use labels.to({str(images.device)!r})")


def check_batch_labels(labels: torch.Tensor, source: FreeSource | AnchoredSource) -> None:
    """The batch's labels are classes of ``source``: ``[0, K)``, a DataError naming the fix else.

    One reduction and one host read: the mixer calls it on its first batch (and on every batch of
    CPU labels), before the labels are counted or rows are made from them. The message names who
    holds the classes and, for labels above them, what to build or remap; the fix for negative
    labels is the shared one."""
    k = source.num_classes
    check_class_indices(labels, k, classes=lambda: _source_classes(source),
                        fix=lambda bad: _source_fix(source, max(bad)))


def _source_classes(source: FreeSource | AnchoredSource) -> str:
    """Who holds the classes, and their names, for a message."""
    k = source.num_classes
    names = list(source.class_names) if source.class_names is not None else [str(c) for c in range(k)]
    listed = ", ".join(repr(n) for n in names[:10]) + (", ..." if len(names) > 10 else "")
    if isinstance(source, PoolSource):
        return f"the pool holds {k} classes ({listed})"
    if _has_generator(source):  # as the generator's own check words it
        return f"this generator has {k} classes ({listed})"
    return f"{type(source).__name__} has {k} classes ({listed})"


def _source_fix(source: FreeSource | AnchoredSource, top: int) -> str:
    """What to do about labels up to ``top`` that ``source`` does not know."""
    name = type(source).__name__
    if _is_pixel_source(source):
        return f"build {name}(num_classes={top + 1}, ...)"
    if isinstance(source, PoolSource):
        return "build the pool from a generator trained on these classes, or remap the labels to its classes"
    if _has_generator(source):
        return "use a generator trained on these classes, or remap the labels to its classes"
    return f"give {name} num_classes={top + 1}, or remap the labels to its classes"


def infer_output_range(images: torch.Tensor) -> tuple[float, float]:
    """The value range of a float batch: ``(0, 1)`` (``ToTensor``) or ``(-1, 1)``; a DataError
    naming ``mean``/``std`` and ``output_range`` for anything else. One host read."""
    low, high = (float(v) for v in torch.aminmax(images.detach().float()))
    if 0.0 <= low and high <= 1.0:
        return (0.0, 1.0)
    if -1.0 <= low and high <= 1.0:
        return (-1.0, 1.0)
    raise DataError(
        f"the batch's values span [{low:.3g}, {high:.3g}], neither [0, 1] (ToTensor) nor [-1, 1], so "
        "synthetic rows cannot be put in its range: for normalised batches pass mean=..., std=... "
        "(as given to v2.Normalize), else output_range=(low, high)")
