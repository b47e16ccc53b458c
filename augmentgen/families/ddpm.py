"""Class-conditional diffusion (DDPM, Ho et al. 2020) on ``diffusers``, with classifier-free guidance.

A ``diffusers.UNet2DModel`` predicts the noise (or the velocity, Salimans & Ho 2022) of a noised
image from the timestep and the class; one extra class embedding is the "no class" token that
label dropout trains, so that sampling can use classifier-free guidance (Ho & Salimans 2022).
Training noises images with a ``DDPMScheduler`` (cosine schedule, Nichol & Dhariwal 2021);
sampling runs DPM-Solver++ (Lu et al. 2022, ``DPMSolverMultistepScheduler``) in ~25 steps, with
the conditional and unconditional predictions of a step made in one batched forward.
:meth:`DDPMGenerator.vary` is SDEdit (Meng et al. 2022), the img2img of DA-Fusion (Trabucco et
al. 2023): noise a real image part of the way and denoise it with its class.

The sampler is deterministic given its starting noise, so ``ConditionalGenerator``'s contract
holds as it does for the one-shot families: the initial noise is the "latent" (image-shaped),
``temperature`` scales it, and a seeded ``torch.Generator`` fixes every sample.

``diffusers`` takes seconds to import, so it is imported when a ``ddpm`` model is first built,
not when ``augmentgen`` is: the family is registered without it.

The module holds the family whole: :class:`DDPMConfig`, :class:`DDPMGenerator`, the training
step :class:`DDPMStep`, and the ``ddpm-large`` preset (a GPU-sized UNet).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import numbers
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .._deprecation import renamed_argument
from .._images import to_signed_unit
from .._labels import check_one_label_per_image
from ..errors import ConfigError, DataError
from ..models.base import (
    ConditionalGenerator,
    GeneratorConfig,
    LabelsLike,
    Temperature,
    check_batch_and_rng,
    check_vary_strength,
    report_sampling_fraction,
    sampling_chunk,
)
from ..models.registry import register_family, register_preset
from ..models.step import TrainingStep

if TYPE_CHECKING:  # imported lazily at run time (see the module docstring)
    from diffusers import DDPMScheduler, DPMSolverMultistepScheduler


@dataclasses.dataclass
class DDPMConfig(GeneratorConfig):
    """Config of the ``ddpm`` family. The defaults train on a CPU at 28x28 gray and 32x32 RGB.

    Args:
        latent_dim (int): unused. The diffusion's noise has the image's shape; the field exists
            because every family's config has it.
        learning_rate (float, defaults to 2e-4): Adam learning rate (DDPM's CIFAR-10 value).
        unet_width (int, defaults to 16): channels of the UNet's full-resolution level.
        channel_multipliers (tuple[int, ...], defaults to (1, 2, 4)): width of each UNet level
            as a multiple of ``unet_width``, from full resolution down (DDPM's ``ch_mult``); every
            level but the last halves the resolution. Images whose size is not divisible by
            ``2 ** (levels - 1)`` are zero-padded to the next size that is and cropped back
            (28 -> 32 with four levels).
        layers_per_block (int, defaults to 1): ResNet blocks per level (down; up has one more).
        attention_levels (tuple[int, ...], defaults to ()): indices of the levels that get
            self-attention (e.g. ``(2, 3)``: the two coarsest of four). Costly on a CPU.
        attention_head_dim (int, defaults to 8): channels per attention head.
        norm_num_groups (int, defaults to 8): GroupNorm groups; must divide ``unet_width``. 8
            rather than the usual 32 so that narrow CPU-sized UNets can use it too (Wu & He 2018
            found 8 to 32 groups alike).
        prediction_type (str, defaults to ``"epsilon"``): what the UNet predicts and the MSE is
            taken on: ``"epsilon"`` (the noise, Ho et al. 2020) or ``"v_prediction"`` (the
            velocity ``sqrt(a) * noise - sqrt(1 - a) * image``, Salimans & Ho 2022).
        beta_schedule (str, defaults to ``"squaredcos_cap_v2"``): the noise schedule, the cosine
            one (Nichol & Dhariwal 2021) or ``"linear"`` (Ho et al. 2020).
        num_train_timesteps (int, defaults to 1000): timesteps of the training chain.
        label_dropout (float, defaults to 0.1): probability that a training image's class is
            replaced by the "no class" token, which trains the unconditional model that
            classifier-free guidance needs. 0 trains no unconditional model (then only
            ``guidance_scale=1`` is allowed).
        guidance_scale (float, defaults to 2.0): classifier-free guidance weight ``w`` of
            ``uncond + w * (cond - uncond)`` (diffusers' convention): 1 is the conditional model
            alone (one forward per step), 0 the unconditional one (ignores the class), above 1
            pushes samples towards their class. Overridable per call.
        sampling_steps (int, defaults to 25): DPM-Solver++ steps per sample. Overridable per call.
        solver_order (int, defaults to 2): DPM-Solver++ order (1 is DDIM, Song et al. 2021).
        dynamic_thresholding (bool, defaults to True): Imagen's dynamic thresholding (Saharia et
            al. 2022) of each step's predicted clean image, which keeps guided pixel-space
            samples from saturating: clip at the 99.5th percentile of its absolute values s
            (taken in [1, 1.5], DeepFloyd IF's bound) and divide by s. False: no clipping until
            the final image is clamped to [-1, 1].
        betas (tuple[float, float], defaults to (0.9, 0.999)): Adam betas.
        max_grad_norm (float, defaults to 1.0): gradient-norm clipping of each update, as
            diffusers' training examples do (0 disables it).
        min_snr_gamma (float, defaults to 0.0): Min-SNR-gamma loss weighting (Hang et al. 2023,
            diffusers' ``snr_gamma``): each image's loss is weighted by ``min(SNR(t), gamma)``
            over ``SNR(t)`` (epsilon) or over ``SNR(t) + 1`` (velocity), so the nearly clean
            timesteps, whose conflicting gradients slow training, weigh less; the paper uses 5.
            0 keeps the plain MSE.
    """

    learning_rate: float = 2e-4
    unet_width: int = 16
    channel_multipliers: tuple[int, ...] = (1, 2, 4)
    layers_per_block: int = 1
    attention_levels: tuple[int, ...] = ()
    attention_head_dim: int = 8
    norm_num_groups: int = 8
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"
    beta_schedule: Literal["squaredcos_cap_v2", "linear"] = "squaredcos_cap_v2"
    num_train_timesteps: int = 1000
    label_dropout: float = 0.1
    guidance_scale: float = 2.0
    sampling_steps: int = 25
    solver_order: int = 2
    dynamic_thresholding: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = 1.0
    min_snr_gamma: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.unet_width < 1 or self.norm_num_groups < 1 or self.unet_width % self.norm_num_groups:
            raise ConfigError(f"unet_width must be a positive multiple of norm_num_groups={self.norm_num_groups}, "
                              f"got {self.unet_width}")
        levels = len(self.channel_multipliers)
        if not levels or any(m < 1 for m in self.channel_multipliers):
            raise ConfigError(f"channel_multipliers must be a non-empty list of integers >= 1, "
                              f"got {list(self.channel_multipliers)}")
        if any(not 0 <= i < levels for i in self.attention_levels):
            raise ConfigError(f"attention_levels must be level indices in [0, {levels - 1}], "
                              f"got {list(self.attention_levels)}")
        if self.layers_per_block < 1 or self.attention_head_dim < 1 or self.num_train_timesteps < 2:
            raise ConfigError("layers_per_block and attention_head_dim must be >= 1, num_train_timesteps >= 2")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ConfigError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if self.solver_order not in (1, 2, 3):
            raise ConfigError(f"solver_order must be 1, 2 or 3, got {self.solver_order}")
        if not (math.isfinite(self.max_grad_norm) and self.max_grad_norm >= 0):
            raise ConfigError(f"max_grad_norm must be a finite number >= 0 (0: no clipping), got {self.max_grad_norm}")
        if not (math.isfinite(self.min_snr_gamma) and self.min_snr_gamma >= 0):
            raise ConfigError(f"min_snr_gamma must be a finite number >= 0 (0: the plain MSE; the paper's value is 5), "
                              f"got {self.min_snr_gamma}")
        check_sampling_options(self, self.guidance_scale, self.sampling_steps)

    @property
    def block_out_channels(self) -> tuple[int, ...]:
        """Channels of each UNet level (diffusers' ``block_out_channels``)."""
        return tuple(self.unet_width * m for m in self.channel_multipliers)


def check_sampling_options(config: DDPMConfig, guidance_scale: float, sampling_steps: int) -> None:
    """Refuse a guidance scale or step count that cannot work with ``config``'s model."""
    if isinstance(guidance_scale, bool) or not (
            isinstance(guidance_scale, numbers.Real) and math.isfinite(guidance_scale) and guidance_scale >= 0):
        raise ConfigError(f"guidance_scale must be a finite number >= 0 (1: the conditional model alone, above 1: "
                          f"pushed towards the class), got {guidance_scale!r}")
    if guidance_scale != 1 and config.label_dropout == 0:
        raise ConfigError(
            f"guidance_scale={guidance_scale} needs the unconditional model, which is only trained with "
            "label_dropout > 0 (e.g. 0.1); use guidance_scale=1 with label_dropout=0")
    if isinstance(sampling_steps, bool) or not isinstance(sampling_steps, numbers.Integral) or sampling_steps < 1:
        raise ConfigError(f"sampling_steps must be an integer >= 1, got {sampling_steps!r}")


def _scheduler_arguments(config: DDPMConfig) -> dict[str, Any]:
    """What the training and the sampling schedulers share: the same chain, the same target."""
    return {"num_train_timesteps": config.num_train_timesteps, "beta_schedule": config.beta_schedule,
            "prediction_type": config.prediction_type}


def _build_unet(config: DDPMConfig, sample_size: int):
    from diffusers import UNet2DModel

    levels = range(len(config.block_out_channels))
    attention = set(config.attention_levels)
    return UNet2DModel(
        sample_size=sample_size, in_channels=config.in_channels, out_channels=config.in_channels,
        block_out_channels=config.block_out_channels, layers_per_block=config.layers_per_block,
        down_block_types=tuple("AttnDownBlock2D" if i in attention else "DownBlock2D" for i in levels),
        up_block_types=tuple("AttnUpBlock2D" if i in attention else "UpBlock2D" for i in reversed(levels)),
        # The middle block (at the coarsest resolution) gets attention when the coarsest level
        # does: off by default (costly on a CPU), on in ddpm-large.
        add_attention=len(config.block_out_channels) - 1 in attention,
        attention_head_dim=config.attention_head_dim, norm_num_groups=config.norm_num_groups,
        num_class_embeds=config.num_classes + 1,  # the last one is the "no class" token
    )


#: (generator, guidance scale, sampling steps) of the innermost ``sampling_options`` block in this
#: thread / task.
_SAMPLING_OPTIONS: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("ddpm_sampling_options",
                                                                                 default=None)


class DDPMGenerator(ConditionalGenerator):
    """Class-conditional diffusion (DDPM UNet, classifier-free guidance, DPM-Solver++ sampling)."""

    config_class = DDPMConfig
    max_vary_strength = 1.0  # the fraction of the noise chain: 1 noises an image all the way
    #: A solver of ``sampling_steps`` UNet passes per image (about 150x slower than a cgan on a CPU,
    #: benchmarks/results/ddpm_sampling_speed.json): evaluations fill a bank once per arm, as the
    #: benchmark protocol's ddpm arms do (``ddpm:free@bank``, 4 rows per real image).
    default_bank_per_image = 4

    def __init__(self, config: DDPMConfig):
        super().__init__(config)
        multiple = 2 ** (len(config.block_out_channels) - 1)
        padded = -(-config.image_size // multiple) * multiple
        self.pad = (padded - config.image_size) // 2, (padded - config.image_size + 1) // 2  # (before, after)
        self.unet = _build_unet(config, padded)

    @property
    def null_label(self) -> int:
        """The class index of the "no class" token (label dropout, classifier-free guidance)."""
        return self.num_classes

    # ------------------------------------------------------------------ network
    def forward(self, noisy_images: torch.Tensor, timesteps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The UNet's prediction (noise or velocity) for ``noisy_images`` (B, C, H, W) at
        ``timesteps`` (B,) or a scalar, with ``labels`` (B,) in [0, num_classes] (the last is "no
        class"); shaped like ``noisy_images``. The trainer's step calls this (one DDP forward)."""
        before, after = self.pad
        if before or after:  # zeros outside the image: no noise there, nothing to predict
            noisy_images = F.pad(noisy_images, (before, after, before, after))
        out = self.unet(noisy_images, timesteps, class_labels=labels, return_dict=False)[0]
        if before or after:
            size = self.config.image_size
            out = out[:, :, before:before + size, before:before + size]
        return out

    def training_scheduler(self) -> DDPMScheduler:
        """The ``DDPMScheduler`` of the training chain (``add_noise``, ``get_velocity``)."""
        from diffusers import DDPMScheduler

        return DDPMScheduler(**_scheduler_arguments(self.config))

    # ------------------------------------------------------------------ sampling
    def sample_noise(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """The sampler's starting point: ``n`` images of N(0, I) noise (N, C, H, W)."""
        return torch.randn(n, *self.image_shape, device=self.device, generator=generator)

    def generate(self, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Denoise ``noise`` (N, C, H, W) into images of ``labels``; deterministic. Guidance
        scale and step count: those of the :meth:`sampling_options` in force, else the config's."""
        scale, steps = self._sampling_options(None, None)
        return self.denoise(noise, labels, self.sampling_timesteps(1.0, steps), scale)

    def sample(self, labels: LabelsLike, *, generator: torch.Generator | None = None,
               batch_size: int = 1024, temperature: Temperature = 1.0, guidance_scale: float | None = None,
               sampling_steps: int | None = None) -> torch.Tensor:
        """:meth:`ConditionalGenerator.sample` (same arguments, contract and batching), plus
        ``guidance_scale`` and ``sampling_steps`` (default: see :meth:`sampling_options`).

        ``temperature`` scales the starting noise: 1 as trained; 0 starts every sample of a
        class from the same point (one image per class); above 1 spreads them. Each image is a
        function of its own starting noise only, so chunking changes nothing but rounding.
        """
        with self.sampling_options(guidance_scale, sampling_steps):
            return super().sample(labels, generator=generator, batch_size=batch_size, temperature=temperature)

    @renamed_argument("n_per_class", "per_class")
    def sample_per_class(self, per_class: int, *, generator: torch.Generator | None = None,
                         temperature: Temperature = 1.0, guidance_scale: float | None = None,
                         sampling_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`ConditionalGenerator.sample_per_class`, plus ``guidance_scale`` and ``sampling_steps``."""
        with self.sampling_options(guidance_scale, sampling_steps):
            return super().sample_per_class(per_class, generator=generator, temperature=temperature)

    @contextlib.contextmanager
    def sampling_options(self, guidance_scale: float | None = None,
                         sampling_steps: int | None = None) -> Iterator[None]:
        """Sample with this guidance scale and / or step count inside the ``with`` block.

        For code that calls :meth:`sample` without these arguments (``SyntheticMix``, the shard
        writer)::

            with generator.sampling_options(guidance_scale=4.0, sampling_steps=50):
                mix(images, labels)

        ``None`` keeps the value in force (an outer block's, else the config's). The options
        live in a context variable, not on the module: other threads sampling the same model
        keep theirs (and DataLoader worker processes see the config's).
        """
        if guidance_scale is None and sampling_steps is None:
            yield
            return
        token = _SAMPLING_OPTIONS.set((self, *self._sampling_options(guidance_scale, sampling_steps)))
        try:
            yield
        finally:
            _SAMPLING_OPTIONS.reset(token)

    def _sampling_options(self, guidance_scale: float | None, sampling_steps: int | None) -> tuple[float, int]:
        """The guidance scale and step count to use: the arguments, else the ``sampling_options``
        in force for this model, else the config's; checked."""
        c, given = self.config, _SAMPLING_OPTIONS.get()
        scale, steps = given[1:] if given is not None and given[0] is self else (c.guidance_scale, c.sampling_steps)
        scale = scale if guidance_scale is None else guidance_scale
        steps = steps if sampling_steps is None else sampling_steps
        check_sampling_options(c, scale, steps)
        return float(scale), int(steps)

    def sampling_timesteps(self, strength: float, steps: int) -> np.ndarray:
        """The descending timesteps of a run that starts at the noise level ``strength`` names.

        Strength 1 is a full run: diffusers' ``"linspace"`` spacing of ``steps`` timesteps from
        the top of the chain (the top clipped at log-SNR -5.1 for the cosine schedule, see
        :meth:`sampler`). A smaller strength starts at ``strength`` times that top timestep and
        takes ``ceil(strength * steps)`` of the same spacing (at least one, without repeats).
        """
        scheduler = self.sampler()
        scheduler.set_timesteps(1)
        top = int(scheduler.timesteps[0])  # the chain's first timestep, that of strength 1
        start = round(strength * top)
        count = min(max(1, math.ceil(strength * steps)), start + 1)
        grid = np.linspace(0, start, count + 1).round().astype(np.int64)
        return np.unique(grid[1:])[::-1].copy()  # as diffusers: drop t=0, descending

    def sampler(self) -> DPMSolverMultistepScheduler:
        """A fresh DPM-Solver++ scheduler (it holds per-run state, so one per run)."""
        from diffusers import DPMSolverMultistepScheduler

        c = self.config
        return DPMSolverMultistepScheduler(
            **_scheduler_arguments(c), solver_order=c.solver_order, thresholding=c.dynamic_thresholding,
            sample_max_value=1.5, algorithm_type="dpmsolver++",
            # DPM-Solver's own cosine-schedule setting: the last few timesteps of the cosine
            # chain have log-SNR -> -inf, which makes the solver's first step unstable.
            lambda_min_clipped=-5.1 if c.beta_schedule == "squaredcos_cap_v2" else -float("inf"),
        )

    def denoise(self, noisy: torch.Tensor, labels: torch.Tensor, timesteps: np.ndarray,
                guidance_scale: float) -> torch.Tensor:
        """Run the sampler from ``noisy`` (B, C, H, W), at the noise level of ``timesteps[0]``,
        through ``timesteps`` to a clean image of ``labels`` in [-1, 1].

        Inside a :class:`~augmentgen.models.base.sampling_progress` block, each step advances
        the bar by its share of the batch's images: one batch can take minutes."""
        scheduler = self.sampler()
        scheduler.set_timesteps(timesteps=timesteps.tolist(), device=noisy.device)
        x, steps = noisy, len(scheduler.timesteps)
        with sampling_chunk(len(noisy)):  # a chunk of its own: vary() denoises too
            for i, t in enumerate(scheduler.timesteps):
                x = scheduler.step(self.guided_prediction(x, t, labels, guidance_scale), t, x,
                                   return_dict=False)[0]
                report_sampling_fraction((i + 1) / steps)
        return x.clamp(-1, 1)

    def guided_prediction(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
                          guidance_scale: float) -> torch.Tensor:
        """Classifier-free guidance: ``uncond + w * (cond - uncond)`` from one batched forward
        of the conditional and unconditional inputs (one forward alone when w is 1 or 0)."""
        if guidance_scale == 1:
            return self(x, t, labels)
        null = torch.full_like(labels, self.null_label)
        if guidance_scale == 0:
            return self(x, t, null)
        cond, uncond = self(torch.cat([x, x]), t, torch.cat([labels, null])).chunk(2)  # (b, c, h, w) each
        return uncond + guidance_scale * (cond - uncond)

    # ------------------------------------------------------------------ vary
    @torch.no_grad()
    def vary(self, images: torch.Tensor, labels: LabelsLike, strength: float = 0.5, *,
             generator: torch.Generator | None = None, batch_size: int = 1024,
             guidance_scale: float | None = None, sampling_steps: int | None = None) -> torch.Tensor:
        """Variations of real ``images`` by SDEdit: noise each to the level ``strength`` names,
        denoise it with its own class.

        The encoder families' ``vary`` contract (arguments, value range, devices).

        Args:
            images: (N, C, H, W) float in [-1, 1] (or uint8 in [0, 255]), shaped like ``image_shape``.
            labels: (N,) class index of each image.
            strength: in [0, 1]: the fraction of the chain the image is noised through (the
                timestep ``strength * top``, see :meth:`sampling_timesteps`). 0 returns the
                images; small values keep their layout; 1 is a free sample of the class, equal
                to :meth:`sample` with the same ``generator`` (the image's weight at the top of
                the cosine chain, ~0.006, is dropped).
            generator: a ``torch.Generator`` on the model's device for reproducible variations.
            batch_size: the most images denoised per pass.
            guidance_scale, sampling_steps: as in :meth:`sample` (``sampling_steps`` is a full
                run's; a variation takes its ``strength`` fraction of them).

        Returns:
            A float tensor (N, C, H, W) in [-1, 1] on the model's device.
        """
        images, labels, strength = self._check_vary_inputs(images, labels, strength)
        check_batch_and_rng(batch_size, generator)
        scale, steps = self._sampling_options(guidance_scale, sampling_steps)
        if strength == 0 or len(images) == 0:
            return images.clone()
        timesteps = self.sampling_timesteps(strength, steps)
        # The schedule's signal fraction at the start: x_t = sqrt(a) x_0 + sqrt(1 - a) noise.
        alpha_bar = float(self.sampler().alphas_cumprod[int(timesteps[0])])
        was_training = self.training
        self.eval()
        try:
            chunks = []
            for x, y in zip(images.split(batch_size), labels.split(batch_size)):
                noise = torch.randn(x.shape, device=self.device, generator=generator)
                start = noise if strength == 1 else alpha_bar ** 0.5 * x + (1 - alpha_bar) ** 0.5 * noise
                chunks.append(self.denoise(start, y, timesteps, scale))
        finally:
            self.train(was_training)
        return torch.cat(chunks)

    def _check_vary_inputs(self, images, labels, strength) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(images in [-1, 1] on the model's device, labels, strength as a float), or a DataError."""
        images = torch.as_tensor(images)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise DataError(f"vary expects images shaped (N, {', '.join(map(str, self.image_shape))}), "
                            f"got {tuple(images.shape)}")
        labels = self.check_labels(labels)
        check_one_label_per_image(images, labels, what="vary")
        value = check_vary_strength(self, strength)
        return to_signed_unit(images).to(self.device), labels, value


class DDPMStep(TrainingStep):
    """One denoising update: noise a batch to random timesteps, MSE between the UNet's prediction
    and the objective (noise or velocity), one optimizer.

    Timesteps are stratified over the batch (one uniform offset, then evenly spaced and shuffled;
    the low-discrepancy sampler of Kingma et al. 2021, "Variational Diffusion Models"): each
    timestep is still uniform, but a batch covers the chain evenly, so the loss varies far less
    from batch to batch. Labels are replaced by the "no class" token with probability
    ``label_dropout`` for classifier-free guidance. With ``min_snr_gamma``, each image's loss is
    weighted by its timestep's :func:`min_snr_weights`.
    """

    def prepare(self) -> None:
        c = self.config
        opt = torch.optim.Adam(self.generator.parameters(), lr=c.learning_rate, betas=tuple(c.betas))
        self.generator, self.opt = self.accelerator.prepare(self.generator, opt)
        self.plain_generator = self.accelerator.unwrap_model(self.generator)
        self.scheduler = self.plain_generator.training_scheduler()
        self.loss_weights = None if not c.min_snr_gamma else min_snr_weights(
            self.scheduler.alphas_cumprod, c.min_snr_gamma, c.prediction_type).to(self.accelerator.device)

    def __call__(self, real_images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        c, device = self.config, real_images.device
        b = real_images.shape[0]
        noise = torch.randn_like(real_images)
        offset = torch.rand((), device=device)
        spread = (offset + torch.arange(b, device=device) / b) % 1.0  # (b,) one per stratum
        timesteps = (spread[torch.randperm(b, device=device)] * c.num_train_timesteps).long()
        dropped = torch.rand(b, device=device) < c.label_dropout
        class_labels = labels.masked_fill(dropped, self.plain_generator.null_label)

        noisy = self.scheduler.add_noise(real_images, noise, timesteps)
        target = noise if c.prediction_type == "epsilon" else \
            self.scheduler.get_velocity(real_images, noise, timesteps)
        prediction = self.generator(noisy, timesteps, class_labels)
        if self.loss_weights is None:
            loss = F.mse_loss(prediction.float(), target.float())  # in fp32 under mixed precision too
        else:
            per_image = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
            loss = (per_image * self.loss_weights[timesteps]).mean()

        self.opt.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        if c.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.generator.parameters(), c.max_grad_norm)
        self.opt.step()
        return {"diffusion_loss": loss.detach()}


def min_snr_weights(alphas_cumprod: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """Min-SNR-gamma weight of each timestep's loss (Hang et al. 2023): ``min(SNR, gamma) / SNR``
    for an epsilon target, ``min(SNR, gamma) / (SNR + 1)`` for a velocity one, where
    ``SNR = a / (1 - a)`` with ``a`` the timestep's ``alphas_cumprod``. Both equal the weight the
    paper derives for an x0 loss clipped at ``gamma``."""
    alphas = alphas_cumprod.double()
    snr = alphas / (1 - alphas)
    clipped = snr.clamp(max=gamma)
    weights = clipped / snr if prediction_type == "epsilon" else clipped / (snr + 1)
    return weights.float()


register_family("ddpm", DDPMGenerator, step=DDPMStep)
register_preset(
    "ddpm-large", family="ddpm",
    description="ddpm with a GPU-sized UNet (64-128-256-256, two blocks a level, attention at the two coarsest)",
    unet_width=64, channel_multipliers=[1, 2, 4, 4], layers_per_block=2, attention_levels=[2, 3],
    attention_head_dim=32, learning_rate=1e-4,
)
