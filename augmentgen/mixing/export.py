"""Writing a generator's samples to disk: a grid, an ImageFolder, an ``.npz`` or an HF dataset.

Every format but the preview grid is written into a hidden temporary sibling of ``out`` and
renamed into place when complete (the grid, one file, is renamed over its target), so a crash
never leaves a half-written export. The sibling of an export that was killed is removed by the
next export to the same ``out``, once its process is gone, and an earlier export the kill left in
it is put back. An existing output is never silently mixed with or replaced by a new one, and
``overwrite=True`` replaces only an export that carries augmentgen's mark.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .._config import check_flag, check_path
from .._images import save_sample_grid, to_uint8
from .._io import (
    check_creatable,
    fsync_dir,
    fsync_file,
    fsync_tree,
    make_owned_dir,
    read_head,
    stale_owned_dirs,
)
from .._processes import progress_bar
from .._seeds import seeded_generator
from ..data.folder_index import (
    CLASSES_FILE,
    INDEX_FORMAT,
    class_folder_names,
    safe_folder_name,
    write_class_index,
)
from ..errors import ConfigError, DataError
from ..models.base import ConditionalGenerator, Temperature, check_generator_argument, sampling_progress

FORMATS = ("grid", "imagefolder", "npz", "hf")
# The marks of an earlier export, the only thing overwrite=True may replace: a file or folder of
# the same name that a user wrote themselves (np.savez of images/labels/classes, which load_data
# documents; a save_to_disk of their own dataset; an ImageFolder with a classes.json) lacks them.
_NPZ_FORMAT = "augmentgen-npz"  # the export's "format" array; load_data ignores extra arrays
_HF_DESCRIPTION = "augmentgen-hf: synthetic images sampled from a generator by augmentgen.write_samples"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"  # a grid's bytes cannot carry a mark, so any PNG is taken
# The entries of a scratch folder: the new export (in a folder of its own, so that no target name
# can collide with the others), and an earlier export moved aside by overwrite=True.
_NEW, _EARLIER = "new", "earlier"


def safe_class_dir(name: str) -> str:
    """A folder-safe form of a class name (``"T-shirt/top"`` -> ``"T-shirt_top"``).

    The ImageFolder export prefixes it with the class index (``00_T-shirt_top``); see
    :func:`augmentgen.data.folder_index.class_folder_names`.
    """
    return safe_folder_name(name)


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def check_target(out: str | os.PathLike, format: str, overwrite: bool = False) -> Path:
    """The path :func:`write_samples` writes ``out`` at; refuses it first, before any sampling.

    First the scratch folders that killed exports to ``out`` left beside it are removed (and an
    earlier export one of them holds is put back, with a warning); those another live process
    may still be filling are left.

    Raises:
        ConfigError: ``format`` is unknown, a folder above ``out`` is a file, or a grid's ``out``
            is a folder.
        DataError: ``out`` exists (a non-empty folder or a file) and ``overwrite`` is False, or
            ``overwrite`` is True but ``out`` is not an earlier export of ``format`` (or it also
            holds entries that such an export does not write).
    """
    check_flag(overwrite, "overwrite")
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, got {format!r}")
    check_path(out, "out", empty="would write into the current folder",
               example="the path to write the samples at (a file for grid and npz, a folder otherwise)")
    out = Path(out).expanduser()
    if format == "npz" and out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")  # what np.savez would have done
    check_creatable(out)
    if format == "grid":
        _check_grid_target(out, overwrite)
    else:
        _remove_stale_scratch(out)  # first: it may put back an earlier export the check must see
        _check_target(out, format, overwrite)
    return out


#: Suffixes of image formats other than PNG: a grid written under one would be a PNG misnamed.
_OTHER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jp2")


def _check_grid_target(out: Path, overwrite: bool) -> None:
    """A grid replaces only a PNG file, and only with overwrite=True: it may be another run's grid."""
    if out.suffix.lower() in _OTHER_IMAGE_SUFFIXES:
        raise ConfigError(f"{out} names a {out.suffix.lstrip('.').upper()} image, but format='grid' writes a PNG "
                          f"(lossless, as the samples are); pass a .png path like {out.with_suffix('.png')}")
    if out.is_dir():
        raise ConfigError(f"{out} is a folder, but format='grid' writes one PNG file; pass a file path like "
                          "grid.png, or format='imagefolder' to write a folder of images")
    if not out.exists() and not out.is_symlink():
        return
    if not overwrite:
        raise DataError(f"{out} already exists; choose another file name, or pass overwrite=True to replace it")
    if not _is_png(out):
        raise DataError(f"{out} is not a PNG file, so not an earlier grid, and overwrite=True will not replace "
                        "it; choose another file name, or remove it yourself")


