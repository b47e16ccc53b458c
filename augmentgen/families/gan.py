"""Conditional GAN: a class-conditional generator and a projection discriminator.

The generator conditions every upsampling block on the class through conditional batch norm
(de Vries et al. 2017) and concatenates a class embedding to the noise. The discriminator uses
spectral norm (Miyato et al. 2018) and projection conditioning (Miyato & Koyama 2018), with an
optional auxiliary classifier head (Odena et al. 2017) that makes samples more class-consistent
when there are only a few hundred training images.

The module holds the family whole: :class:`CGANConfig`, :class:`CGANGenerator`, the training
step :class:`GANStep` (and the LeCam regulariser's state), and the ``wgan-gp`` preset.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..models.base import ConditionalGenerator, GeneratorConfig
from ..models.blocks import ConditionalDecoder, ProjectionDiscriminator
from ..models.diffaugment import check_policy, diff_augment
from ..models.losses import (
    ADVERSARIAL_LOSSES,
    gradient_penalty,
    lecam_regularizer,
    mode_seeking_loss,
    r1_penalty,
)
from ..models.registry import register_family, register_preset
from ..models.step import TrainingStep


@dataclasses.dataclass
class CGANConfig(GeneratorConfig):
    """Config of the ``cgan`` family.

    Args:
        generator_width (int, defaults to 32): channels of the generator's last block; earlier
            blocks double it.
        discriminator_width (int, defaults to 32): channels of the discriminator's first conv.
        loss (str, defaults to ``"hinge"``): ``"hinge"``, ``"bce"`` (non-saturating) or
            ``"wgan-gp"``.
        gradient_penalty (float, defaults to 10.0): weight of the WGAN-GP penalty.
        discriminator_steps (int, defaults to 1): discriminator updates per generator update.
        class_loss_weight (float, defaults to 0.5): weight of the auxiliary classification loss
            on the discriminator's features (0 disables the head's effect).
        diffaugment (str, defaults to ``"translation,cutout"``): DiffAugment policy applied to real
            and fake images (``"color"``, ``"translation"``, ``"cutout"``, comma separated; ``""``
            for none).
        betas (tuple[float, float], defaults to (0.0, 0.9)): Adam betas of both optimizers.
        discriminator_lr_scale (float, defaults to 2.0): discriminator lr / generator lr (TTUR).
        lecam_weight (float, defaults to 0.0): weight of the LeCam regulariser on the discriminator
            (Tseng et al. 2021, "Regularizing Generative Adversarial Networks under Limited
            Data"): EMAs (decay 0.99) of the mean realness on real and on fake images are kept,
            and ``mean((D(real) - ema_fake)^2) + mean((D(fake) - ema_real)^2)`` is added to the
            discriminator loss, which keeps the discriminator from over-fitting a small training
            set. The EMAs are saved in checkpoints. 0 disables it (the paper's BigGAN runs use 0.3).
        diversity_weight (float, defaults to 0.0): weight of the mode-seeking term on the
            generator (Mao et al. 2019, "Mode Seeking Generative Adversarial Networks for Diverse
            Image Synthesis"; Yang et al. 2019, "Diversity-Sensitive Conditional Generative
            Adversarial Networks"): each generator update also generates a second image per label
            from fresh noise and adds ``1 / (mean|G(z1) - G(z2)| / mean|z1 - z2| + 1e-5)``, which
            penalises samples of a class that stay alike when the noise changes. Both sets also
            get the adversarial and class losses. 0 disables it (and the second set is not
            generated).
        r1_weight (float, defaults to 0.0): gamma of the R1 gradient penalty on real images
            (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?"):
            ``gamma / 2 * mean ||grad_x D(x)||^2`` on the (augmented) real images of the
            discriminator update. 0 disables it; typical values are 0.1 to 10.
    """

    latent_dim: int = 64
    generator_width: int = 32
    discriminator_width: int = 32
    loss: Literal["hinge", "bce", "wgan-gp"] = "hinge"
    gradient_penalty: float = 10.0
    discriminator_steps: int = 1
    class_loss_weight: float = 0.5
    diffaugment: str = "translation,cutout"
    betas: tuple[float, float] = (0.0, 0.9)
    discriminator_lr_scale: float = 2.0
    lecam_weight: float = 0.0
    diversity_weight: float = 0.0
    r1_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.generator_width < 4 or self.discriminator_width < 4:
            raise ConfigError("generator_width and discriminator_width must be at least 4")
        if self.discriminator_steps < 1:
            raise ConfigError(f"discriminator_steps must be >= 1, got {self.discriminator_steps}")
        if self.class_loss_weight < 0 or self.gradient_penalty < 0:
            raise ConfigError("class_loss_weight and gradient_penalty must be >= 0")
        check_policy(self.diffaugment)
        for name, what in (("lecam_weight", "LeCam regularisation"),
                           ("diversity_weight", "the mode-seeking diversity term"),
                           ("r1_weight", "the R1 penalty")):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"{name} must be a finite number >= 0, got {value!r}; use 0 to disable {what} "
                    "or a positive weight to enable it"
                )


class CGANGenerator(ConditionalGenerator):
    """Conditional GAN (conditional batch norm generator, projection discriminator)."""

    config_class = CGANConfig

    def __init__(self, config: CGANConfig):
        super().__init__(config)
        self.decoder = ConditionalDecoder(
            config.latent_dim, config.num_classes, config.in_channels, config.image_size,
            config.generator_width,
        )

    def generate(self, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.decoder(noise, labels)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.decoder(noise, labels)


class LeCamEMA(nn.Module):
    """The LeCam regulariser's state: EMAs of the discriminator's mean realness on real and fake.

    Buffers (``real``, ``fake``, ``num_updates``) so that they follow the module's device and
    go into checkpoints through ``state_dict``. The first update copies the batch means (no
    pull toward an arbitrary 0 at the start); later ones use ``decay``. Updates stay on the
    device: no host sync per step.
    """

    def __init__(self, decay: float = 0.99):
        super().__init__()
        self.decay = decay
        self.register_buffer("real", torch.zeros(()))
        self.register_buffer("fake", torch.zeros(()))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, real_mean: torch.Tensor, fake_mean: torch.Tensor) -> None:
        keep = (self.num_updates > 0).float() * self.decay  # 0 on the first update
        for ema, value in ((self.real, real_mean), (self.fake, fake_mean)):
            ema.mul_(keep).add_(value.detach().float().reshape(()) * (1.0 - keep))
        self.num_updates.add_(1)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        expected = set(self.state_dict())
        if strict and set(state_dict) != expected:
            raise CheckpointError(
                f"the checkpoint holds {sorted(state_dict)} where the LeCam state {sorted(expected)} "
                "was expected: it was written with another lecam_weight (0 vs > 0); resume with "
                "the model config the run was started with"
            )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


class GANStep(TrainingStep):
    """Alternating discriminator / generator updates with DiffAugment on both real and fake.

    One generator forward per step (``discriminator_steps`` of them with ``discriminator_steps
    > 1``): as in the textbook (PyTorch DCGAN tutorial) loop, the batch of fakes made with
    autograd serves the last discriminator update (detached) and then the generator update
    (through the updated discriminator). Earlier discriminator updates draw their own fakes
    without autograd.

    The auxiliary class head on the discriminator is trained on real images only; the generator
    is asked to make images it classifies as their label (AC-GAN's generator term), which is
    what keeps samples class-consistent on a few hundred training images.

    Optional regularisers for small datasets, each off at weight 0 (and then costing nothing,
    drawing no random numbers): LeCam (``lecam_weight``) and R1 (``r1_weight``) on the
    discriminator, the mode-seeking diversity term (``diversity_weight``) on the generator.
    Their unweighted values are logged as ``d_lecam``, ``d_r1`` and ``g_diversity`` when on.
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
        self.lecam = None
        if c.lecam_weight > 0:
            # Registered for checkpointing rather than passed through accelerator.prepare: a
            # module without parameters cannot be DDP-wrapped. Only when on, so checkpoints of
            # runs without LeCam keep their layout. The EMAs are updated from means averaged
            # over processes, so every process holds the same values (those saved).
            self.lecam = LeCamEMA(decay=0.99).to(self.accelerator.device)
            self.accelerator.register_for_checkpointing(self.lecam)

    def compilable_modules(self) -> dict[str, nn.Module]:
        """The generator and the discriminator; ``plain_discriminator`` (the generator update,
        and WGAN-GP's and R1's double backward) stays eager."""
        return {"generator": self.generator, "discriminator": self.discriminator}

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.latent_dim, device=self.accelerator.device)

    def __call__(self, real_images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        b = real_images.shape[0]
        extra: dict[str, torch.Tensor] = {}
        # With discriminator_steps > 1 (WGAN-GP's critic loop), the updates before the last get
        # fresh noise each, without autograd: reusing one batch of fakes for several critic
        # updates would fit the critic to those particular samples. Only the last shares the
        # generator update's fakes, which is exact: the generator's weights do not change
        # between the two, so that batch is a sample of the current generator for both.
        for _ in range(c.discriminator_steps - 1):
            with torch.no_grad():
                fake_images = self.generator(self._noise(b), labels)
            self._discriminator_update(real_images, fake_images, labels, extra)

        noise, g_labels = self._noise(b), labels
        if c.diversity_weight > 0:
            # A second image per label from fresh noise, in the same (single DDP) forward.
            noise = torch.cat([noise, self._noise(b)])
            g_labels = torch.cat([labels, labels])
        fake_images = self.generator(noise, g_labels)
        # Detached: the discriminator's loss must not reach the generator (the DCGAN tutorial's
        # fake.detach()); with the diversity term on, it sees the first set, b images as before.
        d_adv, d_cls = self._discriminator_update(real_images, fake_images[:b].detach(), labels, extra)
        g_adv, g_cls = self._generator_update(fake_images, noise, g_labels, extra)
        return {"d_loss": d_adv.detach(), "g_loss": g_adv.detach(),
                "d_class_loss": d_cls.detach(), "g_class_loss": g_cls.detach(), **extra}

    def _discriminator_update(self, real_images: torch.Tensor, fake_images: torch.Tensor, labels: torch.Tensor,
                              extra: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """One discriminator update on real and (detached) fake images; returns (d_adv, d_cls).

        One forward on real and fake together: a single DDP forward per backward.
        """
        c, acc = self.config, self.accelerator
        b = real_images.shape[0]
        both = diff_augment(torch.cat([real_images, fake_images]), c.diffaugment)
        logits, class_logits = self.discriminator(both, torch.cat([labels, labels]))
        real_logits, fake_logits = logits[:b], logits[b:]
        d_adv = self.d_loss_fn(real_logits, fake_logits)
        d_cls = F.cross_entropy(class_logits[:b], labels)
        d_loss = d_adv + c.class_loss_weight * d_cls
        if c.loss == "wgan-gp":
            # The plain module shares the DDP module's parameters, so these gradients are
            # summed into the same backward and all-reduced with the rest. It stays eager under
            # TrainingConfig.compile: compiled graphs do not support the double backward.
            d_loss = d_loss + c.gradient_penalty * gradient_penalty(
                self.plain_discriminator, real_images, fake_images, labels
            ) + 1e-3 * real_logits.square().mean()  # drift term keeps critic values bounded
        if self.lecam is not None:
            means = torch.stack([real_logits.mean(), fake_logits.mean()]).detach().float()
            means = acc.reduce(means, reduction="mean")  # a copy when single-process
            self.lecam.update(means[0], means[1])
            d_lecam = lecam_regularizer(real_logits, fake_logits, self.lecam.real, self.lecam.fake)
            d_loss = d_loss + c.lecam_weight * d_lecam
            extra["d_lecam"] = d_lecam.detach()
        if c.r1_weight > 0:
            # On the augmented reals the discriminator just saw, through the plain module
            # (double backward through a DDP forward is not supported), like WGAN-GP above.
            d_r1 = r1_penalty(self.plain_discriminator, both[:b], labels)
            d_loss = d_loss + (c.r1_weight / 2) * d_r1
            extra["d_r1"] = d_r1.detach()
        self.d_opt.zero_grad(set_to_none=True)
        acc.backward(d_loss)
        self.d_opt.step()
        return d_adv, d_cls

    def _generator_update(self, fake_images: torch.Tensor, noise: torch.Tensor, labels: torch.Tensor,
                          extra: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator update on its fakes through the just-updated discriminator; returns (g_adv, g_cls).

        Through the plain (un-DDP) discriminator with its parameters frozen, so DDP never waits
        for discriminator gradients, none leak into its next update, and none are computed.
        """
        c = self.config
        self.plain_discriminator.requires_grad_(False)
        fake_logits, fake_class = self.plain_discriminator(diff_augment(fake_images, c.diffaugment), labels)
        g_adv = self.g_loss_fn(fake_logits)
        g_cls = F.cross_entropy(fake_class, labels)
        g_loss = g_adv + c.class_loss_weight * g_cls
        if c.diversity_weight > 0:
            b = fake_images.shape[0] // 2
            g_div = mode_seeking_loss(fake_images[:b], fake_images[b:], noise[:b], noise[b:])
            g_loss = g_loss + c.diversity_weight * g_div
            extra["g_diversity"] = g_div.detach()
        self.g_opt.zero_grad(set_to_none=True)
        self.accelerator.backward(g_loss)
        self.g_opt.step()
        self.plain_discriminator.requires_grad_(True)
        return g_adv, g_cls


register_family("cgan", CGANGenerator, step=GANStep)
register_preset(
    "wgan-gp", family="cgan", description="Conditional GAN trained with the WGAN-GP loss",
    loss="wgan-gp", discriminator_steps=2, betas=[0.0, 0.9], class_loss_weight=0.5,
)
