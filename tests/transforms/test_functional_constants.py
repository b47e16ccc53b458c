"""The per-channel mean / std of from_generator_range and to_generator_range: made on the device
once per (values, dtype, device), with exactly the bits of a tensor made in each call."""

from __future__ import annotations

import pytest
import torch

from augmentgen.mixing.value_range import to_generator_range
from augmentgen.transforms.functional import _per_channel, from_generator_range

MEAN, STD = [0.485, 0.456, 0.406], (0.229, 0.224, 0.225)


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.uint8)


def made_each_call(values, like: torch.Tensor) -> torch.Tensor:
    """``_per_channel`` as it was: a new tensor from ``values`` in every call."""
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).flatten().view(1, -1, 1, 1)


@pytest.mark.parametrize("values", [MEAN, STD, [0.5], (0.5,), 0.5, [0, 1, 2], [True, 0.25, -0.0]])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_constants_are_made_once_with_the_same_bits(values, dtype):
    like = torch.zeros(2, 3, 4, 4, dtype=dtype)
    first, again = _per_channel(values, 3, like, "mean"), _per_channel(values, 3, like, "mean")
    assert first.data_ptr() == again.data_ptr()  # the same tensor: no copy to the device per batch
    assert first.dtype == dtype and bits(first).equal(bits(made_each_call(values, like)))
    assert first.shape == made_each_call(values, like).shape


def test_keys_tell_apart_what_makes_different_tensors():
    like = torch.zeros(1, 1, 2, 2)
    positive, negative = _per_channel([0.0], 1, like, "mean"), _per_channel([-0.0], 1, like, "mean")
    assert positive.data_ptr() != negative.data_ptr()  # -0.0 == 0.0, but not bit for bit
    assert bits(negative).equal(bits(made_each_call([-0.0], like)))
    assert _per_channel([0.5], 1, like.double(), "mean").dtype == torch.float64
    # Tensors go through as_tensor as before (no copy where they already fit).
    given = torch.tensor([0.1, 0.2, 0.3])
    assert _per_channel(given, 3, torch.zeros(1, 3, 2, 2), "mean").data_ptr() == given.data_ptr()
    with pytest.raises(Exception, match="2 values but the images have 3 channels"):
        _per_channel([0.1, 0.2], 3, torch.zeros(1, 3, 2, 2), "mean")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_normalisation_is_bit_identical_to_constants_made_each_call(dtype):
    fake = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for _ in range(2):  # the first call makes the constants, the second reuses them
        out = from_generator_range(fake, mean=MEAN, std=STD, dtype=dtype)
        work = fake.to(torch.promote_types(dtype, torch.float32))
        expected = work.add(1.0).mul_(0.5).sub_(made_each_call(MEAN, work)).div_(made_each_call(STD, work)).to(dtype)
        assert bits(out).equal(bits(expected))
        back = to_generator_range(out, mean=MEAN, std=STD)
        work = out.float()
        expected_back = work.mul(made_each_call(STD, work)).add_(made_each_call(MEAN, work)).mul_(2.0).sub_(1.0)
        assert bits(back).equal(bits(expected_back))


def test_constants_made_in_inference_mode_serve_autograd():
    # The teacher maps batches under inference_mode; a later call with autograd saves std for
    # backward, which an inference tensor could not be.
    values = ([0.11, 0.22, 0.33], [0.44, 0.55, 0.66])
    with torch.inference_mode():
        from_generator_range(torch.zeros(1, 3, 2, 2), mean=values[0], std=values[1])
    fake = torch.zeros(1, 3, 2, 2, requires_grad=True)
    from_generator_range(fake, mean=values[0], std=values[1]).sum().backward()
    assert torch.allclose(fake.grad, 0.5 / torch.tensor(values[1]).view(1, 3, 1, 1).expand(1, 3, 2, 2))
