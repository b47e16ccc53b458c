"""Model families register themselves here by name; nothing else switches on family names.

A *family* is a generator class with its config class (``augmentgen/models/<family>.py``).
A *preset* is a family with some config values set (``wgan-gp`` is ``cgan`` with the WGAN-GP
loss). Both are accepted wherever a model name is (``augmentgen train --model NAME``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ..errors import ConfigError, UnknownFamilyError
from .base import ConditionalGenerator, GeneratorConfig

G = TypeVar("G", bound=type[ConditionalGenerator])

_FAMILIES: dict[str, type[ConditionalGenerator]] = {}


@dataclasses.dataclass(frozen=True)
class Preset:
    family: str
    overrides: dict[str, Any]
    description: str


_PRESETS: dict[str, Preset] = {}


def register_family(name: str):
    """Class decorator: register a :class:`ConditionalGenerator` subclass under ``name``."""

    def decorate(cls: G) -> G:
        if name in _FAMILIES and _FAMILIES[name] is not cls:
            raise ValueError(f"model family {name!r} is already registered by {_FAMILIES[name]}")
        cls.config_class.family = name
        _FAMILIES[name] = cls
        return cls

    return decorate


def register_preset(name: str, family: str, description: str, **overrides: Any) -> None:
    """Register ``name`` as ``family`` with ``overrides`` applied to its default config."""
    _PRESETS[name] = Preset(family, overrides, description)


def available_models() -> dict[str, str]:
    """Every accepted model name (families and presets) with a one-line description."""
    _import_builtin_families()
    out = {name: (cls.__doc__ or "").strip().splitlines()[0] for name, cls in _FAMILIES.items()}
    out.update({name: p.description for name, p in _PRESETS.items()})
    return dict(sorted(out.items()))


def generator_class(family: str) -> type[ConditionalGenerator]:
    _import_builtin_families()
    if family not in _FAMILIES:
        raise UnknownFamilyError(
            f"unknown model family {family!r}; available: {sorted(_FAMILIES)}"
        )
    return _FAMILIES[family]


def build_config(name: str, **values: Any) -> GeneratorConfig:
    """The config for model ``name`` (a family or a preset) with ``values`` applied."""
    _import_builtin_families()
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
    return {"family": type(config).family, **config.to_dict()}


def build_generator(config: GeneratorConfig) -> ConditionalGenerator:
    return generator_class(type(config).family)(config)


def _import_builtin_families() -> None:
    # Importing the package registers every built-in family (each module's decorator runs).
    from .. import models  # noqa: F401
