"""Checks of the parsed arguments that several commands share, each run before anything heavy
is loaded (or, for the generator's fit, right after the generator is), so a bad option fails in
seconds with an error that names the flag.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from .._processes import is_main_process
from ..data.labelled import warn_if_class_names_differ
from ..errors import CheckpointError, ConfigError, DataError


def _given(args, flag: str) -> bool:
    """Whether ``flag`` is on the command line (as ``--flag value`` or ``--flag=value``)."""
    return flag in args.argv or any(a.startswith(flag + "=") for a in args.argv)


# A validation message opens with the value's name, bare or as its config class writes it
# ("steps must be ...", "CGANConfig.lecam_weight must be ...").
_LEADING_NAME = re.compile(r"(?:[A-Z]\w*Config\.)?(\w+)(?=[ =:,;])")


@contextmanager
def named_as_flags(leading: Mapping[str, str], phrases: Mapping[str, str] | None = None) -> Iterator[None]:
    """Re-raise the library's ConfigError / DataError / CheckpointError in this command's words.

    A message that opens with a name in ``leading`` opens with its flag instead (``steps must be at
    least 1`` -> ``--steps must be at least 1``); each of ``phrases`` is replaced wherever it occurs
    (``overwrite=True`` -> ``--overwrite``). Only names the user set belong in ``leading``: an error
    about a value read from elsewhere (a resumed run's config) keeps its own name.
    """
    try:
        yield
    except (ConfigError, DataError, CheckpointError) as exc:
        message = str(exc)
        match = _LEADING_NAME.match(message)
        if match and match.group(1) in leading:
            name, flag = match.group(1), leading[match.group(1)]
            # the fix, too, in the command's words: "like seed=0" -> "like --seed 0"
            assignment = f"{flag}=" if flag.startswith("--set ") else f"{flag} "
            message = flag + re.sub(rf"(?<![\w.-])(?<!--set ){name}=", assignment, message[match.end():])
        for phrase, flag in (phrases or {}).items():
            message = message.replace(phrase, flag)
        raise type(exc)(message) from None


def _note_renamed_options(args) -> None:
    """One stderr line per old option spelling used; refuses an option given under both names."""
    from .._deprecation import renamed_message

    for old, new in getattr(args, "renamed_options", []):
        if _given(args, new):
            raise ConfigError(f"{old} and {new} are the same option ({old} is its old name); pass only {new}")
        if is_main_process():
            print(f"augmentgen: warning: {renamed_message(old, new)}", file=sys.stderr)


def _check_counts(args, counts: dict[str, str], *, least: int = 1) -> None:
    """Refuse a count option below ``least``, by its flag name and what it counts, before anything is loaded."""
    for name, meaning in counts.items():
        value = getattr(args, name)
        if value is not None and value < least:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} must be at least {least} ({meaning}), got {value}; pass {flag} N with "
                              f"N >= {least}")


def _load_named(option: str, spec: str, **options):
    """``load_data(spec, **options)``, its DataError naming ``option spec`` where the message does not
    (a command that reads two datasets: "the dataset is empty" must say which)."""
    from ..data import load_data

    try:
        return load_data(spec, **options)
    except DataError as exc:
        if spec in str(exc):
            raise
        raise DataError(f"{option} {spec}: {exc}") from None


def _check_device(name: str | None) -> None:
    """Refuse a --device that is malformed or absent here, before any model is loaded."""
    if name is not None:
        from .._devices import check_device

        check_device(name, shown=f"--device {name!r}", unset="leave --device unset")


def _check_methods_fit(generator, methods: list[str], *, option: str = "--methods") -> None:
    """A variation method the generator cannot run fails now, not after the first classifiers (eval) or
    once the data is loaded (sample --variations-of)."""
    from ..metrics.scores import unfit_method

    unfit = unfit_method(generator, methods)  # vary:0.3 is vary at strength 0.3 (a ddpm's is at most 1)
    if unfit is not None:
        method, exc = unfit
        fix = f"or drop {method} from --methods" if option == "--methods" else "pass such a --model"
        raise ConfigError(f"{option} {method}: {exc}; {fix}")


def _check_data_fits(generator, model: str, data: dict, *,
                     fix: str = "evaluate it on the data it was trained on", names: bool = True) -> None:
    """The data must have the generator's classes and image shape; ``names``: warn here when the
    classes carry other names (False where the library call that follows warns itself)."""
    for where, dataset in data.items():
        if dataset.num_classes != generator.num_classes:
            raise DataError(f"{where} has {dataset.num_classes} classes but the generator --model {model} "
                            f"makes {generator.num_classes}; {fix}")
        if dataset.image_shape != generator.image_shape:
            raise DataError(f"{where} holds {dataset.image_shape} images but the generator --model {model} "
                            f"makes {generator.image_shape}; {fix}")
        if names:
            warn_if_class_names_differ(generator.class_names, dataset.class_names,
                                       model=f"the generator --model {model}", data=where)
