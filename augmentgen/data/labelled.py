"""``LabelledImages``: the one in-memory form every data source is turned into."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .._images import to_signed_unit
from .._labels import check_class_indices, check_one_label_per_image
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
        images = _image_tensor(images)
        class_names = check_class_names(class_names)
        named = None if class_names is None else len(class_names)
        labels = check_integer_labels(labels, named, classes=f"class_names names {named} classes",
                                      fix="give each image the index of its class in class_names, or add the "
                                          "missing class names")
        check_one_label_per_image(images, labels, what=source)
        if len(labels) == 0:
            raise DataError("the dataset is empty (0 images); pass data with images of every class")
        num_classes = named if named is not None else int(labels.max()) + 1
        counts = torch.bincount(labels, minlength=num_classes)
        if num_classes < 2 or int((counts > 0).sum()) < 2:
            only = repr(class_names[int(labels[0])]) if class_names else str(int(labels[0]))
            where = f" ({source})" if source else ""
            raise DataError(
                f"the dataset{where} has a single class ({only}); a conditional generator needs images of at "
                "least two classes (an image folder holds one sub-folder of images per class)"
            )
        _refuse_empty_classes(counts, class_names)
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


def _image_tensor(images) -> torch.Tensor:
    """``images`` as one uint8 tensor (N, C, H, W), or a DataError that says how to make one."""
    if isinstance(images, (list, tuple)) and images and isinstance(images[0], (torch.Tensor, np.ndarray)):
        raise DataError(f"images must be one uint8 tensor or array (N, C, H, W), got a {type(images).__name__} "
                        "of arrays; stack them first: torch.stack(images)")
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8:
        hint = (" (floats in [0, 1]: (images * 255).round().to(torch.uint8), or load_data, which scales them)"
                if images.dtype.is_floating_point else "")
        raise DataError(f"images must be uint8 (N, C, H, W), got dtype {images.dtype}{hint}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        # A channels-last array (N, H, W, C) is the usual form of images read with PIL or numpy.
        hint = (": channels-last? pass images.permute(0, 3, 1, 2)"
                if images.ndim == 4 and images.shape[-1] in (1, 3) else "")
        raise DataError(f"images must be shaped (N, C, H, W) with C 1 or 3, got {tuple(images.shape)}{hint}")
    return images


def check_class_names(class_names) -> list[str] | None:
    """``class_names`` as a list of distinct, non-empty strings (or None), else a DataError.

    A string would be read as one name per character, a dict as its keys, and two classes of
    one name could not be told apart when sampling by name.
    """
    if class_names is None:
        return None
    if isinstance(class_names, (str, bytes, dict)) or not isinstance(class_names, (Sequence, np.ndarray)):
        raise DataError(f"class_names must be a list of strings, one per class, got the "
                        f"{type(class_names).__name__} {class_names!r}"
                        + (f"; for one class pass [{class_names!r}]" if isinstance(class_names, str) else ""))
    names = list(class_names)
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise DataError(f"class_names must be non-empty strings, got {bad[0]!r} among {names[:10]}; "
                        "pass e.g. [str(n) for n in class_names]")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"class_names repeats {repeated}: two classes of one name cannot be told apart; "
                        "give every class its own name")
    return [str(n) for n in names]  # np.str_ entries as plain str


def _refuse_empty_classes(counts: torch.Tensor, class_names: list[str] | None) -> None:
    """Every class needs an image; without class names, say how to renumber the labels."""
    empty = (counts == 0).nonzero().flatten().tolist()
    if not empty:
        return
    if class_names:
        names = [class_names[i] for i in empty]
        raise DataError(f"class(es) {names} have no images; remove them from class_names or add images")
    present = (counts > 0).nonzero().flatten().tolist()
    raise DataError(
        f"the labels {present[:10]}{' ...' if len(present) > 10 else ''} leave class(es) {empty[:10]} without "
        "images: labels must number the classes 0..K-1, each with images; renumber them, e.g. "
        "labels = np.unique(labels, return_inverse=True)[1], or pass class_names"
    )


def check_integer_labels(labels, num_classes: int | None = None, *, classes: str = "", fix: str = "") -> torch.Tensor:
    """Validate labels as class indices (>= 0, below ``num_classes`` when given) and return them
    as int64 (N,).

    The rules are :func:`augmentgen._labels.check_class_indices`', with what the data layer adds:
    whole floats are taken (label columns are often stored as floats), and missing labels (None)
    or class names get a message saying how to encode them. ``classes`` and ``fix`` are that
    function's, for labels out of range.
    """
    if not isinstance(labels, torch.Tensor):
        labels = np.asarray(labels)
        if labels.dtype.kind in "USO":  # torch.as_tensor fails on these with no hint
            _refuse_label_objects(labels)
    return check_class_indices(labels, num_classes, classes=classes, fix=fix, whole_floats=True)


def _refuse_label_objects(labels: np.ndarray) -> None:
    """Labels that are not numbers: missing ones (None), or class names given as labels."""
    flat = labels.ravel().tolist()
    missing = sum(v is None for v in flat)
    if missing:
        raise DataError(f"{missing} of {len(flat)} labels are missing (None); drop those images first, "
                        "or give each one its class index")
    raise DataError(f"labels must be integer class indices, got {labels.dtype} values like {flat[:3]}; encode "
                    "them: names, labels = np.unique(labels, return_inverse=True), then pass class_names=list(names)")


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
