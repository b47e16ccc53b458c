"""Seeded random streams: the one rule for turning a user's ``seed`` into a ``torch.Generator``.

``seed`` is any integer (numpy's too) or ``None`` for fresh randomness; anything else is refused
with a message that names the argument, where torch's own error would not.
"""

from __future__ import annotations

import operator

import torch

from .errors import ConfigError

__all__ = ["seeded_generator"]


def seeded_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``, or from fresh entropy for None."""
    rng = torch.Generator(device=device)
    if seed is None:
        rng.seed()
        return rng
    try:
        return rng.manual_seed(operator.index(seed))
    except TypeError:
        raise ConfigError(f"seed must be an int (or None for fresh randomness), got {seed!r}") from None
