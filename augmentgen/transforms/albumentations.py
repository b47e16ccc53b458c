"""``ReplaceWithSynthetic`` for albumentations 2.x pipelines (imported only when used)."""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
import torch

from ..errors import DataError
from . import functional as F
from .anchored import check_pool_or_source, check_probability, vary_like


class AlbumentationsReplaceWithSynthetic(A.ImageOnlyTransform):
    """With probability ``p``, replace ``image`` by a pool image of the class passed as ``label``.

    Use it in ``A.Compose`` and pass the class as a keyword target (see the example). Images are
    HWC numpy arrays, uint8 or float32 in ``[0, 1]``; the replacement has the same dtype and shape
    (a grayscale pool fills RGB images by repeating the channel). Images come from a
    :class:`~augmentgen.mixing.SyntheticPool`, so no model runs in the worker.

    Given an anchored source instead of a pool (``VariationSource(generator, "vary")``), the
    replacement is a variation of the image itself, made with its label, in the image's dtype and
    value range, seeded by the Compose's random stream (``A.Compose(..., seed=0)``). The generator
    then runs once per replaced image, in the worker (see :mod:`augmentgen.transforms.anchored`
    for the cost; ``SyntheticPool.from_variations`` makes a bank of variations in batches).

    Args:
        pool (SyntheticPool or AnchoredSource): the bank of synthetic images, or a source of
            variations of the image (``VariationSource`` in ``mode="vary"``).
        label_key (str, defaults to ``"label"``): the keyword the class is passed under.
        p (float, defaults to 0.5): probability of replacing the image.

    Example::

        transform = A.Compose([AlbumentationsReplaceWithSynthetic(pool, p=0.3), A.HorizontalFlip()])
        out = transform(image=image_hwc_uint8, label=2)  # out["image"]: same shape and dtype
    """

    def __init__(self, pool, label_key: str = "label", p: float = 0.5):
        super().__init__(p=check_probability(p))
        self.pool, self.source = check_pool_or_source(pool)
        self.label_key = label_key

    @property
    def targets_as_params(self) -> list[str]:
        return [self.label_key]

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        label = data[self.label_key]
        if isinstance(label, np.ndarray) and label.size == 1:
            label = label.item()
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise DataError(f"{self.label_key}= must be one integer class index, got {label!r}")
        bank = self.pool if self.source is None else self.source
        if not 0 <= int(label) < bank.num_classes:
            raise DataError(f"{self.label_key}={label} is out of range for a "
                            f"{bank.num_classes}-class {'pool' if self.source is None else 'source'}")
        if self.source is not None:
            return {"label": int(label), "seed": int(self.random_generator.integers(2**62))}
        return {"label": int(label), "position": int(self.random_generator.integers(self.pool.per_class))}

    def apply(self, img: np.ndarray, label: int = 0, position: int = 0, **params: Any) -> np.ndarray:
        if self.source is not None:
            chw = torch.from_numpy(np.array(img))  # a writable copy: the input is never changed
            chw = chw[None] if img.ndim == 2 else chw.permute(2, 0, 1)
            out = vary_like(self.source, chw, label, seed=params["seed"])
            return np.ascontiguousarray((out[0] if img.ndim == 2 else out.permute(1, 2, 0)).numpy())
        if np.issubdtype(img.dtype, np.floating):
            F.check_unit_range(torch.from_numpy(img), before="A.Normalize (float images in [0, 255]: after A.ToFloat(max_value=255))")
        elif img.dtype != np.uint8:  # a uint16 image got the 8-bit bank's values, 0 to 255 of 65535
            raise DataError(f"images must be uint8 or float in [0, 1] to be replaced, got {img.dtype}: convert "
                            "them first (A.ToFloat(max_value=...) or img.astype(np.uint8))")
        synthetic = self.pool.images[label, position].permute(1, 2, 0).numpy()  # (H, W, C) uint8
        height, width = img.shape[:2]
        if synthetic.shape[:2] != (height, width):
            raise DataError(f"pool images are {synthetic.shape[0]}x{synthetic.shape[1]} but the image "
                            f"is {height}x{width}; put A.Resize({synthetic.shape[0]}, "
                            f"{synthetic.shape[1]}) before this transform")
        channels = img.shape[2] if img.ndim == 3 else 1
        if synthetic.shape[2] != channels:
            if synthetic.shape[2] != 1:
                raise DataError(f"pool images have {synthetic.shape[2]} channels, the image {channels}")
            synthetic = np.repeat(synthetic, channels, axis=2)
        if img.ndim == 2:
            synthetic = synthetic[..., 0]
        out = synthetic.astype(img.dtype) if img.dtype == np.uint8 else (synthetic / 255.0).astype(img.dtype)
        return np.ascontiguousarray(out)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("pool", "label_key")

    def get_transform_init_args(self) -> dict[str, Any]:
        return {"pool": self.pool if self.source is None else self.source, "label_key": self.label_key}
