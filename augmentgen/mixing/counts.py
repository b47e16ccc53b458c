"""How many synthetic rows each class gets, and which real rows anchor them.

The class-count drawing behind ``SyntheticMix(balance=...)``: :func:`allocate_counts` splits ``n``
rows over classes by weight, :func:`topup_counts` gives them to the classes furthest below the
majority (``"inverse-frequency"``), :func:`draw_classes` turns either into shuffled classes,
:func:`anchor_rows` picks the real rows an anchored source starts from and :func:`add_counts`
keeps the running counts. Everything runs on the device, with the random stream it is given (the
mixer's seeded one), without a host sync or a host-to-device copy, given tensors already on the
device (the mixer moves its class weights there once).
"""

from __future__ import annotations

import torch

from .sources import random_row_of_class

__all__ = ["add_counts", "allocate_counts", "anchor_rows", "draw_classes", "expand_counts", "topup_counts"]


def allocate_counts(n: int | torch.Tensor, weights: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Split ``n`` rows over classes in proportion to ``weights`` (largest-remainder rounding).

    Every class gets ``floor(n * w_k / sum(w))`` rows and the leftover rows go to the largest
    fractional parts (ties broken at random), so the counts always sum to exactly ``n`` and
    differ from the exact proportions by less than one row. Runs on ``weights``' device.
    """
    weights = weights.to(torch.float64)
    exact = weights / weights.sum() * n
    counts = exact.floor()
    remainder = exact - counts
    jitter = torch.rand(remainder.shape, generator=generator, device=weights.device, dtype=torch.float64)
    # A Python n stays a scalar: as a tensor it would be a host-to-device copy each call. Either
    # way n is promoted to float64 before the subtraction, so the values are the same.
    leftover = n - counts.sum().round()
    # Rank classes by fractional part; the tiny jitter only breaks exact ties.
    order = torch.argsort(remainder + jitter * 1e-9, descending=True)
    bonus = (torch.arange(len(weights), device=weights.device) < leftover).to(torch.float64)
    counts[order] += bonus
    return counts.long()


def topup_counts(class_counts: torch.Tensor, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``inverse-frequency``: rows per class that close the gap to the most frequent class.

    ``class_counts`` (K,) are the running counts of the labels output so far. If the gaps add up
    to at least ``n``, the ``n`` rows are split in proportion to them; otherwise every gap is
    filled exactly and the spare rows are spread uniformly, so a rare class never overtakes the
    majority. Computed on the device, without a host sync.
    """
    deficit = (class_counts.max() - class_counts).to(torch.float64)
    total = deficit.sum()
    proportional = allocate_counts(
        n, torch.where(total > 0, deficit, torch.ones_like(deficit)), generator=generator)
    spare = (n - total).clamp(min=0)
    topped = deficit.long() + allocate_counts(spare, torch.ones_like(deficit), generator=generator)
    return torch.where(total >= n, proportional, topped)


def expand_counts(counts: torch.Tensor, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``counts[k]`` copies of each class ``k`` (``n`` in all), in a random order."""
    classes = torch.repeat_interleave(
        torch.arange(len(counts), device=counts.device), counts, output_size=n)
    return classes[torch.randperm(n, device=counts.device, generator=generator)]


def draw_classes(n: int, class_weights: torch.Tensor | None, class_counts: torch.Tensor, *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Classes of ``n`` synthetic rows (shuffled, on ``class_counts``' device): in proportion to
    ``class_weights`` (K,), or, when it is None, topping up the running ``class_counts``."""
    if class_weights is not None:
        # A no-op for the mixer, whose weights are on the device already.
        counts = allocate_counts(n, class_weights.to(class_counts.device), generator=generator)
    else:
        counts = topup_counts(class_counts, n, generator=generator)
    return expand_counts(counts, n, generator=generator)


def anchor_rows(labels: torch.Tensor, n: int, *, follow_batch: bool, class_weights: torch.Tensor | None,
                class_counts: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Rows of the batch that ``n`` appended anchored rows start from.

    ``follow_batch`` (``balance=None``): uniform over the batch's rows, so its class mix. Else
    classes are allocated by their ``class_weights`` among the classes present in ``labels``
    (None: the gap of the running ``class_counts`` to the most frequent class), then a random
    row of each allocated class.
    """
    batch, device = len(labels), labels.device
    if batch == 0 or n == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    if follow_batch:
        return torch.randint(batch, (n,), device=device, generator=generator)
    # Which classes the batch has, as bincount(labels) > 0 but without its host sync on CUDA.
    present = torch.zeros(len(class_counts), dtype=torch.bool, device=device).index_fill_(0, labels, True)
    if class_weights is not None:
        weights = class_weights.to(device, torch.float64)  # a no-op for the mixer's float64 weights
    else:
        weights = (class_counts.max() - class_counts).double()
    weights = weights * present
    # No present class has weight (or every gap is closed): the classes present, equally.
    weights = torch.where(weights.sum() > 0, weights, present.double())
    classes = expand_counts(allocate_counts(n, weights, generator=generator), n, generator=generator)
    return random_row_of_class(labels, classes, rng=generator)


def add_counts(counts: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``counts += bincount(labels, weights, minlength=K)`` in place, without a host sync.

    ``counts`` (K,) int64, ``labels`` (n,) int64 in ``[0, K)``, ``weights`` (n,) int64 or None
    (each label counts once). CUDA's ``torch.bincount`` reads the labels' min and max back to
    the host to size its output; ``index_add_`` into the fixed (K,) counts needs neither, and
    adds whole numbers exactly in any order. Returns ``counts``.
    """
    return counts.index_add_(0, labels, torch.ones_like(labels) if weights is None else weights)
