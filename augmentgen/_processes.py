"""Which process of a launched job this is: the one rule every layer uses to decide who reports.

Under ``accelerate launch`` or ``torchrun`` every process runs the same code, and only the main
one (global rank 0) should print summaries or draw progress bars. The rule reads the process
group when one is initialised, else the launcher's ``RANK`` variable, and initialises nothing:
asking must not start a process group (``accelerate.PartialState()`` would) in code that may run
inside a user's own training loop. :func:`progress_bar` applies the rule, and the ``progress``
argument's convention, to a tqdm bar.
"""

from __future__ import annotations

import os

import torch

from .errors import ConfigError

__all__ = ["is_main_process", "progress_bar"]


def is_main_process() -> bool:
    """True in a lone process and in global rank 0 of a launched job."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", 0)) == 0


def progress_bar(progress: bool | None, *, total: int | None, desc: str, unit: str = "img"):
    """A tqdm bar for long work, by the ``progress`` argument's convention: shown on the main
    process only; ``None`` shows it when stderr is a terminal (tqdm's own test), ``True`` always
    (logs included), ``False`` never. A hidden bar is a disabled tqdm, which every caller can
    still ``update``. Raises :class:`~augmentgen.errors.ConfigError` for another ``progress``."""
    from tqdm.auto import tqdm

    if progress is not None and not isinstance(progress, bool):
        raise ConfigError(f"progress must be True, False or None (a bar when stderr is a terminal), "
                          f"got {progress!r}")
    show = progress is not False and is_main_process()
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True,
                disable=None if progress is None and show else not show)
