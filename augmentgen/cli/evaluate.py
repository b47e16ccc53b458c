"""``augmentgen eval``: every option checked before any work, a summary of the classifier runs it
will take, then the report of :func:`augmentgen.evaluate_generator` written as eval.json and eval.png.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from ..errors import ConfigError, DataError
from .checks import (
    _check_counts,
    _check_data_fits,
    _check_device,
    _check_methods_fit,
    _load_named,
    _note_renamed_options,
)


def _ratios(text: str) -> list[float]:
    try:
        ratios = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        ratios = []
    if not ratios or any(not (math.isfinite(r) and r >= 0) for r in ratios):
        raise ConfigError("--ratios takes comma-separated finite numbers >= 0 (synthetic rows per real row) like "
                          f"0,0.25,0.5,1; got {text!r}")
    return ratios


def _methods(text: str) -> list[str]:
    from ..metrics.scores import MIXING_METHODS, method_options

    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise ConfigError(f"--methods takes comma-separated names from {sorted(MIXING_METHODS)}; got {text!r}")
    for method in methods:
        try:
            method_options(method)
        except ConfigError as exc:
            raise ConfigError(f"--methods: {exc}") from None
    return methods


#: What ``augmentgen eval`` writes into ``--out``.
REPORT_FILES = ("eval.json", "eval.png")
#: The finished seeds, written after each (see :mod:`augmentgen.metrics.eval_checkpoint`).
CHECKPOINT_FILE = "eval.checkpoint.json"


def _check_no_earlier_report(out: Path, overwrite: bool, resume: bool) -> None:
    """An earlier evaluation's report and finished seeds are the user's work (hours of classifiers):
    refuse to replace them without ``--overwrite``, before anything is computed; ``--resume``
    continues from the finished seeds (and rewrites the report with the seeds added)."""
    if overwrite and resume:
        raise ConfigError("--overwrite starts the evaluation over and --resume continues it: pass one of them")
    checkpoint = out / CHECKPOINT_FILE
    if resume:
        if not checkpoint.is_file():
            raise ConfigError(f"nothing to resume: {out} holds no {CHECKPOINT_FILE} (an evaluation of this version "
                              "writes it after each seed); run without --resume to start one")
        return
    if overwrite:
        return
    earlier = [name for name in (*REPORT_FILES, CHECKPOINT_FILE) if (out / name).exists()]
    if checkpoint.is_file():
        raise ConfigError(f"{out} already holds an evaluation ({', '.join(earlier)}: its finished seeds); nothing "
                          "was computed. Pass --resume to continue it (or add seeds with a larger --repeats), "
                          "--overwrite to start over, or --out another folder to keep both")
    if earlier:
        raise ConfigError(f"{out} already holds an evaluation report ({', '.join(earlier)}); nothing was computed. "
                          "Pass --overwrite to replace it, or --out another folder to keep both")


def _eval(args) -> int:
    from tqdm.auto import tqdm

    from ..hub import from_pretrained
    from ..metrics.report import (
        bank_folder_of,
        evaluate_generator,
        evaluation_plan,
        format_report,
        plot_per_class,
        write_report,
    )
    from ..metrics.scores import check_bank_per_image, resolve_methods
    from ..metrics.splits import check_held_out
    from ..models import sampling_progress

    out, choice = _check_eval_arguments(args)  # the evaluation can take hours: what can fail fails first
    generator = from_pretrained(args.model, device=args.device)
    choice["methods"] = list(resolve_methods(choice["methods"], generator))
    _check_methods_fit(generator, choice["methods"])
    choice["bank_per_image"] = check_bank_per_image(choice["bank_per_image"], generator)
    columns = {"data_dir": args.data_dir, "channels": generator.image_shape[0], "image_column": args.image_column,
               "label_column": args.label_column}
    train_data = _load_named("--data", args.data, per_class=args.per_class, seed=args.seed, **columns)
    test_data = _load_named("--test-data", args.test_data, **columns) if args.test_data else \
        _load_named("--data", args.data, split="test", **columns)
    held_out = f"--test-data {args.test_data}" if args.test_data else f"the test split of --data {args.data}"
    # Class names: downstream_gain compares them (one warning, not two).
    _check_data_fits(generator, args.model, {f"--data {args.data}": train_data, held_out: test_data}, names=False)
    check_held_out(train_data, test_data, test=held_out)
    plan = evaluation_plan(train_data, **choice)
    checkpoint = out / CHECKPOINT_FILE
    if args.overwrite:  # asked for: the earlier evaluation's seeds would otherwise be refused as another's
        checkpoint.unlink(missing_ok=True)
        shutil.rmtree(bank_folder_of(checkpoint), ignore_errors=True)  # and the banks of its seed under way
    print(_eval_summary(args, generator, train_data, test_data, held_out, plan), flush=True)
    # Two bars: the classifiers (the phase beside it), and every image the generator makes (the
    # measured set, the banks or the rows sampled in the steps), which a ddpm advances per denoising step.
    with tqdm(total=plan["classifier_runs"], unit="classifier", desc="eval", dynamic_ncols=True) as bar, \
            tqdm(unit="img", desc="sampled", dynamic_ncols=True) as images, sampling_progress(images):
        report = evaluate_generator(generator, train_data, test_data, steps=args.steps, epochs=args.epochs,
                                    min_steps=args.min_steps, per_class=args.synthetic_per_class, seed=args.seed,
                                    device=args.device, progress=bar, checkpoint_file=checkpoint, **choice)
    report["baselines_requested"] = args.baselines
    print(format_report(report))
    json_path, png_path = (out / name for name in REPORT_FILES)
    print(f"\nwrote {write_report(report, json_path)} and {plot_per_class(report, png_path)}")
    return 0


def _report_folder(args) -> Path:
    """--out, or the model folder when it is a local folder, else ./eval."""
    return Path(args.out) if args.out else (Path(args.model) if Path(args.model).is_dir() else Path("eval"))


def _check_eval_arguments(args) -> tuple[Path, dict]:
    """Every check that needs no model or data: the report folder, and the choice's options for
    :func:`~augmentgen.metrics.report.evaluate_generator`."""
    from .._io import check_writable
    from .._seeds import check_seed
    from ..api import check_data_path, check_output_outside_data
    from ..data.sources import BUILTIN_DATASETS

    _note_renamed_options(args)
    choice = dict(candidate_ratios=_ratios(args.ratios),
                  # unset: the family's candidates (plain, and vary where it makes rows from real images)
                  methods="auto" if args.methods is None else _methods(args.methods),
                  baselines=_baselines(args.baselines), controls=_controls(args.controls), metric=args.metric,
                  repeats=args.repeats, min_validation_z=_min_validation_z(args.min_validation_z),
                  # unset: the family's default (a bank for ddpm); 0: rows sampled at every step
                  bank_per_image="auto" if args.bank_per_image is None else args.bank_per_image or None)
    _check_counts(args, {"per_class": "training images of each class", "steps": "classifier training steps",
                         "synthetic_per_class": "synthetic images of each class",
                         "repeats": "paired seeds of the downstream gain"})
    _check_counts(args, {"bank_per_image": "synthetic rows per real image in each bank; 0 samples them at "
                                           "every step"}, least=0)
    _check_counts(args, {"min_steps": "the fewest steps of an --epochs budget; 0 sets no floor"}, least=0)
    check_seed(args.seed, "--seed", use="it seeds the subsets, the samples and the classifiers", bits=63)
    if args.epochs is not None and not (math.isfinite(args.epochs) and args.epochs > 0):
        raise ConfigError(f"--epochs must be a finite number > 0 (passes over the real training data), got "
                          f"{args.epochs}; or leave it unset to budget classifiers in --steps")
    _check_device(args.device)
    out = _report_folder(args)
    check_writable(out, "--out" if args.out else "the report folder (--out)")
    _check_no_earlier_report(out, args.overwrite, args.resume)
    check_data_path(args.data)
    report = f"the report ({', '.join(REPORT_FILES)})"
    check_output_outside_data(args.data, out, writes=report)
    if args.test_data:
        check_data_path(args.test_data, option="--test-data")
        check_output_outside_data(args.test_data, out, option="--test-data", writes=report)
    elif args.data not in BUILTIN_DATASETS:
        raise DataError(f"{args.data} has no test split augmentgen knows of; pass --test-data with "
                        "held-out real images (never the training images)")
    return out, choice


def _baselines(text: str) -> str | list[str]:
    from ..metrics.baselines import BASELINES, check_baselines

    try:
        return check_baselines(text)
    except ConfigError:
        raise ConfigError(f"--baselines takes strong, none, or comma-separated names from {', '.join(BASELINES)}; "
                          f"got {text!r}") from None


def _controls(text: str) -> list[str]:
    from ..metrics.controls import CONTROLS, resolve_controls

    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        if not names:
            raise ConfigError("no name")
        return resolve_controls(names[0] if names in (["none"], ["all"]) else names)
    except ConfigError:
        raise ConfigError(f"--controls takes none, all, or comma-separated names from {', '.join(CONTROLS)}; "
                          f"got {text!r}") from None


def _min_validation_z(value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"--min-validation-z takes a finite number >= 0 (standard errors by which the synthetic rows "
                          f"must beat the best baseline on validation to be mixed; 1 by default, 0 mixes on any "
                          f"lead), got {value:g}")
    return value


def _synthetic_line(ratios: str, methods, min_z: float) -> str:
    """The summary's synthetic candidates; with --ratios 0 alone there are none, and the run
    compares the baselines only, which a user who meant to try mixing should read before it starts."""
    if not any(_ratios(ratios)):
        return ("none: --ratios 0 tries no synthetic rows, so the downstream part compares the baselines only "
                "(--ratios 0,0.25,0.5,1 tries mixing)")
    if 0 not in _ratios(ratios):
        return (f"{', '.join(methods)} at ratios {ratios} on top of the best baseline (no ratio 0: the best is mixed "
                "whatever validation says; add 0 to let it decide against mixing)")
    guard = (f"mixed only on a lead of more than {min_z:g} standard error{'s' * (min_z != 1)} on validation"
             if min_z else "mixed on any lead on validation")
    return f"{', '.join(methods)} at ratios {ratios} on top of the best baseline (ratio 0: do not mix; {guard})"


def _eval_summary(args, generator, train_data, test_data, held_out: str, plan: dict) -> str:
    """What `augmentgen eval` will train, printed before the first classifier starts."""
    from ..metrics.classifier import classifier_steps
    from ..metrics.report import bank_folder_of

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
    k = train_data.num_classes
    sampling = (f"{k * args.synthetic_per_class} synthetic images once ({args.synthetic_per_class} per class) for "
                "consistency, CAS, distances and coverage; ")
    bank = plan["bank_per_image"]
    if bank is None:
        sampling += "the synthetic arms sample their rows at every training step (--bank-per-image K: once per arm)"
    else:
        fills = plan["bank_fills"]
        sampling += (f"up to {fills} bank{'s' * (fills != 1)} for the synthetic arms, each filled once for the arm's "
                     f"training data ({bank} rows per real image of its largest class"
                     + (f"; the {generator.family} default, as its sampler is slow: --bank-per-image 0 samples "
                        "at every step instead)" if args.bank_per_image is None else ")")
                     + f", kept in {bank_folder_of(_report_folder(args) / CHECKPOINT_FILE)} until their seed is saved")
    seeds = ("1 seed (one seed is not evidence: --repeats 5 gives an interval)" if args.repeats == 1
             else f"{args.repeats} paired seeds, {args.seed} to {args.seed + args.repeats - 1}")
    return "\n".join([
        f"augmentgen eval: {generator.family} generator {args.model}",
        f"  training data: --data {args.data}, {len(train_data)} images, {train_data.num_classes} classes ({balance}); "
        "20% of each class is held out as the validation split that chooses everything",
        f"  test data:     {held_out}, {len(test_data)} images, used once per final arm",
        f"  baselines:     {baselines}",
        f"  synthetic:     {_synthetic_line(args.ratios, plan['methods'], args.min_validation_z)}",
        f"  controls:      {', '.join(plan['controls']) or 'none'}"
        + (" (as many rows a step without a generator, beside the chosen method)" if plan["controls"] else ""),
        f"  seeds:         {seeds}",
        f"  sampling:      {sampling}",
        f"  classifiers:   up to {plan['classifier_runs']} runs of {budget} each (reference, CAS, and per seed the "
        "baselines, the synthetic candidates, the final arms and the controls)",
        f"  checkpoint:    {_resume_line(args)}",
    ])


def _resume_line(args) -> str:
    from ..metrics.eval_checkpoint import EvalCheckpoint

    out = _report_folder(args)
    seeds = EvalCheckpoint.saved_seeds(out / CHECKPOINT_FILE) if args.resume else []
    if not seeds:
        return f"every finished seed kept in {out / CHECKPOINT_FILE} (a killed evaluation continues with --resume)"
    return (f"seeds {', '.join(map(str, seeds))} read from {out / CHECKPOINT_FILE}, not trained again; each other "
            "seed kept there as it finishes")
