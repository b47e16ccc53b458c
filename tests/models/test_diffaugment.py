"""DiffAugment's cutout: the same images, layout and gradients as the full-size ``torch.where``
it replaced (a tensor of -1s the size of the batch), for every layout the ops produce."""

from __future__ import annotations

import pytest
import torch

from augmentgen.models import diffaugment
from augmentgen.models.diffaugment import cutout, diff_augment


def cutout_with_a_full_tensor(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """``cutout`` as first written: the same draws, then ``where(inside, full_like(x, -1), x)``."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = ((ys - cy + ch // 2).clamp(0) < ch) & ((ys - cy + ch // 2) >= 0) \
        & ((xs - cx + cw // 2) >= 0) & ((xs - cx + cw // 2) < cw)
    return torch.where(inside[:, None], torch.full_like(x, -1.0), x)


def bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes in memory order: -0.0 and 0.0 differ here, not in torch.equal."""
    return t.detach().contiguous().view(torch.uint8)


def images(shape, layout: str, dtype: torch.dtype) -> torch.Tensor:
    x = (torch.rand(shape) * 2 - 1).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "translated":  # translation's output: NHWC storage seen as NCHW
        x = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    return x.requires_grad_(True)


@pytest.mark.parametrize("shape", [(6, 3, 32, 32), (5, 1, 28, 28)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "translated"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("ratio", [0.5, 0.3])
def test_cutout_matches_the_full_tensor_version(shape, layout, dtype, ratio):
    x = images(shape, layout, dtype)
    torch.manual_seed(0)
    expected = cutout_with_a_full_tensor(x, ratio)
    torch.manual_seed(0)
    out = cutout(x, ratio)
    assert out.dtype == expected.dtype and out.stride() == expected.stride()  # the discriminator's layout
    assert torch.equal(bits(out), bits(expected))
    weights = torch.linspace(-1, 1, out.numel()).view_as(out).to(dtype)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), x)
    assert torch.equal(bits(grad), bits(expected_grad)) and grad.stride() == expected_grad.stride()


def test_the_full_policy_draws_the_same_numbers():
    x = images((4, 3, 32, 32), "contiguous", torch.float32)
    torch.manual_seed(1)
    out = diff_augment(x, "color,translation,cutout")
    after = torch.rand(1)
    torch.manual_seed(1)
    expected = cutout_with_a_full_tensor(diffaugment.translation(diffaugment.color(x)))
    assert torch.equal(bits(out), bits(expected)) and out.stride() == expected.stride()
    assert torch.equal(torch.rand(1), after)  # the global stream is left where it was
