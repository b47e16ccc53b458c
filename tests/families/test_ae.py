"""The ``ae`` family: fitted per-class latent priors, saved as buffers; contractive penalty."""

import pytest
import torch
from accelerate import Accelerator
from safetensors import safe_open

from augmentgen.errors import ConfigError
from augmentgen.hub import load_generator
from augmentgen.models import build_config, build_generator, step_class
from augmentgen.models.regularizers import jacobian_frobenius_norm
from augmentgen.training import TrainingConfig
from augmentgen.training.trainer import Trainer
from tests.conftest import make_images

TINY = {"num_classes": 3, "encoder_width": 8, "decoder_width": 8, "latent_dim": 8}


def test_fit_prior_recovers_per_class_gaussians_and_sampling_follows_them():
    generator = build_generator(build_config("ae", **{**TINY, "latent_dim": 2}, prior_shrinkage=0.0))
    g = torch.Generator().manual_seed(0)
    mean = torch.tensor([[0.0, 0.0], [5.0, -5.0], [-3.0, 2.0]])
    tril = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [1.0, 0.5]], [[0.3, 0.0], [0.0, 0.3]]])
    labels = torch.arange(3).repeat_interleave(4000)
    codes = mean[labels] + torch.einsum("nij,nj->ni", tril[labels], torch.randn(len(labels), 2, generator=g))
    generator.fit_prior(codes, labels)
    torch.testing.assert_close(generator.prior_mean, mean, atol=0.1, rtol=0)
    cov = generator.prior_scale_tril @ generator.prior_scale_tril.transpose(1, 2)
    torch.testing.assert_close(cov, tril @ tril.transpose(1, 2), atol=0.15, rtol=0.05)
    drawn = generator.prior_code(torch.randn(len(labels), 2, generator=g), labels)
    for c in range(3):
        torch.testing.assert_close(drawn[labels == c].mean(0), mean[c], atol=0.1, rtol=0)
    # vary perturbs at the class's own scale: std of each coordinate.
    torch.testing.assert_close(generator.code_scale(torch.tensor([1]))[0],
                               cov[1].diagonal().sqrt(), rtol=1e-5, atol=1e-5)


def test_a_class_without_codes_keeps_a_unit_gaussian():
    generator = build_generator(build_config("ae", **TINY))
    generator.fit_prior(torch.randn(10, 8) + 3, torch.tensor([0] * 5 + [1] * 5))
    assert torch.equal(generator.prior_scale_tril[2], torch.eye(8))
    assert torch.isfinite(generator.prior_scale_tril).all()


def test_training_fits_the_prior_into_the_saved_weights(tmp_path):
    data = make_images(n_per_class=8, num_classes=3)
    trainer = Trainer(build_config("ae", **TINY),
                      TrainingConfig(steps=4, batch_size=12, checkpoint_every=0, sample_every=0), tmp_path)
    generator = trainer.fit(data)
    assert not torch.equal(generator.prior_mean, torch.zeros(3, 8))  # finish() ran on the EMA model
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        assert {"prior_mean", "prior_scale_tril"} <= set(f.keys())
        torch.testing.assert_close(f.get_tensor("prior_mean"), generator.prior_mean.cpu())
    loaded = load_generator(tmp_path)
    assert torch.equal(loaded.prior_mean, generator.prior_mean)
    assert torch.equal(loaded.prior_scale_tril, generator.prior_scale_tril)
    # The fitted means are the class means of the (EMA) encoder's codes of that data.
    with torch.no_grad():
        codes = loaded.eval().encode(data.to_float(), data.labels)[0]
    class_means = torch.stack([codes[data.labels == c].mean(0) for c in range(3)])
    # finish() saw the drop_last batches only, so allow a little slack.
    assert (loaded.prior_mean - class_means).norm(dim=1).max() < 0.5 * class_means.norm(dim=1).max() + 1e-3


def test_contractive_weight_lowers_the_encoders_jacobian_norm():
    data = make_images(n_per_class=6, num_classes=3)
    images, labels = data.to_float(), data.labels

    def train(weight):
        torch.manual_seed(0)
        generator = build_generator(build_config("ae", **TINY, contractive_weight=weight))
        step = step_class("ae")(generator, Accelerator(cpu=True))
        step.prepare()
        for _ in range(15):
            step(images, labels)
        encoder = step.plain_generator.encoder
        return jacobian_frobenius_norm(lambda x: encoder(x, labels)[0], images).mean()

    plain, contractive = train(0.0), train(1.0)
    assert contractive < 0.7 * plain, (float(plain), float(contractive))


def test_config_validation():
    with pytest.raises(ConfigError):
        build_config("ae", prior_shrinkage=1.5)
    with pytest.raises(ConfigError):
        build_config("ae", contractive_weight=-1.0)
    with pytest.raises(ConfigError):
        build_config("ae", weight_penalty="l3")
