"""Seeded random streams: the one rule for a user's ``seed``, and for turning it into a ``torch.Generator``.

``seed`` is an int >= 0 (numpy's too) below 2**64 (torch's bound, and that of the fresh seeds a
bank records), as training, the subsets and the Parquet banks take it, or ``None`` for fresh randomness where a call allows it; anything else is refused with a
message that names the argument, where torch's or numpy's own error would not (or would come only
once the work has started).
"""

from __future__ import annotations

import numbers

import torch

from .errors import ConfigError

__all__ = ["MAX_SEED", "check_seed", "seeded_generator"]

#: One more than the largest seed torch takes (``torch.Generator().seed()`` draws up to it).
MAX_SEED = 2**64


def check_seed(seed, name: str = "seed", *, use: str = "it seeds the random draws", bits: int = 64) -> int:
    """``seed`` as an int, or a :class:`ConfigError` naming ``name``, what it seeds (``use``) and the fix.
    ``bits``: the seed is below ``2**bits`` (63 where offsets are added to it, as the metrics do)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < min(MAX_SEED, 2**bits):
        like = f"{name} 0" if name.startswith("--") else f"{name}=0"
        raise ConfigError(f"{name} must be an int >= 0 ({use}), got {seed!r}; pass one from 0 to 2**{bits} - 1, "
                          f"like {like}")
    return int(seed)


def seeded_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (:func:`check_seed`), or from fresh
    entropy for None."""
    rng = torch.Generator(device=device)
    if seed is None:
        rng.seed()
        return rng
    return rng.manual_seed(check_seed(seed, use="or None for fresh randomness"))
