"""Resumable checkpoints: written atomically, verified before loading, the newest good one resumed.

A checkpoint is ``<output_dir>/checkpoints/step-NNNNNNN/``: Accelerate's ``save_state`` files
(models, optimizers, RNG states, the registered EMA and progress) plus ``run.json``, this
module's manifest: the run's model config, the training fields a resume must repeat, a
description of the data, and the sha256 of every other file in the folder. The manifest is
what lets a resume refuse other data or another config, and tell a corrupt checkpoint from a
good one (safetensors loads bit flips silently; a truncated pickle fails deep in Accelerate).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

from accelerate import Accelerator

from .._io import fsync_dir, fsync_tree
from ..errors import CheckpointError

CHECKPOINT_DIR = "checkpoints"
MANIFEST_NAME = "run.json"
_PREFIX = "step-"
# A checkpoint being written, or being removed (renamed here first, so that a kill mid-removal
# never leaves a half-deleted folder under a checkpoint's name).
_PARTIAL_PREFIX = ".tmp-step-"
# A checkpoint being replaced by a new one of the same step, until the new one is in place.
_REPLACED_PREFIX = ".replaced-step-"


def checkpoint_dirs(output_dir: str | os.PathLike) -> list[Path]:
    """The complete checkpoints of the run in ``output_dir``, oldest first.

    A checkpoint that a kill left aside while it was being replaced (the new one not yet in
    place) is first renamed back, with a warning: every reader of the run sees it.
    """
    root = Path(output_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    _recover_replaced(root)
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX))


def _recover_replaced(root: Path) -> None:
    """Rename back each checkpoint left aside by a kill between the two renames of its replacement."""
    for aside in sorted(root.glob(_REPLACED_PREFIX + "*")):
        final = root / (_PREFIX + aside.name.removeprefix(_REPLACED_PREFIX))
        if final.exists() or final.is_symlink():
            continue  # its replacement got in place: the copy is a leftover (partial_checkpoints)
        try:
            os.replace(aside, final)
        except OSError:
            continue  # another process of the run recovered it first, or it stays aside for the next look
        fsync_dir(root)
        warnings.warn(f"recovered checkpoint {final.name} in {root}: the run was killed while it was being "
                      "replaced by a new one of the same step, which never got in place", stacklevel=3)


def partial_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """What resuming removes: checkpoints whose writing (or removal) never finished, and copies of
    replaced checkpoints whose replacement is in place (the process died before removing them)."""
    root = Path(output_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(_PARTIAL_PREFIX) or (
        p.name.startswith(_REPLACED_PREFIX) and (root / (_PREFIX + p.name.removeprefix(_REPLACED_PREFIX))).is_dir()))


def checkpoint_step(path: Path) -> int:
    """The training step a checkpoint folder holds, from its name (``step-0000060`` -> 60)."""
    return int(path.name.removeprefix(_PREFIX))


def write_checkpoint(accelerator: Accelerator, output_dir: str | os.PathLike, step: int, *,
                     keep: int, manifest: dict) -> Path:
    """Write the checkpoint of ``step`` atomically, then keep only the ``keep`` newest ones.

    Not Accelerate's rotation (``ProjectConfiguration(automatic_checkpoint_naming=True,
    total_limit=K)``): ``save_state`` then deletes the oldest checkpoints *before* writing the
    new one, and writes it in place under its final name (accelerate 1.15). With K=1 a crash
    mid-write leaves no complete checkpoint, and with any K a half-written checkpoint is what
    ``load_state`` would resume from. Here the new one is written under a temporary name,
    fsynced, renamed into place, and only then are old ones removed.
    """
    acc = accelerator
    root = Path(output_dir) / CHECKPOINT_DIR
    final, tmp = root / f"{_PREFIX}{step:07d}", root / f"{_PARTIAL_PREFIX}{step:07d}"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
    acc.wait_for_everyone()
    try:
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            files = {p.relative_to(tmp).as_posix(): _file_sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            (tmp / MANIFEST_NAME).write_text(json.dumps({**manifest, "step": step, "files": files}, indent=1))
            fsync_tree(tmp)  # on disk before the rename makes it the checkpoint to resume from
            _move_into_place(tmp, final)
    except OSError as exc:
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"could not write a checkpoint to {root}: {exc}; earlier checkpoints are intact"
        ) from exc
    if acc.is_main_process:
        for old in checkpoint_dirs(output_dir)[:-keep]:
            _remove(old)
    acc.wait_for_everyone()
    return final


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename the complete checkpoint ``tmp`` to ``final``, never without a checkpoint of that step.

    A checkpoint already at ``final`` (a rewrite of its step) is renamed aside first and removed
    only once the new one is in place: a kill between the renames leaves it aside, where
    :func:`checkpoint_dirs` renames it back; a failed rename puts it back at once.
    """
    aside = final.with_name(_REPLACED_PREFIX + final.name.removeprefix(_PREFIX))
    if final.exists():
        if aside.exists():
            shutil.rmtree(aside)  # an earlier replacement's leftover, older than final
        os.replace(final, aside)
    try:
        os.replace(tmp, final)  # the checkpoint only exists under its real name once complete
    except OSError:
        if aside.exists() and not final.exists():
            os.replace(aside, final)
        raise
    fsync_dir(final.parent)  # make the renames durable before the old copy goes
    shutil.rmtree(aside, ignore_errors=True)


