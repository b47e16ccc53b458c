"""ConditionalGenerator.temperature_table: made once per (values, device) and reused by every
``sample`` call, with exactly the values of a table built in each call."""

from __future__ import annotations

import torch

from augmentgen.models import build_config, build_generator


def built_each_call(values) -> torch.Tensor:
    """The table as ``temperature_table`` built it in every call before it was cached."""
    return torch.tensor(values, dtype=torch.float32)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and torch.equal(a.view(torch.int32), b.view(torch.int32))


def test_the_table_is_reused_and_holds_the_same_values():
    gen = build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8))
    assert gen.temperature_table(1.0) is None and gen.temperature_table((1, 1.0, 1)) is None
    table = gen.temperature_table(0.7)
    assert gen.temperature_table(0.7) is table  # not rebuilt (a host-to-device copy on a GPU)
    assert gen.temperature_table(torch.tensor(0.7)) is table
    assert same_bits(table, built_each_call([0.7] * 3)) and table.device == gen.device
    per_class = gen.temperature_table([0.5, 1, 2.0])
    assert gen.temperature_table((0.5, 1.0, 2.0)) is per_class
    assert same_bits(per_class, built_each_call([0.5, 1.0, 2.0]))
    # -0.0 == 0.0, but the tables differ in their sign bits: they are kept apart.
    negative, positive = gen.temperature_table(-0.0), gen.temperature_table(0.0)
    assert negative is not positive
    assert same_bits(negative, built_each_call([-0.0] * 3)) and same_bits(positive, built_each_call([0.0] * 3))


def test_a_table_made_in_inference_mode_serves_later_calls():
    # The mixer samples under inference_mode; the cached table must not be an inference tensor.
    gen = build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8))
    with torch.inference_mode():
        table = gen.temperature_table((0.25, 0.5, 0.75))
    assert not table.is_inference()
    labels = torch.tensor([0, 1, 2, 2])
    with torch.inference_mode():
        inside = gen.sample(labels, generator=torch.Generator().manual_seed(0), temperature=(0.25, 0.5, 0.75))
    outside = gen.sample(labels, generator=torch.Generator().manual_seed(0), temperature=(0.25, 0.5, 0.75))
    assert torch.equal(inside, outside)
