"""Wrapping a DataLoader so that every batch it yields is mixed: :func:`augment_loader`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

from .._deprecation import renamed_argument
from ..data import LabelledImages
from ..errors import ConfigError, DataError
from ..models.base import ConditionalGenerator
from .batch import SyntheticMix
from .free_sources import FreeSource
from .pool import SyntheticPool
from .sources import AnchoredSource

__all__ = ["AugmentedLoader", "augment_loader"]


class AugmentedLoader:
    """An iterable over ``loader`` whose batches go through a :class:`SyntheticMix`.

    Batches may be ``(images, labels)`` tuples/lists or dicts with ``image_key``/``label_key``;
    they are moved to the mixer's device (its source's: the generator's, or the pool's bank's;
    ``non_blocking``) before mixing. ``len()`` is the wrapped loader's. Made by
    :func:`augment_loader`.
    """

    def __init__(self, loader: Iterable, mix: SyntheticMix, *, image_key: str = "image",
                 label_key: str = "label", to_device: bool = True):
        _check_loader(loader)
        self.loader = loader
        self.mix = mix
        self.image_key, self.label_key = image_key, label_key
        self.to_device = to_device

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        device = self.mix.device
        for batch in self.loader:
            if isinstance(batch, Mapping):
                missing = [k for k in (self.image_key, self.label_key) if k not in batch]
                if missing:
                    raise DataError(
                        f"the loader's batches are dicts with keys {sorted(batch)}, without {missing}: pass "
                        "augment_loader(..., image_key=<the images' key>, label_key=<the labels' key>)")
                images, labels = batch[self.image_key], batch[self.label_key]
            elif isinstance(batch, (tuple, list)) and len(batch) == 2:
                images, labels = batch
            else:
                raise DataError("augment_loader needs batches of (images, labels) or dicts with "
                                f"{self.image_key!r}/{self.label_key!r}; got {type(batch).__name__}")
            if not (isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor)):
                raise DataError(_not_collated(images, labels))
            if self.to_device:
                images = images.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)
            images, labels = self.mix(images, labels)
            if isinstance(batch, Mapping):
                # Other per-row keys cannot follow appended rows; keep only image and label.
                yield {self.image_key: images, self.label_key: labels}
            else:
                yield type(batch)((images, labels)) if isinstance(batch, list) else (images, labels)


def _not_collated(images, labels) -> str:
    """The message for a batch whose images or labels are not tensors."""
    got = f"got ({type(images).__name__}, {type(labels).__name__})"
    if isinstance(labels, int) or (isinstance(images, torch.Tensor) and images.ndim == 3):
        fix = ("a single sample: iterate a DataLoader(dataset, batch_size=...) over the dataset, not the "
               "dataset itself")
    else:
        fix = "collate them into tensors (a DataLoader's default collate_fn does)"
    return (f"augment_loader needs collated batches, images (B, C, H, W) and labels (B,) as tensors; {got}, "
            f"{fix}")


def _check_loader(loader) -> None:
    """What augment_loader wraps: an iterable of batches, not a dataset of single samples."""
    if isinstance(loader, LabelledImages):
        raise ConfigError("augment_loader wraps a DataLoader (or any iterable) of collated (images, labels) "
                          "batches, got a LabelledImages (single samples): pass train.loader(batch_size=64) "
                          "or DataLoader(...)")
    if not (isinstance(loader, Iterable) or hasattr(loader, "__getitem__")):
        raise ConfigError("augment_loader wraps a DataLoader (or any iterable) of collated (images, labels) "
                          f"batches, got a {type(loader).__name__}: pass DataLoader(dataset, batch_size=...)")


@renamed_argument("generator", "source")
def augment_loader(loader: Iterable, source: ConditionalGenerator | SyntheticPool | FreeSource | AnchoredSource,
                   ratio: float = 0.5, *, image_key: str = "image", label_key: str = "label", to_device: bool = True,
                   **mix_kwargs: Any) -> AugmentedLoader:
    """Wrap any DataLoader so that every batch it yields is mixed with synthetic rows.

    ``for images, labels in augment_loader(loader, generator, ratio=0.5): ...`` — the loop is
    unchanged. Each batch of B real rows comes out with ``round(ratio * B)`` synthetic rows
    appended (:class:`SyntheticMix`'s default ``mode="append"``, which says why;
    ``mode="replace"`` keeps B). ``mix_kwargs`` go to :class:`SyntheticMix` (``mode``,
    ``balance``, ``output_range``, ``mean``/``std``, ``seed``, ``temperature``, ...).
    ``source`` (formerly ``generator``: that keyword still works, with a ``FutureWarning``) is
    where the synthetic rows come from: a conditional generator, a
    :class:`~augmentgen.mixing.SyntheticPool` (call ``pool.step_epoch()`` after each epoch) or any
    row source :class:`SyntheticMix` takes. Batches are moved to the source's device (the
    generator's, or the pool's bank's).
    """
    return AugmentedLoader(loader, SyntheticMix(source, ratio, **mix_kwargs),
                           image_key=image_key, label_key=label_key, to_device=to_device)
