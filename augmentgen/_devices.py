"""Reading a device a user named: one check for the command line, the measures and the row sources.

``check_device(device, shown=..., unset=...)`` turns ``"cuda:1"``, ``torch.device(...)`` and the
like into a ``torch.device``, and refuses, with a :class:`~augmentgen.errors.ConfigError` naming
the accepted forms, what torch cannot read (``"gpu"``). With ``present=True`` it also refuses a
device this machine lacks (CUDA without a GPU, ``cuda:3`` on a one-GPU machine, MPS off Apple),
before any model is moved there. Each caller says how the user wrote the device (``--device gpu``
on the command line, ``device='gpu'`` in Python) and how to leave it unset, so the message speaks
the caller's language.
"""

from __future__ import annotations

import torch

from .errors import ConfigError

__all__ = ["check_device"]

_FORMS = "'cpu', 'cuda', 'cuda:N' or 'mps'"


def check_device(device, *, shown: str, unset: str | None = None, present: bool = True) -> torch.device:
    """``device`` as a ``torch.device``, or a ConfigError.

    Args:
        device: what the user passed (a str or a ``torch.device``).
        shown: how the user wrote it, for the message: ``"--device 'gpu'"``, ``"device='gpu'"``.
        unset: how to ask for "a GPU when there is one" instead (``"leave --device unset"``), named
            when CUDA is missing; None names only the CPU.
        present: also refuse a device this machine does not have.
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):  # torch's own text lists internals, not the fix
        raise ConfigError(f"{shown} is not a device; use {_FORMS}") from None
    if not present:
        return resolved
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            fix = "use 'cpu'" + (f", or {unset} to use a GPU when there is one" if unset else "")
            raise ConfigError(f"{shown}: no CUDA GPU is available here (torch.cuda.is_available() is False); {fix}")
        if resolved.index is not None and resolved.index >= count:
            raise ConfigError(f"{shown}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}; "
                              "pick one of them")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{shown}: Apple's MPS backend is not available here; use 'cpu'")
    return resolved
