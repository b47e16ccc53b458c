"""``augmentgen`` command line. It only parses arguments into the configs the Python API uses.

Every error augmentgen raises on purpose is printed as one ``augmentgen: error: ...`` line with
exit code 2; Ctrl-C exits with 130 (after ``train`` checkpointed its last completed step and
printed the command that resumes it).
"""

from __future__ import annotations

import argparse
import difflib
import math
import shlex
import sys
import warnings
from pathlib import Path

from ._processes import is_main_process
from ._version import __version__
from .errors import AugmentgenError, ConfigError, DataError, UnknownFamilyError

DESCRIPTION = ("Train class-conditional image generators on a small labelled dataset, sample images from them, "
               "and measure whether those images help a classifier.")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default; an unset one says so instead of 'None'."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "(default:" in text or action.default is argparse.SUPPRESS \
                or not action.option_strings:
            return text
        if action.default is None or action.default == []:
            return f"{text} (default: not set)"
        if isinstance(action.default, bool) and action.nargs == 0:
            return f"{text} (default: {'on' if action.default else 'off'})"
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one ``augmentgen: error: ...`` line (exit code 2), like every other error,
    pointing at ``--help`` instead of printing the whole usage first. Subcommands inherit it."""

    def error(self, message: str):
        self.exit(2, f"augmentgen: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``augmentgen`` command line: ``train``, ``sample``, ``eval`` and ``models``."""
    # allow_abbrev=False everywhere: with it, `--channels 3` silently meant `--channels-last`.
    parser = _Parser(prog="augmentgen", description=DESCRIPTION, formatter_class=_HelpFormatter,
                     allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"augmentgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train_command(sub)
    _add_sample_command(sub)
    _add_eval_command(sub)
    _subcommand(sub, "models", "list model families and presets")
    return parser


def _subcommand(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
                          formatter_class=_HelpFormatter, allow_abbrev=False)


class _RenamedOption(argparse.Action):
    """An option's old name: hidden from --help, stores into the new option's destination and
    records the rename, which the command notes on stderr (:func:`_note_renamed_options`)."""

    def __init__(self, option_strings, dest, *, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.renamed_options = [*getattr(namespace, "renamed_options", []), (option_string, self.new)]
        setattr(namespace, self.dest, values)


def _add_renamed_option(p: argparse.ArgumentParser, old: str, new: str) -> None:
    """Accept ``old`` as a deprecated, hidden spelling of the option ``new`` added just before."""
    target = p._option_string_actions[new]
    p.add_argument(old, dest=target.dest, type=target.type, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                   action=_RenamedOption, new=new)


def _note_renamed_options(args) -> None:
    """One stderr line per old option spelling used; refuses an option given under both names."""
    from ._deprecation import renamed_message

    for old, new in getattr(args, "renamed_options", []):
        if _given(args, new):
            raise ConfigError(f"{old} and {new} are the same option ({old} is its old name); pass only {new}")
        if is_main_process():
            print(f"augmentgen: warning: {renamed_message(old, new)}", file=sys.stderr)


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="folder with the built-in datasets' files (nothing is downloaded)")
    p.add_argument("--image-column", metavar="NAME",
                   help="Hugging Face dataset: the image column, when it is not 'image' or 'img'")
    p.add_argument("--label-column", metavar="NAME",
                   help="Hugging Face dataset: the label column, when it is not 'label' or 'labels'")


def _add_train_command(sub) -> None:
    from .training.config import TrainingConfig

    defaults = TrainingConfig()
    p = _subcommand(sub, "train", "train a class-conditional generator")
    p.add_argument("--family", default="cgan", help="model family or preset (see `augmentgen models`)")
    _add_renamed_option(p, "--model", "--family")
    p.add_argument("--data", help="your labelled images: an ImageFolder folder (one subfolder per class), an .npz "
                                  "file, hf:<path> of a saved Hugging Face dataset, or a built-in name "
                                  "(default: fashion-mnist-small, the embedded 500-image demo set, not your data)")
    _add_data_options(p)
    p.add_argument("--channels", type=int, choices=[1, 3],
                   help="convert the images to 1 (grayscale) or 3 (RGB) channels, e.g. for a folder that mixes both")
    p.add_argument("--out", default="runs/augmentgen", help="output folder of the run")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an --out that already holds a model or run, clearing its previous outputs")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest checkpoint (same data and settings, "
                        "--steps at least the run's)")
    p.add_argument("--per-class", type=int, help="train on a seeded subset of N images per class")
    p.add_argument("--imbalance", type=float, help="long-tailed subset with this majority/minority ratio")
    p.add_argument("--set", dest="model_set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a field of the model's config, e.g. --set loss=bce (repeatable)")
    helps = {"steps": "optimisation steps, one batch each (default: 2000; with --time-budget, as many as fit, "
                      "and --steps bounds them)",
             "batch_size": "images per step and process",
             "seed": "seed of the initialisation, the data order and the subsets",
             "checkpoint_every": "steps between resumable checkpoints, and the last step (0: none)",
             "keep_checkpoints": "how many of the newest checkpoints to keep",
             "sample_every": "steps between sample grids (0: only at the end)",
             "grid_per_class": "columns of the sample grids: images of each class",
             "log_every": "steps between logged losses", "num_workers": "DataLoader worker processes"}
    for name, text in helps.items():
        # --steps unset means 2000, or what --time-budget fits: leave it out of args (no "default: None").
        default = argparse.SUPPRESS if name == "steps" else getattr(defaults, name)
        p.add_argument("--" + name.replace("_", "-"), type=int, default=default, help=text)
    _add_renamed_option(p, "--samples-per-class", "--grid-per-class")
    p.add_argument("--time-budget", metavar="DURATION",
                   help="train as many steps as fit in this wall time, saving included: seconds (600) or a "
                        "duration (90s, 20m, 1h30m); --steps then bounds it")
    p.add_argument("--snapshot-every", type=int, metavar="N", default=defaults.snapshot_every,
                   help="steps between scored snapshots of the saved (EMA) generator, scored on the training "
                        "images only; the last step is always one (0: none; with --select-snapshot best, 10 "
                        "over the run)")
    p.add_argument("--select-snapshot", choices=["last", "best"], default=defaults.select_snapshot,
                   help="save the last snapshot, as without snapshots, or the best-scoring one")
    p.add_argument("--ema-decay", type=float, default=defaults.ema_decay,
                   help="decay of the generator's moving average, which is the saved generator (0: none)")
    p.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], default=defaults.mixed_precision,
                   help="autocast precision (fp16 acts on GPUs only)")
    p.add_argument("--log-with", metavar="TRACKER",
                   help="log losses to an installed tracker: tensorboard, wandb, ... or all")
    p.add_argument("--on-divergence", choices=["stop", "rollback"], default=defaults.on_divergence,
                   help="on a NaN/inf loss: stop with an error, or roll back to the last checkpoint at half the "
                        "learning rate")
    _add_transfer_and_speed_options(p, defaults)

