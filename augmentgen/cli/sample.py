"""``augmentgen sample``: images from a saved generator as a grid, an image folder, .npz, a Hugging Face
dataset, or resumable Parquet shards, the last either of free samples or of variations of real images
(``--variations-of``).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import ConfigError
from .checks import (
    _check_counts,
    _check_data_fits,
    _check_device,
    _check_methods_fit,
    _given,
    _load_named,
    named_as_flags,
)


def _sample(args) -> int:
    from .._seeds import check_seed
    from ..hub import from_pretrained
    from ..mixing import write_samples

    # Parsed before loading, so a typo fails at once; the generator checks values and length.
    temperature = _temperature(args.temperature)
    _check_counts(args, {"per_class": "images of each class", "batch_size": "images per forward pass",
                         "per_image": "variations of each image of the largest class"})
    _check_device(args.device)
    check_seed(args.seed, "--seed", use="it seeds the noise")
    _check_variation_options(args)
    if args.format == "parquet":
        _check_counts(args, {"shard_size": "images per Parquet file"})
        if args.overwrite:
            raise ConfigError("--overwrite does not apply to --format parquet: rerunning the same command resumes "
                              f"the bank in {args.out}; choose a new --out to start another, or delete it yourself")
        from .._io import check_creatable
        from ..mixing.shard_manifest import check_not_a_file

        check_creatable(Path(args.out))  # before the model and the data load
        check_not_a_file(Path(args.out))
        _check_suffix(args.out, args.format)
        return _sample_variation_shards(args) if args.variations_of else _sample_shards(args, temperature)
    if _given(args, "--shard-size"):  # else silently ignored: the other formats are one file or folder
        raise ConfigError(f"--shard-size applies to --format parquet only (--format {args.format} writes "
                          f"{_WRITES[args.format]}): drop --shard-size, or add --format parquet for a sharded bank")
    from ..mixing.export import check_target

    with named_as_flags({}, _FLAGS):
        check_target(args.out, args.format, args.overwrite)  # write_samples checks again; this is before loading
    _check_suffix(args.out, args.format)
    generator = from_pretrained(args.model, device=args.device)
    temperature = generator.check_temperature(temperature)
    at = "" if temperature == 1.0 else f", temperature {args.temperature}"
    print(_free_summary(args, generator, at), flush=True)
    with named_as_flags({}, _FLAGS):
        path = write_samples(generator, args.per_class, args.out, args.format, seed=args.seed,
                             batch_size=args.batch_size, temperature=temperature, overwrite=args.overwrite,
                             progress=True)
    if args.format == "grid":
        print(f"wrote {path} ({generator.num_classes} rows x {args.per_class}{at})")
        return 0
    print(f"wrote {path} ({args.format}: {args.per_class} images x {generator.num_classes} classes{at})")
    if args.format == "hf":
        print(f"load:  datasets.load_from_disk({str(path)!r})")
    return 0


#: The file suffixes that name one --format's output: the format each one means.
_SUFFIX_FORMATS = {".png": "grid", ".npz": "npz"}
_WRITES = {"grid": "one PNG image", "npz": "an .npz file", "imagefolder": "a folder of PNG images",
           "hf": "a Hugging Face dataset folder", "parquet": "a folder of Parquet shards"}


def _free_summary(args, generator, at: str, more: str = "") -> str:
    """The start-up line of a run of free samples: how many, from which model (and family), what
    is written where; printed before the sampling, which can take minutes (a ddpm's)."""
    k = generator.num_classes
    return (f"augmentgen sample: {args.per_class} images x {k} classes ({args.per_class * k} images) from the "
            f"{generator.family} generator {args.model}{at}, written as {_WRITES[args.format]} to {args.out}{more}")


def _check_suffix(out: str, format: str) -> None:
    """An --out whose suffix names another format's file (``--out samples.npz`` with the default
    ``--format grid``) would be written in --format's form under a misleading name: refused."""
    suffix = Path(out).suffix.lower()
    meant = _SUFFIX_FORMATS.get(suffix)
    if meant is None or meant == format:
        return
    other = f"--out {Path(out).with_suffix('.png')}" if format == "grid" else (
        f"--out {Path(out).with_suffix('.npz')}" if format == "npz" else "an --out without a file suffix")
    raise ConfigError(f"--out {out} names {_WRITES[meant]} but --format {format} writes {_WRITES[format]}; pass "
                      f"--format {meant}, or {other}")


def _temperature(text: str) -> float | list[float]:
    try:
        temperature = [float(t) for t in text.split(",")]
    except ValueError:
        raise ConfigError("--temperature takes a float >= 0 or comma-separated floats >= 0, one per class "
                          f"in class order (like 0.5 or 1,1,0.5); got {text!r}") from None
    return temperature[0] if len(temperature) == 1 else temperature


# The library's messages name its Python arguments; the CLI's user typed these flags.
_FLAGS = {"overwrite=True": "--overwrite", "format='grid'": "--format grid",
          "format='imagefolder'": "--format imagefolder"}


def _sample_shards(args, temperature) -> int:
    from accelerate import PartialState

    from ..hub import from_pretrained
    from ..mixing.shards import process_device, write_shards

    generator = from_pretrained(args.model, device=args.device or process_device())  # this rank's GPU
    temperature = generator.check_temperature(temperature)
    main_process = PartialState().is_main_process
    if main_process:  # under a launcher, one summary and one report are enough
        at = "" if temperature == 1.0 else f", temperature {args.temperature}"
        print(_free_summary(args, generator, at, f" in shards of up to {args.shard_size}"), flush=True)
    meta = write_shards(generator, args.per_class, args.out, seed=args.seed, shard_size=args.shard_size,
                        batch_size=args.batch_size, temperature=temperature, model=args.model)
    if not main_process:
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

    from ..api import check_data_path
    from ..hub import from_pretrained
    from ..mixing import VariationSource, write_variation_shards
    from ..mixing.shards import process_device

    check_data_path(args.variations_of, option="--variations-of")
    generator = from_pretrained(args.model, device=args.device or process_device())  # this rank's GPU
    mode, strength = args.mode or "vary", 0.5 if args.strength is None else args.strength
    _check_methods_fit(generator, [mode], option="--variations-of with --mode")
    with named_as_flags({"strength": "--strength"}):  # a ddpm's strength is at most 1: refused before the data loads
        source = VariationSource(generator, mode, strength=strength)
    data = _load_named("--variations-of", args.variations_of, data_dir=args.data_dir,
                       channels=generator.image_shape[0], image_column=args.image_column,
                       label_column=args.label_column)
    _check_data_fits(generator, args.model, {f"--variations-of {args.variations_of}": data},
                     fix="pass images of the classes and shape it was trained on")
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