def _check_target(target: Path, format: str, overwrite: bool) -> None:
    """Refuse to write where the export would mix with, or silently replace, existing files."""
    if not target.exists() and not target.is_symlink():
        return
    if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
        return  # an empty folder holds nothing to lose or mix
    if format == "npz" and not overwrite:
        raise DataError(f"{target} already exists; choose another file name, or pass overwrite=True to "
                        "replace it" if target.is_file() else f"{target} exists and is not a file; choose "
                        "another file name")
    if not overwrite:
        raise DataError(f"{target} already exists and is not empty: writing there would mix these samples "
                        "with its files. Choose another folder, or pass overwrite=True to replace an "
                        "earlier export in it")
    missing = _missing_mark(target, format)
    if missing:
        raise DataError(f"{target} is not an earlier {format} export ({missing}): augmentgen did not write it, "
                        "so overwrite=True will not delete it; choose another "
                        f"{'file name' if format == 'npz' else 'folder'}, or remove it yourself")
    added = _added_entries(target, format)
    if added:
        raise DataError(f"{target} is an earlier {format} export, but it also holds {added}, which the export did "
                        "not write (a run trained into it, your notes), so overwrite=True will not replace the "
                        "folder; move them out of it, or choose another folder")


def _added_entries(target: Path, format: str) -> list[str]:
    """The entries at the top of the marked export folder ``target`` that an export of ``format`` does
    not write: overwrite=True replaces the whole folder, and would delete them with it."""
    if format == "npz":
        return []
    if format == "hf":
        written = re.compile(r"dataset_info\.json|state\.json|data-\d{5}-of-\d{5}\.arrow")
        return sorted(p.name for p in target.iterdir() if not written.fullmatch(p.name))
    try:
        folders = set(json.loads((target / CLASSES_FILE).read_text(encoding="utf-8")).get("folders") or ())
    except (OSError, ValueError, AttributeError, TypeError):
        folders = set()  # read once already for its mark: an unreadable list means none of ours
    return sorted(p.name for p in target.iterdir() if p.name != CLASSES_FILE and p.name not in folders)


def _missing_mark(target: Path, format: str) -> str | None:
    """Why ``target`` is not an export of ``format`` augmentgen wrote; None when it is one."""
    right_kind = target.is_file() if format == "npz" else target.is_dir()
    if target.is_symlink() or not right_kind:
        return f"it is not a {'file' if format == 'npz' else 'folder'}"
    if format == "npz":
        try:
            with np.load(target, allow_pickle=False) as archive:
                if str(archive["format"]) == _NPZ_FORMAT:
                    return None
        except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError, zipfile.BadZipFile):
            pass  # not an .npz, a lone .npy (no "with"), or one without the mark
        return f"it has no 'format' array holding {_NPZ_FORMAT!r}"
    name, field, mark = ((CLASSES_FILE, "format", INDEX_FORMAT) if format == "imagefolder" else
                         ("dataset_info.json", "description", _HF_DESCRIPTION))
    try:
        if json.loads((target / name).read_text(encoding="utf-8")).get(field) == mark:
            return None
    except (OSError, ValueError, AttributeError):
        pass  # missing, unreadable, or not a JSON object
    return f"no {name} whose {field!r} is {mark!r}"


def _is_png(path: Path) -> bool:
    return read_head(path, len(_PNG_SIGNATURE)) == _PNG_SIGNATURE


def _scratch_prefix(target: Path) -> str:
    """The name start of ``target``'s scratch folders: hidden, so readers of the parent folder (an
    ImageFolder of exports, a glob) never see a partial export."""
    return f".{target.name}.partial-"


