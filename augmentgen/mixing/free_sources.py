"""Free row sources: synthetic rows made from their classes alone, without the batch's real rows.

:class:`~augmentgen.mixing.SyntheticMix` draws the classes of its synthetic rows (the batch's, or
by ``balance``) and asks a free source for rows of them:

- :class:`GeneratorSource`: a conditional generator sampled in the step, at a temperature;
- :class:`PoolSource`: images indexed from a :class:`~augmentgen.mixing.SyntheticPool`'s bank,
  filled beforehand, so the step runs no generator at all (the fast path for CPU training).

``SyntheticMix(generator, ...)`` and ``SyntheticMix(pool, ...)`` wrap a bare generator or pool in
these. The anchored sources, made from the batch's real rows, are in
:mod:`augmentgen.mixing.sources`.
"""

from __future__ import annotations

import torch

from .._images import to_signed_unit
from ..errors import ConfigError
from ..models.base import ConditionalGenerator, Temperature
from .pool import SyntheticPool

__all__ = ["FreeSource", "GeneratorSource", "PoolSource"]


class FreeSource:
    """A source of synthetic rows of given classes, made without the batch's real rows.

    Subclasses implement :meth:`rows` (batched, on :attr:`device`, random numbers only from
    ``rng``) and give ``num_classes``, ``class_names``, ``image_shape`` and ``device``.
    """

    #: The mixer hands this source classes only (anchored sources get real rows of the batch).
    anchored = False
    #: The sampling temperature of the rows (1: plain samples), as the mixer reports it.
    temperature: Temperature = 1.0
    num_classes: int | None = None
    class_names: list[str] | None = None
    image_shape: tuple[int, int, int] | None = None
    device: torch.device | None = None

    def rows(self, classes: torch.Tensor, *, rng: torch.Generator | None = None) -> torch.Tensor:
        """Synthetic rows of ``classes`` (n,): float images (n, C, H, W) in ``[-1, 1]``."""
        raise NotImplementedError


class GeneratorSource(FreeSource):
    """A conditional generator's samples, made in the step on the generator's device.

    Args:
        generator (ConditionalGenerator): any conditional generator, on the device where
            batches will be (``generator.to("cuda")``).
        temperature (float or sequence of float, defaults to 1.0): sampling temperature
            (:meth:`ConditionalGenerator.sample`): below 1 concentrates each class's samples
            towards its centre (0: one image per class), above 1 spreads them; one float, or
            ``num_classes`` floats indexed by class. 1 gives exactly the samples without it.
        autocast (bool, defaults to False): sample under bf16 autocast.
        compile (bool, defaults to False): ``torch.compile`` the generator's sampling.
    """

    def __init__(self, generator: ConditionalGenerator, temperature: Temperature = 1.0, *,
                 autocast: bool = False, compile: bool = False):
        if not isinstance(generator, ConditionalGenerator):
            raise ConfigError(f"GeneratorSource needs a ConditionalGenerator, got {type(generator).__name__}")
        self.generator = generator
        # Validated once here (a float or a tuple of floats), so a bad value fails before training.
        self.temperature = generator.check_temperature(temperature)
        self.autocast = autocast
        self._sample = torch.compile(generator.sample) if compile else generator.sample

    @property
    def num_classes(self) -> int:
        return self.generator.num_classes

    @property
    def class_names(self) -> list[str]:
        return self.generator.class_names

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.generator.image_shape

    @property
    def device(self) -> torch.device:
        return self.generator.device

    def rows(self, classes: torch.Tensor, *, rng: torch.Generator | None = None) -> torch.Tensor:
        """Samples of ``classes`` (n,) drawn with ``rng``: float32 (n, C, H, W) in ``[-1, 1]``."""
        with torch.inference_mode(), torch.autocast(classes.device.type, dtype=torch.bfloat16,
                                                    enabled=self.autocast):
            fake_images = self._sample(classes, generator=rng, temperature=self.temperature)
        return fake_images.float()

    def __repr__(self) -> str:
        temperature = "" if self.temperature == 1.0 else f", temperature={self.temperature!r}"
        return f"GeneratorSource({type(self.generator).__name__}{temperature})"


class PoolSource(FreeSource):
    """Rows indexed from a :class:`~augmentgen.mixing.SyntheticPool`'s uint8 bank, on the bank's device.

    Each step's rows are drawn by batched indexing (:meth:`SyntheticPool.take`) with the mixer's
    seeded random stream; within one batch a class's rows are distinct bank images while it needs
    at most ``per_class``. The batch must be on the bank's device (``SyntheticPool(...,
    device="cuda")`` for GPU batches). Call ``pool.step_epoch()`` once per epoch to refill the
    bank every ``refresh_every`` epochs. The rows are the bank's 8-bit images, mapped back to
    ``[-1, 1]`` so the mixer treats them like generated ones (``uint8`` batches get the bank's
    bytes as they are, from :meth:`take`). The temperature and any teacher filtering are the
    pool's, applied once at fill time.

    Args:
        pool (SyntheticPool): the bank to draw from (an unpickled one works too).
    """

    def __init__(self, pool: SyntheticPool):
        if not isinstance(pool, SyntheticPool):
            raise ConfigError(f"PoolSource needs a SyntheticPool, got {type(pool).__name__}")
        self.pool = pool

    @property
    def temperature(self) -> Temperature:
        return self.pool.temperature  # its images were sampled at its own temperature

    @property
    def num_classes(self) -> int:
        return self.pool.num_classes

    @property
    def class_names(self) -> list[str]:
        return self.pool.class_names

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.pool.image_shape

    @property
    def device(self) -> torch.device:
        return self.pool.images.device

    def take(self, classes: torch.Tensor, *, rng: torch.Generator | None = None) -> torch.Tensor:
        """Bank images of ``classes`` (n,) drawn with ``rng`` as stored: uint8 (n, C, H, W).

        The same draws as :meth:`rows`, without the mapping to ``[-1, 1]``: what the mixer puts
        into ``uint8`` batches (mapping the bytes to ``[-1, 1]`` and back gives them unchanged).
        """
        return self.pool.take(classes, generator=rng)

    def rows(self, classes: torch.Tensor, *, rng: torch.Generator | None = None) -> torch.Tensor:
        """Bank images of ``classes`` (n,) drawn with ``rng``: float (n, C, H, W) in ``[-1, 1]``."""
        return to_signed_unit(self.take(classes, rng=rng))

    def __repr__(self) -> str:
        return f"PoolSource({self.pool!r})"
