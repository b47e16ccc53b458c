"""The output folder of a run: what a new run, ``overwrite`` and ``resume`` may do with it.

The rules, checked before any data is loaded or any model built:

- a folder holding a trained model or a run (``model.safetensors``, ``config.json``,
  ``training.json`` or ``checkpoints/``) is never trained over silently: a new run needs
  ``overwrite`` (which first clears that folder's previous outputs, and only those) or
  ``resume``;
- so is one holding, with no run, a ``samples.png`` (a grid of the user's, which a new run writes
  over) or a file named ``samples`` (where the run's step grids go);
- ``resume`` never moves a run backwards, and continues only the same run: the same data and
  the same config as its newest checkpoint's manifest records;
- a run killed while writing its first checkpoint left only a partial ``.tmp-step-*`` folder:
  ``resume`` removes it and starts a new run, with a warning;
- a run killed while replacing a checkpoint by a new one of the same step left the old one aside
  (``.replaced-step-*``): it is renamed back, with a warning, as soon as checkpoints are listed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._config import check_flag
from .._io import check_writable, remove_dead_temporaries
from ..data.labelled import LabelledImages
from ..errors import CheckpointError, ConfigError, DataError
from ..models.base import GeneratorConfig
from .checkpoint import CHECKPOINT_DIR, checkpoint_dirs, checkpoint_step, newest_manifest, partial_checkpoints

#: What a run writes into its folder; ``overwrite`` removes these and nothing else.
RUN_OUTPUTS = ("model.safetensors", "config.json", "training.json", "samples.png", "samples", CHECKPOINT_DIR,
               "logs", "eval.json", "eval.png", "eval.checkpoint.json")
#: The outputs that mean the folder holds a model or a run that must not be lost.
_RUN_MARKERS = ("model.safetensors", "config.json", "training.json", CHECKPOINT_DIR)
#: TrainingConfig fields a resumed run must repeat: they decide the data order (seed,
#: batch_size), the EMA, and the weights and param groups a checkpoint holds.
RESUME_FIELDS = ("seed", "batch_size", "ema_decay", "init_from", "freeze_discriminator_layers", "transfer_lr_scale")
#: Model config fields that come from the data; the data check reports them.
_DATA_FIELDS = ("num_classes", "class_names", "in_channels", "image_size")
_START_OVER = "to start a new run pass overwrite=True or another output_dir"


def check_run_folder(output_dir: str | os.PathLike, *, resume: bool, overwrite: bool, steps: int,
                     init_from: str | os.PathLike | None = None) -> None:
    """Refuse what ``resume`` / ``overwrite`` / a new run may not do in ``output_dir`` (starting
    from ``init_from`` when given); changes nothing but renaming back a checkpoint a kill left
    aside (:func:`~.checkpoint.checkpoint_dirs`)."""
    out = Path(output_dir).expanduser()
    check_flag(resume, "resume"), check_flag(overwrite, "overwrite")
    if resume and overwrite:
        raise ConfigError("resume and overwrite contradict each other: resume=True continues the run in "
                          f"{out}, overwrite=True deletes it; pass one of them")
    check_writable(out, "output_dir")
    _check_init_from_outside(out, init_from)
    held = [name for name in _RUN_MARKERS if (out / name).exists()]
    if not resume:
        if held and not overwrite:
            raise CheckpointError(
                f"{out} already holds a trained model or run ({', '.join(held)}); nothing was changed. Pass "
                "overwrite=True to start over, clearing that folder's previous outputs, resume=True to "
                "continue its run, or choose another output_dir"
            )
        if not overwrite:
            _check_grid_paths_free(out)
        return
    complete = checkpoint_dirs(out)
    if not complete and not partial_checkpoints(out):
        trained = " It holds a model trained without checkpoints (checkpoint_every=0)." if held else ""
        raise CheckpointError(f"nothing to resume: no checkpoints in {out / CHECKPOINT_DIR}.{trained} "
                              "Run without resume=True to start a new run, adding overwrite=True "
                              "to replace what the folder holds")
    if not complete:
        return  # only a partial first checkpoint: prepare_run_folder starts a new run
    at = checkpoint_step(complete[-1])
    _check_model_not_ahead(out, at)
    if steps < at:
        raise ConfigError(
            f"cannot resume {out} with steps={steps}: its run is already at step {at}, and a run never moves "
            f"backwards. Nothing was changed. To train it further, rerun with resume=True and steps=N for an N "
            f"above {at}; {_START_OVER}"
        )


def _check_grid_paths_free(out: Path) -> None:
    """Refuse a folder with no run in it whose ``samples.png`` a new run would write over, or whose
    ``samples`` is a file where the run's step grids go (found otherwise only once training has run)."""
    grid, grids = out / "samples.png", out / "samples"
    if grid.exists() or grid.is_symlink():  # not a run's: a run writes it after its model, a marker
        raise CheckpointError(f"{out} already holds samples.png, which a new run writes its sample grid over; "
                              "nothing was changed. Move it away, pass overwrite=True to replace it, or choose "
                              "another output_dir")
    if (grids.exists() or grids.is_symlink()) and not grids.is_dir():
        raise CheckpointError(f"{grids} is a file, but a run writes its step grids into a folder of that name; "
                              "nothing was changed. Move it away, pass overwrite=True to remove it, or choose "
                              "another output_dir")


