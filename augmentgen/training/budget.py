"""Training to a time budget: how many steps fit in ``TrainingConfig.time_budget`` seconds.

The budget is the wall time of :meth:`Trainer.fit <augmentgen.training.Trainer.fit>` from its
start to its return, the final save included. The trainer runs a short warm-up, then fixes the
run's number of steps once (so that everything set from it, the progress bar, the last log,
grid, checkpoint and snapshot steps, is set from one number):

1. the first step is not timed: it pays the start-up costs (allocator, kernels, lazy
   initialisation, compilation) that no later step repeats;
2. the next :data:`WARMUP_STEPS` steps are timed with ``time.perf_counter`` (the device is
   synchronised at both ends, so queued GPU work is counted), giving the seconds per step;
3. the trainer measures what the rest of the run writes besides steps: a sample grid, a
   checkpoint, a scored snapshot, the family's ``finish`` and the final save
   (:meth:`TimeBudget.plan` takes them as seconds each);
4. the steps are then ``(budget * TARGET - elapsed - final writes) / (seconds per step + the
   periodic writes' share of a step)``, at most ``steps`` when that is given.

A safety net stops the loop early (at a step that then becomes the last one, checked and
checkpointed as usual) if the run falls behind its plan so far that finishing the plan would
overrun the budget, e.g. when the machine becomes busier mid-run.

Resuming a budgeted run: the step count the run chose is kept (it is in the checkpoint), so a
resumed run ends at the step the uninterrupted one would have, whatever this process's speed;
only a run interrupted before it chose (during its warm-up) measures again, with this process's
time counting against the budget. To train a finished budgeted run further, resume it with
``steps`` and without ``time_budget``.
"""

from __future__ import annotations

import hashlib
import io
import math
import time
from collections.abc import Callable

import torch

from ..models.base import ConditionalGenerator
from .devices import rng_kept, synchronize

#: Timed steps after the (untimed) first one.
WARMUP_STEPS = 5
#: The share of the budget the plan aims to use: the rest absorbs timing noise.
TARGET = 0.97


class TimeBudget:
    """The clock and the plan of one budgeted ``fit``.

    Args:
        seconds: the budget (``TrainingConfig.time_budget``).
        step_limit: the most steps the run may take (``TrainingConfig.steps``), or ``None``.
        start: ``time.perf_counter()`` when ``fit`` began.
    """

    def __init__(self, seconds: float, step_limit: int | None, start: float):
        self.seconds = float(seconds)
        self.step_limit = step_limit
        self.start = start
        #: The steps this run trains, once fixed (by :meth:`plan`, or from a resumed checkpoint);
        #: lowered to the current step if the safety net stops the run early.
        self.total_steps: int | None = None
        #: The steps the plan chose (kept when the safety net stops the run early).
        self.chosen_steps: int | None = None
        self.step_seconds: float | None = None
        self.overheads: dict[str, float] = {}
        self.stopped_early_at: int | None = None
        #: Whether :attr:`total_steps` came from the checkpoint of a resumed run (not enforced then).
        self.resumed_plan = False
        self._final = 0.0
        self._first_step: int | None = None
        self._timer: tuple[int, float] | None = None  # (step, clock) when timing began

    def elapsed(self) -> float:
        """Seconds since ``fit`` began."""
        return time.perf_counter() - self.start

    def warmup_done(self, step: int, device: torch.device) -> bool:
        """Call after every update while :attr:`total_steps` is unset; True once the warm-up has
        timed enough steps for :meth:`plan`."""
        if self._first_step is None:
            self._first_step = step
        if step == self._first_step:
            synchronize(device)  # the first step's start-up costs end here, outside the timing
            self._timer = (step, time.perf_counter())
            return False
        if step - self._timer[0] < WARMUP_STEPS:
            return False
        synchronize(device)
        self.step_seconds = (time.perf_counter() - self._timer[1]) / (step - self._timer[0])
        return True

    def plan(self, step: int, *, final: dict[str, float], periodic: dict[str, tuple[float, int]]) -> int:
        """Fix :attr:`total_steps` from the measured step time and the run's other costs.

        Args:
            step: the step just completed.
            final: seconds of each thing written once after the last step (grid, save, ...).
            periodic: ``name -> (seconds, every)`` for what is written every ``every`` steps.
        """
        per_step = self.step_seconds + sum(cost / every for cost, every in periodic.values() if every)
        self.overheads = {**{k: round(v, 4) for k, v in final.items()},
                          **{f"{k}_every_{every}": round(cost, 4) for k, (cost, every) in periodic.items() if every}}
        self._final = sum(final.values())
        room = self.seconds * TARGET - self.elapsed() - self._final
        more = max(0, math.floor(room / max(per_step, 1e-9)))
        total = step + more
        if self.step_limit is not None:
            total = min(total, self.step_limit)
        self.total_steps = self.chosen_steps = max(total, step)
        return self.total_steps

    def adopt(self, total_steps: int) -> None:
        """Keep the step count a resumed run's first process chose (see the module docstring)."""
        limit = self.step_limit if self.step_limit is not None else total_steps
        self.total_steps, self.resumed_plan = min(total_steps, limit), True
        self.chosen_steps = self.total_steps

    def overrun(self) -> float:
        """Seconds by which stopping now (the final writes included) would end past the budget;
        at most 0 while the run is within it."""
        return self.elapsed() + self._final - self.seconds

    def behind(self) -> bool:
        """Whether the run must stop now to end within the budget (the safety net)."""
        return not self.resumed_plan and self.overrun() > 0

    def record(self, steps_done: int) -> dict:
        """What ``training.json`` records of the budget."""
        return {"seconds": self.seconds, "step_limit": self.step_limit, "chosen_steps": self.chosen_steps,
                "steps_done": steps_done, "warmup_steps": WARMUP_STEPS, "resumed_plan": self.resumed_plan,
                "step_seconds": None if self.step_seconds is None else round(self.step_seconds, 6),
                "overhead_seconds": self.overheads, "stopped_early_at": self.stopped_early_at,
                "elapsed_seconds_at_save": round(self.elapsed(), 3)}


