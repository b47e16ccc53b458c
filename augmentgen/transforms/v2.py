"""``ReplaceWithSynthetic``: a torchvision transforms v2 transform fed by a :class:`SyntheticPool`
or by an anchored source (a variation of the sample's own image)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch.utils._pytree import tree_flatten, tree_unflatten
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..errors import DataError
from . import functional as F
from .anchored import check_pool_or_source, check_probability, vary_like


def _find_label(sample: Any, label_key: str) -> tuple[int, Any]:
    """(class index, the label object itself) of a tuple or dict sample."""
    if isinstance(sample, Mapping):
        if label_key not in sample:
            raise DataError(f"ReplaceWithSynthetic needs the class: the sample dict has no "
                            f"{label_key!r} key (keys: {list(sample)}); pass label_key=...")
        label = sample[label_key]
    elif isinstance(sample, (tuple, list)) and len(sample) >= 2:
        label = sample[1]
    else:
        raise DataError(
            f"ReplaceWithSynthetic needs the class but got a bare {type(sample).__name__}: call it on "
            f"(image, label) or on a {{'image': ..., {label_key!r}: ...}} dict. torchvision datasets "
            "pass only the image to transform=, so wrap the dataset instead: "
            "SyntheticDataset(ImageFolder(root, transform=...), pool, p=0.3)")
    if isinstance(label, torch.Tensor):
        if label.numel() != 1 or label.dtype.is_floating_point:
            raise DataError(f"the label must be one integer class index, got a tensor {tuple(label.shape)} "
                            f"{label.dtype}")
        return int(label.item()), label
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        return int(label), label
    raise DataError(f"the label must be an integer class index, got {type(label).__name__}")


def pool_image_like(image_uint8: torch.Tensor, inpt: Any) -> Any:
    """Return the pool image (C, H, W) uint8 as the same kind of object as ``inpt``."""
    if isinstance(inpt, PIL.Image.Image):
        array = image_uint8.permute(1, 2, 0).numpy()
        out = PIL.Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
        if out.size != inpt.size:
            raise DataError(f"pool images are {out.size[0]}x{out.size[1]} but the sample is "
                            f"{inpt.size[0]}x{inpt.size[1]}; put ReplaceWithSynthetic after a "
                            f"v2.Resize({out.size[1]}) (or use a generator trained at that size)")
        return out.convert(inpt.mode) if out.mode != inpt.mode else out
    if isinstance(inpt, torch.Tensor):
        if inpt.ndim < 3:
            raise DataError(f"image tensors are (C, H, W), got shape {tuple(inpt.shape)}: add the channel "
                            "dimension (image[None]) or put v2.ToImage() before this transform")
        if inpt.dtype.is_floating_point:
            F.check_unit_range(inpt)
        if inpt.shape[-2:] != image_uint8.shape[-2:]:
            raise DataError(f"pool images are {tuple(image_uint8.shape[-2:])} but the sample is "
                            f"{tuple(inpt.shape[-2:])}; put ReplaceWithSynthetic after a "
                            f"v2.Resize({tuple(image_uint8.shape[-2:])})")
        out = F.like_input(F.match_channels(image_uint8, inpt.shape[-3]), inpt)
        out = out.contiguous()
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out
    raise DataError(f"cannot replace an image of type {type(inpt).__name__}")


def _as_chw_uint8(image: PIL.Image.Image) -> torch.Tensor:
    """A PIL image as a uint8 tensor (C, H, W) (modes ``L`` and ``RGB``)."""
    if image.mode not in ("L", "RGB"):
        raise DataError(f"cannot vary a PIL image of mode {image.mode!r}: convert it to 'L' or 'RGB' first")
    array = np.array(image)  # a writable copy
    return torch.from_numpy(array[..., None] if array.ndim == 2 else array).permute(2, 0, 1)


def variation_like(source: Any, inpt: Any, label: int, seed: int) -> Any:
    """The source's variation of ``inpt`` (PIL image or tensor), as the same kind of object."""
    if isinstance(inpt, PIL.Image.Image):
        return pool_image_like(vary_like(source, _as_chw_uint8(inpt), label, seed=seed), inpt)
    if isinstance(inpt, torch.Tensor):
        out = vary_like(source, inpt.as_subclass(torch.Tensor), label, seed=seed)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out
    raise DataError(f"cannot replace an image of type {type(inpt).__name__}")


