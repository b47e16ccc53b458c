"""Plain conditional autoencoder used as a generator.

Trained on reconstruction alone; after training, the step's ``finish`` fits a full-covariance
Gaussian per class to the latent codes of the training images and stores it in buffers
(``prior_mean`` (K, d) and ``prior_scale_tril`` (K, d, d)), so it is saved in
``model.safetensors`` and loaded strictly with the weights. Sampling draws from the class's
Gaussian and decodes with the label.

The module holds the family whole: :class:`AEConfig`, :class:`AEGenerator` and its training
step :class:`AEStep`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch

from .._images import to_signed_unit
from ..errors import ConfigError
from ..models.base import ConditionalGenerator
from ..models.encoder import AutoencoderStep, EncoderFamilyConfig, EncoderGenerator
from ..models.registry import register_family
from ..models.regularizers import reconstruction_loss


@dataclasses.dataclass
class AEConfig(EncoderFamilyConfig):
    """Config of the ``ae`` family (fields of :class:`EncoderFamilyConfig` plus the ones below).

    Args:
        prior_shrinkage (float, defaults to 0.1): shrinkage of each class's latent covariance
            towards its diagonal (Ledoit-Wolf style), which keeps it well conditioned when a class
            has few images.
        prior_temperature (float, defaults to 1.0): scale of the sampled deviation from the
            class mean; below 1 trades diversity for fidelity.
        code_noise (float, defaults to 0.05): std of Gaussian noise added to codes during
            training, which makes the decoder smooth around the codes it will be sampled at.
    """

    prior_shrinkage: float = 0.1
    prior_temperature: float = 1.0
    code_noise: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.prior_shrinkage <= 1.0:
            raise ConfigError(f"prior_shrinkage must be in [0, 1], got {self.prior_shrinkage}")
        if self.prior_temperature < 0 or self.code_noise < 0:
            raise ConfigError("prior_temperature and code_noise must be >= 0")


class AEGenerator(EncoderGenerator):
    """Conditional autoencoder with a per-class Gaussian fitted to its latent codes."""

    config_class = AEConfig
    variational = False

    def __init__(self, config: AEConfig):
        super().__init__(config)
        k, d = config.num_classes, config.latent_dim
        # Until fit_prior runs (the training step's finish), every class gets N(0, I).
        self.register_buffer("prior_mean", torch.zeros(k, d))
        self.register_buffer("prior_scale_tril", torch.eye(d).repeat(k, 1, 1))

    def prior_code(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # z = mu_y + T * L_y eps, batched over the labels.
        scaled = torch.einsum("bij,bj->bi", self.prior_scale_tril[labels], noise)
        return self.prior_mean[labels] + self.config.prior_temperature * scaled

    def code_scale(self, labels: torch.Tensor) -> torch.Tensor:
        # Per-dimension standard deviation of the class's fitted Gaussian.
        return self.prior_scale_tril[labels].square().sum(dim=2).sqrt()

    @torch.no_grad()
    def fit_prior(self, codes: torch.Tensor, labels: torch.Tensor) -> None:
        """Fit one Gaussian per class to ``codes`` (N, d) with ``labels`` (N,), all batched.

        Classes with fewer than two codes keep a unit covariance around their mean (or 0).
        """
        k, d = self.num_classes, self.config.latent_dim
        codes = codes.to(self.prior_mean.device, torch.float64)
        onehot = torch.nn.functional.one_hot(labels.to(codes.device), k).to(codes.dtype)  # (n, k)
        counts = onehot.sum(0)  # (k,)
        means = onehot.T @ codes / counts.clamp(min=1)[:, None]  # (k, d)
        centred = codes - means[labels]
        cov = torch.einsum("nk,ni,nj->kij", onehot, centred, centred)
        cov = cov / (counts - 1).clamp(min=1)[:, None, None]  # (k, d, d)
        diag = torch.diag_embed(torch.diagonal(cov, dim1=1, dim2=2))
        s = self.config.prior_shrinkage
        eye = torch.eye(d, dtype=codes.dtype, device=codes.device)
        cov = (1 - s) * cov + s * diag + 1e-5 * eye
        cov = torch.where((counts >= 2)[:, None, None], cov, eye)
        self.prior_mean.copy_(means.float())
        self.prior_scale_tril.copy_(torch.linalg.cholesky(cov).float())


class AEStep(AutoencoderStep):
    """Reconstruction (+ optional contractive / weight penalties); ``finish`` fits the
    per-class latent Gaussians the generator samples from."""

    def __call__(self, real_images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        _, out, penalties = self.autoencode(real_images, labels, code_noise=c.code_noise)
        rec = reconstruction_loss(out.reconstruction, real_images, c.reconstruction_loss)
        self.update(rec + sum(penalties.values()))
        return {"rec_loss": rec.detach(), **{k: v.detach() for k, v in penalties.items()}}

    @torch.no_grad()
    def finish(self, generator: ConditionalGenerator, batches: Iterable) -> None:
        """Encode one pass over the training batches and fit ``generator``'s class priors."""
        was_training = generator.training
        generator.eval()
        codes, labels = [], []
        for images, y in batches:
            images = to_signed_unit(images.to(generator.device))
            y = y.to(generator.device).long()
            codes.append(generator.encode(images, y)[0])
            labels.append(y)
        generator.train(was_training)
        if not codes:
            return
        codes, labels = torch.cat(codes), torch.cat(labels)
        # Every process fits the same prior from everyone's codes.
        codes, labels = self.accelerator.gather_for_metrics((codes, labels))
        generator.fit_prior(codes, labels)


register_family("ae", AEGenerator, step=AEStep)