def _add_transfer_and_speed_options(p: argparse.ArgumentParser, defaults) -> None:
    p.add_argument("--init-from", metavar="ID",
                   help="fine-tune a pretrained generator of the same family and image shape: a model folder, "
                        "a zoo id (augmentgen/cgan-mnist) or a hub id; class tables start afresh when the "
                        "classes differ")
    p.add_argument("--freeze-discriminator-layers", type=int, metavar="N",
                   default=defaults.freeze_discriminator_layers,
                   help="with --init-from: keep the first N conv blocks of the transferred encoder fixed "
                        "(FreezeD; encoder families only, a saved cgan holds no discriminator)")
    p.add_argument("--transfer-lr-scale", type=float, metavar="X", default=defaults.transfer_lr_scale,
                   help="with --init-from: learning-rate multiplier for the transferred parameters")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=defaults.compile,
                   help="torch.compile the generator and discriminator (pays off on GPUs, not on CPUs)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=defaults.channels_last,
                   help="channels-last memory layout for the modules and batches while training")
    p.add_argument("--optimizer-kernel", choices=["default", "foreach", "fused"], default=defaults.optimizer_kernel,
                   help="implementation of the family's Adam optimizers")


def _add_sample_command(sub) -> None:
    s = _subcommand(sub, "sample", "sample images from a saved generator")
    s.add_argument("--model", required=True, help="folder or hub id of a saved generator")
    s.add_argument("--per-class", type=int, default=8, help="images per class")
    s.add_argument("--out", required=True, help="output file (grid: .png, npz: .npz) or folder")
    s.add_argument("--overwrite", action="store_true",
                   help="replace an earlier export at --out (a grid or .npz file, or a folder holding an "
                        "imagefolder export's classes.json or an hf export's dataset files; not parquet, "
                        "which resumes instead); without it an existing --out is refused")
    s.add_argument("--format", choices=["grid", "imagefolder", "npz", "hf", "parquet"], default="grid",
                   help="grid: one PNG, a row per class; imagefolder: OUT/<index>_<class>/*.png plus "
                        "OUT/classes.json (class order and names, read back by load_data); npz: "
                        "images/labels/classes arrays; hf: a Hugging Face dataset folder written by save_to_disk, "
                        "for datasets.load_from_disk(OUT); parquet: Parquet shards for "
                        "datasets.load_dataset('parquet', data_dir=OUT), resumable, and shared across processes "
                        "under accelerate launch / torchrun (for large banks)")
    s.add_argument("--shard-size", type=int, default=4096,
                   help="parquet: images per Parquet shard, the unit of resuming (a rerun must repeat it)")
    s.add_argument("--batch-size", type=int, default=1024,
                   help="parquet: images per forward pass, what each process holds in memory (does not change "
                        "free samples; with --variations-of it does, so a rerun must repeat it)")
    _add_variation_options(s)
    s.add_argument("--seed", type=int, default=0, help="seed of the noise")
    s.add_argument("--temperature", default="1", metavar="T",
                   help="sampling temperature: below 1 concentrates each class's samples (0: the class's "
                        "centre), above 1 spreads them; one float, or comma-separated floats, one per class "
                        "in class order (e.g. 1,1,0.5)")
    s.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the GPU when there is one)")


