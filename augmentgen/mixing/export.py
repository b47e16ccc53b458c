"""Writing a generator's samples to disk: a grid, an ImageFolder, an ``.npz`` or an HF dataset."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .._images import save_sample_grid, to_uint8
from ..errors import ConfigError
from ..models.base import ConditionalGenerator, Temperature

FORMATS = ("grid", "imagefolder", "npz", "hf")


def safe_class_dir(name: str) -> str:
    """A folder name for a class name (``"T-shirt/top"`` -> ``"T-shirt_top"``)."""
    return re.sub(r"[^\w.\- ]", "_", name).strip() or "_"


def write_samples(generator: ConditionalGenerator, per_class: int, out: str | os.PathLike,
                  format: Literal["grid", "imagefolder", "npz", "hf"] = "grid", *, seed: int = 0,
                  batch_size: int = 1024, temperature: Temperature = 1.0) -> Path:
    """Sample ``per_class`` images of every class and write them to ``out``.

    ``temperature`` is :meth:`ConditionalGenerator.sample`'s: below 1 concentrates each class's
    samples towards its centre (0: one image per class), above 1 spreads them; one float, or
    ``num_classes`` floats indexed by class (``augmentgen sample --temperature``).

    Formats:
        - ``grid``: one PNG, one row per class (``out`` is the file).
        - ``imagefolder``: ``out/<class>/<class>_<i>.png`` (torchvision ``ImageFolder`` and
          ``datasets.load_dataset("imagefolder")`` read it; note both sort folders by name).
        - ``npz``: ``images`` uint8 (N, C, H, W), ``labels`` int64, ``classes`` str; readable with
          ``augmentgen.load_data(out)``, no pickle.
        - ``hf``: ``datasets.Dataset.save_to_disk(out)`` with :func:`synthesize`'s features.

    Returns:
        The path written.
    """
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, got {format!r}")
    if per_class < 1:
        raise ConfigError(f"per_class must be at least 1, got {per_class}")
    temperature = generator.check_temperature(temperature)  # before any file is written
    out = Path(out)
    if format == "hf":
        from .hf import synthesize

        synthesize(generator, per_class, seed=seed, batch_size=batch_size,
                   temperature=temperature).save_to_disk(str(out))
        return out
    rng = torch.Generator(device=generator.device).manual_seed(seed)
    labels = torch.arange(generator.num_classes, device=generator.device).repeat_interleave(per_class)
    fake_images = generator.sample(labels, generator=rng, batch_size=batch_size, temperature=temperature)
    if format == "grid":
        return save_sample_grid(fake_images, per_class, out)
    images = to_uint8(fake_images).cpu()
    if format == "npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, images=images.numpy(), labels=labels.cpu().numpy(),
                            classes=np.asarray(generator.class_names, dtype=str))
        return out if out.suffix == ".npz" else out.with_name(out.name + ".npz")
    from PIL import Image

    arrays = images.permute(0, 2, 3, 1).numpy()
    for k, name in enumerate(generator.class_names):
        folder = out / safe_class_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):  # one PNG file per image: file I/O, not a hot path
            array = arrays[k * per_class + i]
            Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(
                folder / f"{safe_class_dir(name)}_{i:05d}.png")
    return out
