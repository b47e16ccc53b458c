"""Class-index labels: the one check that labels are a 1-D integer tensor of classes in ``[0, K)``.

Every layer that takes labels (the data layer, the generators, the pool, the teacher, the mixer)
checks them with :func:`check_class_indices`, so that one rule and one wording hold everywhere;
each caller adds only what is its own: who defines the classes (``classes``), how to fix a label
it does not know (``fix``), the label forms it accepts (``hint``), and whether a range check may
read labels back from an accelerator (``range_check``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch

from .errors import DataError

__all__ = ["RangeCheck", "check_class_indices", "check_one_label_per_image", "shown_values"]

#: How :func:`check_class_indices` checks the values: ``"sync"`` everywhere (off the CPU one host
#: sync), ``"cpu"`` only on the CPU (off it, no check and no sync), ``"assert"`` on the CPU and,
#: off it, with a device-side assert (no sync; a label out of range fails later as a device
#: error naming no label), ``"none"`` not at all (the form only).
RangeCheck = Literal["sync", "cpu", "assert", "none"]

#: A part of a message: the text, or a function that makes it, called only on a refusal (so that
#: a per-batch caller builds no strings). ``fix`` is called with the refused values.
Text = str | Callable[..., str]


def shown_values(values: Sequence) -> str:
    """Sorted distinct ``values`` for a message: all of a few, else the first three and the last."""
    values = sorted(set(values))
    return str(values) if len(values) <= 6 else f"[{', '.join(map(str, values[:3]))}, ..., {values[-1]}]"


def check_one_label_per_image(images, labels, *, what: str = "") -> None:
    """DataError unless ``images`` and ``labels`` are as long (``what`` names the caller or the data)."""
    if len(images) != len(labels):
        where = f"{what}: " if what else ""
        raise DataError(f"{where}{len(images)} images but {len(labels)} labels; give one class index per image "
                        "(labels[i] is the class of images[i])")


def check_class_indices(labels, num_classes: int | None = None, *, what: str = "labels", classes: Text = "",
                        fix: Text = "", hint: Text = "", whole_floats: bool = False,
                        range_check: RangeCheck = "sync") -> torch.Tensor:
    """``labels`` as int64 class indices (N,) on their device, or a :class:`DataError` naming the
    problem and its fix.

    Labels must be a tensor or something ``torch.as_tensor`` reads (a list, an array), 1-D (a
    one-hot (N, K) is told to use ``labels.argmax(1)``), of an integer dtype (bool, complex and
    float are refused: as ints a mask would be classes 0 and 1 and 1.5 would be class 1), with
    values in ``[0, num_classes)``, or ``>= 0`` when ``num_classes`` is None. The values cost one
    reduction and, where ``range_check`` reads them, one host read; no per-label Python loop.

    Args:
        labels: the labels to check.
        num_classes: K, or None where the caller does not know it (values are only ``>= 0``).
        what: the argument's name in messages.
        classes: who defines the classes, for a label out of range (``"the teacher gives 3
            classes"``; default ``"there are K classes"``).
        fix: what to do about labels ``>= K``, or a function of the sorted distinct refused
            values that says it; negative labels get the shared fix (drop or remap those rows).
        hint: the label forms the caller accepts, added to every refusal of the form (type,
            shape, dtype), not to refusals of values.
        whole_floats: accept floats that are all whole and finite (the data layer's files store
            labels as floats); this reads the values once, even off the CPU.
        range_check: where the values are checked (:data:`RangeCheck`).
    """
    labels = _as_tensor(labels, what, hint)
    _check_shape(labels, num_classes, what, hint)
    labels = _as_int64(labels, what, hint, whole_floats)
    if range_check == "none" or not labels.numel():
        return labels
    off_cpu = labels.device.type != "cpu"
    if off_cpu and range_check == "cpu":  # the caller's indexing asserts, or it checked them before
        return labels
    in_range = (labels >= 0) if num_classes is None else (labels >= 0) & (labels < num_classes)
    if off_cpu and range_check == "assert":  # queued on the device: no host sync
        top = "" if num_classes is None else f", < {num_classes}"
        torch._assert_async(in_range.all(), f"{what} must be class indices >= 0{top}")
        return labels
    if not bool(in_range.all()):  # one reduction per call; off the CPU, reading it back is one host sync
        raise DataError(_range_problem(labels[~in_range].unique().tolist(), num_classes, what, classes, fix))
    return labels


def _text(part: Text, *args) -> str:
    return part(*args) if callable(part) else part


def _refusal(problem: str, fix: str, hint: Text) -> str:
    """``problem; fix; hint``, leaving out empty parts."""
    return "; ".join(part for part in (problem, fix, _text(hint)) if part)


def _as_tensor(labels, what: str, hint: Text) -> torch.Tensor:
    """``labels`` as a tensor; class names and other unreadable values get a message with the fix."""
    if isinstance(labels, torch.Tensor):
        return labels
    try:
        tensor = torch.as_tensor(labels)
        # An empty list reads as float32: no labels, not float labels.
        return tensor.long() if not tensor.numel() and isinstance(labels, (list, tuple)) else tensor
    except (TypeError, ValueError, RuntimeError) as exc:
        names = (isinstance(labels, (str, bytes))
                 or getattr(getattr(labels, "dtype", None), "kind", None) in ("U", "S"))  # a numpy array
        if not names and isinstance(labels, Sequence):  # an error path: a loop costs nothing here
            names = any(isinstance(item, (str, bytes)) for item in labels)
        fix = ("class names? map them to class indices first (e.g. class_names.index(name))" if names
               else "pass a 1-D integer tensor or array, one class index per image")
        raise DataError(_refusal(f"{what} must be class indices, got the {type(labels).__name__} "
                                 f"{labels!r:.80}, which torch cannot read ({exc})", fix, hint)) from None


def _check_shape(labels: torch.Tensor, num_classes: int | None, what: str, hint: Text) -> None:
    """1-D; shape comes first, as a float one-hot (N, K) is better told to argmax than to .long()."""
    if labels.ndim == 1:
        return
    shape = tuple(labels.shape)
    if labels.ndim == 2 and shape[1] > 1 and num_classes in (None, shape[1]):
        fix = "one-hot labels? pass labels.argmax(1)"
    elif labels.ndim == 0:
        fix = "for one image pass labels.reshape(1) (or [label])"
    else:
        fix = "pass labels.reshape(-1) to flatten them"
    raise DataError(_refusal(f"{what} must be 1-D, one class index per image, got shape {shape}", fix, hint))


def _as_int64(labels: torch.Tensor, what: str, hint: Text, whole_floats: bool) -> torch.Tensor:
    """``labels`` as int64; bool, complex and (unless ``whole_floats``) float dtypes refused."""
    if labels.dtype == torch.bool:
        fix = "a mask is not class indices: to select rows, index with it; for classes 0 and 1 use labels.long()"
    elif labels.is_complex():
        fix = "pass integer class indices"
    elif labels.dtype.is_floating_point and whole_floats:
        whole = labels.isfinite() & (labels == labels.trunc())
        if labels.numel() and not bool(whole.all()):
            bad = labels[~whole].unique()[:6].tolist()
            raise DataError(f"{what} must be whole numbers, class indices; got non-integer float labels such as "
                            f"{bad}: fix the label column, or map the values to class indices 0..K-1")
        return labels.long()
    elif labels.dtype.is_floating_point:
        fix = "float labels are refused rather than rounded: use labels.long() if they are whole"
    else:
        return labels.long()  # the same tensor when it is int64 already
    raise DataError(_refusal(f"{what} must be integer class indices, got dtype {labels.dtype}", fix, hint))


def _range_problem(bad: list, num_classes: int | None, what: str, classes: Text, fix: Text) -> str:
    """The message for the refused values ``bad`` (sorted, distinct)."""
    negative = [b for b in bad if b < 0]  # a few distinct values: an error path
    drop = f"drop the rows labelled {shown_values(negative)} (e.g. unlabelled ones)"
    if num_classes is None:
        return (f"{what} {shown_values(negative)} are negative: class indices start at 0 (labels must be >= 0); "
                f"{drop} or renumber the labels from 0")
    high = num_classes - 1
    who = _text(classes) or f"there are {num_classes} classes"
    if negative:
        return (f"{what} {shown_values(bad)} are outside [0, {high}]: {who}; class indices start at 0: {drop} "
                f"or remap the labels to [0, {high}]")
    todo = _text(fix, bad) or f"pass class indices 0..{high}, or remap the labels to them"
    return f"{what} {shown_values(bad)} are outside [0, {high}]: {who}; {todo}"