def _add_variation_options(s: argparse.ArgumentParser) -> None:
    from .mixing.sources import VARIATION_MODES

    s.add_argument("--variations-of", metavar="DATA",
                   help="with --format parquet: instead of free samples, a bank of variations of these real "
                        "labelled images (same forms as train --data), each row made from one image, keeping its "
                        "label and giving its index in a source_index column; needs an encoder family (aae, vae, "
                        "ae, aegan; ddpm for --mode vary)")
    s.add_argument("--mode", choices=VARIATION_MODES,
                   help="with --variations-of: vary perturbs each image's code; interpolate / extrapolate mix it "
                        "with / push it away from the code of another image of its class (default: vary)")
    s.add_argument("--strength", type=float,
                   help="with --variations-of --mode vary: the perturbation, in units of the code's scale "
                        "(default: 0.5)")
    s.add_argument("--per-image", type=int,
                   help="with --variations-of: variations of each image of the largest class; every class gets "
                        "this times as many rows as the largest class has images (default: 4)")
    _add_data_options(s)


def _add_eval_command(sub) -> None:
    e = _subcommand(sub, "eval", "measure a generator on real data: consistency, CAS, ΔAcc, FID")
    e.add_argument("--model", required=True, help="folder or hub id of a saved generator")
    e.add_argument("--data", required=True, help="the real training data (same forms as train --data)")
    e.add_argument("--test-data", help="held-out real data; default: the test split of a built-in --data")
    _add_data_options(e)
    e.add_argument("--per-class", type=int, help="evaluate on a seeded subset of N training images per class")
    e.add_argument("--steps", type=int, default=500, help="training steps of every classifier (without --epochs)")
    e.add_argument("--epochs", type=float, default=None,
                   help="budget every classifier in passes over its real training data instead of --steps "
                        "(at least --min-steps steps); benchmarks/convergence.py measures what a dataset needs")
    e.add_argument("--min-steps", type=int, default=100, help="the fewest steps an --epochs budget gives")
    e.add_argument("--synthetic-per-class", type=int, default=200,
                   help="synthetic images per class for consistency, CAS and the distances")
    _add_renamed_option(e, "--samples-per-class", "--synthetic-per-class")
    e.add_argument("--seed", type=int, default=0, help="seed of the subsets, samples and classifiers")
    e.add_argument("--ratios", default="0,0.25,0.5,1",
                   help="comma-separated ratios (synthetic rows appended per real row of a batch) tried on a "
                        "validation split for the downstream gain; 0 lets it decide against mixing")
    e.add_argument("--methods", default="plain",
                   help="comma-separated ways of using the synthetic rows, each tried at every ratio: plain, "
                        "filter (teacher filtering), soft (teacher soft labels, credited against the same "
                        "teacher on real rows); with an encoder family also vary, interpolate, extrapolate "
                        "(rows made from the batch's real rows), vary:S for vary at strength S (0.5 otherwise; "
                        "e.g. vary:0.3,vary:0.7 lets validation choose the strength)")
    e.add_argument("--baselines", default="strong",
                   help="what you would do without a generator, each trained and the best (B) chosen on the validation "
                        "split before the synthetic methods are tried on top of it: strong (classic augmentation and "
                        "MixUp/CutMix, plus class-balanced resampling and logit adjustment when the class counts "
                        "differ by more than 2x; a few more classifier runs, counted at start-up), none (classic "
                        "augmentation alone), or comma-separated names from classic, mixup-cutmix, "
                        "balanced-sampling, logit-adjustment")
    e.add_argument("--metric", choices=["auto", "accuracy", "balanced"], default="auto",
                   help="what the validation choices and the verdict compare: accuracy, balanced (mean per-class "
                        "accuracy), or auto (balanced when the class counts differ by more than 2x)")
    e.add_argument("--repeats", type=int, default=1,
                   help="measure the downstream gain with N paired seeds and report its mean with a 95%% "
                        "interval (its classifiers are trained N times; 5 is the benchmark's choice)")
    e.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the GPU when there is one)")
    e.add_argument("--out", help="folder for eval.json and eval.png, checked writable before any work (default: the "
                                 "model folder when it is a local folder, else ./eval)")


