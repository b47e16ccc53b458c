"""Per-sample variations of the sample's own image, for the replacing transforms.

``ReplaceWithSynthetic`` and ``AlbumentationsReplaceWithSynthetic`` take either a bank
(:class:`~augmentgen.mixing.SyntheticPool`, indexed: no model runs) or an *anchored source*
(:class:`~augmentgen.mixing.VariationSource`): with the latter the replacement is a variation of
the very image the transform received, made with its label. This module holds that path.

Cost: the source runs once per replaced sample, one image at a time, in the process that calls
the transform (each DataLoader worker holds its own copy of the generator, on the source's
device: keep it on the CPU for workers, as CUDA does not survive ``fork``). An encoder family
costs one small encode and decode per image; a diffusion family's SDEdit costs ``strength``
times its sampling steps per image, far too slow for most pipelines. For those, and for every
large run, build the bank once in batches and pass the pool instead:
``SyntheticPool.from_variations(source, train.images, train.labels)``.

The transforms layer sits below :mod:`augmentgen.mixing`, so sources are recognised by what they
offer (``anchored = True`` and ``rows``), not by their class.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError, DataError
from ..models.base import ConditionalGenerator
from . import functional as F

__all__ = ["check_pool_or_source", "check_probability", "is_anchored", "vary_like"]

#: Modes that mix two real images of a class: a per-sample transform sees only one.
_PAIR_MODES = ("interpolate", "extrapolate")


def is_anchored(obj: Any) -> bool:
    """Whether ``obj`` is an anchored row source (``VariationSource``, ``RealRowSource``, yours)."""
    return getattr(obj, "anchored", False) is True and callable(getattr(obj, "rows", None))


def check_pool_or_source(obj: Any) -> tuple[Any, Any]:
    """``(pool, None)`` for a :class:`~augmentgen.mixing.SyntheticPool`, ``(None, source)`` for an
    anchored source, or a :class:`ConfigError` that says what to pass instead."""
    if isinstance(obj, ConditionalGenerator):
        raise ConfigError(
            "got a generator where a SyntheticPool is needed: a generator in a per-sample transform "
            "would run in every DataLoader worker, one image at a time. Build the bank once with "
            "pool = augmentgen.mixing.SyntheticPool(generator, per_class=256) and pass pool; for "
            "variations of each sample's own image pass VariationSource(generator, 'vary')")
    if is_anchored(obj):
        mode = getattr(obj, "mode", None)
        if mode in _PAIR_MODES:
            raise ConfigError(
                f"mode={mode!r} mixes two real images of a class, but a per-sample transform sees one "
                "(it would return its reconstruction): use VariationSource(generator, 'vary') here, or "
                f"build a bank, SyntheticPool.from_variations(VariationSource(generator, {mode!r}), "
                "images, labels), and pass the pool")
        for name in ("num_classes", "image_shape", "device"):
            if getattr(obj, name, None) is None:
                raise ConfigError(f"{type(obj).__name__} has no {name}; build it with one")
        return None, obj
    if not all(hasattr(obj, name) for name in ("images", "num_classes", "per_class")):
        raise ConfigError(f"expected a SyntheticPool (with images, num_classes, per_class) or an anchored "
                          f"source such as VariationSource, got a {type(obj).__name__}")
    return obj, None


def check_probability(p: Any) -> float:
    """``p``, the chance that a sample's image is replaced: a number in ``[0, 1]``, else a ConfigError
    (albumentations' own check raises a pydantic ValidationError several lines long)."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ConfigError(f"p must be a probability in [0, 1], got {p!r}")
    return p


def vary_like(source: Any, image: torch.Tensor, label: int, *, seed: int) -> torch.Tensor:
    """The source's variation of ``image``, as a new tensor of its shape, dtype and device.

    Args:
        source: an anchored source (``rows(images, labels, anchors, rng=...)`` in ``[-1, 1]``).
        image: (..., C, H, W), uint8 in ``[0, 255]`` or float in ``[0, 1]`` (the transforms v2
            convention); leading dimensions are rows of one batched call, all of class ``label``.
        label: the sample's class index; the variation keeps it.
        seed: seeds the variation's noise (a generator on the source's device).
    """
    c, h, w = source.image_shape
    if image.ndim < 3 or tuple(image.shape[-3:]) != (c, h, w):
        fix = (f"put the transform after a v2.Resize(({h}, {w}))" if image.shape[-3:-2] == (c,) else
               f"convert the sample to {c} channel(s) first (v2.Grayscale / A.ToGray, or v2.RGB)")
        raise DataError(f"the source's generator takes ({c}, {h}, {w}) images but the sample is "
                        f"{tuple(image.shape[-3:])}: {fix}, or use a generator trained at that shape")
    if not 0 <= label < source.num_classes:
        raise DataError(f"label {label} is out of range for a {source.num_classes}-class source")
    rows = image.reshape(-1, c, h, w)
    if image.dtype == torch.uint8:
        signed = rows.float().div(127.5).sub(1.0)
    elif image.dtype.is_floating_point:
        F.check_unit_range(rows)
        signed = rows.float().mul(2.0).sub(1.0)
    else:
        raise DataError(f"image tensors must be uint8 or float, got {image.dtype}")
    device = torch.device(source.device)
    n = len(rows)
    rng = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        made = source.rows(signed.to(device), torch.full((n,), label, dtype=torch.long, device=device),
                           torch.arange(n, device=device), rng=rng)
    out = F.from_generator_range(made.float().clamp(-1.0, 1.0), output_range=(0.0, 1.0), dtype=image.dtype)
    return out.to(image.device).reshape(image.shape)
