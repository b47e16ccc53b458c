"""Ctrl-C during :meth:`Trainer.fit <augmentgen.training.Trainer.fit>`: finish the current step,
checkpoint it, then stop with :class:`TrainingInterrupted`.

:class:`StopRequest` turns the first Ctrl-C (SIGINT) into a request the loop honours after the
current step; the trainer then checkpoints and raises :class:`TrainingInterrupted`, which a
resumed run (``fit(data, resume=True)``, ``--resume``) continues exactly.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path


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


class StopRequest:
    """Turns the first Ctrl-C (SIGINT) into a request that the loop honours after the current step.

    Stopping inside a step would checkpoint a half-updated model (a discriminator updated, its
    generator not). A second Ctrl-C interrupts at once, as usual. Installed only from the main
    thread (where Python delivers signals) and not where SIGINT is ignored (background jobs).
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None
        self._installed = False

    def __enter__(self) -> StopRequest:
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
