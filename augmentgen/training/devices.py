"""What the trainer's parts need of devices and processes.

- :func:`synchronize`: wait for a device's queued work, so that a host clock read counts it;
- :func:`rng_kept`: a context whose random draws leave the training's random streams as they
  were (scoring snapshots, timing the writes of a time budget);
- :func:`any_process`: one flag decided by every process together (Ctrl-C, a budget overrun),
  so that every rank acts at the same step.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work, so that a host clock read counts it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def rng_kept(device: torch.device):
    """A context in which random draws leave the global CPU (and this CUDA device's) streams as they were."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def any_process(accelerator: Accelerator, flag: bool) -> bool:
    """``flag`` of this process, or with several processes whether it is set on any of them (a
    collective: every process must call it at the same step)."""
    if accelerator.num_processes == 1:
        return flag
    summed = accelerator.reduce(torch.tensor(float(flag), device=accelerator.device), reduction="sum")
    return bool(summed.item() > 0)
