"""The ``augmentgen`` argument parser: its subcommands and their options, and the one-line usage
errors (an unknown option gets a "did you mean" hint). Parsing only; the commands run elsewhere.
"""

from __future__ import annotations

import argparse
import difflib

from .._version import __version__

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


def _path(text: str) -> str:
    """The value of a path or id option. An empty one (``--out ""``, an unset shell variable) is
    refused: read as a path it is the current folder, and a falsy value would pass for the option
    left out (a built-in dataset's test split instead of ``--test-data``)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the value is empty; pass a path (read as a path, an empty one is the "
                                         "current folder)")
    return text


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


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=_path, help="folder with the built-in datasets' files (nothing is downloaded)")
    p.add_argument("--image-column", metavar="NAME",
                   help="Hugging Face dataset: the image column, when it is not 'image' or 'img'")
    p.add_argument("--label-column", metavar="NAME",
                   help="Hugging Face dataset: the label column, when it is not 'label' or 'labels'")


def _add_train_command(sub) -> None:
    from ..training.config import TrainingConfig

    defaults = TrainingConfig()
    p = _subcommand(sub, "train", "train a class-conditional generator")
    p.add_argument("--family", default="cgan", help="model family or preset (see `augmentgen models`)")
    _add_renamed_option(p, "--model", "--family")
    p.add_argument("--data", type=_path,
                   help="your labelled images: an ImageFolder folder (one subfolder per class), an .npz file, "
                        "hf:<path> of a saved Hugging Face dataset, or a built-in name (default: fashion-mnist-small, "
                        "the embedded 500-image demo set, not your data)")
    _add_data_options(p)
    p.add_argument("--channels", type=int, choices=[1, 3],
                   help="convert the images to 1 (grayscale) or 3 (RGB) channels, e.g. for a folder that mixes both")
    p.add_argument("--out", type=_path, default="runs/augmentgen", help="output folder of the run")
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
    p.add_argument("--init-from", type=_path, metavar="ID",
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
    s.add_argument("--model", type=_path, required=True, help="folder or hub id of a saved generator")
    s.add_argument("--per-class", type=int, default=8, help="images per class")
    s.add_argument("--out", type=_path, required=True, help="output file (grid: .png, npz: .npz) or folder")
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
                   help="parquet only: images per Parquet shard, the unit of resuming (a rerun must repeat it)")
    s.add_argument("--batch-size", type=int, default=1024,
                   help="images per forward pass, what each process holds in memory (does not change free "
                        "samples; with --variations-of it does, so a parquet rerun must repeat it)")
    _add_variation_options(s)
    s.add_argument("--seed", type=int, default=0, help="seed of the noise")
    s.add_argument("--temperature", default="1", metavar="T",
                   help="sampling temperature: below 1 concentrates each class's samples (0: the class's "
                        "centre), above 1 spreads them; one float, or comma-separated floats, one per class "
                        "in class order (e.g. 1,1,0.5)")
    s.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the GPU when there is one)")


def _add_variation_options(s: argparse.ArgumentParser) -> None:
    from ..mixing.sources import VARIATION_MODES

    s.add_argument("--variations-of", type=_path, metavar="DATA",
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
    e.add_argument("--model", type=_path, required=True, help="folder or hub id of a saved generator")
    e.add_argument("--data", type=_path, required=True, help="the real training data (same forms as train --data)")
    e.add_argument("--test-data", type=_path, help="held-out real data; default: the test split of a built-in --data")
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
    _add_eval_choice_options(e)
    e.add_argument("--repeats", type=int, default=1,
                   help="measure the downstream gain with N paired seeds and report its mean with a 95%% "
                        "interval (its classifiers are trained N times; 5 is the benchmark's choice)")
    e.add_argument("--bank-per-image", type=int, default=None, metavar="K",
                   help="draw each synthetic arm's rows from a bank filled once from the data it trains on (K "
                        "synthetic rows per real image of its largest class, or K variations per image for vary, "
                        "interpolate, extrapolate) instead of sampling at every training step (the fills are "
                        "counted at start-up). Default: the family's, a bank of 4 for ddpm (a slow sampler), rows "
                        "sampled at every step for the others; 0 samples at every step")
    e.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the GPU when there is one)")
    e.add_argument("--out", type=_path,
                   help="folder for eval.json and eval.png, checked writable before any work (default: the model "
                        "folder when it is a local folder, else ./eval)")
    e.add_argument("--overwrite", action="store_true",
                   help="replace an earlier eval.json / eval.png / eval.checkpoint.json in --out (refused "
                        "otherwise, before any work)")
    e.add_argument("--resume", action="store_true",
                   help="continue the evaluation in --out from eval.checkpoint.json, where every finished seed "
                        "is kept (the same arguments; a larger --repeats adds seeds to a finished one)")


def _add_eval_choice_options(e) -> None:
    """The options of the downstream choice: candidates, baselines, controls, metric and its guard."""
    e.add_argument("--ratios", default="0,0.25,0.5,1",
                   help="comma-separated ratios (synthetic rows appended per real row of a batch) tried on a "
                        "validation split for the downstream gain; 0 lets it decide against mixing")
    e.add_argument("--methods", default=None,
                   help="comma-separated ways of using the synthetic rows, each tried at every ratio: plain, "
                        "filter (teacher filtering), soft (teacher soft labels, credited against the same "
                        "teacher on real rows), weighted (the rows count half a real row in the loss, no "
                        "teacher); with an encoder family also vary, interpolate, extrapolate "
                        "(rows made from the batch's real rows), vary:S for vary at strength S (0.5 otherwise; "
                        "e.g. vary:0.3,vary:0.7 lets validation choose the strength). Default: plain, and vary "
                        "where the family makes rows from real images (encoder families, ddpm)")
    e.add_argument("--baselines", default="strong",
                   help="what you would do without a generator, each trained and the best (B) chosen on the validation "
                        "split before the synthetic methods are tried on top of it: strong (classic augmentation and "
                        "MixUp/CutMix, plus class-balanced resampling and logit adjustment when the class counts "
                        "differ by more than 2x; a few more classifier runs, counted at start-up), none (classic "
                        "augmentation alone), or comma-separated names from classic, mixup-cutmix, "
                        "balanced-sampling, logit-adjustment")
    e.add_argument("--controls", default="real-rows,pixel-mix",
                   help="rows made without a generator, trained on top of B with as many rows a step as the chosen "
                        "synthetic method, so the verdict says mix only when the generator's rows beat them too: "
                        "real-rows (copies of real rows of the batch, augmented again), pixel-mix (same-class MixUp "
                        "of two real rows in pixels); none skips them (two fewer classifier runs per seed)")
    e.add_argument("--metric", choices=["auto", "accuracy", "balanced"], default="auto",
                   help="what the validation choices and the verdict compare: accuracy, balanced (mean per-class "
                        "accuracy), or auto (balanced when the class counts differ by more than 2x)")
    e.add_argument("--min-validation-z", type=float, default=1.0, metavar="Z",
                   help="mix the synthetic rows only where they beat the best baseline on the validation split by more "
                        "than Z standard errors (McNemar's z over the validation images both classifiers scored; "
                        "default 1: a lead of an image or two among a few disagreements is noise); 0 mixes on any lead")


#: What a bare word right after a command most likely meant: the Python API takes the family and
#: the model positionally (``augmentgen.train("cgan", ...)``), the command line by name.
_BARE_WORD_OPTION = {"train": "--family", "sample": "--model", "eval": "--model"}


def _refuse_bare_word(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """``augmentgen train cgan``: ``unrecognized argument: cgan; options are named: did you mean
    `augmentgen train --family cgan`?`` (before argparse, whose own error for ``sample`` or
    ``eval`` would only say that ``--model`` is missing)."""
    if len(argv) < 2 or argv[0] not in _BARE_WORD_OPTION or argv[1].startswith("-"):
        return
    sub = parser._subparsers._group_actions[0].choices[argv[0]]
    sub.error(f"unrecognized argument: {argv[1]}; options are named: did you mean "
              f"`augmentgen {argv[0]} {_BARE_WORD_OPTION[argv[0]]} {argv[1]}`?")


def _refuse_unrecognized(parser: argparse.ArgumentParser, command: str, unknown: list[str]) -> None:
    """``unrecognized arguments: --stepz 3; did you mean --steps?`` (abbreviations are off)."""
    sub = parser._subparsers._group_actions[0].choices[command]  # the parsers of the subcommands
    options = [o for o in sub._option_string_actions if o.startswith("--")]
    guesses = {g for token in unknown if token.startswith("-")
               for g in difflib.get_close_matches(token.split("=")[0], options, n=1, cutoff=0.7)}
    hint = f"; did you mean {' or '.join(sorted(guesses))}?" if guesses else ""
    if command == "train" and any(token.split("=")[0] == "--device" for token in unknown):
        # sample and eval take --device; train is placed by Accelerate, which reads the environment.
        hint = ("; train has no --device: it uses the GPU when there is one; choose one with "
                "CUDA_VISIBLE_DEVICES=N, or the CPU with ACCELERATE_USE_CPU=1")
    sub.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
