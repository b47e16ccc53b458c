"""Atomic, durable file writes: the one implementation every layer uses.

A file is written under a temporary name in its own folder, fsynced, renamed over the target and
the rename made durable by an fsync of the folder, so readers see the old file or the new one,
never half of one, and a crash mid-write leaves the previous file intact.

A folder is written in a scratch folder beside it (:func:`make_owned_dir`) that names the process
writing it, so that a later writer can remove the scratch folders of killed processes, and only
those (:func:`stale_owned_dirs`). A file's temporary name names its writer the same way, so that a
resuming job can remove the temporaries a kill left (:func:`remove_dead_temporaries`). A path
that can never be created (a file where a folder above it should be) is refused before the long
work whose result would go there (:func:`check_creatable`), and a folder that cannot be
written before the work that fills it (:func:`check_writable`).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CheckpointError, ConfigError

__all__ = ["atomic_path", "atomic_write_bytes", "fsync_dir", "fsync_tree", "make_owned_dir", "read_head",
           "remove_dead_temporaries", "stale_owned_dirs"]

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


def read_head(path: str | os.PathLike, n: int) -> bytes | None:
    """A file's first ``n`` bytes (fewer for a shorter file), or None where it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return None


def check_creatable(out: str | os.PathLike) -> None:
    """Refuse ``out`` when a folder above it is an existing file: nothing can ever be created there.

    Checked before any sampling: creating the parents later would raise a bare
    ``FileExistsError`` or ``NotADirectoryError`` once the (possibly long) work is done.
    """
    for parent in Path(out).expanduser().absolute().parents:
        if parent.exists() or parent.is_symlink():  # a dangling link is neither folder nor creatable
            if not parent.is_dir():
                raise ConfigError(f"{out} cannot be created: {parent} is a file, not a folder; choose "
                                  "another path")
            return


def check_writable(path: str | os.PathLike, what: str = "output_dir", *, fix: str = "choose a folder path") -> None:
    """Refuse ``path`` as an output folder when it is a file or cannot be created or written,
    before any work (``what`` names it as its caller does; ``fix`` says what to pass instead)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is an existing file, not a folder; {fix}")
    existing = path
    while not existing.exists():
        if existing.is_symlink():  # a dangling link: mkdir would fail on it after the work
            raise ConfigError(f"{what} {path} cannot be created: {existing} is a symbolic link to "
                              f"{os.readlink(existing)}, which does not exist; create that folder, or choose "
                              "another folder path")
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what} {path} cannot be created: {existing} is a file; choose another folder path")
    try:  # os.access trusts permission bits only: a read-only filesystem or root's view needs a real write
        fd, probe = tempfile.mkstemp(prefix=".augmentgen-write-test-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{what} {path} is not writable: {exc.strerror or exc} (in {existing}); "
                          "choose a folder you can write to") from exc


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; on success it is fsynced and renamed onto ``path``.

    ``with atomic_path(out / "a.parquet") as tmp: writer(tmp)``. The temporary file is hidden
    (``.<name>.<writer>.<random>.tmp``, the writer being this host and process, see
    :func:`remove_dead_temporaries`) and has the permissions a plain ``open()`` would give; on any
    exception it is removed and ``path`` is left as it was. The parent folder is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{_writer_tag()}.", suffix=".tmp", dir=path.parent)
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


# A folder made by make_owned_dir names its writer here: the host and pid of the process filling it.
_OWNER_FILE = "owner.json"


def make_owned_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new hidden scratch folder ``parent/<prefix><8 random characters>`` marked with its writer.

    Its ``owner.json`` records this host and process, so that :func:`stale_owned_dirs` can later
    tell a folder whose writer was killed from one another process is still filling.
    """
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    try:
        with atomic_path(folder / _OWNER_FILE) as tmp:
            tmp.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                       "started": _own_start(os.getpid())}), encoding="utf-8")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def stale_owned_dirs(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """The folders of :func:`make_owned_dir` with this ``prefix`` in ``parent`` whose writer is dead.

    Dead means: its ``owner.json`` names this host and a pid no process here has. A folder whose
    writer cannot be told (no or an unreadable mark, as older versions left; another host; a
    system without a pid check) is left alone with one warning naming it, since another process
    may still be writing it. A pid since reused by another process counts as dead where the
    system tells when a process started (Linux); elsewhere such a folder is kept, as live.
    """
    parent = Path(parent)
    # Exactly the prefix and mkdtemp's 8 characters: ".a.partial-" never matches the folders of a
    # target named "a.partial-b" (".a.partial-b.partial-xxxxxxxx").
    pattern = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}")
    try:
        folders = sorted(p for p in parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir()
                         and not p.is_symlink())
    except OSError:
        return []  # no parent yet, or unreadable: nothing of ours to clean
    stale, unsure = [], []
    for folder in folders:
        alive = _writer_alive(folder)
        if alive is None:
            unsure.append(folder.name)
        elif not alive:
            stale.append(folder)
    if unsure:
        it = "it" if len(unsure) == 1 else "them"
        warnings.warn(f"left {', '.join(unsure)} in {parent}: the process that wrote {it} cannot be checked "
                      f"from here (no mark of it, or it ran on another host) and may still be writing {it}. "
                      f"If none is, remove {it} yourself", stacklevel=3)
    return stale