def main(argv: list[str] | None = None) -> int:
    """Run the ``augmentgen`` command line on ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
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


def _refuse_unrecognized(parser: argparse.ArgumentParser, command: str, unknown: list[str]) -> None:
    """``unrecognized arguments: --stepz 3; did you mean --steps?`` (abbreviations are off)."""
    sub = parser._subparsers._group_actions[0].choices[command]  # the parsers of the subcommands
    options = [o for o in sub._option_string_actions if o.startswith("--")]
    guesses = {g for token in unknown if token.startswith("-")
               for g in difflib.get_close_matches(token.split("=")[0], options, n=1, cutoff=0.7)}
    hint = f"; did you mean {' or '.join(sorted(guesses))}?" if guesses else ""
    sub.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")


def _check_counts(args, counts: dict[str, str]) -> None:
    """Refuse a count option below 1, by its flag name and what it counts, before anything is loaded."""
    for name, meaning in counts.items():
        value = getattr(args, name)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} must be at least 1 ({meaning}), got {value}; pass {flag} N with N >= 1")


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    if category is UserWarning:
        return f"augmentgen: warning: {message}\n"
    return f"{filename}:{lineno}: {category.__name__}: {message}\n"


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
    if args.command == "train" and "augmentgen.training.checkpoint" in sys.modules:
        from .training.checkpoint import checkpoint_dirs

        if checkpoint_dirs(args.out):
            print(f"augmentgen: its newest checkpoint is {checkpoint_dirs(args.out)[-1]}; to continue the run: "
                  f"{_resume_command(args.argv)}", file=sys.stderr)
    return 130


def _resume_command(argv: list[str]) -> str:
    """The command that continues this run: the same arguments, with --resume and without --overwrite."""
    args = [a for a in argv if a != "--overwrite"]
    return shlex.join(["augmentgen", *args, *([] if "--resume" in args else ["--resume"])])


def _check_device(name: str | None) -> None:
    """Refuse a --device that is malformed or absent here, before any model is loaded."""
    if name is None:
        return
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"--device {name!r} is not a device ({exc}); use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {name}: no CUDA GPU is available here (torch.cuda.is_available() is "
                              "False); use --device cpu, or leave --device unset to use a GPU when there is one")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}; "
                              "pick one of them")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: Apple's MPS backend is not available here; use --device cpu")


def _train(args) -> int:
    from ._config import parse_overrides
    from .api import DEMO_DATA, train
    from .models import build_config

    _note_renamed_options(args)
    _check_counts(args, {"per_class": "training images of each class",
                         "grid_per_class": "columns of the sample grids"})
    try:
        model_set = parse_overrides(type(build_config(args.family)), args.model_set)
    except UnknownFamilyError as exc:
        raise UnknownFamilyError(f"--family {args.family}: {exc} (see `augmentgen models`)") from None
    training = {name: getattr(args, name, None) for name in (
        "steps", "batch_size", "seed", "checkpoint_every", "keep_checkpoints", "sample_every", "grid_per_class",
        "log_every", "num_workers", "ema_decay", "mixed_precision", "log_with", "on_divergence", "init_from",
        "freeze_discriminator_layers", "transfer_lr_scale", "compile", "channels_last", "optimizer_kernel",
        "time_budget", "snapshot_every", "select_snapshot")}
    data = args.data
    if data is None and is_main_process():
        print(f"augmentgen: notice: no --data given: training on {DEMO_DATA}, the embedded 500-image Fashion-MNIST "
              "DEMO set, not your images; pass --data PATH to train on yours", file=sys.stderr)
    generator = train(args.family, data or DEMO_DATA, args.out, data_dir=args.data_dir, per_class=args.per_class,
                      imbalance=args.imbalance, channels=args.channels, image_column=args.image_column,
                      label_column=args.label_column, resume=args.resume, overwrite=args.overwrite,
                      model_config=model_set, command=shlex.join(["augmentgen", *args.argv]), **training)
    if not is_main_process():  # under `accelerate launch`, one report is enough
        return 0
    out = Path(args.out)
    print(f"weights: {out / 'model.safetensors'}")
    print(f"config:  {out / 'config.json'}")
    print(f"samples: {out / 'samples.png'} (one row per class: {', '.join(generator.class_names)})")
    if args.init_from:
        import json

        report = json.loads((out / "training.json").read_text()).get("init_from", {})
        print(f"from:    {args.init_from} ({len(report.get('copied', []))} tensors copied, "
              f"{len(report.get('reinitialised', []))} class-dependent ones reinitialised, "
              f"{len(report.get('skipped', []))} skipped; see init_from in {out / 'training.json'})")
    return 0


def _sample(args) -> int:
    from .hub import from_pretrained
    from .mixing import write_samples

    # Parsed before loading, so a typo fails at once; the generator checks values and length.
    temperature = _temperature(args.temperature)
    _check_counts(args, {"per_class": "images of each class", "batch_size": "images per forward pass",
                         "per_image": "variations of each image of the largest class"})
    _check_device(args.device)
    _check_variation_options(args)
    if args.format == "parquet":
        if args.overwrite:
            raise ConfigError("--overwrite does not apply to --format parquet: rerunning the same command resumes "
                              f"the bank in {args.out}; choose a new --out to start another, or delete it yourself")
        return _sample_variation_shards(args) if args.variations_of else _sample_shards(args, temperature)
    if args.format == "grid":
        _check_grid_target(Path(args.out), args.overwrite)  # write_samples replaces a grid file without asking
    generator = from_pretrained(args.model, device=args.device)
    temperature = generator.check_temperature(temperature)
    at = "" if temperature == 1.0 else f", temperature {args.temperature}"
    try:
        path = write_samples(generator, args.per_class, args.out, args.format, seed=args.seed,
                             temperature=temperature, overwrite=args.overwrite)
    except DataError as exc:  # the library's message names its Python argument; this is the flag
        raise DataError(str(exc).replace("overwrite=True", "--overwrite")) from None
    if args.format == "grid":
        print(f"wrote {path} ({generator.num_classes} rows x {args.per_class}{at})")
        return 0
    print(f"wrote {path} ({args.format}: {args.per_class} images x {generator.num_classes} classes{at})")
    if args.format == "hf":
        print(f"load:  datasets.load_from_disk({str(path)!r})")
    return 0


def _temperature(text: str) -> float | list[float]:
    try:
        temperature = [float(t) for t in text.split(",")]
    except ValueError:
        raise ConfigError("--temperature takes a float >= 0 or comma-separated floats >= 0, one per class "
                          f"in class order (like 0.5 or 1,1,0.5); got {text!r}") from None
    return temperature[0] if len(temperature) == 1 else temperature


def _check_grid_target(out: Path, overwrite: bool) -> None:
    """A grid replaces only a file, and only with --overwrite: a file there may be another run's grid."""
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder, but --format grid writes one PNG file; pass a file path "
                          "like grid.png, or --format imagefolder to write a folder of images")
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; choose another file name, or pass --overwrite to replace it")


