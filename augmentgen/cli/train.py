"""``augmentgen train``: the options into :func:`augmentgen.train`, then where the run wrote its outputs.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from .._processes import is_main_process
from ..errors import UnknownFamilyError
from .checks import _check_counts, _note_renamed_options, named_as_flags

# The run folder's refusals name train()'s arguments; this command's user typed these flags (in
# order: the longer phrase before the shorter one it holds).
RUN_FOLDER_FLAGS = {"resume=True and steps=N": "--resume --steps N", "overwrite=True": "--overwrite",
                    "resume=True": "--resume", "another output_dir": "another --out", "(output_dir ": "(--out ",
                    "init_from=": "--init-from ", "as init_from": "to --init-from",
                    "pass log_with=None": "drop --log-with", "checkpoint_every=0": "--checkpoint-every 0"}


def _train(args) -> int:
    from .._config import parse_overrides
    from ..api import DEMO_DATA, train
    from ..models import build_config
    from ..training.config import TrainingConfig

    _note_renamed_options(args)
    _check_counts(args, {"per_class": "training images of each class",
                         "grid_per_class": "columns of the sample grids"})
    try:
        # `--set steps=5`: a training option of its own, which the error then names.
        options = {name: "--" + name.replace("_", "-") for name in TrainingConfig.field_names()}
        model_set = parse_overrides(type(build_config(args.family)), args.model_set, elsewhere=options)
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
    # An error about a value the user set names the flag they typed (`--steps`, `--set lecam_weight`).
    given = {name: "--" + name.replace("_", "-") for name, value in training.items() if value is not None}
    given.update({name: f"--set {name}" for name in model_set}, output_dir="--out")
    with named_as_flags(given, RUN_FOLDER_FLAGS):
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
