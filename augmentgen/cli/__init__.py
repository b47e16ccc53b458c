"""``augmentgen`` command line. It only parses arguments into the configs the Python API uses.

Every error augmentgen raises on purpose is printed as one ``augmentgen: error: ...`` line with
exit code 2; Ctrl-C exits with 130 (after ``train`` checkpointed its last completed step and
printed the command that resumes it).

The package holds one module per command (:mod:`.train`, :mod:`.sample`, :mod:`.evaluate`,
:mod:`.list_models`), the parser (:mod:`.parser`), the argument checks the commands share
(:mod:`.checks`) and Ctrl-C's handling (:mod:`.interrupt`).
"""

from __future__ import annotations

import sys
import warnings

from .._processes import is_main_process
from ..errors import AugmentgenError
from .evaluate import _eval
from .interrupt import _interrupted
from .list_models import _models
from .parser import _refuse_bare_word, _refuse_unrecognized, build_parser
from .sample import _sample
from .train import _train

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``augmentgen`` command line on ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    _refuse_bare_word(parser, argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _refuse_unrecognized(parser, args.command, unknown)
    args.argv = argv
    format_warning = warnings.formatwarning
    warnings.formatwarning = _one_line_warning  # the library's warnings are messages for the user
    try:
        return COMMANDS[args.command](args)
    except AugmentgenError as exc:
        if is_main_process():
            print(f"augmentgen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return _interrupted(args, exc)
    finally:
        warnings.formatwarning = format_warning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    if category is UserWarning:
        return f"augmentgen: warning: {message}\n"
    return f"{filename}:{lineno}: {category.__name__}: {message}\n"


COMMANDS = {"train": _train, "sample": _sample, "eval": _eval, "models": _models}