def _sample_shards(args, temperature) -> int:
    from accelerate import PartialState

    from .hub import from_pretrained
    from .mixing.shards import process_device, write_shards

    generator = from_pretrained(args.model, device=args.device or process_device())  # this rank's GPU
    meta = write_shards(generator, args.per_class, args.out, seed=args.seed, shard_size=args.shard_size,
                        batch_size=args.batch_size, temperature=temperature, model=args.model)
    if not PartialState().is_main_process:  # under a launcher, one report is enough
        return 0
    _report_shards(args.out, meta, "images")
    return 0


def _report_shards(out: str, meta: dict, what: str) -> None:
    """The end of a parquet run: what the bank holds, what this run made, and how to load it."""
    run = meta["last_run"]
    done = ("already complete, nothing generated" if meta.get("already_complete") else
            f"{run['images_generated']} generated now by {run['num_processes']} process(es) at "
            f"{run['images_per_second']:.0f} images/s")
    print(f"wrote {out} (parquet: {meta['rows']} {what} of {len(meta['class_names'])} classes in "
          f"{meta['shards']} shards; {done})")
    print(f"load:  datasets.load_dataset('parquet', data_dir={str(out)!r}, split='train')")


def _given(args, flag: str) -> bool:
    """Whether ``flag`` is on the command line (as ``--flag value`` or ``--flag=value``)."""
    return flag in args.argv or any(a.startswith(flag + "=") for a in args.argv)


