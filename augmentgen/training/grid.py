"""Sample grids: one row per class, written as PNG."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image


def save_sample_grid(images: torch.Tensor, per_row: int, path: str | Path) -> Path:
    """Save ``images`` in [-1, 1], grouped by class, as a grid with ``per_row`` images a row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = make_grid(images.detach().float().cpu(), nrow=per_row, padding=2, pad_value=1.0,
                     normalize=True, value_range=(-1, 1))
    save_image(grid, path)
    return path
