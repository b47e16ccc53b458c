"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real AND fake images
before the discriminator, so it cannot memorise a few hundred real images.

All ops are batched tensor ops with per-sample random parameters; no Python loop over samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)  # brightness
    if x.shape[1] == 3:  # saturation means nothing for grayscale
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size, filling with the background (-1)."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device)[None, :, None] + dy).clamp(-1, h)  # (b, h, 1)
    cols = (torch.arange(w, device=x.device)[None, None, :] + dx).clamp(-1, w)  # (b, 1, w)
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)  # index -1 / h land on the padding
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows + 1, cols + 1].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Blank a random square of ``ratio`` of the image size in each image (set to -1)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = ((ys - cy + ch // 2).clamp(0) < ch) & ((ys - cy + ch // 2) >= 0) \
        & ((xs - cx + cw // 2) >= 0) & ((xs - cx + cw // 2) < cw)  # (b, h, w)
    # A scalar fill: no image-sized tensor of -1s. Not masked_fill, whose output is contiguous
    # where x is channels_last (as translation's output is), and the discriminator's convs
    # would then see another layout.
    return torch.where(inside[:, None], -1.0, x)


OPS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """Apply the comma-separated ``policy`` (e.g. ``"color,translation,cutout"``) to ``x``."""
    for name in (p.strip() for p in policy.split(",")):
        if name:
            x = OPS[name](x)
    return x


def check_policy(policy: str) -> None:
    """Raise :class:`ConfigError` unless every op of the comma-separated ``policy`` is known
    (configs call this in ``__post_init__``, so a typo fails when the config is built)."""
    bad = [p for p in policy.split(",") if p.strip() and p.strip() not in OPS]
    if bad:
        raise ConfigError(f"unknown DiffAugment op(s) {bad}; choose from {sorted(OPS)}")
