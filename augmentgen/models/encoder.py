"""Pieces shared by the encoder-based families (``aae``, ``vae``, ``aegan``, ``ae``).

- :class:`EncoderFamilyConfig`: the fields every encoder family has (widths, the contractive
  and weight penalties).
- :class:`ConditionalEncoder`: q(z | x, y), a conv stack plus a class embedding; without batch
  norm, so each image's code depends on that image only (its Jacobian is per-sample, which the
  contractive penalty and :meth:`EncoderGenerator.vary` rely on).
- :class:`EncoderGenerator`: a :class:`ConditionalGenerator` holding encoder and decoder, with
  ``encode`` / ``decode`` / ``vary``. Because both halves live in the saved module, ``vary``
  works on a generator loaded from disk.
- :class:`AutoencoderStep`: the shared half of their training steps (the autoencoder's
  optimizer, the forward with the contractive penalty's input gradient, the update).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple

import torch
from torch import nn

from .._images import to_signed_unit
from .._labels import check_one_label_per_image
from ..errors import ConfigError, DataError
from .base import ConditionalGenerator, GeneratorConfig, check_batch_and_rng, check_vary_strength
from .blocks import ConditionalDecoder, ConvEncoder
from .regularizers import encoder_penalties
from .step import Blocks, TrainingStep


@dataclasses.dataclass
class EncoderFamilyConfig(GeneratorConfig):
    """Fields shared by the encoder-based families.

    Args:
        latent_dim (int, defaults to 16): size of the latent code. Small codes keep the prior
            easy to match with a few hundred images.
        encoder_width (int, defaults to 32): channels of the encoder's first conv; later convs
            double it.
        decoder_width (int, defaults to 32): channels of the decoder's last block; earlier blocks
            double it.
        learning_rate (float, defaults to 1e-3): Adam learning rate of every optimizer.
        betas (tuple[float, float], defaults to (0.5, 0.999)): Adam betas.
        reconstruction_loss (str, defaults to ``"mse"``): ``"mse"`` or ``"bce"`` (pixels mapped
            to [0, 1]).
        contractive_weight (float, defaults to 0.0): weight λ of the contractive penalty
            λ‖∂z/∂x‖²_F (Rifai et al. 2011) on the encoder's code, estimated with random
            vector-Jacobian products (Hutchinson), never the full Jacobian. 0 disables it.
        contractive_projections (int, defaults to 1): random projections per step of that
            estimate; more lowers its variance at one extra backward each.
        weight_penalty (str, defaults to ``"none"``): ``"l1"`` or ``"l2"`` penalty on the
            encoder's weights (the simpler alternative to the contractive penalty).
        weight_penalty_weight (float, defaults to 1e-5): weight of that penalty.
    """

    latent_dim: int = 16
    encoder_width: int = 32
    decoder_width: int = 32
    learning_rate: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    reconstruction_loss: Literal["mse", "bce"] = "mse"
    contractive_weight: float = 0.0
    contractive_projections: int = 1
    weight_penalty: Literal["none", "l1", "l2"] = "none"
    weight_penalty_weight: float = 1e-5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.encoder_width < 4 or self.decoder_width < 4:
            raise ConfigError("encoder_width and decoder_width must be at least 4")
        if self.contractive_weight < 0 or self.weight_penalty_weight < 0:
            raise ConfigError("contractive_weight and weight_penalty_weight must be >= 0")
        if self.contractive_projections < 1:
            raise ConfigError(f"contractive_projections must be >= 1, got {self.contractive_projections}")


class ConditionalEncoder(nn.Module):
    """q(z | x, y): conv features of the image concatenated with a class embedding.

    ``forward`` returns ``(mean (B, latent_dim), logvar (B, latent_dim) or None)``; the log
    variance exists only when ``variational=True``.
    """

    def __init__(self, config: EncoderFamilyConfig, *, variational: bool = False, embed_dim: int = 32):
        super().__init__()
        self.variational = variational
        self.latent_dim = config.latent_dim
        # No batch norm: a code must depend on its own image only (per-sample Jacobian).
        self.features = ConvEncoder(config.in_channels, config.image_size, config.encoder_width,
                                    norm=False)
        self.embed = nn.Embedding(config.num_classes, embed_dim)
        out = config.latent_dim * (2 if variational else 1)
        self.head = nn.Linear(self.features.features + embed_dim, out)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = torch.cat([self.features(images), self.embed(labels)], dim=1)  # (b, features + embed)
        out = self.head(h)  # (b, latent) or (b, 2 * latent)
        if not self.variational:
            return out, None
        mean, logvar = out.chunk(2, dim=1)
        # Clamped so exp(logvar) can neither overflow nor vanish early in training.
        return mean, logvar.clamp(-10.0, 10.0)


class AutoencoderOutput(NamedTuple):
    """What an encoder family's ``forward`` returns (one forward per backward under DDP)."""

    reconstruction: torch.Tensor  # (b, c, h, w) decoded from ``code``
    mean: torch.Tensor  # (b, latent) the encoder's code (posterior mean for variational ones)
    logvar: torch.Tensor | None  # (b, latent) posterior log variance, variational families only
    prior_images: torch.Tensor | None  # (m, c, h, w) decoded ``prior_noise``, when given