def _remove(path: Path) -> None:
    """Remove the checkpoint ``path``, renamed to a partial one first so that it is never listed half removed."""
    doomed = path.with_name(_PARTIAL_PREFIX + path.name.removeprefix(_PREFIX))
    try:
        os.replace(path, doomed)
    except OSError:
        doomed = path  # e.g. a partial of that step is in the way: removed in place, as before
    shutil.rmtree(doomed, ignore_errors=True)


def read_manifest(path: Path) -> dict | None:
    """A checkpoint's ``run.json``; ``None`` when it has none or it is unreadable."""
    try:
        manifest = json.loads((path / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def newest_manifest(output_dir: str | os.PathLike) -> dict | None:
    """The manifest of the newest checkpoint that has a readable one."""
    for path in reversed(checkpoint_dirs(output_dir)):
        manifest = read_manifest(path)
        if manifest is not None:
            return manifest
    return None


def verify_checkpoint(path: Path) -> str | None:
    """What is wrong with the checkpoint at ``path``, or ``None`` when its files match its manifest.

    Checkpoints written before manifests existed have nothing to check against and pass; a
    failing ``load_state`` still catches the worst of their damage.
    """
    if not (path / MANIFEST_NAME).exists():
        return None
    manifest = read_manifest(path)
    if manifest is None or not isinstance(manifest.get("files"), dict):
        return f"its {MANIFEST_NAME} is unreadable"
    for name, digest in manifest["files"].items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if _file_sha256(file) != digest:
            return f"{name} does not match the sha256 recorded when it was written"
    return None


def load_newest_checkpoint(accelerator: Accelerator, output_dir: str | os.PathLike) -> Path:
    """Load the newest checkpoint that verifies and loads; warn about each newer one skipped."""
    dirs = checkpoint_dirs(output_dir)
    if not dirs:
        raise CheckpointError(f"nothing to resume: no checkpoints in {Path(output_dir) / CHECKPOINT_DIR}")
    skipped: list[str] = []
    for path in reversed(dirs):
        problem = verify_checkpoint(path)
        if problem is None:
            try:
                # Accelerate's RNG / optimizer files are its own pickles; they are only ever
                # read from the user's own output folder, never from a downloaded model.
                accelerator.load_state(str(path))
            except Exception as exc:  # noqa: BLE001 - any failure to load means a damaged checkpoint
                problem = f"loading it failed ({type(exc).__name__}: {str(exc)[:200]})"
        if problem is None:
            if skipped and accelerator.is_main_process:
                warnings.warn(f"{'; '.join(skipped)}; resumed from the previous checkpoint, {path.name}, "
                              "instead", stacklevel=3)
            return path
        skipped.append(f"checkpoint {path} is damaged: {problem}")
    raise CheckpointError(
        f"no checkpoint in {Path(output_dir) / CHECKPOINT_DIR} can be loaded: {'; '.join(skipped)}. "
        "Nothing was changed; start a new run with overwrite=True or another output_dir"
    )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
