"""Atomic, durable file writes: the one implementation every layer uses.

A file is written under a temporary name in its own folder, fsynced, renamed over the target and
the rename made durable by an fsync of the folder, so readers see the old file or the new one,
never half of one, and a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CheckpointError

__all__ = ["atomic_path", "atomic_write_bytes", "fsync_dir", "fsync_tree"]

# Read once at import: os.umask can only be read by setting it, which would race with threads later.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def fsync_dir(folder: str | os.PathLike, *, strict: bool = False) -> None:
    """fsync ``folder`` so that renames into it survive a crash; errors are ignored unless ``strict``
    (some file systems cannot open or fsync a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        if strict:
            raise


def fsync_file(path: str | os.PathLike) -> None:
    """fsync the file at ``path`` (before renaming it into place)."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_tree(directory: str | os.PathLike) -> None:
    """fsync every file under ``directory`` and the folder itself (before renaming it into place)."""
    directory = Path(directory)
    for path in directory.rglob("*"):
        if path.is_file():
            fsync_file(path)
    fsync_dir(directory, strict=True)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; on success it is fsynced and renamed onto ``path``.

    ``with atomic_path(out / "a.parquet") as tmp: writer(tmp)``. The temporary file is hidden
    (``.<name>.<random>.tmp``) and has the permissions a plain ``open()`` would give; on any
    exception it is removed and ``path`` is left as it was. The parent folder is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.fchmod(fd, 0o666 & ~_UMASK)
        os.close(fd)
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)  # make the rename itself durable


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    An ``OSError`` is raised as :class:`~augmentgen.errors.CheckpointError` (an ``OSError`` too)
    saying that the previous file is untouched.
    """
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"could not write {path}: {exc}; the previous file is untouched") from exc