class EncoderGenerator(ConditionalGenerator):
    """Base of the encoder families: encoder + conditional decoder in one saved module.

    Subclasses set ``variational`` and may override :meth:`sample_noise`, :meth:`prior_code`
    (noise -> code, per label) and :meth:`code_scale` (the latent scale ``vary`` perturbs at).
    """

    variational: bool = False

    #: Codes of a prior centred at 0 with Gaussian shells (vae, aegan, the aae's default prior):
    #: interpolating between two codes then follows the sphere (slerp) so that the mix keeps
    #: the norm the decoder saw in training. Families with other priors set it False.
    centred_gaussian_prior: bool = False

    def __init__(self, config: EncoderFamilyConfig):
        super().__init__(config)
        self.encoder = ConditionalEncoder(config, variational=self.variational)
        self.decoder = ConditionalDecoder(
            config.latent_dim, config.num_classes, config.in_channels, config.image_size,
            config.decoder_width,
        )

    # ------------------------------------------------------------------ halves
    def encode(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean, logvar or None) of the code of ``images`` (float in [-1, 1]), with autograd."""
        return self.encoder(images, labels)

    def decode(self, code: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] decoded from latent codes ``code`` (B, latent_dim), with autograd."""
        return self.decoder(code, labels)

    def prior_code(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Map ``sample_noise`` output to latent codes for ``labels``; identity by default."""
        return noise

    def code_scale(self, labels: torch.Tensor) -> torch.Tensor:
        """Per-dimension scale of the codes of ``labels`` (B, latent_dim); the prior's, here 1."""
        return torch.ones(len(labels), self.config.latent_dim, device=labels.device)

    def generate(self, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.decode(self.prior_code(noise, labels), labels)

    def forward(self, images: torch.Tensor, labels: torch.Tensor,
                prior_noise: torch.Tensor | None = None, code_noise: float = 0.0) -> AutoencoderOutput:
        """Encode and reconstruct ``images``; also decode ``prior_noise`` in the same pass.

        Both decodes share one decoder call, so a training step that needs reconstructions
        and prior samples makes one (DDP) forward for its one backward. ``code_noise`` adds
        Gaussian noise of that std to the decoded code in training mode.
        """
        mean, logvar = self.encode(images, labels)
        code = mean
        if logvar is not None and self.training:
            code = mean + torch.randn_like(mean) * (0.5 * logvar).exp()  # reparameterisation
        if code_noise > 0 and self.training:
            code = code + code_noise * torch.randn_like(code)
        if prior_noise is None:
            return AutoencoderOutput(self.decode(code, labels), mean, logvar, None)
        # Prior samples are decoded with the batch's own labels.
        both = self.decode(torch.cat([code, self.prior_code(prior_noise, labels)]), labels.repeat(2))
        b = images.shape[0]
        return AutoencoderOutput(both[:b], mean, logvar, both[b:])

    # ------------------------------------------------------------------ vary
    @torch.inference_mode()
    def vary(self, images: torch.Tensor, labels: torch.Tensor | list[int], strength: float = 0.5,
             *, generator: torch.Generator | None = None, batch_size: int = 1024) -> torch.Tensor:
        """Variations of real ``images``: encode, perturb the code, decode with the same label.

        Within-class variation anchored on a real example (the DAGAN idea), for when there are
        very few images per class.

        Args:
            images: (N, C, H, W) float in [-1, 1] (or uint8 in [0, 255]), shaped like
                ``image_shape``, on any device.
            labels: (N,) class index of each image.
            strength: size of the perturbation in units of the code's scale (the prior's, or the
                class's fitted spread for ``ae``). 0 gives the reconstruction.
            generator: a ``torch.Generator`` on the model's device for reproducible variations.
            batch_size: the most images encoded and decoded per pass.

        Returns:
            A float tensor (N, C, H, W) in [-1, 1] on the model's device.
        """
        images = torch.as_tensor(images)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise DataError(
                f"vary expects images shaped (N, {', '.join(map(str, self.image_shape))}), got "
                f"{tuple(images.shape)}"
            )
        labels = self.check_labels(labels)
        check_one_label_per_image(images, labels, what="vary")
        strength = check_vary_strength(self, strength)
        check_batch_and_rng(batch_size, generator)
        images = to_signed_unit(images).to(self.device)
        was_training = self.training
        self.eval()
        try:
            chunks = []
            for x, y in zip(images.split(batch_size), labels.split(batch_size)):
                mean, _ = self.encode(x, y)
                noise = torch.randn(mean.shape, device=mean.device, generator=generator)
                chunks.append(self.decode(mean + strength * self.code_scale(y) * noise, y))
        finally:
            self.train(was_training)
        if not chunks:
            return torch.empty(0, *self.image_shape, device=self.device)
        return torch.cat(chunks)


class AutoencoderStep(TrainingStep):
    """Shared parts of the encoder families' steps: the autoencoder's optimizer, the forward
    with the contractive penalty's input gradient switched on, and the penalties."""

    @classmethod
    def check_training_options(cls, config: EncoderFamilyConfig, training_config) -> None:
        """``compile`` cannot train the contractive penalty (a double backward)."""
        if training_config.compile and config.contractive_weight > 0:
            raise ConfigError(
                "compile=True cannot train with contractive_weight > 0: the contractive penalty "
                "differentiates the generator's encoder twice, and torch.compile does not support a "
                "double backward; set compile=False or contractive_weight=0"
            )

    @classmethod
    def freezable_blocks(cls, generator: EncoderGenerator) -> Blocks:
        """The encoder's conv stack (``encoder.features.net``: 3 blocks at 28 and 32 px, 4 at 64
        px), each a ``Conv2d`` with the layers after it up to the next one: the transferred
        network that reads real images, the part FreezeD keeps fixed in a discriminator."""
        net = generator.encoder.features.net
        blocks: Blocks = []
        for index, layer in enumerate(net):
            if isinstance(layer, nn.Conv2d):
                blocks.append([])
            if blocks:
                blocks[-1] += [(f"encoder.features.net.{index}.{n}", p) for n, p in layer.named_parameters()]
        return blocks

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
