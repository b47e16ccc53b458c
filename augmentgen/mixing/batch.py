"""Batch-level mixing on the classifier's device: :class:`SyntheticMix` (:func:`~augmentgen.mixing.augment_loader` wraps a loader with it).

Like torchvision's ``v2.CutMix`` / ``v2.MixUp``, this works on collated batches
``(images (B, C, H, W), labels (B,))`` after they reach the device, so synthetic images are made
in one batched forward pass where the classifier runs, with no host-device copies; or, from a
:class:`~augmentgen.mixing.SyntheticPool`, indexed from a bank filled beforehand, so the step
runs no generator at all (the fast path for CPU training). Where the rows come from is a row
source (:mod:`~augmentgen.mixing.free_sources`, :mod:`~augmentgen.mixing.sources`); how many
of each class, :mod:`~augmentgen.mixing.counts`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from .._deprecation import renamed_argument
from .._images import to_signed_unit
from .._seeds import seeded_generator
from ..errors import ConfigError
from ..models.base import ConditionalGenerator, Temperature, labels_checked_on_device
from ..transforms.functional import from_generator_range
from .checks import (
    Balance,
    check_batch,
    check_batch_labels,
    check_output_range,
    check_source,
    check_teacher,
    infer_output_range,
    parse_balance,
)
from .counts import add_counts, anchor_rows, draw_classes
from .filter import AcceptanceCounts, TeacherFilter
from .free_sources import FreeSource, GeneratorSource, PoolSource
from .pool import SyntheticPool
from .sources import AnchoredSource
from .teacher import one_hot
from .value_range import to_generator_range


class SyntheticMix:
    """Mix synthetic rows from a source (a generator, a pool or another row source) into training
    batches, on the batch's device.

    ``images, labels = mix(images, labels)`` returns the B real rows unchanged followed by
    ``round(ratio * B)`` synthetic rows (with ``mode="replace"``, the batch with that many of its
    rows replaced instead). The output has the input's dtype, device, memory layout
    (``channels_last`` is kept) and value range (read off the first float batch, or stated once);
    ``uint8`` batches get ``uint8`` synthetic rows in ``[0, 255]``.

    Args:
        source (ConditionalGenerator, SyntheticPool or a row source): where the synthetic rows
            come from (formerly ``generator``: that keyword still works, with a ``FutureWarning``).
            A conditional generator on the batches' device (sampled in the step, as
            :class:`~augmentgen.mixing.GeneratorSource`); a :class:`~augmentgen.mixing.SyntheticPool`
            (rows indexed from its bank, as :class:`~augmentgen.mixing.PoolSource`: ``temperature``
            and teacher filtering are then the pool's, applied when it fills); a
            :class:`~augmentgen.mixing.GeneratorSource` or :class:`~augmentgen.mixing.PoolSource`;
            or an anchored source made from the batch's real rows
            (:class:`~augmentgen.mixing.VariationSource` and its controls).
        ratio (float, defaults to 0.5): ``round(ratio * B)`` synthetic rows are made for a batch
            of B real rows; any ratio >= 0 for ``append``, in [0, 1] for ``replace`` (the share of
            rows replaced).
        mode (str, defaults to ``"append"``): ``"append"`` adds the synthetic rows after the real
            ones, so the batch grows to ``B + round(ratio * B)`` and the classifier still sees
            every real row it would see without mixing (equal real exposure: a change in accuracy
            is then the synthetic rows' doing, not the loss of real rows). ``"replace"`` puts them
            in place of real rows and keeps the batch size fixed (e.g. to bound memory), at the
            cost of showing the classifier fewer real rows.
        balance (defaults to None): classes of the synthetic rows. ``None``: the classes of the
            batch (``append`` copies the classes of randomly drawn rows; ``replace`` keeps each
            replaced row's label). ``"uniform"``: every class equally often. ``{class: weight}``
            (index or class name): in proportion to the weights. ``"inverse-frequency"``: to the
            classes furthest below the most frequent one in the running counts of the labels
            this mixer has output, so every class is topped up to the majority count. With a
            balance, ``replace`` gives each replaced row the label of its new synthetic image.
        output_range (tuple[float, float], optional): value range of float batches. By default
            it is inferred from the first float batch (one host read, once): ``(0, 1)`` when its
            values lie in ``[0, 1]``, ``(-1, 1)`` when they lie in ``[-1, 1]`` with some below 0;
            other batches are refused with a message naming ``mean``/``std`` and ``output_range``.
        mean, std (sequence of float, optional): torchvision-style normalisation of float
            batches (as given to ``v2.Normalize``: finite, every std > 0); overrides ``output_range``.
        seed (int, optional): seeds the row choice, class draws and the source's random numbers
            (noise, bank draws), so the same batches give the same output.
        temperature (float or sequence of float, defaults to 1.0), autocast (bool, defaults to
            False), compile (bool, defaults to False): the generator's sampling temperature, bf16
            autocast and ``torch.compile``, as for :class:`~augmentgen.mixing.GeneratorSource`.
        prefetch (bool, defaults to False): on CUDA, generate the next synthetic batch on a side
            stream while the classifier trains on this one. Needs a ``balance`` that does not
            depend on the batch (``"uniform"`` or a dict) and a constant batch size; ignored
            without CUDA. Not with ``filter_threshold``.
        teacher (nn.Module, optional): a classifier trained on the real data (e.g.
            :class:`augmentgen.metrics.ReferenceClassifier`) taking float images in ``[-1, 1]``
            and returning logits (N, K), on the generator's device; run in eval mode under
            ``inference_mode`` (each module's mode is restored). Needs ``filter_threshold`` and/or
            ``soft_labels``.
        filter_threshold (float, optional): teacher filtering, in [0, 1]: a candidate is accepted
            when the teacher's softmax probability of its row's class is >= this; rejected ones
            are never output. Each round generates ``oversample`` candidates per still-empty row
            in one batched call (:class:`~augmentgen.mixing.TeacherFilter`). Rows still empty after
            ``max_rounds`` are dropped (``append``: fewer rows; ``replace``: the real row stays,
            ``mask`` False).
        oversample (int, defaults to 4): candidates generated per needed row in each round, >= 1.
        max_rounds (int, defaults to 2): rounds of candidates before a row is dropped, >= 1.
        min_acceptance (float, defaults to 0.0): per-class floor in [0, 1] on the running
            acceptance rate (:meth:`acceptance_rates`); a class below it gets no synthetic rows
            but keeps being measured, and comes back once its rate recovers.
        soft_labels (bool, defaults to False): return float targets (B', K) as ``v2.MixUp`` does:
            real rows one-hot, synthetic rows ``soft_label_weight * softmax(teacher_logits /
            label_temperature) + (1 - soft_label_weight) * one_hot(class)``
            (:class:`~augmentgen.mixing.TeacherLabels`). Draws no random numbers, so the images
            and ``mask`` are those of the same mixer without it.
        label_temperature (float, defaults to 1.0): divides the teacher's logits, > 0.
        soft_label_weight (float, defaults to 1.0): share of the teacher's softmax, in [0, 1].
        soft_real_labels (bool, defaults to False): give the real rows the teacher's soft targets
            too, so the gain from soft labels can be told apart from the gain from synthetic rows
            (the real-only baseline gets the same targets from ``TeacherLabels``).

    A lower loss weight for synthetic rows takes the mask
    (:func:`~augmentgen.mixing.teacher.weighted_cross_entropy`)::

        images, targets, mask = mix(images, labels, return_mask=True)
        loss = weighted_cross_entropy(model(images), targets, mask, synthetic_weight=0.5)

    Host syncs: none per batch without ``filter_threshold`` (once the output range is known),
    soft labels included. The batch's labels (against the source's classes) and the labels the
    generator is asked for are range-checked in full on the first batch (a label out of range is a
    :class:`~augmentgen.errors.DataError` naming it and the fix); on an accelerator, later batches
    are not read back: the generator's labels are checked by a device-side assert (a label out
    of range then stops the run with a CUDA error). On the CPU every batch gets the full check.
    ``filter_threshold`` adds one per round that runs (the rows still empty, and in ``append``
    the rows kept): one when the first round fills every row, at most ``max_rounds`` in
    ``append`` and ``max_rounds - 1`` in ``replace``.
    """

    @renamed_argument("generator", "source")
    def __init__(self, source: ConditionalGenerator | SyntheticPool | FreeSource | AnchoredSource,
                 ratio: float = 0.5, *, mode: Literal["append", "replace"] = "append", balance: Balance = None,
                 output_range: tuple[float, float] | None = None, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, seed: int | None = None, temperature: Temperature = 1.0,
                 autocast: bool = False, compile: bool = False, prefetch: bool = False,
                 teacher: nn.Module | None = None, filter_threshold: float | None = None, oversample: int = 4,
                 max_rounds: int = 2, min_acceptance: float = 0.0, soft_labels: bool = False,
                 label_temperature: float = 1.0, soft_label_weight: float = 1.0, soft_real_labels: bool = False):
        #: Where the rows come from: a free source (a bare generator or pool is wrapped) or an anchored one.
        self.source = check_source(
            source, mode=mode, ratio=ratio, mean=mean, std=std, balance=balance, temperature=temperature,
            autocast=autocast, compile=compile, prefetch=prefetch, filter_threshold=filter_threshold,
            min_acceptance=min_acceptance)
        # What each kind of source is, for users who read them (None where it is not that kind):
        # ``generator`` is the ConditionalGenerator of a GeneratorSource, not the source itself.
        self.generator = self.source.generator if isinstance(self.source, GeneratorSource) else None
        self.pool = self.source.pool if isinstance(self.source, PoolSource) else None
        self.anchored = self.source if isinstance(self.source, AnchoredSource) else None
        self._teacher_labels = check_teacher(
            self.num_classes, self.device, teacher, filter_threshold=filter_threshold, oversample=oversample,
            max_rounds=max_rounds, min_acceptance=min_acceptance, soft_labels=soft_labels,
            label_temperature=label_temperature, soft_label_weight=soft_label_weight,
            soft_real_labels=soft_real_labels, prefetch=prefetch, output_range=output_range or (-1.0, 1.0),
            mean=mean, std=std)
        self.teacher = teacher
        self.filter_threshold = None if filter_threshold is None else float(filter_threshold)
        self.oversample, self.max_rounds = int(oversample), int(max_rounds)
        self.min_acceptance = float(min_acceptance)
        self.soft_labels, self.soft_real_labels = bool(soft_labels), bool(soft_real_labels)
        self.label_temperature, self.soft_label_weight = float(label_temperature), float(soft_label_weight)
        self.ratio = float(ratio)
        self.mode = mode
        self.balance = balance
        self.output_range = None if output_range is None else check_output_range(output_range)
        self._range_given = output_range is not None  # stated, not read off the first batch
        self.mean, self.std = mean, std
        self.seed = seed
        # The source's: a generator's (validated), a pool's own, 1 for rows made from real rows.
        self.temperature = getattr(self.source, "temperature", 1.0)
        self.autocast, self.prefetch = getattr(self.source, "autocast", autocast), prefetch
        self._init_state(seed, teacher, balance=balance, prefetch=prefetch)

    def _init_state(self, seed: int | None, teacher: nn.Module | None, *, balance: Balance,
                    prefetch: bool) -> None:
        """The class weights, the random stream, the running counts, the teacher filter and the
        CUDA stream, on the source's device."""
        device = self.device
        # (K,) weights of balance="uniform" / {class: weight}, or None. Moved to the device once, in
        # the float64 that allocate_counts computes in (exact for float32 weights): per batch it
        # would be a host-to-device copy in every class draw.
        weights = parse_balance(balance, self.num_classes, self.class_names)
        self._class_weights = None if weights is None else weights.to(device, torch.float64)
        self._rng = seeded_generator(seed, device)
        # Running counts of the labels this mixer has output (for balance="inverse-frequency").
        self.class_counts = torch.zeros(self.num_classes, dtype=torch.long, device=device)
        # The first batch's labels are read once on the host (check_batch_labels: the clear
        # DataError of a label out of range, so a wrong label set shows at once); on an accelerator
        # later batches are not read back. The generator then checks the labels it is given with a
        # device-side assert (labels_checked_on_device): they are the checked batch's or the
        # mixer's own draws, in range by construction.
        self._labels_seen = False
        # Teacher filtering: the rejection rounds and the running per-class acceptance counts.
        self.filter = None if self.filter_threshold is None else TeacherFilter(
            teacher, self.filter_threshold, self.oversample, self.max_rounds, num_classes=self.num_classes,
            device=device, min_acceptance=self.min_acceptance)
        self._acceptance = self.filter.counts if self.filter else AcceptanceCounts(self.num_classes, device)
        self._stream = None
        self._prefetched: tuple[int, torch.Tensor, torch.Tensor] | None = None
        if prefetch and device.type == "cuda" and torch.cuda.is_available():
            self._stream = torch.cuda.Stream(device=device)

    # ------------------------------------------------------------------ source
    @property
    def num_classes(self) -> int:
        """Number of classes of the source."""
        return self.source.num_classes

    @property
    def class_names(self) -> list[str]:
        """Class names of the source."""
        names = self.source.class_names  # a user's source may have none
        return list(names) if names is not None else [str(i) for i in range(self.num_classes)]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the synthetic rows."""
        return tuple(self.source.image_shape)

    @property
    def device(self) -> torch.device:
        """Where the synthetic rows are made: the source's device (a generator's, or a pool's bank's)."""
        return self.source.device

    # ------------------------------------------------------------------ setup
    def reset_counts(self) -> None:
        """Forget the running label counts used by ``balance="inverse-frequency"``."""
        self.class_counts.zero_()

    def acceptance_rates(self) -> torch.Tensor:
        """Running per-class acceptance rate of the teacher filter: accepted / candidates.

        A float64 CPU tensor (num_classes,), NaN for classes that have had no candidates yet.
        One host sync: call it for logging, not in the training step.
        """
        return self._acceptance.rates()

    def reset_acceptance(self) -> None:
        """Forget the running acceptance counts (``acceptance_rates`` and ``min_acceptance``)."""
        self._acceptance.reset()

    @property
    def candidate_counts(self) -> torch.Tensor:
        """Running teacher-filter candidates per class: int64 (num_classes,) on the device."""
        return self._acceptance.candidates

    @property
    def accepted_counts(self) -> torch.Tensor:
        """Running teacher-filter accepted candidates per class: int64 (num_classes,) on the device."""
        return self._acceptance.accepted

    def _infer_output_range(self, images: torch.Tensor) -> None:
        """Read the value range off the first float batch (``output_range=None``, no mean/std)."""
        if self.output_range is not None or self.mean is not None or not images.dtype.is_floating_point:
            return
        if images.numel() == 0:
            return
        self.output_range = infer_output_range(images)
        if self._teacher_labels is not None:
            self._teacher_labels.output_range = self.output_range

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The mixer's random stream, running counts and inferred range, so that a resumed
        training run continues the same stream (``load_state_dict``), like any stateful
        transform. A pool's bank is not part of it."""
        return {"rng_state": self._rng.get_state(), "class_counts": self.class_counts.clone(),
                "candidate_counts": self.candidate_counts.clone(),
                "accepted_counts": self.accepted_counts.clone(), "output_range": self.output_range}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (from a mixer with the same classes; a mixer given
        ``output_range`` takes only a state of batches in that range)."""
        self._check_state(state)
        self._rng.set_state(state["rng_state"].cpu() if self._rng.device.type == "cpu" else state["rng_state"])
        for name in ("class_counts", "candidate_counts", "accepted_counts"):
            getattr(self, name).copy_(state[name])
        if state.get("output_range") is not None and self.mean is None:
            self.output_range = tuple(state["output_range"])
            if self._teacher_labels is not None:
                self._teacher_labels.output_range = self.output_range

    def _check_state(self, state: Any) -> None:
        """A ConfigError, before anything is restored, for a state this mixer cannot take: not a
        :meth:`state_dict`, of another number of classes, or of batches in another value range than
        the ``output_range`` this mixer was given (loading it would silently change the range)."""
        keys = ("rng_state", "class_counts", "candidate_counts", "accepted_counts")
        missing = [k for k in keys if not isinstance(state, Mapping) or k not in state]
        if missing:
            got = f"a dict without {missing}" if isinstance(state, Mapping) else f"the {type(state).__name__}"
            raise ConfigError(f"load_state_dict takes what SyntheticMix.state_dict() returned, got {got}; "
                              "save mix.state_dict() with the training checkpoint and pass it back")
        if not all(isinstance(state[k], torch.Tensor) for k in keys):
            raise ConfigError("the state's rng_state and counts must be tensors, as state_dict() returns them; "
                              "save it with torch.save, not as JSON")
        counts = state["class_counts"]
        if tuple(counts.shape) != (self.num_classes,):
            raise ConfigError(f"the state is of a mixer with {len(counts)} classes, this one has {self.num_classes}")
        saved = state.get("output_range")
        if self._range_given and saved is not None and tuple(saved) != self.output_range:
            raise ConfigError(f"the state is of a mixer whose batches were in {tuple(saved)}, but this one was "
                              f"given output_range={self.output_range}; build it with output_range={tuple(saved)}, "
                              "or leave output_range out to take the state's")

    # ------------------------------------------------------------------ core
    def num_synthetic(self, batch_size: int) -> int:
        """Synthetic rows for a batch of ``batch_size`` real rows: ``round(ratio * B)``."""
        return int(math.floor(self.ratio * batch_size + 0.5))

    def _draw_classes(self, n: int) -> torch.Tensor:
        """Classes of ``n`` synthetic rows chosen by ``balance`` (device tensor, shuffled)."""
        return draw_classes(n, self._class_weights, self.class_counts, generator=self._rng)

    def _generate(self, classes: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Rows of ``classes`` from the (free) source, in ``[-1, 1]``, with this mixer's stream.

        For a ``uint8`` batch (``dtype``) a pool's rows are its bank's bytes as they are: mapping
        them to ``[-1, 1]`` and back to ``uint8`` gives the same bytes, so the round trip (two
        float images and six passes over them) is skipped.
        """
        # The labels are the batch's (checked in __call__) or drawn here: no host sync.
        with labels_checked_on_device():
            # Only PoolSource's own rows(): a subclass that changes the rows keeps its rows().
            if dtype == torch.uint8 and isinstance(self.source, PoolSource) and type(self.source).rows is PoolSource.rows:
                return self.source.take(classes, rng=self._rng)
            return self.source.rows(classes, rng=self._rng)

    def _synthetic_batch(self, n: int, labels: torch.Tensor | None,
                         dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(classes, images) for ``n`` synthetic rows; ``labels`` given when classes follow the
        batch; ``dtype`` is the batch's (see :meth:`_generate`)."""
        classes = labels if labels is not None else self._draw_classes(n)
        return classes, self._generate(classes, dtype)

    def _next_prefetched(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Side-stream prefetch (CUDA only): take the batch made during the previous step, then
        # start the next one so the classifier's step overlaps with generation.
        current = torch.cuda.current_stream(self.device)
        if self._prefetched is not None and self._prefetched[0] == n:
            current.wait_stream(self._stream)
            _, classes, fake_images = self._prefetched
            classes.record_stream(current)
            fake_images.record_stream(current)
        else:
            classes, fake_images = self._synthetic_batch(n, None)
        self._stream.wait_stream(current)
        with torch.cuda.stream(self._stream):
            self._prefetched = (n, *self._synthetic_batch(n, None))
        return classes, fake_images

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, *, return_mask: bool = False):
        """Mix synthetic rows into ``(images, labels)``.

        Returns:
            ``(images, labels)``, or ``(images, labels, mask)`` with ``return_mask=True`` where
            ``mask`` is a bool tensor (B',) that is True on synthetic rows. With
            ``soft_labels=True`` the labels are float32 targets (B', K). An empty float batch
            before the value range is known (``output_range=None``, no mean/std) comes back as it
            is, with no rows added and the random stream untouched.
        """
        check_batch(images, labels, image_shape=self.image_shape, device=self.device, from_pool=self.pool is not None,
                    source=self.source)
        if not self._labels_seen or labels.device.type == "cpu":
            # The batch's labels are the source's classes: a host read, so on an accelerator only
            # on the first batch (before they are counted or rows are made from them).
            check_batch_labels(labels, self.source)
            self._labels_seen = self._labels_seen or bool(labels.numel())
        if not len(images) and self.output_range is None and self.mean is None and images.dtype.is_floating_point:
            # An empty float batch has no values to read the range off: it comes back as it is,
            # with no rows added, the stream and the counts untouched (the range is read off the
            # first batch with rows).
            return self._empty_batch(images, labels, return_mask=return_mask)
        self._infer_output_range(images)
        if self.anchored is not None:
            return self._mix_anchored(images, labels, return_mask=return_mask)
        return self._mix_free(images, labels, return_mask=return_mask)

    def _mix_free(self, images: torch.Tensor, labels: torch.Tensor, *, return_mask: bool):
        """A checked batch with a free source's rows (a generator's or a pool's), filtered by
        the teacher when asked, counted for ``balance="inverse-frequency"``."""
        batch = len(images)
        n = self.num_synthetic(batch)
        device = images.device
        if self.mode == "replace":
            rows = torch.randperm(batch, device=device, generator=self._rng)[:n]
        else:
            # Rows whose classes the appended rows copy (balance=None).
            rows = (torch.randint(batch, (n,), device=device, generator=self._rng) if batch
                    else torch.empty(0, dtype=torch.long, device=device))
        follow_batch = self.balance is None
        if self.balance == "inverse-frequency":
            # Count what the classifier sees of the real rows before choosing the top-up: in
            # replace, the rows not replaced (weights 0 on ``rows``; no mask indexing, no sync).
            add_counts(self.class_counts, labels.long(),
                       None if self.mode == "append" else _complement(rows, batch).long())
        kept, fake_logits, n_kept = None, None, n
        if self.filter_threshold is not None:
            classes = (labels[rows] if follow_batch else self._draw_classes(n)).long()
            # Rows still empty after the rounds are dropped; append reads how many were kept.
            fake_images, fake_logits, kept, n_kept = self.filter.fill_rows(
                classes, self._generate, image_shape=self.image_shape, with_logits=self.soft_labels,
                count_last=self.mode == "append")
        elif self._stream is not None:
            classes, fake_images = self._next_prefetched(n)
        else:
            classes, fake_images = self._synthetic_batch(n, labels[rows] if follow_batch else None, images.dtype)
        if self.soft_labels and fake_logits is None:
            # The teacher takes [-1, 1]: a pool's bytes (uint8 batches) as rows() maps them.
            fake_logits = self._teacher_labels.logits(
                to_signed_unit(fake_images) if fake_images.dtype == torch.uint8 else fake_images)
        if self.balance == "inverse-frequency":
            if kept is None:
                add_counts(self.class_counts, classes.long())
            else:
                # Kept synthetic rows, and (replace) the real rows left where a row was dropped.
                self.class_counts.index_add_(0, classes, kept.long())
                if self.mode == "replace":
                    self.class_counts.index_add_(0, labels[rows].long(), (~kept).long())
        if kept is not None and self.mode == "append" and n_kept < n:
            # Only the kept rows are appended (n_kept was read in the filter's sync).
            keep = torch.argsort(kept.to(torch.uint8), descending=True, stable=True)[:n_kept]
            classes, fake_images = classes[keep], fake_images[keep]
            fake_logits = None if fake_logits is None else fake_logits[keep]
        return self._assemble(images, labels, rows, classes, fake_images, fake_logits, kept, n_kept,
                              return_mask=return_mask)

    def _empty_batch(self, images: torch.Tensor, labels: torch.Tensor, *, return_mask: bool):
        """The output for a batch of no rows: the batch, its (soft) targets and an empty mask."""
        out_labels = one_hot(labels, self.num_classes) if self.soft_labels else labels
        if return_mask:
            return images, out_labels, torch.zeros(0, dtype=torch.bool, device=images.device)
        return images, out_labels

    def _assemble(self, images: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, classes: torch.Tensor,
                  fake_images: torch.Tensor, fake_logits: torch.Tensor | None, kept: torch.Tensor | None,
                  n_kept: int, *, return_mask: bool):
        """The output batch: synthetic rows (``[-1, 1]``, or a pool's bytes for a uint8 batch)
        mapped to the batch's dtype and range, put in place of ``rows`` (replace) or after the
        batch (append), with their targets."""
        batch, device = len(images), images.device
        if not fake_images.dtype == images.dtype == torch.uint8:  # else a pool's bytes, as they are
            fake_images = from_generator_range(
                fake_images, output_range=self.output_range, mean=self.mean, std=self.std,
                dtype=images.dtype)
        memory_format = (torch.channels_last
                         if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
                         else torch.contiguous_format)
        fake_labels = classes.to(labels.dtype)
        if self.soft_labels:
            fake_labels = self._teacher_labels.targets_from_logits(fake_logits, classes)
            real_labels = (self._teacher_labels(images, labels)[1] if self.soft_real_labels
                           else one_hot(labels, self.num_classes))
        else:
            real_labels = labels
        if self.mode == "replace":
            out_images = images.clone(memory_format=torch.preserve_format)
            out_labels = real_labels.clone() if real_labels is labels else real_labels
            mask = torch.zeros(batch, dtype=torch.bool, device=device)
            if kept is None:
                out_images[rows] = fake_images
                out_labels[rows] = fake_labels
                mask[rows] = True
            else:
                # Rows whose class got no accepted candidate keep their real image and label.
                out_images[rows] = torch.where(kept.view(-1, 1, 1, 1), fake_images, images[rows])
                keep_label = kept.view(-1, *([1] * (fake_labels.ndim - 1)))
                out_labels[rows] = torch.where(keep_label, fake_labels, real_labels[rows])
                mask[rows] = kept
        else:
            out_images = torch.cat([images, fake_images.contiguous(memory_format=memory_format)])
            out_labels = torch.cat([real_labels, fake_labels])
            mask = torch.cat([torch.zeros(batch, dtype=torch.bool, device=device),
                              torch.ones(n_kept, dtype=torch.bool, device=device)])
        out_images = out_images.contiguous(memory_format=memory_format)
        if return_mask:
            return out_images, out_labels, mask
        return out_images, out_labels

    def _mix_anchored(self, images: torch.Tensor, labels: torch.Tensor, *, return_mask: bool):
        """``__call__`` with an anchored source: each synthetic row is made from a real row of the
        batch (``replace``: the row it replaces; ``append``: rows drawn by ``balance``)."""
        batch = len(images)
        n = self.num_synthetic(batch)
        device = images.device
        if self.balance == "inverse-frequency":
            add_counts(self.class_counts, labels.long())
        if self.mode == "replace":
            rows = torch.randperm(batch, device=device, generator=self._rng)[:n]
        else:
            rows = anchor_rows(labels.long(), n, follow_batch=self.balance is None,
                               class_weights=self._class_weights, class_counts=self.class_counts,
                               generator=self._rng)
        real = to_generator_range(images, output_range=self.output_range, mean=self.mean, std=self.std)
        with labels_checked_on_device():  # the batch's labels, checked in __call__: no host sync in vary()
            fake_images = self.source.rows(real, labels.long(), rows, rng=self._rng)
        classes = labels[rows].long()
        if self.balance == "inverse-frequency":
            add_counts(self.class_counts, classes)
        fake_logits = self._teacher_labels.logits(fake_images) if self.soft_labels else None
        return self._assemble(images, labels, rows, classes, fake_images, fake_logits, None, n,
                              return_mask=return_mask)

    def __repr__(self) -> str:
        teacher = ""
        if self.teacher is not None:
            teacher = f", teacher={type(self.teacher).__name__}"
            if self.filter_threshold is not None:
                teacher += f", filter_threshold={self.filter_threshold}"
            if self.soft_labels:
                teacher += f", soft_labels=True{', soft_real_labels=True' if self.soft_real_labels else ''}"
        if self.generator is None:  # a pool, or another source: its own repr says what it is
            source = f"pool={self.pool!r}" if self.pool is not None else f"source={self.source!r}"
        else:
            temperature = "" if self.temperature == 1.0 else f", temperature={self.temperature!r}"
            teacher, source = temperature + teacher, f"generator={type(self.generator).__name__}"
        return f"SyntheticMix(ratio={self.ratio}, mode={self.mode!r}, balance={self.balance!r}{teacher}, {source})"


def _complement(rows: torch.Tensor, batch: int) -> torch.Tensor:
    """(batch,) bool, False on ``rows``: the rows that ``mode="replace"`` keeps."""
    keep = torch.ones(batch, dtype=torch.bool, device=rows.device)
    keep[rows] = False
    return keep
