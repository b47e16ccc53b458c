"""Teacher filtering: rejection sampling of synthetic images by a classifier trained on real data.

:class:`TeacherFilter` is the one implementation, used by the batch mixer (``SyntheticMix(...,
filter_threshold=...)``), the pool at fill time (``SyntheticPool(..., filter_threshold=...)``) and
the shard writer (``write_shards(..., filter_threshold=...)``). A candidate of class ``c`` is
accepted when the teacher's softmax probability of ``c`` is >= ``threshold``; rejected candidates
are never output. The filter validates its options once, keeps the per-class counts of candidates
and accepted candidates (:class:`AcceptanceCounts`), and runs the rejection rounds in two shapes:

- :meth:`TeacherFilter.fill_rows`: rows of a training batch, fixed shapes on the device, with a
  host sync only where the caller needs a count on the host (documented there);
- :meth:`TeacherFilter.fill_per_class`: a bank of ``per_class`` images of every class, in chunks of
  ``batch_size`` candidates (fill time, where host-side bookkeeping is fine).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._images import to_uint8
from ..errors import ConfigError
from .teacher import TeacherLabels

__all__ = ["AcceptanceCounts", "TeacherFilter", "ranks_in_class", "teacher_device"]


def ranks_in_class(classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rank of each entry among the entries of its class, in order: ``[2, 0, 2, 2] -> [0, 0, 1, 2]``.

    Fixed shapes throughout (a stable sort and a scatter), so no host sync.
    """
    n, device = len(classes), classes.device
    counts = torch.zeros(num_classes, dtype=torch.long, device=device).index_add_(
        0, classes, torch.ones_like(classes))
    order = torch.argsort(classes, stable=True)
    return torch.empty_like(classes).scatter_(
        0, order, torch.arange(n, device=device) - (counts.cumsum(0) - counts)[classes[order]])


def teacher_device(teacher: Any, default: torch.device) -> torch.device:
    """Where ``teacher`` runs: the device of its first parameter or buffer (``default`` where it has
    none, or is no module, which :meth:`TeacherFilter.check_teacher` then refuses)."""
    if not isinstance(teacher, nn.Module):
        return default
    tensor = next(iter(teacher.parameters()), None)
    tensor = next(iter(teacher.buffers()), None) if tensor is None else tensor
    return default if tensor is None else tensor.device


def is_finite_number(value: Any) -> bool:
    """A finite Python int or float (not a bool): the option checks of the filter and the teacher."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class AcceptanceCounts:
    """Per-class teacher-filter counts on one device: ``candidates`` generated, ``accepted`` of them.

    int64 tensors (K,), updated on the device without a host sync; :meth:`rates` divides them.
    """

    def __init__(self, num_classes: int, device: torch.device | str = "cpu"):
        self.candidates = torch.zeros(num_classes, dtype=torch.long, device=device)
        self.accepted = torch.zeros(num_classes, dtype=torch.long, device=device)

    def add(self, classes: torch.Tensor, accepted: torch.Tensor) -> None:
        """Count candidates of ``classes`` (N,) of which ``accepted`` (N,) bool passed."""
        self.candidates.index_add_(0, classes, torch.ones_like(classes))
        self.accepted.index_add_(0, classes, accepted.long())

    def rates(self) -> torch.Tensor:
        """accepted / candidates per class: a float64 CPU tensor (K,), NaN for classes that have had
        no candidates. One host sync on an accelerator: call it for logging, not in the step."""
        return (self.accepted.double() / self.candidates.double()).cpu()

    def reset(self) -> None:
        """Forget every count."""
        self.candidates.zero_()
        self.accepted.zero_()

    def copy_(self, other: AcceptanceCounts) -> None:
        """Take ``other``'s counts (across devices)."""
        self.candidates.copy_(other.candidates)
        self.accepted.copy_(other.accepted)


