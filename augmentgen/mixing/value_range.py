"""A batch's value range: what the mixer reads and checks to put rows in the batch's range.

Generators work in ``[-1, 1]``; a user's batches are ``uint8``, float in an ``output_range``, or
normalised with ``mean``/``std``. :func:`to_generator_range` maps a batch back to ``[-1, 1]``
(variation sources and teachers read real rows that way); the checks refuse a range the rows
could not be put in, with the fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .._images import to_signed_unit
from ..errors import ConfigError
from ..transforms.functional import _per_channel


def to_generator_range(
    images: torch.Tensor,
    *,
    output_range: tuple[float, float] = (-1.0, 1.0),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> torch.Tensor:
    """Map batch images back to float32 in ``[-1, 1]``: the inverse of ``from_generator_range``.

    ``uint8`` images are ``[0, 255]``; float images are in ``output_range``, or normalised with
    ``mean``/``std`` (torchvision style, applied to ``[0, 1]`` images). The default range
    ``(-1, 1)`` returns the images unchanged (as float32).
    """
    if images.dtype == torch.uint8 or not images.dtype.is_floating_point:
        return to_signed_unit(images)  # uint8 is [0, 255] whatever the range; other dtypes fail
    work = images.float()
    if mean is not None:
        channels = work.shape[1]
        return (work.mul(_per_channel(std, channels, work, "std"))
                .add_(_per_channel(mean, channels, work, "mean")).mul_(2.0).sub_(1.0))
    low, high = (float(v) for v in output_range)
    if (low, high) == (-1.0, 1.0):
        return work
    return work.sub(low).mul_(2.0 / (high - low)).sub_(1.0)


def check_output_range(output_range) -> tuple[float, float]:
    """``(low, high)`` as floats, finite with ``low < high``."""
    try:
        if isinstance(output_range, (str, bytes)):
            raise TypeError  # "01" would read as (0, 1), character by character
        low, high = (float(v) for v in output_range)
    except (TypeError, ValueError):
        raise ConfigError(f"output_range must be (low, high), e.g. (0, 1) for ToTensor batches or (-1, 1), "
                          f"got {output_range!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"output_range must be (low, high) with low < high, got {output_range!r}")
    return low, high


def check_mean_std(mean, std) -> None:
    """Both or neither; each a number or per-channel numbers, finite, every ``std`` > 0 (a
    ConfigError naming the fix else). Reads the values once (a tensor on an accelerator: one
    host read, at construction)."""
    if (mean is None) != (std is None):
        raise ConfigError("give both mean and std (or neither)")
    if mean is None:
        return
    for name, values in (("mean", mean), ("std", std)):
        try:
            if isinstance(values, (str, bytes)):
                raise TypeError
            flat = torch.as_tensor(values).detach().cpu().double().flatten()
        except (TypeError, ValueError, RuntimeError):
            raise ConfigError(f"{name} must be a number or one number per channel, as given to "
                              f"v2.Normalize (e.g. {name}=[0.5]), got {values!r}") from None
        if not flat.numel():
            raise ConfigError(f"{name} must be a number or one number per channel, as given to "
                              f"v2.Normalize (e.g. {name}=[0.5]), got {values!r}")
        if not bool(flat.isfinite().all()):
            raise ConfigError(f"{name} must be finite, got {values!r}: pass the {name} given to v2.Normalize")
        if name == "std" and not bool((flat > 0).all()):
            raise ConfigError(f"std must be > 0 in every channel (synthetic rows are divided by it), got "
                              f"{values!r}: pass the std given to v2.Normalize")
