"""Training step of the ``aae`` family (supervised adversarial autoencoder)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..losses import bce_discriminator_loss, bce_generator_loss
from ..regularizers import reconstruction_loss
from ..step import register_step
from .ae import AutoencoderStep


class LatentDiscriminator(nn.Module):
    """MLP telling prior samples (real) from encoded codes (fake): (B, latent) -> logits (B,).

    With ``num_classes`` it also sees each code's class (one-hot), so it matches q(z | y) to the
    prior for every class rather than only the aggregate q(z): otherwise the code is free to
    carry the class and the decoder learns to ignore the label it is given.
    """

    def __init__(self, latent_dim: int, hidden: int, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Linear(latent_dim + num_classes, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            codes = torch.cat([codes, F.one_hot(labels, self.num_classes).to(codes.dtype)], dim=1)
        return self.net(codes).squeeze(1)


@register_step("aae")
class AAEStep(AutoencoderStep):
    """Makhzani et al.'s three phases on every batch.

    1. the latent discriminator learns prior samples vs. codes (BCE), codes made without autograd;
    2. reconstruction (MSE or BCE) and 3. the encoder's "fool the discriminator" loss, summed
       into one backward through the frozen, unwrapped discriminator: one DDP forward per
       backward, and the same gradients as taking the two phases on the same codes.
    """

    def prepare(self) -> None:
        super().prepare()
        c = self.config
        self.discriminator = LatentDiscriminator(
            c.latent_dim, c.discriminator_hidden, c.num_classes if c.class_conditional_discriminator else 0)
        d_opt = torch.optim.Adam(self.discriminator.parameters(),
                                 lr=c.learning_rate * c.discriminator_lr_scale, betas=tuple(c.betas))
        self.discriminator, self.d_opt = self.accelerator.prepare(self.discriminator, d_opt)
        self.plain_discriminator = self.accelerator.unwrap_model(self.discriminator)

    def __call__(self, real_images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        c, g = self.config, self.plain_generator
        b = real_images.shape[0]

        # Phase 1: the discriminator, on prior samples and current codes in one forward.
        with torch.no_grad():
            codes = g.encode(real_images, labels)[0]
            prior = g.sample_noise(b)
        logits = self.discriminator(torch.cat([prior, codes]), torch.cat([labels, labels]))
        d_loss = bce_discriminator_loss(logits[:b], logits[b:])
        self.d_opt.zero_grad(set_to_none=True)
        self.accelerator.backward(d_loss)
        self.d_opt.step()

        # Phases 2 + 3: reconstruction and encoder regularisation, discriminator frozen.
        self.plain_discriminator.requires_grad_(False)
        _, out, penalties = self.autoencode(real_images, labels)
        rec = reconstruction_loss(out.reconstruction, real_images, c.reconstruction_loss)
        adv = bce_generator_loss(self.plain_discriminator(out.mean, labels))
        self.update(rec + c.adversarial_weight * adv + sum(penalties.values()))
        self.plain_discriminator.requires_grad_(True)
        return {"rec_loss": rec.detach(), "d_loss": d_loss.detach(), "encoder_adv_loss": adv.detach(),
                **{k: v.detach() for k, v in penalties.items()}}
