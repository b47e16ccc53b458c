"""Renamed names: the old one keeps working for now, with a ``FutureWarning`` that names the new one.

One mechanism for every rename, so the message and the rules are the same everywhere:

- :func:`renamed_argument` is a decorator for a function or method whose keyword argument was
  renamed (``@renamed_argument("n_per_class", "per_class")``);
- :func:`renamed_fields` is a class decorator for a config dataclass whose field was renamed: the
  constructor takes the old keyword and ``Config.from_dict`` the old key (a ``training.json`` or
  config written before the rename);
- :func:`renamed_message` is the sentence itself, which the CLI prints for a renamed flag.

Passing both the old and the new name is an error rather than a silent choice between them.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)


class BothNamesError(ConfigError, TypeError):
    """A call gave both the old and the new name of a renamed argument: a ConfigError like every
    bad input, and a TypeError as passing one argument twice is."""


def renamed_message(old: str, new: str) -> str:
    """``"n_per_class is renamed per_class; ..."``: what every rename's warning says."""
    return f"{old} is renamed {new}; use {new} ({old} still works for now and will be removed in a future release)"


def warn_renamed(old: str, new: str, *, stacklevel: int = 2) -> None:
    """A ``FutureWarning`` that ``old`` is renamed ``new``, attributed ``stacklevel`` frames up
    from the caller of this function (1: the caller itself)."""
    warnings.warn(renamed_message(old, new), FutureWarning, stacklevel=stacklevel + 1)


def renamed_argument(old: str, new: str, *, only_if: Callable[[Any], bool] | None = None) -> Callable[[F], F]:
    """Decorate a function whose keyword argument ``old`` is now ``new``: ``old=`` still works,
    with a ``FutureWarning``; passing both is a :class:`BothNamesError` (a ``ConfigError`` and a
    ``TypeError``, as passing one twice is).

    ``only_if``: for a name that now means something else, the test of a value in its old
    meaning (``per_class=False`` was the intra-class FID switch; ``per_class=200`` is a count):
    only such values are renamed. Stack that decorator above the one giving ``old`` its new
    meaning.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if old in kwargs and (only_if is None or only_if(kwargs[old])):
                if new in kwargs:
                    raise BothNamesError(f"{func.__qualname__}() got both {old}= and {new}=; {old} is the old "
                                         f"name of {new}: pass only {new}")
                warn_renamed(old if only_if is None else f"{old}={kwargs[old]!r}", new, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def renamed_fields(**renamed: str) -> Callable[[C], C]:
    """Class decorator (above ``@dataclass``) for a config whose fields were renamed, ``old="new"``:
    the constructor accepts each old keyword and ``from_dict`` each old key, with a ``FutureWarning``."""

    def decorate(cls: C) -> C:
        init = cls.__init__
        for old, new in renamed.items():
            init = renamed_argument(old, new)(init)
        cls.__init__ = init
        cls._renamed_fields = {**getattr(cls, "_renamed_fields", {}), **renamed}
        return cls

    return decorate


def rename_keys(values: Mapping[str, Any], renamed: Mapping[str, str], *, owner: str,
                stacklevel: int = 2) -> dict[str, Any]:
    """``values`` with each old key of ``renamed`` under its new name, warning once per old key
    found; a :class:`~augmentgen.errors.ConfigError` when both names are given."""
    out = dict(values)
    for old, new in renamed.items():
        if old not in out:
            continue
        if new in out:
            raise ConfigError(f"{owner} got both {old!r} and {new!r}; {old} is the old name of {new}: keep only {new}")
        warn_renamed(f"{owner}.{old}", new, stacklevel=stacklevel + 1)
        out[new] = out.pop(old)
    return out
