"""Where synthetic rows come from: row sources that :class:`~augmentgen.mixing.SyntheticMix` draws on.

A *free* source makes rows of given classes from nothing but the class (a generator sampling
noise, a bank of samples: :mod:`~augmentgen.mixing.free_sources`). An *anchored* source makes
each row from a real row of the batch and keeps that row's label; the mixer hands it the rows.
This module holds the anchored sources:

- :class:`VariationSource`: a generator's variations of real rows (encode, change the code,
  decode): ``vary`` perturbs the code; ``interpolate`` mixes it with the code of a second real
  row of the same class; ``extrapolate`` pushes it away from that row (DAGAN, Antoniou et al.
  2017; DeVries & Taylor 2017; GLICO, Azuri & Weinshall 2020);
- :class:`RealRowSource`: the batch's real rows themselves, re-augmented by the pipeline: the
  control for *more rows per step* without a generator;
- :class:`PixelMixSource`: same-class MixUp of two real rows in pixel space at the weights
  ``interpolate`` uses: the control for *is the generator's space better than pixels?*

Every source works on whole batches on the batch's device, with the random stream it is given
(the mixer's seeded one), in the generator's ``[-1, 1]`` range. Adding a kind of row is one
small class with :meth:`AnchoredSource.rows`.
"""

from __future__ import annotations

import math

import torch

from .._devices import check_device as _check_device
from ..data.labelled import check_class_names
from ..errors import ConfigError
from ..models.base import ConditionalGenerator, check_vary_strength
from ..models.encoder import EncoderGenerator

__all__ = ["AnchoredSource", "PixelMixSource", "RealRowSource", "VariationSource", "same_class_partners"]

VARIATION_MODES = ("vary", "interpolate", "extrapolate")

#: Each VariationSource mode's one setting (the knob recorded beside the mode), and its default.
MODE_KNOB = {"vary": "strength", "interpolate": "weight_range", "extrapolate": "extrapolation_range"}
_KNOB_DEFAULT = {"strength": 0.5, "weight_range": (0.2, 0.8), "extrapolation_range": (0.25, 0.75)}


def _uniform(n: int, low: float, high: float, *, like: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    """``n`` floats uniform in [low, high) on ``like``'s device."""
    return low + (high - low) * torch.rand(n, device=like.device, generator=rng)


def _check_range(name: str, value, *, low: float, high: float | None = None) -> tuple[float, float]:
    """A (low, high) pair of finite floats within [low, high]; a ConfigError naming ``name`` else."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a pair (low, high) of numbers, got {value!r}") from None
    inside = math.isfinite(a) and math.isfinite(b) and low <= a <= b and (high is None or b <= high)
    if not inside:
        limits = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{name} must be (low, high) with low <= high, both {limits}; got {value!r}")
    return a, b


def check_int_arguments(**values: tuple[int, int]) -> None:
    """A ConfigError for the first ``name=(value, lowest)`` whose value is not an int >= lowest (a bool,
    a float or a string is refused: a float count would fail deep in torch, a negative one silently
    make nothing)."""
    for name, (value, low) in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")


def check_device(device, *, name: str = "device") -> torch.device:
    """``device`` as a torch.device; a ConfigError naming the accepted forms for anything else
    (where it is, is checked when the rows are made: a bank may be built before a GPU is used)."""
    return _check_device(device, shown=f"{name} {device!r}", present=False)


def class_groups(labels: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch's rows grouped by class: ``(order, start, count)`` where ``order`` sorts the rows
    by label and rows ``order[start[i]: start[i] + count[i]]`` have label ``classes[i]``. One sort
    and two searches on the labels' device, no host sync."""
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order].contiguous()
    classes = classes.contiguous()
    start = torch.searchsorted(sorted_labels, classes)
    return order, start, torch.searchsorted(sorted_labels, classes, right=True) - start


def random_row_of_class(labels: torch.Tensor, classes: torch.Tensor, *,
                        rng: torch.Generator | None = None) -> torch.Tensor:
    """For each of ``classes``, a uniformly random row index of the batch with that label (every
    class asked for must be in ``labels``)."""
    order, start, count = class_groups(labels, classes)
    pick = (torch.rand(len(classes), device=labels.device, generator=rng) * count).floor().long()
    return order[(start + pick).clamp(max=len(labels) - 1)]


