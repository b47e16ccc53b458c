"""Saving and loading generators: ``config.json`` + ``model.safetensors``, nothing else.

- Weights are safetensors only; nothing here unpickles anything.
- Every file is written atomically (temporary name in the same folder, fsync, rename), so a
  crash mid-save leaves the previous file intact.
- safetensors does not notice flipped bits in tensor data, so a sha256 of the tensors is kept in
  the file's metadata and checked on load, together with the config the weights were saved with.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from .._config import check_flag, check_path
from .._devices import check_device
from .._images import save_sample_grid
from .._io import atomic_write_bytes
from ..errors import CheckpointError, ConfigError
from ..models.base import ConditionalGenerator, check_generator_argument
from ..models.registry import build_generator, config_from_dict, config_to_dict
from .card import CARD_NAME, DEFAULT_LICENSE, read_training_summary, render_model_card

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
GRID_NAME = "samples.png"
TRAINING_NAME = "training.json"  # the trainer's summary of the run that made the weights beside it
REFUSED_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
#: The metadata save_generator derives from the generator itself; the rest (the trainer's) is kept on a re-save.
OWN_METADATA = ("format", "augmentgen_config", "augmentgen_sha256")


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(t.dtype).encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def generator_tensors(generator: ConditionalGenerator) -> dict[str, torch.Tensor]:
    """Every tensor that defines the generator (its state dict), on the CPU and unshared."""
    return {k: v.detach().cpu().clone().contiguous() for k, v in generator.state_dict().items()}


def save_generator(generator: ConditionalGenerator, directory: str | os.PathLike,
                   *, metadata: dict[str, str] | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for ``generator`` into ``directory``."""
    directory = Path(directory)
    config = config_to_dict(generator.config)
    config_json = json.dumps(config, indent=2, sort_keys=True)
    tensors = generator_tensors(generator)
    meta = {
        "format": "pt",
        "augmentgen_config": config_json,
        "augmentgen_sha256": tensors_sha256(tensors),
        **(metadata or {}),
    }
    atomic_write_bytes(directory / WEIGHTS_NAME, safetensors_bytes(tensors, metadata=meta))
    atomic_write_bytes(directory / CONFIG_NAME, (config_json + "\n").encode())
    return directory / WEIGHTS_NAME


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a saved generator folder."""
    path = Path(directory) / CONFIG_NAME
    if not path.exists():
        raise CheckpointError(f"{path} is missing; a saved generator folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); the file is corrupted") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} holds a JSON {type(config).__name__}, not the object of fields a saved "
                              "generator's config is; it was not written by augmentgen, or it was replaced")
    return config


def load_generator(directory: str | os.PathLike, *, device: str | torch.device | None = None) -> ConditionalGenerator:
    """Rebuild a generator from a folder written by :func:`save_generator`, strictly."""
    if device is not None:  # before any file is read, and with the accepted forms rather than torch's text
        check_device(device, shown=f"device={device!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"no saved generator at {directory}")
    weights = directory / WEIGHTS_NAME
    if not weights.exists():
        pickles = sorted(p.name for p in directory.iterdir() if p.suffix in REFUSED_SUFFIXES)
        if pickles:
            raise CheckpointError(
                f"{directory} has {pickles} but no {WEIGHTS_NAME}; augmentgen loads safetensors only "
                "because pickle files can run arbitrary code when loaded"
            )
        if not (directory / CONFIG_NAME).exists():
            raise CheckpointError(f"{directory} is not a saved generator: it has neither {CONFIG_NAME} nor {WEIGHTS_NAME}; "
                                  "pass the folder that save_pretrained or `augmentgen train --out` wrote")
        raise CheckpointError(f"{weights} is missing; a saved generator folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    config_dict = read_config(directory)
    try:
        config = config_from_dict(config_dict)
    except ConfigError as exc:
        raise CheckpointError(f"{directory / CONFIG_NAME} is not a valid generator config: {exc}") from exc
    tensors, meta = _read_safetensors(weights)
    saved_config = meta.get("augmentgen_config")
    if saved_config is not None and json.loads(saved_config) != config_dict:
        raise CheckpointError(
            f"{CONFIG_NAME} does not match the config stored with the weights in {weights}; "
            "one of the two files was replaced or edited"
        )
    expected = meta.get("augmentgen_sha256")
    if expected is not None and tensors_sha256(tensors) != expected:
        raise CheckpointError(f"{weights} is corrupted: its tensors do not match their stored sha256")
    generator = build_generator(config)
    load_tensors_strict(generator, tensors, source=str(weights))
    return generator.to(device) if device is not None else generator


def load_tensors_strict(generator: ConditionalGenerator, tensors: dict[str, torch.Tensor], *, source: str) -> None:
    """Load ``tensors`` into ``generator``; any missing, unexpected or mis-shaped key is an error."""
    own = generator.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    mismatched = [f"{k}: saved {tuple(tensors[k].shape)}, model {tuple(own[k].shape)}"
                  for k in sorted(set(own) & set(tensors)) if tensors[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if mismatched:
            parts.append(f"shape mismatches {mismatched[:3]}")
        raise CheckpointError(f"the weights in {source} do not fit the config: " + "; ".join(parts))
    generator.load_state_dict(tensors, strict=True)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({exc}); it is truncated or corrupted"
        ) from exc
    return tensors, meta


def save_pretrained(
    generator: ConditionalGenerator,
    directory: str | os.PathLike,
    *,
    dataset: str | None = None,
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    description: str | None = None,
    grid: str | os.PathLike | bool = True,
    license: str = DEFAULT_LICENSE,
    name: str | None = None,
    repo_id: str | None = None,
    tags: list[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Save ``generator`` as a shareable folder: weights, config, model card and sample grid.

    Writes ``config.json`` and ``model.safetensors`` (:func:`save_generator`), ``samples.png``
    (one row per class) and a ``README.md`` model card with YAML front matter
    (``library_name: augmentgen``, licence, tags). The result loads with
    :func:`augmentgen.from_pretrained` and uploads with :func:`augmentgen.push_to_hub`. Every
    argument is checked before anything in ``directory`` changes.

    Args:
        generator: the generator to save.
        directory: the folder to write (created if needed).
        dataset: what it was trained on (a built-in dataset name or free text).
        metrics: measured figures for the card, e.g. ``{"class_consistency": 0.93}``.
        training: the trainer's summary (steps, train_seconds, command, ...); by default the
            ``training.json`` in ``directory``, unless it goes with a model ``overwrite`` replaces.
        description: one line saying what this generator is (also listed by
            :func:`augmentgen.list_pretrained` for zoo models).
        grid: ``True`` to draw an 8-per-class sample grid (seed 0), the path of a ``.png`` to
            copy an existing grid from, or ``False`` for none.
        license, name, repo_id, tags: card fields (licence id, title, the id users load it by,
            extra tags).
        overwrite: replace a model with other weights in ``directory`` (else a CheckpointError).
            Its ``training.json`` describes the replaced weights, so it is removed with them, as
            ``augmentgen train --overwrite`` does. The same weights again (e.g. into the trainer's
            run folder) need no ``overwrite`` and keep what the trainer stored with them. A
            ``README.md`` or ``config.json`` that augmentgen did not write (your notes, another
            tool's config), or a grid in a folder that holds no augmentgen model, is also
            refused unless ``overwrite=True``.

    Returns:
        The folder written.
    """
    check_generator_argument(generator, "save_pretrained", "save_pretrained(generator, directory)")
    directory = _check_directory(directory)
    check_flag(overwrite, "overwrite")
    grid_name = _check_grid(grid)
    replaces, kept_metadata = _check_target(generator, directory, overwrite, grid_name)
    if not overwrite:  # the grid given as a file already in place is not written over
        drawn = grid is True or (grid_name and Path(grid).resolve() != (directory / grid_name).resolve())
        _check_foreign_files(directory, grid_name if drawn else None)
    if training is None and not replaces:
        training = read_training_summary(directory)
    images = _grid_images(generator) if grid is True else None  # drawn before anything is written
    card = render_model_card(generator, name=name or directory.name, dataset=dataset, metrics=metrics,
                             training=training, description=description, grid=grid_name, license=license,
                             repo_id=repo_id, tags=tags)
    if replaces:  # first, so the new weights never sit beside the old model's training summary
        (directory / TRAINING_NAME).unlink(missing_ok=True)
    save_generator(generator, directory, metadata=kept_metadata)
    _write_grid(directory, grid, images)
    atomic_write_bytes(directory / CARD_NAME, card.encode())
    return directory


