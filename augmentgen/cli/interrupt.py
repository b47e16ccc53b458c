"""Ctrl-C on the command line: exit code 130 without a traceback, and for a training run or an
evaluation the command that continues it from its last checkpoint.
"""

from __future__ import annotations

import shlex
import sys

from .._processes import is_main_process


def _interrupted(args, exc: KeyboardInterrupt) -> int:
    """Ctrl-C: no traceback, exit code 130 (128 + SIGINT), and how to continue a training run."""
    if not is_main_process():
        return 130
    step = getattr(exc, "step", None)
    if step is not None:  # training.TrainingInterrupted: the last completed step is checkpointed
        print(f"augmentgen: interrupted at step {step}; saved a checkpoint in {exc.checkpoint}", file=sys.stderr)
        print(f"augmentgen: to continue the run: {_resume_command(args.argv)}", file=sys.stderr)
        return 130
    print("augmentgen: interrupted (Ctrl-C)", file=sys.stderr)
    if args.command == "eval" and "augmentgen.cli.evaluate" in sys.modules:
        from .evaluate import CHECKPOINT_FILE, _report_folder

        if (_report_folder(args) / CHECKPOINT_FILE).is_file():
            print(f"augmentgen: the finished seeds are kept in {_report_folder(args) / CHECKPOINT_FILE}; to continue "
                  f"the evaluation: {_resume_command(args.argv)}", file=sys.stderr)
    if args.command == "train" and "augmentgen.training.checkpoint" in sys.modules:
        from ..training.checkpoint import checkpoint_dirs

        if checkpoint_dirs(args.out):
            print(f"augmentgen: its newest checkpoint is {checkpoint_dirs(args.out)[-1]}; to continue the run: "
                  f"{_resume_command(args.argv)}", file=sys.stderr)
    return 130


def _resume_command(argv: list[str]) -> str:
    """The command that continues this run: the same arguments, with --resume and without --overwrite."""
    args = [a for a in argv if a != "--overwrite"]
    return shlex.join(["augmentgen", *args, *([] if "--resume" in args else ["--resume"])])