def same_class_partners(labels: torch.Tensor, anchors: torch.Tensor, *, rng: torch.Generator | None = None) -> torch.Tensor:
    """For each anchor row index, a random *other* row of the batch with the same label.

    ``labels`` (B,) are the batch's labels and ``anchors`` (n,) indices into it. Each partner is
    drawn uniformly among the batch's rows of the anchor's class other than the anchor itself;
    an anchor whose class has no other row in the batch gets itself. Batched (no host sync).
    """
    b = len(labels)
    if len(anchors) == 0:
        return anchors.clone()
    order, start, count = class_groups(labels, labels[anchors])
    position = torch.empty_like(order)
    position[order] = torch.arange(b, device=labels.device)  # each row's place in ``order``
    others = (count - 1).clamp(min=0)
    # A draw among the class's other rows: skip over the anchor's own place.
    pick = (torch.rand(len(anchors), device=labels.device, generator=rng) * others).floor().long()
    own = position[anchors] - start
    pick = torch.where(pick >= own, pick + 1, pick)
    partners = order[(start + pick).clamp(max=b - 1)]
    return torch.where(others > 0, partners, anchors)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of rows of ``a`` and ``b`` (n, d) at weights ``t`` (n,), linear
    where the two are (nearly) parallel. The path keeps the norm a Gaussian prior's codes have."""
    a_norm, b_norm = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    cos = ((a / a_norm.clamp(min=1e-12)) * (b / b_norm.clamp(min=1e-12))).sum(1, keepdim=True)
    omega = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    t = t.view(-1, 1)
    sin = torch.sin(omega)
    spherical = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / sin
    linear = (1 - t) * a + t * b
    return torch.where(sin.abs() > 1e-4, spherical, linear)


class AnchoredSource:
    """A source of synthetic rows made from real rows of the batch, each keeping its row's label.

    :class:`~augmentgen.mixing.SyntheticMix` chooses which rows of the batch anchor its synthetic
    rows and calls :meth:`rows`. Subclasses implement :meth:`rows` (batched, on the images'
    device, random numbers only from ``rng``).
    """

    #: The mixer hands this source real rows of the batch (free sources are made from classes only).
    anchored = True

    def rows(self, images: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor, *,
             rng: torch.Generator | None = None) -> torch.Tensor:
        """Synthetic rows anchored on ``images[anchors]``.

        Args:
            images: the batch (B, C, H, W), float in the generator's ``[-1, 1]``.
            labels: its labels (B,), class indices.
            anchors: (n,) indices into the batch: the real row each synthetic row starts from.
            rng: the random stream to draw from (the mixer's, seeded).

        Returns:
            Float images (n, C, H, W) in ``[-1, 1]``; row i has the label ``labels[anchors[i]]``.
        """
        raise NotImplementedError

    # Sources with a generator override these; the pixel-space ones take the batch's shape.
    num_classes: int | None = None
    class_names: list[str] | None = None
    image_shape: tuple[int, int, int] | None = None
    device: torch.device | None = None


