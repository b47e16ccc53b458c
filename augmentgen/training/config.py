"""``TrainingConfig``: what the trainer needs that is not part of a model family."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
from typing import Literal

from .._config import Config, check_path
from .._deprecation import renamed_fields
from .._seeds import check_seed
from ..errors import ConfigError


@renamed_fields(samples_per_class="grid_per_class")
@dataclasses.dataclass
class TrainingConfig(Config):
    """Settings of the one trainer, shared by every family.

    Args:
        steps (int, optional): optimisation steps (one step = one batch). Without
            ``time_budget`` it defaults to 2000; with one it is an upper bound on the steps the
            budget chooses (``None``: no bound).
        batch_size (int, defaults to 64): images per step and process.
        seed (int, defaults to 0): seeds the initialisation, the data order and the noise.
        mixed_precision (str, defaults to ``"no"``): ``"no"``, ``"bf16"`` or ``"fp16"`` (fp16 only
            acts on GPUs).
        ema_decay (float, defaults to 0.999): decay of the generator's exponential moving
            average; the saved generator is the EMA one. 0 disables EMA.
        checkpoint_every (int, defaults to 500): steps between resumable checkpoints (0: never).
        keep_checkpoints (int, defaults to 2): how many of the newest checkpoints to keep.
        sample_every (int, defaults to 500): steps between sample grids (0: only at the end).
        grid_per_class (int, defaults to 8): columns of the sample grids, images of each class
            (``samples_per_class`` before; that keyword and key still work, with a ``FutureWarning``).
        log_every (int, defaults to 50): steps between logged loss values. It is also how often the
            host reads the losses to check them for NaN/inf (and the generator's parameters),
            folded into that one read: the steps in between never wait for the device. A
            divergence is caught at the next log step (or checkpoint, sample grid, or the end),
            always before a checkpoint is written, and reported with the step it began at.
        log_with (str, optional): an Accelerate tracker (``"tensorboard"``, ``"wandb"``, ``"all"``).
        num_workers (int, defaults to 0): DataLoader workers when the trainer builds the loader.
        on_divergence (str, defaults to ``"stop"``): on a NaN/inf loss, ``"stop"`` with an error or
            ``"rollback"`` to the last checkpoint with half the learning rate.
        init_from (str or os.PathLike, optional): start from a pretrained generator (fine-tuning, e.g. on
            a few images of new classes): a folder written by ``save_pretrained`` or the trainer (a
            path is stored as its ``str``), a zoo id such as ``"augmentgen/cgan-mnist"``, or a hub
            repo id, loaded with :func:`augmentgen.from_pretrained`. Its family, ``image_size`` and
            ``in_channels`` must be the run's. Every generator tensor whose name and shape match is copied
            (for the encoder families that includes the encoder; discriminators are never
            saved, so they start from scratch); when the classes differ (another count, or
            other class names) the class-dependent tensors (class embeddings, conditional batch
            norm tables, fitted class priors) keep their fresh initialisation instead. See
            :func:`augmentgen.training.transfer.transfer_weights`. Only a fresh run loads the
            weights; a resumed one reads them from its checkpoint (the source must still be
            loadable, for its tensor names and shapes). The source's id and weights' sha256 go
            into ``training.json`` and the saved weights' metadata.
        freeze_discriminator_layers (int, defaults to 0): FreezeD (Mo et al. 2020) needs
            pretrained discriminator layers, and a saved generator holds none. For the encoder
            families (``aae``, ``vae``, ``aegan``, ``ae``) it freezes the first N conv blocks of
            the transferred *encoder*, the pretrained network that reads real images
            (``requires_grad=False``: they end the run exactly as transferred); N goes up to 3
            (28/32 px) or 4 (64 px). For ``cgan`` any value above 0 is an error, since its
            discriminator starts from scratch. Needs ``init_from``.
        transfer_lr_scale (float, defaults to 1.0): learning-rate multiplier for the
            parameters copied from ``init_from`` (e.g. 0.1 to fine-tune them gently while the
            reinitialised class tables and the fresh discriminator learn at the full rate).
            They get their own optimizer param groups. Not 1: needs ``init_from``.
        compile (bool, defaults to False): ``torch.compile`` the generator and the discriminator
            the family's step calls (the forward and backward of each update). The first steps
            are slower (compilation, about a minute on a CPU), and the penalties that need a
            double backward (WGAN-GP, R1) stay eager; with ``contractive_weight > 0`` it is an
            error, since that penalty differentiates through the generator twice. Helps on
            GPUs; at the default 28x28 sizes it does not pay off on a CPU. With an
            ``accelerator=`` of your own, its own settings apply on top.
        channels_last (bool, defaults to True): convert the generator, the step's other modules
            (discriminators) and every batch to the channels-last memory layout for training.
            oneDNN's CPU convolutions skip their layout conversions then: 1.2-1.3x faster
            ``cgan`` steps at 28x28 on a 2-core CPU, 1.07-1.16x for the encoder families
            (``benchmarks/throughput.py``); tensor-core convolutions prefer it too (GPUs, with
            ``mixed_precision="bf16"``). The same maths up to floating-point rounding; the
            returned and saved generator is contiguous again.
        optimizer_kernel (str, defaults to ``"default"``): the implementation of the family's
            Adam optimizers: ``"default"`` (PyTorch's choice: a loop over parameters on CPUs,
            ``foreach`` on GPUs), ``"foreach"`` (batched over parameters) or ``"fused"`` (one
            kernel per step). The same update up to floating-point rounding; an optimizer
            without that option is a :class:`~augmentgen.errors.ConfigError`.
        time_budget (float or str, optional): train for as many steps as fit in this many
            seconds of :meth:`Trainer.fit <augmentgen.training.Trainer.fit>`, saving included.
            A number of seconds or a duration string (``"90s"``, ``"20m"``, ``"1h30m"``; see
            :func:`parse_duration`), stored as seconds. After a few warm-up steps the trainer
            measures the step time and the cost of what the run writes (grids, checkpoints,
            scored snapshots, the final save) and fixes the number of steps from them; see
            :mod:`augmentgen.training.budget`. A resumed run keeps the step count its first
            process chose.
        snapshot_every (int, defaults to 0): steps between scored snapshots of the generator the
            run would save (its EMA); the last step is always one. 0: none, unless
            ``select_snapshot="best"``, which then takes 10 snapshots spread over the run. The
            scores read the training images only (see :mod:`augmentgen.training.snapshots`).
        select_snapshot (str, defaults to ``"last"``): which snapshot is saved: ``"last"`` (the
            end of training, as without snapshots) or ``"best"`` (the highest score).
    """

    steps: int | None = None
    batch_size: int = 64
    seed: int = 0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    sample_every: int = 500
    grid_per_class: int = 8
    log_every: int = 50
    log_with: str | None = None
    num_workers: int = 0
    on_divergence: Literal["stop", "rollback"] = "stop"
    init_from: str | None = None
    freeze_discriminator_layers: int = 0
    transfer_lr_scale: float = 1.0
    compile: bool = False
    channels_last: bool = True
    optimizer_kernel: Literal["default", "foreach", "fused"] = "default"
    time_budget: float | str | None = None
    snapshot_every: int = 0
    select_snapshot: Literal["last", "best"] = "last"

    _path_fields = ("init_from",)

    def __post_init__(self) -> None:
        # Config's checks (the types as from_dict checks them, then the numbers) have run by now.
        if self.time_budget is not None:
            self.time_budget = parse_duration(self.time_budget, "time_budget")
        elif self.steps is None:
            self.steps = DEFAULT_STEPS
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be at least 1, got {self.steps}")
        if self.select_snapshot not in ("last", "best"):
            raise ConfigError(f"select_snapshot must be 'last' or 'best', got {self.select_snapshot!r}")
        for name in ("batch_size", "grid_per_class", "log_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        # accelerate's set_seed seeds numpy's global generator too, which takes seeds below 2**32
        check_seed(self.seed, use="it seeds the initialisation, the data order and the noise", bits=32)
        for name in ("checkpoint_every", "sample_every", "num_workers", "snapshot_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.on_divergence == "rollback" and self.checkpoint_every == 0:
            raise ConfigError("on_divergence='rollback' goes back to the last checkpoint, but checkpoint_every=0 "
                              "writes none; set checkpoint_every (e.g. 500), or on_divergence='stop'")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.init_from is not None and not self.init_from.strip():
            raise ConfigError("init_from must be a model folder or a zoo / hub id such as "
                              "'augmentgen/cgan-mnist', got an empty string; leave it unset to train from scratch")
        if self.freeze_discriminator_layers < 0:
            raise ConfigError(f"freeze_discriminator_layers must be >= 0, got {self.freeze_discriminator_layers}")
        if not (math.isfinite(self.transfer_lr_scale) and self.transfer_lr_scale > 0):
            raise ConfigError(f"transfer_lr_scale must be a finite number > 0, got {self.transfer_lr_scale!r}; "
                              "1 trains the transferred parameters at the normal learning rate")
        if self.init_from is None:
            for name, default in (("freeze_discriminator_layers", 0), ("transfer_lr_scale", 1.0)):
                if getattr(self, name) != default:
                    raise ConfigError(f"{name}={getattr(self, name)!r} only acts on weights transferred from a "
                                      "pretrained generator; set init_from too, or leave it at "
                                      f"{default}")


#: The steps of a run without ``time_budget`` or ``steps``.
DEFAULT_STEPS = 2000
_NUMBER = r"\d+(?:\.\d*)?"
_DURATION = re.compile(rf"(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m)?(?:(?P<s>{_NUMBER})s)?(?P<bare>{_NUMBER})?")
_DURATION_FORMS = ("seconds as a number > 0 (90, 2.5) or a duration string: '90s', '20m', '1h', '1h30m', "
                   "'1h30m15s', '1.5h'")


def parse_duration(value: float | int | str, name: str = "duration") -> float:
    """Seconds from a number of seconds or a duration string (``"90s"``, ``"20m"``, ``"1h30m"``).

    A string is hours, minutes and seconds in that order, each optional and each a decimal
    number with its unit (``h``, ``m``, ``s``); a bare number on its own (``"90"``) is seconds.
    After a unit a number needs its own: ``"1h30"`` is refused as ambiguous (``"1h30m"`` or
    ``"1h30s"``). Anything else, zero, a negative or a non-finite value is a
    :class:`ConfigError` naming the accepted forms.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{name} must be {_DURATION_FORMS}; got {value!r}")
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        match = _DURATION.fullmatch(text)
        if not text or match is None or (match["s"] is not None and match["bare"] is not None):
            raise ConfigError(f"{name} must be {_DURATION_FORMS}; got {value!r}")
        parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
        if "bare" in parts and len(parts) > 1:
            _refuse_unitless_after_unit(name, value, text, parts)
        seconds = (parts.get("h", 0.0) * 3600 + parts.get("m", 0.0) * 60 + parts.get("s", 0.0)
                   + parts.get("bare", 0.0))
    else:
        seconds = float(value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"{name} must be {_DURATION_FORMS}; got {value!r}, which is not a positive, finite "
                          "time")
    return seconds


def _refuse_unitless_after_unit(name: str, value: str, text: str, parts: dict[str, float]) -> None:
    """``"1h30"``: 30 minutes or 30 seconds? Refused, with both readings spelled out."""
    bare = parts["bare"]
    if "m" in parts:  # only seconds can follow minutes
        seconds = parts.get("h", 0.0) * 3600 + parts["m"] * 60 + bare
        readings = f"'{text}s' ({seconds:.12g} seconds)"
    else:
        readings = f"'{text}m' ({parts['h'] * 60 + bare:.12g} minutes) or '{text}s'"
    raise ConfigError(f"{name}={value!r} is ambiguous: write {readings}; a number without a unit is seconds only "
                      "on its own")


#: Accelerate's trackers and the module each needs (``log_with="all"`` takes whichever are installed).
TRACKER_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "comet_ml": "comet_ml", "mlflow": "mlflow",
                   "aim": "aim", "clearml": "clearml", "dvclive": "dvclive", "swanlab": "swanlab",
                   "trackio": "trackio"}


