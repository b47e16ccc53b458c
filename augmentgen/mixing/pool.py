"""A bank of synthetic images per class in shared memory, for per-sample transforms in workers."""

from __future__ import annotations

import torch

from ..errors import ConfigError, DataError
from ..models.base import ConditionalGenerator, Temperature
from ..transforms.functional import to_uint8


class SyntheticPool:
    """``per_class`` synthetic images of every class, as uint8 in shared memory.

    DataLoader workers should not run a generator (one copy of the model per worker, on the CPU).
    The pool samples the whole bank in large batches where the generator lives (on the GPU when
    there is one), stores it as ``uint8`` (K, N, C, H, W) on the CPU in shared memory, and the
    per-sample transforms (:class:`~augmentgen.transforms.ReplaceWithSynthetic`) only index it.
    Pickling the pool (spawned workers) sends the bank's shared-memory handle, never the
    generator; :meth:`refresh` rewrites the bank in place, so workers, persistent ones included,
    see the new images.

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
    """

    def __init__(self, generator: ConditionalGenerator, per_class: int = 256, *, batch_size: int = 1024,
                 seed: int | None = None, refresh_every: int | None = None, temperature: Temperature = 1.0):
        if per_class < 1:
            raise ConfigError(f"per_class must be at least 1, got {per_class}")
        if refresh_every is not None and refresh_every < 1:
            raise ConfigError(f"refresh_every must be a positive number of epochs, got {refresh_every}")
        self.temperature = generator.check_temperature(temperature)  # a float or a tuple of floats
        self.generator: ConditionalGenerator | None = generator
        self.per_class = per_class
        self.batch_size = batch_size
        self.refresh_every = refresh_every
        self.num_classes = generator.num_classes
        self.class_names = generator.class_names
        self.image_shape = generator.image_shape
        self.epoch = 0
        self.refreshes = 0
        self._rng = torch.Generator(device=generator.device)
        if seed is not None:
            self._rng.manual_seed(seed)
        else:
            self._rng.seed()
        # (K, N, C, H, W) uint8 in shared memory: workers read it without copies.
        self.images = torch.empty(self.num_classes, per_class, *self.image_shape, dtype=torch.uint8)
        self.images.share_memory_()
        self.refresh()

    def refresh(self) -> None:
        """Sample a new bank, in batches of ``batch_size``, and write it over the old one in place."""
        if self.generator is None:
            raise DataError("this SyntheticPool copy has no generator (it was unpickled in a worker); "
                            "call refresh() in the main process")
        flat = self.images.view(-1, *self.image_shape)
        labels = torch.arange(self.num_classes, device=self.generator.device).repeat_interleave(self.per_class)
        for start in range(0, len(labels), self.batch_size):
            chunk = labels[start:start + self.batch_size]
            fake_images = self.generator.sample(chunk, generator=self._rng, batch_size=self.batch_size,
                                                temperature=self.temperature)
            flat[start:start + len(chunk)].copy_(to_uint8(fake_images))
        self.refreshes += 1

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
        Uses the global torch RNG by default, which DataLoader seeds per worker.
        """
        labels_t = torch.as_tensor(labels, dtype=torch.long)
        if labels_t.numel() and not bool(((labels_t >= 0) & (labels_t < self.num_classes)).all()):
            raise DataError(f"labels must be in [0, {self.num_classes - 1}] for this pool, got {labels}")
        positions = torch.randint(self.per_class, labels_t.shape, generator=generator)
        # Advanced indexing copies, so callers may modify the result without touching the bank.
        return self.images[labels_t, positions]

    def __len__(self) -> int:
        return self.num_classes * self.per_class

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["generator"] = None  # workers only read the bank
        state["_rng"] = None
        return state

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return (f"SyntheticPool({self.num_classes} classes x {self.per_class}, shape=({c}, {h}, {w}), "
                f"refreshes={self.refreshes})")
