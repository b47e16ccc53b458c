"""A bank of synthetic images per class (free samples, or variations of real images), for
per-sample transforms in workers and for batch mixing."""

from __future__ import annotations

import functools
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._devices import check_device
from .._images import to_signed_unit, to_uint8
from .._labels import check_class_indices
from .._processes import progress_bar
from .._seeds import seeded_generator
from ..errors import ConfigError, DataError
from ..models.base import (
    ConditionalGenerator,
    Temperature,
    check_generator_argument,
    sampling_chunk,
    sampling_progress,
)
from .filter import AcceptanceCounts, TeacherFilter, ranks_in_class, teacher_device
from .pool_file import read_pool_file, write_pool_file
from .sources import AnchoredSource, check_int_arguments
from .variations import check_variation_inputs, class_anchors, variation_rows, variation_settings


def _check_bank_options(refresh_every, device) -> None:
    """``refresh_every``: None or an int >= 1; ``device``: None or a device this machine has (the bank
    is filled there at once)."""
    if refresh_every is not None and (isinstance(refresh_every, bool)
                                      or not isinstance(refresh_every, (int, np.integer)) or refresh_every < 1):
        raise ConfigError(f"refresh_every must be a positive number of epochs (an int >= 1, or None to keep "
                          f"the bank), got {refresh_every!r}")
    if device is not None:
        check_device(device, shown=f"device {device!r}")


def _rows_problem(images) -> str:
    """What is wrong with ``images`` as from_images' rows, and the conversion that fixes it."""
    if not isinstance(images, torch.Tensor):
        return f"{type(images).__name__}; pass a tensor (a NumPy array as torch.from_numpy(array))"
    got = f"dtype {images.dtype}, shape {tuple(images.shape)}"
    if images.dtype != torch.uint8:
        return f"{got}; pass uint8 rows (0-255): float images in [0, 1] as (images * 255).round().to(torch.uint8)"
    if images.ndim == 3:
        return f"{got}; add the channel axis of grayscale rows: images[:, None]"
    return f"{got}; pass a batch of rows, one image each"


