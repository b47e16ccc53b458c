"""``augmentgen.train``: the one-call Python entry point (the CLI calls the same function)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._deprecation import renamed_argument
from .data import BUILTIN_DATASETS, LabelledImages, load_data
from .data.sources import missing_data_error
from .errors import ConfigError, DataError
from .models import ConditionalGenerator, build_config
from .training import Trainer, TrainingConfig
from .training.config import check_output_dir, check_tracker_installed
from .training.run_folder import check_run_folder, recorded_steps

#: The data ``train`` uses when given none: 500 Fashion-MNIST images shipped in the package, a
#: demo, which the start-up summary (and the CLI, on stderr) says loudly.
DEMO_DATA = "fashion-mnist-small"
#: Folder names that hold a dataset's splits, not a class of images.
_SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "test", "testing", "eval"}
_HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
#: Model config fields that ``train`` fills in from the data.
_FROM_DATA = ("num_classes", "class_names", "in_channels", "image_size")


def model_config_for(model: str, data: LabelledImages, **overrides: Any):
    """The config of ``model`` sized to ``data`` (classes, channels, image size), plus overrides."""
    c, h, w = data.image_shape
    if h != w:
        raise DataError(f"images must be square, got {h}x{w}; resize them first")
    values = {"num_classes": data.num_classes, "class_names": data.class_names, "in_channels": c, "image_size": h}
    _refuse_overrides_of_the_data(values, overrides)
    return build_config(model, **{**values, **overrides})


#: How to change what the data decides instead of overriding it.
_DATA_FIXES = {"num_classes": "pass data of those classes",
               "in_channels": "pass channels= (--channels) to convert the images",
               "image_size": "resize the images first"}


def _refuse_overrides_of_the_data(values: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """A model setting that ``train`` takes from the data (``num_classes``, ``in_channels``,
    ``image_size``) set to another value in ``model_config``: refused naming both values, rather
    than failing on a consequence (``class_names has 10 names but num_classes is 3``)."""
    for name, fix in _DATA_FIXES.items():
        if name in overrides and overrides[name] != values[name]:
            raise ConfigError(f"model_config sets {name}={overrides[name]!r} but the data has "
                              f"{name}={values[name]!r}, and train takes {name} from the data: drop {name} from "
                              f"model_config (--set), or {fix}")
    names = overrides.get("class_names")
    if isinstance(names, (list, tuple)) and len(names) != values["num_classes"]:  # renaming is allowed, not recounting
        raise ConfigError(f"model_config sets class_names to {len(names)} names but the data has "
                          f"{values['num_classes']} classes ({', '.join(values['class_names'][:5])}"
                          f"{', ...' if values['num_classes'] > 5 else ''}): give one name per class of the data, "
                          "in its order, or drop class_names from model_config (--set)")


def check_data_path(data: Any, *, option: str = "--data") -> None:
    """Refuse a path that names no data, and a folder whose subfolders are a dataset's splits
    (``train/``, ``val/``, ...).

    ImageFolder reads each subfolder as a class: such a folder would train a generator of the
    classes 'train' and 'val', each a mix of every real class. Checked before loading, with the
    path to pass instead.
    """
    if not isinstance(data, (str, os.PathLike)) or str(data) in BUILTIN_DATASETS or str(data).startswith("hf:"):
        return
    path = Path(data).expanduser()
    if str(data).strip() and not path.exists():  # an empty path is load_data's to refuse
        raise missing_data_error(str(data), option if option != "--data" else None)
    if (not path.is_dir() or any((path / name).exists() for name in _HF_MARKERS)
            or any((path / "data").glob("*.parquet"))):
        return  # not read as an ImageFolder
    splits = sorted(d.name for d in path.iterdir()
                    if d.is_dir() and d.name.lower() in _SPLIT_NAMES and any(c.is_dir() for c in d.iterdir()))
    if not splits:
        return
    train_split = next((s for s in splits if s.lower() in ("train", "training")), splits[0])
    held_out = [s for s in splits if s != train_split]
    also = f" (and --test-data {path / held_out[0]} for eval)" if held_out else ""
    raise DataError(
        f"{path} holds the split folders {splits}, which would be read as {len(splits)} classes of images; "
        f"point {option} at one split's folder, e.g. {option} {path / train_split}{also}"
    )


def check_output_outside_data(data: Any, output_dir: str | os.PathLike, *, option: str = "--data",
                              writes: str = "the run's files") -> None:
    """Refuse an output folder that is the data folder ``data`` (``option``) or inside it: what is
    written there (``writes``: a run's ``samples/`` and ``checkpoints/``, an eval report) would be
    read as images, or a class of them, the next time the data load."""
    if not isinstance(data, (str, os.PathLike)) or str(data) in BUILTIN_DATASETS:
        return
    folder = Path(str(data).removeprefix("hf:")).expanduser()
    if not folder.is_dir():
        return  # a file (.npz) or a name: no folder to write into
    out, folder = Path(output_dir).expanduser().resolve(), folder.resolve()
    if out == folder or folder in out.parents:
        where = "" if out == folder else "inside "
        raise ConfigError(f"--out {output_dir} is {where}the data folder {data} ({option}): {writes} would be "
                          "written among your images and read as part of them next time. Nothing was changed. "
                          "Choose an --out outside it")


@renamed_argument("model", "family")
def train(
    family: str = "cgan",
    data: Any = DEMO_DATA,
    output_dir: str | os.PathLike = "runs/augmentgen",
    *,
    data_dir: str | None = None,
    per_class: int | None = None,
    imbalance: float | None = None,
    channels: int | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    model_config: dict[str, Any] | None = None,
    command: str | None = None,
    **training: Any,
) -> ConditionalGenerator:
    """Train a generator of ``family`` on ``data`` and save it to ``output_dir``.

    Args:
        family: a family or preset name (see :func:`augmentgen.available_models`); the
            keyword ``model=`` still works, with a ``FutureWarning``.
        data: anything :func:`augmentgen.load_data` accepts.
        output_dir: where ``config.json``, ``model.safetensors``, grids and checkpoints go.
        data_dir, per_class, imbalance, channels, image_column, label_column: passed to
            :func:`augmentgen.load_data` (the subset is drawn with ``seed``).
        resume: continue from the newest checkpoint in ``output_dir`` (the same data and config;
            ``steps`` at least the run's; without ``steps`` or ``time_budget``, to the run's own
            ``steps``).
        overwrite: start over in an ``output_dir`` that already holds a model or a run, clearing
            its previous outputs first; without it (or ``resume``) such a folder is refused.
        model_config: overrides of the family's config fields (e.g. ``{"loss": "bce"}``).
        command: the command line recorded in ``training.json`` (the CLI passes its own).
        **training: :class:`TrainingConfig` fields (``steps``, ``batch_size``, ``seed``, ...),
            among them ``init_from`` to fine-tune a pretrained generator (a folder, a zoo id such as
            ``"augmentgen/cgan-mnist"`` or a hub id; ``family`` must be its family), with
            ``freeze_discriminator_layers`` and ``transfer_lr_scale``.

    Example::

        # 10 images per class of new classes, starting from the zoo's MNIST cgan
        train("cgan", "my_images/", "runs/few-shot", init_from="augmentgen/cgan-mnist",
              per_class=10, steps=500, transfer_lr_scale=0.5)

    Returns:
        The trained (EMA) generator, in eval mode.
    """
    _check_arguments(family, output_dir, model_config, training)
    if resume is True and training.get("steps") is None and training.get("time_budget") is None:
        # Without steps, the run's own step count, not the default: a resume continues that run.
        training = {**training, "steps": recorded_steps(output_dir)}
    training_config = TrainingConfig.from_dict(training)
    _refuse_before_loading(family, data, output_dir, training_config, model_config, resume=resume, overwrite=overwrite)
    dataset = load_data(data, data_dir=data_dir, per_class=per_class, imbalance=imbalance,
                        seed=training_config.seed, channels=channels, image_column=image_column,
                        label_column=label_column)
    config = model_config_for(family, dataset, **(model_config or {}))
    trainer = Trainer(config, training_config, output_dir, command=command)
    return trainer.fit(dataset, resume=resume, overwrite=overwrite)


def _refuse_before_loading(model: str, data: Any, output_dir, training_config: TrainingConfig,
                           model_config: dict[str, Any] | None, *, resume: bool, overwrite: bool) -> None:
    """Everything that can be refused without the data, refused before loading it (which can take
    minutes): the tracker, the output folder, the model's config overrides, a split-parent folder."""
    check_tracker_installed(training_config.log_with)
    # A budgeted run without --steps has no step bound yet: any recorded step count is below it.
    steps = training_config.steps if training_config.steps is not None else sys.maxsize
    check_run_folder(output_dir, resume=resume, overwrite=overwrite, steps=steps, init_from=training_config.init_from)
    check_output_outside_data(data, output_dir)
    build_config(model, **{k: v for k, v in (model_config or {}).items() if k not in _FROM_DATA})
    check_data_path(data)


def _check_arguments(family: Any, output_dir: Any, model_config: Any, training: dict[str, Any]) -> None:
    """Refuse a ``model_config`` or an ``output_dir`` of the wrong kind, and a model setting passed
    as a training option, each with the call to make instead."""
    if model_config is not None:
        if not isinstance(model_config, Mapping):
            raise ConfigError("model_config must be a dict of model settings, e.g. {'loss': 'bce'}, got "
                              f"{_described(model_config)}")
        keys = [k for k in model_config if not isinstance(k, str)]
        if keys:
            raise ConfigError(f"model_config's keys must be model setting names (str), e.g. {{'loss': 'bce'}}, "
                              f"got {_described(keys[0])}")
    check_output_dir(output_dir)
    _refuse_model_settings(family, model_config, training)


def _refuse_model_settings(family: Any, model_config: Mapping[str, Any] | None, training: dict[str, Any]) -> None:
    """``train("cgan", ..., learning_rate=1e-3)``: a field of the family's config, not of
    :class:`TrainingConfig`, belongs in ``model_config``; say so rather than list the training fields."""
    known = {*TrainingConfig.field_names(), *TrainingConfig._renamed_fields}
    unknown = [name for name in training if name not in known]
    if not unknown or not isinstance(family, str):
        return
    try:
        model_fields = set(type(build_config(family)).field_names()) - set(_FROM_DATA)
    except ConfigError:  # an unknown family: reported as before, after the training options
        return
    moved = {name: training[name] for name in unknown if name in model_fields}
    if not moved:
        return
    names = ", ".join(moved)
    what = (f"{names} is a {family} model setting, not a training one" if len(moved) == 1
            else f"{names} are {family} model settings, not training ones")
    others = [name for name in unknown if name not in moved]
    also = (f"; and TrainingConfig has no field(s) {others}; known fields: {sorted(TrainingConfig.field_names())}"
            if others else "")
    suggestion = {**(model_config or {}), **moved}
    raise ConfigError(f"{what}: pass model_config={suggestion!r}{also}")


def _described(value: Any) -> str:
    """``None``, or ``the str 'loss=bce'``: a wrong value with its type, for an error message."""
    return "None" if value is None else f"the {type(value).__name__} {value!r}"
