"""The family conformance suite: every registered model (family or preset) passes these checks.

In the style of diffusers' ``ModelTesterMixin``: one parametrized class, run for every name
:func:`augmentgen.available_models` lists. A new family gets the whole suite by adding one line
to ``TINY``: the smallest config that trains in a few CPU steps, and the loss its training step
should lower on a fixed batch. Family-specific behaviour is tested next to this file.
"""

import json

import pytest
import torch
from accelerate import Accelerator

from augmentgen.errors import DataError
from augmentgen.hub import load_generator, save_generator
from augmentgen.models import (
    ConditionalGenerator,
    TrainingStep,
    available_models,
    build_config,
    build_generator,
    config_from_dict,
    config_to_dict,
    sampling_progress,
    step_class,
)
from tests.conftest import RecordingBar, make_images

_GAN = {"generator_width": 8, "discriminator_width": 8, "latent_dim": 8}
_ENCODER = {"encoder_width": 8, "decoder_width": 8, "latent_dim": 8}
_DDPM = {"unet_width": 8, "sampling_steps": 3, "learning_rate": 1e-3}

#: model name -> (tiny config values, the loss its step lowers on a fixed batch)
TINY = {
    "cgan": (_GAN, "d_loss"),
    "wgan-gp": (_GAN, "d_loss"),
    "aae": ({**_ENCODER, "discriminator_hidden": 16}, "rec_loss"),
    "ae": (_ENCODER, "rec_loss"),
    "aegan": ({**_ENCODER, "discriminator_width": 8}, "rec_loss"),
    "vae": (_ENCODER, "rec_loss"),
    "ddpm": ({**_DDPM, "channel_multipliers": [1, 2]}, "diffusion_loss"),
    "ddpm-large": ({**_DDPM, "layers_per_block": 1}, "diffusion_loss"),  # 4 levels (28 padded to 32), attention
}
NUM_CLASSES = 3

#: Models sampled by an iterative solver with classifier-free guidance: the batched conditional +
#: unconditional forward rounds differently at another batch size (kernel blocking, ~1e-6), and
#: the solver's steps compound it, so chunked samples match the whole batch to this tolerance.
CHUNKED_SAMPLE_TOLERANCE = {"ddpm": 5e-4, "ddpm-large": 5e-4}


#: Pinned behaviour (like diffusers' ``expected_slice``): pixels [12:15, 12:15] of the last of
#: ``sample([0, 1, 2])`` from the tiny config built after ``torch.manual_seed(0)``, with a
#: generator seeded 0. An unintended change to initialisation, noise or sampling fails here;
#: an intended one updates the slice and says so in CHANGELOG.
EXPECTED_SLICES = {
    "aae": [-0.0933, -0.1016, -0.1199, -0.0798, -0.0775, -0.1300, -0.0873, -0.0637, -0.1150],
    "ae": [-0.0933, -0.1016, -0.1199, -0.0798, -0.0775, -0.1300, -0.0873, -0.0637, -0.1150],
    "aegan": [-0.0653, -0.0773, -0.0982, -0.0471, -0.0551, -0.0882, -0.0743, -0.0785, -0.0968],
    "cgan": [-0.0319, -0.0275, -0.0230, -0.0440, -0.0386, -0.0156, -0.0478, -0.0476, -0.0216],
    "ddpm": [-0.8788, -1.0000, -0.8959, 1.0000, -1.0000, -0.7245, 1.0000, 1.0000, -1.0000],
    "ddpm-large": [-0.5253, -1.0000, -0.9597, 0.8609, -1.0000, -0.6475, 1.0000, -0.5854, -0.7539],
    "vae": [-0.0653, -0.0773, -0.0982, -0.0471, -0.0551, -0.0882, -0.0743, -0.0785, -0.0968],
    "wgan-gp": [-0.0319, -0.0275, -0.0230, -0.0440, -0.0386, -0.0156, -0.0478, -0.0476, -0.0216],
}
#: An iterative solver compounds float rounding over its steps: a wider tolerance there.
SLICE_TOLERANCE = {"ddpm": 2e-3, "ddpm-large": 2e-3}


def tiny_config(name: str, **values):
    return build_config(name, num_classes=NUM_CLASSES, **TINY[name][0], **values)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def fixed_batch(channels: int = 1, size: int = 28):
    data = make_images(n_per_class=6, num_classes=NUM_CLASSES, channels=channels, size=size)
    return data.to_float(), data.labels


def test_every_registered_model_is_in_the_suite():
    assert set(available_models()) == set(TINY) == set(EXPECTED_SLICES)


@pytest.mark.parametrize("name", sorted(EXPECTED_SLICES))
def test_sampling_matches_the_pinned_slice(name):
    torch.manual_seed(0)
    generator = build_generator(tiny_config(name)).eval()
    images = generator.sample(torch.tensor([0, 1, 2]), generator=seeded(0))
    got = images[-1, 0, 12:15, 12:15].flatten()
    expected = torch.tensor(EXPECTED_SLICES[name])
    assert torch.allclose(got, expected, atol=SLICE_TOLERANCE.get(name, 2e-4)), got.tolist()


