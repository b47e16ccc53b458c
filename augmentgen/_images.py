"""Image conventions shared by every layer: generators work in ``[-1, 1]``, storage is ``uint8``.

These three functions are the only place the conversions are written; everything else imports
them (the data readers, the families, the trainer, the hub, the mixers and the metrics).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ._io import atomic_path
from .errors import ConfigError, DataError


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map float images in ``[-1, 1]`` to ``uint8`` in ``[0, 255]`` (rounded, clamped)."""
    return images.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def to_signed_unit(images: torch.Tensor) -> torch.Tensor:
    """Map ``uint8`` images to float32 in ``[-1, 1]``; float images are taken to be in ``[-1, 1]``
    already and returned as float32. Any other dtype is a :class:`DataError`."""
    if images.dtype == torch.uint8:
        return images.float().div_(127.5).sub_(1.0)
    if not images.dtype.is_floating_point:
        raise DataError(f"images must be uint8 or float in [-1, 1], got dtype {images.dtype}")
    return images.float()


def save_sample_grid(images: torch.Tensor, per_row: int, path: str | Path) -> Path:
    """Save ``images`` in [-1, 1], grouped by class, as a PNG grid with ``per_row`` images a row."""
    from torchvision.utils import make_grid, save_image  # torchvision's image IO is slow to import

    path = Path(path)
    if path.is_dir():  # os.replace would raise a bare IsADirectoryError, after the sampling
        raise ConfigError(f"{path} is a folder, but a sample grid is one PNG file; pass a file path like grid.png")
    grid = make_grid(images.detach().float().cpu(), nrow=per_row, padding=2, pad_value=1.0,
                     normalize=True, value_range=(-1, 1))
    # Written beside the target and renamed over it, so a kill never leaves a truncated PNG.
    with atomic_path(path) as tmp:
        save_image(grid, tmp, format="png")
    return path
