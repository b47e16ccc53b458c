"""The one config mechanism: typed dataclasses that round-trip through JSON.

Every config in augmentgen (each model family's, the trainer's) subclasses :class:`Config`.
The CLI, the Python API and ``from_pretrained`` all build configs through ``from_dict``, so
a value is validated the same way wherever it comes from.

Every config also gets the generic number checks of :func:`check_numbers` and the type checks of
:func:`check_field_types` when it is constructed, before its own ``__post_init__`` checks: no NaN
or infinite floats, no integer beyond 64 bits, the ranges that the shared field names imply
(``learning_rate`` and ``*_lr_scale`` > 0, Adam ``betas`` in [0, 1), ``*_weight`` and
``gradient_penalty`` >= 0), and every field of its annotated type, so ``CGANConfig(latent_dim="8")``
fails as ``from_dict`` does. Families use the same argument names, so each one gets these checks
without repeating them.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import os
import types
import typing
import warnings
from typing import Any, Self

from ._deprecation import rename_keys
from .errors import ConfigError

_INT64_MAX = 2**63 - 1


def check_flag(value: Any, name: str) -> bool:
    """``value`` when it is a bool, else a ConfigError: for the flags that delete or replace a user's
    work (``overwrite``, ``resume``), where a truthy ``"no"`` or ``"False"`` would do what it denies."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return value


def check_path(value: Any, name: str, *, example: str, empty: str, kind: str = "a path") -> None:
    """Refuse a ``value`` that is not a non-empty ``str`` / ``os.PathLike`` with a ConfigError naming
    ``name``. ``Path("")`` is the current folder, so an empty path would read or write there:
    ``empty`` says what it would do, ``example`` what to pass, ``kind`` what ``name`` is."""
    if not isinstance(value, (str, os.PathLike)):
        shown = "None" if value is None else f"the {type(value).__name__} {value!r:.80}"
        raise ConfigError(f"{name} must be {kind} (a str or os.PathLike), got {shown}; pass {example}")
    if not os.fspath(value).strip():
        raise ConfigError(f"{name} is an empty path, which {empty}; pass {example}")


class Config:
    """Mixin for dataclass configs: ``to_dict`` / ``from_dict`` / ``replace`` with validation.

    Subclasses' own ``__post_init__`` run after :func:`check_numbers` and :func:`check_field_types`
    (see ``__init_subclass__``), so they may compare and index values of the annotated types.
    A renamed field (:func:`augmentgen._deprecation.renamed_fields`) is still read under its old
    key, with a ``FutureWarning``, so configs saved before the rename load.
    """

    #: Old field name -> new one, for configs saved before a rename (see ``renamed_fields``).
    _renamed_fields: typing.ClassVar[dict[str, str]] = {}
    #: ``str`` fields that name a path: an ``os.PathLike`` given for one is stored as its ``str``.
    _path_fields: typing.ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is not None and not getattr(own, "_checks_numbers_first", False):
            cls.__post_init__ = _checking_numbers_first(own)

    def __post_init__(self) -> None:
        _check_constructed(self)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Build the config from plain values, rejecting unknown keys and wrong types."""
        if not isinstance(values, dict):
            raise ConfigError(f"{cls.__name__} expects a JSON object, got {type(values).__name__}")
        values = rename_keys(values, cls._renamed_fields, owner=cls.__name__, stacklevel=2)
        values = {name: _fspath(value) if name in cls._path_fields else value for name, value in values.items()}
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
        except ConfigError:
            raise  # already names the config and the field
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid {cls.__name__}: {exc}") from exc

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied and validated like ``from_dict``."""
        changes = rename_keys(changes, self._renamed_fields, owner=type(self).__name__, stacklevel=2)
        return type(self).from_dict({**self.to_dict(), **changes})

    @classmethod
    def field_names(cls) -> list[str]:
        """The names of the fields ``from_dict`` accepts."""
        return [f.name for f in dataclasses.fields(cls) if f.init]


