"""The interface every model family implements: :class:`ConditionalGenerator`."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
from collections.abc import Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from .._config import Config
from .._deprecation import renamed_argument
from .._labels import check_class_indices
from ..errors import ConfigError, DataError

if TYPE_CHECKING:
    from typing import Self

#: A sampling temperature: one float for every class, or one per class (index = class label).
Temperature = float | Sequence[float] | torch.Tensor

#: Labels: a 1-D integer tensor or array, or a list of class indices and class names.
LabelsLike = torch.Tensor | np.ndarray | Sequence[int | str]

# True inside `with labels_checked_on_device():`, a per-batch caller's sampling.
_CHECK_ON_DEVICE: ContextVar[bool] = ContextVar("augmentgen_check_labels_on_device", default=False)


class labels_checked_on_device:  # a context manager, named like torch.no_grad
    """Within ``with labels_checked_on_device():``, :meth:`ConditionalGenerator.check_labels`
    checks the range of labels on an accelerator with an asynchronous device-side assert instead
    of a host sync.

    For callers that sample every training step (:class:`~augmentgen.mixing.SyntheticMix`): the
    sync of the usual check (``bool(tensor)``) would wait for the GPU on every batch. A label out
    of range then fails as a device-side assert (a CUDA error naming no label) rather than the
    :class:`~augmentgen.errors.DataError` of a direct call. Labels on the CPU are checked as
    usual, with the same error: there the check costs no sync. A class rather than a
    ``@contextmanager`` generator, which costs a few microseconds more per batch.
    """

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _CHECK_ON_DEVICE.set(True)

    def __exit__(self, *exc_info) -> None:
        _CHECK_ON_DEVICE.reset(self._token)


class _SamplingCount:
    """The bars of a :class:`sampling_progress` block (its own and every enclosing block's) and
    where its count stands, in images."""

    __slots__ = ("bars", "position", "shown", "chunk_start", "chunk_size")

    def __init__(self, bars: tuple) -> None:
        self.bars = bars
        self.position = 0.0  # images done, fractions of a chunk included
        self.shown = 0  # whole images the bar was advanced by
        self.chunk_start, self.chunk_size = 0.0, 0  # of the innermost sampling_chunk

    def move_to(self, position: float) -> None:
        self.position = max(self.position, position)
        # Whole images only: tqdm prints a float count as "12.480000000000002/100".
        whole = int(self.position + 1e-6)  # a chunk's fractions may sum to just under its size
        if whole > self.shown:
            for bar in self.bars:
                bar.update(whole - self.shown)
            self.shown = whole


# The count of the innermost `with sampling_progress(bar):` block, None outside any.
_SAMPLING_COUNT: ContextVar[_SamplingCount | None] = ContextVar("augmentgen_sampling_progress", default=None)


class sampling_progress:  # a context manager, named like torch.no_grad
    """Within ``with sampling_progress(bar):``, generating images advances ``bar`` by their number.

    ``bar`` is a tqdm bar, or anything with ``update(n)``; ``None`` (or a disabled tqdm bar)
    changes nothing. :meth:`ConditionalGenerator.sample` advances it by the images of each chunk
    it generates (each :class:`sampling_chunk`); families whose generation is iterative (``ddpm``)
    advance it through a chunk as their steps run (:func:`report_sampling_fraction`), so that a
    bar moves during a batch that takes minutes. The bar only ever gets whole images, and every
    chunk completed adds exactly its size. Blocks nest: images made inside an inner block advance
    its bar and every enclosing block's (a pool's own ``pool`` bar and ``augmentgen eval``'s
    ``sampled``), a hidden inner bar hiding none of them. Samples are the same with and without a
    bar::

        with tqdm(total=len(labels), unit="img") as bar, sampling_progress(bar):
            images = generator.sample(labels)

    Without a block nothing is counted: the hooks cost one context-variable read per chunk or step.
    """

    __slots__ = ("_bar", "_token")

    def __init__(self, bar) -> None:
        self._bar = None if bar is None or getattr(bar, "disable", False) else bar

    def __enter__(self):
        outer = _SAMPLING_COUNT.get()
        bars = (*(outer.bars if outer is not None else ()), *(() if self._bar is None else (self._bar,)))
        self._token = _SAMPLING_COUNT.set(_SamplingCount(bars) if bars else None)
        return self._bar

    def __exit__(self, *exc_info) -> None:
        _SAMPLING_COUNT.reset(self._token)


class sampling_chunk:
    """``with sampling_chunk(n):`` around the code that generates one batch of ``n`` images.

    Inside a :class:`sampling_progress` block, :func:`report_sampling_fraction` calls made in it
    move the bar through those ``n`` images, and leaving it normally completes them (an error
    leaves the bar where it is). Chunks nest: an inner one's images count towards the outer one.
    Outside a :class:`sampling_progress` block it does nothing.
    """

    __slots__ = ("_n", "_count", "_outer")

    def __init__(self, n: int) -> None:
        self._n = n

    def __enter__(self) -> None:
        count = self._count = _SAMPLING_COUNT.get()
        if count is not None:
            self._outer = count.chunk_start, count.chunk_size
            count.chunk_start, count.chunk_size = count.position, self._n

    def __exit__(self, exc_type, *exc_info) -> None:
        count = self._count
        if count is None:
            return
        if exc_type is None:
            count.move_to(count.chunk_start + self._n)
        count.chunk_start, count.chunk_size = self._outer


def report_sampling_fraction(done: float) -> None:
    """Say that ``done`` (in [0, 1]) of the innermost :class:`sampling_chunk`'s images are made.

    For families whose generation is iterative: ``ddpm`` calls it after each denoising step
    with ``(step + 1) / steps``. Outside a :class:`sampling_progress` block it does nothing.
    """
    count = _SAMPLING_COUNT.get()
    if count is not None:
        count.move_to(count.chunk_start + done * count.chunk_size)


@functools.lru_cache(maxsize=64)
def _temperature_tensor(hex_values: tuple[str, ...], device: torch.device) -> torch.Tensor:
    """A temperature table on ``device``, made once per (values, device): building it each call
    is a host-to-device copy (a blocking one on CUDA) in every ``sample`` call. Keyed on the
    exact values (``float.hex``: ``-0.0`` and ``0.0`` are different keys, as they are different
    tables). Shared, so read-only; made outside inference mode so that any caller may read it."""
    with torch.inference_mode(False):
        return torch.tensor([float.fromhex(v) for v in hex_values], dtype=torch.float32, device=device)


@dataclasses.dataclass
class GeneratorConfig(Config):
    """Fields every family shares; each family's config subclasses this.

    Args:
        num_classes (int): number of classes the generator is conditioned on.
        image_size (int): height and width of generated images (28, 32 or 64).
        in_channels (int): image channels, 1 (grayscale) or 3 (RGB).
        latent_dim (int): size of the noise / latent code.
        class_names (list[str], optional): human-readable class names, ``num_classes`` of them.
        learning_rate (float): learning rate of the family's optimizers.
    """

    family: ClassVar[str] = ""

    num_classes: int = 10
    image_size: int = 28
    in_channels: int = 1
    latent_dim: int = 64
    class_names: list[str] | None = None
    learning_rate: float = 2e-4

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {self.num_classes}")
        if self.image_size not in (28, 32, 64):
            raise ConfigError(f"image_size must be 28, 32 or 64, got {self.image_size}")
        if self.in_channels not in (1, 3):
            raise ConfigError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.latent_dim < 1:
            raise ConfigError(f"latent_dim must be positive, got {self.latent_dim}")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ConfigError(
                f"class_names has {len(self.class_names)} names but num_classes is {self.num_classes}"
            )
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)


class ConditionalGenerator(nn.Module):
    """A generator of images conditioned on a class label.

    Every model family implements this interface, and everything downstream (mixing,
    metrics, the hub) sees generators only through it: ``num_classes``, ``class_names``,
    ``image_shape`` and :meth:`sample`. Samples are in ``[-1, 1]``, shaped ``(N, C, H, W)``.
    """

    config_class: ClassVar[type[GeneratorConfig]] = GeneratorConfig
    #: How an evaluation draws this family's synthetic rows unless told (``bank_per_image="auto"``):
    #: None samples them at every training step; K fills a bank once per arm, K rows per real image,
    #: for a family whose sampler runs many network passes per image (a diffusion model's).
    default_bank_per_image: ClassVar[int | None] = None
    #: The largest ``vary`` strength the family takes (None: no bound). A diffusion family's
    #: strength is the fraction of its noise chain, so 1 noises an image all the way.
    max_vary_strength: ClassVar[float | None] = None

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config

    # ----------------------------------------------------------------- interface
    @property
    def family(self) -> str:
        return type(self.config).family

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names or [str(i) for i in range(self.num_classes)])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.config.image_shape

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def generate(self, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Map ``noise`` (N, latent_dim) and ``labels`` (N,) to images in [-1, 1], with autograd."""
        raise NotImplementedError

    def sample_noise(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` latent codes from the family's prior on the model's device."""
        return torch.randn(n, self.config.latent_dim, device=self.device, generator=generator)

    def scale_noise(self, noise: torch.Tensor, labels: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
        """Scale ``sample_noise`` output by a temperature around the prior's centre, without random draws.

        The default is for priors centred at 0 (N(0, I), a zero-mean uniform): ``noise * t``.
        Families whose noise is centred elsewhere (a mixture's component means) override it to
        scale the deviation from that centre. Families that map the noise to a per-class code
        afterwards (the ``ae``'s fitted Gaussian, mean + L·noise) need no override: scaling the
        zero-mean noise scales the code's deviation from the class mean. A row with ``t == 1``
        must come back bit-identical; :meth:`sample` skips the call when every class is at 1.

        Args:
            noise: (N, latent_dim) from :meth:`sample_noise`.
            labels: (N,) int64 class of each row.
            temperature: (N,) float, the temperature of each row (already looked up by label),
                every value finite and >= 0.

        Returns:
            The scaled noise, shaped and typed like ``noise``.
        """
        return noise * temperature.to(noise.dtype).view(-1, *([1] * (noise.ndim - 1)))

    def check_temperature(self, temperature: Temperature) -> float | tuple[float, ...]:
        """Validate a sampling temperature: a float, or a tuple of ``num_classes`` floats.

        Accepts a number, a 0-d tensor, or a sequence / 1-D tensor (or array) of ``num_classes``
        numbers indexed by class label. Every value must be finite and >= 0. Raises
        :class:`~augmentgen.errors.ConfigError` saying what is wrong and how to fix it.
        """
        k = self.num_classes
        usage = f"give one float >= 0 for all classes, or {k} floats >= 0, one per class indexed by class label"
        if isinstance(temperature, (bool, str, bytes)):
            raise ConfigError(f"temperature must be a number or a sequence of numbers, got {temperature!r}; {usage}")
        try:
            values = torch.as_tensor(temperature).detach()
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"temperature must be a number or a sequence of numbers, got "
                              f"{temperature!r} ({exc}); {usage}") from None
        if values.dtype == torch.bool or values.is_complex():
            raise ConfigError(f"temperature must be real numbers, got dtype {values.dtype}; {usage}")
        if values.ndim > 1 or (values.ndim == 1 and len(values) != k):
            shape = f"{len(values)} values" if values.ndim == 1 else f"shape {tuple(values.shape)}"
            raise ConfigError(f"temperature has {shape} but this generator has {k} classes; {usage}")
        floats = [float(v) for v in values.cpu().double().reshape(-1).tolist()]  # one copy, K values
        bad = [(i, v) for i, v in enumerate(floats) if not (math.isfinite(v) and v >= 0)]
        if bad:
            where = "" if values.ndim == 0 else f" for class {bad[0][0]} ({self.class_names[bad[0][0]]!r})"
            raise ConfigError(
                f"temperature must be finite and >= 0, got {bad[0][1]}{where}: 0 decodes the prior's "
                "centre, values below 1 concentrate samples, 1 samples the prior as trained and "
                "values above 1 spread them"
            )
        return floats[0] if values.ndim == 0 else tuple(floats)

    def temperature_table(self, temperature: Temperature) -> torch.Tensor | None:
        """``temperature`` checked and laid out per class: (num_classes,) float32 on the model's
        device, indexed by label, or None when every class's is 1 (leave the noise untouched).

        The table is made once per (values, device) and shared between calls: read it, do not
        modify it in place.
        """
        checked = self.check_temperature(temperature)
        values = [checked] * self.num_classes if isinstance(checked, float) else list(checked)
        if all(v == 1.0 for v in values):
            return None  # the plain path: bit-identical to sampling without a temperature
        return _temperature_tensor(tuple(v.hex() for v in values), self.device)

    # no_grad rather than inference_mode: inference tensors cannot be saved for backward, and
    # samples are meant to be fed to a classifier that is being trained.
    @torch.no_grad()
    def sample(
        self,
        labels: LabelsLike,
        *,
        generator: torch.Generator | None = None,
        batch_size: int = 1024,
        temperature: Temperature = 1.0,
    ) -> torch.Tensor:
        """Sample one image per entry of ``labels``, batched and without autograd.

        Inside ``with sampling_progress(bar):`` each chunk of ``batch_size`` images advances
        ``bar`` by its images (an iterative family, step by step); the samples are the same.

        Args:
            labels: one class per image: a 1-D integer tensor or array (N,) on any device, or a
                list of class indices and/or class names (``["Bag", "Bag", 0]``).
            generator: a ``torch.Generator`` on the model's device for reproducible samples.
            batch_size: the most images generated per forward pass.
            temperature: scale of the noise around the prior's centre before decoding (see
                :meth:`scale_noise`): 1 samples the prior as trained (bit-identical to not giving
                it), below 1 concentrates samples towards the class's centre (truncation-like; 0
                decodes the centre itself), above 1 spreads them. A float for every class, or a
                sequence / tensor of ``num_classes`` floats indexed by label. It draws no extra
                random numbers, so the same ``generator`` seed gives the same noise at any
                temperature. For ``ae`` it multiplies the config's ``prior_temperature``.

        Returns:
            A float tensor (N, C, H, W) in [-1, 1] on the model's device.
        """
        labels = self.check_labels(labels)
        check_batch_and_rng(batch_size, generator)
        table = self.temperature_table(temperature)
        was_training = self.training
        self.eval()
        try:
            chunks = []
            for chunk in labels.split(batch_size):
                with sampling_chunk(len(chunk)):  # advances the bar of a sampling_progress block
                    noise = self.sample_noise(len(chunk), generator=generator)
                    if table is not None:
                        noise = self.scale_noise(noise, chunk, table[chunk])  # one gather per chunk
                    chunks.append(self.generate(chunk, noise))
        finally:
            self.train(was_training)
        if not chunks:
            return torch.empty(0, *self.image_shape, device=self.device)
        return torch.cat(chunks)

    @renamed_argument("n_per_class", "per_class")
    def sample_per_class(
        self, per_class: int, *, generator: torch.Generator | None = None, temperature: Temperature = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``per_class`` images of every class, grouped by class: (images, labels).

        ``temperature`` is :meth:`sample`'s: a float, or one per class. ``per_class`` must be a
        positive int (a :class:`~augmentgen.errors.ConfigError` otherwise).
        """
        if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
            raise ConfigError(f"per_class must be a positive int (images of each class), got {per_class!r}")
        labels = torch.arange(self.num_classes, device=self.device).repeat_interleave(per_class)
        return self.sample(labels, generator=generator, temperature=temperature), labels

    def check_labels(self, labels: LabelsLike) -> torch.Tensor:
        """Validate labels and return them on the model's device as int64 (N,).

        Accepts a 1-D integer tensor or array (the fast path: one reduction, no Python loop), or
        a list / tuple of class indices and class names (``["Bag", 3]``). Anything else is a
        :class:`~augmentgen.errors.DataError` naming the accepted forms and the class names, as
        are labels out of range (inside :class:`labels_checked_on_device`, labels on an
        accelerator are range-checked by a device-side assert instead, without a host sync).
        The shared rules are :func:`augmentgen._labels.check_class_indices`'; the class names
        are this class's own.
        """
        if isinstance(labels, (str, bytes, int, float)) or labels is None:
            raise DataError(self._labels_error(f"labels is the single {type(labels).__name__} {labels!r}, "
                                               "not a sequence", self._single_label_fix(labels)))
        if isinstance(labels, (list, tuple)):  # int64 even when empty (as_tensor([]) is float)
            labels = torch.tensor([self._label_index(item, i) for i, item in enumerate(labels)], dtype=torch.long)
        elif isinstance(labels, np.ndarray) and labels.dtype.kind in "US":  # an array of class names
            labels = torch.tensor([self._label_index(str(item), i) for i, item in enumerate(labels.reshape(-1))],
                                  dtype=torch.long)
        # Checked where they are (CPU labels cost no sync), then moved. A per-batch caller (the
        # mixer's step) asks for no host sync: its labels are its own draws or its checked batch's,
        # and one out of range stops the stream with a device-side assert, where a model indexing
        # by label might otherwise not fail (ddpm's class K is "no class"). Message parts are
        # bound methods, so that a call with good labels builds no strings.
        labels = check_class_indices(labels, self.num_classes, classes=self._classes_text, fix=self._range_fix,
                                     hint=self._labels_forms,
                                     range_check="assert" if _CHECK_ON_DEVICE.get() else "sync")
        return labels.to(self.device)

    def _classes_text(self) -> str:
        return f"this generator has {self.num_classes} classes ({self._names_listed()})"

    def _range_fix(self, bad: list) -> str:
        return f"pass class indices in [0, {self.num_classes - 1}] or class names"

    def _names_listed(self) -> str:
        names = self.class_names
        return ", ".join(repr(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")

    def _names_hint(self) -> str:
        return f"its classes are {self._names_listed()}"

    def _labels_forms(self) -> str:
        """The accepted label forms and the class names, for a refusal of the labels' form."""
        return (f"labels take one class per image: a list of class indices (ints in [0, {self.num_classes - 1}]) "
                f"and/or class names, or a 1-D integer tensor or array; {self._names_hint()}")

    def _labels_error(self, problem: str, fix: str = "") -> str:
        """``problem``, then ``fix``, then the accepted label forms and the class names."""
        return f"{problem}; {fix + '; ' if fix else ''}{self._labels_forms()}"

    @staticmethod
    def _single_label_fix(label) -> str:
        if isinstance(label, (int, str)) and not isinstance(label, bool):
            return (f"pass [{label!r}] for one image of that class, or sample_per_class(n) for n images "
                    "of every class")
        return ""

    def _label_index(self, item, position: int) -> int:
        """The class index of one entry of a list of labels: an int, a 0-d int tensor, or a class name."""
        if isinstance(item, torch.Tensor) and item.ndim == 0 and not item.dtype.is_floating_point \
                and item.dtype != torch.bool:
            item = item.item()
        if isinstance(item, np.integer):
            item = int(item)
        if isinstance(item, str):
            names = self.class_names
            if item in names:
                return names.index(item)
            close = difflib.get_close_matches(item, names, n=3)
            guess = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            raise DataError(f"labels[{position}] = {item!r} is not a class name of this generator; "
                            f"{guess}{self._names_hint()}")
        if isinstance(item, int) and not isinstance(item, bool):
            return item  # the range is checked once for the whole tensor
        raise DataError(self._labels_error(f"labels[{position}] is the {type(item).__name__} {item!r}"))

    # save_pretrained / push_to_hub / from_pretrained are attached by augmentgen.hub (hub/mixin.py):
    # this layer must not import the one above it.

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return (
            f"{type(self).__name__}(family={self.family!r}, num_classes={self.num_classes}, "
            f"image_shape=({c}, {h}, {w}), parameters={sum(p.numel() for p in self.parameters()):,})"
        )

    if TYPE_CHECKING:
        # The hub layer (above this one) attaches these at import (augmentgen/hub/__init__.py);
        # declared here so that editors and type checkers see them. Never executed.
        def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> Path:
            """Save as ``config.json`` + ``model.safetensors`` + model card (:func:`augmentgen.save_pretrained`)."""

        def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
            """Upload to the Hugging Face Hub (:func:`augmentgen.push_to_hub`)."""

        @classmethod
        def from_pretrained(cls, repo_id_or_dir: str | os.PathLike, revision: str | None = None,
                            device: str | torch.device | None = None, **kwargs: Any) -> Self:
            """Load a saved generator of this class (folder, zoo id or hub id)."""


def check_batch_and_rng(batch_size, generator) -> None:
    """``batch_size`` and ``generator`` of :meth:`ConditionalGenerator.sample` and the families'
    ``vary``: a positive int, and a ``torch.Generator`` or None; else a ConfigError with the fix."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ConfigError(f"generator must be a torch.Generator or None, got the {type(generator).__name__} "
                          f"{generator!r}; for a seed pass generator=torch.Generator(device=model.device)"
                          ".manual_seed(seed)")


def check_vary_strength(generator: ConditionalGenerator, strength, *, error: type[Exception] = DataError) -> float:
    """``strength`` of ``generator.vary`` as a float: a finite number >= 0, at most the family's
    ``max_vary_strength`` (a diffusion family's fraction of its noise chain); else ``error`` naming
    what the strength means for the family."""
    high = generator.max_vary_strength
    try:
        value = float(strength)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(strength, (bool, str, bytes)) or not (math.isfinite(value) and value >= 0 and
                                                        (high is None or value <= high)):
        if high is None:
            raise error(f"strength must be a finite number >= 0 (the perturbation in units of the code's scale; 0 "
                        f"gives the reconstruction), got {strength!r}")
        raise error(f"strength must be in [0, {high:g}] for {generator.family} (the fraction of the noise chain "
                    f"each image is noised through; {high:g} is a free sample of its class), got {strength!r}")
    return value


def check_generator_argument(value, call: str, usage: str) -> None:
    """``value``, a function's first argument, is a :class:`ConditionalGenerator`; else a
    :class:`~augmentgen.errors.ConfigError` naming ``call``'s argument order (``usage``), since
    arguments passed in another order would fail deep inside, e.g. ``'str' object has no
    attribute 'check_temperature'``."""
    if not isinstance(value, ConditionalGenerator):
        raise ConfigError(f"{call} takes a generator first (a ConditionalGenerator: augmentgen.train(...) or "
                          f"from_pretrained(...)), got the {type(value).__name__} {value!r:.80}; call it as {usage}")
