"""Pure tensor functions behind the transforms and :class:`~augmentgen.mixing.SyntheticMix`.

Generators produce float images in ``[-1, 1]``; classifiers expect something else (``[0, 1]``,
``uint8``, or torchvision's mean/std normalisation). These functions map between the two. They
are batched, allocate a new tensor, never modify their input, and keep the input's device.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from .._images import to_uint8
from ..errors import DataError

__all__ = ["check_unit_range", "from_generator_range", "to_uint8", "uint8_to_unit"]


def uint8_to_unit(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Map ``uint8`` images to floats in ``[0, 1]`` (the ``v2.ToDtype(scale=True)`` convention)."""
    return images.to(dtype).div_(255.0)


def _per_channel(values: Sequence[float] | torch.Tensor, channels: int, like: torch.Tensor,
                 what: str) -> torch.Tensor:
    """``values`` (a mean or std) as a (1, C, 1, 1) tensor of ``like``'s dtype and device.

    A list, tuple or number is made into a tensor once per (values, dtype, device) and shared
    (see :func:`_channel_constants`), so callers must not modify the result in place.
    """
    key = _exact_key(values)
    if key is None:  # a tensor or an array: as_tensor, a no-op where it is already there
        values = torch.as_tensor(values, dtype=like.dtype, device=like.device).flatten()
    else:
        values = _channel_constants(*key, like.dtype, like.device)
    if values.numel() not in (1, channels):
        raise DataError(f"{what} has {values.numel()} values but the images have {channels} channels")
    return values.view(1, -1, 1, 1)


def _exact_key(values) -> tuple[tuple, tuple[float, ...]] | None:
    """A cache key for plain numbers: (the values, the sign of each), or None for anything else.

    Equal Python ints and floats are the same number, so they make the same tensor; only the
    sign of a float zero (``-0.0 == 0.0``) tells two different tensors apart, hence the signs.
    """
    items = (values,) if isinstance(values, (int, float)) else values
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, (int, float)) for v in items):
        return None
    return tuple(items), tuple(math.copysign(1.0, v) if isinstance(v, float) else 1.0 for v in items)


@functools.lru_cache(maxsize=64)
def _channel_constants(values: tuple, signs: tuple[float, ...], dtype: torch.dtype,
                       device: torch.device) -> torch.Tensor:
    """``values`` as a flat tensor on ``device``, made once: made in each call, the mean and the
    std would be two host-to-device copies (blocking ones on CUDA) per batch in the mixer's
    output (and its teacher's input). Made outside inference mode, so that a caller with
    autograd may use it. ``signs`` is part of the key only."""
    with torch.inference_mode(False):
        return torch.as_tensor(values, dtype=dtype, device=device).flatten()


def from_generator_range(
    images: torch.Tensor,
    *,
    output_range: tuple[float, float] = (-1.0, 1.0),
    mean: Sequence[float] | torch.Tensor | None = None,
    std: Sequence[float] | torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Map generator output in ``[-1, 1]`` to the value range a classifier expects.

    Args:
        images: float tensor (N, C, H, W) in ``[-1, 1]``.
        output_range: ``(low, high)`` the ``[-1, 1]`` interval is mapped onto, e.g. ``(0, 1)``.
            Ignored when ``mean``/``std`` are given.
        mean, std: per-channel (or scalar) normalisation applied to ``[0, 1]`` images, exactly
            like ``v2.Normalize(mean, std)`` after ``v2.ToDtype(torch.float32, scale=True)``.
        dtype: output dtype; ``torch.uint8`` gives ``[0, 255]`` and ignores the range arguments.

    Returns:
        A new tensor (N, C, H, W) on the input's device.
    """
    dtype = dtype or images.dtype
    if dtype == torch.uint8:
        return to_uint8(images)
    if not dtype.is_floating_point:
        raise DataError(f"cannot map generator output to dtype {dtype}; use a float dtype or uint8")
    # Compute in float32 at least: bf16 images would lose the last bits of the normalisation.
    work = images.to(torch.promote_types(dtype, torch.float32))
    if (mean is None) != (std is None):
        raise DataError("give both mean and std (or neither)")
    if mean is not None:
        unit = work.add(1.0).mul_(0.5)
        out = unit.sub_(_per_channel(mean, work.shape[1], work, "mean")).div_(
            _per_channel(std, work.shape[1], work, "std"))
    else:
        low, high = (float(v) for v in output_range)
        if high <= low:
            raise DataError(f"output_range must be (low, high) with low < high, got {output_range}")
        out = work.add(1.0).mul_((high - low) / 2.0).add_(low)
    return out.to(dtype)


def check_unit_range(images: torch.Tensor, *, before: str = "v2.Normalize") -> None:
    """Float images are in ``[0, 1]`` (the convention of ``v2.ToDtype(..., scale=True)``); else a
    :class:`DataError` naming the values found and the transform to put this one ``before``. A
    replacement made in ``[0, 1]`` among normalised or ``[0, 255]`` images would be silently out of
    their range. One reduction; for the per-sample transforms, not the mixer's hot path."""
    if not images.numel():
        return
    low, high = (float(v) for v in torch.aminmax(images.detach().float()))
    if not (low >= 0.0 and high <= 1.0):
        raise DataError(f"float images must be in [0, 1] (v2.ToDtype(torch.float32, scale=True)) to be replaced, got "
                        f"values in [{low:.3g}, {high:.3g}]: put this transform before {before}")


def like_input(images_uint8: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Convert ``uint8`` images to ``like``'s dtype: uint8 stays, floats are scaled to ``[0, 1]``.

    This is the convention of torchvision's ``v2.ToDtype(..., scale=True)``: float image tensors
    hold values in ``[0, 1]``.
    """
    images_uint8 = images_uint8.to(like.device)
    if like.dtype == torch.uint8:
        return images_uint8.clone()
    if like.dtype.is_floating_point:
        return uint8_to_unit(images_uint8, like.dtype)
    raise DataError(f"image tensors must be uint8 or float, got {like.dtype}")


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Repeat a single channel to ``channels`` (grayscale generator, RGB pipeline); else fail."""
    have = images.shape[-3]
    if have == channels:
        return images
    if have == 1:
        return images.expand(*images.shape[:-3], channels, *images.shape[-2:])
    raise DataError(
        f"the synthetic images have {have} channels but the sample has {channels}; "
        "use a generator trained with in_channels matching your data (or v2.Grayscale)"
    )
