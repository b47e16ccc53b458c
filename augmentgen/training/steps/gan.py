"""Training step of the ``cgan`` family (and its ``wgan-gp`` preset)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...models.gan import ProjectionDiscriminator
from ..diffaugment import diff_augment
from ..losses import ADVERSARIAL_LOSSES, gradient_penalty
from ..step import TrainingStep, register_step


@register_step("cgan")
class GANStep(TrainingStep):
    """Alternating discriminator / generator updates with DiffAugment on both real and fake.

    The auxiliary class head on the discriminator is trained on real images only; the generator
    is asked to make images it classifies as their label (AC-GAN's generator term), which is
    what keeps samples class-consistent on a few hundred training images.
    """

    def prepare(self) -> None:
        c = self.config
        self.discriminator = ProjectionDiscriminator(c)
        betas = tuple(c.betas)
        g_opt = torch.optim.Adam(self.generator.parameters(), lr=c.learning_rate, betas=betas)
        d_opt = torch.optim.Adam(self.discriminator.parameters(),
                                 lr=c.learning_rate * c.discriminator_lr_scale, betas=betas)
        (self.generator, self.discriminator, self.g_opt, self.d_opt) = self.accelerator.prepare(
            self.generator, self.discriminator, g_opt, d_opt
        )
        self.plain_discriminator = self.accelerator.unwrap_model(self.discriminator)
        self.d_loss_fn, self.g_loss_fn = ADVERSARIAL_LOSSES[c.loss]

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.latent_dim, device=self.accelerator.device)

    def __call__(self, real_images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        c, acc = self.config, self.accelerator
        policy = c.diffaugment
        b = real_images.shape[0]

        # Discriminator: one forward on real and fake together (a single DDP forward per
        # backward), the generator run without autograd.
        for _ in range(c.discriminator_steps):
            with torch.no_grad():
                fake_images = self.generator(self._noise(b), labels)
            both = diff_augment(torch.cat([real_images, fake_images]), policy)
            logits, class_logits = self.discriminator(both, torch.cat([labels, labels]))
            real_logits, fake_logits = logits[:b], logits[b:]
            d_adv = self.d_loss_fn(real_logits, fake_logits)
            d_cls = F.cross_entropy(class_logits[:b], labels)
            d_loss = d_adv + c.class_loss_weight * d_cls
            if c.loss == "wgan-gp":
                # The plain module shares the DDP module's parameters, so these gradients are
                # summed into the same backward and all-reduced with the rest.
                d_loss = d_loss + c.gradient_penalty * gradient_penalty(
                    self.plain_discriminator, real_images, fake_images, labels
                ) + 1e-3 * real_logits.square().mean()  # drift term keeps critic values bounded
            self.d_opt.zero_grad(set_to_none=True)
            acc.backward(d_loss)
            self.d_opt.step()

        # Generator: through the plain (un-DDP) discriminator with its parameters frozen, so
        # DDP never waits for discriminator gradients and none leak into its next update.
        self.plain_discriminator.requires_grad_(False)
        fake_images = self.generator(self._noise(b), labels)
        fake_logits, fake_class = self.plain_discriminator(diff_augment(fake_images, policy), labels)
        g_adv = self.g_loss_fn(fake_logits)
        g_cls = F.cross_entropy(fake_class, labels)
        g_loss = g_adv + c.class_loss_weight * g_cls
        self.g_opt.zero_grad(set_to_none=True)
        acc.backward(g_loss)
        self.g_opt.step()
        self.plain_discriminator.requires_grad_(True)

        return {"d_loss": d_adv.detach(), "g_loss": g_adv.detach(),
                "d_class_loss": d_cls.detach(), "g_class_loss": g_cls.detach()}
