"""Teacher classifiers for synthetic rows: soft targets and a synthetic-row loss weight.

Synthetic rows that a classifier trained on real data does not recognise act as label noise.
:class:`~augmentgen.mixing.SyntheticMix` can filter them with a teacher (``filter_threshold``) and
give them the teacher's soft targets (``soft_labels=True``); this module holds the parts that are
useful on their own:

- :class:`TeacherLabels`: ``(images, labels) -> (images, soft_targets)`` with the teacher's
  tempered softmax blended with the one-hot label, so that a baseline arm trained on real data
  only can get exactly the soft targets the mixer gives its real rows (``soft_real_labels=True``).
- :func:`weighted_cross_entropy`: cross-entropy with weight 1 on real rows and
  ``synthetic_weight`` on synthetic rows (the ``mask`` from ``return_mask=True``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from .._labels import check_class_indices, check_one_label_per_image, shown_values
from ..errors import ConfigError, DataError
from .value_range import check_mean_std, check_output_range, to_generator_range

__all__ = ["TeacherLabels", "weighted_cross_entropy"]


@contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Run ``module`` in eval mode under ``inference_mode``, then restore every submodule's mode."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        for m, mode in modes:
            m.training = mode


def _check_teacher_args(teacher: nn.Module, label_temperature: float, soft_label_weight: float,
                        num_classes: int | None) -> None:
    if not isinstance(teacher, nn.Module):
        raise ConfigError(f"teacher must be an nn.Module (a classifier returning logits), got "
                          f"{type(teacher).__name__}")
    if (isinstance(label_temperature, bool) or not isinstance(label_temperature, (int, float))
            or not math.isfinite(label_temperature) or label_temperature <= 0):
        raise ConfigError(f"label_temperature must be a finite number > 0, got {label_temperature!r}")
    if (isinstance(soft_label_weight, bool) or not isinstance(soft_label_weight, (int, float))
            or not 0.0 <= soft_label_weight <= 1.0):
        raise ConfigError(f"soft_label_weight must be in [0, 1] (0: one-hot labels, 1: the teacher's "
                          f"soft targets only), got {soft_label_weight!r}")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 2):
        raise ConfigError(f"num_classes must be an int >= 2, got {num_classes!r}")


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Float32 one-hot targets (N, K), as torchvision's ``v2.MixUp``/``v2.CutMix`` make them."""
    out = torch.zeros(len(labels), num_classes, dtype=torch.float32, device=labels.device)
    return out.scatter_(1, labels.long().view(-1, 1), 1.0)