def check_field_types(config: Config) -> None:
    """Check a constructed config's fields against their annotations as ``from_dict`` does, with the
    same :class:`ConfigError`, for a config built by its constructor rather than ``from_dict``.

    A valid value is kept as given (an ``int`` given for a ``float`` field stays an ``int``); only
    an ``os.PathLike`` in one of ``_path_fields`` is stored as its ``str``, as ``from_dict`` does.
    """
    cls = type(config)
    hints = _type_hints(cls)
    for field in dataclasses.fields(config):
        if not field.init:
            continue
        value = getattr(config, field.name)
        if field.name in cls._path_fields and isinstance(value, os.PathLike):
            value = _fspath(value)
            setattr(config, field.name, value)
        _coerce(cls.__name__, field.name, hints[field.name], value)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fspath(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _check_constructed(config: Config) -> None:
    """The checks every config gets when it is constructed, before its own ``__post_init__``."""
    check_numbers(config)
    check_field_types(config)


def _checking_numbers_first(post_init):
    """Wrap a subclass's ``__post_init__`` so that :func:`_check_constructed` runs once, before it.

    A family's ``__post_init__`` calling ``super().__post_init__()`` reaches its parent's wrapper,
    which skips the checks: only the outermost one (the instance's class's) runs them.
    """

    @functools.wraps(post_init)
    def __post_init__(self) -> None:
        if type(self).__post_init__ is __post_init__:
            _check_constructed(self)
        post_init(self)

    __post_init__._checks_numbers_first = True
    return __post_init__


def check_numbers(config: Any) -> None:
    """Refuse NaN / infinite floats, integers beyond 64 bits and values outside the ranges that
    the shared field names imply, each with a :class:`ConfigError` naming the field and its range."""
    owner = type(config).__name__
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            if isinstance(item, int) and abs(item) > _INT64_MAX:
                raise ConfigError(f"{owner}.{field.name}={item} is too large: integers must be within "
                                  f"+-{_INT64_MAX} (64 bits)")
            _check_range(owner, field, float(item))


def _check_range(owner: str, field: dataclasses.Field, value: float) -> None:
    name = field.name
    example = field.default if field.default is not dataclasses.MISSING else None
    if name == "betas":
        if not (math.isfinite(value) and 0.0 <= value < 1.0):
            raise ConfigError(f"{owner}.betas must be two Adam betas in [0, 1), like [0.0, 0.9] or [0.5, 0.999], "
                              f"got {value!r} in it")
    elif name == "learning_rate" or name.endswith(("_lr", "lr_scale")):
        if not (math.isfinite(value) and value > 0):
            hint = f" (default {example!r})" if example is not None else ""
            raise ConfigError(f"{owner}.{name} must be a finite number > 0{hint}, got {value!r}")
    elif name.endswith("_weight") or name == "gradient_penalty":
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{owner}.{name} must be a finite number >= 0, got {value!r}; use 0 to disable "
                              "that term or a positive weight to enable it")
    elif not math.isfinite(value):
        hint = f" (default {example!r})" if example is not None else ""
        raise ConfigError(f"{owner}.{name} must be a finite number{hint}, got {value!r}")


def parse_overrides(cls: type[Config], pairs: list[str], *,
                    elsewhere: dict[str, str] | None = None) -> dict[str, Any]:
    """Parse ``key=value`` strings (as given on the command line) against ``cls``'s fields.

    Values are read as JSON when they parse (``3``, ``0.5``, ``true``, ``[1, 2]``), otherwise as
    plain strings, then validated by ``from_dict``. A key given twice with two values takes the last,
    with a warning; ``elsewhere`` maps names that are not fields of ``cls`` but options of their own
    (``{"steps": "--steps"}``) to that option, which an unknown key's error then names.
    """
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {pair!r}")
        if key not in cls.field_names():
            raise ConfigError(_unknown_override(cls, key, raw, elsewhere or {}))
        if key in given and given[key] != raw:
            # The last one wins, as for a repeated option (a base command with an override appended),
            # but not silently: a typo in the first would otherwise go unseen.
            warnings.warn(f"{key} is set twice ({key}={given[key]}, then {key}={raw}); using the last, "
                          f"{key}={raw}", UserWarning, stacklevel=2)
        given[key], out[key] = raw, _json_or_text(raw)
    return out


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _unknown_override(cls: type[Config], key: str, raw: str, elsewhere: dict[str, str]) -> str:
    """The message for a key that is not a field of ``cls``: its own option, or the closest field."""
    if key in elsewhere:
        return (f"{key} is not a {cls.__name__} field but an option of its own: pass {elsewhere[key]} "
                f"{raw.strip()}")
    close = difflib.get_close_matches(key, cls.field_names(), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{cls.__name__} has no field {key!r}; {hint}known fields: {cls.field_names()}"


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
        if len(errors) == 1:  # an optional value: its one type's message says what it must be
            raise ConfigError(errors[0])
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
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range, e.g. 1 followed by 400 zeros
            raise ConfigError(f"{where} must be a finite number within +-1.8e308, got an integer of "
                              f"{len(str(abs(value)))} digits") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value
