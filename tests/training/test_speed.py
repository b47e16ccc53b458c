"""The trainer's speed options: channels_last only where oneDNN runs it correctly."""

from types import SimpleNamespace

import pytest
import torch
from accelerate import Accelerator
from torch import nn

from augmentgen.training.speed import apply_speed_options


class _Step:
    """What apply_speed_options reads of a prepared step: its modules, as attributes."""

    def __init__(self, **modules):
        vars(self).update(modules)

    def optimizers(self):
        return []


def _options(channels_last=True):
    return SimpleNamespace(optimizer_kernel="default", channels_last=channels_last, compile=False)


def test_channels_last_lays_out_every_module_of_the_step(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    # A strided 1x1 convolution with a full AVX2 block of 8 input channels is safe.
    step = _Step(generator=nn.Conv2d(8, 8, 3), discriminator=nn.Sequential(nn.Conv2d(8, 16, 1, 2), nn.Conv2d(16, 8, 3)))
    assert apply_speed_options(step, _options(), Accelerator(cpu=True)) is True
    for conv in (step.generator, step.discriminator[1]):  # 3x3: the layouts differ
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    assert apply_speed_options(_Step(g=nn.Conv2d(8, 8, 3)), _options(False), Accelerator(cpu=True)) is False


def test_a_module_oneDNN_mishandles_in_channels_last_keeps_the_run_in_nchw(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    step = _Step(generator=nn.Conv2d(8, 8, 3), discriminator=nn.Sequential(nn.Conv2d(4, 8, 1, 2), nn.Conv2d(8, 8, 3)))
    with pytest.warns(RuntimeWarning, match=r"channels_last is off for this run: Sequential.0 is a strided 1x1 "
                                            r"convolution with fewer than 8 input channels"):
        assert apply_speed_options(step, _options(), Accelerator(cpu=True)) is False
    # No module was converted: the trainer then lays out no batch in channels_last either.
    assert step.generator.weight.is_contiguous() and step.discriminator[1].weight.is_contiguous()
