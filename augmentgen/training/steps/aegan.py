"""Training step of the ``aegan`` family (conditional VAE-GAN)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...models.gan import ProjectionDiscriminator
from ..diffaugment import diff_augment
from ..losses import ADVERSARIAL_LOSSES
from ..regularizers import gaussian_kl, reconstruction_loss
from ..step import register_step
from .ae import AutoencoderStep


@register_step("aegan")
class AEGANStep(AutoencoderStep):
    """Discriminator on real vs. (reconstructions + prior samples), then the autoencoder on
    λ_rec · rec + β · KL + λ_adv · (adversarial + class loss), through the frozen, unwrapped
    discriminator (one DDP forward per backward)."""

    def prepare(self) -> None:
        super().prepare()
        c = self.config
        # The cgan family's discriminator reads only in_channels, image_size,
        # discriminator_width and num_classes, which this config has too.
        self.discriminator = ProjectionDiscriminator(c)
        d_opt = torch.optim.Adam(self.discriminator.parameters(),
                                 lr=c.learning_rate * c.discriminator_lr_scale, betas=tuple(c.betas))
        self.discriminator, self.d_opt = self.accelerator.prepare(self.discriminator, d_opt)
        self.plain_discriminator = self.accelerator.unwrap_model(self.discriminator)
        self.d_loss_fn, self.g_loss_fn = ADVERSARIAL_LOSSES[c.loss]

    def __call__(self, real_images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        c, g = self.config, self.plain_generator
        b = real_images.shape[0]
        policy = c.diffaugment

        with torch.no_grad():
            fake = g(real_images, labels, prior_noise=g.sample_noise(b))
        both = diff_augment(torch.cat([real_images, fake.reconstruction, fake.prior_images]), policy)
        logits, class_logits = self.discriminator(both, labels.repeat(3))
        d_adv = self.d_loss_fn(logits[:b], logits[b:])
        d_cls = F.cross_entropy(class_logits[:b], labels)
        self.d_opt.zero_grad(set_to_none=True)
        self.accelerator.backward(d_adv + c.class_loss_weight * d_cls)
        self.d_opt.step()

        self.plain_discriminator.requires_grad_(False)
        _, out, penalties = self.autoencode(real_images, labels, prior_noise=g.sample_noise(b))
        rec = reconstruction_loss(out.reconstruction, real_images, c.reconstruction_loss)
        kl = gaussian_kl(out.mean, out.logvar) / c.latent_dim
        fakes = diff_augment(torch.cat([out.reconstruction, out.prior_images]), policy)
        fake_logits, fake_class = self.plain_discriminator(fakes, labels.repeat(2))
        g_adv = self.g_loss_fn(fake_logits)
        g_cls = F.cross_entropy(fake_class, labels.repeat(2))
        loss = (c.reconstruction_weight * rec + c.kl_weight * kl
                + c.adversarial_weight * (g_adv + c.class_loss_weight * g_cls))
        self.update(loss + sum(penalties.values()))
        self.plain_discriminator.requires_grad_(True)
        return {"rec_loss": rec.detach(), "kl_loss": kl.detach(), "d_loss": d_adv.detach(),
                "g_loss": g_adv.detach(), "g_class_loss": g_cls.detach(),
                **{k: v.detach() for k, v in penalties.items()}}
