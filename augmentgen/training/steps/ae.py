"""Training step of the ``ae`` family, and the base of the other encoder families' steps."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ...models.base import ConditionalGenerator
from ..regularizers import encoder_penalties, reconstruction_loss
from ..step import TrainingStep, register_step


class AutoencoderStep(TrainingStep):
    """Shared parts of the encoder families' steps: the autoencoder's optimizer, the forward
    with the contractive penalty's input gradient switched on, and the penalties."""

    def prepare(self) -> None:
        c = self.config
        opt = torch.optim.Adam(self.generator.parameters(), lr=c.learning_rate, betas=tuple(c.betas))
        self.generator, self.ae_opt = self.accelerator.prepare(self.generator, opt)
        self.plain_generator = self.accelerator.unwrap_model(self.generator)

    def autoencode(self, real_images: torch.Tensor, labels: torch.Tensor, **kwargs):
        """One (DDP) forward; returns (inputs, output, penalty terms)."""
        # The contractive penalty differentiates the code w.r.t. the input images.
        inputs = real_images.detach().requires_grad_(self.config.contractive_weight > 0)
        out = self.generator(inputs, labels, **kwargs)
        return inputs, out, encoder_penalties(self.config, out, inputs, self.plain_generator.encoder)

    def update(self, loss: torch.Tensor) -> None:
        self.ae_opt.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        self.ae_opt.step()


@register_step("ae")
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
            images = images.to(generator.device)
            images = images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images.float()
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