def timed(work: Callable, device: torch.device) -> tuple:
    """``work()`` and its wall seconds, the device's queued work included."""
    synchronize(device)
    begin = time.perf_counter()
    result = work()
    synchronize(device)
    return result, time.perf_counter() - begin


def serialise_seconds(objects: list) -> float:
    """Seconds to serialise the state dicts of ``objects`` in memory and hash them: a measured
    stand-in for writing them (a final save or a checkpoint) without touching the run's folder."""
    begin = time.perf_counter()
    buffer = io.BytesIO()
    torch.save([o.state_dict() for o in objects], buffer)
    hashlib.sha256(buffer.getbuffer()).hexdigest()
    return time.perf_counter() - begin


def measure_overheads(generator: ConditionalGenerator, *, config, device: torch.device,
                      finished_copy: Callable, score: Callable | None,
                      checkpointed: list) -> tuple[dict[str, float], dict[str, tuple[float, int]], dict | None]:
    """Time what a run does besides steps, on ``generator`` (the one it would save), for
    :meth:`TimeBudget.plan`: a sample grid, ``finished_copy`` (the family's ``finish``), a
    scored snapshot (with ``score``), the final save and a checkpoint of ``checkpointed`` (the
    objects a checkpoint holds), the last two serialised in memory.

    Returns ``(final, periodic, scores)``: the arguments of :meth:`TimeBudget.plan` and the
    snapshot's scores (``None`` without ``score``), which the selector can take as a real
    snapshot of this step. Draws no random number from the training's streams.
    """
    with rng_kept(device):
        noise = torch.Generator(device=generator.device).manual_seed(config.seed)
        _, grid = timed(lambda: generator.sample_per_class(config.grid_per_class, generator=noise), device)
        _, finish = timed(lambda: finished_copy(generator), device)
    scores, snapshot = timed(lambda: score(generator), device) if score is not None else (None, 0.0)
    save = 2 * serialise_seconds([generator])  # serialise + hash; writing is about as much again
    checkpoint = 3 * serialise_seconds(checkpointed) if config.checkpoint_every else 0.0
    final = {"grid": grid, "finish": finish, "save": save, "checkpoint": checkpoint}
    periodic = {"grid": (grid, config.sample_every), "checkpoint": (checkpoint, config.checkpoint_every)}
    if score is not None:
        final["snapshot"] = snapshot
        if config.snapshot_every:
            periodic["snapshot"] = (snapshot, config.snapshot_every)
        else:  # a tenth of the run apart, wherever the run ends
            final["snapshots_spread"] = 10 * snapshot
    return final, periodic, scores
