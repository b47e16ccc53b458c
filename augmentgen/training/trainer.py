"""The one trainer: an Accelerate loop shared by every model family.

The family supplies its :class:`~augmentgen.models.step.TrainingStep`, and the trainer asks it
(never the family's name) for whatever differs between families: the options it refuses, what
``compile`` wraps, the layers transfer may freeze, the generator it trains. The trainer owns
the loop, seeding, precision, the generator's EMA, resumable checkpoints, divergence checks,
sample grids, tracker logging and the final ``config.json`` + ``model.safetensors``. What is
not the loop lives beside it, one concern per module: ``transfer`` (``init_from``), ``budget``
(``time_budget``), ``snapshots`` (``snapshot_every`` / ``select_snapshot``), ``speed``
(``optimizer_kernel`` / ``channels_last`` / ``compile``), ``interrupt`` (Ctrl-C),
``divergence`` (reading the losses), ``grids``, ``report`` (the printed summary) and
``run_folder`` (the output folder and what a resume must repeat).
"""

from __future__ import annotations

import copy
import json
import os
import reprlib
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from .._images import to_signed_unit
from ..data.labelled import LabelledImages
from ..errors import ConfigError, DataError, TrainingDivergedError
from ..hub.serialization import atomic_write_bytes, save_generator
from ..models.base import ConditionalGenerator, GeneratorConfig
from ..models.registry import build_generator, config_to_dict, step_class
from .budget import TimeBudget, measure_overheads
from .checkpoint import (
    CHECKPOINT_DIR,
    checkpoint_dirs,
    load_newest_checkpoint,
    newest_manifest,
    write_checkpoint,
)
from .config import TrainingConfig, check_output_dir, check_tracker_installed
from .devices import any_process
from .divergence import first_divergence, read_pending
from .ema import GeneratorEMA, ema_with_warmup
from .grids import write_grid
from .interrupt import StopRequest, TrainingInterrupted
from .report import allocation_error, describe_steps, print_summary
from .run_folder import (
    RESUME_FIELDS,
    check_resume_matches,
    check_run_folder,
    default_command,
    describe_data,
    prepare_run_folder,
)
from .snapshots import (
    SNAPSHOT_FIELDS,
    SnapshotScorerFactory,
    SnapshotSelector,
    build_scorer,
    check_snapshot_data,
    check_snapshot_resume,
    score_snapshot,
    snapshot_interval,
    snapshots_on,
)
from .speed import apply_speed_options
from .transfer import freeze_feature_blocks, load_init_source, scale_transferred_lr, transfer_from

__all__ = ["CHECKPOINT_DIR", "GeneratorEMA", "Trainer", "TrainingInterrupted", "TrainingProgress", "ema_with_warmup"]


class TrainingProgress:
    """The trainer's own resumable state (registered with Accelerate's checkpointing): the
    counters, and the logged history, so that a resumed run's ``training.json`` holds every
    logged step, as an uninterrupted run's does."""

    def __init__(self) -> None:
        self.step = 0
        self.images_seen = 0
        self.train_seconds = 0.0
        self.lr_scale = 1.0
        self.planned_steps: int | None = None  # the steps a time budget chose (kept on resume)
        self.history: list[dict[str, float]] = []  # one entry per logged step

    def state_dict(self) -> dict:
        """The counters and the history, for Accelerate's checkpoint."""
        return {**vars(self), "history": [dict(row) for row in self.history]}

    def load_state_dict(self, state: dict) -> None:
        """Restore the counters and the history of a checkpoint (one written before the history
        was kept restores an empty one)."""
        vars(self).update({"history": [], **state})