def _check_variation_options(args) -> None:
    """--variations-of and its options go together, with --format parquet; refused before any loading."""
    variation_only = [flag for flag, value in (("--mode", args.mode), ("--strength", args.strength),
                                               ("--per-image", args.per_image), ("--data-dir", args.data_dir),
                                               ("--image-column", args.image_column),
                                               ("--label-column", args.label_column)) if value is not None]
    if args.variations_of is None:
        if variation_only:
            raise ConfigError(f"{variation_only[0]} applies to a bank of variations of real images only: add "
                              f"--variations-of DATA --format parquet, or drop {variation_only[0]}")
        return
    if args.format != "parquet":
        raise ConfigError(f"--variations-of writes its bank as Parquet shards only: add --format parquet (--format "
                          f"{args.format} exports free samples)")
    for flag in ("--per-class", "--temperature"):
        if _given(args, flag):
            raise ConfigError(f"{flag} applies to free samples, not to --variations-of: every class gets --per-image "
                              "times as many rows as the largest class has images; drop " + flag)
    if args.strength is not None and (args.mode or "vary") != "vary":
        raise ConfigError(f"--strength applies to --mode vary; --mode {args.mode} mixes two images' codes at a "
                          "random weight instead: drop --strength")
    if args.strength is not None and not (math.isfinite(args.strength) and args.strength >= 0):
        raise ConfigError(f"--strength must be a finite number >= 0 (the perturbation in units of the code's "
                          f"scale; 0 gives reconstructions), got {args.strength}")


def _sample_variation_shards(args) -> int:
    from accelerate import PartialState

    from .api import check_data_path
    from .data import load_data
    from .hub import from_pretrained
    from .mixing import VariationSource, write_variation_shards
    from .mixing.shards import process_device

    check_data_path(args.variations_of, option="--variations-of")
    generator = from_pretrained(args.model, device=args.device or process_device())  # this rank's GPU
    mode, strength = args.mode or "vary", 0.5 if args.strength is None else args.strength
    _check_methods_fit(generator, [mode], option="--variations-of with --mode")
    data = load_data(args.variations_of, data_dir=args.data_dir, channels=generator.image_shape[0],
                     image_column=args.image_column, label_column=args.label_column)
    _check_data_fits(generator, args.model, {f"--variations-of {args.variations_of}": data},
                     fix="pass images of the classes and shape it was trained on")
    source = VariationSource(generator, mode, strength=strength)
    per_image = args.per_image or 4
    main_process = PartialState().is_main_process
    if main_process:
        counts = data.class_counts
        per_class = per_image * max(counts)
        spread = f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)} to {max(counts)}"
        print(f"augmentgen sample: variations of --variations-of {args.variations_of} ({len(data)} images, "
              f"{data.num_classes} classes, {spread} per class) by the {generator.family} "
              f"generator {args.model}, mode {mode}{f' (strength {strength:g})' if mode == 'vary' else ''}: "
              f"{per_image} per image of the largest class, {per_class} rows per class, "
              f"{per_class * data.num_classes} rows in shards of up to {args.shard_size}", flush=True)
    meta = write_variation_shards(source, data.images, data.labels, args.out, per_image=per_image, seed=args.seed,
                                  shard_size=args.shard_size, batch_size=args.batch_size, model=args.model,
                                  data=args.variations_of)
    if main_process:  # under a launcher, one report is enough
        _report_shards(args.out, meta, f"variations of {meta['images']} real images")
    return 0