class _PixelSource(AnchoredSource):
    """A source without a generator: told the data's classes, image shape and device."""

    def __init__(self, num_classes: int, image_shape: tuple[int, int, int], *,
                 class_names: list[str] | None = None, device: str | torch.device = "cpu"):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ConfigError(f"num_classes must be an int >= 2, got {num_classes!r}")
        try:
            shape = tuple(image_shape)
        except TypeError:  # a single int, None
            shape = ()
        if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
            raise ConfigError(f"image_shape must be (C, H, W) of positive ints, e.g. (1, 28, 28), "
                              f"got {image_shape!r}")
        self.num_classes, self.image_shape, self.device = num_classes, shape, check_device(device)
        class_names = check_class_names(class_names)  # a string would be one name per character
        self.class_names = class_names if class_names else [str(i) for i in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise ConfigError(f"{len(self.class_names)} class names for {num_classes} classes")


class RealRowSource(_PixelSource):
    """Copies of the anchor rows: extra *real* rows, which the pipeline augments again.

    The control for a synthetic source: the same number of extra rows per step, made without a
    generator. A gain over it is the generator's, not the larger batch's.

    Args:
        num_classes (int): classes of the data.
        image_shape (tuple[int, int, int]): (C, H, W) of its images.
        class_names (list[str], optional): for ``balance={name: weight}``.
        device (str or torch.device, defaults to ``"cpu"``): where the batches are.
    """

    def rows(self, images, labels, anchors, *, rng=None):
        return images[anchors].float()

    def __repr__(self) -> str:
        return f"RealRowSource(num_classes={self.num_classes}, image_shape={self.image_shape})"


class PixelMixSource(_PixelSource):
    """Same-class MixUp in pixel space: ``(1 - w) x_i + w x_j`` for a second real row ``j`` of
    the anchor's class in the batch, ``w`` uniform in ``weight_range``.

    The control for :class:`VariationSource` ``mode="interpolate"``, at the same weights: is the
    generator's code a better place to mix two images of a class than their pixels?

    Args:
        num_classes, image_shape, class_names, device: as for :class:`RealRowSource`.
        weight_range (tuple[float, float], defaults to (0.2, 0.8)): range of the partner's weight.
    """

    def __init__(self, num_classes: int, image_shape: tuple[int, int, int], *,
                 weight_range: tuple[float, float] = (0.2, 0.8), class_names: list[str] | None = None,
                 device: str | torch.device = "cpu"):
        super().__init__(num_classes, image_shape, class_names=class_names, device=device)
        self.weight_range = _check_range("weight_range", weight_range, low=0.0, high=1.0)

    def rows(self, images, labels, anchors, *, rng=None):
        partners = same_class_partners(labels, anchors, rng=rng)
        w = _uniform(len(anchors), *self.weight_range, like=images, rng=rng).view(-1, 1, 1, 1)
        return ((1 - w) * images[anchors] + w * images[partners]).float()

    def __repr__(self) -> str:
        return f"PixelMixSource(weight_range={self.weight_range})"


class VariationSource(AnchoredSource):
    """Variations of the batch's real rows through a generator: each keeps its real row's label.

    ``SyntheticMix(VariationSource(generator, "interpolate"), ratio=0.5, mode="append")`` appends
    half a batch of rows, each made from a real row of the batch:

    - ``"vary"``: encode, add Gaussian noise of ``strength`` times the class's code scale
      (:meth:`~augmentgen.models.encoder.EncoderGenerator.code_scale`), decode; any generator
      with a ``vary`` method works (the encoder families; a diffusion family's SDEdit);
    - ``"interpolate"``: the code of a second real row of the same class in the batch, mixed in
      at a weight uniform in ``weight_range`` (spherically where the family's prior is a centred
      Gaussian, linearly otherwise), decoded with the class;
    - ``"extrapolate"``: ``z_i + λ (z_i − z_j)`` for such a pair, ``λ`` uniform in
      ``extrapolation_range`` (DeVries & Taylor 2017 found extrapolation helped where
      interpolation sometimes hurt).

    A row whose class has no second row in the batch is paired with itself (``interpolate`` and
    ``extrapolate`` then give its reconstruction).

    Args:
        generator (ConditionalGenerator): a trained generator on the batches' device; an
            encoder family (``aae``, ``vae``, ``ae``, ``aegan``) for every mode, or any
            generator with ``vary`` for ``"vary"``.
        mode (str, defaults to ``"vary"``): ``"vary"``, ``"interpolate"`` or ``"extrapolate"``.
        strength (float, defaults to 0.5): ``vary``'s perturbation in units of the code scale, >= 0.
        weight_range (tuple[float, float], defaults to (0.2, 0.8)): ``interpolate``'s partner weight.
        extrapolation_range (tuple[float, float], defaults to (0.25, 0.75)): ``extrapolate``'s λ.

    Each setting belongs to its mode: another mode's setting at a value other than its default
    (``VariationSource(generator, "interpolate", strength=0.9)``) is a
    :class:`~augmentgen.errors.ConfigError`, as it would change nothing.
    """

    def __init__(self, generator: ConditionalGenerator, mode: str = "vary", *, strength: float = 0.5,
                 weight_range: tuple[float, float] = (0.2, 0.8),
                 extrapolation_range: tuple[float, float] = (0.25, 0.75)):
        if not isinstance(generator, ConditionalGenerator):
            raise ConfigError(f"VariationSource needs a ConditionalGenerator, got {type(generator).__name__}")
        if not isinstance(mode, str):  # e.g. VariationSource(generator, train_data)
            raise ConfigError(f"VariationSource's second argument is the mode, one of {VARIATION_MODES}, got a "
                              f"{type(mode).__name__}: it takes no data, it varies the real rows of each batch it "
                              "is given (SyntheticMix(VariationSource(generator), ratio=0.5)); for variations of a "
                              "whole dataset pass the source and the data to augmentgen.synthesize_variations"
                              "(source, dataset) or write_variation_shards(source, images, labels, out)")
        if mode not in VARIATION_MODES:
            raise ConfigError(f"mode must be one of {VARIATION_MODES}, got {mode!r}")
        if not callable(getattr(generator, "vary", None)):
            raise ConfigError(f"the {generator.family} family cannot vary real images (it has no encoder or "
                              "noising chain): use an encoder family (aae, vae, ae, aegan) or ddpm for VariationSource")
        if mode != "vary" and not isinstance(generator, EncoderGenerator):
            raise ConfigError(f"mode={mode!r} mixes two images' codes, which needs an encoder family "
                              f"(aae, vae, ae, aegan); the {generator.family} family offers mode='vary' only")
        strength = check_vary_strength(generator, strength, error=ConfigError)  # a ddpm's is at most 1
        self.generator, self.mode, self.strength = generator, mode, strength
        self.weight_range = _check_range("weight_range", weight_range, low=0.0, high=1.0)
        self.extrapolation_range = _check_range("extrapolation_range", extrapolation_range, low=0.0)
        # Another mode's setting is refused unless it is at its default (what a caller passing every
        # setting whatever the mode gives, e.g. strength=0.5 with "interpolate": it changes nothing).
        own = MODE_KNOB[mode]
        for name, default in _KNOB_DEFAULT.items():
            if name != own and getattr(self, name) != default:
                mode_of = next(m for m, knob in MODE_KNOB.items() if knob == name)
                takes = f"{own}=..." if own == "strength" else f"{own}=(low, high)"
                raise ConfigError(f"{name} applies to mode={mode_of!r}; mode={mode!r} takes {takes}: "
                                  f"drop {name}")

    @property
    def num_classes(self) -> int:
        return self.generator.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.generator.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.generator.image_shape)

    @property
    def device(self) -> torch.device:
        return self.generator.device

    def rows(self, images, labels, anchors, *, rng=None):
        x, y = images[anchors], labels[anchors].long()
        if self.mode == "vary":
            return self.generator.vary(x, y, self.strength, generator=rng)
        partners = same_class_partners(labels, anchors, rng=rng)
        return self._mix_codes(x, images[partners], y, rng)

    @torch.inference_mode()
    def _mix_codes(self, x: torch.Tensor, partner: torch.Tensor, y: torch.Tensor,
                   rng: torch.Generator | None) -> torch.Tensor:
        """Encode both rows in one pass, combine the codes, decode with the anchor's class."""
        g = self.generator
        if len(x) == 0:
            return torch.empty(0, *self.image_shape, device=x.device)
        was_training = g.training
        g.eval()
        try:
            codes, _ = g.encode(torch.cat([x, partner]).float(), y.repeat(2))
            z_i, z_j = codes.chunk(2)
            if self.mode == "interpolate":
                t = _uniform(len(x), *self.weight_range, like=x, rng=rng)
                code = slerp(z_i, z_j, t) if g.centred_gaussian_prior else z_i + t.view(-1, 1) * (z_j - z_i)
            else:
                lam = _uniform(len(x), *self.extrapolation_range, like=x, rng=rng).view(-1, 1)
                code = z_i + lam * (z_i - z_j)
            return g.decode(code, y)
        finally:
            g.train(was_training)

    def __repr__(self) -> str:
        knob = {"vary": f"strength={self.strength}", "interpolate": f"weight_range={self.weight_range}",
                "extrapolate": f"extrapolation_range={self.extrapolation_range}"}[self.mode]
        return f"VariationSource({type(self.generator).__name__}, mode={self.mode!r}, {knob})"