class ReplaceWithSynthetic(v2.Transform):
    """With probability ``p``, replace a sample's image by a synthetic image of the same class.

    Takes ``(image, label, ...)`` tuples or dicts with ``"image"`` and ``label_key``; the image may
    be a PIL image, a tensor (uint8, or float in ``[0, 1]``) or a ``tv_tensors.Image``, and the
    replacement has the same type, mode/dtype and size. Images come from a
    :class:`~augmentgen.mixing.SyntheticPool`, so no model runs in the worker. Other leaves pass
    through; the input is never modified in place.

    Stock torchvision datasets (``ImageFolder``, ``FashionMNIST``, ``CIFAR10``) pass only the
    image to ``transform=`` and do not take ``transforms=``: wrap them in
    :class:`~augmentgen.transforms.SyntheticDataset` instead, which runs this transform on the
    (image, class) pair and then the dataset's own transform. Use this class directly where the
    class is passed along: a ``transforms=`` two-argument callable of a VisionDataset that calls
    ``self.transforms(image, target)``, or your own ``__getitem__``.

    Given an anchored source instead of a pool (``ReplaceWithSynthetic(VariationSource(generator,
    "vary"), p=0.3)``), the replacement is a variation of the sample's own image, made with its
    label: same type, size, dtype and value range (float tensors in ``[0, 1]``, so before
    ``v2.Normalize``), seeded from torch's global random stream like the rest of v2 (DataLoader
    seeds it per worker). The generator then runs once per replaced image, in the worker, on
    the source's device (see :mod:`augmentgen.transforms.anchored` for the cost); a bank of
    variations made once in batches, ``SyntheticPool.from_variations(source, images, labels)``,
    is the fast path.

    Args:
        pool (SyntheticPool or AnchoredSource): the bank of synthetic images, or a source of
            variations of the sample's image (``VariationSource`` in ``mode="vary"``).
        p (float, defaults to 0.5): probability that a sample's image is replaced.
        label_key (str, defaults to ``"label"``): the class key of dict samples.

    Attributes:
        pool, source: the pool (``source`` None) or the anchored source (``pool`` None).

    Example::

        transform = v2.Compose([ReplaceWithSynthetic(pool, p=0.3), v2.ToImage(),
                                v2.ToDtype(torch.float32, scale=True)])
        image, label = transform(pil_image, 2)  # (image, class) in, (image, class) out
        sample = transform({"image": pil_image, "label": 2})  # or a dict
    """

    _transformed_types = (PIL.Image.Image, torch.Tensor, tv_tensors.Image)

    def __init__(self, pool, p: float = 0.5, *, label_key: str = "label"):
        super().__init__()
        self.p = check_probability(p)
        self.pool, self.source = check_pool_or_source(pool)
        self.label_key = label_key

    def forward(self, *inputs: Any) -> Any:
        # Overridden (as v2.CutMix does) because the class label is a pass-through leaf that
        # v2.Transform.forward never shows to make_params; the rest is the stock contract.
        sample = inputs if len(inputs) > 1 else inputs[0]
        label, label_leaf = _find_label(sample, self.label_key)
        flat_inputs, spec = tree_flatten(sample)
        # Hide the label from torchvision's "first plain tensor is the image" heuristic, so a
        # tensor label listed before the image is never mistaken for it.
        needs_transform_list = self._needs_transform_list(
            [None if x is label_leaf else x for x in flat_inputs])
        params = self.make_params([x for x, needs in zip(flat_inputs, needs_transform_list) if needs])
        params["label"] = label
        flat_outputs = [self.transform(x, params) if needs else x
                        for x, needs in zip(flat_inputs, needs_transform_list)]
        return tree_unflatten(flat_outputs, spec)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        replace = bool(torch.rand(()) < self.p)
        if self.source is not None:  # a seed for the variation's noise, from the global stream
            return {"replace": replace, "seed": int(torch.randint(2**62, ()))}
        # One bank position per call: every image leaf of the sample gets the same replacement.
        position = int(torch.randint(self.pool.per_class, ()))
        return {"replace": replace, "position": position}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        # Masks, boxes, videos, ... pass through: only images are replaced.
        is_other_tv_tensor = isinstance(inpt, tv_tensors.TVTensor) and not isinstance(inpt, tv_tensors.Image)
        if not params["replace"] or is_other_tv_tensor:
            return inpt
        label = params["label"]
        if self.source is not None:
            return variation_like(self.source, inpt, label, params["seed"])
        if not 0 <= label < self.pool.num_classes:
            raise DataError(f"label {label} is out of range for a {self.pool.num_classes}-class pool")
        return pool_image_like(self.pool.images[label, params["position"]], inpt)

    def extra_repr(self) -> str:
        return f"p={self.p}, pool={self.pool!r}" if self.source is None else f"p={self.p}, source={self.source!r}"