def _check_target(generator: ConditionalGenerator, directory: Path, overwrite: bool,
                  grid_name: str | None) -> tuple[bool, dict[str, str]]:
    """Refuse ``directory`` when it is a file, has a folder where a file goes, or holds other weights
    and not ``overwrite``; changes nothing.

    Returns whether another model is replaced, and the metadata to keep: what the trainer stored
    with these same weights (``steps``, ``augmentgen_init_from``, ...), which a re-save must not drop.
    """
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is an existing file, not a folder; pass a folder to save the generator in")
    folders = [n for n in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME, grid_name) if n and (directory / n).is_dir()]
    if folders:  # a file cannot be renamed over them: found now, not after the weights are written
        raise ConfigError(f"{directory} has folders named {folders} where save_pretrained writes files; "
                          "move them away or choose another folder")
    weights = directory / WEIGHTS_NAME
    if not (weights.exists() or weights.is_symlink()):
        return False, {}
    held = _held_metadata(weights)
    if held is not None and held["augmentgen_sha256"] == tensors_sha256(generator_tensors(generator)):
        return False, {k: v for k, v in held.items() if k not in OWN_METADATA}
    if not overwrite:
        what = "other weights" if held is not None else "weights that cannot be read"
        raise CheckpointError(
            f"{directory} already holds another model ({WEIGHTS_NAME} with {what}); nothing was changed. "
            "Pass overwrite=True to replace it (its training.json goes with it), or choose another folder"
        )
    return True, {}


