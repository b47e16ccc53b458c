"""Which process of a launched job this is: the one rule every layer uses to decide who reports.

Under ``accelerate launch`` or ``torchrun`` every process runs the same code, and only the main
one (global rank 0) should print summaries or draw progress bars. The rule reads the process
group when one is initialised, else the launcher's ``RANK`` variable, and initialises nothing:
asking must not start a process group (``accelerate.PartialState()`` would) in code that may run
inside a user's own training loop.
"""

from __future__ import annotations

import os

import torch

__all__ = ["is_main_process"]


def is_main_process() -> bool:
    """True in a lone process and in global rank 0 of a launched job."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", 0)) == 0
