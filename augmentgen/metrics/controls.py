"""The controls of a synthetic method: as many extra rows a step, made *without* a generator.

A generator's rows appended to each batch can raise accuracy for a reason that has nothing to
do with the generator: the batch is larger, and every real image is seen again in another
augmented form. :func:`~augmentgen.metrics.downstream_gain` therefore trains, next to B + the
chosen synthetic method, the same baseline B with the same number of rows a step from each
control below, and credits the generator only with what it adds beyond them (the benchmark
protocol's arms (r) and (p), ``benchmarks/README.md``):

* ``"real-rows"``: copies of real rows of the batch, augmented again by the pipeline
  (:class:`~augmentgen.mixing.RealRowSource`);
* ``"pixel-mix"``: same-class MixUp of two real rows in pixel space
  (:class:`~augmentgen.mixing.PixelMixSource`), the control of the ``interpolate`` variation and
  the strongest arm the suite measured at 10 images per class.

Either is a row source a user can mix in today without training anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..data.labelled import LabelledImages
from ..errors import ConfigError
from ..mixing import AnchoredSource, PixelMixSource, RealRowSource

#: Control name -> (what its rows are, the row source class a user would mix in instead).
CONTROLS: dict[str, tuple[str, type[AnchoredSource]]] = {
    "real-rows": ("copies of real rows of the batch, re-augmented", RealRowSource),
    "pixel-mix": ("same-class MixUp of two real rows in pixels", PixelMixSource),
}

#: What :func:`~augmentgen.metrics.downstream_gain` and ``augmentgen eval`` train by default.
DEFAULT_CONTROLS: tuple[str, ...] = tuple(CONTROLS)


def resolve_controls(controls: str | Sequence[str] | None) -> list[str]:
    """``controls`` as a list of names from :data:`CONTROLS`: ``None``, ``"none"`` or ``()`` is
    none, ``"all"`` every one, a name or a sequence of names those (in :data:`CONTROLS`' order).

    Raises:
        ConfigError: an unknown name.
    """
    if controls is None or controls == "none":
        return []
    if controls == "all":
        return list(CONTROLS)
    if isinstance(controls, str) and "," in controls:
        raise ConfigError(f"controls takes a list of control names, got the string {controls!r}: pass "
                          f"controls={[name.strip() for name in controls.split(',')]!r}")
    if not isinstance(controls, Iterable):
        raise ConfigError(f"controls takes 'none', 'all' or a list of names from {list(CONTROLS)}, got the "
                          f"{type(controls).__name__} {controls!r}")
    names = [controls] if isinstance(controls, str) else list(controls)
    unknown = [name for name in names if name not in CONTROLS]
    if unknown:
        raise ConfigError(f"unknown control {unknown[0]!r}: choose from {', '.join(CONTROLS)}, 'all' or 'none' "
                          "(rows made without a generator, trained beside the chosen synthetic method)")
    return [name for name in CONTROLS if name in names]


def control_source(name: str, data: LabelledImages, device) -> AnchoredSource:
    """The row source of control ``name`` for batches of ``data`` on ``device``."""
    kind = CONTROLS[name][1]
    return kind(data.num_classes, data.image_shape, class_names=data.class_names, device=device)


def describe_control(name: str) -> str:
    """One line for reports: ``"pixel-mix (same-class MixUp of two real rows in pixels)"``."""
    return f"{name} ({CONTROLS[name][0]})"


__all__ = ["CONTROLS", "DEFAULT_CONTROLS", "control_source", "describe_control", "resolve_controls"]