def _ratios(text: str) -> list[float]:
    try:
        ratios = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        ratios = []
    if not ratios or any(not r >= 0 for r in ratios):
        raise ConfigError("--ratios takes comma-separated numbers >= 0 (synthetic rows per real row) like "
                          f"0,0.25,0.5,1; got {text!r}")
    return ratios


def _methods(text: str) -> list[str]:
    from .metrics.scores import MIXING_METHODS, method_options

    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise ConfigError(f"--methods takes comma-separated names from {sorted(MIXING_METHODS)}; got {text!r}")
    for method in methods:
        try:
            method_options(method)
        except ConfigError as exc:
            raise ConfigError(f"--methods: {exc}") from None
    return methods


def _eval(args) -> int:
    from tqdm.auto import tqdm

    from .api import check_data_path
    from .data import load_data
    from .data.sources import BUILTIN_DATASETS
    from .hub import from_pretrained
    from .metrics.report import (
        evaluate_generator,
        evaluation_plan,
        format_report,
        plot_per_class,
        write_report,
    )
    from .training.run_folder import check_writable

    # Everything that can fail without computing fails first: the evaluation can take hours.
    _note_renamed_options(args)
    ratios = _ratios(args.ratios)
    methods = _methods(args.methods)
    baselines = _baselines(args.baselines)
    _check_counts(args, {"per_class": "training images of each class", "steps": "classifier training steps",
                         "min_steps": "the fewest steps of an --epochs budget",
                         "synthetic_per_class": "synthetic images of each class",
                         "repeats": "paired seeds of the downstream gain"})
    if args.epochs is not None and not (math.isfinite(args.epochs) and args.epochs > 0):
        raise ConfigError(f"--epochs must be a finite number > 0 (passes over the real training data), got "
                          f"{args.epochs}; or leave it unset to budget classifiers in --steps")
    _check_device(args.device)
    out = Path(args.out) if args.out else (Path(args.model) if Path(args.model).is_dir() else Path("eval"))
    check_writable(out, "--out" if args.out else "the report folder (--out)")
    check_data_path(args.data)
    if args.test_data:
        check_data_path(args.test_data, option="--test-data")
    elif args.data not in BUILTIN_DATASETS:
        raise DataError(f"{args.data} has no test split augmentgen knows of; pass --test-data with "
                        "held-out real images (never the training images)")

    generator = from_pretrained(args.model, device=args.device)
    _check_methods_fit(generator, methods)
    columns = {"data_dir": args.data_dir, "channels": generator.image_shape[0], "image_column": args.image_column,
               "label_column": args.label_column}
    train_data = load_data(args.data, per_class=args.per_class, seed=args.seed, **columns)
    test_data = load_data(args.test_data, **columns) if args.test_data else \
        load_data(args.data, split="test", **columns)
    held_out = f"--test-data {args.test_data}" if args.test_data else f"the test split of --data {args.data}"
    _check_data_fits(generator, args.model, {f"--data {args.data}": train_data, held_out: test_data})
    choice = dict(candidate_ratios=ratios, methods=methods, baselines=baselines, metric=args.metric,
                  repeats=args.repeats)
    plan = evaluation_plan(train_data, **choice)
    print(_eval_summary(args, generator, train_data, test_data, held_out, plan), flush=True)
    with tqdm(total=plan["classifier_runs"], unit="classifier", desc="eval", dynamic_ncols=True) as bar:
        report = evaluate_generator(generator, train_data, test_data, steps=args.steps, epochs=args.epochs,
                                    min_steps=args.min_steps, per_class=args.synthetic_per_class, seed=args.seed,
                                    device=args.device, progress=bar, **choice)
    report["baselines_requested"] = args.baselines
    print(format_report(report))
    print(f"\nwrote {write_report(report, out / 'eval.json')} and {plot_per_class(report, out / 'eval.png')}")
    return 0