def _writer_alive(folder: Path) -> bool | None:
    """Whether the process named in ``folder``'s mark still runs; None when that cannot be told."""
    try:
        owner = json.loads((folder / _OWNER_FILE).read_text(encoding="utf-8"))
        host, pid = owner["host"], owner["pid"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if host != socket.gethostname():
        return None  # a pid means nothing on another host
    return _process_alive(pid, owner.get("started"))


def _process_alive(pid, started) -> bool | None:
    """Whether process ``pid`` of this host, which started at ``started`` (:func:`_process_started`,
    None when unknown), still runs; None when that cannot be told."""
    # pid 0 or below would ask about a process group.
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
        return None
    if os.name != "posix":
        return None  # Windows' os.kill(pid, 0) sends a Ctrl-C event rather than checking
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    except OSError:
        return None
    now = _process_started(pid)
    # A different start time: the writer died and an unrelated process got its pid since.
    return not (isinstance(started, int) and now is not None and now != started)


def _process_started(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux's ``/proc/<pid>/stat``); None
    where the system does not say. With the pid it names one process, even once the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # Fields after the command name (which may hold spaces and parentheses); starttime is the 22nd.
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _host_tag() -> int:
    """This host in a file name: the crc32 of its name (short, and free of odd characters)."""
    return zlib.crc32(socket.gethostname().encode()) & 0xFFFFFFFF


@functools.lru_cache(maxsize=8)
def _own_start(pid: int) -> int | None:
    """:func:`_process_started` of this process, read once per pid (a fork gets its own) rather than
    at every atomic write."""
    return _process_started(pid)


def _writer_tag() -> str:
    """This process in a file name: ``w<host crc32>-<pid>-<start time or 0>``."""
    return f"w{_host_tag():08x}-{os.getpid()}-{_own_start(os.getpid()) or 0}"


# ".<target>.w<host>-<pid>-<started>.<mkstemp's 8 characters>.tmp", as atomic_path names them.
_TEMPORARY = re.compile(r"\.(?P<target>.+)\.w(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<started>\d+)\.[a-z0-9_]{8}\.tmp")


def remove_dead_temporaries(folder: str | os.PathLike) -> list[str]:
    """Remove the temporary files :func:`atomic_path` left in ``folder`` when its writer was killed.

    Only those whose writer is known dead: this host's, and no process with that pid and start
    time runs. Temporaries of live writers, other hosts, or other programs stay. Returns the
    names of the targets whose temporaries were removed. For a job that resumes in ``folder``
    (a kill mid-write left a hidden, possibly large, partial file there).
    """
    host = _host_tag()
    removed = []
    try:
        entries = sorted(Path(folder).iterdir())
    except OSError:
        return removed  # no folder yet, or unreadable: nothing of ours to clean
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None or int(match["host"], 16) != host or not entry.is_file() or entry.is_symlink():
            continue
        if _process_alive(int(match["pid"]), int(match["started"]) or None) is False:
            entry.unlink(missing_ok=True)
            removed.append(match["target"])
    return removed
