"""What the encoder families (aae, vae, aegan, ae) share beyond the conformance suite: ``vary``,
the encoder penalties; and sampling temperature for every family and prior."""

import pytest
import torch
from accelerate import Accelerator

from augmentgen.errors import ConfigError, DataError
from augmentgen.hub import load_generator, save_generator
from augmentgen.models import build_config, build_generator, step_class
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
    # each of these failed inside Python or torch: "'>=' not supported", "split_size can only be 0", "randn()"
    with pytest.raises(DataError, match=r"^strength must be a finite number >= 0 \(the perturbation in units of the "
                                        r"code's scale; 0 gives the reconstruction\), got '0.5'$"):
        generator.vary(real[:4], labels[:4], "0.5")
    with pytest.raises(ConfigError, match=r"^batch_size must be a positive int, got 0$"):
        generator.vary(real[:4], labels[:4], batch_size=0)
    with pytest.raises(ConfigError, match=r"^generator must be a torch.Generator or None, got the int 3"):
        generator.vary(real[:4], labels[:4], generator=3)


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


# ---------------------------------------------------------------- sampling temperature (issue 21)
# Every registered family, and every aae prior: (family, config overrides).
SAMPLERS = [("cgan", {"generator_width": 8, "discriminator_width": 8, "latent_dim": 8}),
            *[(family, {}) for family in FAMILIES],
            ("aae", {"prior": "uniform"}), ("aae", {"prior": "mixture"}),
            ("ddpm", {"unet_width": 8, "channel_multipliers": [1, 2], "sampling_steps": 3})]
SAMPLER_IDS = [family + ("-" + o["prior"] if "prior" in o else "") for family, o in SAMPLERS]
# Priors centred at 0 (the ae's noise is N(0, I) too; its class mean is added after the noise).
ZERO_MEAN = [s for s in SAMPLERS if s[1].get("prior") != "mixture"]


def tiny_sampler(family, overrides, seed=0):
    torch.manual_seed(seed)
    config = (build_config(family, num_classes=3, **overrides) if family in ("cgan", "ddpm")
              else tiny_config(family, **overrides))
    generator = build_generator(config).eval()
    if family == "ae":  # a fitted-looking prior: class means away from 0, non-unit spread
        generator.prior_mean.copy_(torch.randn(3, 8))
        generator.prior_scale_tril.copy_(torch.diag_embed(0.5 + torch.rand(3, 8)))
    return generator


def seeded_sample(generator, labels, seed=0, **kwargs):
    return generator.sample(labels, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_the_temperature_tests_cover_every_registered_family():
    from augmentgen.models import available_models

    assert {type(build_config(name)).family for name in available_models()} == {f for f, _ in SAMPLERS}


@pytest.mark.parametrize("family, overrides", SAMPLERS, ids=SAMPLER_IDS)
def test_temperature_one_is_bit_identical_to_the_default(family, overrides):
    generator = tiny_sampler(family, overrides)
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 0])
    default = seeded_sample(generator, labels, batch_size=3)
    for one in (1.0, 1, [1.0, 1.0, 1.0], (1, 1, 1), torch.ones(3), torch.tensor(1.0)):
        assert torch.equal(seeded_sample(generator, labels, batch_size=3, temperature=one), default), one
    images, per_class_labels = generator.sample_per_class(2, generator=torch.Generator().manual_seed(0),
                                                          temperature=1.0)
    assert torch.equal(images, seeded_sample(generator, per_class_labels))


@pytest.mark.parametrize("family, overrides", ZERO_MEAN, ids=[SAMPLER_IDS[SAMPLERS.index(s)] for s in ZERO_MEAN])
def test_temperature_zero_decodes_the_prior_centre_whatever_the_noise(family, overrides):
    generator = tiny_sampler(family, overrides)
    labels = torch.tensor([0, 1, 2] * 4)
    cold = seeded_sample(generator, labels, seed=0, temperature=0.0)
    assert torch.equal(cold, seeded_sample(generator, labels, seed=1, temperature=0))  # noise is irrelevant
    with torch.no_grad():
        if family == "ae":  # the centre of the class's fitted Gaussian
            centre = generator.decode(generator.prior_mean[labels], labels)
        else:
            centre = generator.generate(labels, generator.sample_noise(len(labels)).zero_())
    assert torch.equal(cold, centre)
    assert (cold[0] - cold[1]).abs().mean() > 1e-4  # one image per class, not one in all


@pytest.mark.parametrize("family, overrides", SAMPLERS, ids=SAMPLER_IDS)
def test_spread_within_a_class_grows_with_temperature(family, overrides):
    generator = tiny_sampler(family, overrides)
    labels = torch.full((48,), 1)
    spread = [float(seeded_sample(generator, labels, seed=2, temperature=t).std(dim=0).mean())
              for t in (0.5, 1.0, 2.0)]
    assert spread[0] < spread[1] < spread[2], spread


@pytest.mark.parametrize("family, overrides", SAMPLERS, ids=SAMPLER_IDS)
def test_per_class_temperature_changes_only_its_class(family, overrides):
    generator = tiny_sampler(family, overrides)
    labels = torch.tensor([0, 1, 2] * 5)
    mixed = seeded_sample(generator, labels, temperature=[1.0, 0.0, 2.0])
    # Each class gets exactly what that class's temperature for all would give it (same noise).
    for k, t in enumerate([1.0, 0.0, 2.0]):
        assert torch.equal(mixed[labels == k], seeded_sample(generator, labels, temperature=t)[labels == k]), k
    assert torch.equal(mixed[labels == 0], seeded_sample(generator, labels)[labels == 0])
    if overrides.get("prior") != "mixture":  # centred at one point: class 1 at temperature 0 is one image
        ones = mixed[labels == 1]
        assert torch.equal(ones, ones[:1].expand_as(ones))
    assert torch.equal(seeded_sample(generator, labels, temperature=torch.tensor([1.0, 0.0, 2.0])), mixed)


@pytest.mark.parametrize("temperature, message", [
    (-0.5, r"finite and >= 0, got -0.5"), (float("nan"), "finite and >= 0"), (float("inf"), "finite"),
    ([1.0, -1.0, 1.0], r"class 1 \('1'\)"), ([1.0, 1.0], "2 values but this generator has 3 classes"),
    (torch.ones(2, 3), r"shape \(2, 3\)"), ("hot", "number"), (True, "number"), ([1, "a", 2], "number"),
])
def test_bad_temperatures_raise_config_errors_that_say_the_fix(temperature, message):
    generator = tiny_sampler("vae", {})
    with pytest.raises(ConfigError, match=message) as info:
        generator.sample([0, 1], temperature=temperature)
    assert "temperature" in str(info.value)
    if "classes" in message:
        assert "indexed by class" in str(info.value)
    with pytest.raises(ConfigError):
        generator.sample_per_class(1, temperature=temperature)
