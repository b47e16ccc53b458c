"""The one config mechanism: typed dataclasses that round-trip through JSON.

Every config in augmentgen (each model family's, the trainer's) subclasses :class:`Config`.
The CLI, the Python API and ``from_pretrained`` all build configs through ``from_dict``, so
a value is validated the same way wherever it comes from.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Self

from .errors import ConfigError


class Config:
    """Mixin for dataclass configs: ``to_dict`` / ``from_dict`` / ``replace`` with validation."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Build the config from plain values, rejecting unknown keys and wrong types."""
        if not isinstance(values, dict):
            raise ConfigError(f"{cls.__name__} expects a JSON object, got {type(values).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has no field(s) {unknown}; known fields: {sorted(fields)}"
            )
        hints = typing.get_type_hints(cls)
        kwargs = {name: _coerce(cls.__name__, name, hints[name], value) for name, value in values.items()}
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid {cls.__name__}: {exc}") from exc

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied and validated like ``from_dict``."""
        return type(self).from_dict({**self.to_dict(), **changes})

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.init]


def parse_overrides(cls: type[Config], pairs: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings (as given on the command line) against ``cls``'s fields.

    Values are read as JSON when they parse (``3``, ``0.5``, ``true``, ``[1, 2]``), otherwise as
    plain strings, then validated by ``from_dict``.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {pair!r}")
        if key not in cls.field_names():
            raise ConfigError(f"{cls.__name__} has no field {key!r}; known fields: {cls.field_names()}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    return value


def _coerce(owner: str, name: str, hint: Any, value: Any) -> Any:
    """Check ``value`` against the annotation ``hint``; allow lossless int -> float and list -> tuple."""
    where = f"{owner}.{name}"
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(owner, name, arg, value)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} matches none of {hint}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {list(args)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__} {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where} must have {len(args)} items, got {len(value)}")
            return tuple(_coerce(owner, name, a, v) for a, v in zip(args, value))
        item = args[0] if args else Any
        items = [_coerce(owner, name, item, v) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be an object, got {type(value).__name__}")
        return dict(value)
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value
