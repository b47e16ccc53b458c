"""The one trainer: an Accelerate loop shared by every model family.

The family supplies its :class:`~augmentgen.models.step.TrainingStep`; the trainer owns the
loop, seeding, precision, the generator's EMA, resumable checkpoints, divergence checks, sample
grids, tracker logging, the final ``config.json`` + ``model.safetensors``, and starting from a
pretrained generator (``TrainingConfig.init_from``, see :mod:`augmentgen.training.transfer`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import shlex
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from .._images import save_sample_grid, to_signed_unit
from ..data.labelled import LabelledImages
from ..errors import ConfigError, DataError, TrainingDivergedError
from ..hub.serialization import atomic_write_bytes, generator_tensors, save_generator, tensors_sha256
from ..models.base import ConditionalGenerator, GeneratorConfig
from ..models.registry import build_generator, config_to_dict, step_class
from .budget import TimeBudget, synchronize
from .checkpoint import (
    CHECKPOINT_DIR,
    checkpoint_dirs,
    load_newest_checkpoint,
    newest_manifest,
    write_checkpoint,
)
from .config import TrainingConfig, check_tracker_installed
from .ema import GeneratorEMA, ema_with_warmup
from .run_folder import (
    RESUME_FIELDS,
    check_resume_matches,
    check_run_folder,
    default_command,
    prepare_run_folder,
)
from .snapshots import SnapshotSelector, TrainingDataScore
from .transfer import freeze_feature_blocks, scale_lr_of, transfer_weights

#: ``factory(train_data) -> scorer``; ``scorer(generator)`` returns a dict with a ``"score"``.
SnapshotScorerFactory = Callable[[LabelledImages], Callable[[ConditionalGenerator], dict]]
#: TrainingConfig fields a resume must repeat besides RESUME_FIELDS: they decide what the
#: checkpoints hold (the snapshot selector's state).
_SNAPSHOT_FIELDS = ("snapshot_every", "select_snapshot")

__all__ = ["CHECKPOINT_DIR", "GeneratorEMA", "Trainer", "TrainingInterrupted", "TrainingProgress", "ema_with_warmup"]


class TrainingProgress:
    """The trainer's own resumable state (registered with Accelerate's checkpointing)."""

    def __init__(self) -> None:
        self.step = 0
        self.images_seen = 0
        self.train_seconds = 0.0
        self.lr_scale = 1.0
        self.planned_steps: int | None = None  # the steps a time budget chose (kept on resume)

    def state_dict(self) -> dict:
        """The counters, for Accelerate's checkpoint."""
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        """Restore the counters of a checkpoint."""
        vars(self).update(state)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped :meth:`Trainer.fit` after it checkpointed the last completed step.

    A ``KeyboardInterrupt``, so a script stops as on any Ctrl-C. ``step``: the step reached;
    ``checkpoint``: the folder to resume from (``fit(data, resume=True)``, ``--resume``).
    """

    def __init__(self, step: int, checkpoint: Path | None, output_dir: Path):
        where = f"saved a checkpoint in {checkpoint}" if checkpoint else "no checkpoint could be saved"
        super().__init__(f"training interrupted at step {step}; {where}; continue with fit(data, resume=True) "
                         "(--resume on the command line)")
        self.step, self.checkpoint, self.output_dir = step, checkpoint, output_dir


class Trainer:
    """Train a conditional generator with Accelerate.

    Args:
        model_config: the family's config (e.g. from :func:`augmentgen.models.build_config`).
        training_config: loop settings shared by every family.
        output_dir: where checkpoints, sample grids, logs and the final weights go.
        accelerator: an ``Accelerator`` of your own (default: one built from ``training_config``).
        command: the command line recorded in ``training.json`` to rerun this run (default: this
            process's, with ``python -m augmentgen`` / ``accelerate launch`` as ``augmentgen``).
        snapshot_scorer: with ``snapshot_every`` / ``select_snapshot="best"``, what scores the
            snapshots: ``factory(train_data) -> scorer``, ``scorer(generator) -> {"score": ...}``
            (default: :class:`~augmentgen.training.snapshots.TrainingDataScore`, which reads the
            training images only).

    Example::

        config = build_config("cgan", num_classes=10)
        trainer = Trainer(config, TrainingConfig(steps=2000), "runs/demo")
        generator = trainer.fit(load_data("fashion-mnist-small"))
    """

    def __init__(self, model_config: GeneratorConfig, training_config: TrainingConfig | None = None,
                 output_dir: str | os.PathLike = "runs/augmentgen", *, accelerator: Accelerator | None = None,
                 command: str | None = None, snapshot_scorer: SnapshotScorerFactory | None = None):
        self.model_config = model_config
        self.snapshot_scorer = snapshot_scorer
        self.config = training_config or TrainingConfig()
        self.output_dir = Path(output_dir)
        self.command = command
        if accelerator is None:
            check_tracker_installed(self.config.log_with)  # Accelerate would only warn, then log nothing
        self.accelerator = accelerator or Accelerator(
            mixed_precision=self.config.mixed_precision,
            log_with=self.config.log_with,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir),
                                                logging_dir=str(self.output_dir / "logs")),
            # Seedable samplers make the data order a function of (seed, epoch), which is what
            # lets a resumed run see the same batches as an uninterrupted one.
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        )
        self.progress = TrainingProgress()
        self.history: list[dict[str, float]] = []
        #: With ``init_from``: the source (id, sha256, family, classes) and the transfer report
        #: (``copied`` / ``reinitialised`` / ``skipped`` / ``frozen`` tensor names), set by ``fit``.
        self.init_source: dict | None = None
        #: The family's training step of the last ``fit`` (its optimizers, modules).
        self.step = None
        #: The generator's EMA of the last ``fit`` (``None`` with ``ema_decay=0``).
        self.ema: GeneratorEMA | None = None
        #: What every checkpoint's ``run.json`` records of this run (model config, the training
        #: fields a resume must repeat, the data), set by ``fit``.
        self.manifest: dict = {}
        #: With ``time_budget``: the clock and the step count it chose, set by ``fit``.
        self.budget: TimeBudget | None = None
        #: With snapshots: every snapshot's scores and the kept one's weights, set by ``fit``.
        self.snapshots: SnapshotSelector | None = None
        self._scorer = None
        self._train_data: LabelledImages | None = None

    # ------------------------------------------------------------------ public
    def fit(self, data: LabelledImages | Iterable, *, resume: bool = False,
            overwrite: bool = False) -> ConditionalGenerator:
        """Train on ``data`` and return the final (EMA) generator, also saved to ``output_dir``.

        ``data`` is a :class:`LabelledImages` or any DataLoader / iterable of (images, labels)
        batches with images uint8 in [0, 255] or float in [-1, 1], shaped like the config says.
        With ``resume=True`` training continues from the newest checkpoint in ``output_dir``,
        refusing other data, another config or fewer ``steps`` than the run has done. A folder
        that already holds a model or a run is refused unless ``resume`` or ``overwrite`` is
        given; ``overwrite=True`` first clears its previous outputs. With ``init_from`` set, a
        fresh run starts from that pretrained generator's weights. Ctrl-C checkpoints the last
        completed step and raises :class:`TrainingInterrupted`. With ``time_budget`` it trains
        as many steps as fit (:mod:`augmentgen.training.budget`); with ``snapshot_every`` or
        ``select_snapshot="best"`` it scores snapshots on the training images and saves the
        selected one (:mod:`augmentgen.training.snapshots`).
        """
        clock = time.perf_counter()  # a time budget counts from here: everything fit does is in it
        self._check_speed_options()
        cfg, acc = self.config, self.accelerator
        self._check_snapshot_options(data)
        check_run_folder(self.output_dir, resume=resume, overwrite=overwrite, steps=self._step_bound())
        self._check_data(data)
        self.manifest = self._describe_run(data)
        resuming = resume and bool(checkpoint_dirs(self.output_dir))  # only a partial first one: start anew
        saved = newest_manifest(self.output_dir) if resuming else None
        if saved is not None:
            check_resume_matches(self.output_dir, saved, self.manifest)
            self._check_snapshot_resume(saved)
        self.budget = TimeBudget(cfg.time_budget, cfg.steps, clock) if cfg.time_budget is not None else None
        plain_generator = self._build_or_explain(resuming)
        loader = self._prepare_data(data)
        # Only now, with every check passed, is anything in the folder changed.
        self._start(resume, overwrite)
        self._train_data = data if isinstance(data, LabelledImages) else None
        self._start_snapshots(data)
        if self.budget is not None and self.progress.planned_steps is not None:
            self.budget.adopt(self.progress.planned_steps)
        self._print_summary(data, resuming)
        self._train(loader, plain_generator)

        final = self.ema.module if self.ema is not None else plain_generator
        self._restore_kept_snapshot(final)
        # With snapshots, the loader the snapshots were finished with: the saved generator is then
        # exactly the one scored.
        self.step.finish(final, self._finish_loader() if self.snapshots is not None else loader)
        # Safetensors stores contiguous tensors only; the layout is a training-time choice.
        final.to(memory_format=torch.contiguous_format).eval()
        acc.wait_for_everyone()
        if acc.is_main_process:
            self._write_outputs(final)
        if cfg.log_with:
            acc.end_training()
        return final

    def last_step(self) -> int:
        """The step this run ends at: ``steps``, or what its time budget chose (while the budget
        is still measuring: ``steps``, or ``sys.maxsize`` without one)."""
        if self.budget is not None and self.budget.total_steps is not None:
            return self.budget.total_steps
        return self._step_bound()

    def save_checkpoint(self) -> Path:
        """Write a resumable checkpoint (models, optimizers, EMA, RNG, progress, the run's
        manifest) atomically; see :func:`augmentgen.training.checkpoint.write_checkpoint`."""
        return write_checkpoint(self.accelerator, self.output_dir, self.progress.step,
                                keep=self.config.keep_checkpoints, manifest=self.manifest)

    # ------------------------------------------------------------------ internals
    def _step_bound(self) -> int:
        """``steps``, or no bound (a time budget without ``steps``)."""
        return self.config.steps if self.config.steps is not None else sys.maxsize

    def _snapshots_on(self) -> bool:
        return self.config.snapshot_every > 0 or self.config.select_snapshot == "best"

    def _check_snapshot_options(self, data) -> None:
        """Snapshots are scored against the training images: refuse data that does not hold them."""
        if self._snapshots_on() and not isinstance(data, LabelledImages):
            raise ConfigError(
                "snapshot_every / select_snapshot='best' score snapshots against the training images, which needs "
                f"the data as LabelledImages (augmentgen.load_data(...)), not a {type(data).__name__}; pass it "
                "that way, or train without snapshots (snapshot_every=0, select_snapshot='last')"
            )

    def _check_snapshot_resume(self, saved: dict) -> None:
        """Refuse to resume with other snapshot settings: they decide what the checkpoints hold."""
        old = {"snapshot_every": 0, "select_snapshot": "last", **(saved.get("training") or {})}
        differ = [(k, old[k], getattr(self.config, k)) for k in _SNAPSHOT_FIELDS if old[k] != getattr(self.config, k)]
        if differ:
            what = "; ".join(f"{k} is {a!r} there but {b!r} now" for k, a, b in differ)
            fix = " ".join(f"--{k.replace('_', '-')} {a}" for k, a, _ in differ)
            raise ConfigError(f"cannot resume {self.output_dir}: {what}. Nothing was changed. To resume, rerun "
                              f"with {fix} (the same names in Python); to start a new run pass --overwrite "
                              "(overwrite=True) or another --out")

    def _start_snapshots(self, data) -> None:
        """Build the snapshot scorer (the default one trains its classifier on ``data`` here)."""
        if not self._snapshots_on():
            return
        cfg, acc = self.config, self.accelerator
        factory = self.snapshot_scorer or functools.partial(TrainingDataScore, seed=cfg.seed, device=acc.device)
        with _rng_kept(acc.device):  # the run draws the same random numbers with and without snapshots
            self._scorer = factory(data)

    def _check_speed_options(self) -> None:
        """Refuse the speed options that cannot work with this run's model, before anything is built."""
        cfg = self.config
        if cfg.compile and getattr(self.model_config, "contractive_weight", 0.0) > 0:
            raise ConfigError(
                "compile=True cannot train with contractive_weight > 0: the contractive penalty "
                "differentiates the generator's encoder twice, and torch.compile does not support a "
                "double backward; set compile=False or contractive_weight=0"
            )

    def _build(self, resume: bool) -> ConditionalGenerator:
        """Seed, build the generator (from ``init_from`` when set) and the family's step, apply the
        speed options and set up the EMA; returns the plain (unwrapped, uncompiled) generator."""
        acc, cfg = self.accelerator, self.config
        self.init_source = None
        # Loaded (and checked against the run's family and image shape) before anything is
        # built or written, and before seeding, so the run draws the same random numbers.
        source = self._load_init_source() if cfg.init_from else None
        set_seed(cfg.seed)  # before building the model: the seed also fixes the initialisation
        generator = build_generator(self.model_config)
        if source is not None:
            # A resumed run's weights come from its checkpoint: only the report is recomputed,
            # so that freezing and param groups are set up as in the run that wrote it.
            report = self._transfer(generator, source, dry_run=resume)
            frozen: list[str] = []
            if cfg.freeze_discriminator_layers:
                frozen = freeze_feature_blocks(generator, cfg.freeze_discriminator_layers, report["copied"])
            self.init_source["frozen"] = frozen
            source = None  # only its tensors were needed
        step = step_class(self.model_config.family)(generator, acc)
        step.prepare()
        self.step = step
        plain_generator = acc.unwrap_model(step.generator)
        if self.init_source is not None and cfg.transfer_lr_scale != 1.0:
            params = dict(plain_generator.named_parameters())
            transferred = [params[n] for n in self.init_source["copied"] if n in params]
            for opt in step.optimizers():
                scale_lr_of(opt, transferred, cfg.transfer_lr_scale)
        self._apply_speed_options(step)
        self.ema = None
        if cfg.ema_decay > 0:
            self.ema = GeneratorEMA(plain_generator, cfg.ema_decay)
            acc.register_for_checkpointing(self.ema)
        acc.register_for_checkpointing(self.progress)
        self.snapshots = None
        if self._snapshots_on():  # registered last: checkpoints without snapshots keep their layout
            self.snapshots = SnapshotSelector(cfg.select_snapshot)
            acc.register_for_checkpointing(self.snapshots)
        return plain_generator

    def _apply_speed_options(self, step) -> None:
        """``optimizer_kernel``, ``channels_last`` and ``compile``, after ``step.prepare``, before any update."""
        cfg, acc = self.config, self.accelerator
        if cfg.optimizer_kernel != "default":
            for opt in step.optimizers():
                _set_optimizer_kernel(opt, cfg.optimizer_kernel)
        if cfg.channels_last:
            # In place (the parameters stay the objects the optimizers hold; their state is
            # created on the first update, in the same layout). Under DDP the buckets were laid
            # out before this: correct, at the cost of a copy per bucket.
            seen: set[int] = set()
            for value in list(vars(step).values()):
                if isinstance(value, torch.nn.Module):
                    module = acc.unwrap_model(value)
                    if id(module) not in seen:
                        seen.add(id(module))
                        module.to(memory_format=torch.channels_last)
        if cfg.compile:
            # Only the modules the step calls by these names: the plain_* ones it keeps for
            # double-backward penalties (WGAN-GP, R1) and the EMA stay eager.
            for name in ("generator", "discriminator"):
                module = getattr(step, name, None)
                if isinstance(module, torch.nn.Module):
                    setattr(step, name, torch.compile(module))

    def _prepare_data(self, data):
        cfg, acc = self.config, self.accelerator
        loader = data.loader(cfg.batch_size, seed=cfg.seed, num_workers=cfg.num_workers) \
            if isinstance(data, LabelledImages) else data
        self._check_data(data)
        return acc.prepare(loader) if isinstance(loader, torch.utils.data.DataLoader) else loader

    def _start(self, resume: bool, overwrite: bool) -> None:
        """Clear the folder (``overwrite``) or load the newest good checkpoint (``resume``); open the trackers."""
        acc, cfg = self.accelerator, self.config
        resume = prepare_run_folder(self.output_dir, resume=resume, overwrite=overwrite, steps=self._step_bound(),
                                    is_main_process=acc.is_main_process)
        acc.wait_for_everyone()
        if resume:
            # No rescaling here: the optimizers' state in the checkpoint already holds the rates
            # times progress.lr_scale (set together by _rollback), so load_state restores both.
            load_newest_checkpoint(acc, self.output_dir)
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            if cfg.log_with:
                acc.init_trackers("augmentgen", config={**self.model_config.to_dict(), **cfg.to_dict()})

    def _build_or_explain(self, resume: bool) -> ConditionalGenerator:
        """:meth:`_build`, turning a failed allocation (a width far too large) into a ConfigError."""
        try:
            return self._build(resume)
        except (RuntimeError, MemoryError, TypeError) as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if not (isinstance(exc, MemoryError) or "alloc" in text.lower() or "overflow" in text.lower()):
                raise
            config = self.model_config
            defaults = {f.name: f.default for f in dataclasses.fields(config)}
            # The families' layer-size fields: *_width, *_hidden, ddpm's block_out_channels.
            widths = {k: v for k, v in config.to_dict().items() if k.endswith(("_width", "_hidden", "out_channels"))}
            fix = " ".join(shlex.quote(f"--set={k}={json.dumps(defaults[k])}") for k in widths)
            sizes = ", ".join(f"{k}={v}" for k, v in widths.items()) or "its layer sizes"
            raise ConfigError(
                f"could not allocate the {config.family} model ({text[:160]}): {sizes} are too large for this "
                f"machine's memory; lower them, e.g. to the defaults with {fix or '--set'} (the same names in "
                "model_config=)"
            ) from exc

    def _describe_run(self, data) -> dict:
        """The manifest every checkpoint records, which a resume must match."""
        training = self.config.to_dict()
        return {"model": config_to_dict(self.model_config),
                "training": {k: training[k] for k in (*RESUME_FIELDS, *_SNAPSHOT_FIELDS)},
                "data": describe_data(data, self.model_config)}

    def _print_summary(self, data, resume: bool) -> None:
        """What is about to be trained, printed once before the first step (like accelerate's examples)."""
        acc, cfg, config, described = self.accelerator, self.config, self.model_config, self.manifest["data"]
        if not acc.is_main_process:
            return
        names = config.class_names or [str(i) for i in range(config.num_classes)]
        shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
        source = described["source"] or type(data).__name__
        if str(source).startswith("fashion-mnist-small"):
            source += "  <- the embedded 500-image DEMO set, not your data (pass --data / data=)"
        examples = described["examples"] if described["examples"] is not None else "unknown (an iterable)"
        c, h, w = config.image_shape
        precision = "" if acc.mixed_precision == "no" else f", {acc.mixed_precision} mixed precision"
        resumed = f" (resuming at step {self.progress.step})" if resume else ""
        print("\n".join([
            f"***** augmentgen: training {config.family} *****",
            f"  data:       {source}",
            f"  examples:   {examples}",
            f"  classes:    {config.num_classes}: {shown}",
            f"  image size: {h}x{w}, {c} channel{'s' if c > 1 else ''}",
            f"  batch size: {cfg.batch_size} per process x {acc.num_processes} process(es)",
            f"  steps:      {self._describe_steps()}{resumed}",
            f"  device:     {acc.device}{precision}",
            f"  output:     {self.output_dir}",
        ]), flush=True)

    def _describe_steps(self) -> str:
        cfg, budget = self.config, self.budget
        if budget is None:
            return str(cfg.steps)
        if budget.resumed_plan:
            return f"{budget.total_steps} (chosen by the run's time budget of {budget.seconds:g} s)"
        bound = f", at most {cfg.steps}" if cfg.steps is not None else ""
        return f"as many as fit in {budget.seconds:g} s{bound} (set after a short warm-up)"

    def _train(self, loader, plain_generator: ConditionalGenerator) -> None:
        """The loop. Losses stay on the device; the host reads them only at a check step."""
        cfg = self.config
        batches = self._batches(loader, start=self.progress.step)
        total = self.last_step()
        bar = tqdm(total=total if total != sys.maxsize else None, initial=self.progress.step,
                   disable=not self.accelerator.is_local_main_process,
                   desc=f"train {self.model_config.family}", dynamic_ncols=True,
                   # Logs redirected to a file get a line every 30 s, not one per step.
                   mininterval=0.1 if sys.stderr.isatty() else 30.0)
        start = time.perf_counter() - self.progress.train_seconds
        pending: list[dict[str, torch.Tensor]] = []  # the losses of the steps since the last check
        with _StopRequest() as stop:
            while self.progress.step < self.last_step():
                pending.append(self._train_step(*next(batches), plain_generator))
                bar.update(1)
                s = self.progress.step
                self._follow_budget(s, plain_generator, bar)
                if self._stop_requested(stop, s):
                    bar.close()
                    self._stop(pending, plain_generator, start)
                if not self._is_check_step(s):
                    continue
                values = self._read_losses(pending, plain_generator)
                pending = []
                if values is None:  # diverged and rolled back
                    batches = self._batches(loader, start=self.progress.step)
                    bar.n = self.progress.step
                    continue
                self.progress.train_seconds = time.perf_counter() - start
                last = self.last_step()
                if s % cfg.log_every == 0 or s == last:
                    self._log(values, s, bar)
                if cfg.sample_every and s % cfg.sample_every == 0 and s < last:
                    self._write_grid(self._saved_generator(plain_generator), f"samples/step-{s:07d}.png")
                if self._is_snapshot_step(s) and not self.snapshots.has(s):  # before the checkpoint, which then holds it
                    self.snapshots.offer(s, self._score_snapshot(self._saved_generator(plain_generator)),
                                         self._saved_generator(plain_generator))
                # The last step too: a finished run can be resumed to train further (more steps).
                if cfg.checkpoint_every and (s % cfg.checkpoint_every == 0 or s == last):
                    self.save_checkpoint()
        bar.close()
        self.progress.train_seconds = time.perf_counter() - start

    def _stop_requested(self, stop: _StopRequest, s: int) -> bool:
        """Whether Ctrl-C was pressed; with several processes, on any of them (decided together
        at check steps, so that every rank stops at the same step)."""
        acc = self.accelerator
        if acc.num_processes == 1:
            return stop.requested
        if not self._is_check_step(s):
            return False
        flag = torch.tensor(float(stop.requested), device=acc.device)
        return bool(acc.reduce(flag, reduction="sum").item() > 0)

    def _stop(self, pending: list[dict[str, torch.Tensor]], generator: ConditionalGenerator, start: float) -> None:
        """After Ctrl-C: check the pending steps, checkpoint the current one, raise TrainingInterrupted."""
        values = self._read_losses(pending, generator) if pending else {}
        self.progress.train_seconds = time.perf_counter() - start
        # A divergence rolled back (values None) already left the state of the newest checkpoint.
        path = self.save_checkpoint() if values is not None else checkpoint_dirs(self.output_dir)[-1]
        if self.config.log_with:
            self.accelerator.end_training()
        raise TrainingInterrupted(self.progress.step, path, self.output_dir)

    def _train_step(self, real_images: torch.Tensor, labels: torch.Tensor,
                    plain_generator: ConditionalGenerator) -> dict[str, torch.Tensor]:
        real_images, labels = self._to_model_range(real_images), labels.long()
        if self.config.channels_last:
            real_images = real_images.contiguous(memory_format=torch.channels_last)
        losses = self.step(real_images, labels)
        self.progress.step += 1
        self.progress.images_seen += real_images.shape[0] * self.accelerator.num_processes
        if self.ema is not None:
            self.ema.update(plain_generator)
        return losses

    def _is_check_step(self, s: int) -> bool:
        """Log steps, the last step, and every step that writes something (grid, checkpoint):
        nothing is written from a state that has not been checked."""
        cfg = self.config
        return (s % cfg.log_every == 0 or s == self.last_step()
                or bool(cfg.sample_every and s % cfg.sample_every == 0)
                or bool(cfg.checkpoint_every and s % cfg.checkpoint_every == 0)
                or self._is_snapshot_step(s))

    def _snapshot_every(self) -> int:
        """``snapshot_every``; for ``select_snapshot="best"`` without it, a tenth of the run (0
        while a time budget has not chosen the run's length yet)."""
        cfg = self.config
        if cfg.snapshot_every or not self._snapshots_on():
            return cfg.snapshot_every
        last = self.last_step()
        return 0 if last == sys.maxsize or (self.budget is not None and self.budget.total_steps is None) \
            else max(1, last // 10)

    def _is_snapshot_step(self, s: int) -> bool:
        """Every ``snapshot_every`` steps and the last step, when snapshots are on."""
        if self.snapshots is None:
            return False
        every = self._snapshot_every()
        return s == self.last_step() or bool(every and s % every == 0)

    def _saved_generator(self, plain_generator: ConditionalGenerator) -> ConditionalGenerator:
        """The generator the run would save now: the EMA one, or the trained one without EMA."""
        return self.ema.module if self.ema is not None else plain_generator

    def _finish_loader(self):
        """Every training image once, in order: the loader a snapshot's ``finish`` reads. Its own
        loader, so the training loader's position and epoch counter stay untouched."""
        return self._train_data.loader(self.config.batch_size, shuffle=False, drop_last=False)

    def _finished_copy(self, generator: ConditionalGenerator) -> ConditionalGenerator:
        """A copy of ``generator`` as the run would save it: after the family's ``finish`` (e.g.
        ``ae`` fits its class priors). Without :class:`LabelledImages` data, a plain copy."""
        snapshot = copy.deepcopy(generator)
        if self._train_data is not None:
            self.step.finish(snapshot, self._finish_loader())
        return snapshot.eval()

    def _score_snapshot(self, generator: ConditionalGenerator) -> dict[str, float]:
        """Score a finished copy of ``generator``; the same numbers on every process (averaged)."""
        acc = self.accelerator
        with _rng_kept(acc.device):  # scoring draws no random numbers from the training's streams
            scores = self._scorer(self._finished_copy(generator))
        if not isinstance(scores, dict) or "score" not in scores:
            raise ConfigError(f"a snapshot scorer must return a dict with a 'score', got {scores!r}")
        scores = {k: float(v) for k, v in scores.items()}
        if acc.num_processes > 1:
            averaged = acc.reduce(torch.tensor(list(scores.values()), device=acc.device), reduction="mean")
            scores = dict(zip(scores, averaged.tolist()))
        return scores

    def _restore_kept_snapshot(self, final: ConditionalGenerator) -> None:
        """With ``select_snapshot="best"``, put the best snapshot's weights into ``final``."""
        kept = self.snapshots
        if kept is None or kept.select != "best" or kept.kept_weights is None or kept.kept_step == self.progress.step:
            return
        final.load_state_dict(kept.kept_weights)

    def _follow_budget(self, s: int, generator: ConditionalGenerator, bar) -> None:
        """With a time budget: time the warm-up, then choose the run's steps; later, stop early
        (making step ``s`` the last) if finishing the plan would overrun the budget."""
        budget = self.budget
        if budget is None:
            return
        if budget.total_steps is not None:  # again after a rollback restored older progress
            self.progress.planned_steps = budget.total_steps
        if budget.total_steps is None:
            if budget.warmup_done(s, self.accelerator.device):
                self.progress.planned_steps = self._plan_budget(s, self._saved_generator(generator))
                bar.total = self.progress.planned_steps
                bar.refresh()
        elif s < budget.total_steps and self._budget_behind(s):
            budget.stopped_early_at = budget.total_steps = self.progress.planned_steps = s
            bar.total = s
            warnings.warn(f"stopped at step {s} to end within the time budget of {budget.seconds:g} s; it had "
                          f"planned {budget.chosen_steps} steps from its warm-up (the machine became slower?)",
                          stacklevel=3)

    def _plan_budget(self, s: int, generator: ConditionalGenerator) -> int:
        """Measure what the run does besides steps, then let the budget choose the run's steps
        (the fewest any process chose, so that every process stops at the same step)."""
        cfg, acc = self.config, self.accelerator
        with _rng_kept(acc.device):  # measuring draws no random numbers from the training's streams
            noise = torch.Generator(device=generator.device).manual_seed(cfg.seed)
            _, grid = _timed(lambda: generator.sample_per_class(cfg.samples_per_class, generator=noise), acc.device)
            _, finish = _timed(lambda: self._finished_copy(generator), acc.device)
        snapshot = 0.0
        if self.snapshots is not None:  # timed on a real snapshot (this step's), which the selector gets
            scores, snapshot = _timed(lambda: self._score_snapshot(generator), acc.device)
            self.snapshots.offer(s, scores, generator)
        save = 2 * _serialise_seconds([generator])  # serialise + hash; writing is about as much again
        modules = [v for v in vars(self.step).values() if isinstance(v, (torch.nn.Module, torch.optim.Optimizer))]
        checkpoint = 3 * _serialise_seconds([*modules, *([self.ema] if self.ema else [])]) if cfg.checkpoint_every \
            else 0.0
        final = {"grid": grid, "finish": finish, "save": save, "checkpoint": checkpoint}
        periodic = {"grid": (grid, cfg.sample_every), "checkpoint": (checkpoint, cfg.checkpoint_every)}
        if self.snapshots is not None:
            final["snapshot"] = snapshot
            if cfg.snapshot_every:
                periodic["snapshot"] = (snapshot, cfg.snapshot_every)
            else:  # a tenth of the run apart, wherever the run ends
                final["snapshots_spread"] = 10 * snapshot
        total = self.budget.plan(s, final=final, periodic=periodic)
        if acc.num_processes > 1:
            total = int(acc.gather(torch.tensor([total], device=acc.device)).min().item())
            self.budget.total_steps = self.budget.chosen_steps = total
        return total

    def _budget_behind(self, s: int) -> bool:
        """:meth:`TimeBudget.behind`, decided together at check steps with several processes."""
        acc = self.accelerator
        if acc.num_processes == 1:
            return self.budget.behind()
        if not self._is_check_step(s):
            return False
        flag = torch.tensor(float(self.budget.behind()), device=acc.device)
        return bool(acc.reduce(flag, reduction="sum").item() > 0)

    def _read_losses(self, pending: list[dict[str, torch.Tensor]],
                     generator: torch.nn.Module) -> dict[str, float] | None:
        """Read the pending losses and a parameter check in one host transfer.

        Returns the last step's values when every one is finite. Otherwise rolls back
        (``on_divergence="rollback"``, returning ``None``) or raises :class:`TrainingDivergedError`.
        With several processes the values are averaged over them first (one all-reduce per
        check), so a NaN on any rank reaches all and every rank takes the same decision.
        """
        flat = [v.detach().float().reshape(()) for losses in pending for v in losses.values()]
        # The infinity norm is inf / NaN exactly when a parameter is: one batched reduction.
        norms = torch._foreach_norm([p.detach() for p in generator.parameters()], ord=math.inf)
        flat.append(torch.isfinite(torch.stack(norms).float()).all().float())
        packed = torch.stack(flat)
        if self.accelerator.num_processes > 1:
            packed = self.accelerator.reduce(packed, reduction="mean")
        read = packed.tolist()  # the one host sync per check
        params_finite, first = read.pop() == 1.0, self.progress.step - len(pending) + 1
        rows, i = [], 0
        for losses in pending:
            rows.append(dict(zip(losses, read[i:i + len(losses)])))
            i += len(losses)
        bad = next((n for n, row in enumerate(rows) if not all(map(math.isfinite, row.values()))), None)
        if bad is None and params_finite:
            return rows[-1]
        bad_step, values = (first + bad, rows[bad]) if bad is not None else (self.progress.step, rows[-1])
        what = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        if bad is None:
            what += ", with non-finite generator parameters"
        if self.config.on_divergence == "rollback" and checkpoint_dirs(self.output_dir):
            self._rollback(bad_step, what)
            return None
        raise TrainingDivergedError(
            f"training diverged at step {bad_step}: {what}; lower the learning rate or use "
            "on_divergence='rollback'"
        )

    def _log(self, values: dict[str, float], s: int, bar) -> None:
        values = {**values, "images_per_second": self.progress.images_seen / max(self.progress.train_seconds, 1e-9)}
        self.history.append({"step": s, **values})
        bar.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k.endswith("loss")})
        if self.config.log_with:
            self.accelerator.log(values, step=s)

    def _load_init_source(self) -> ConditionalGenerator:
        """The ``init_from`` generator, refused unless its family and image shape are the run's."""
        from ..hub.remote import from_pretrained

        name, run = self.config.init_from, self.model_config
        source = from_pretrained(name)
        family, src = type(run).family, source.config
        if source.family != family:
            raise ConfigError(
                f"init_from={name!r} holds a generator of family {source.family!r} but this run's model is of "
                f"family {family!r}, and weights only transfer within a family: train a {source.family!r} model "
                f"(--model {source.family}), or start from a generator of family {family!r}"
            )
        wrong = []
        if src.in_channels != run.in_channels:
            wrong.append(f"{src.in_channels} channel(s) where this run's images have {run.in_channels} "
                         f"(convert the images, e.g. load_data(..., channels={src.in_channels}))")
        if src.image_size != run.image_size:
            wrong.append(f"{src.image_size}x{src.image_size} pixels where this run's images are "
                         f"{run.image_size}x{run.image_size} (resize them to {src.image_size}x{src.image_size})")
        if wrong:
            raise DataError(
                f"init_from={name!r} makes images with " + " and ".join(wrong) + "; or pick a pretrained "
                f"model with in_channels={run.in_channels} and image_size={run.image_size}"
            )
        return source

    def _transfer(self, generator: ConditionalGenerator, source: ConditionalGenerator, *, dry_run: bool) -> dict:
        """Copy ``source``'s fitting tensors into ``generator`` and set :attr:`init_source`."""
        name = self.config.init_from
        same_classes = source.num_classes == generator.num_classes and source.class_names == generator.class_names
        report = transfer_weights(generator, source.state_dict(), reinit_class_dependent=not same_classes,
                                  dry_run=dry_run)
        src, run = source.config.to_dict(), self.model_config.to_dict()
        differ = ", ".join(f"{k}={src[k]!r} (this run: {run[k]!r})" for k in sorted(src)
                           if k not in ("num_classes", "class_names") and src[k] != run.get(k))
        if not report["copied"]:
            raise ConfigError(
                f"no tensor of init_from={name!r} fits this run's {generator.family} model (their configs differ "
                f"in {differ or 'nothing but the classes'}); set those config fields to the pretrained model's "
                "values (--set KEY=VALUE, model_config=) to fine-tune it"
            )
        if report["skipped"]:
            warnings.warn(
                f"{len(report['skipped'])} tensor(s) of this run's generator are not in init_from={name!r} or have "
                f"another shape there, and start from scratch: {report['skipped'][:4]}"
                f"{'...' if len(report['skipped']) > 4 else ''}; the configs differ in {differ or 'nothing'}; set "
                "those fields to the pretrained model's values to transfer them",
                stacklevel=3,
            )
        self.init_source = {
            "id": str(name),
            # The sha256 that load_generator checked against the source's safetensors metadata
            # (``augmentgen_sha256``): the same function of the same tensors.
            "sha256": tensors_sha256(generator_tensors(source)),
            "family": source.family,
            "num_classes": source.num_classes,
            "class_names": source.class_names,
            "same_classes": same_classes,
            "transfer_lr_scale": self.config.transfer_lr_scale,
            **report,
        }
        return report

    def _check_data(self, data) -> None:
        expected = self.model_config.image_shape
        if isinstance(data, LabelledImages):
            if data.image_shape != expected:
                raise DataError(
                    f"the data's images are {data.image_shape} (C, H, W) but the model expects "
                    f"{expected}; set in_channels / image_size to match, or resize the data"
                )
            if data.num_classes != self.model_config.num_classes:
                raise DataError(
                    f"the data has {data.num_classes} classes but the model config says "
                    f"{self.model_config.num_classes}"
                )

    def _to_model_range(self, images: torch.Tensor) -> torch.Tensor:
        expected = self.model_config.image_shape
        if tuple(images.shape[1:]) != expected:
            raise DataError(f"a batch has images shaped {tuple(images.shape[1:])}; the model expects {expected}")
        return to_signed_unit(images)

    def _batches(self, loader, start: int) -> Iterator:
        """An endless stream of batches; with a sized loader, batch ``start`` comes first."""
        acc = self.accelerator
        try:
            per_epoch = len(loader)
        except TypeError:
            per_epoch = 0
        if per_epoch == 0:
            while True:
                yield from loader
        epoch, skip = divmod(start, per_epoch)
        while True:
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(epoch)
            yield from (acc.skip_first_batches(loader, skip) if skip else loader)
            epoch, skip = epoch + 1, 0

    def _rollback(self, bad_step: int, what: str) -> None:
        load_newest_checkpoint(self.accelerator, self.output_dir)
        self.progress.lr_scale *= 0.5
        for opt in self.step.optimizers():
            _scale_lr(opt, 0.5)
        warnings.warn(
            f"losses became non-finite at step {bad_step} ({what}); "
            f"rolled back to step {self.progress.step} with learning rates x{self.progress.lr_scale:g}",
            stacklevel=3,
        )

    def _write_grid(self, generator: ConditionalGenerator, name: str) -> Path | None:
        if not self.accelerator.is_main_process:
            return None
        g = torch.Generator(device=generator.device).manual_seed(self.config.seed)
        images, labels = generator.sample_per_class(self.config.samples_per_class, generator=g)
        _warn_if_collapsed(images, labels, generator.class_names, self.progress.step)
        return save_sample_grid(images, self.config.samples_per_class, self.output_dir / name)

    def _write_outputs(self, generator: ConditionalGenerator) -> None:
        kept = self.snapshots
        best = kept is not None and kept.select == "best" and kept.kept_step is not None
        metadata = {"steps": str(kept.kept_step if best else self.progress.step)}
        if self.init_source is not None:
            metadata.update(augmentgen_init_from=self.init_source["id"],
                            augmentgen_init_from_sha256=self.init_source["sha256"])
        save_generator(generator, self.output_dir, metadata=metadata)
        grid = self._write_grid(generator, "samples.png")
        summary = {
            "family": self.model_config.family,
            "steps": self.progress.step,
            "train_seconds": round(self.progress.train_seconds, 2),
            "images_per_second": round(self.progress.images_seen / max(self.progress.train_seconds, 1e-9), 1),
            "steps_per_second": round(self.progress.step / max(self.progress.train_seconds, 1e-9), 3),
            "num_processes": self.accelerator.num_processes,
            "command": self.command or default_command(),
            "data": self.manifest.get("data"),
            "training_config": self.config.to_dict(),
            "sample_grid": grid.name if grid else None,
            "history": self.history,
        }
        if self.init_source is not None:
            summary["init_from"] = self.init_source
        if self.budget is not None:
            summary["time_budget"] = self.budget.record(self.progress.step)
        if kept is not None:
            summary["snapshots"] = kept.summary(self._snapshot_every(), self.progress.step)
        atomic_write_bytes(self.output_dir / "training.json", json.dumps(summary, indent=2).encode())