class TeacherLabels:
    """Soft targets from a teacher classifier: ``images, targets = teacher_labels(images, labels)``.

    Each row's target is ``soft_label_weight * softmax(teacher(images) / label_temperature) +
    (1 - soft_label_weight) * one_hot(label)``: float32 (N, K), every row summing to 1, the format
    of torchvision's ``v2.MixUp``/``v2.CutMix`` (``F.cross_entropy(logits, targets)`` works
    unchanged). The images come back untouched. :class:`SyntheticMix` uses this class for its
    soft labels, so a baseline arm trained on real data only can get the same teacher targets as
    the mixer's real rows under ``soft_real_labels=True``.

    The teacher runs in eval mode under ``inference_mode`` on images mapped to the generators'
    ``[-1, 1]`` range; the train/eval mode of each of its modules is restored afterwards.

    Args:
        teacher (nn.Module): a classifier taking float images (N, C, H, W) in ``[-1, 1]`` and
            returning logits (N, K), e.g. :class:`augmentgen.metrics.ReferenceClassifier` trained
            on the real data; on the batches' device.
        label_temperature (float, defaults to 1.0): the teacher's logits are divided by it before
            the softmax; above 1 gives softer targets.
        soft_label_weight (float, defaults to 1.0): share of the teacher's softmax in the target,
            in [0, 1]; the rest is the one-hot label.
        num_classes (int, optional): K; checked against the teacher's logits. Defaults to the
            width of the logits.
        output_range (tuple[float, float], defaults to (-1, 1)): value range of float batches,
            mapped back to ``[-1, 1]`` for the teacher (as in :class:`SyntheticMix`).
        mean, std (sequence of float, optional): torchvision-style normalisation of float
            batches; overrides ``output_range``. ``uint8`` batches are taken as ``[0, 255]``.
    """

    def __init__(
        self,
        teacher: nn.Module,
        label_temperature: float = 1.0,
        soft_label_weight: float = 1.0,
        num_classes: int | None = None,
        *,
        output_range: tuple[float, float] = (-1.0, 1.0),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ):
        _check_teacher_args(teacher, label_temperature, soft_label_weight, num_classes)
        check_mean_std(mean, std)
        low, high = check_output_range(output_range)
        self.teacher = teacher
        self.label_temperature = float(label_temperature)
        self.soft_label_weight = float(soft_label_weight)
        self.num_classes = num_classes
        self.output_range = (low, high)
        self.mean, self.std = mean, std

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's float32 logits (N, K) of float images in ``[-1, 1]`` (no autograd)."""
        with evaluating(self.teacher):
            logits = self.teacher(images)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or len(logits) != len(images):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise DataError(f"the teacher must return logits (N, K) for N images, got {shape} for "
                            f"{len(images)} images")
        if self.num_classes is not None and logits.shape[1] != self.num_classes:
            raise DataError(f"the teacher returns {logits.shape[1]} logits per image but there are "
                            f"{self.num_classes} classes")
        # A normal tensor (not an inference tensor), so that targets made from it can be saved
        # for backward by the classifier's loss.
        return logits.float().clone()

    def targets_from_logits(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``w * softmax(logits / T) + (1 - w) * one_hot(labels)``: float32 (N, K)."""
        soft = torch.softmax(logits.float() / self.label_temperature, dim=1)
        if self.soft_label_weight == 1.0:
            return soft
        hard = one_hot(labels, logits.shape[1])
        return soft.mul_(self.soft_label_weight).add_(hard, alpha=1.0 - self.soft_label_weight)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, labels (N,) int) -> (images, soft targets (N, K) float32)``.

        Labels outside ``[0, K)`` are a :class:`~augmentgen.errors.DataError`: checked on the
        first call and on every call with labels on the CPU; on an accelerator later calls are not
        range-checked, which would cost a host sync per batch.
        """
        if not isinstance(images, torch.Tensor):
            raise DataError(f"TeacherLabels takes collated batches, images a tensor (N, C, H, W) and labels "
                            f"(N,); got images as a {type(images).__name__}: stack them first "
                            "(torch.stack(images)) or use a DataLoader")
        if not isinstance(labels, torch.Tensor):
            raise DataError(f"TeacherLabels takes collated batches, labels a tensor (N,) of class indices; got "
                            f"labels as a {type(labels).__name__}: pass torch.as_tensor(labels) or use a DataLoader")
        # Before the teacher runs: the form, and the range where K is known (else once its logits give K).
        labels = self._checked_labels(labels, self.num_classes)
        check_one_label_per_image(images, labels, what="TeacherLabels")
        teacher_images = to_generator_range(images, output_range=self.output_range, mean=self.mean,
                                            std=self.std)
        logits = self.logits(teacher_images)
        if self.num_classes is None:
            self._checked_labels(labels, logits.shape[1])
        return images, self.targets_from_logits(logits, labels)

    def _checked_labels(self, labels: torch.Tensor, k: int | None) -> torch.Tensor:
        """Labels as int64, in ``[0, k)`` when ``k`` is given: a host read, so on an accelerator
        only on the first call (later ones would cost a sync per batch)."""
        if k is None:
            return check_class_indices(labels, range_check="none")
        checked = check_class_indices(
            labels, k, classes=f"the teacher gives {k} classes",
            fix=f"pass class indices 0..{k - 1} of its classes, or a teacher trained on these classes",
            range_check="cpu" if getattr(self, "_labels_checked", False) else "sync")
        self._labels_checked = True
        return checked

    def __repr__(self) -> str:
        return (f"TeacherLabels(teacher={type(self.teacher).__name__}, label_temperature="
                f"{self.label_temperature}, soft_label_weight={self.soft_label_weight}, "
                f"num_classes={self.num_classes})")


def weighted_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    synthetic_weight: float = 1.0,
    *,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy with weight 1 on real rows and ``synthetic_weight`` on synthetic rows.

    ``sum_i w_i * CE_i / sum_i w_i`` with ``w_i = synthetic_weight`` where ``mask`` is True, else 1,
    and ``CE_i`` the row's ``F.cross_entropy`` with ``label_smoothing``; with ``synthetic_weight=1``
    it is ``F.cross_entropy(logits, targets, label_smoothing=label_smoothing)`` (up to float
    rounding). The one-line form::

        w = torch.where(mask, synthetic_weight, 1.0)
        loss = (F.cross_entropy(logits, targets, reduction="none") * w).sum() / w.sum()

    Args:
        logits (torch.Tensor): (N, K) classifier output.
        targets (torch.Tensor): (N,) int class indices, or (N, K) float soft targets.
        mask (torch.Tensor): (N,) bool, True on synthetic rows (``SyntheticMix(...)(..., return_mask=True)``).
        synthetic_weight (float, defaults to 1.0): weight of a synthetic row, >= 0.
        label_smoothing (float, defaults to 0.0): ``F.cross_entropy``'s, in [0, 1]: each row's
            target becomes ``(1 - ε) * target + ε / K`` (class indices as one-hot), soft targets
            included. :func:`~augmentgen.metrics.train_classifier` uses 0.1.

    Returns:
        A scalar tensor; 0 when every weight is 0.

    Raises:
        DataError: logits that are not float (N, K), targets that are neither class indices (N,)
            (int64 or uint8; on the CPU, in ``[0, K)``) nor probabilities (N, K), a mask that is
            not bool (N,), or tensors on different devices. Shapes and dtypes are checked without
            a host sync; the range of class indices only for CPU targets (it needs a host read).
    """
    if (isinstance(synthetic_weight, bool) or not isinstance(synthetic_weight, (int, float))
            or not math.isfinite(synthetic_weight) or synthetic_weight < 0):
        raise ConfigError(f"synthetic_weight must be a finite number >= 0, got {synthetic_weight!r}")
    if (isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float))
            or not 0.0 <= label_smoothing <= 1.0):
        raise ConfigError(f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not logits.dtype.is_floating_point:
        raise DataError(f"logits must be a float tensor (N, K), the classifier's output, got {_described(logits)}")
    _check_targets(logits, targets)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != logits.shape[:1]:
        got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise DataError(f"mask must be a bool tensor ({len(logits)},) marking synthetic rows, got {got}")
    if mask.device != logits.device:
        raise DataError(f"mask is on {mask.device} but logits on {logits.device}: use mask.to(logits.device)")
    per_row = F.cross_entropy(logits, targets, reduction="none", label_smoothing=label_smoothing)
    weights = torch.where(mask, synthetic_weight, 1.0).to(per_row.dtype)
    return (per_row * weights).sum() / weights.sum().clamp_min(torch.finfo(per_row.dtype).tiny)


def _described(value) -> str:
    """A tensor's dtype and shape (``float32 (8,)``), else the type's name, for a message."""
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')} {tuple(value.shape)}"
    return type(value).__name__


def _check_targets(logits: torch.Tensor, targets) -> None:
    """``targets`` for ``F.cross_entropy(logits, targets)``: int64 (or uint8) class indices (N,), or
    float probabilities (N, K), on the logits' device. Shapes and dtypes cost nothing; the range of
    class indices is a host read, so it is checked only for CPU targets."""
    n, k = logits.shape
    indices = (isinstance(targets, torch.Tensor) and tuple(targets.shape) == (n,)
               and targets.dtype in (torch.long, torch.uint8))
    soft = (isinstance(targets, torch.Tensor) and tuple(targets.shape) == (n, k)
            and targets.dtype.is_floating_point)
    if not (indices or soft):
        if not isinstance(targets, torch.Tensor):
            fix = "pass a tensor, e.g. torch.as_tensor(targets)"
        elif targets.ndim == 1 and len(targets) == n:
            fix = "use targets.long()"
        elif tuple(targets.shape) == (n, k):
            fix = "use targets.float() for probabilities, or targets.argmax(1) for one-hot rows"
        else:
            fix = f"give one target per row of logits ({n} rows)"
        raise DataError(f"targets must be int64 class indices ({n},) in [0, {k}) or probabilities ({n}, {k}); "
                        f"got {_described(targets)}: {fix}")
    if targets.device != logits.device:
        raise DataError(f"targets are on {targets.device} but logits on {logits.device}: "
                        "use targets.to(logits.device)")
    if indices and targets.device.type == "cpu" and targets.numel():
        # -100 is F.cross_entropy's ignore_index: such a row adds no loss (it keeps its weight).
        bad = (targets >= k) | ((targets < 0) & (targets != -100))
        if bool(bad.any()):
            raise DataError(f"targets {shown_values(targets[bad].tolist())} are outside [0, {k - 1}]: the "
                            f"logits have {k} classes; pass class indices of the classifier's classes")
