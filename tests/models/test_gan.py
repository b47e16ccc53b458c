import pytest
import torch

from augmentgen.errors import ConfigError, DataError, UnknownFamilyError
from augmentgen.models import available_models, build_config, build_generator
from augmentgen.models.gan import ProjectionDiscriminator
from tests.conftest import TINY_GAN


@pytest.mark.parametrize("channels, size", [(1, 28), (3, 32), (1, 64), (3, 64)])
def test_generator_and_discriminator_shapes(channels, size):
    config = build_config("cgan", num_classes=4, in_channels=channels, image_size=size, **TINY_GAN)
    generator = build_generator(config)
    images = generator.sample(torch.tensor([0, 1, 2, 3, 3]))
    assert images.shape == (5, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1
    logits, class_logits = ProjectionDiscriminator(config)(images, torch.tensor([0, 1, 2, 3, 3]))
    assert logits.shape == (5,) and class_logits.shape == (5, 4)


def test_sampling_is_seeded_and_label_conditioned():
    generator = build_generator(build_config("cgan", num_classes=3, **TINY_GAN))
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    a = generator.sample(torch.zeros(4, dtype=torch.long), generator=g())
    b = generator.sample(torch.zeros(4, dtype=torch.long), generator=g())
    c = generator.sample(torch.full((4,), 2), generator=g())
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 1e-3  # same noise, other class: other images


def test_sampling_in_chunks_equals_one_batch():
    generator = build_generator(build_config("cgan", num_classes=3, **TINY_GAN)).eval()
    labels = torch.tensor([0, 1, 2] * 5)
    whole = generator.sample(labels, generator=torch.Generator().manual_seed(0), batch_size=64)
    chunked = generator.sample(labels, generator=torch.Generator().manual_seed(0), batch_size=4)
    torch.testing.assert_close(whole, chunked)


def test_sample_does_not_track_gradients_or_change_mode():
    generator = build_generator(build_config("cgan", num_classes=3, **TINY_GAN)).train()
    out = generator.sample([0, 1])
    assert not out.requires_grad and generator.training


@pytest.mark.parametrize("labels, message", [([0, 3], r"\[0, 2\]"), ([-1], r"\[0, 2\]"),
                                             (torch.tensor([0.0, 1.0]), "integers"),
                                             (torch.zeros(2, 2, dtype=torch.long), "1-D")])
def test_bad_labels_are_refused(labels, message):
    generator = build_generator(build_config("cgan", num_classes=3, **TINY_GAN))
    with pytest.raises(DataError, match=message):
        generator.sample(labels)


def test_config_validation_and_presets():
    assert build_config("wgan-gp").loss == "wgan-gp"
    assert {"cgan", "wgan-gp"} <= set(available_models())
    with pytest.raises(ConfigError, match="image_size"):
        build_config("cgan", image_size=30)
    with pytest.raises(ConfigError, match="loss"):
        build_config("cgan", loss="least-squares")
    with pytest.raises(ConfigError, match="DiffAugment"):
        build_config("cgan", diffaugment="color,rotate")
    with pytest.raises(ConfigError, match="no field"):
        build_config("cgan", widht=3)
    with pytest.raises(UnknownFamilyError, match="cgan"):
        build_config("stylegan9")
