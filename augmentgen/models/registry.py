"""Model families register themselves here by name; nothing else switches on family names.

A *family* is one module, ``augmentgen/families/<family>.py``: its config class, its networks,
its generator class and its :class:`~augmentgen.models.step.TrainingStep`, registered together
with ``@register_family(name, step=StepClass)``.
A *preset* is a family with some config values set (``wgan-gp`` is ``cgan`` with the WGAN-GP
loss). Both are accepted wherever a model name is (``augmentgen train --family NAME``,
``augmentgen.train(NAME, ...)``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ..errors import ConfigError, UnknownFamilyError
from .base import ConditionalGenerator, GeneratorConfig
from .step import TrainingStep

G = TypeVar("G", bound=type[ConditionalGenerator])

_FAMILIES: dict[str, type[ConditionalGenerator]] = {}
_STEPS: dict[str, type[TrainingStep]] = {}


@dataclasses.dataclass(frozen=True)
class Preset:
    family: str
    overrides: dict[str, Any]
    description: str


_PRESETS: dict[str, Preset] = {}


def register_family(name: str, generator: G | None = None, *, step: type[TrainingStep] | None = None):
    """Register a :class:`ConditionalGenerator` subclass as family ``name``, with ``step``, the
    :class:`~augmentgen.models.step.TrainingStep` that trains it (a family without one can be
    sampled and saved but not trained).

    Called with the class (``register_family("cgan", CGANGenerator, step=GANStep)``, how each
    built-in family module ends) it registers at once; without it, it is a class decorator.
    """

    def decorate(cls: G) -> G:
        if name in _FAMILIES and _FAMILIES[name] is not cls:
            raise ValueError(f"model family {name!r} is already registered by {_FAMILIES[name]}")
        cls.config_class.family = name
        _FAMILIES[name] = cls
        if step is not None:
            _STEPS[name] = step
        return cls

    return decorate if generator is None else decorate(generator)


def register_preset(name: str, family: str, description: str, **overrides: Any) -> None:
    """Register ``name`` as ``family`` with ``overrides`` applied to its default config."""
    _PRESETS[name] = Preset(family, overrides, description)


def available_models() -> dict[str, str]:
    """Every accepted model name (families and presets) with a one-line description."""
    out = {name: (cls.__doc__ or "").strip().splitlines()[0] for name, cls in _FAMILIES.items()}
    out.update({name: p.description for name, p in _PRESETS.items()})
    return dict(sorted(out.items()))


def generator_class(family: str) -> type[ConditionalGenerator]:
    """The generator class registered as ``family``."""
    if family not in _FAMILIES:
        raise UnknownFamilyError(
            f"unknown model family {family!r}; available: {sorted(_FAMILIES)}"
        )
    return _FAMILIES[family]


def build_config(name: str, **values: Any) -> GeneratorConfig:
    """The config for model ``name`` (a family or a preset) with ``values`` applied."""
    family, preset_values = name, {}
    if name in _PRESETS:
        family, preset_values = _PRESETS[name].family, dict(_PRESETS[name].overrides)
    elif name not in _FAMILIES:
        raise UnknownFamilyError(
            f"unknown model {name!r}; available: {sorted(available_models())}"
        )
    return generator_class(family).config_class.from_dict({**preset_values, **values})


def config_from_dict(values: dict[str, Any]) -> GeneratorConfig:
    """Rebuild a saved config (``config.json``): the ``family`` key picks the class."""
    values = dict(values)
    family = values.pop("family", None)
    if not isinstance(family, str):
        raise ConfigError("config.json has no 'family' string; it was not written by augmentgen")
    return generator_class(family).config_class.from_dict(values)


def config_to_dict(config: GeneratorConfig) -> dict[str, Any]:
    """``config`` as the JSON-ready dict written to ``config.json`` (with its ``family``)."""
    return {"family": type(config).family, **config.to_dict()}


def build_generator(config: GeneratorConfig) -> ConditionalGenerator:
    """A freshly initialised generator of ``config``'s family."""
    return generator_class(type(config).family)(config)


def step_class(family: str) -> type[TrainingStep]:
    """The training step registered with ``family``."""
    if family not in _STEPS:
        raise UnknownFamilyError(
            f"no training step registered for model family {family!r}; a family is trainable when "
            "it is registered with @register_family(name, step=StepClass)"
        )
    return _STEPS[family]