def _check_init_from_outside(out: Path, init_from: str | os.PathLike | None) -> None:
    """``init_from`` may not be the run's own folder: ``overwrite`` would delete the model it starts
    from, and the run's own model replaces it at the end (a resume then starts from other weights)."""
    if init_from is None:
        return
    source = Path(init_from).expanduser()
    if source.exists() and out.exists() and source.resolve() == out.resolve():
        raise ConfigError(f"init_from {init_from} is the run's own folder (output_dir {out}): this run would "
                          "replace the model it starts from. Nothing was changed. Train into another output_dir, "
                          "or copy the model elsewhere and pass that copy as init_from")


def _check_model_not_ahead(out: Path, newest_checkpoint: int) -> None:
    """Refuse to resume from a checkpoint older than the model the folder holds (a later resume ran
    with ``checkpoint_every=0``): the run would restart there and replace the newer model."""
    if not (out / "model.safetensors").is_file():
        return  # no model to lose
    try:
        trained = json.loads((out / "training.json").read_text())["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no finished run recorded: the checkpoints are the run
    if isinstance(trained, int) and trained > newest_checkpoint:
        raise CheckpointError(
            f"{out} holds a model trained to step {trained}, but its newest checkpoint is step {newest_checkpoint} "
            f"(the steps after it kept none, checkpoint_every=0): resuming would restart at step "
            f"{newest_checkpoint} and replace that model. Nothing was changed. To train the model further, start a "
            f"new run from its weights: init_from={str(out)!r} with another output_dir; {_START_OVER}")


def prepare_run_folder(output_dir: str | os.PathLike, *, resume: bool, overwrite: bool, steps: int,
                       is_main_process: bool = True) -> bool:
    """Check ``output_dir`` (:func:`check_run_folder`), remove the temporary files of killed writers
    in it, then clear it for ``overwrite`` and remove partial checkpoints for ``resume``. Returns
    whether there is a checkpoint to resume from."""
    out = Path(output_dir).expanduser()
    check_run_folder(out, resume=resume, overwrite=overwrite, steps=steps)
    if is_main_process:  # a run killed while saving its model left a hidden partial file
        remove_dead_temporaries(out)
    if overwrite and is_main_process:
        clear_run_outputs(out)
    if not resume:
        return False
    partial = partial_checkpoints(out)
    if is_main_process:
        for path in partial:  # never resumable: their writer died before the rename
            shutil.rmtree(path, ignore_errors=True)
    if checkpoint_dirs(out):
        return True
    if is_main_process:
        warnings.warn(f"{out} holds no complete checkpoint: its run stopped while writing its first one. "
                      f"Removed the partial {', '.join(p.name for p in partial)} and started a new run",
                      stacklevel=3)
    return False


#: The run's own files inside its folders: ``overwrite`` removes these there and leaves whatever
#: else a user put beside them (a hand-picked grid in ``samples/``), and the folder itself once empty.
_RUN_FILES_IN = {"samples": ("step-*.png",), CHECKPOINT_DIR: ("step-*", ".tmp-step-*", ".replaced-step-*")}


def clear_run_outputs(out: Path) -> None:
    """Remove what a run wrote into ``out`` (:data:`RUN_OUTPUTS`), and nothing else."""
    for name in RUN_OUTPUTS:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            if name not in _RUN_FILES_IN:
                shutil.rmtree(target)
                continue
            for pattern in _RUN_FILES_IN[name]:
                for entry in target.glob(pattern):
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            if not any(target.iterdir()):
                target.rmdir()
        elif target.exists() or target.is_symlink():
            target.unlink()


def recorded_steps(output_dir: str | os.PathLike) -> int | None:
    """The ``steps`` the run in ``output_dir`` was started with, as its newest checkpoint records it
    (None: no checkpoint, one written before the record, or a run bounded by a time budget alone)."""
    out = Path(output_dir).expanduser()
    manifest = newest_manifest(out) if out.is_dir() else None
    steps = ((manifest or {}).get("training") or {}).get("steps")
    return steps if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1 else None


def check_resume_matches(output_dir: str | os.PathLike, saved: dict[str, Any], now: dict[str, Any]) -> None:
    """Refuse to resume the run whose checkpoint manifest is ``saved`` with the data and config ``now``."""
    data = _data_differences(saved.get("data") or {}, now["data"])
    if data:
        raise DataError(_refusal(output_dir, data, "the same --data (and --per-class / --imbalance / --seed) "
                                                   "as the run was trained on"))
    old_model, new_model = saved.get("model") or {}, now["model"]
    config: list[tuple[str, Any, Any]] = []
    fixes: list[str] = []
    python = "the same names in Python"
    if old_model.get("family", new_model["family"]) != new_model["family"]:
        config.append(("the model family", old_model["family"], new_model["family"]))
        fixes.append(f"--family {old_model['family']}")
        python = f"in Python augmentgen.train({old_model['family']!r}, ...)"  # the family is train's model argument
    else:
        for key in sorted(set(old_model) - {"family", *_DATA_FIELDS}):
            if key in new_model and old_model[key] != new_model[key]:
                config.append((key, old_model[key], new_model[key]))
                value = old_model[key] if isinstance(old_model[key], str) else _json(old_model[key])
                fixes.append(shlex.join(["--set", f"{key}={value}"]))
    for key in RESUME_FIELDS:
        old, new = (saved.get("training") or {}).get(key, now["training"][key]), now["training"][key]
        if old != new:
            config.append((key, old, new))
            flag = "--" + key.replace("_", "-")
            fixes.append(f"{flag} {shlex.quote(str(old))}" if old is not None else f"no {flag}")
    if config:
        if len(fixes) > 1 and not python.startswith("the same"):
            python += " and the same names for the rest"
        raise ConfigError(_refusal(output_dir, config, " ".join(fixes) + f" ({python})"))


def _data_differences(old: dict, new: dict) -> list[tuple[str, Any, Any]]:
    differences = []
    for key, what in (("class_names", "the class names"), ("num_classes", "the number of classes"),
                      ("image_shape", "the image shape (C, H, W)"), ("fingerprint", "the data's fingerprint")):
        if old.get(key) is not None and new.get(key) is not None and old[key] != new[key]:
            differences.append((what, old[key], new[key]))
    if differences and old.get("examples") != new.get("examples"):
        differences.append(("the number of examples", old.get("examples"), new.get("examples")))
    return differences


def _refusal(output_dir, differences: list[tuple[str, Any, Any]], fix: str) -> str:
    what = "; ".join(f"{name} is {_show(old)} there but {_show(new)} now" for name, old, new in differences)
    return (f"cannot resume {output_dir}: {what}. Nothing was changed. To resume, rerun with {fix}; "
            f"{_START_OVER}")


def _show(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:  # a sha256: its head is enough to tell them apart
        return repr(value[:12] + "...")
    if isinstance(value, list) and len(value) > 6:
        return repr(value[:6])[:-1] + ", ...]"
    return repr(value)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def default_command(argv: list[str] | None = None) -> str:
    """The command line that reruns this process, with the program name normalised.

    ``python -m augmentgen``, ``accelerate launch -m augmentgen`` and the ``augmentgen`` script
    all become ``augmentgen ...``; a script of the user's becomes ``python script.py ...``.
    """
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]) if argv else Path("python")
    if program.name in ("augmentgen", "augmentgen.exe") or (program.name == "__main__.py"
                                                          and program.parent.name == "augmentgen"):
        head = ["augmentgen"]
    else:
        head = ["python", argv[0]] if argv else ["python"]
    return shlex.join([*head, *argv[1:]])


def describe_data(data, model_config: GeneratorConfig) -> dict:
    """Source, size, classes, image shape and (for :class:`LabelledImages`) a sha256 fingerprint
    of ``data``: what a resumed run's data must repeat. Hashing is cheap next to training (about
    0.2 s for MNIST's 47 MB)."""
    if isinstance(data, LabelledImages):
        digest = hashlib.sha256(np.ascontiguousarray(data.images.numpy()).data)
        digest.update(np.ascontiguousarray(data.labels.numpy()).data)
        return {"source": data.source, "examples": len(data), "class_names": data.class_names,
                "num_classes": data.num_classes, "image_shape": list(data.image_shape),
                "fingerprint": digest.hexdigest()}
    try:
        examples = len(getattr(data, "dataset", data))
    except TypeError:
        examples = None
    return {"source": type(data).__name__, "examples": examples, "class_names": model_config.class_names,
            "num_classes": model_config.num_classes, "image_shape": list(model_config.image_shape),
            "fingerprint": None}
