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
_PARTIAL_PREFIX = ".tmp-step-"


def checkpoint_dirs(output_dir: str | os.PathLike) -> list[Path]:
    """The complete checkpoints of the run in ``output_dir``, oldest first."""
    root = Path(output_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))


def partial_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Checkpoints whose writing never finished (the process died before the rename)."""
    root = Path(output_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(_PARTIAL_PREFIX))


def checkpoint_step(path: Path) -> int:
    """The training step a checkpoint folder holds, from its name (``step-0000060`` -> 60)."""
    return int(path.name.removeprefix("step-"))


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
    final, tmp = root / f"step-{step:07d}", root / f"{_PARTIAL_PREFIX}{step:07d}"
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
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)  # the checkpoint only exists under its real name once complete
            fsync_dir(root)  # make the rename itself durable
    except OSError as exc:
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"could not write a checkpoint to {root}: {exc}; earlier checkpoints are intact"
        ) from exc
    if acc.is_main_process:
        for old in checkpoint_dirs(output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return final


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
        "Nothing was changed; start a new run with --overwrite (overwrite=True) or another --out"
    )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