class TeacherFilter:
    """Keep only the synthetic images a teacher classifier recognises as their class.

    Args:
        teacher (nn.Module): a classifier trained on the real data taking float images in the
            generators' ``[-1, 1]`` range and returning logits (N, K), on ``device``. It runs in
            eval mode under ``inference_mode``; each module's train/eval mode is restored.
        threshold (float): a candidate is accepted when the teacher's softmax probability of its
            class is >= this, in [0, 1].
        oversample (int, defaults to 4): candidates generated per still-empty row or slot in each
            round, >= 1.
        max_rounds (int, defaults to 2): rounds of candidates before giving up on a row, >= 1.
        num_classes (int): K.
        device (torch.device or str): where the generator and the teacher are (and the counts).
        min_acceptance (float, defaults to 0.0): :meth:`fill_rows` only: a class whose running
            acceptance rate is below this floor, in [0, 1], gets no rows.

    Attributes:
        counts (AcceptanceCounts): candidates and accepted candidates per class, on ``device``,
            over every call since the last :meth:`AcceptanceCounts.reset`.
    """

    def __init__(self, teacher: nn.Module, threshold: float, oversample: int = 4, max_rounds: int = 2, *,
                 num_classes: int, device: torch.device | str, min_acceptance: float = 0.0):
        self.check_options(threshold=threshold, oversample=oversample, max_rounds=max_rounds,
                           min_acceptance=min_acceptance)
        self.check_teacher(teacher, torch.device(device))
        self.teacher = teacher
        self.threshold = float(threshold)
        self.oversample, self.max_rounds = int(oversample), int(max_rounds)
        self.min_acceptance = float(min_acceptance)
        self.num_classes = num_classes
        self._labels = TeacherLabels(teacher, num_classes=num_classes)  # the logits, checked
        self.counts = AcceptanceCounts(num_classes, device)

    # ------------------------------------------------------------------ checks
    @staticmethod
    def check_options(*, threshold: float | None, oversample: int = 4, max_rounds: int = 2,
                      min_acceptance: float = 0.0) -> None:
        """Validate the filter's numbers (``threshold`` may be None: no filtering asked for)."""
        for name, value in (("oversample", oversample), ("max_rounds", max_rounds)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
        if threshold is not None and not (is_finite_number(threshold) and 0 <= threshold <= 1):
            raise ConfigError(f"filter_threshold must be a probability in [0, 1] (or None for no "
                              f"filtering), got {threshold!r}")
        if not (is_finite_number(min_acceptance) and 0 <= min_acceptance <= 1):
            raise ConfigError(f"min_acceptance must be in [0, 1], got {min_acceptance!r}")

    @staticmethod
    def check_teacher(teacher: Any, device: torch.device) -> None:
        """``teacher`` must be an ``nn.Module`` on the generator's ``device``."""
        if not isinstance(teacher, nn.Module):
            raise ConfigError(f"teacher must be an nn.Module (a classifier returning logits), got "
                              f"{type(teacher).__name__}")
        where = teacher_device(teacher, device)
        if where != device:
            raise ConfigError(f"the teacher is on {where} but the generator on {device}: "
                              f"use teacher.to({str(device)!r})")

    # ------------------------------------------------------------------ one round
    def judge(self, images: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Accept or reject candidates: ``(accepted (N,) bool, logits (N, K) float32)``, counted.

        ``images`` are float (N, C, H, W) in ``[-1, 1]``, ``classes`` (N,) int64 on their device.
        No host sync.
        """
        logits = self._labels.logits(images)
        probability = torch.softmax(logits, dim=1).gather(1, classes.view(-1, 1))
        accepted = probability.view(-1) >= self.threshold
        self.counts.add(classes, accepted)
        return accepted, logits

    def acceptance_rates(self) -> torch.Tensor:
        """Per-class acceptance rate so far: float64 CPU (K,), NaN for classes with no candidates."""
        return self.counts.rates()

    # ------------------------------------------------------------------ batch rows
    def fill_rows(self, classes: torch.Tensor, generate: Callable[[torch.Tensor], torch.Tensor], *,
                  image_shape: tuple[int, int, int], with_logits: bool = False,
                  count_last: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, int | None]:
        """Give each row an accepted image of its class: ``(images, logits, kept, n_kept)``.

        Each round calls ``generate`` once on ``oversample`` candidates per still-empty row
        (``classes[rows].repeat(oversample)``: float images in ``[-1, 1]``) and gives the j-th
        empty row of class c the j-th accepted candidate of class c. ``images`` (n, C, H, W) holds
        an accepted image where ``kept`` (n,) is True; ``logits`` the teacher's logits of it (with
        ``with_logits``, else None). With ``min_acceptance``, rows of a class whose running rate
        after the first round is below it are not kept (and get no later rounds).

        Host syncs: one per round that has a next round, reading the number of rows still empty
        (which sizes the next round), and one after the last round when ``count_last``: ``n_kept``
        is then ``kept.sum()`` on the host (None when the last round ran without a sync).
        """
        n, device = len(classes), classes.device
        images = torch.zeros(n, *image_shape, device=device)
        logits = torch.zeros(n, self.num_classes, device=device) if with_logits else None
        kept = torch.zeros(n, dtype=torch.bool, device=device)
        allowed = torch.ones(n, dtype=torch.bool, device=device)  # False: class below min_acceptance
        if n == 0:
            return images, logits, kept, 0
        slots = torch.arange(n, device=device)  # the rows this round tries to fill
        n_kept = None
        for round_index in range(self.max_rounds):
            slot_classes = classes[slots]
            candidate_classes = slot_classes.repeat(self.oversample)  # one generator call
            candidates = generate(candidate_classes)
            accepted, candidate_logits = self.judge(candidates, candidate_classes)
            got, source = _match_accepted(slot_classes, candidate_classes, accepted, self.num_classes)
            images[slots] = torch.where(got.view(-1, 1, 1, 1), candidates[source], images[slots])
            if logits is not None:
                logits[slots] = torch.where(got.view(-1, 1), candidate_logits[source], logits[slots])
            kept[slots] = got
            if round_index == 0 and self.min_acceptance > 0:
                allowed = self._rate_at_least(self.min_acceptance)[classes]
                kept &= allowed
            last = round_index == self.max_rounds - 1
            if last and not count_last:
                break  # nothing to read on the host
            pending = ~kept & allowed
            # The one host sync of the round: how many rows are still empty and how many are kept.
            n_pending, n_kept = torch.stack([pending.sum(), kept.sum()]).tolist()
            if n_pending == 0 or last:
                break
            # Indices of the pending rows without another sync: a stable sort puts them first.
            slots = torch.argsort(pending.to(torch.uint8), descending=True, stable=True)[:n_pending]
        return images, logits, kept, n_kept

    def _rate_at_least(self, floor: float) -> torch.Tensor:
        """(K,) bool on the device: the running acceptance rate is >= ``floor`` (no candidates: True)."""
        counts = self.counts
        rate = torch.where(counts.candidates > 0,
                           counts.accepted.double() / counts.candidates.clamp(min=1).double(),
                           torch.ones((), dtype=torch.float64, device=counts.candidates.device))
        return rate >= floor

    # ------------------------------------------------------------------ a bank
    def fill_per_class(self, per_class: int, sample: Callable[[torch.Tensor], torch.Tensor], *,
                       batch_size: int, image_shape: tuple[int, int, int],
                       device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``per_class`` accepted images of every class: ``(bank uint8 (K, N, C, H, W), filled (K,) CPU)``.

        Each round asks for ``oversample`` candidates per empty slot, class by class, sampled
        by ``sample(classes)`` (float images in ``[-1, 1]``) in chunks of ``batch_size`` (classes
        that filled up earlier in the round are left out of later chunks); accepted candidates
        fill the slots in order. Slots of a class still short after ``max_rounds`` rounds are
        left unset: ``filled[c]`` says how many were filled. Host syncs per round and chunk.
        """
        k, n = self.num_classes, per_class
        bank = torch.empty(k, n, *image_shape, dtype=torch.uint8, device=device)
        filled = torch.zeros(k, dtype=torch.long, device=device)
        for _ in range(self.max_rounds):
            need = n - filled
            if int(need.sum()) == 0:
                break
            labels = torch.arange(k, device=device).repeat_interleave(need * self.oversample)
            for chunk in labels.split(batch_size):
                chunk = chunk[filled[chunk] < n]  # classes that filled up earlier in this round
                if len(chunk) == 0:
                    continue
                fake_images = sample(chunk)
                ok = self.judge(fake_images, chunk)[0]
                ok_classes = chunk[ok]
                slots = filled[ok_classes] + ranks_in_class(ok_classes, k)
                fits = slots < n
                bank[ok_classes[fits], slots[fits]] = to_uint8(fake_images[ok][fits])
                filled.index_add_(0, ok_classes[fits], torch.ones_like(ok_classes[fits]))
        return bank, filled.cpu()

    def __repr__(self) -> str:
        return (f"TeacherFilter(teacher={type(self.teacher).__name__}, threshold={self.threshold}, "
                f"oversample={self.oversample}, max_rounds={self.max_rounds}"
                f"{'' if not self.min_acceptance else f', min_acceptance={self.min_acceptance}'})")


def _match_accepted(slot_classes: torch.Tensor, candidate_classes: torch.Tensor, accepted: torch.Tensor,
                    num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Give each row an accepted candidate of its class, per class up to what is needed.

    The j-th row of class c (in row order) gets the j-th accepted candidate of class c (in
    candidate order) if there is one. Returns ``(got (m,) bool, source (m,) candidate index,
    meaningful where got)``. Fixed shapes throughout: no host sync.
    """
    device = slot_classes.device
    ranks = ranks_in_class(slot_classes, num_classes)  # of each row among the rows of its class
    # Accepted candidates grouped by class (rejected ones sorted last).
    accepted_counts = torch.zeros(num_classes, dtype=torch.long, device=device).index_add_(
        0, candidate_classes, accepted.long())
    candidate_order = torch.argsort(torch.where(accepted, candidate_classes, num_classes), stable=True)
    got = ranks < accepted_counts[slot_classes]
    position = (accepted_counts.cumsum(0) - accepted_counts)[slot_classes] + ranks
    source = candidate_order[position.clamp(max=len(candidate_classes) - 1)]
    return got, source
