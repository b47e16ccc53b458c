"""Checks every encoder family passes (aae, vae, aegan, ae) on tiny configs."""

import pytest
import torch
from accelerate import Accelerator

from augmentgen.errors import DataError
from augmentgen.hub import load_generator, save_generator
from augmentgen.models import build_config, build_generator
from augmentgen.training.step import step_class
from tests.conftest import make_images

FAMILIES = ["aae", "vae", "aegan", "ae"]
TINY = {"encoder_width": 8, "decoder_width": 8, "latent_dim": 8}
EXTRA = {"aegan": {"discriminator_width": 8}, "aae": {"discriminator_hidden": 16}}


def tiny_config(family, **overrides):
    return build_config(family, num_classes=3, **TINY, **EXTRA.get(family, {}), **overrides)


def tiny_step(family, seed=0, **overrides):
    torch.manual_seed(seed)
    step = step_class(family)(build_generator(tiny_config(family, **overrides)), Accelerator(cpu=True))
    step.prepare()
    return step


def fixed_batch():
    data = make_images(n_per_class=6, num_classes=3)
    return data.to_float(), data.labels


@pytest.mark.parametrize("family", FAMILIES)
def test_steps_on_a_fixed_batch_lower_the_reconstruction_loss(family):
    step = tiny_step(family)
    images, labels = fixed_batch()
    losses = [step(images, labels) for _ in range(25)]
    assert all(torch.isfinite(v).all() for d in losses for v in d.values())
    first = sum(float(d["rec_loss"]) for d in losses[:3]) / 3
    last = sum(float(d["rec_loss"]) for d in losses[-3:]) / 3
    assert last < 0.8 * first, (first, last)


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_and_vary_shapes_ranges_and_conditioning(family):
    generator = build_generator(tiny_config(family)).eval()
    labels = torch.tensor([0, 1, 2, 2, 1])
    images = generator.sample(labels, generator=torch.Generator().manual_seed(0))
    assert images.shape == (5, 1, 28, 28) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1

    same = lambda label: generator.sample(torch.full((4,), label),  # noqa: E731
                                          generator=torch.Generator().manual_seed(3))
    assert torch.equal(same(0), same(0))
    assert (same(0) - same(2)).abs().mean() > 1e-3  # same noise, other class: other images

    real, real_labels = fixed_batch()
    varied = generator.vary(real[:7], real_labels[:7], 0.5, generator=torch.Generator().manual_seed(0))
    assert varied.shape == (7, 1, 28, 28) and not varied.requires_grad
    assert varied.min() >= -1 and varied.max() <= 1
    # uint8 input is accepted and means the same images.
    as_uint8 = ((real[:7] + 1) * 127.5).round().to(torch.uint8)
    torch.testing.assert_close(generator.vary(as_uint8, real_labels[:7], 0.0),
                               generator.vary(real[:7], real_labels[:7], 0.0), atol=2e-2, rtol=0)
    # Strength scales the departure from the reconstruction.
    rec = generator.vary(real, real_labels, 0.0)
    small = generator.vary(real, real_labels, 0.1, generator=torch.Generator().manual_seed(1))
    large = generator.vary(real, real_labels, 2.0, generator=torch.Generator().manual_seed(1))
    assert (small - rec).abs().mean() < (large - rec).abs().mean()
    assert generator.training is False


@pytest.mark.parametrize("family", FAMILIES)
def test_vary_rejects_bad_inputs(family):
    generator = build_generator(tiny_config(family))
    real, labels = fixed_batch()
    with pytest.raises(DataError, match="shaped"):
        generator.vary(real[:, :, :20, :20], labels)
    with pytest.raises(DataError, match="shaped"):
        generator.vary(real[0], labels[:1])
    with pytest.raises(DataError, match="labels"):
        generator.vary(real[:4], labels[:3])
    with pytest.raises(DataError, match="strength"):
        generator.vary(real[:4], labels[:4], -1.0)
    with pytest.raises(DataError):
        generator.vary(real[:4], torch.tensor([0, 1, 2, 5]))


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip_gives_identical_samples_and_variations(family, tmp_path):
    step = tiny_step(family)
    images, labels = fixed_batch()
    for _ in range(3):  # move the weights and batch-norm statistics off their initial values
        step(images, labels)
    generator = step.plain_generator.eval()
    step.finish(generator, [(images, labels)])
    save_generator(generator, tmp_path)
    loaded = load_generator(tmp_path)
    assert type(loaded) is type(generator) and loaded.config == generator.config
    for name, tensor in generator.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    query = torch.tensor([0, 1, 2, 0, 1, 2])
    seeded = lambda: torch.Generator().manual_seed(11)  # noqa: E731
    torch.testing.assert_close(generator.sample(query, generator=seeded()),
                               loaded.sample(query, generator=seeded()), rtol=0, atol=0)
    torch.testing.assert_close(generator.vary(images, labels, 0.7, generator=seeded()),
                               loaded.vary(images, labels, 0.7, generator=seeded()), rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_contractive_and_weight_penalties_are_reported_when_switched_on(family):
    step = tiny_step(family, contractive_weight=0.1, weight_penalty="l2")
    images, labels = fixed_batch()
    losses = step(images, labels)
    assert float(losses["contractive_loss"]) > 0 and float(losses["weight_loss"]) > 0
    plain = tiny_step(family)(images, labels)
    assert "contractive_loss" not in plain and "weight_loss" not in plain
