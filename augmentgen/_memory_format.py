"""Where the channels_last layout is safe on a CPU.

channels_last (NHWC) makes convolutions faster on a CPU, but oneDNN, behind PyTorch's CPU
convolutions, mishandles one case of it: the weight gradient of a 1x1 convolution with a stride
above 1 and fewer input channels than its SIMD block (8 floats on AVX2, 16 on AVX-512) writes past
its workspace (uxlfoundation/oneDNN#6035). The process then aborts with heap corruption, or the
gradients are silently wrong. Seen here with torch 2.14.1 on an AVX2 CPU: a ResNet-8 of width 4,
whose shortcut is such a convolution with 4 input channels, aborted in its first backward.

:func:`channels_last_hazard` finds such a convolution in a module, so that the layout is only
chosen where it is safe; one rule for the trainer and the reference classifier.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["channels_last_hazard", "simd_channel_block"]


def simd_channel_block() -> int:
    """The input channels below which oneDNN's strided 1x1 nhwc kernel is unsafe on this CPU:
    8 on AVX2; 16 otherwise (AVX-512 and anything torch does not name as AVX2, to be safe)."""
    return 8 if torch.backends.cpu.get_cpu_capability() == "AVX2" else 16


def channels_last_hazard(module: nn.Module) -> str | None:
    """The name of the first convolution of ``module`` that channels_last would run through the
    faulty oneDNN case (1x1 kernel, stride above 1, fewer input channels than
    :func:`simd_channel_block`), or None when the layout is safe."""
    block = simd_channel_block()
    for name, layer in module.named_modules():
        if (isinstance(layer, nn.Conv2d) and layer.kernel_size == (1, 1) and max(layer.stride) > 1
                and layer.in_channels // layer.groups < block):
            return name or type(module).__name__
    return None
