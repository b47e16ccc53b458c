"""The generator's exponential moving average, its own small module (like ``ema_pytorch.EMA``).

The trainer keeps one :class:`GeneratorEMA` of the generator and saves the averaged weights;
:func:`ema_with_warmup` is the same update written for ``torch.optim.swa_utils.AveragedModel``,
kept as the reference the tests compare against.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class GeneratorEMA(nn.Module):
    """Exponential moving average of a generator's parameters and floating-point buffers.

    The update of ``AveragedModel(model, multi_avg_fn=ema_with_warmup(decay), use_buffers=True)``
    (the first update copies, the n-th then moves by ``1 - min(decay, (1 + n) / (10 + n))``),
    as one ``torch._foreach_lerp_`` and without a host sync: the update count is kept on the host
    (``AveragedModel`` reads its count tensor back twice per update). Integer buffers (batch
    norm's ``num_batches_tracked``) are copied. The state dict is ``AveragedModel``'s
    (``n_averaged``, ``module.*``), so checkpoints written before issue 17 load unchanged.

    Args:
        model: the generator to average (deep-copied into :attr:`module`).
        decay: the decay once warmed up, in [0, 1).
    """

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        self.module = copy.deepcopy(model)
        self.decay = decay
        device = next(model.parameters()).device
        self.register_buffer("n_averaged", torch.tensor(0, dtype=torch.long, device=device))
        self._updates = 0  # host copy of n_averaged

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current parameters and buffers."""
        floating, current, integer, integer_current = [], [], [], []
        for a, c in zip([*self.module.parameters(), *self.module.buffers()], [*model.parameters(), *model.buffers()]):
            if a.is_floating_point():
                floating.append(a.detach())
                current.append(c.detach())
            else:
                integer.append(a)
                integer_current.append(c)
        n = self._updates
        if n == 0:
            torch._foreach_copy_(floating, current)
        else:
            torch._foreach_lerp_(floating, current, 1.0 - min(self.decay, (1.0 + n) / (10.0 + n)))
        if integer:
            torch._foreach_copy_(integer, integer_current)
        self._updates = n + 1
        self.n_averaged.fill_(self._updates)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._updates = int(self.n_averaged)  # once per load, not per step
        return result


def ema_with_warmup(decay: float):
    """EMA update for ``AveragedModel`` whose decay ramps up as ``min(decay, (1 + n) / (10 + n))``.

    A fixed 0.999 would keep 37% of the random initialisation after 1000 updates: short runs
    on small datasets (the common case here) would sample from a half-trained average. The
    trainer applies the same formula with :class:`GeneratorEMA`; this is its reference.
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        # The weight stays a device tensor: no host sync per step.
        n = num_averaged.to(torch.float32)
        weight = 1.0 - torch.clamp((1.0 + n) / (10.0 + n), max=decay)
        floating = [(a, c) for a, c in zip(averaged, current) if a.is_floating_point()]
        if floating:
            a, c = (list(t) for t in zip(*floating))
            step = torch._foreach_sub(c, a)
            torch._foreach_mul_(step, weight.to(a[0].device))
            torch._foreach_add_(a, step)
        for a, c in zip(averaged, current):
            if not a.is_floating_point():  # e.g. BatchNorm's num_batches_tracked
                a.copy_(c)

    return update
