"""Where channels_last is safe on a CPU: oneDNN's strided 1x1 nhwc convolution with few input channels."""

import pytest
import torch
from torch import nn

from augmentgen._memory_format import channels_last_hazard, simd_channel_block


@pytest.mark.parametrize("capability, block", [("AVX2", 8), ("AVX512", 16), ("DEFAULT", 16)])
def test_the_channel_block_follows_the_cpu(monkeypatch, capability, block):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert simd_channel_block() == block


def test_a_strided_1x1_convolution_with_few_input_channels_is_the_hazard(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    net = nn.Sequential(nn.Conv2d(1, 4, 3, 1, 1), nn.Sequential(nn.Conv2d(4, 8, 1, 2)))
    assert channels_last_hazard(net) == "1.0"
    assert channels_last_hazard(nn.Conv2d(4, 8, 1, 2)) == "Conv2d"  # the module itself
    assert channels_last_hazard(nn.Conv2d(8, 8, 1, 2)) is None  # a full block of channels
    assert channels_last_hazard(nn.Conv2d(4, 8, 1, 1)) is None  # stride 1: another kernel
    assert channels_last_hazard(nn.Conv2d(4, 8, 3, 2)) is None  # 3x3: another kernel
    assert channels_last_hazard(nn.Conv2d(16, 16, 1, 2, groups=4)) == "Conv2d"  # 4 channels per group
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert channels_last_hazard(nn.Conv2d(8, 8, 1, 2)) == "Conv2d"  # AVX-512's block is 16
