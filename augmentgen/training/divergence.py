"""Divergence checks: the losses of the steps since the last check, and whether every generator
parameter is finite, read in one host transfer; and which step first went non-finite.

Losses stay on the device between checks (no host sync per step). At a check step the trainer
reads them with :func:`read_pending`, finds the first non-finite step with
:func:`first_divergence`, and then rolls back or raises, as ``on_divergence`` says.
"""

from __future__ import annotations

import math

import torch
from accelerate import Accelerator
from torch import nn


def read_pending(pending: list[dict[str, torch.Tensor]], generator: nn.Module,
                 accelerator: Accelerator) -> tuple[list[dict[str, float]], bool]:
    """The values of ``pending`` (one dict of losses per step) and whether every parameter of
    ``generator`` is finite, in one host transfer. With several processes the values are
    averaged over them first (one all-reduce), so a NaN on any rank reaches all and every rank
    takes the same decision."""
    flat = [v.detach().float().reshape(()) for losses in pending for v in losses.values()]
    # The infinity norm is inf / NaN exactly when a parameter is: one batched reduction.
    norms = torch._foreach_norm([p.detach() for p in generator.parameters()], ord=math.inf)
    flat.append(torch.isfinite(torch.stack(norms).float()).all().float())
    packed = torch.stack(flat)
    if accelerator.num_processes > 1:
        packed = accelerator.reduce(packed, reduction="mean")
    read = packed.tolist()  # the one host sync per check
    params_finite = read.pop() == 1.0
    rows, i = [], 0
    for losses in pending:
        rows.append(dict(zip(losses, read[i:i + len(losses)])))
        i += len(losses)
    return rows, params_finite


def first_divergence(rows: list[dict[str, float]], params_finite: bool, step: int) -> tuple[int, str] | None:
    """``None`` when every value of ``rows`` (the steps up to ``step``) and every parameter is
    finite; else the first bad step and what went wrong there (its losses, for the message)."""
    bad = next((n for n, row in enumerate(rows) if not all(map(math.isfinite, row.values()))), None)
    if bad is None and params_finite:
        return None
    first = step - len(rows) + 1
    bad_step, values = (first + bad, rows[bad]) if bad is not None else (step, rows[-1])
    what = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
    if bad is None:
        what += ", with non-finite generator parameters"
    return bad_step, what