def check_output_dir(output_dir) -> None:
    """A run's output folder: a ``str`` or ``os.PathLike`` that is not empty (``Path("")`` is the
    current folder, and the run would write its files there). Checked before anything loads."""
    check_path(output_dir, "output_dir", kind="a folder path", empty="would write the run into the current folder",
               example="the run's folder, e.g. 'runs/cgan'")


def check_tracker_installed(log_with: str | None) -> None:
    """Refuse a ``log_with`` tracker that is unknown or not installed, before any training.

    Accelerate only warns about a missing tracker and then logs nothing, which a user finds out
    after the run. Checked here rather than in :class:`TrainingConfig`, so that a config written
    on one machine still loads on another.
    """
    if log_with is None:
        return
    if log_with == "all":  # Accelerate would warn that none is installed, then log nothing
        if not any(importlib.util.find_spec(module) for module in TRACKER_MODULES.values()):
            raise ConfigError(f"log_with='all' logs to every installed tracker, but none of "
                              f"{sorted(TRACKER_MODULES)} is installed; pip install tensorboard (or another), "
                              "or pass log_with=None to log nothing")
        return
    if log_with not in TRACKER_MODULES:
        raise ConfigError(f"log_with={log_with!r} is not a tracker Accelerate knows; use one of "
                          f"{sorted(TRACKER_MODULES)} or 'all' (--log-with)")
    module = TRACKER_MODULES[log_with]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"log_with={log_with!r} needs the {module!r} package, which is not installed; "
                          f"pip install {module}, or pass log_with=None to log nothing")