def _baselines(text: str) -> str | list[str]:
    from .metrics.baselines import BASELINES, check_baselines

    try:
        return check_baselines(text)
    except ConfigError:
        raise ConfigError(f"--baselines takes strong, none, or comma-separated names from {', '.join(BASELINES)}; "
                          f"got {text!r}") from None


def _eval_summary(args, generator, train_data, test_data, held_out: str, plan: dict) -> str:
    """What `augmentgen eval` will train, printed before the first classifier starts."""
    from .metrics.classifier import classifier_steps

    counts = train_data.class_counts
    budget = (f"{args.steps} steps" if args.epochs is None else
              f"{args.epochs:g} epochs ({classifier_steps(len(train_data), 128, epochs=args.epochs, min_steps=args.min_steps)}"
              " steps on all the training data)")
    extra = plan["classifier_runs"] - plan["classifier_runs_classic_only"]
    baselines = ", ".join(plan["baselines"])
    if extra:
        baselines += (f" (up to {extra} more classifier runs than --baselines none: {plan['classifier_runs']} "
                      f"instead of {plan['classifier_runs_classic_only']})")
    balance = (f"imbalanced, {min(counts)} to {max(counts)} per class: choices by {plan['metric']}"
               if plan["imbalanced"] else f"{min(counts)} to {max(counts)} per class")
    seeds = ("1 seed (one seed is not evidence: --repeats 5 gives an interval)" if args.repeats == 1
             else f"{args.repeats} paired seeds, {args.seed} to {args.seed + args.repeats - 1}")
    return "\n".join([
        f"augmentgen eval: {generator.family} generator {args.model}",
        f"  training data: --data {args.data}, {len(train_data)} images, {train_data.num_classes} classes ({balance}); "
        "20% of each class is held out as the validation split that chooses everything",
        f"  test data:     {held_out}, {len(test_data)} images, used once per final arm",
        f"  baselines:     {baselines}",
        f"  synthetic:     {', '.join(_methods(args.methods))} at ratios {args.ratios} on top of the best baseline "
        "(ratio 0: do not mix)",
        f"  seeds:         {seeds}",
        f"  classifiers:   up to {plan['classifier_runs']} runs of {budget} each (reference, CAS, and per seed the "
        "baselines, the synthetic candidates and the final arms)",
    ])


def _check_methods_fit(generator, methods: list[str], *, option: str = "--methods") -> None:
    """A variation method the generator cannot run fails now, not after the first classifiers (eval) or
    once the data is loaded (sample --variations-of)."""
    from .mixing import VariationSource
    from .mixing.sources import VARIATION_MODES

    for method in methods:
        mode = method.partition(":")[0]  # vary:0.3 is vary at strength 0.3
        if mode in VARIATION_MODES:
            try:
                VariationSource(generator, mode)
            except ConfigError as exc:
                fix = f"or drop {method} from --methods" if option == "--methods" else "pass such a --model"
                raise ConfigError(f"{option} {method}: {exc}; {fix}") from None


def _check_data_fits(generator, model: str, data: dict, *,
                     fix: str = "evaluate it on the data it was trained on") -> None:
    """The data must have the generator's classes and image shape."""
    for where, dataset in data.items():
        if dataset.num_classes != generator.num_classes:
            raise DataError(f"{where} has {dataset.num_classes} classes but the generator --model {model} "
                            f"makes {generator.num_classes}; {fix}")
        if dataset.image_shape != generator.image_shape:
            raise DataError(f"{where} holds {dataset.image_shape} images but the generator --model {model} "
                            f"makes {generator.image_shape}; {fix}")


def _models(args) -> int:
    from .models import available_models

    for name, description in available_models().items():
        print(f"{name:12s} {description}")
    return 0


COMMANDS = {"train": _train, "sample": _sample, "eval": _eval, "models": _models}
