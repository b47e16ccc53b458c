"""Batch-level mixing on the classifier's device: :class:`SyntheticMix` and :func:`augment_loader`.

Like torchvision's ``v2.CutMix`` / ``v2.MixUp``, this works on collated batches
``(images (B, C, H, W), labels (B,))`` after they reach the device, so synthetic images are made
in one batched forward pass where the classifier runs, with no host-device copies; or, from a
:class:`~augmentgen.mixing.SyntheticPool`, indexed from a bank filled beforehand, so the step
runs no generator at all (the fast path for CPU training).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from .._images import to_signed_unit
from ..errors import ConfigError, DataError
from ..models.base import ConditionalGenerator, Temperature
from ..transforms.functional import from_generator_range
from .pool import SyntheticPool, _ranks_in_class
from .sources import AnchoredSource
from .teacher import TeacherLabels, one_hot, to_generator_range

Balance = None | Literal["uniform", "inverse-frequency"] | Mapping[int | str, float]


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
    kept) and value range: state once what the classifier expects (``output_range=(0, 1)``, or
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
        output_range (tuple[float, float], defaults to (-1, 1)): value range of float batches.
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
        output_range: tuple[float, float] = (-1.0, 1.0),
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
        pool = generator if isinstance(generator, SyntheticPool) else None
        anchored = generator if isinstance(generator, AnchoredSource) else None
        if pool is None and anchored is None and not isinstance(generator, ConditionalGenerator):
            raise ConfigError(f"generator must be a ConditionalGenerator, a SyntheticPool or a row source "
                              f"such as VariationSource, got {type(generator).__name__}")
        if mode not in ("replace", "append"):
            raise ConfigError(f"mode must be 'replace' or 'append', got {mode!r}")
        if not (ratio >= 0) or (mode == "replace" and ratio > 1):
            raise ConfigError(f"ratio must be in [0, 1] for mode='replace' (>= 0 for 'append'), got {ratio}")
        if (mean is None) != (std is None):
            raise ConfigError("give both mean and std (or neither)")
        if pool is not None:
            self._check_pool_options(temperature=temperature, autocast=autocast, compile=compile,
                                     prefetch=prefetch, filter_threshold=filter_threshold,
                                     min_acceptance=min_acceptance)
        if anchored is not None:
            self._check_anchored_options(anchored, mode=mode, balance=balance, temperature=temperature,
                                         autocast=autocast, compile=compile, prefetch=prefetch,
                                         filter_threshold=filter_threshold)
        self.pool = pool
        self.anchored = anchored
        # A pool source has no generator in the step (and an unpickled pool has none at all);
        # an anchored source holds its own (or none: the pixel-space controls).
        self.generator = None if pool is not None or anchored is not None else generator
        self._source = generator
        self._teacher_labels = self._check_teacher(
            self.num_classes, self.device, teacher, filter_threshold=filter_threshold, oversample=oversample,
            max_rounds=max_rounds, min_acceptance=min_acceptance, soft_labels=soft_labels,
            label_temperature=label_temperature, soft_label_weight=soft_label_weight,
            soft_real_labels=soft_real_labels, prefetch=prefetch, output_range=output_range,
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
        self.output_range = output_range
        self.mean, self.std = mean, std
        self.seed = seed
        # Validated once here (a float or a tuple of floats), so a bad value fails before training.
        # A pool's images were sampled at its own temperature.
        self.temperature = (pool.temperature if pool is not None else 1.0 if anchored is not None
                            else generator.check_temperature(temperature))
        self.autocast = autocast
        self.prefetch = prefetch
        self._class_weights = self._parse_balance(balance)
        if prefetch and not (balance == "uniform" or isinstance(balance, Mapping)):
            raise ConfigError("prefetch=True needs balance='uniform' or a {class: weight} dict: "
                              "the next batch's classes must be known before it arrives")
        device = self.device
        self._rng = torch.Generator(device=device)
        if seed is not None:
            self._rng.manual_seed(seed)
        else:
            self._rng.seed()
        # Running counts of the labels this mixer has output (for balance="inverse-frequency").
        self.class_counts = torch.zeros(self.num_classes, dtype=torch.long, device=device)
        # Running teacher-filter counts per class (candidates generated, candidates accepted).
        self.candidate_counts = torch.zeros(self.num_classes, dtype=torch.long, device=device)
        self.accepted_counts = torch.zeros(self.num_classes, dtype=torch.long, device=device)
        if pool is None and anchored is None:
            self._sample = torch.compile(generator.sample) if compile else generator.sample
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
        return list(self._source.class_names)

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
    @staticmethod
    def _check_pool_options(*, temperature: Temperature, autocast: bool, compile: bool, prefetch: bool,
                            filter_threshold: float | None, min_acceptance: float) -> None:
        """Options that act on a generator in the step: a clear error naming where they go instead."""
        if filter_threshold is not None:
            raise ConfigError(
                "filter_threshold cannot apply to a SyntheticPool source: the pool's images are made when "
                "it fills, not in the step. Filter them there, once per refresh: SyntheticPool(generator, "
                "per_class, teacher=teacher, filter_threshold=...); keep teacher=... here only for "
                "soft_labels=True")
        if min_acceptance != 0.0:
            raise ConfigError(
                "min_acceptance cannot apply to a SyntheticPool source: acceptance is measured when the "
                "pool fills (pool.acceptance_rates()); to leave a class out of the mix give it weight 0 "
                "in balance={class: weight}")
        if not (isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
                and temperature == 1.0):
            raise ConfigError(
                "temperature cannot apply to a SyntheticPool source: its images are already sampled. "
                "Give it to the pool: SyntheticPool(generator, temperature=...)")
        for name, value in (("autocast", autocast), ("compile", compile)):
            if value:
                raise ConfigError(
                    f"{name}=True speeds up the generator's forward in the step, but a SyntheticPool "
                    f"source runs no generator in the step: drop {name}=True")
        if prefetch:
            raise ConfigError("prefetch=True overlaps generation with the step, but a SyntheticPool source "
                              "only indexes its bank: drop prefetch=True")

    @staticmethod
    def _check_anchored_options(source: AnchoredSource, *, mode: str, balance: Balance, temperature: Temperature,
                                autocast: bool, compile: bool, prefetch: bool,
                                filter_threshold: float | None) -> None:
        """Options that have nothing to act on with a source made from the batch's real rows."""
        if mode == "replace" and balance is not None:
            raise ConfigError(f"{type(source).__name__} makes each row from a real row and keeps its label, so "
                              "mode='replace' varies rows in place and cannot rebalance classes: use "
                              "mode='append' with balance=..., or balance=None")
        if not (isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature == 1.0):
            raise ConfigError(f"temperature does not apply to {type(source).__name__}: its rows are made from "
                              "real rows, not sampled; VariationSource(strength=...) sets how far they move")
        if filter_threshold is not None:
            raise ConfigError(f"filter_threshold does not apply to {type(source).__name__}: rows made from real "
                              "rows keep their real row's label; use teacher=..., soft_labels=True for soft targets")
        for name, value in (("autocast", autocast), ("compile", compile), ("prefetch", prefetch)):
            if value:
                raise ConfigError(f"{name}=True acts on a free generator's sampling; {type(source).__name__} "
                                  f"makes rows from the batch: drop {name}=True")
        for name in ("num_classes", "image_shape", "device"):
            if getattr(source, name, None) is None:
                raise ConfigError(f"{type(source).__name__} has no {name}; build it with one")

    def _parse_balance(self, balance: Balance) -> torch.Tensor | None:
        k = self.num_classes
        if balance is None or balance == "inverse-frequency":
            return None
        if balance == "uniform":
            return torch.ones(k)
        if isinstance(balance, Mapping):
            names = self.class_names
            weights = torch.zeros(k)
            for key, weight in balance.items():
                index = names.index(key) if isinstance(key, str) and key in names else key
                if not isinstance(index, int) or not 0 <= index < k:
                    raise ConfigError(f"balance key {key!r} is not a class index in [0, {k - 1}] "
                                      f"or a class name of {names}")
                if weight < 0:
                    raise ConfigError(f"balance weights must be >= 0, got {weight} for {key!r}")
                weights[index] = float(weight)
            if weights.sum() <= 0:
                raise ConfigError("balance weights must not all be zero")
            return weights
        raise ConfigError(f"balance must be None, 'uniform', 'inverse-frequency' or a "
                          f"{{class: weight}} dict, got {balance!r}")

    @staticmethod
    def _check_teacher(num_classes: int, device: torch.device, teacher: nn.Module | None, *,
                       filter_threshold: float | None, oversample: int, max_rounds: int,
                       min_acceptance: float, soft_labels: bool, label_temperature: float,
                       soft_label_weight: float, soft_real_labels: bool, prefetch: bool,
                       output_range: tuple[float, float], mean: Sequence[float] | None,
                       std: Sequence[float] | None) -> TeacherLabels | None:
        """Validate the teacher options; the :class:`TeacherLabels` the mixer uses, or None."""
        def is_number(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        for name, value in (("oversample", oversample), ("max_rounds", max_rounds)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
        if filter_threshold is not None and not (is_number(filter_threshold) and 0 <= filter_threshold <= 1):
            raise ConfigError(f"filter_threshold must be a probability in [0, 1] (or None for no "
                              f"filtering), got {filter_threshold!r}")
        if not (is_number(min_acceptance) and 0 <= min_acceptance <= 1):
            raise ConfigError(f"min_acceptance must be in [0, 1], got {min_acceptance!r}")
        if not (is_number(label_temperature) and label_temperature > 0):
            raise ConfigError(f"label_temperature must be a finite number > 0, got {label_temperature!r}")
        if not (is_number(soft_label_weight) and 0 <= soft_label_weight <= 1):
            raise ConfigError(f"soft_label_weight must be in [0, 1] (0: one-hot labels, 1: the teacher's "
                              f"soft targets only), got {soft_label_weight!r}")
        if min_acceptance > 0 and filter_threshold is None:
            raise ConfigError("min_acceptance needs filter_threshold: acceptance rates are those of "
                              "the teacher filter")
        if soft_real_labels and not soft_labels:
            raise ConfigError("soft_real_labels=True needs soft_labels=True")
        if teacher is None:
            if filter_threshold is not None:
                raise ConfigError("filter_threshold needs a teacher: pass teacher=<a classifier "
                                  "trained on the real data>, e.g. an augmentgen.metrics.ReferenceClassifier")
            if soft_labels:
                raise ConfigError("soft_labels=True needs a teacher: pass teacher=<a classifier "
                                  "trained on the real data>, e.g. an augmentgen.metrics.ReferenceClassifier")
            return None
        if not isinstance(teacher, nn.Module):
            raise ConfigError(f"teacher must be an nn.Module (a classifier returning logits), got "
                              f"{type(teacher).__name__}")
        if filter_threshold is None and not soft_labels:
            raise ConfigError("a teacher is given but unused: set filter_threshold=... (teacher "
                              "filtering) and/or soft_labels=True")
        if prefetch and filter_threshold is not None:
            raise ConfigError("prefetch=True cannot be combined with filter_threshold: the rejection "
                              "rounds need the accepted counts before the batch is built")
        tensor = next(iter(teacher.parameters()), None)
        tensor = next(iter(teacher.buffers()), None) if tensor is None else tensor
        if tensor is not None and tensor.device != device:
            raise ConfigError(f"the teacher is on {tensor.device} but the generator on {device}: "
                              f"use teacher.to({str(device)!r})")
        return TeacherLabels(teacher, label_temperature, soft_label_weight, num_classes,
                             output_range=output_range, mean=mean, std=std)

    def reset_counts(self) -> None:
        """Forget the running label counts used by ``balance="inverse-frequency"``."""
        self.class_counts.zero_()

    def acceptance_rates(self) -> torch.Tensor:
        """Running per-class acceptance rate of the teacher filter: accepted / candidates.

        A float64 CPU tensor (num_classes,), NaN for classes that have had no candidates yet.
        One host sync: call it for logging, not in the training step.
        """
        return (self.accepted_counts.double() / self.candidate_counts.double()).cpu()

    def reset_acceptance(self) -> None:
        """Forget the running acceptance counts (``acceptance_rates`` and ``min_acceptance``)."""
        self.candidate_counts.zero_()
        self.accepted_counts.zero_()

    # ------------------------------------------------------------------ checks
    def _check(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise DataError("SyntheticMix takes collated batches: images (B, C, H, W) and labels (B,); "
                            f"got images {type(images).__name__} "
                            f"{tuple(images.shape) if isinstance(images, torch.Tensor) else ''}")
        c, h, w = self.image_shape
        source = "the pool holds" if self.pool is not None else "the generator makes"
        if tuple(images.shape[1:]) != (c, h, w):
            raise DataError(
                f"{source} ({c}, {h}, {w}) images but the batch is {tuple(images.shape[1:])}: "
                f"resize / convert the batch to {c} channel(s) at {h}x{w} before mixing (e.g. "
                "v2.Resize, v2.Grayscale(num_output_channels=...)), or use a generator trained at "
                "that shape"
            )
        if images.device != self.device:
            if self.pool is not None:
                raise DataError(
                    f"the batch is on {images.device} but the pool's bank is on {self.device}: build the "
                    f"pool there (SyntheticPool(generator, ..., device={str(images.device)!r})) or move "
                    "the batch, so that mixing needs no host-device copy")
            raise DataError(
                f"the batch is on {images.device} but the generator is on {self.generator.device}: "
                f"move one of them (generator.to({str(images.device)!r}) or images.to(...)) so that "
                "mixing needs no host-device copy"
            )
        if not (images.dtype.is_floating_point or images.dtype == torch.uint8):
            raise DataError(f"images must be float or uint8, got {images.dtype}")
        if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.dtype.is_floating_point:
            raise DataError(
                "labels must be an integer tensor (B,) of class indices; mix before one-hot "
                "encoding, CutMix or MixUp"
            )
        if len(labels) != len(images):
            raise DataError(f"{len(images)} images but {len(labels)} labels")
        if labels.device != images.device:
            raise DataError(f"labels are on {labels.device} but images on {images.device}; "
                            f"use labels.to({str(images.device)!r})")

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

    def _filtered_batch(self, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, int | None]:
        """Teacher filtering with batched oversampling: ``(images, logits, kept, n_kept)``.

        ``images`` (n, C, H, W) in ``[-1, 1]`` holds an accepted image of ``classes[i]`` where
        ``kept[i]`` (bool, n) is True; ``logits`` are the teacher's logits of those images (with
        ``soft_labels``, else None); ``n_kept`` is ``kept.sum()`` read on the host (None in
        ``replace`` mode when the last round did not need a sync).
        """
        n, k = len(classes), self.num_classes
        device = classes.device
        images = torch.zeros(n, *self.image_shape, device=device)
        logits = torch.zeros(n, k, device=device) if self.soft_labels else None
        kept = torch.zeros(n, dtype=torch.bool, device=device)
        allowed = torch.ones(n, dtype=torch.bool, device=device)  # False: class below min_acceptance
        if n == 0:
            return images, logits, kept, 0
        slots = torch.arange(n, device=device)  # the rows this round tries to fill
        n_kept = None
        for round_index in range(self.max_rounds):
            slot_classes = classes[slots]
            candidate_classes = slot_classes.repeat(self.oversample)  # one generator call
            candidates = self._generate(candidate_classes)
            candidate_logits = self._teacher_labels.logits(candidates)
            probability = torch.softmax(candidate_logits, dim=1).gather(1, candidate_classes.view(-1, 1))
            accepted = probability.view(-1) >= self.filter_threshold
            self.candidate_counts.index_add_(0, candidate_classes, torch.ones_like(candidate_classes))
            self.accepted_counts.index_add_(0, candidate_classes, accepted.long())
            got, source = _match_accepted(slot_classes, candidate_classes, accepted, k)
            images[slots] = torch.where(got.view(-1, 1, 1, 1), candidates[source], images[slots])
            if logits is not None:
                logits[slots] = torch.where(got.view(-1, 1), candidate_logits[source], logits[slots])
            kept[slots] = got
            if round_index == 0 and self.min_acceptance > 0:
                # Running rate after this round's candidates; a class with none yet passes.
                rate = torch.where(self.candidate_counts > 0,
                                   self.accepted_counts.double() / self.candidate_counts.clamp(min=1).double(),
                                   torch.ones((), dtype=torch.float64, device=device))
                allowed = rate[classes] >= self.min_acceptance
                kept &= allowed
            last = round_index == self.max_rounds - 1
            if last and self.mode == "replace":
                break  # replace keeps the batch size: nothing to read on the host
            pending = ~kept & allowed
            # The one host sync of the round: how many rows are still empty (sizes the next
            # round) and how many are kept (sizes the appended rows).
            n_pending, n_kept = torch.stack([pending.sum(), kept.sum()]).tolist()
            if n_pending == 0 or last:
                break
            # Indices of the pending rows without another sync: a stable sort puts them first.
            slots = torch.argsort(pending.to(torch.uint8), descending=True, stable=True)[:n_pending]
        return images, logits, kept, n_kept

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
        self._check(images, labels)
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
            fake_images, fake_logits, kept, n_kept = self._filtered_batch(classes)
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


def _match_accepted(slot_classes: torch.Tensor, candidate_classes: torch.Tensor, accepted: torch.Tensor,
                    num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Give each row an accepted candidate of its class, per class up to what is needed.

    The j-th row of class c (in row order) gets the j-th accepted candidate of class c (in
    candidate order) if there is one. Returns ``(got (m,) bool, source (m,) candidate index,
    meaningful where got)``. Fixed shapes throughout: no host sync.
    """
    device = slot_classes.device
    ranks = _ranks_in_class(slot_classes, num_classes)  # of each row among the rows of its class
    # Accepted candidates grouped by class (rejected ones sorted last).
    accepted_counts = torch.zeros(num_classes, dtype=torch.long, device=device).index_add_(
        0, candidate_classes, accepted.long())
    candidate_order = torch.argsort(torch.where(accepted, candidate_classes, num_classes), stable=True)
    got = ranks < accepted_counts[slot_classes]
    position = (accepted_counts.cumsum(0) - accepted_counts)[slot_classes] + ranks
    source = candidate_order[position.clamp(max=len(candidate_classes) - 1)]
    return got, source


def random_row_of_class(labels: torch.Tensor, classes: torch.Tensor, *,
                        rng: torch.Generator | None = None) -> torch.Tensor:
    """For each of ``classes``, a uniformly random row index of the batch with that label (every
    class asked for must be in ``labels``). Batched: one sort and two searches, no host sync."""
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order].contiguous()
    classes = classes.contiguous()
    start = torch.searchsorted(sorted_labels, classes)
    count = torch.searchsorted(sorted_labels, classes, right=True) - start
    pick = (torch.rand(len(classes), device=labels.device, generator=rng) * count).floor().long()
    return order[(start + pick).clamp(max=len(labels) - 1)]


def _complement(rows: torch.Tensor, batch: int) -> torch.Tensor:
    keep = torch.ones(batch, dtype=torch.bool, device=rows.device)
    keep[rows] = False
    return keep


class AugmentedLoader:
    """An iterable over ``loader`` whose batches go through a :class:`SyntheticMix`.

    Batches may be ``(images, labels)`` tuples/lists or dicts with ``image_key``/``label_key``;
    they are moved to the mixer's device (the generator's, or the pool's bank's; ``non_blocking``)
    before mixing. ``len()`` is the wrapped loader's. Made by :func:`augment_loader`.
    """

    def __init__(self, loader: Iterable, mix: SyntheticMix, *, image_key: str = "image",
                 label_key: str = "label", to_device: bool = True):
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
                images, labels = batch[self.image_key], batch[self.label_key]
            elif isinstance(batch, (tuple, list)) and len(batch) == 2:
                images, labels = batch
            else:
                raise DataError("augment_loader needs batches of (images, labels) or dicts with "
                                f"{self.image_key!r}/{self.label_key!r}; got {type(batch).__name__}")
            if self.to_device:
                images = images.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)
            images, labels = self.mix(images, labels)
            if isinstance(batch, Mapping):
                # Other per-row keys cannot follow appended rows; keep only image and label.
                yield {self.image_key: images, self.label_key: labels}
            else:
                yield type(batch)((images, labels)) if isinstance(batch, list) else (images, labels)


def augment_loader(loader: Iterable, generator: ConditionalGenerator | SyntheticPool, ratio: float = 0.5, *,
                   image_key: str = "image", label_key: str = "label", to_device: bool = True,
                   **mix_kwargs: Any) -> AugmentedLoader:
    """Wrap any DataLoader so that every batch it yields is mixed with synthetic rows.

    ``for images, labels in augment_loader(loader, generator, ratio=0.5): ...`` — the loop is
    unchanged. ``mix_kwargs`` go to :class:`SyntheticMix` (``mode``, ``balance``,
    ``output_range``, ``mean``/``std``, ``seed``, ``temperature``, ...). ``generator`` may be a
    :class:`~augmentgen.mixing.SyntheticPool` (call ``pool.step_epoch()`` after each epoch).
    Batches are moved to the generator's device (or the pool's bank's).
    """
    return AugmentedLoader(loader, SyntheticMix(generator, ratio, **mix_kwargs),
                           image_key=image_key, label_key=label_key, to_device=to_device)