def _remove_stale_scratch(target: Path) -> None:
    """Remove the scratch folders of exports to ``target`` whose process was killed, first putting
    back an earlier export that a kill left in one (moved aside by ``overwrite=True``, not yet
    replaced). Scratch folders of live or unknown writers stay (:func:`stale_owned_dirs`)."""
    target = target.absolute()
    for scratch in stale_owned_dirs(target.parent, _scratch_prefix(target)):
        earlier = scratch / _EARLIER
        # With the target in place, the kill came after the new export's rename: the earlier one is
        # what the user asked overwrite=True to replace, and goes with the scratch folder.
        if (earlier.exists() or earlier.is_symlink()) and not (target.exists() or target.is_symlink()):
            try:
                os.replace(earlier, target)
            except OSError as exc:  # left where it is: deleting the scratch folder would lose it
                warnings.warn(f"could not put back the earlier export {target} from {scratch} ({exc}); "
                              f"move {earlier} back yourself", stacklevel=4)
                continue
            fsync_dir(target.parent)
            warnings.warn(f"put back the earlier export {target}: the export that was replacing it was killed "
                          "before its new files were in place", stacklevel=4)
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def _staged(target: Path, format: str, overwrite: bool) -> Iterator[Path]:
    """A path to write ``target`` at, in a hidden sibling folder; moved into place on success."""
    target = target.absolute()  # "out" or "." has no usable parent or name otherwise
    target.parent.mkdir(parents=True, exist_ok=True)
    # A sibling, so the final rename stays on one file system (atomic); marked with this process,
    # so that a later export removes it if this one is killed (_remove_stale_scratch).
    scratch = make_owned_dir(target.parent, _scratch_prefix(target))
    staged = scratch / _NEW / target.name
    staged.parent.mkdir()
    try:
        yield staged
        # On disk before the rename makes it the export: a crash right after never leaves
        # a complete-looking folder of truncated files.
        if staged.is_dir():
            fsync_tree(staged)
        else:
            fsync_file(staged)
        _check_target(target, format, overwrite)  # again: another process may have written meanwhile
        _move_into_place(staged, target, scratch / _EARLIER)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _move_into_place(staged: Path, target: Path, earlier: Path) -> None:
    """Rename ``staged`` to ``target``; an earlier export there is first moved to ``earlier`` (in the
    scratch folder, removed with it), and moved back if the rename fails."""
    emptied = replaced = False
    if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
        target.rmdir()  # Windows cannot rename onto an empty folder
        emptied = True
    elif (target.exists() or target.is_symlink()) and not (target.is_file() and staged.is_file()):
        os.replace(target, earlier)  # a kill from here to the next rename: the next export puts it back
        replaced = True
    try:
        os.replace(staged, target)  # a file over a file: atomic
    except OSError:
        if replaced:
            os.replace(earlier, target)  # the earlier export goes back, not away with the scratch
        elif emptied:
            target.mkdir()
        raise
    fsync_dir(target.parent)  # make the rename itself durable