def _rng_kept(device: torch.device):
    """A context in which random draws leave the global CPU (and this CUDA device's) streams as they were."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def _timed(work, device: torch.device) -> tuple:
    """``work()`` and its wall seconds, the device's queued work included."""
    synchronize(device)
    begin = time.perf_counter()
    result = work()
    synchronize(device)
    return result, time.perf_counter() - begin


def _serialise_seconds(objects: list) -> float:
    """Seconds to serialise the state dicts of ``objects`` in memory and hash them: a measured
    stand-in for writing them (a final save or a checkpoint) without touching the run's folder."""
    begin = time.perf_counter()
    buffer = io.BytesIO()
    torch.save([o.state_dict() for o in objects], buffer)
    hashlib.sha256(buffer.getbuffer()).hexdigest()
    return time.perf_counter() - begin


def _scale_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] *= factor


def _warn_if_collapsed(images: torch.Tensor, labels: torch.Tensor, names: list[str], step: int) -> None:
    """Warn when all samples of a class are nearly identical (per-class mode collapse)."""
    n_per_class = int((labels == labels[0]).sum())
    if n_per_class < 2:
        return
    per_class = images.reshape(-1, n_per_class, images[0].numel())  # (classes, n, pixels)
    spread = per_class.std(dim=1).mean(dim=1)  # (classes,)
    collapsed = (spread < 0.02).nonzero().flatten().tolist()
    if collapsed and not math.isnan(float(spread.sum())):
        warnings.warn(
            f"step {step}: samples of class(es) {[names[i] for i in collapsed]} are nearly identical "
            "(per-class mode collapse); try a larger dataset, stronger DiffAugment or a lower learning rate",
            stacklevel=2,
        )


