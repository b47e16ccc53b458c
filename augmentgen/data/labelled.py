"""``LabelledImages``: the one in-memory form every data source is turned into."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .._images import to_signed_unit
from ..errors import ConfigError, DataError


class LabelledImages(Dataset):
    """Labelled images held as one uint8 tensor (N, C, H, W) and int64 labels (N,).

    Indexing one item gives ``(image uint8 (C, H, W), label int)``. The DataLoader path is
    batched: :meth:`__getitems__` gathers a whole batch with one tensor index, so a loader over
    this dataset never loops over samples in Python (see :meth:`loader`).

    Args:
        images: uint8 tensor or array (N, C, H, W).
        labels: integer tensor or array (N,), values in ``[0, len(class_names))``.
        class_names: one name per class; every class must have at least one image.
        source: a short description of where the data came from (shown in reports).
    """

    def __init__(self, images, labels, class_names: Sequence[str] | None = None, *, source: str = ""):
        images = torch.as_tensor(images)
        labels = torch.as_tensor(labels)
        if images.dtype != torch.uint8:
            raise DataError(f"images must be uint8 (N, C, H, W), got dtype {images.dtype}")
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise DataError(
                f"images must be shaped (N, C, H, W) with C 1 or 3, got {tuple(images.shape)}"
            )
        labels = check_integer_labels(labels)
        if len(images) != len(labels):
            raise DataError(f"{len(images)} images but {len(labels)} labels")
        if len(labels) == 0:
            raise DataError("the dataset is empty")
        num_classes = len(class_names) if class_names is not None else int(labels.max()) + 1
        if int(labels.max()) >= num_classes:
            raise DataError(
                f"label {int(labels.max())} is out of range for {num_classes} class names"
            )
        counts = torch.bincount(labels, minlength=num_classes)
        if num_classes < 2 or int((counts > 0).sum()) < 2:
            raise DataError(
                "the dataset has a single class; a conditional generator needs at least two"
            )
        empty = (counts == 0).nonzero().flatten().tolist()
        if empty:
            names = [class_names[i] if class_names else str(i) for i in empty]
            raise DataError(
                f"class(es) {names} have no images; remove them from class_names or add images"
            )
        self.images = images.contiguous()
        self.labels = labels
        self.class_names = list(class_names) if class_names is not None else [
            str(i) for i in range(num_classes)
        ]
        self.source = source

    # ------------------------------------------------------------------ views
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.images[index], self.labels[index]

    def subset(self, indices) -> LabelledImages:
        """The rows at ``indices`` (ints, or a bool mask of ``len(self)``), with the same class names and source."""
        index = torch.as_tensor(indices)
        if index.dtype == torch.bool:  # as ints, a mask would pick rows 0 and 1 over and over
            if index.shape != self.labels.shape:
                raise DataError(f"a bool mask must have one value per row ({len(self)}), got shape {tuple(index.shape)}")
            index = index.nonzero().flatten()
        index = index.long()
        return LabelledImages(self.images[index], self.labels[index], self.class_names,
                              source=self.source)

    def loader(self, batch_size: int, *, shuffle: bool = True, drop_last: bool = True,
               seed: int | None = None, num_workers: int = 0) -> DataLoader:
        """A DataLoader of (images uint8 (B, C, H, W), labels (B,)) batches, gathered in one index."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return DataLoader(
            self, batch_size=min(batch_size, len(self)) if drop_last else batch_size,
            shuffle=shuffle, drop_last=drop_last, generator=generator,
            collate_fn=collate_gathered_batch, num_workers=num_workers,
        )

    def to_float(self) -> torch.Tensor:
        """All images as float in [-1, 1] (the generators' range)."""
        return to_signed_unit(self.images)

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return (f"LabelledImages({len(self)} images, {self.num_classes} classes, "
                f"shape=({c}, {h}, {w}), source={self.source!r})")


def collate_gathered_batch(batch):
    """Collate for :meth:`LabelledImages.__getitems__`: the batch is already gathered."""
    return batch


def check_integer_labels(labels) -> torch.Tensor:
    """Validate labels as non-negative integers and return them as int64 (N,)."""
    labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if labels.ndim != 1:
        raise DataError(f"labels must be 1-D, got shape {tuple(labels.shape)}")
    if labels.dtype == torch.bool or labels.is_complex():
        raise DataError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.dtype.is_floating_point:
        if labels.numel() and not bool((labels == labels.round()).all() & labels.isfinite().all()):
            raise DataError("labels must be integers; got non-integer float labels")
        labels = labels.long()
    labels = labels.long()
    if labels.numel() and int(labels.min()) < 0:
        raise DataError(f"labels must be >= 0, got {int(labels.min())}")
    return labels


def warn_if_class_names_differ(model_names: Sequence[str] | None, data_names: Sequence[str] | None, *,
                               model: str, data: str, stacklevel: int = 2) -> None:
    """Warn, in one line naming the first differences, when a generator's classes carry other
    names than the data's: labels pair by index, so a model trained on other data would label its
    rows with the data's classes. Silent when either side has no names."""
    ours, theirs = list(model_names or []), list(data_names or [])
    if not ours or not theirs or ours == theirs:
        return
    differ = [f"{i}: {a!r} vs {b!r}" for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    warnings.warn(f"{model} names its classes otherwise than {data} ({'; '.join(differ[:3])}"
                  f"{'; ...' if len(differ) > 3 else ''}); its class i is taken as the data's class i. If that "
                  "is not what you mean, pass the model trained on this data", UserWarning, stacklevel=stacklevel + 1)