def _check_configs(model_config, training_config) -> None:
    """``Trainer(model_config, training_config)`` takes the configs as objects, not dicts or names."""
    if not isinstance(model_config, GeneratorConfig):
        raise ConfigError(f"Trainer takes a model config first, e.g. build_config('cgan', num_classes=10), got the "
                          f"{type(model_config).__name__} {reprlib.repr(model_config)}")
    if training_config is not None and not isinstance(training_config, TrainingConfig):
        fix = "TrainingConfig.from_dict(...)" if isinstance(training_config, dict) else "TrainingConfig(steps=2000)"
        raise ConfigError(f"training_config must be a TrainingConfig or None (pass {fix}), got the "
                          f"{type(training_config).__name__} {reprlib.repr(training_config)}")


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
        _check_configs(model_config, training_config)
        check_output_dir(output_dir)
        self.model_config = model_config
        self.snapshot_scorer = snapshot_scorer
        self.config = training_config or TrainingConfig()
        self.output_dir = Path(output_dir).expanduser()  # the folder check_writable checked
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

    @property
    def history(self) -> list[dict[str, float]]:
        """The run's logged losses, one dict per logged step (``{"step": ..., "<name>_loss": ...,
        "images_per_second": ...}``); a resumed run continues the history of its checkpoint."""
        return self.progress.history

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
        cfg, acc = self.config, self.accelerator
        # The family refuses what it cannot train with, before anything is built or written.
        step_class(self.model_config.family).check_training_options(self.model_config, cfg)
        check_snapshot_data(cfg, data)
        check_run_folder(self.output_dir, resume=resume, overwrite=overwrite, steps=self._step_bound(),
                         init_from=cfg.init_from)
        self._check_data(data)
        self.manifest = self._describe_run(data)
        resuming = resume and bool(checkpoint_dirs(self.output_dir))  # only a partial first one: start anew
        saved = newest_manifest(self.output_dir) if resuming else None
        if saved is not None:
            check_resume_matches(self.output_dir, saved, self.manifest)
            check_snapshot_resume(cfg, saved, self.output_dir)
        self.budget = TimeBudget(cfg.time_budget, cfg.steps, clock) if cfg.time_budget is not None else None
        plain_generator = self._build_or_explain(resuming)
        loader = self._prepare_data(data)
        # Only now, with every check passed, is anything in the folder changed.
        self._start(resume, overwrite)
        self._train_data = data if isinstance(data, LabelledImages) else None
        if snapshots_on(cfg):  # the default scorer trains its classifier on the data here
            self._scorer = build_scorer(self.snapshot_scorer, data, seed=cfg.seed, device=acc.device)
        if self.budget is not None and self.progress.planned_steps is not None:
            self.budget.adopt(self.progress.planned_steps)
        print_summary(self.model_config, cfg, acc, data=data, described=self.manifest["data"],
                      steps=describe_steps(cfg, self.budget), resumed_at=self.progress.step if resuming else None,
                      output_dir=self.output_dir)
        self._train(loader, plain_generator)

        final = self._saved_generator(plain_generator)
        if self.snapshots is not None:  # with select_snapshot="best", the best snapshot's weights
            self.snapshots.restore_best(final, self.progress.step)
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

    def _build(self, resume: bool) -> ConditionalGenerator:
        """Seed, build the generator (from ``init_from`` when set) and the family's step, apply the
        speed options and set up the EMA; returns the plain (unwrapped, uncompiled) generator."""
        acc, cfg = self.accelerator, self.config
        self.init_source = None
        # Loaded (and checked against the run's family and image shape) before anything is
        # built or written, and before seeding, so the run draws the same random numbers.
        source = load_init_source(cfg.init_from, self.model_config) if cfg.init_from else None
        set_seed(cfg.seed)  # before building the model: the seed also fixes the initialisation
        generator = build_generator(self.model_config)
        if source is not None:
            # A resumed run's weights come from its checkpoint: only the report is recomputed,
            # so that freezing and param groups are set up as in the run that wrote it.
            self.init_source = transfer_from(generator, source, name=cfg.init_from, run=self.model_config,
                                             lr_scale=cfg.transfer_lr_scale, dry_run=resume)
            n = cfg.freeze_discriminator_layers  # before prepare: DDP decides then what to synchronise
            self.init_source["frozen"] = freeze_feature_blocks(generator, n, self.init_source["copied"]) if n else []
            source = None  # only its tensors were needed
        step = step_class(self.model_config.family)(generator, acc)
        step.prepare()
        self.step = step
        plain_generator = step.trained_generator()
        if self.init_source is not None and cfg.transfer_lr_scale != 1.0:
            scale_transferred_lr(step.optimizers(), plain_generator, self.init_source["copied"],
                                 cfg.transfer_lr_scale)
        self.channels_last = apply_speed_options(step, cfg, acc)
        self.ema = None
        if cfg.ema_decay > 0:
            self.ema = GeneratorEMA(plain_generator, cfg.ema_decay)
            acc.register_for_checkpointing(self.ema)
        acc.register_for_checkpointing(self.progress)
        self.snapshots = None
        if snapshots_on(cfg):  # registered last: checkpoints without snapshots keep their layout
            self.snapshots = SnapshotSelector(cfg.select_snapshot)
            acc.register_for_checkpointing(self.snapshots)
        return plain_generator

    def _prepare_data(self, data):
        cfg, acc = self.config, self.accelerator
        if isinstance(data, LabelledImages) and cfg.batch_size > len(data) and acc.is_main_process:
            # LabelledImages.loader caps the batch at the data's size (drop_last would leave no batch).
            warnings.warn(f"batch_size={cfg.batch_size} is more than the {len(data)} training images: every step "
                          f"trains on all {len(data)} of them; pass --batch-size {len(data)} or less "
                          f"(batch_size={len(data)}) to make that the setting", stacklevel=3)
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
            error = allocation_error(exc, self.model_config)
            if error is None:
                raise
            raise error from exc

    def _describe_run(self, data) -> dict:
        """The manifest every checkpoint records, which a resume must match."""
        training = self.config.to_dict()
        return {"model": config_to_dict(self.model_config),
                # steps: what a resume given no steps continues to (it need not match).
                "training": {k: training[k] for k in (*RESUME_FIELDS, *SNAPSHOT_FIELDS, "steps")},
                "data": describe_data(data, self.model_config)}

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
        with StopRequest() as stop:
            while self.progress.step < self.last_step():
                pending.append(self._train_step(*next(batches), plain_generator))
                bar.update(1)
                s = self.progress.step
                self._follow_budget(s, plain_generator, bar)
                if self._agreed(stop.requested, s):
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

    def _agreed(self, flag: bool, s: int) -> bool:
        """``flag`` (Ctrl-C pressed, the budget overrun); with several processes, set on any of
        them, decided together at check steps so that every rank acts at the same step."""
        if self.accelerator.num_processes > 1 and not self._is_check_step(s):
            return False
        return any_process(self.accelerator, flag)

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
        if self.channels_last:
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
        """:func:`~augmentgen.training.snapshots.snapshot_interval` of this run, whose length is
        unknown without ``steps`` or while a time budget has not chosen it."""
        last = self.last_step()
        unknown = last == sys.maxsize or (self.budget is not None and self.budget.total_steps is None)
        return snapshot_interval(self.config, None if unknown else last)

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
        return score_snapshot(lambda: self._scorer(self._finished_copy(generator)), self.accelerator)

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
        elif s < budget.total_steps and self._agreed(budget.behind(), s):
            budget.stopped_early_at = budget.total_steps = self.progress.planned_steps = s
            bar.total = s
            warnings.warn(f"stopped at step {s} to end within the time budget of {budget.seconds:g} s; it had "
                          f"planned {budget.chosen_steps} steps from its warm-up (the machine became slower?)",
                          stacklevel=3)

    def _plan_budget(self, s: int, generator: ConditionalGenerator) -> int:
        """Measure what the run does besides steps, then let the budget choose the run's steps
        (the fewest any process chose, so that every process stops at the same step)."""
        cfg, acc = self.config, self.accelerator
        checkpointed = [v for v in vars(self.step).values() if isinstance(v, (torch.nn.Module, torch.optim.Optimizer))]
        final, periodic, scores = measure_overheads(
            generator, config=cfg, device=acc.device, finished_copy=self._finished_copy,
            score=self._score_snapshot if self.snapshots is not None else None,
            checkpointed=[*checkpointed, *([self.ema] if self.ema else [])])
        if scores is not None:  # timed on a real snapshot (this step's), which the selector gets
            self.snapshots.offer(s, scores, generator)
        total = self.budget.plan(s, final=final, periodic=periodic)
        over = self.budget.overrun()
        if over > 0 and acc.is_main_process:  # the warm-up alone did not fit: say so, not only in training.json
            warnings.warn(f"the time budget of {self.budget.seconds:g} s ended during the warm-up ({s} steps and the "
                          f"measurements took {self.budget.elapsed():.1f} s): the run stops at step {s} and ends "
                          f"about {over:.1f} s over it; give a budget of a few minutes, or --steps instead",
                          stacklevel=4)
        if acc.num_processes > 1:
            total = int(acc.gather(torch.tensor([total], device=acc.device)).min().item())
            self.budget.total_steps = self.budget.chosen_steps = total
        return total

    def _read_losses(self, pending: list[dict[str, torch.Tensor]],
                     generator: torch.nn.Module) -> dict[str, float] | None:
        """Read the pending losses and a parameter check in one host transfer
        (:mod:`~augmentgen.training.divergence`).

        Returns the last step's values when every one is finite. Otherwise rolls back
        (``on_divergence="rollback"``, returning ``None``) or raises :class:`TrainingDivergedError`.
        """
        rows, params_finite = read_pending(pending, generator, self.accelerator)
        diverged = first_divergence(rows, params_finite, self.progress.step)
        if diverged is None:
            return rows[-1]
        bad_step, what = diverged
        if self.config.on_divergence == "rollback" and checkpoint_dirs(self.output_dir):
            self._rollback(bad_step, what)
            return None
        if self.config.on_divergence == "rollback":  # before the first checkpoint: nothing to go back to
            fix = (f"lower the learning rate, or checkpoint sooner (checkpoint_every={self.config.checkpoint_every}) "
                   "so that on_divergence='rollback' has a checkpoint to go back to")
        else:
            fix = "lower the learning rate or use on_divergence='rollback'"
        raise TrainingDivergedError(f"training diverged at step {bad_step}: {what}; {fix}")

    def _log(self, values: dict[str, float], s: int, bar) -> None:
        values = {**values, "images_per_second": self.progress.images_seen / max(self.progress.train_seconds, 1e-9)}
        self.progress.history.append({"step": s, **values})
        bar.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k.endswith("loss")})
        if self.config.log_with:
            self.accelerator.log(values, step=s)

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
            for group in opt.param_groups:
                group["lr"] *= 0.5
        warnings.warn(
            f"losses became non-finite at step {bad_step} ({what}); "
            f"rolled back to step {self.progress.step} with learning rates x{self.progress.lr_scale:g}",
            stacklevel=3,
        )

    def _write_grid(self, generator: ConditionalGenerator, name: str) -> Path | None:
        if not self.accelerator.is_main_process:
            return None
        return write_grid(generator, self.output_dir / name, per_class=self.config.grid_per_class,
                          seed=self.config.seed, step=self.progress.step)

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
            "history": self.progress.history,
        }
        if self.init_source is not None:
            summary["init_from"] = self.init_source
        if self.budget is not None:
            summary["time_budget"] = self.budget.record(self.progress.step)
        if kept is not None:
            summary["snapshots"] = kept.summary(self._snapshot_every(), self.progress.step)
        atomic_write_bytes(self.output_dir / "training.json", json.dumps(summary, indent=2).encode())