class SyntheticPool:
    """``per_class`` synthetic images of every class, stored as uint8 (K, N, C, H, W).

    DataLoader workers should not run a generator (one copy of the model per worker, on the CPU),
    and a CPU training step should not wait for one either. The pool samples the whole bank in
    large batches where the generator lives (on the GPU when there is one) and stores it as
    ``uint8``; the per-sample transforms (:class:`~augmentgen.transforms.ReplaceWithSynthetic`)
    and the batch mixer (``SyntheticMix(pool, ratio)``) only index it. By default the bank is on
    the CPU in shared memory: pickling the pool (spawned workers) sends the bank's shared-memory
    handle, never the generator or the teacher; :meth:`refresh` rewrites the bank in place, so
    workers, persistent ones included, see the new images.

    Args:
        generator (ConditionalGenerator): the generator to sample from.
        per_class (int, defaults to 256): images kept per class.
        batch_size (int, defaults to 1024): images generated per forward pass while filling.
        seed (int, optional): seeds the bank's contents (each refresh draws new images).
        refresh_every (int, optional): with :meth:`step_epoch` called once per epoch, refresh the
            bank every this many epochs.
        temperature (float or sequence of float, defaults to 1.0): sampling temperature of the
            bank (:meth:`ConditionalGenerator.sample`): below 1 concentrates each class's images
            towards its centre (0: every image of a class is the same), above 1 spreads them;
            one float, or ``num_classes`` floats indexed by class.
        device (torch.device or str, optional): where the bank lives. ``None`` (the default): the
            CPU, in shared memory, as DataLoader workers need it. Give the classifier's device
            (``"cuda"``) to mix a GPU batch from the pool without host-device copies
            (``SyntheticMix(pool, ratio)``); such a bank is not for workers.
        teacher (nn.Module, optional): teacher filtering at fill time: a classifier trained on the
            real data taking float images in ``[-1, 1]`` and returning logits (N, K), on the
            generator's device (as for :class:`~augmentgen.mixing.SyntheticMix`). Needs
            ``filter_threshold``. The bank then holds only candidates the teacher accepts, and
            the filter costs nothing in the training step.
        filter_threshold (float, optional): a candidate is accepted when the teacher's probability
            for its class is >= this, in [0, 1]. Each round generates ``oversample`` candidates
            per still-empty slot; a class still short after ``max_rounds`` rounds fills its
            remaining slots by repeating its accepted images (with a warning; see
            :attr:`distinct_counts`), and a class with no accepted candidate at all is a
            :class:`~augmentgen.errors.DataError` that leaves the previous bank untouched.
        oversample (int, defaults to 4): candidates per empty slot in each round, >= 1.
        max_rounds (int, defaults to 4): rounds of candidates per refresh, >= 1.
        progress (bool, optional): a tqdm bar of images generated (candidates with a teacher) on
            the main process, advanced within a batch by iterative families (``ddpm``). ``None``
            (the default) shows it for the first fill only, when stderr is a terminal: a bank
            refreshed every few epochs inside a training loop draws no bar each time. ``True``
            shows every fill's, refreshes included; ``False`` none.

    Attributes:
        images (torch.Tensor): the bank, uint8 (K, N, C, H, W) in ``[0, 255]``.
        source_index (torch.Tensor or None): of a bank of variations (:meth:`from_variations`):
            int64 (K, N) CPU, the index of the real image each row was made from; None otherwise.
        variation (dict or None): how such a bank was made (source, mode, strength, seed, ...).
        distinct_counts (torch.Tensor): int64 (K,) CPU: distinct images per class after the last
            refresh (``per_class`` unless the teacher filter ran short).
        candidate_counts, accepted_counts (torch.Tensor): int64 (K,) CPU: teacher-filter
            candidates and accepted candidates per class in the last refresh (zeros without a
            teacher); :meth:`acceptance_rates` divides them.
        progress (bool or None): the ``progress`` setting, read by every fill (settable).
    """

    def __init__(self, generator: ConditionalGenerator, per_class: int = 256, *, batch_size: int = 1024,
                 seed: int | None = None, refresh_every: int | None = None, temperature: Temperature = 1.0,
                 device: torch.device | str | None = None, teacher: nn.Module | None = None,
                 filter_threshold: float | None = None, oversample: int = 4, max_rounds: int = 4,
                 progress: bool | None = None):
        check_generator_argument(generator, "SyntheticPool", "SyntheticPool(generator, per_class)")
        # batch_size too: a negative one filled nothing, leaving the bank's uninitialised memory as images.
        check_int_arguments(per_class=(per_class, 1), batch_size=(batch_size, 1))
        _check_bank_options(refresh_every, device)
        self.temperature = generator.check_temperature(temperature)  # a float or a tuple of floats
        self.generator: ConditionalGenerator | None = generator
        self.batch_size = batch_size
        self.num_classes = generator.num_classes
        self.class_names = generator.class_names
        self.image_shape = generator.image_shape
        self._filter = self._check_filter(generator, teacher, filter_threshold, oversample, max_rounds)
        self.teacher = teacher
        self.filter_threshold = None if filter_threshold is None else float(filter_threshold)
        self.oversample, self.max_rounds = int(oversample), int(max_rounds)
        self._allocate(per_class, refresh_every=refresh_every, seed=seed, rng_device=generator.device,
                       device=device, progress=progress)
        self.refresh()

    def _allocate(self, per_class: int, *, refresh_every: int | None, seed: int | None,
                  rng_device: torch.device, device: torch.device | str | None, progress: bool | None) -> None:
        """The empty bank, its counts and its seeded random stream (on ``rng_device``)."""
        self.per_class = per_class
        self.refresh_every = refresh_every
        self.progress = progress
        self.epoch = 0
        self.refreshes = 0
        self._variations: tuple | None = None  # (source, images, labels) of a variation bank
        self.source_index: torch.Tensor | None = None
        self.variation: dict | None = None
        self._rng = seeded_generator(seed, rng_device)
        k = self.num_classes
        self.distinct_counts = torch.zeros(k, dtype=torch.long)
        self._counts = AcceptanceCounts(k)  # of the last refresh, on the CPU
        if device is None:
            # (K, N, C, H, W) uint8 in shared memory: workers read it without copies.
            self.images = torch.empty(k, per_class, *self.image_shape, dtype=torch.uint8)
            self.images.share_memory_()
        else:
            self.images = torch.empty(k, per_class, *self.image_shape, dtype=torch.uint8, device=device)

    @staticmethod
    def _check_filter(generator: ConditionalGenerator, teacher: nn.Module | None, filter_threshold: float | None,
                      oversample: int, max_rounds: int) -> TeacherFilter | None:
        """The fill-time :class:`TeacherFilter`, or None without a teacher."""
        TeacherFilter.check_options(threshold=filter_threshold, oversample=oversample, max_rounds=max_rounds)
        if teacher is None:
            if filter_threshold is not None:
                raise ConfigError("filter_threshold needs a teacher: pass teacher=<a classifier trained "
                                  "on the real data>, e.g. an augmentgen.metrics.ReferenceClassifier")
            return None
        if filter_threshold is None:
            raise ConfigError("a teacher is given but unused: the pool uses it only to filter its images; "
                              "set filter_threshold=... (soft labels are SyntheticMix(pool, teacher=..., "
                              "soft_labels=True))")
        return TeacherFilter(teacher, filter_threshold, oversample, max_rounds,
                             num_classes=generator.num_classes, device=generator.device)

    def refresh(self) -> None:
        """Sample a new bank, in batches of ``batch_size``, and write it over the old one in place.

        A bank made by :meth:`from_variations` makes new variations of the same real images (the
        next draws of its seeded stream). A bar shows it as :attr:`progress` says."""
        if self._variations is None and self.generator is None:
            raise DataError("this SyntheticPool has no generator to sample from (it was unpickled in a worker, "
                            "cut by head() or filtered(), or built by from_images()); call refresh() on the pool "
                            "it came from, in the main process, or build a SyntheticPool(generator, per_class)")
        with self._fill_bar() as bar, sampling_progress(bar):
            if self._variations is not None:
                self._refresh_variations()
            elif self._filter is not None:
                self._refresh_filtered()
            else:
                self._refresh_free()
        self.refreshes += 1

    def _fill_bar(self):
        """The bar of this fill: the first fill's by the ``progress`` convention
        (:func:`~augmentgen._processes.progress_bar`), a refresh's only with ``progress=True``."""
        shown = self.progress if self.refreshes == 0 or self.progress else False
        if self._variations is not None:
            return progress_bar(shown, total=len(self), desc="variations")
        if self._filter is not None:  # rounds stop when the bank is full: no total is known
            return progress_bar(shown, total=None, desc="pool (teacher-filtered)", unit="candidate")
        return progress_bar(shown, total=len(self), desc="pool")

    def _refresh_free(self) -> None:
        """The bank of free samples, ``batch_size`` at a time from the seeded stream."""
        flat = self.images.view(-1, *self.image_shape)
        labels = torch.arange(self.num_classes, device=self.generator.device).repeat_interleave(self.per_class)
        for start in range(0, len(labels), self.batch_size):
            chunk = labels[start:start + self.batch_size]
            fake_images = self.generator.sample(chunk, generator=self._rng, batch_size=self.batch_size,
                                                temperature=self.temperature)
            flat[start:start + len(chunk)].copy_(to_uint8(fake_images))
        self.distinct_counts.fill_(self.per_class)

    def _refresh_filtered(self) -> None:
        # The new bank is built aside and copied in at the end, so a failed refresh keeps the old one.
        n = self.per_class
        device = self.generator.device
        self._filter.counts.reset()  # the counts are those of this refresh
        staging, filled_cpu = self._filter.fill_per_class(
            n, lambda chunk: self.generator.sample(chunk, generator=self._rng, batch_size=self.batch_size,
                                                   temperature=self.temperature),
            batch_size=self.batch_size, image_shape=self.image_shape, device=device)
        candidates = self._filter.counts.candidates
        empty = (filled_cpu == 0).nonzero().flatten().tolist()
        if empty:
            names = ", ".join(f"{self.class_names[c]!r} (0 of {int(candidates[c])} candidates)" for c in empty)
            raise DataError(
                f"the teacher accepted no candidate of class {names} at filter_threshold="
                f"{self.filter_threshold}: lower filter_threshold, raise oversample / max_rounds, or check "
                "that the generator makes that class (the bank was left as it was)")
        short = (filled_cpu < n).nonzero().flatten().tolist()
        for c in short:
            # Repeat the accepted images cyclically: rejected candidates are never stored.
            have = int(filled_cpu[c])
            staging[c, have:] = staging[c, torch.arange(n - have, device=device) % have]
        if short:
            warnings.warn(
                "SyntheticPool teacher filter ran short after "
                f"{self.max_rounds} rounds; repeated accepted images for class(es) "
                + ", ".join(f"{self.class_names[c]!r} ({int(filled_cpu[c])} distinct of {n})" for c in short)
                + ": raise oversample / max_rounds or lower filter_threshold for more distinct images",
                stacklevel=3)
        self.images.copy_(staging)
        self.distinct_counts.copy_(filled_cpu)
        self._counts.copy_(self._filter.counts)

    # ------------------------------------------------------------------ a bank of variations
    @classmethod
    def from_variations(cls, source: AnchoredSource, images: torch.Tensor, labels: torch.Tensor, *,
                        per_image: int = 4, seed: int | None = None, batch_size: int = 256,
                        refresh_every: int | None = None, device: torch.device | str | None = None,
                        progress: bool | None = None) -> SyntheticPool:
        """A bank of variations of your training images, made once by an anchored source.

        ``SyntheticPool.from_variations(VariationSource(generator, "vary"), train.images,
        train.labels, per_image=4)`` runs the source over the real images, in batches of
        ``batch_size`` on the source's device, and keeps the rows per class. A mixer
        (``SyntheticMix(pool, ratio)``), the per-sample transforms and every other user of a pool
        then only index the bank: the encoder (or a diffusion family's SDEdit, slow per row) never
        runs in the step. Each row keeps its real image's class; :attr:`source_index` says which
        image it was made from and :attr:`variation` how (mode, strength, seed).

        Every class gets ``per_class = per_image * (images in the largest class)`` rows, so a
        class with fewer images gets more variations of each (its images in a seeded random order,
        each ⌊per_class / n⌋ or ⌈per_class / n⌉ times); every row is a separate draw. For
        ``interpolate`` / ``extrapolate`` the second image of a pair is drawn among all the
        images of the class (not recorded). The build holds the images on the source's device as
        float32 (4 bytes a value) for the duration. For a bank too large for memory, or made once
        offline by many processes, :func:`~augmentgen.mixing.write_variation_shards` writes Parquet
        shards by the same rule.

        Args:
            source (AnchoredSource): what makes the rows, e.g. ``VariationSource(generator,
                "vary")``: an encoder family (``aae``, ``vae``, ``ae``, ``aegan``) or ``ddpm``.
            images (torch.Tensor): the real images (N, C, H, W), uint8 in ``[0, 255]`` (as
                ``LabelledImages.images``) or float in the generators' ``[-1, 1]``, shaped like
                the source's generator's images, on any device.
            labels (torch.Tensor): their class indices (N,); every class of the source needs one.
            per_image (int, defaults to 4): variations per image of the largest class, >= 1.
            seed (int, optional): seeds the bank: the same seed, ``batch_size`` and device give
                the same bank (a random seed otherwise, recorded in :attr:`variation`).
            batch_size (int, defaults to 256): rows made per call of the source.
            refresh_every (int, optional): with :meth:`step_epoch`, make new variations every this
                many epochs (the pool keeps the source and the images for :meth:`refresh`; a
                pickled copy, as workers get, has neither).
            device (torch.device or str, optional): where the bank lives, as for the constructor:
                the CPU in shared memory by default (for DataLoader workers).
            progress (bool, optional): a tqdm bar on the main process, as for the constructor:
                ``None`` (the default) shows the first fill's when stderr is a terminal.

        Example::

            pool = SyntheticPool.from_variations(VariationSource(generator, "vary"), train.images,
                                                 train.labels, per_image=4, seed=0)
            mix = SyntheticMix(pool, ratio=0.5, mode="append")
            rows_of_image_7 = (pool.source_index == 7).nonzero()  # (class, position) pairs
        """
        images, labels, counts = check_variation_inputs(source, images, labels, per_image, batch_size)
        return cls._of_variations(source, images, labels, counts, per_image=per_image, seed=seed,
                                  batch_size=batch_size, refresh_every=refresh_every, device=device,
                                  progress=progress)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the bank to ``path`` as safetensors, atomically, and return the path.

        A slow sampler's bank (a ``ddpm``'s takes minutes to an hour on a CPU) need not be
        sampled again in the next run: :meth:`load` gives the pool back. The file holds the
        images, :attr:`distinct_counts` and, for a bank of variations, :attr:`source_index`;
        its metadata the class names, how the variations were made and the filter threshold.
        Never a pickle: the file is read without running code.

        Args:
            path (str or os.PathLike): the file to write (its folders are created).
            overwrite (bool, defaults to False): replace a bank saved at ``path`` before; a file
                that is not one (a model's weights) is never replaced.

        Raises:
            ConfigError: ``path`` is a folder, or a folder above it is a file.
            DataError: ``path`` exists and ``overwrite`` is False, or it is not a saved bank.
        """
        tensors = {"images": self.images.detach().cpu().contiguous(), "distinct_counts": self.distinct_counts.cpu()}
        if self.source_index is not None:
            tensors["source_index"] = self.source_index.cpu().contiguous()
        metadata = {"class_names": json.dumps(self.class_names), "variation": json.dumps(self.variation),
                    "filter_threshold": json.dumps(self.filter_threshold)}
        return write_pool_file(path, tensors, metadata, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: torch.device | str | None = None) -> SyntheticPool:
        """The pool :meth:`save` wrote to ``path`` (on the CPU in shared memory, or ``device``).

        It holds no generator: it mixes, cuts and filters like any pool, and cannot :meth:`refresh`.

        Raises:
            DataError: no file at ``path``, or not a pool that :meth:`save` wrote.
        """
        tensors, metadata = read_pool_file(path)
        images = tensors["images"]
        pool = cls._of_bank(images, json.loads(metadata.get("class_names", "null")), device)
        if "distinct_counts" in tensors:
            pool.distinct_counts.copy_(tensors["distinct_counts"])
        pool.source_index = tensors.get("source_index")
        pool.variation = json.loads(metadata.get("variation", "null"))
        pool.filter_threshold = json.loads(metadata.get("filter_threshold", "null"))
        return pool

    @classmethod
    def from_images(cls, images: torch.Tensor, labels: torch.Tensor, *, per_class: int | None = None,
                    class_names: list[str] | None = None, device: torch.device | str | None = None) -> SyntheticPool:
        """A pool over synthetic images made elsewhere: uint8 ``images`` (N, C, H, W) and ``labels`` (N,).

        E.g. an offline bank written as Parquet shards (``augmentgen sample --format parquet``,
        :func:`~augmentgen.mixing.write_shards`) read back with ``datasets`` and
        :func:`augmentgen.load_data`, to mix into a torch loader with
        :class:`~augmentgen.mixing.SyntheticMix`::

            bank = augmentgen.load_data(datasets.load_dataset("parquet", data_dir="synth", split="train"))
            pool = SyntheticPool.from_images(bank.images, bank.labels, class_names=bank.class_names)

        Each class keeps its first ``per_class`` rows, in order (:meth:`save` and :meth:`load`
        keep a pool whole). The pool holds no generator, so it cannot :meth:`refresh`; it mixes,
        pickles to workers, cuts (:meth:`head`) and filters (:meth:`filtered`) like any other.

        Args:
            images (torch.Tensor): uint8 (N, C, H, W).
            labels (torch.Tensor): class indices (N,) in ``[0, K)``, K being ``len(class_names)``
                or else ``labels.max() + 1``; every class needs at least ``per_class`` rows.
            per_class (int, optional): rows kept per class (default: as many as the class with
                fewest has).
            class_names (list[str], optional): K names (default ``"0"``, ``"1"``, ...).
            device (torch.device or str, optional): where the bank lives, as for
                :class:`SyntheticPool` (``None``: the CPU, in shared memory).
        """
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            raise DataError(f"from_images takes uint8 images shaped (N, C, H, W), got {_rows_problem(images)}")
        if len(images) == 0:
            raise DataError("from_images got no images (N = 0); pass the rows of every class")
        k = None if class_names is None else len(class_names)
        labels = check_class_indices(labels, k, classes=f"class_names has {k} names",
                                     fix="pass a name for every class").cpu()
        if len(labels) != len(images):
            raise DataError(f"from_images got {len(images)} images but {len(labels)} labels")
        if per_class is not None:
            check_int_arguments(per_class=(per_class, 1))
        counts = torch.bincount(labels, minlength=k or 0)
        n = int(counts.min()) if per_class is None else per_class
        short = (counts < max(n, 1)).nonzero().flatten().tolist()
        if short:
            names = class_names or [str(c) for c in range(len(counts))]
            raise DataError("from_images needs " + (f"{n} rows of every class" if per_class else "rows of every class")
                            + ": " + ", ".join(f"class {names[c]!r} has {int(counts[c])}" for c in short)
                            + "; pass per_class=<at most the smallest count>, or add rows of those classes")
        # Each class's rows in order: a stable sort by class, then the first n of each.
        order = torch.argsort(labels, stable=True)
        starts = counts.cumsum(0) - counts
        rows = order[(starts[:, None] + torch.arange(n)).flatten()]
        return cls._of_bank(images[rows.to(images.device)].unflatten(0, (len(counts), n)), class_names, device)

    @classmethod
    def _of_bank(cls, images: torch.Tensor, class_names: list[str] | None, device) -> SyntheticPool:
        """A pool over ``images`` uint8 (K, N, C, H, W), class ``k``'s at ``[k]``: no generator."""
        k = images.shape[0]
        _check_bank_options(None, device)
        pool = cls.__new__(cls)
        pool.generator, pool.teacher, pool._filter = None, None, None
        pool.filter_threshold, pool.oversample, pool.max_rounds = None, 4, 4
        pool.temperature, pool.batch_size = 1.0, 1024
        pool.num_classes, pool.image_shape = k, tuple(images.shape[2:])
        pool.class_names = list(class_names or [str(c) for c in range(k)])
        pool._allocate(images.shape[1], refresh_every=None, seed=0, rng_device=torch.device("cpu"), device=device,
                       progress=False)
        pool.images.copy_(images)
        pool.distinct_counts.fill_(pool.per_class)
        return pool

    @classmethod
    def _of_variations(cls, source: AnchoredSource, images: torch.Tensor, labels: torch.Tensor, counts: torch.Tensor,
                       *, per_image: int, seed: int | None, batch_size: int, refresh_every: int | None,
                       device, progress: bool | None) -> SyntheticPool:
        """:meth:`from_variations` of inputs ``check_variation_inputs`` already returned (its
        images, int64 labels and class counts), for callers that check them under their own name."""
        _check_bank_options(refresh_every, device)
        pool = cls.__new__(cls)
        pool.generator, pool.teacher, pool._filter = None, None, None
        pool.filter_threshold, pool.oversample, pool.max_rounds = None, 4, 4
        pool.temperature, pool.batch_size = 1.0, batch_size
        pool.num_classes, pool.image_shape = source.num_classes, tuple(source.image_shape)
        pool.class_names = list(source.class_names or [str(c) for c in range(source.num_classes)])
        pool._allocate(per_image * int(counts.max()), refresh_every=refresh_every, seed=seed,
                       rng_device=torch.device(source.device), device=device, progress=progress)
        pool.source_index = torch.empty(pool.num_classes, pool.per_class, dtype=torch.long)
        if device is None:
            pool.source_index.share_memory_()  # workers see refreshes, as they do the bank
        pool.variation = {**variation_settings(source), "per_image": per_image, "images": len(labels),
                          "seed": pool._rng.initial_seed(), "batch_size": batch_size}
        pool._variations = (source, images, labels)
        pool.refresh()
        return pool

    @torch.no_grad()
    def _refresh_variations(self) -> None:
        source, images, labels = self._variations
        device = torch.device(source.device)
        k, n = self.num_classes, self.per_class
        labels = labels.to(device)
        real = to_signed_unit(images.to(device))  # all of them: a pair's second image is any of its class
        # Each class's images in a random order; slot s of class c is made from image s mod n_c of it.
        anchors = class_anchors(labels, n, k, rng=self._rng).flatten()
        flat, index = self.images.view(-1, *self.image_shape), self.source_index.view(-1)
        for lo in range(0, len(anchors), self.batch_size):
            chunk = anchors[lo:lo + self.batch_size]
            with sampling_chunk(len(chunk)):  # the fill's bar: a ddpm's SDEdit moves it step by step
                rows = variation_rows(source, real, labels, chunk, rng=self._rng)
            # Rows and their provenance are written together: an interrupted refresh leaves a
            # bank whose every row is a variation of the image its index names.
            flat[lo:lo + len(chunk)].copy_(to_uint8(rows.float()))
            index[lo:lo + len(chunk)].copy_(chunk)
        self.distinct_counts.fill_(n)

    @property
    def candidate_counts(self) -> torch.Tensor:
        """Teacher-filter candidates per class in the last refresh: int64 (K,) CPU (zeros without a teacher)."""
        return self._counts.candidates

    @property
    def accepted_counts(self) -> torch.Tensor:
        """Teacher-filter accepted candidates per class in the last refresh: int64 (K,) CPU."""
        return self._counts.accepted

    def acceptance_rates(self) -> torch.Tensor:
        """Teacher-filter acceptance per class in the last refresh: float64 (K,), NaN without a teacher."""
        return self._counts.rates()

    def step_epoch(self) -> bool:
        """Call once at the end of every epoch; refreshes every ``refresh_every`` epochs.

        Returns whether the bank was refreshed.
        """
        self.epoch += 1
        if self.refresh_every and self.epoch % self.refresh_every == 0:
            self.refresh()
            return True
        return False

    def draw(self, labels: torch.Tensor | int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random bank images of the classes in ``labels``, as new uint8 tensors.

        ``labels`` is an int (returns (C, H, W)) or an integer tensor (N,) (returns (N, C, H, W)).
        Uses the global torch RNG by default, which DataLoader seeds per worker. For whole batches
        in a training step, :meth:`take` draws without a host sync.
        """
        # One int (or 0-d tensor) is one image; as a list it gets the check of a batch of labels.
        single = (isinstance(labels, (int, float, np.number, np.bool_))
                  or isinstance(labels, torch.Tensor) and labels.ndim == 0)
        labels_t = check_class_indices(torch.as_tensor(labels).reshape(1) if single else labels, self.num_classes,
                                       classes=self._classes_text, fix=_POOL_FIX)
        positions = torch.randint(self.per_class, labels_t.shape, generator=generator)
        # Advanced indexing copies, so callers may modify the result without touching the bank.
        drawn = self.images[labels_t, positions]
        return drawn[0] if single else drawn

    def take(self, labels: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Bank images for a batch: uint8 (N, C, H, W), a new tensor on the bank's device.

        ``labels`` is an integer tensor (N,) on the bank's device. Batched indexing only (no
        per-sample loop, no host sync on CUDA): each class draws, with ``generator`` (on the
        bank's device), a random start and a random step coprime with ``per_class``, and its rows
        take the images at ``start, start + step, ...`` (mod ``per_class``), so the rows of one
        call are distinct images while a class needs at most ``per_class`` of them (then the order
        wraps around). A draw costs O(K + N) rather than a shuffle of every class's bank
        (O(K P log P)), which matters for large banks. Labels outside ``[0, K)`` are a
        :class:`DataError` on the CPU; on CUDA the indexing asserts (checking would cost a sync).
        """
        device = self.images.device
        if isinstance(labels, torch.Tensor):  # moved first, so that the range is read where the bank is
            labels = labels.to(device)
        # Off the CPU the range is not read back (a host sync per batch): the indexing asserts.
        labels = check_class_indices(labels, self.num_classes, classes=self._classes_text, fix=_POOL_FIX,
                                     range_check="cpu").to(device)
        n = self.per_class
        steps = _steps_coprime_with(n, device)
        start = torch.randint(n, (self.num_classes,), generator=generator, device=device)
        step = steps[torch.randint(len(steps), (self.num_classes,), generator=generator, device=device)]
        positions = (start[labels] + (ranks_in_class(labels, self.num_classes) % n) * step[labels]) % n
        return self.images[labels, positions]

    def head(self, per_class: int) -> SyntheticPool:
        """The first ``per_class`` images of each class, as a pool sharing this bank's memory.

        A smaller bank without sampling again. The images of a free or teacher-filtered bank are
        drawn independently of one another, so the first rows of each class are a bank of that
        size in their own right: e.g. one bank sampled for the whole training set, cut to the
        size of each validation fold's training part. The head is a view (no copy), so a
        :meth:`refresh` of this pool rewrites it too; it cannot refresh itself (it holds no
        generator). A bank of variations is refused: its rows are ordered by the real image
        they were made from, so a head would keep only the first images' variations.

        Args:
            per_class (int): images kept per class, in ``[1, self.per_class]``.
        """
        check_int_arguments(per_class=(per_class, 1))
        if per_class > self.per_class:
            raise ConfigError(f"head({per_class}) asks for more images per class than this bank holds "
                              f"({self.per_class}); build a larger SyntheticPool(generator, per_class={per_class})")
        if self.variation is not None:
            raise ConfigError("head() of a bank of variations would keep the variations of the first real images "
                              "only; make a smaller bank with SyntheticPool.from_variations(..., per_image=...)")
        # A teacher-filtered class that ran short repeats its accepted images after them.
        return self._derived(self.images[:, :per_class], self.distinct_counts.clamp(max=per_class))

    def filtered(self, teacher: nn.Module, filter_threshold: float, *, batch_size: int | None = None) -> SyntheticPool:
        """The images of this bank that ``teacher`` accepts, as a new bank of the same size.

        Teacher filtering of a bank already made, without sampling again (a ``ddpm``'s bank takes
        its minutes to fill): each distinct image of class ``c`` is kept when the teacher's
        probability of ``c`` is >= ``filter_threshold``, the same rule as the fill-time filter
        (``SyntheticPool(..., teacher=..., filter_threshold=...)``), which samples until a class
        has ``per_class`` accepted images. Here a class keeps only what it has: its accepted
        images, in bank order, fill its ``per_class`` slots cyclically, and
        :attr:`distinct_counts` (and :attr:`accepted_counts` against :attr:`candidate_counts`)
        say how many are distinct. The new bank is a copy (on this bank's device); like
        :meth:`head` it holds no generator, so it cannot refresh. A bank of variations is
        refused (a row made from a real row keeps that row's label).

        Args:
            teacher (nn.Module): a classifier trained on the real data taking float images in
                ``[-1, 1]`` and returning logits (N, K); the images are judged on its device.
            filter_threshold (float): in [0, 1], as for the fill-time filter.
            batch_size (int, optional): images judged per teacher call (defaults to the bank's
                ``batch_size``).

        Raises:
            DataError: the teacher accepted no image of some class (naming it and the fix).
        """
        if self.variation is not None:
            raise ConfigError("filtered() is for banks of free samples: a row made from a real row keeps that "
                              "row's label, so variations are not teacher-filtered")
        batch_size = self.batch_size if batch_size is None else batch_size
        check_int_arguments(batch_size=(batch_size, 1))
        if filter_threshold is None:
            raise ConfigError("filtered() needs filter_threshold=<a probability in [0, 1]>")
        judge = teacher_device(teacher, self.images.device)
        bank_filter = TeacherFilter(teacher, filter_threshold, num_classes=self.num_classes, device=judge)
        k, n = self.num_classes, self.per_class
        # Only distinct images are candidates: a short class's repeats would be counted twice.
        candidate = torch.arange(n, device=self.images.device) < self.distinct_counts.to(self.images.device)[:, None]
        flat, classes = self.images.flatten(0, 1), torch.arange(k, device=self.images.device).repeat_interleave(n)
        accepted = torch.cat([bank_filter.judge(to_signed_unit(flat[i:i + batch_size].to(judge)),
                                                classes[i:i + batch_size].to(judge))[0].to(flat.device)
                              for i in range(0, len(flat), batch_size)]).view(k, n) & candidate
        kept = accepted.sum(1)
        self._check_some_accepted(kept, candidate.sum(1), filter_threshold)
        # Accepted images first, in bank order; slot s of class c takes accepted image s mod kept[c].
        order = torch.argsort((~accepted).to(torch.uint8), dim=1, stable=True)
        slots = order.gather(1, torch.arange(n, device=kept.device) % kept[:, None])
        pool = self._derived(self.images[torch.arange(k, device=kept.device)[:, None], slots], kept.cpu())
        pool.teacher, pool.filter_threshold = None, float(filter_threshold)
        pool._counts = AcceptanceCounts(k)
        pool._counts.candidates.copy_(candidate.sum(1))
        pool._counts.accepted.copy_(kept)
        return pool

    def _check_some_accepted(self, kept: torch.Tensor, candidates: torch.Tensor, filter_threshold: float) -> None:
        """A class with no accepted image cannot be mixed: a DataError naming it and the fix."""
        empty = (kept == 0).nonzero().flatten().tolist()
        if empty:
            names = ", ".join(f"{self.class_names[c]!r} (0 of {int(candidates[c])})" for c in empty)
            raise DataError(f"the teacher accepted no image of class {names} in this bank at filter_threshold="
                            f"{filter_threshold}: lower filter_threshold, or fill a larger bank or one filtered "
                            "as it fills (SyntheticPool(generator, per_class, teacher=..., filter_threshold=...))")

    def _derived(self, images: torch.Tensor, distinct_counts: torch.Tensor) -> SyntheticPool:
        """A pool of ``images`` (K, N, ...) cut or copied from this one: no generator, teacher or
        stream (it only indexes), no refresh schedule."""
        pool = SyntheticPool.__new__(SyntheticPool)
        pool.__dict__.update(self.__getstate__())
        if images.device.type == "cpu" and images.data_ptr() != self.images.data_ptr():
            images.share_memory_()  # a copy goes to workers as the bank does
        pool.images, pool.per_class = images, images.shape[1]
        pool.refresh_every, pool.epoch = None, 0
        pool.distinct_counts = distinct_counts
        return pool

    def _classes_text(self) -> str:
        return f"this pool holds {self.num_classes} classes"

    def __len__(self) -> int:
        return self.num_classes * self.per_class

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["generator"] = None  # workers only read the bank
        state["teacher"] = None
        state["_filter"] = None
        state["_rng"] = None
        state["_variations"] = None  # the source (its generator) and the real images
        return state

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        device = "" if self.images.device.type == "cpu" else f", device={str(self.images.device)!r}"
        teacher = "" if self.filter_threshold is None else f", filter_threshold={self.filter_threshold}"
        made = "" if self.variation is None else (f", variations of {self.variation['images']} images "
                                                  f"by {self.variation['source']}")
        return (f"SyntheticPool({self.num_classes} classes x {self.per_class}, shape=({c}, {h}, {w}){device}"
                f"{teacher}{made}, refreshes={self.refreshes})")


#: What to do about labels above a pool's classes.
_POOL_FIX = "pass class indices of its classes, or build the pool from a generator trained on these classes"


@functools.lru_cache(maxsize=8)
def _steps_coprime_with(n: int, device: torch.device) -> torch.Tensor:
    """The steps ``1 <= s < n`` with ``gcd(s, n) == 1`` (``[1]`` for ``n == 1``), on ``device``.

    Stepping through ``0..n-1`` by such an ``s`` visits every position once before repeating.
    """
    return torch.tensor([s for s in range(1, max(n, 2)) if math.gcd(s, n) == 1], dtype=torch.long, device=device)
