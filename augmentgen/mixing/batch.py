"""Batch-level mixing on the classifier's device: :class:`SyntheticMix` (:func:`~augmentgen.mixing.augment_loader` wraps a loader with it).

Like torchvision's ``v2.CutMix`` / ``v2.MixUp``, this works on collated batches
``(images (B, C, H, W), labels (B,))`` after they reach the device, so synthetic images are made
in one batched forward pass where the classifier runs, with no host-device copies; or, from a
:class:`~augmentgen.mixing.SyntheticPool`, indexed from a bank filled beforehand, so the step
runs no generator at all (the fast path for CPU training).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from .._images import to_signed_unit
from ..errors import ConfigError, DataError
from ..models.base import ConditionalGenerator, Temperature
from ..transforms.functional import from_generator_range
from .checks import (
    Balance,
    check_batch,
    check_output_range,
    check_source,
    check_teacher,
    parse_balance,
)
from .filter import AcceptanceCounts, TeacherFilter
from .pool import SyntheticPool
from .sources import random_row_of_class
from .teacher import one_hot, to_generator_range


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
    leftover = torch.as_tensor(n, device=weights.device) - counts.sum().round()
    # Rank classes by fractional part; the tiny jitter only breaks exact ties.
    order = torch.argsort(remainder + jitter * 1e-9, descending=True)
    bonus = (torch.arange(len(weights), device=weights.device) < leftover).to(torch.float64)
    counts[order] += bonus
    return counts.long()


class SyntheticMix:
    """Mix a generator's samples into training batches, on the batch's device.

    ``images, labels = mix(images, labels)`` returns a batch in which a share ``ratio`` of the rows
    is synthetic. The output has the input's dtype, device, memory layout (``channels_last`` is
    kept) and value range: the range of float batches is read off the first one (``[0, 1]`` as
    ``ToTensor`` gives, or ``[-1, 1]``), or stated once (``output_range=(0, 1)``, or
    ``mean``/``std`` as given to ``v2.Normalize``) and the generator's ``[-1, 1]`` output is mapped
    to it. ``uint8`` batches get ``uint8`` synthetic rows in ``[0, 255]``.

    Args:
        generator (ConditionalGenerator or SyntheticPool): any conditional generator, on the
            device where batches will be (``generator.to("cuda")``); or a
            :class:`~augmentgen.mixing.SyntheticPool`, whose bank the synthetic rows are drawn
            from instead of running a generator in the step (see *Mixing from a pool* below).
        ratio (float, defaults to 0.5): ``replace``: share of rows replaced, in [0, 1];
            ``append``: ``round(ratio * B)`` rows are appended, any ratio >= 0.
        mode (str, defaults to ``"replace"``): ``"replace"`` keeps the batch size; ``"append"``
            grows the batch.
        balance (defaults to None): classes of the synthetic rows. ``None``: the classes of the
            batch (``replace`` keeps each replaced row's label; ``append`` copies the classes of
            randomly drawn rows). ``"uniform"``: every class equally often. ``{class: weight}``
            (index or class name): in proportion to the weights. ``"inverse-frequency"``: rows go
            to the classes furthest below the most frequent one in the running counts of the
            labels this mixer has output, so over many batches every class is topped up to the
            majority count. With a balance, ``replace`` gives each replaced row the label of its
            new synthetic image.
        output_range (tuple[float, float], optional): value range of float batches. By default
            it is inferred from the first float batch (one host read, once): ``(0, 1)`` when its
            values lie in ``[0, 1]``, ``(-1, 1)`` when they lie in ``[-1, 1]`` with some below 0;
            a batch outside both (normalised images) is refused with a message naming
            ``mean``/``std`` and ``output_range``. Pass it to skip the inference.
        mean, std (sequence of float, optional): torchvision-style normalisation of float
            batches (applied to ``[0, 1]`` images); overrides ``output_range``.
        seed (int, optional): seeds the row choice, class draws and generator noise (or, from a
            pool, which bank images are drawn), so the same batches give the same output.
        temperature (float or sequence of float, defaults to 1.0): sampling temperature of the
            synthetic rows (:meth:`ConditionalGenerator.sample`): below 1 concentrates each class's
            samples towards its centre (0: one image per class), above 1 spreads them; one float,
            or ``num_classes`` floats indexed by class. 1 gives exactly the samples without it.
        autocast (bool, defaults to False): run the generator under bf16 autocast.
        compile (bool, defaults to False): ``torch.compile`` the generator's sampling.
        prefetch (bool, defaults to False): on CUDA, generate the next synthetic batch on a side
            stream while the classifier trains on this one. Needs a ``balance`` that does not
            depend on the batch (``"uniform"`` or a dict) and a constant batch size; ignored
            without CUDA. Not with ``filter_threshold``.
        teacher (nn.Module, optional): a classifier trained on the real data (e.g.
            :class:`augmentgen.metrics.ReferenceClassifier`) taking float images in the
            generator's ``[-1, 1]`` range and returning logits (N, K); on the generator's device.
            It always runs in eval mode under ``inference_mode``; the train/eval mode of each of
            its modules is restored afterwards. Needs ``filter_threshold`` and/or ``soft_labels``.
        filter_threshold (float, optional): teacher filtering, in [0, 1]. A candidate synthetic
            image is accepted when the teacher's probability (softmax of its logits) for the
            row's class is >= ``filter_threshold``; rejected candidates are never output. Each
            round generates ``oversample`` candidates per still-empty synthetic row in one
            batched generator call and gives every row an accepted candidate of its class while
            the class has some left. Rows still empty after ``max_rounds`` rounds are dropped
            (``append``: fewer rows are appended; ``replace``: the real rows stay, with their
            labels and ``mask`` False).
        oversample (int, defaults to 4): candidates generated per needed row in each round, >= 1.
        max_rounds (int, defaults to 2): rounds of candidates before a row is dropped, >= 1.
        min_acceptance (float, defaults to 0.0): per-class floor in [0, 1] on the running
            acceptance rate (accepted / candidates, counted on the device over every call, see
            :meth:`acceptance_rates`). A class below it gets no synthetic rows at all; its rows
            still get first-round candidates, so its rate keeps being measured and it comes
            back once the rate recovers. Needs ``filter_threshold``.
        soft_labels (bool, defaults to False): return float targets (B', K) instead of class
            indices, as torchvision's ``v2.MixUp``/``v2.CutMix`` do (``F.cross_entropy(logits,
            targets)`` works unchanged): real rows one-hot, synthetic rows ``soft_label_weight *
            softmax(teacher_logits / label_temperature) + (1 - soft_label_weight) *
            one_hot(class)`` (:class:`~augmentgen.mixing.teacher.TeacherLabels`); every row sums to 1.
            Needs ``teacher``; draws no random numbers, so the images and ``mask`` are those of
            the same mixer without soft labels.
        label_temperature (float, defaults to 1.0): divides the teacher's logits before the
            softmax of the soft targets, > 0.
        soft_label_weight (float, defaults to 1.0): share of the teacher's softmax in the soft
            targets, in [0, 1]; the rest is the one-hot class.
        soft_real_labels (bool, defaults to False): give the real rows the teacher's soft
            targets too (mapped back to ``[-1, 1]`` for the teacher from ``output_range`` /
            ``mean``/``std`` / uint8), so the gain from soft labels can be told apart from the
            gain from synthetic rows: train the baseline on real data only with
            ``TeacherLabels(teacher, label_temperature, soft_label_weight, num_classes, ...)``,
            which gives the same targets. Needs ``soft_labels``.

    A lower loss weight for synthetic rows takes the mask, in one line (see
    :func:`~augmentgen.mixing.teacher.weighted_cross_entropy`)::

        images, targets, mask = mix(images, labels, return_mask=True)
        loss = weighted_cross_entropy(model(images), targets, mask, synthetic_weight=0.5)
        # the same, written out (hard or soft targets):
        w = torch.where(mask, 0.5, 1.0); loss = (F.cross_entropy(logits, targets, reduction="none") * w).sum() / w.sum()

    Mixing from a pool: ``SyntheticMix(SyntheticPool(generator, per_class=256, refresh_every=1),
    0.5)`` draws each step's synthetic rows from the pool's uint8 bank by batched indexing on the
    bank's device (the batch must be there too: ``SyntheticPool(..., device="cuda")`` for GPU
    batches), with this mixer's own seeded random stream; within one batch a class's rows are
    distinct bank images while it needs at most ``per_class``. Call ``pool.step_epoch()`` once
    per epoch to refill the bank every ``refresh_every`` epochs. The rows are the bank's 8-bit
    images mapped to the batch's dtype and range like generated ones (``uint8`` batches get the
    bank's bytes). ``mode``, ``balance``, ``output_range``/``mean``/``std``, ``seed``,
    ``soft_labels`` (the teacher runs on the drawn rows in the step) and ``return_mask`` work as
    with a generator. Options that act on a generator in the step are a
    :class:`~augmentgen.errors.ConfigError` naming where they go instead: ``temperature`` and
    teacher filtering (``filter_threshold``) belong to the pool, which applies them once at fill
    time (``SyntheticPool(generator, temperature=..., teacher=..., filter_threshold=...)``), and
    ``min_acceptance``, ``autocast``, ``compile`` and ``prefetch`` have nothing to act on.

    Host syncs: soft labels add none (the teacher's forward is queued like the generator's).
    ``filter_threshold`` adds one per round that runs, reading the number of rows still empty
    (which sizes the next round) and, in ``append``, the number of rows kept (which sizes the
    output): one in the usual case where the first round fills every row, at most
    ``max_rounds`` in ``append`` and ``max_rounds - 1`` in ``replace``. (Each generator call
    also makes :meth:`ConditionalGenerator.sample`'s own label check, with or without a teacher.)
    """

    def __init__(
        self,
        generator: ConditionalGenerator | SyntheticPool,
        ratio: float = 0.5,
        *,
        mode: Literal["replace", "append"] = "replace",
        balance: Balance = None,
        output_range: tuple[float, float] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        seed: int | None = None,
        temperature: Temperature = 1.0,
        autocast: bool = False,
        compile: bool = False,
        prefetch: bool = False,
        teacher: nn.Module | None = None,
        filter_threshold: float | None = None,
        oversample: int = 4,
        max_rounds: int = 2,
        min_acceptance: float = 0.0,
        soft_labels: bool = False,
        label_temperature: float = 1.0,
        soft_label_weight: float = 1.0,
        soft_real_labels: bool = False,
    ):
        pool, anchored = check_source(
            generator, mode=mode, ratio=ratio, mean=mean, std=std, balance=balance, temperature=temperature,
            autocast=autocast, compile=compile, prefetch=prefetch, filter_threshold=filter_threshold,
            min_acceptance=min_acceptance)
        self.pool, self.anchored = pool, anchored
        # A pool source has no generator in the step (and an unpickled pool has none at all);
        # an anchored source holds its own (or none: the pixel-space controls).
        self.generator = None if pool is not None or anchored is not None else generator
        self._source = generator
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
        self.mean, self.std = mean, std
        self.seed = seed
        # Validated once here (a float or a tuple of floats), so a bad value fails before training.
        # A pool's images were sampled at its own temperature.
        self.temperature = (pool.temperature if pool is not None else 1.0 if anchored is not None
                            else generator.check_temperature(temperature))
        self.autocast, self.prefetch = autocast, prefetch
        self._class_weights = parse_balance(balance, self.num_classes, self.class_names)
        self._init_state(seed, teacher, compile=compile, prefetch=prefetch)

    def _init_state(self, seed: int | None, teacher: nn.Module | None, *, compile: bool, prefetch: bool) -> None:
        """The random stream, the running counts, the teacher filter, the sampler and the CUDA stream."""
        device = self.device
        self._rng = torch.Generator(device=device)
        if seed is not None:
            self._rng.manual_seed(seed)
        else:
            self._rng.seed()
        # Running counts of the labels this mixer has output (for balance="inverse-frequency").
        self.class_counts = torch.zeros(self.num_classes, dtype=torch.long, device=device)
        # Teacher filtering: the rejection rounds and the running per-class acceptance counts.
        self.filter = None if self.filter_threshold is None else TeacherFilter(
            teacher, self.filter_threshold, self.oversample, self.max_rounds, num_classes=self.num_classes,
            device=device, min_acceptance=self.min_acceptance)
        self._acceptance = self.filter.counts if self.filter else AcceptanceCounts(self.num_classes, device)
        if self.pool is None and self.anchored is None:
            self._sample = torch.compile(self.generator.sample) if compile else self.generator.sample
        self._stream = None
        self._prefetched: tuple[int, torch.Tensor, torch.Tensor] | None = None
        if prefetch and device.type == "cuda" and torch.cuda.is_available():
            self._stream = torch.cuda.Stream(device=device)

    # ------------------------------------------------------------------ source
    @property
    def num_classes(self) -> int:
        """Number of classes of the generator or pool."""
        return self._source.num_classes

    @property
    def class_names(self) -> list[str]:
        """Class names of the generator or pool."""
        names = self._source.class_names  # a user's anchored source may have none
        return list(names) if names is not None else [str(i) for i in range(self.num_classes)]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the synthetic rows."""
        return tuple(self._source.image_shape)

    @property
    def device(self) -> torch.device:
        """Where the synthetic rows are made: the generator's device, or the pool's bank's."""
        if self.pool is not None:
            return self.pool.images.device
        return self.generator.device if self.anchored is None else self.anchored.device

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
        low, high = (float(v) for v in torch.aminmax(images.detach().float()))  # one host read, once
        if 0.0 <= low and high <= 1.0:
            self.output_range = (0.0, 1.0)
        elif -1.0 <= low and high <= 1.0:
            self.output_range = (-1.0, 1.0)
        else:
            raise DataError(
                f"the batch's values span [{low:.3g}, {high:.3g}], neither [0, 1] (ToTensor) nor [-1, 1], so "
                "synthetic rows cannot be put in its range: for normalised batches pass mean=..., std=... "
                "(as given to v2.Normalize), else output_range=(low, high)")
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
        """Restore what :meth:`state_dict` returned (from a mixer with the same classes)."""
        counts = state["class_counts"]
        if tuple(counts.shape) != (self.num_classes,):
            raise ConfigError(f"the state is of a mixer with {len(counts)} classes, this one has {self.num_classes}")
        self._rng.set_state(state["rng_state"].cpu() if self._rng.device.type == "cpu" else state["rng_state"])
        for name in ("class_counts", "candidate_counts", "accepted_counts"):
            getattr(self, name).copy_(state[name])
        if state.get("output_range") is not None and self.mean is None:
            self.output_range = tuple(state["output_range"])
            if self._teacher_labels is not None:
                self._teacher_labels.output_range = self.output_range

    # ------------------------------------------------------------------ core
    def num_synthetic(self, batch_size: int) -> int:
        """Synthetic rows for a batch of ``batch_size`` real rows: ``round(ratio * B)``."""
        return int(math.floor(self.ratio * batch_size + 0.5))

    def _draw_classes(self, n: int) -> torch.Tensor:
        """Classes of ``n`` synthetic rows chosen by ``balance`` (device tensor, shuffled)."""
        if self._class_weights is not None:
            counts = allocate_counts(n, self._class_weights.to(self.class_counts.device),
                                     generator=self._rng)
        else:
            counts = self._topup_counts(n)
        return self._expand_counts(counts, n)

    def _topup_counts(self, n: int) -> torch.Tensor:
        """``inverse-frequency``: rows per class that close the gap to the most frequent class.

        If the gaps add up to at least ``n``, the ``n`` rows are split in proportion to them;
        otherwise every gap is filled exactly and the spare rows are spread uniformly, so a rare
        class never overtakes the majority. Computed on the device, without a host sync.
        """
        deficit = (self.class_counts.max() - self.class_counts).to(torch.float64)
        total = deficit.sum()
        proportional = allocate_counts(
            n, torch.where(total > 0, deficit, torch.ones_like(deficit)), generator=self._rng)
        spare = (n - total).clamp(min=0)
        topped = deficit.long() + allocate_counts(spare, torch.ones_like(deficit), generator=self._rng)
        return torch.where(total >= n, proportional, topped)

    def _expand_counts(self, counts: torch.Tensor, n: int) -> torch.Tensor:
        classes = torch.repeat_interleave(
            torch.arange(len(counts), device=counts.device), counts, output_size=n)
        return classes[torch.randperm(n, device=counts.device, generator=self._rng)]

    def _generate(self, classes: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(classes.device.type, dtype=torch.bfloat16,
                                                    enabled=self.autocast):
            fake_images = self._sample(classes, generator=self._rng, temperature=self.temperature)
        return fake_images.float()

    def _synthetic_batch(self, n: int, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(classes, images) for ``n`` synthetic rows; ``labels`` given when classes follow the batch."""
        classes = labels if labels is not None else self._draw_classes(n)
        if self.pool is not None:
            # Batched indexing on the bank's device; back to [-1, 1] so that the range mapping
            # and the teacher's soft labels below treat pooled rows exactly like generated ones.
            return classes, to_signed_unit(self.pool.take(classes, generator=self._rng))
        return classes, self._generate(classes)

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
            ``soft_labels=True`` the labels are float32 targets (B', K).
        """
        check_batch(images, labels, image_shape=self.image_shape, device=self.device, from_pool=self.pool is not None)
        self._infer_output_range(images)
        if self.anchored is not None:
            return self._mix_anchored(images, labels, return_mask=return_mask)
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
            # Count what the classifier sees of the real rows before choosing the top-up.
            kept = labels if self.mode == "append" else labels[_complement(rows, batch)]
            self.class_counts += torch.bincount(kept.long(), minlength=self.num_classes)
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
            classes, fake_images = self._synthetic_batch(n, labels[rows] if follow_batch else None)
        if self.soft_labels and fake_logits is None:
            fake_logits = self._teacher_labels.logits(fake_images)
        if self.balance == "inverse-frequency":
            if kept is None:
                self.class_counts += torch.bincount(classes, minlength=self.num_classes)
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

    def _assemble(self, images: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, classes: torch.Tensor,
                  fake_images: torch.Tensor, fake_logits: torch.Tensor | None, kept: torch.Tensor | None,
                  n_kept: int, *, return_mask: bool):
        """The output batch: synthetic rows (``[-1, 1]``) mapped to the batch's dtype and range,
        put in place of ``rows`` (replace) or after the batch (append), with their targets."""
        batch, device = len(images), images.device
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
            self.class_counts += torch.bincount(labels.long(), minlength=self.num_classes)
        if self.mode == "replace":
            rows = torch.randperm(batch, device=device, generator=self._rng)[:n]
        else:
            rows = self._anchor_rows(labels.long(), n)
        real = to_generator_range(images, output_range=self.output_range, mean=self.mean, std=self.std)
        fake_images = self.anchored.rows(real, labels.long(), rows, rng=self._rng)
        classes = labels[rows].long()
        if self.balance == "inverse-frequency":
            self.class_counts += torch.bincount(classes, minlength=self.num_classes)
        fake_logits = self._teacher_labels.logits(fake_images) if self.soft_labels else None
        return self._assemble(images, labels, rows, classes, fake_images, fake_logits, None, n,
                              return_mask=return_mask)

    def _anchor_rows(self, labels: torch.Tensor, n: int) -> torch.Tensor:
        """Rows of the batch that ``n`` appended rows start from: uniform over the batch's rows
        (``balance=None``: its class mix), else classes allocated by their ``balance`` weight
        among the classes present (``inverse-frequency``: the gap to the most frequent class),
        then a random row of each allocated class."""
        batch, device = len(labels), labels.device
        if batch == 0 or n == 0:
            return torch.zeros(0, dtype=torch.long, device=device)
        if self.balance is None:
            return torch.randint(batch, (n,), device=device, generator=self._rng)
        present = torch.bincount(labels, minlength=self.num_classes) > 0
        if self._class_weights is not None:
            weights = self._class_weights.to(device, torch.float64)
        else:
            weights = (self.class_counts.max() - self.class_counts).double()
        weights = weights * present
        # No present class has weight (or every gap is closed): the classes present, equally.
        weights = torch.where(weights.sum() > 0, weights, present.double())
        classes = self._expand_counts(allocate_counts(n, weights, generator=self._rng), n)
        return random_row_of_class(labels, classes, rng=self._rng)

    def __repr__(self) -> str:
        temperature = "" if self.temperature == 1.0 else f", temperature={self.temperature!r}"
        teacher = ""
        if self.teacher is not None:
            teacher = f", teacher={type(self.teacher).__name__}"
            if self.filter_threshold is not None:
                teacher += f", filter_threshold={self.filter_threshold}"
            if self.soft_labels:
                teacher += f", soft_labels=True{', soft_real_labels=True' if self.soft_real_labels else ''}"
        if self.pool is not None:
            return (f"SyntheticMix(ratio={self.ratio}, mode={self.mode!r}, balance={self.balance!r}{teacher}, "
                    f"pool={self.pool!r})")
        if self.anchored is not None:
            return (f"SyntheticMix(ratio={self.ratio}, mode={self.mode!r}, balance={self.balance!r}{teacher}, "
                    f"source={self.anchored!r})")
        return (f"SyntheticMix(ratio={self.ratio}, mode={self.mode!r}, balance={self.balance!r}{temperature}"
                f"{teacher}, generator={type(self.generator).__name__})")


def _complement(rows: torch.Tensor, batch: int) -> torch.Tensor:
    keep = torch.ones(batch, dtype=torch.bool, device=rows.device)
    keep[rows] = False
    return keep
