"""``SyntheticDataset``: synthetic images in any stock torchvision dataset (ImageFolder, FashionMNIST, ...).

torchvision's datasets pass only the image to ``transform=`` (``ImageFolder``, ``MNIST``, ``CIFAR10``)
and most of them do not accept ``transforms=``, so a per-sample transform cannot see the class it
has to draw a synthetic image of. This wrapper can: it reads the raw (image, class) pair, replaces
the image with probability ``p``, then runs the dataset's own transforms on the result, so random
crops, flips and normalisation apply to synthetic and real images alike.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset, Subset
from torchvision.datasets.vision import StandardTransform

from .v2 import ReplaceWithSynthetic

_TRANSFORM_ATTRS = ("transform", "target_transform", "transforms")


def _after_transforms(dataset: Any) -> Callable[[Any, Any], tuple[Any, Any]] | None:
    """The dataset's own (image, target) transforms, as it would have applied them."""
    transform, target_transform = getattr(dataset, "transform", None), getattr(dataset, "target_transform", None)
    if transform is not None or target_transform is not None:
        # Read from the attributes, not from ``transforms``: VisionDataset builds that once in
        # __init__, so a ``dataset.transform = ...`` set later (a common pattern) is only here.
        # StandardTransform, not a closure, so that the wrapper pickles for spawned workers.
        return StandardTransform(transform, target_transform)
    return getattr(dataset, "transforms", None)


def _without_transforms(dataset: Any) -> tuple[Any, Callable[[Any, Any], tuple[Any, Any]] | None]:
    """(a shallow copy of ``dataset`` yielding raw (image, class) pairs, its transforms).

    The user's dataset object is never modified: other loaders may share it.
    """
    if isinstance(dataset, Subset):  # random_split's result: the transforms live on the inner dataset
        inner, after = _without_transforms(dataset.dataset)
        return Subset(inner, dataset.indices), after
    after = _after_transforms(dataset)
    if after is None:
        return dataset, None
    raw = copy.copy(dataset)
    for name in _TRANSFORM_ATTRS:
        if hasattr(raw, name):
            setattr(raw, name, None)
    return raw, after


class SyntheticDataset(Dataset):
    """Wrap a dataset of (image, class) so that each image is replaced, with probability ``p``,
    by a synthetic image of the same class, before the dataset's own transforms run.

    Works with stock torchvision datasets, whose ``transform=`` sees only the image
    (``ImageFolder``, ``FashionMNIST``, ``CIFAR10``, a ``random_split`` ``Subset`` of one), and with
    any map-style dataset returning ``(image, class, ...)``: its ``transform``,
    ``target_transform`` or ``transforms`` attributes are lifted off a shallow copy (the dataset
    passed in is not modified) and applied after the replacement. A dataset without those
    attributes has the replacement applied to what it returns, which must then be a PIL image,
    a uint8 tensor or a float tensor in ``[0, 1]``. Synthetic images come from a
    :class:`~augmentgen.mixing.SyntheticPool`, so no model runs in DataLoader workers; the
    wrapper pickles (spawned workers) with the pool's shared-memory bank. Other attributes
    (``classes``, ``targets``, ...) are the wrapped dataset's.

    Args:
        dataset (Dataset): the real data, yielding ``(image, class index, ...)``.
        pool (SyntheticPool or AnchoredSource): the bank of synthetic images, of the dataset's
            classes; or a ``VariationSource(generator, "vary")``, which replaces an image by a
            variation of itself (one generator call per replaced image, see
            :class:`~augmentgen.transforms.ReplaceWithSynthetic`).
        p (float, defaults to 0.5): probability that a sample's image is replaced.

    Example::

        pool = SyntheticPool(generator, per_class=64)
        train_tf = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
        train = SyntheticDataset(ImageFolder(root, transform=train_tf), pool, p=0.3)
        images, labels = next(iter(DataLoader(train, batch_size=4)))
    """

    def __init__(self, dataset: Dataset, pool: Any, p: float = 0.5):
        self.replace = ReplaceWithSynthetic(pool, p=p)
        self.dataset = dataset
        self._raw, self._after = _without_transforms(dataset)

    @property
    def pool(self) -> Any:
        """The :class:`~augmentgen.mixing.SyntheticPool` images are drawn from (None with a source)."""
        return self.replace.pool

    @property
    def source(self) -> Any:
        """The anchored source that varies the images (None with a pool)."""
        return self.replace.source

    @property
    def p(self) -> float:
        """The probability that a sample's image is replaced."""
        return self.replace.p

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, index: int) -> Any:
        sample = self.replace(self._raw[index])
        if self._after is None or not isinstance(sample, (tuple, list)):
            return sample
        image, target = self._after(sample[0], sample[1])
        return (image, target, *sample[2:])

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found normally; guarded so unpickling (no __dict__ yet)
        # never recurses.
        if name.startswith("__") or "dataset" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["dataset"], name)

    def __repr__(self) -> str:
        what = f"pool={self.pool!r}" if self.source is None else f"source={self.source!r}"
        return f"SyntheticDataset({self.dataset!r}, p={self.p}, {what})"
