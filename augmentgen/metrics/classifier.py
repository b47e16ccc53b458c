"""The reference classifier every augmentgen metric and benchmark uses.

One small, documented network trained one way, so that downstream gain (ΔAcc), CAS, class
consistency and the feature distances (FID, KID, precision/recall, density/coverage) are
always measured with the same yardstick:

* :class:`ReferenceClassifier`: a ResNet-8 (a 3x3 stem and three residual stages with batch
  norm, global average pooling and a linear head) for 1- or 3-channel images of 28 or 32 px.
* :func:`train_classifier`: AdamW with a one-cycle schedule and label smoothing 0.1, trained
  for a fixed number of steps on batches drawn from in-memory uint8 data by one tensor index
  (no DataLoader, no per-sample Python), with optional batched classic augmentation and an
  optional ``synthetic_mix`` callable that rewrites each batch (e.g. a ``SyntheticMix``), whose
  appended rows may get a lower loss weight (``synthetic_weight``).
* :func:`evaluate_accuracy`, :func:`predict`, :func:`features` and
  :class:`ClassifierFeatures` (the penultimate layer as an ``nn.Module`` with a
  ``num_features`` attribute, which torchmetrics' FID/KID accept as ``feature=``).

Images enter the network as float in [-1, 1], the generators' range; uint8 input is converted.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._images import to_signed_unit
from .._labels import check_one_label_per_image
from .._memory_format import channels_last_hazard, simd_channel_block
from .._seeds import check_seed
from ..data.labelled import LabelledImages, check_integer_labels
from ..errors import ConfigError, DataError

SyntheticMixFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
BatchTransformFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

#: The name reports print next to every feature-space figure, so that figures measured with
#: different extractors are never compared.
EXTRACTOR_NAME = "augmentgen ResNet-8 reference classifier (penultimate layer)"


# --------------------------------------------------------------------------- the network
class _ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 strided projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ReferenceClassifier(nn.Module):
    """ResNet-8: the small classifier behind every augmentgen metric.

    Layout for a (C, 28, 28) input and ``width`` w: 3x3 conv-BN-ReLU stem (w, 28x28), residual
    blocks (w, 14x14, stride 2), (2w, 7x7, stride 2) and (4w, 7x7), global average pooling ->
    ``4w`` features (the penultimate layer used as the FID feature space), linear ->
    ``num_classes`` logits. 8 weight layers (plus 1x1 projections), ~78 k parameters at w=16;
    downsampling right after the stem keeps a training step cheap enough for CPU benchmarks.

    Args:
        num_classes (int): number of classes.
        in_channels (int): 1 (grayscale) or 3 (RGB).
        image_size (int): 28 or 32 (any size >= 8 works; recorded for reports).
        width (int, optional, defaults to 16): channels of the first stage; the later stages
            have 2x and 4x as many.
        memory_format (torch.memory_format, optional): layout of the conv weights and
            activations. By default ``torch.channels_last``, whose training step is faster on a
            CPU (``benchmarks/classifier_speed.py``), except below a width of 8 on AVX2 (16 on
            other CPUs), where oneDNN's strided 1x1 convolution corrupts memory in that layout
            (:mod:`augmentgen._memory_format`): there ``torch.contiguous_format``, the NCHW
            network (the same function, other float rounding), which can also be asked for.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, image_size: int = 28, width: int = 16,
                 memory_format: torch.memory_format | None = None):
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {num_classes}")
        if in_channels not in (1, 3):
            raise ConfigError(f"in_channels must be 1 or 3, got {in_channels}")
        if width < 1:
            raise ConfigError(f"width must be positive, got {width}")
        if memory_format not in (None, torch.channels_last, torch.contiguous_format):
            raise ConfigError(f"memory_format must be torch.channels_last, torch.contiguous_format or None (the "
                              f"fastest safe one), got {memory_format}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = image_size
        self.width = width
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.stages = nn.Sequential(
            _ResidualBlock(width, width, 2),
            _ResidualBlock(width, 2 * width, 2),
            _ResidualBlock(2 * width, 4 * width, 1),
        )
        self.num_features = 4 * width
        self.head = nn.Linear(self.num_features, num_classes)
        self.memory_format = self._safe_memory_format(memory_format)
        self.to(memory_format=self.memory_format)

    def _safe_memory_format(self, asked: torch.memory_format | None) -> torch.memory_format:
        """channels_last where oneDNN runs it correctly (see :mod:`augmentgen._memory_format`)."""
        hazard = channels_last_hazard(self)
        if asked is None:
            return torch.contiguous_format if hazard else torch.channels_last
        if asked == torch.channels_last and hazard:
            raise ConfigError(
                f"memory_format=torch.channels_last is unsafe at width {self.width} on this CPU: oneDNN's strided "
                f"1x1 convolution ({hazard}) corrupts memory in that layout with fewer than {simd_channel_block()} "
                "input channels; use a width of at least that, or leave memory_format unset (NCHW here)")
        return asked

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (N, 4*width) of float images (N, C, H, W) in [-1, 1]."""
        x = self.stages(self.stem(images.contiguous(memory_format=self.memory_format)))  # (N, 4w, H/4, W/4)
        return x.mean(dim=(2, 3))  # (N, 4w)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of float images (N, C, H, W) in [-1, 1]."""
        return self.head(self.features(images))


# --------------------------------------------------------------------------- data helpers
def as_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images become float in [-1, 1]; float images are taken to be in [-1, 1] already."""
    return to_signed_unit(torch.as_tensor(images))


def as_images_and_labels(data) -> tuple[torch.Tensor, torch.Tensor, list[str] | None]:
    """Accept a :class:`LabelledImages` or an ``(images, labels)`` pair."""
    if isinstance(data, LabelledImages):
        return data.images, data.labels, data.class_names
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = torch.as_tensor(data[0]), check_integer_labels(data[1])
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise DataError(f"images must be (N, C, H, W) with C 1 or 3, got {tuple(images.shape)}")
        check_one_label_per_image(images, labels)
        if len(labels) == 0:
            raise DataError("no images to train on (0 images, 0 labels); pass at least one image of each class")
        return images, labels, None
    raise DataError(f"expected LabelledImages or (images, labels), got {type(data).__name__}")


def looks_like_digits(class_names: list[str] | None) -> bool:
    """Class names "0".."9": digits, where a horizontal flip changes the meaning."""
    return class_names is not None and all(name.strip().isdigit() for name in class_names)


# --------------------------------------------------------------------------- augmentation
def classic_augment(
    images: torch.Tensor,
    *,
    hflip: bool,
    affine: bool,
    generator: torch.Generator | None = None,
    max_shift: float = 0.125,
    max_rotation: float = 10.0,
    scale_range: tuple[float, float] = (0.9, 1.1),
) -> torch.Tensor:
    """The strongest classic augmentation for a dataset, on a whole batch in one ``grid_sample``.

    Every image gets a random translation of up to ``max_shift * size`` whole pixels with black
    fill (the same as a random crop of a zero-padded image, torchvision's ``RandomCrop(padding=)``);
    with ``hflip`` a random horizontal flip (natural images, clothing); with ``affine`` a random
    rotation within ``±max_rotation`` degrees and scaling within ``scale_range`` (digits,
    where a flip would change the class).

    Args:
        images: float (B, C, H, W) in [-1, 1].
        generator: a ``torch.Generator`` on ``images``' device for reproducible draws.

    Returns:
        A new float tensor (B, C, H, W) in [-1, 1].
    """
    b, _, h, w = images.shape
    device = images.device
    draw = lambda *shape: torch.rand(*shape, device=device, generator=generator)  # noqa: E731
    # Whole-pixel shifts: with align_corners=False a shift of 2k/W lands on pixel centres, so
    # bilinear sampling copies pixels exactly, like a crop of a padded image.
    pad_h, pad_w = max(1, round(max_shift * h)), max(1, round(max_shift * w))
    shift_x = (draw(b) * (2 * pad_w + 1)).floor() - pad_w
    shift_y = (draw(b) * (2 * pad_h + 1)).floor() - pad_h
    theta = torch.zeros(b, 2, 3, device=device)
    sx = torch.ones(b, device=device)
    if hflip:
        sx = torch.where(draw(b) < 0.5, -sx, sx)
    if affine:
        angle = (draw(b) * 2 - 1) * math.radians(max_rotation)
        scale = scale_range[0] + draw(b) * (scale_range[1] - scale_range[0])
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta[:, 0, 0], theta[:, 0, 1] = cos * sx, -sin
        theta[:, 1, 0], theta[:, 1, 1] = sin * sx, cos
    else:
        theta[:, 0, 0], theta[:, 1, 1] = sx, 1.0
    theta[:, 0, 2] = -2 * shift_x / w
    theta[:, 1, 2] = -2 * shift_y / h
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # Sample (x + 1) with zero padding and shift back: out-of-image pixels become -1 (black).
    out = F.grid_sample(images + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.sub_(1.0)


# --------------------------------------------------------------------------- training
def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --------------------------------------------------------------------------- argument checks
def check_count(name: str, value, meaning: str, *, least: int = 1) -> None:
    """A count argument: an int >= ``least`` (a bool, a float or a string is refused), else a
    :class:`ConfigError` naming it, what it counts and the call to make instead."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        try:
            whole = not isinstance(value, bool) and float(value).is_integer() and float(value) >= least
        except (TypeError, ValueError, OverflowError):
            whole = False
        kind = "a positive int" if least == 1 else f"an int >= {least}"
        fix = f"pass {name}={int(float(value))}" if whole else f"pass {name}=N with N >= {least}"
        raise ConfigError(f"{name} must be {kind} ({meaning}), got {value!r}; {fix}")


def check_epochs(epochs) -> None:
    """An ``epochs`` budget: None (the budget is ``steps``) or a finite number > 0."""
    if epochs is None:
        return
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Real) or not (
            math.isfinite(epochs) and epochs > 0):
        raise ConfigError(f"epochs must be a finite number > 0 (passes over the real training data), got "
                          f"{epochs!r}; or epochs=None to budget every classifier in steps")


def check_budget(*, steps, epochs=None, min_steps=0, batch_size=128, width=16) -> None:
    """The budget and size of classifier runs, checked before the first one trains: ``steps`` (which
    ``epochs`` replaces), ``batch_size`` and ``width`` ints >= 1, ``epochs`` None or a finite number
    > 0, ``min_steps`` an int >= 0. Raises :class:`ConfigError` naming the argument and the fix."""
    if epochs is None or steps is not None:
        check_count("steps", steps, "optimizer steps of every classifier")
    check_epochs(epochs)
    check_count("min_steps", min_steps, "the fewest steps of an epochs budget", least=0)
    check_count("batch_size", batch_size, "images of each step")
    check_count("width", width, "channels of the classifier's first stage")


def classifier_steps(n_real: int, batch_size: int, *, epochs: float, min_steps: int = 0) -> int:
    """Optimizer steps for ``epochs`` passes over ``n_real`` real images (at least ``min_steps``).

    The downstream protocol budgets every classifier in epochs of its *real* training set, so an
    arm trained on twice the real data gets twice the steps, and an arm with synthetic rows
    appended to each batch sees exactly the real rows of the arm without them.
    """
    check_epochs(epochs)
    if epochs is None:
        raise ConfigError("classifier_steps needs an epochs budget (a finite number > 0), got None")
    per_epoch = max(1, n_real // min(batch_size, n_real))  # the tail of an epoch is dropped
    return max(int(min_steps), math.ceil(epochs * per_epoch))


def train_classifier(
    train_data,
    *,
    steps: int = 500,
    epochs: float | None = None,
    min_steps: int = 0,
    batch_size: int = 128,
    seed: int = 0,
    augment: Literal["none", "classic"] = "classic",
    synthetic_mix: SyntheticMixFn | None = None,
    lr: float = 3e-3,
    weight_decay: float = 5e-4,
    width: int = 16,
    num_classes: int | None = None,
    hflip: bool | None = None,
    device: str | torch.device | None = None,
    batch_transform: BatchTransformFn | None = None,
    sampler: Literal["epochs", "class-balanced"] = "epochs",
    logit_adjustment: float = 0.0,
    synthetic_weight: float = 1.0,
) -> ReferenceClassifier:
    """Train the :class:`ReferenceClassifier` for a fixed budget of ``steps``.

    Batches are drawn by shuffled epochs over the in-memory uint8 data with one tensor index
    per batch. Each batch is turned into float [-1, 1], then ``synthetic_mix`` (if given)
    rewrites it, then classic augmentation (if ``augment="classic"``) is applied to the whole
    batch, synthetic rows included, so arms with and without synthetic data differ only by
    the synthetic rows.

    Paired arms: the batch order, the augmentation of the real rows and the augmentation of
    appended rows come from three separate random streams seeded by ``seed``, so two arms with
    the same seed and data see the same real rows, in the same order, augmented the same way,
    whether or not a ``synthetic_mix`` in ``mode="append"`` adds rows to each batch.

    Args:
        train_data: a :class:`LabelledImages` or ``(images uint8 (N, C, H, W), labels (N,))``.
        steps: optimizer steps, when ``epochs`` is not given.
        epochs: budget in passes over the real training data (see :func:`classifier_steps`);
            overrides ``steps``.
        min_steps: the least number of steps an ``epochs`` budget gives (tiny datasets).
        batch_size: images per step (capped at the dataset size).
        seed: seeds the initialisation, the batch order and the augmentation draws.
        augment: ``"classic"`` (see :func:`classic_augment`) or ``"none"``.
        synthetic_mix: ``f(images float [-1, 1] (B, C, H, W), labels (B,)) -> (images, targets)``
            on the training device, e.g. a ``SyntheticMix``; applied to every batch. ``targets``
            are class indices (B',) or soft targets (B', K) such as teacher probabilities.
        lr: peak learning rate of the one-cycle schedule (AdamW).
        weight_decay: AdamW weight decay.
        width: network width (see :class:`ReferenceClassifier`).
        num_classes: defaults to the data's number of classes (``max label + 1`` for pairs).
        hflip: allow horizontal flips in classic augmentation; by default yes, unless the class
            names are digits (then a small rotation/scale affine is used instead).
        device: defaults to CUDA when available.
        batch_transform: ``f(images, labels) -> (images, targets)`` applied last, after the
            classic augmentation, e.g. torchvision's ``v2.RandomChoice([v2.MixUp(...),
            v2.CutMix(...)])``; its global-RNG draws are seeded from ``seed`` (and the caller's
            global RNG is left as it was).
        sampler: ``"epochs"`` (shuffled passes over the data) or ``"class-balanced"`` (every
            batch drawn with replacement, each class equally likely: class-balanced
            resampling for long-tailed data).
        logit_adjustment: τ of the logit-adjusted loss (Menon et al. 2021): the cross-entropy
            of ``logits + τ log π`` with π the training labels' class frequencies, so rare
            classes get larger margins; predictions use the plain logits. 0 disables it.
        synthetic_weight: the loss weight of the rows ``synthetic_mix`` appends (a lower weight
            for synthetic rows, as DiffuLT, Shao et al. 2024): each row's loss (label smoothing
            and logit adjustment as for every row) counts 1 for the first ``batch_size`` rows of a
            batch, the real ones, and ``synthetic_weight`` for the rows after them, normalised as
            ``sum w_i CE_i / sum w_i`` (:func:`~augmentgen.mixing.weighted_cross_entropy`). 1
            (the default) is the plain mean, computed as before. Needs a ``synthetic_mix`` that
            appends (not ``mode="replace"``). A ``batch_transform`` mixes rows after the mixer:
            a mixed row is weighted as the row at its position. At 0 the appended rows' targets
            do not count, but their images still shape the batch-norm statistics of the step.

    Returns:
        The trained classifier in eval mode.
    """
    check_budget(steps=steps, epochs=epochs, min_steps=min_steps, batch_size=batch_size, width=width)
    seed = check_seed(seed, use="it seeds the initialisation, the batch order and the augmentation draws",
                      bits=63)  # its streams add offsets to it
    _check_options(augment, sampler, logit_adjustment)
    _check_synthetic_weight(synthetic_weight, synthetic_mix)
    images, labels, class_names = as_images_and_labels(train_data)
    if epochs is not None:
        steps = classifier_steps(len(labels), batch_size, epochs=epochs, min_steps=min_steps)
    if images.dtype != torch.uint8:
        raise DataError("train_classifier needs uint8 images (N, C, H, W)")
    num_classes = num_classes or (len(class_names) if class_names else int(labels.max()) + 1)
    device = torch.device(device) if device is not None else default_device()
    if hflip is None:
        hflip = not looks_like_digits(class_names)
    images, labels = images.to(device), labels.to(device)
    n = len(labels)
    batch_size = min(batch_size, n)

    model, (order_rng, real_aug_rng, extra_aug_rng) = _seeded_model_and_streams(
        num_classes, images.shape[1], images.shape[-1], width, seed, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    batches = (_epoch_batches(n, batch_size, steps, order_rng) if sampler == "epochs"
               else _balanced_batches(labels, num_classes, batch_size, steps, order_rng))
    adjustment = _logit_adjustment(labels, num_classes, logit_adjustment)
    prepared = _prepared_batches(images, labels, batches, synthetic_mix=synthetic_mix, augment=augment,
                                 batch_transform=batch_transform, rngs=(real_aug_rng, extra_aug_rng),
                                 batch_size=batch_size, hflip=hflip, device=device)
    _fit(model, prepared, optimizer, schedule, loss_of=_loss_function(synthetic_weight, batch_size),
         adjustment=adjustment, seed=seed, device=device)
    return model.eval()


def _fit(model: ReferenceClassifier, prepared, optimizer, schedule, *, loss_of, adjustment: torch.Tensor | None,
         seed: int, device: torch.device) -> None:
    """One optimizer step per prepared batch, the logits shifted by ``adjustment`` where given."""
    model.train()
    # batch_transform draws from the global RNG (v2.MixUp/CutMix do): seed it, restore it after.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed + 3_000_009)
        for batch_images, batch_labels in prepared:
            logits = model(batch_images)
            if adjustment is not None:
                logits = logits + adjustment
            loss = loss_of(logits, batch_labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()


def _seeded_model_and_streams(num_classes: int, channels: int, size: int, width: int, seed: int,
                              device: torch.device) -> tuple[ReferenceClassifier, tuple[torch.Generator, ...]]:
    """The network initialised from ``seed`` and the three random streams of a run."""
    # fork_rng: seeding the initialisation must not change the caller's global RNG stream.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = ReferenceClassifier(num_classes, channels, size, width).to(device)
    # Three streams (see train_classifier): rows appended by a mixer draw their augmentation from
    # their own stream, so they cannot shift the batch order or the real rows' augmentation.
    streams = tuple(torch.Generator(device=device).manual_seed(seed + offset)
                    for offset in (0, 1_000_003, 2_000_006))
    return model, streams


def _check_options(augment: str, sampler: str, logit_adjustment: float) -> None:
    if augment not in ("none", "classic"):
        raise ConfigError(f"augment must be 'none' or 'classic', got {augment!r}")
    if sampler not in ("epochs", "class-balanced"):
        raise ConfigError(f"sampler must be 'epochs' or 'class-balanced', got {sampler!r}")
    if not (isinstance(logit_adjustment, (int, float)) and math.isfinite(logit_adjustment)
            and logit_adjustment >= 0):
        raise ConfigError(f"logit_adjustment (τ) must be a finite number >= 0, got {logit_adjustment!r}")


def _check_synthetic_weight(synthetic_weight: float, synthetic_mix) -> None:
    if (isinstance(synthetic_weight, bool) or not isinstance(synthetic_weight, (int, float))
            or not math.isfinite(synthetic_weight) or synthetic_weight < 0):
        raise ConfigError(f"synthetic_weight must be a finite number >= 0 (the loss weight of the rows a "
                          f"synthetic_mix appends), got {synthetic_weight!r}")
    if synthetic_weight == 1:
        return
    if synthetic_mix is None:
        raise ConfigError(f"synthetic_weight={synthetic_weight:g} weights the rows a synthetic_mix appends, "
                          "but there is no synthetic_mix: pass synthetic_mix=SyntheticMix(source, mode='append'), "
                          "or drop synthetic_weight")
    if getattr(synthetic_mix, "mode", None) == "replace":
        raise ConfigError(f"synthetic_weight={synthetic_weight:g} weights the rows after the batch's real rows, "
                          "but this synthetic_mix has mode='replace' (its synthetic rows take real rows' "
                          "places); use mode='append'")


def _loss_function(synthetic_weight: float, num_real: int):
    """The step's loss of ``(logits, targets)``: label smoothing 0.1, and with ``synthetic_weight``
    != 1 the rows after the first ``num_real`` weighted by it."""
    if synthetic_weight == 1:  # the plain mean, exactly as before the weight existed
        return lambda logits, targets: F.cross_entropy(logits, targets, label_smoothing=0.1)
    from ..mixing.teacher import weighted_cross_entropy

    def weighted(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        appended = torch.arange(len(logits), device=logits.device) >= num_real  # (B',) True after the real rows
        return weighted_cross_entropy(logits, targets, appended, float(synthetic_weight), label_smoothing=0.1)

    return weighted


def _prepared_batches(images: torch.Tensor, labels: torch.Tensor, batches, *, synthetic_mix, augment: str,
                      batch_transform, rngs: tuple[torch.Generator, torch.Generator], batch_size: int,
                      hflip: bool, device: torch.device):
    """Each step's batch as the network sees it: float [-1, 1], then the mixer's rows, then the
    classic augmentation (real and appended rows from their own streams), then the transform."""
    for index in batches:
        batch_images, batch_labels = as_float_images(images[index]), labels[index]
        if synthetic_mix is not None:
            batch_images, batch_labels = _mixed(synthetic_mix, batch_images, batch_labels, device)
        if augment == "classic":
            batch_images = _augment_rows(batch_images, batch_size, *rngs, hflip=hflip, affine=not hflip)
        if batch_transform is not None:
            batch_images, batch_labels = batch_transform(batch_images, batch_labels)
        yield batch_images, batch_labels


def _epoch_batches(n: int, batch_size: int, steps: int, rng: torch.Generator):
    """``steps`` index tensors of ``batch_size`` rows, by shuffled epochs (tails dropped)."""
    order, cursor = torch.randperm(n, device=rng.device, generator=rng), 0
    for _ in range(steps):
        if cursor + batch_size > n:  # a new shuffled epoch; the tail of the last one is dropped
            order, cursor = torch.randperm(n, device=rng.device, generator=rng), 0
        yield order[cursor: cursor + batch_size]
        cursor += batch_size


def _balanced_batches(labels: torch.Tensor, num_classes: int, batch_size: int, steps: int,
                      rng: torch.Generator):
    """``steps`` index tensors of ``batch_size`` rows drawn with replacement, each row's class
    uniform over the classes present and the row uniform within its class."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    row_weight = (1.0 / counts)[labels]  # each class's rows share one class's mass
    for _ in range(steps):
        yield torch.multinomial(row_weight, batch_size, replacement=True, generator=rng)


def _logit_adjustment(labels: torch.Tensor, num_classes: int, tau: float) -> torch.Tensor | None:
    """``τ log π`` (1, K) of the training labels' class frequencies, or None for τ = 0."""
    if tau == 0:
        return None
    prior = torch.bincount(labels, minlength=num_classes).double() / len(labels)
    # A class absent from the data gets the smallest present frequency, not log 0.
    prior = torch.where(prior > 0, prior, prior[prior > 0].min())
    return (tau * prior.log()).float().view(1, -1)


def _mixed(synthetic_mix: SyntheticMixFn, images: torch.Tensor, labels: torch.Tensor,
           device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The mixer's batch on ``device``: float images, and class indices (B,) as int64 or soft
    targets (B, K) as float (e.g. ``SyntheticMix(soft_labels=True)``)."""
    images, targets = synthetic_mix(images, labels)
    targets = targets.to(device)
    targets = targets.float() if targets.is_floating_point() else targets.long()
    return images.to(device).float(), targets


def _augment_rows(images: torch.Tensor, num_real: int, real_rng: torch.Generator,
                  extra_rng: torch.Generator, **kw) -> torch.Tensor:
    """Classic augmentation, the first ``num_real`` rows from ``real_rng`` and rows a mixer
    appended after them from ``extra_rng`` (so appended rows never shift the real rows' draws)."""
    head = classic_augment(images[:num_real], generator=real_rng, **kw)
    if len(images) > num_real:
        head = torch.cat([head, classic_augment(images[num_real:], generator=extra_rng, **kw)])
    return head


# --------------------------------------------------------------------------- inference
def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def _batched(model: nn.Module, fn, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    was_training = model.training
    model.eval()
    device = _model_device(model)
    try:
        outs = [fn(as_float_images(chunk.to(device))) for chunk in torch.as_tensor(images).split(batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0, device=device)


def predict_logits(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Logits (N, num_classes) of uint8 or float [-1, 1] images, batched, in eval mode."""
    return _batched(model, model, images, batch_size)


def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Predicted class indices (N,) of uint8 or float [-1, 1] images."""
    return predict_logits(model, images, batch_size=batch_size).argmax(dim=1)


def features(model: ReferenceClassifier, images: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Penultimate-layer features (N, model.num_features) of uint8 or float [-1, 1] images."""
    return _batched(model, model.features, images, batch_size)


def evaluate_accuracy(model: nn.Module, data, *, batch_size: int = 1024) -> float:
    """Top-1 accuracy (in [0, 1]) of ``model`` on a :class:`LabelledImages` or (images, labels)."""
    images, labels, _ = as_images_and_labels(data)
    predicted = predict(model, images, batch_size=batch_size)
    return float((predicted.cpu() == labels.cpu()).float().mean())


def per_class_accuracy(model: nn.Module, data, *, num_classes: int | None = None,
                       batch_size: int = 1024) -> list[float]:
    """Accuracy on each class's images (NaN for a class with no images), one host sync."""
    images, labels, class_names = as_images_and_labels(data)
    num_classes = num_classes or (len(class_names) if class_names else int(labels.max()) + 1)
    labels = labels.cpu()
    correct = (predict(model, images, batch_size=batch_size).cpu() == labels).double()
    hits = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, labels, correct)
    counts = torch.bincount(labels, minlength=num_classes).double()
    return (hits / counts).tolist()


class ClassifierFeatures(nn.Module):
    """A trained classifier's penultimate layer as a feature extractor for torchmetrics.

    ``FrechetInceptionDistance(feature=ClassifierFeatures(clf))`` and the KID equivalent call
    it on every ``update``; it accepts uint8 or float [-1, 1] images, always runs in eval mode
    and returns float features (N, num_features) on the classifier's device.

    Args:
        classifier (ReferenceClassifier): a trained classifier (its weights are not changed).
        name (str, optional): the extractor's name shown in reports.
    """

    def __init__(self, classifier: ReferenceClassifier, name: str = EXTRACTOR_NAME):
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = classifier.num_features
        self.name = name

    def train(self, mode: bool = True) -> ClassifierFeatures:
        # Batch-norm statistics must stay frozen: torchmetrics never calls eval() for us.
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        device = _model_device(self.classifier)
        return self.classifier.features(as_float_images(images.to(device))).float()
