"""``augmentgen`` command line. It only parses arguments into the configs the Python API uses."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import AugmentgenError, ConfigError, DataError


def build_parser() -> argparse.ArgumentParser:
    """The ``augmentgen`` command line: ``train``, ``sample``, ``eval`` and ``models``."""
    parser = argparse.ArgumentParser(prog="augmentgen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_command(sub)
    _add_sample_command(sub)
    _add_eval_command(sub)
    sub.add_parser("models", help="list model families and presets")
    return parser


def _add_train_command(sub) -> None:
    p = sub.add_parser("train", help="train a class-conditional generator")
    p.add_argument("--model", default="cgan", help="model family or preset (see `augmentgen models`)")
    p.add_argument("--data", default="fashion-mnist-small",
                   help="built-in name, ImageFolder dir, .npz file, or hf:<path>")
    p.add_argument("--data-dir", help="folder with the built-in datasets' files (no downloads)")
    p.add_argument("--out", default="runs/augmentgen", help="output folder")
    p.add_argument("--per-class", type=int, help="train on a seeded subset of N images per class")
    p.add_argument("--imbalance", type=float, help="long-tailed subset with this majority/minority ratio")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--set", dest="model_set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a field of the model's config, e.g. --set loss=bce (repeatable)")
    from .training.config import TrainingConfig

    defaults = TrainingConfig()
    for name in ("steps", "batch_size", "seed", "checkpoint_every", "keep_checkpoints",
                 "sample_every", "samples_per_class", "log_every", "num_workers"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    p.add_argument("--ema-decay", type=float, default=defaults.ema_decay)
    p.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], default=defaults.mixed_precision)
    p.add_argument("--log-with", help="Accelerate tracker, e.g. tensorboard")
    p.add_argument("--on-divergence", choices=["stop", "rollback"], default=defaults.on_divergence)
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
                   help="channels-last memory layout for the modules and batches while training (default: on)")
    p.add_argument("--optimizer-kernel", choices=["default", "foreach", "fused"], default=defaults.optimizer_kernel,
                   help="implementation of the family's Adam optimizers")


def _add_sample_command(sub) -> None:
    s = sub.add_parser("sample", help="sample images from a saved generator")
    s.add_argument("--model", required=True, help="folder of a saved generator")
    s.add_argument("--per-class", type=int, default=8)
    s.add_argument("--out", required=True, help="output file (grid: .png, npz: .npz) or folder")
    s.add_argument("--format", choices=["grid", "imagefolder", "npz", "hf"], default="grid",
                   help="grid: one PNG, a row per class; imagefolder: OUT/<class>/*.png; npz: "
                        "images/labels/classes arrays; hf: Parquet shards for datasets.load_dataset('parquet', "
                        "data_dir=OUT), resumable, and shared across processes under accelerate launch / torchrun")
    s.add_argument("--shard-size", type=int, default=4096,
                   help="hf: images per Parquet shard, the unit of resuming (a rerun must repeat it)")
    s.add_argument("--batch-size", type=int, default=1024,
                   help="hf: images per forward pass, what each process holds in memory (does not change the rows)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--temperature", default="1", metavar="T",
                   help="sampling temperature: below 1 concentrates each class's samples (0: the class's "
                        "centre), above 1 spreads them; one float, or comma-separated floats, one per class "
                        "in class order (e.g. 1,1,0.5)")
    s.add_argument("--device", default=None)


def _add_eval_command(sub) -> None:
    e = sub.add_parser("eval", help="measure a generator on real data: consistency, CAS, ΔAcc, FID")
    e.add_argument("--model", required=True, help="folder or hub id of a saved generator")
    e.add_argument("--data", required=True, help="the real training data (same forms as train --data)")
    e.add_argument("--test-data", help="held-out real data; default: the test split of a built-in --data")
    e.add_argument("--data-dir", help="folder with the built-in datasets' files (no downloads)")
    e.add_argument("--per-class", type=int, help="evaluate on a seeded subset of N training images per class")
    e.add_argument("--steps", type=int, default=500, help="training steps of every classifier (without --epochs)")
    e.add_argument("--epochs", type=float, default=None,
                   help="budget every classifier in passes over its real training data instead of --steps "
                        "(at least --min-steps steps); benchmarks/convergence.py measures what a dataset needs")
    e.add_argument("--min-steps", type=int, default=100, help="the fewest steps an --epochs budget gives")
    e.add_argument("--samples-per-class", type=int, default=200)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--ratios", default="0,0.25,0.5,1",
                   help="comma-separated ratios (synthetic rows appended per real row of a batch) tried on a "
                        "validation split for the downstream gain; 0 lets it decide against mixing")
    e.add_argument("--methods", default="plain",
                   help="comma-separated ways of using the synthetic rows, each tried at every ratio: plain, "
                        "filter (teacher filtering), soft (teacher soft labels, credited against the same "
                        "teacher on real rows)")
    e.add_argument("--repeats", type=int, default=1,
                   help="measure the downstream gain with N paired seeds and report its mean with a 95%% "
                        "interval (its classifiers are trained N times; 5 is the benchmark's choice)")
    e.add_argument("--device", default=None)
    e.add_argument("--out", default=None, help="folder for eval.json and eval.png (default: the model folder "
                                               "when it is a local folder, else ./eval)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except AugmentgenError as exc:
        print(f"augmentgen: error: {exc}", file=sys.stderr)
        return 2


def _train(args) -> int:
    from ._config import parse_overrides
    from .api import train
    from .models import build_config

    model_set = parse_overrides(type(build_config(args.model)), args.model_set)
    training = {name: getattr(args, name) for name in (
        "steps", "batch_size", "seed", "checkpoint_every", "keep_checkpoints", "sample_every", "samples_per_class",
        "log_every", "num_workers", "ema_decay", "mixed_precision", "log_with", "on_divergence", "init_from",
        "freeze_discriminator_layers", "transfer_lr_scale", "compile", "channels_last", "optimizer_kernel")}
    generator = train(args.model, args.data, args.out, data_dir=args.data_dir,
                      per_class=args.per_class, imbalance=args.imbalance, resume=args.resume,
                      model_config=model_set, **training)
    from accelerate import PartialState

    if not PartialState().is_main_process:  # under `accelerate launch`, one report is enough
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
    import torch

    from ._images import save_sample_grid
    from .hub import from_pretrained
    from .mixing import write_samples

    # Parsed before loading, so a typo fails at once; the generator checks values and length.
    try:
        temperature = [float(t) for t in args.temperature.split(",")]
    except ValueError:
        raise ConfigError("--temperature takes a float >= 0 or comma-separated floats >= 0, one per class "
                          f"in class order (like 0.5 or 1,1,0.5); got {args.temperature!r}") from None
    temperature = temperature[0] if len(temperature) == 1 else temperature
    if args.format == "hf":
        return _sample_shards(args, temperature)
    generator = from_pretrained(args.model, device=args.device)
    temperature = generator.check_temperature(temperature)
    at = "" if temperature == 1.0 else f", temperature {args.temperature}"
    if args.format == "grid":
        g = torch.Generator(device=generator.device).manual_seed(args.seed)
        images, _ = generator.sample_per_class(args.per_class, generator=g, temperature=temperature)
        path = save_sample_grid(images, args.per_class, args.out)
        print(f"wrote {path} ({generator.num_classes} rows x {args.per_class}{at})")
        return 0
    path = write_samples(generator, args.per_class, args.out, args.format, seed=args.seed,
                         temperature=temperature)
    print(f"wrote {path} ({args.format}: {args.per_class} images x {generator.num_classes} classes{at})")
    return 0


def _sample_shards(args, temperature) -> int:
    from accelerate import PartialState

    from .hub import from_pretrained
    from .mixing.shards import process_device, write_shards

    generator = from_pretrained(args.model, device=args.device or process_device())  # this rank's GPU
    meta = write_shards(generator, args.per_class, args.out, seed=args.seed, shard_size=args.shard_size,
                        batch_size=args.batch_size, temperature=temperature, model=args.model)
    if not PartialState().is_main_process:  # under a launcher, one report is enough
        return 0
    run = meta["last_run"]
    done = ("already complete, nothing generated" if meta.get("already_complete") else
            f"{run['images_generated']} generated now by {run['num_processes']} process(es) at "
            f"{run['images_per_second']:.0f} images/s")
    print(f"wrote {args.out} (hf: {meta['rows']} images of {len(meta['class_names'])} classes in {meta['shards']} "
          f"Parquet shards; {done})")
    print(f"load:  datasets.load_dataset('parquet', data_dir={str(args.out)!r}, split='train')")
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
    from .metrics.scores import MIXING_METHODS

    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in MIXING_METHODS]
    if not methods or unknown:
        raise ConfigError(f"--methods takes comma-separated names from {sorted(MIXING_METHODS)}; got {text!r}")
    return methods


def _eval(args) -> int:
    from .data import load_data
    from .data.sources import BUILTIN_DATASETS
    from .hub import from_pretrained
    from .metrics.report import evaluate_generator, format_report, plot_per_class, write_report

    ratios = _ratios(args.ratios)  # before any loading, so a typo fails at once
    methods = _methods(args.methods)

    generator = from_pretrained(args.model, device=args.device)
    train_data = load_data(args.data, data_dir=args.data_dir, per_class=args.per_class, seed=args.seed,
                           channels=generator.image_shape[0])
    if args.test_data:
        test_data = load_data(args.test_data, data_dir=args.data_dir, channels=generator.image_shape[0])
    elif args.data in BUILTIN_DATASETS:
        test_data = load_data(args.data, split="test", data_dir=args.data_dir, channels=generator.image_shape[0])
    else:
        raise DataError(f"{args.data} has no test split augmentgen knows of; pass --test-data with "
                        "held-out real images (never the training images)")
    report = evaluate_generator(generator, train_data, test_data, steps=args.steps, epochs=args.epochs,
                                min_steps=args.min_steps,
                                n_per_class=args.samples_per_class, seed=args.seed, repeats=args.repeats,
                                candidate_ratios=ratios, methods=methods,
                                device=args.device)
    out = Path(args.out) if args.out else (Path(args.model) if Path(args.model).is_dir() else Path("eval"))
    print(format_report(report))
    print(f"\nwrote {write_report(report, out / 'eval.json')} and {plot_per_class(report, out / 'eval.png')}")
    return 0


def _models(args) -> int:
    from .models import available_models

    for name, description in available_models().items():
        print(f"{name:12s} {description}")
    return 0


COMMANDS = {"train": _train, "sample": _sample, "eval": _eval, "models": _models}