def write_samples(generator: ConditionalGenerator, per_class: int, out: str | os.PathLike,
                  format: Literal["grid", "imagefolder", "npz", "hf"] = "grid", *, seed: int = 0,
                  batch_size: int = 1024, temperature: Temperature = 1.0, overwrite: bool = False,
                  progress: bool | None = None) -> Path:
    """Sample ``per_class`` images of every class and write them to ``out``.

    ``temperature`` is :meth:`ConditionalGenerator.sample`'s: below 1 concentrates each class's
    samples towards its centre (0: one image per class), above 1 spreads them; one float, or
    ``num_classes`` floats indexed by class (``augmentgen sample --temperature``). ``progress``:
    a tqdm bar of the images sampled on the main process, advanced within a batch by iterative
    families (``ddpm``); ``None`` (the default) shows it when stderr is a terminal.

    Formats:
        - ``grid``: one PNG, one row per class (``out`` is the file).
        - ``imagefolder``: ``out/<index>_<class>/<index>_<class>_<i>.png`` plus ``out/classes.json``.
          The zero-padded index prefix (``00_T-shirt_top``) makes the sorted folder order, which
          torchvision's ``ImageFolder`` and ``datasets.load_dataset("imagefolder")`` number
          classes by, the generator's class order; ``augmentgen.load_data(out)`` also restores
          the original names (``"T-shirt/top"``) from ``classes.json``.
        - ``npz``: ``images`` uint8 (N, C, H, W), ``labels`` int64, ``classes`` str, and ``format``
          (``"augmentgen-npz"``); readable with ``augmentgen.load_data(out)``, no pickle. ``.npz`` is
          appended to ``out`` if missing.
        - ``hf``: ``datasets.Dataset.save_to_disk(out)`` with :func:`synthesize`'s features; its
          ``info.description`` marks it as written here.

    The output is written beside ``out`` (a folder in a hidden sibling) and renamed into place
    once complete; the next export to ``out`` removes the hidden sibling of one that was killed.
    Before any sampling (:func:`check_target`): an existing file or non-empty folder at ``out`` is
    a :class:`~augmentgen.errors.DataError` unless ``overwrite=True``, which replaces only an
    earlier export of the same format: one with augmentgen's mark (``classes.json``'s ``format``,
    the ``format`` array, the description) or, for a grid, a PNG file; a user's own data of the
    same layout is refused, never deleted, and so is a marked folder that also holds files the
    export did not write (a run trained into it). A file above ``out``, or a folder as a
    grid's ``out``, is a :class:`~augmentgen.errors.ConfigError`.

    Returns:
        The path written.
    """
    check_generator_argument(generator, "write_samples", "write_samples(generator, per_class, out, format)")
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, got {format!r}")
    per_class = _positive_int(per_class, "per_class")
    rng = seeded_generator(seed, generator.device)  # a seed of the wrong kind fails before any file
    batch_size = _positive_int(batch_size, "batch_size")
    temperature = generator.check_temperature(temperature)  # before any file is written
    out = check_target(out, format, overwrite)  # before the (possibly long) sampling
    if format == "hf":
        return _write_hf(generator, per_class, out, overwrite, seed=seed, batch_size=batch_size,
                         temperature=temperature, progress=progress)
    fake_images = _sample_grouped(generator, per_class, rng=rng, batch_size=batch_size, temperature=temperature,
                                  progress=progress)
    if format == "grid":
        _check_grid_target(out, overwrite)  # again, after the sampling: a file may have appeared meanwhile
        return save_sample_grid(fake_images, per_class, out)
    images = to_uint8(fake_images).cpu()
    with _staged(out, format, overwrite) as staged:
        write = _write_npz if format == "npz" else _write_image_folder
        write(staged, images, generator.class_names, per_class)
    return out


def _write_hf(generator: ConditionalGenerator, per_class: int, out: Path, overwrite: bool, **sampling) -> Path:
    """The ``hf`` format: :func:`synthesize`'s dataset (``sampling`` its options), marked, saved at ``out``."""
    from .hf import synthesize

    dataset = synthesize(generator, per_class, **sampling)
    dataset.info.description = _HF_DESCRIPTION  # the mark that lets overwrite=True replace it later
    with _staged(out, "hf", overwrite) as staged:
        dataset.save_to_disk(str(staged))
    return out


def _sample_grouped(generator: ConditionalGenerator, per_class: int, *, rng: torch.Generator, batch_size: int,
                    temperature: Temperature, progress: bool | None) -> torch.Tensor:
    """``per_class`` samples of every class, grouped by class, under a bar of the images sampled."""
    labels = torch.arange(generator.num_classes, device=generator.device).repeat_interleave(per_class)
    with progress_bar(progress, total=len(labels), desc="samples") as bar, sampling_progress(bar):
        return generator.sample(labels, generator=rng, batch_size=batch_size, temperature=temperature)


def _write_npz(path: Path, images: torch.Tensor, class_names: list[str], per_class: int) -> None:
    """``images``, ``labels``, ``classes`` and ``format`` arrays for uint8 images grouped by class."""
    labels = np.arange(len(class_names), dtype=np.int64).repeat(per_class)
    with open(path, "wb") as f:  # a file object: np.savez appends no suffix
        np.savez_compressed(f, images=images.numpy(), labels=labels, classes=np.asarray(class_names, dtype=str),
                            format=np.asarray(_NPZ_FORMAT))


def _write_image_folder(root: Path, images: torch.Tensor, class_names: list[str], per_class: int) -> None:
    """``root/<index>_<class>/*.png`` and ``root/classes.json`` for uint8 images grouped by class."""
    from PIL import Image

    folders = class_folder_names(class_names)
    width = max(5, len(str(per_class - 1)))
    arrays = images.permute(0, 2, 3, 1).numpy()
    root.mkdir()
    for k, folder in enumerate(folders):
        (root / folder).mkdir()
        for i in range(per_class):  # one PNG file per image: file I/O, not a hot path
            array = arrays[k * per_class + i]
            Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(
                root / folder / f"{folder}_{i:0{width}d}.png")
    write_class_index(root, class_names, folders)