def _set_optimizer_kernel(optimizer: torch.optim.Optimizer, kernel: str) -> None:
    """Switch ``optimizer`` (before its first step) to its ``"foreach"`` or ``"fused"`` implementation.

    Torch's Adam-like optimizers read both flags from each param group at every step, so setting
    them here is what passing ``foreach=`` / ``fused=`` to the constructor would have done; the
    flags are saved in (and restored from) the optimizer's state dict.
    """
    if kernel not in optimizer.defaults:
        raise ConfigError(
            f"optimizer_kernel={kernel!r}: this family's {type(optimizer).__name__} has no {kernel} "
            "implementation; use optimizer_kernel='default'"
        )
    for group in [optimizer.defaults, *optimizer.param_groups]:
        for flag in ("foreach", "fused"):
            if flag in group:
                group[flag] = flag == kernel


def describe_data(data, model_config: GeneratorConfig) -> dict:
    """Source, size, classes, image shape and (for :class:`LabelledImages`) a sha256 fingerprint
    of ``data``: what a resumed run's data must repeat. Hashing is cheap next to training (about
    0.2 s for MNIST's 47 MB)."""
    if isinstance(data, LabelledImages):
        digest = hashlib.sha256(np.ascontiguousarray(data.images.numpy()).data)
        digest.update(np.ascontiguousarray(data.labels.numpy()).data)
        return {"source": data.source, "examples": len(data), "class_names": data.class_names,
                "num_classes": data.num_classes, "image_shape": list(data.image_shape),
                "fingerprint": digest.hexdigest()}
    try:
        examples = len(getattr(data, "dataset", data))
    except TypeError:
        examples = None
    return {"source": type(data).__name__, "examples": examples, "class_names": model_config.class_names,
            "num_classes": model_config.num_classes, "image_shape": list(model_config.image_shape),
            "fingerprint": None}


class _StopRequest:
    """Turns the first Ctrl-C (SIGINT) into a request that the loop honours after the current step.

    Stopping inside a step would checkpoint a half-updated model (a discriminator updated, its
    generator not). A second Ctrl-C interrupts at once, as usual. Installed only from the main
    thread (where Python delivers signals) and not where SIGINT is ignored (background jobs).
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None
        self._installed = False

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not signal.SIG_IGN:
                self._previous = previous
                signal.signal(signal.SIGINT, self._handle)
                self._installed = True
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc_info) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)
