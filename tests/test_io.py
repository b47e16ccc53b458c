"""augmentgen._io: the temporaries and scratch folders a killed writer leaves, and who removes them."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from augmentgen import _io
from augmentgen._io import atomic_path, make_owned_dir, remove_dead_temporaries, stale_owned_dirs

linux_proc = pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/stat").exists(), reason="needs /proc")

# A child that dies (no cleanup runs) halfway through writing `target` atomically.
_KILLED_WRITE = """
import os, sys
from augmentgen._io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half of a large file")
    os._exit(9)
"""


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_killed_writers_temporary_is_removed_and_nothing_else(tmp_path):
    target = tmp_path / "shard-00001.parquet"
    child = subprocess.run([sys.executable, "-c", _KILLED_WRITE, str(target)], capture_output=True, text=True)
    assert child.returncode == 9, child.stderr
    [left] = _hidden(tmp_path)
    assert left.startswith(".shard-00001.parquet.w") and left.endswith(".tmp") and not target.exists()
    (tmp_path / ".notes.tmp").write_text("a user's own hidden file")
    with atomic_path(tmp_path / "live.json") as live:  # this process is alive: its temporary stays
        live.write_text("{}")
        assert remove_dead_temporaries(tmp_path) == ["shard-00001.parquet"]
        assert _hidden(tmp_path) == sorted([".notes.tmp", live.name])
    assert (tmp_path / "live.json").read_text() == "{}"
    assert remove_dead_temporaries(tmp_path) == []


def test_temporaries_of_another_host_are_kept(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(socket, "gethostname", lambda: "another-host")
        patch.setattr(_io.os, "getpid", lambda: 2**22 + 7)  # no such process here, but not our host's pid
        name = f".a.bin.{_io._writer_tag()}.abcd1234.tmp"
    (tmp_path / name).write_bytes(b"being written on another machine sharing this folder")
    assert remove_dead_temporaries(tmp_path) == [] and _hidden(tmp_path) == [name]
    assert remove_dead_temporaries(tmp_path / "missing") == []


@linux_proc
def test_the_writer_tag_names_this_process_and_its_start_time():
    started = _io._process_started(os.getpid())
    assert isinstance(started, int) and started > 0
    assert _io._writer_tag().endswith(f"-{os.getpid()}-{started}")
    assert _io._process_started(2**22 + 7) is None  # above Linux's pid_max: no such process


@linux_proc
def test_a_scratch_folder_whose_pid_was_reused_is_stale(tmp_path):
    """The mark names this pid but another start time: its writer died and the pid went to us."""
    reused = make_owned_dir(tmp_path, ".out.partial-")
    mark = json.loads((reused / "owner.json").read_text())
    assert mark["pid"] == os.getpid() and mark["started"] == _io._process_started(os.getpid())
    (reused / "owner.json").write_text(json.dumps({**mark, "started": mark["started"] - 1}))
    live = make_owned_dir(tmp_path, ".out.partial-")
    assert stale_owned_dirs(tmp_path, ".out.partial-") == [reused]
    assert live.is_dir()


def test_a_mark_without_a_start_time_still_counts_a_live_pid_as_live(tmp_path):
    """Marks written by the previous version name host and pid only."""
    folder = make_owned_dir(tmp_path, ".out.partial-")
    (folder / "owner.json").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    assert stale_owned_dirs(tmp_path, ".out.partial-") == []
