"""The speed options of :class:`~augmentgen.training.TrainingConfig`, applied to a family's
prepared step before its first update: ``optimizer_kernel``, ``channels_last`` and ``compile``.

Each is the same maths up to floating-point rounding. What a family cannot train with it
refuses itself (:meth:`TrainingStep.check_training_options
<augmentgen.models.step.TrainingStep.check_training_options>`), and it declares what
``compile`` wraps (:meth:`TrainingStep.compilable_modules
<augmentgen.models.step.TrainingStep.compilable_modules>`).
"""

from __future__ import annotations

import warnings

import torch
from accelerate import Accelerator

from .._memory_format import channels_last_hazard, simd_channel_block
from ..errors import ConfigError
from ..models.step import TrainingStep


def apply_speed_options(step: TrainingStep, config, accelerator: Accelerator) -> bool:
    """``optimizer_kernel``, ``channels_last`` and ``compile`` of ``config`` (a
    :class:`~augmentgen.training.TrainingConfig`), after ``step.prepare``, before any update.
    Returns whether channels_last is in effect (the trainer lays out its batches to match)."""
    if config.optimizer_kernel != "default":
        for opt in step.optimizers():
            set_optimizer_kernel(opt, config.optimizer_kernel)
    modules = _step_modules(step, accelerator)
    channels_last = config.channels_last and _channels_last_is_safe(modules, accelerator.device)
    if channels_last:
        # In place (the parameters stay the objects the optimizers hold; their state is
        # created on the first update, in the same layout). Under DDP the buckets were laid
        # out before this: correct, at the cost of a copy per bucket.
        for module in modules:
            module.to(memory_format=torch.channels_last)
    if config.compile:
        # Only the modules the step declares: the plain_* ones it keeps for double-backward
        # penalties (WGAN-GP, R1) and the EMA stay eager.
        for name, module in step.compilable_modules().items():
            setattr(step, name, torch.compile(module))
    return channels_last


def _step_modules(step: TrainingStep, accelerator: Accelerator) -> list[torch.nn.Module]:
    """The step's modules (unwrapped from DDP), each once."""
    modules: dict[int, torch.nn.Module] = {}
    for value in list(vars(step).values()):
        if isinstance(value, torch.nn.Module):
            module = accelerator.unwrap_model(value)
            modules.setdefault(id(module), module)
    return list(modules.values())


def _channels_last_is_safe(modules: list[torch.nn.Module], device: torch.device) -> bool:
    """False, with a warning, where a module would hit oneDNN's faulty nhwc case on a CPU
    (:mod:`augmentgen._memory_format`); CUDA and MPS run channels_last through other kernels."""
    if device.type != "cpu":
        return True
    for module in modules:
        hazard = channels_last_hazard(module)
        if hazard is not None:
            warnings.warn(f"channels_last is off for this run: {type(module).__name__}.{hazard} is a strided 1x1 "
                          f"convolution with fewer than {simd_channel_block()} input channels, whose gradient oneDNN "
                          "computes past its buffer in that layout on this CPU (pass --no-channels-last to silence "
                          "this)",
                          RuntimeWarning, stacklevel=3)
            return False
    return True


def set_optimizer_kernel(optimizer: torch.optim.Optimizer, kernel: str) -> None:
    """Switch ``optimizer`` (before its first step) to its ``"foreach"`` or ``"fused"`` implementation.

    Torch's Adam-like optimizers read both flags from each param group at every step, so setting
    them here is what passing ``foreach=`` / ``fused=`` to the constructor would have done; the
    flags are saved in (and restored from) the optimizer's state dict.
    """
    if kernel not in optimizer.defaults:
        raise ConfigError(
            f"optimizer_kernel={kernel!r}: this family's {type(optimizer).__name__} has no {kernel} "
            "implementation; use optimizer_kernel='default'"
        )
    for group in [optimizer.defaults, *optimizer.param_groups]:
        for flag in ("foreach", "fused"):
            if flag in group:
                group[flag] = flag == kernel
