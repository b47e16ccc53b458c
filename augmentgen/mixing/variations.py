"""The real images a bank of variations is made from, and which of them each row is made from.

Shared by the in-memory bank (:meth:`~augmentgen.mixing.SyntheticPool.from_variations`) and the
Parquet shards (:func:`~augmentgen.mixing.write_variation_shards`), so that both check their
inputs with the same messages, spread a class's rows over its images by the same rule
(:func:`class_anchors`), call the source the same way (:func:`variation_rows`) and record the
same settings (:func:`variation_settings`).
"""

from __future__ import annotations

import math
import warnings

import torch

from .._labels import check_class_indices, check_one_label_per_image
from ..errors import ConfigError, DataError
from ..models.base import ConditionalGenerator
from .sources import MODE_KNOB, AnchoredSource, check_int_arguments

__all__ = ["check_variation_inputs", "class_anchors", "variation_rows", "variation_settings"]



def class_anchors(labels: torch.Tensor, per_class: int, num_classes: int, *,
                  rng: torch.Generator | None = None) -> torch.Tensor:
    """Which real image each row of a bank of variations is made from: int64 (K, ``per_class``).

    Each class's images are put in a random order (a ``torch.randperm`` of all the images drawn
    from ``rng``, stably sorted by label) and slot ``s`` of class ``c`` takes its image
    ``s mod n_c``: every image of a class gets ``⌊per_class / n_c⌋`` or ``⌈per_class / n_c⌉``
    rows. ``labels`` (N,) int64 on ``rng``'s device, every class present; the result is there too.
    """
    device = labels.device
    order = torch.randperm(len(labels), generator=rng, device=device)
    order = order[torch.argsort(labels[order], stable=True)]
    count = torch.bincount(labels, minlength=num_classes)
    start = count.cumsum(0) - count
    return order[start[:, None] + torch.arange(per_class, device=device)[None, :] % count[:, None]]


def variation_rows(source: AnchoredSource, real: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor, *,
                   rng: torch.Generator | None) -> torch.Tensor:
    """``source.rows`` for ``anchors``: float (n, C, H, W) in [-1, 1]; a DataError for a wrong shape."""
    rows = source.rows(real, labels, anchors, rng=rng)
    shape = (len(anchors), *source.image_shape)
    if not isinstance(rows, torch.Tensor) or tuple(rows.shape) != shape:
        raise DataError(f"{type(source).__name__}.rows returned {tuple(getattr(rows, 'shape', ()))} for "
                        f"{len(anchors)} anchors; it must return ({', '.join(map(str, shape))}) in [-1, 1]")
    return rows


def variation_settings(source: AnchoredSource) -> dict:
    """How ``source`` makes its rows: its repr, its generator's family, its mode and that mode's knob."""
    mode = getattr(source, "mode", None)
    knobs = {name: getattr(source, name) for name in ("strength", "weight_range", "extrapolation_range")
             if hasattr(source, name) and MODE_KNOB.get(mode, name) == name}
    generator = getattr(source, "generator", None)
    return {"source": repr(source), "family": getattr(generator, "family", None), "mode": mode, **knobs}


def check_variation_inputs(source, images, labels, per_image, batch_size, *, caller: str = "SyntheticPool.from_variations",
                           free: str = "SyntheticPool(generator, per_class)") -> tuple[torch.Tensor, torch.Tensor,
                                                                                      torch.Tensor]:
    """(images, labels as int64, images per class on the CPU) for a bank of variations, or a
    ConfigError / DataError naming the problem and its fix. ``caller`` is the function named in
    the messages, ``free`` the call that makes the bank of free samples instead."""
    check_source(source, caller, free)
    check_int_arguments(per_image=(per_image, 1), batch_size=(batch_size, 1))
    try:
        images = torch.as_tensor(images)
    except (TypeError, ValueError, RuntimeError):  # a LabelledImages, a list of tensors
        raise DataError(f"{caller} takes images as one tensor (N, C, H, W) and labels as class indices (N,), "
                        f"got {type(images).__name__} and {type(labels).__name__}: pass train.images, "
                        "train.labels of a LabelledImages (map class names with the generator's "
                        "class_names.index)") from None
    _check_images(images, tuple(source.image_shape), caller)
    k = source.num_classes
    labels = check_class_indices(
        labels, k, classes=f"the source's generator knows {k} classes",
        fix="pass class indices of those (map class names with its class_names)",
        hint="pass train.labels of a LabelledImages (map class names with the generator's class_names.index)")
    check_one_label_per_image(images, labels)
    counts = torch.bincount(labels.cpu(), minlength=k)
    missing = (counts == 0).nonzero().flatten().tolist()
    if missing:
        names = list(source.class_names or range(k))
        raise DataError(f"no image of class {', '.join(repr(names[c]) for c in missing[:5])}: every row of a "
                        f"variation bank is made from a real image of its class, so pass images of all {k} "
                        "classes the source's generator knows")
    return images, labels, counts


def check_source(source, caller: str, free: str) -> None:
    """``source`` is an anchored source with the attributes a bank reads; ``free``: the call that
    banks free samples, named where a bare generator was passed."""
    if isinstance(source, ConditionalGenerator):
        raise ConfigError(f"{caller} makes rows from real images through an anchored source: wrap the "
                          f"generator, VariationSource(generator, 'vary'), and pass that; {free} is the "
                          "bank of free samples")
    if not isinstance(source, AnchoredSource):
        raise ConfigError(f"source must be an anchored source such as VariationSource(generator, 'vary'), "
                          f"got {type(source).__name__}")
    for name in ("num_classes", "image_shape", "device"):
        if getattr(source, name, None) is None:
            raise ConfigError(f"{type(source).__name__} has no {name}; build it with one")


def _check_images(images: torch.Tensor, shape: tuple[int, int, int], caller: str) -> None:
    if images.ndim != 4 or len(images) == 0:
        raise DataError(f"{caller} needs the real images as a tensor (N, {', '.join(map(str, shape))}) "
                        f"with N >= 1 (e.g. train.images of a LabelledImages), got shape {tuple(images.shape)}")
    if tuple(images.shape[1:]) != shape:
        raise DataError(f"the source's generator takes {shape} images but the images are {tuple(images.shape[1:])}: "
                        f"resize / convert them to {shape[0]} channel(s) at {shape[1]}x{shape[2]} (e.g. "
                        "v2.Resize, v2.Grayscale), or use a generator trained at that shape")
    if images.dtype.is_floating_point:
        low, high = float(images.min()), float(images.max())
        if not (math.isfinite(low) and math.isfinite(high) and low >= -1.001 and high <= 1.001):
            raise DataError(f"float images must be in the generators' [-1, 1], got values in [{low:.3g}, {high:.3g}]: "
                            "pass uint8 images in [0, 255], or images * 2 - 1 for images in [0, 1]")
        if low >= 0:
            warnings.warn("the float images are all in [0, 1]; they are taken to be in [-1, 1]. For ToTensor "
                          "images pass images * 2 - 1 (or the uint8 images)", stacklevel=4)
    elif images.dtype != torch.uint8:
        raise DataError(f"images must be uint8 in [0, 255] or float in [-1, 1], got {images.dtype}")