def _check_directory(directory: Any) -> Path:
    """``directory`` as a Path; a ConfigError for a value that is not a path, or an empty one (which
    ``Path`` reads as the current folder: the card would be written over its ``README.md``)."""
    check_path(directory, "save_pretrained's folder", kind="a folder path", empty="would save into the current folder",
               example="the folder to write, e.g. save_pretrained(generator, 'my-generator')")
    return Path(directory)


def _check_foreign_files(directory: Path, grid_name: str | None) -> None:
    """Refuse (changing nothing) to write over files augmentgen did not write: a ``README.md`` that is not
    an augmentgen model card, a ``config.json`` that is not a generator's config, or the grid's file in a
    folder that holds neither an augmentgen model nor its card (a PNG says nothing about who wrote it)."""
    card, config, weights = directory / CARD_NAME, directory / CONFIG_NAME, directory / WEIGHTS_NAME
    ours = {CARD_NAME: _is_our_card(card), CONFIG_NAME: _is_our_config(config)}
    foreign = [name for name, path in ((CARD_NAME, card), (CONFIG_NAME, config)) if path.is_file() and not ours[name]]
    if grid_name and (directory / grid_name).is_file() and not (weights.exists() or any(ours.values())):
        foreign.append(grid_name)
    if foreign:
        raise CheckpointError(
            f"{directory} holds {foreign}, which augmentgen did not write (no model card or generator config); "
            "nothing was changed. Choose another folder, move them away, or pass overwrite=True to replace them")


def _is_our_card(path: Path) -> bool:
    """Whether ``path`` is a model card augmentgen wrote (its front matter names the library)."""
    try:
        head = path.read_bytes()[:4096].decode("utf-8", errors="replace")
    except OSError:
        return False
    return head.startswith("---") and "library_name: augmentgen" in head.split("\n---", 1)[0]


def _is_our_config(path: Path) -> bool:
    """Whether ``path`` is a generator config augmentgen wrote (a JSON object naming a ``family``)."""
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and isinstance(config.get("family"), str)


def _held_metadata(weights: Path) -> dict[str, str] | None:
    """The metadata of the weights file already there, its ``augmentgen_sha256`` always set; None
    when it is unreadable. Only a file written elsewhere, without the sha256, has its tensors read."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            meta = dict(f.metadata() or {})
            if "augmentgen_sha256" not in meta:
                meta["augmentgen_sha256"] = tensors_sha256({k: f.get_tensor(k) for k in f.keys()})
    except (SafetensorError, OSError, ValueError):
        return None
    return meta


def _check_grid(grid: str | os.PathLike | bool) -> str | None:
    """The file name the sample grid will have in the folder, or None for none; refuses a bad ``grid``."""
    if grid is True:
        return GRID_NAME
    if not grid:
        return None
    if not isinstance(grid, (str, os.PathLike)):
        raise ConfigError(f"grid must be True, False or the path of a .png file, not the "
                          f"{type(grid).__name__} {grid!r}")
    grid_path = Path(grid)
    if grid_path.suffix != ".png":
        # The card shows it as an image and push_to_hub uploads *.png beside the card, nothing else.
        raise ConfigError(f"sample grid {grid_path} is not a .png file; pass a PNG, or grid=True to draw one")
    if not grid_path.is_file():
        raise CheckpointError(f"sample grid {grid_path} does not exist (or is not a file)")
    return grid_path.name


def _grid_images(generator: ConditionalGenerator) -> torch.Tensor:
    """The images of the drawn sample grid: 8 per class, seed 0."""
    g = torch.Generator(device=generator.device).manual_seed(0)
    images, _ = generator.sample_per_class(8, generator=g)
    return images


def _write_grid(directory: Path, grid: str | os.PathLike | bool, images: torch.Tensor | None) -> None:
    """Write the drawn ``images`` as the grid, or copy the ``grid`` file into ``directory``."""
    if images is not None:
        save_sample_grid(images, 8, directory / GRID_NAME)
        return
    if not grid:
        return
    grid_path = Path(grid)
    if grid_path.resolve() != (directory / grid_path.name).resolve():
        atomic_write_bytes(directory / grid_path.name, grid_path.read_bytes())