@pytest.mark.parametrize("name", sorted(TINY))
class TestFamilyConformance:
    def tiny_step(self, name: str, seed: int = 0, **values) -> TrainingStep:
        torch.manual_seed(seed)
        generator = build_generator(tiny_config(name, **values))
        step = step_class(type(generator.config).family)(generator, Accelerator(cpu=True))
        step.prepare()
        return step

    def test_config_round_trips_through_json(self, name):
        config = tiny_config(name, class_names=["a", "b", "c"])
        again = config_from_dict(json.loads(json.dumps(config_to_dict(config))))
        assert again == config and type(again) is type(config)

    @pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)])
    def test_samples_have_the_interface_shape_range_and_dtype(self, name, channels, size):
        generator = build_generator(tiny_config(name, in_channels=channels, image_size=size))
        assert isinstance(generator, ConditionalGenerator)
        assert generator.image_shape == (channels, size, size) and generator.num_classes == NUM_CLASSES
        generator.train()
        images = generator.sample(torch.tensor([0, 1, 2, 2, 1]), generator=seeded())
        assert images.shape == (5, channels, size, size) and images.dtype == torch.float32
        assert images.min() >= -1 and images.max() <= 1 and not images.requires_grad
        assert generator.training  # sampling does not change the module's mode

    def test_seeded_sampling_is_deterministic_chunk_invariant_and_label_conditioned(self, name):
        generator = build_generator(tiny_config(name)).eval()
        labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
        whole = generator.sample(labels, generator=seeded(3))
        assert torch.equal(whole, generator.sample(labels, generator=seeded(3)))
        # Chunks draw the same noise (torch draws >= 16 normals at a time the same way whatever
        # the count); only the kernels' blocking over the batch may differ.
        tolerance = CHUNKED_SAMPLE_TOLERANCE.get(name)
        torch.testing.assert_close(whole, generator.sample(labels, generator=seeded(3), batch_size=4),
                                   **({"atol": tolerance, "rtol": tolerance} if tolerance else {}))
        same_noise = [generator.sample(torch.full((4,), k), generator=seeded(5)) for k in (0, 2)]
        assert (same_noise[0] - same_noise[1]).abs().mean() > 1e-3  # other class, other images

    def test_a_progress_bar_counts_every_image_and_changes_no_sample(self, name):
        generator = build_generator(tiny_config(name)).eval()
        labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
        plain = generator.sample(labels, generator=seeded(2), batch_size=4)
        bar = RecordingBar()
        with sampling_progress(bar):
            counted = generator.sample(labels, generator=seeded(2), batch_size=4)
        assert torch.equal(plain, counted) and bar.n == len(labels)

    @pytest.mark.parametrize(("labels", "message"), [
        ([0, 3], r"\[0, 2\]"), ([-1], r"\[0, 2\]"), (torch.tensor([0.0, 1.0]), "integer"),
        (torch.zeros(2, 2, dtype=torch.long), "1-D")])
    def test_bad_labels_raise_a_data_error_that_names_the_range(self, name, labels, message):
        generator = build_generator(tiny_config(name))
        with pytest.raises(DataError, match=message):
            generator.sample(labels)

    def test_training_steps_lower_the_loss_on_a_fixed_batch(self, name):
        step = self.tiny_step(name)
        assert step.optimizers(), "a step lists its optimizers so the trainer can lower their rates"
        plain = step.accelerator.unwrap_model(step.generator)
        before = [p.detach().clone() for p in plain.parameters()]
        images, labels = fixed_batch()
        losses = [step(images, labels) for _ in range(25)]
        assert all(torch.isfinite(v).all() and not v.requires_grad for d in losses for v in d.values())
        watched = TINY[name][1]
        first = sum(float(d[watched]) for d in losses[:3]) / 3
        last = sum(float(d[watched]) for d in losses[-3:]) / 3
        assert last < first, (watched, first, last)
        assert any(not torch.equal(a, b) for a, b in zip(before, plain.parameters()))

    def test_seeded_training_is_deterministic(self, name):
        images, labels = fixed_batch()
        runs = []
        for _ in range(2):
            step = self.tiny_step(name, seed=7)
            runs.append([{k: float(v) for k, v in step(images, labels).items()} for _ in range(3)])
        assert runs[0] == runs[1]

    def test_save_load_round_trip_gives_identical_weights_and_samples(self, name, tmp_path):
        step = self.tiny_step(name)
        images, labels = fixed_batch()
        for _ in range(3):  # move weights and batch-norm statistics off their initial values
            step(images, labels)
        generator = step.accelerator.unwrap_model(step.generator).eval()
        step.finish(generator, [(images, labels)])
        save_generator(generator, tmp_path)
        loaded = load_generator(tmp_path)
        assert type(loaded) is type(generator) and loaded.config == generator.config
        state = loaded.state_dict()
        assert set(state) == set(generator.state_dict())
        assert all(torch.equal(t, state[k]) for k, t in generator.state_dict().items())
        query = torch.tensor([0, 1, 2, 0, 1, 2])
        assert torch.equal(generator.sample(query, generator=seeded(11)),
                           loaded.sample(query, generator=seeded(11)))

    def test_vary_where_supported(self, name):
        generator = build_generator(tiny_config(name)).eval()
        if not hasattr(generator, "vary"):
            pytest.skip(f"{name} has no encoder, so no vary")
        images, labels = fixed_batch()
        varied = generator.vary(images[:5], labels[:5], 0.5, generator=seeded())
        assert varied.shape == images[:5].shape and not varied.requires_grad
        assert varied.min() >= -1 and varied.max() <= 1
        assert torch.equal(varied, generator.vary(images[:5], labels[:5], 0.5, generator=seeded()))
