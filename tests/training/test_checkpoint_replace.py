"""A checkpoint is never lost to a kill: rewriting one at the same step, and removing old ones.

Each kill is simulated by making ``os.replace`` or ``shutil.rmtree`` raise at that point: a
BaseException that no cleanup handles, as none runs when a process is killed. The checkpoints are
Accelerate's own (``save_state`` of a CPU accelerator), written in milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings

import pytest
from accelerate import Accelerator

import augmentgen.training.checkpoint as checkpoint
from augmentgen.errors import CheckpointError
from augmentgen.training.checkpoint import (
    checkpoint_dirs,
    load_newest_checkpoint,
    partial_checkpoints,
    verify_checkpoint,
    write_checkpoint,
)
from augmentgen.training.run_folder import prepare_run_folder
from tests.conftest import make_images
from tests.training.test_run_folder import fit


class _Killed(BaseException):
    """The process dies here."""


@pytest.fixture(scope="module")
def accelerator():
    return Accelerator(cpu=True)


def _write(accelerator, out, note: str, step: int = 3, keep: int = 2):
    return write_checkpoint(accelerator, out, step, keep=keep, manifest={"note": note})


def _note(path) -> str:
    return json.loads((path / "run.json").read_text())["note"]


def _entries(out) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").iterdir())


def _kill_on_replace(monkeypatch, source_prefix: str, error: BaseException | None = None) -> None:
    """``os.replace`` of a folder whose name starts with ``source_prefix`` raises ``error`` (a kill)."""
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(src).startswith(source_prefix):
            raise error if error is not None else _Killed()
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", replace)


def test_a_kill_between_the_two_renames_of_a_rewrite_keeps_the_checkpoint(accelerator, tmp_path, monkeypatch):
    _write(accelerator, tmp_path, "first")
    with monkeypatch.context() as patch:
        _kill_on_replace(patch, ".tmp-step-")  # the old one is out of the way, the new one not yet in place
        with pytest.raises(_Killed):
            _write(accelerator, tmp_path, "second")
    assert "step-0000003" not in _entries(tmp_path)  # the kill point: the checkpoint is only aside
    with pytest.warns(UserWarning, match=r"recovered checkpoint step-0000003 .*killed while it was being replaced"):
        [recovered] = checkpoint_dirs(tmp_path)  # found where checkpoints are listed, not ignored
    assert recovered.name == "step-0000003" and _note(recovered) == "first"
    assert verify_checkpoint(recovered) is None
    assert load_newest_checkpoint(accelerator, tmp_path) == recovered
    assert [p.name for p in partial_checkpoints(tmp_path)] == [".tmp-step-0000003"]  # the unfinished new one


def test_a_kill_after_the_new_checkpoint_is_in_place_keeps_the_new_one(accelerator, tmp_path, monkeypatch):
    _write(accelerator, tmp_path, "first")
    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if os.path.basename(path).startswith(".replaced-step-"):
            raise _Killed()
        return real_rmtree(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint.shutil, "rmtree", rmtree)
        with pytest.raises(_Killed):
            _write(accelerator, tmp_path, "second")
    assert _entries(tmp_path) == [".replaced-step-0000003", "step-0000003"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to recover: the new checkpoint is complete
        assert [_note(p) for p in checkpoint_dirs(tmp_path)] == ["second"]
    assert prepare_run_folder(tmp_path, resume=True, overwrite=False, steps=6)  # removes the old copy
    assert _entries(tmp_path) == ["step-0000003"] and _note(tmp_path / "checkpoints" / "step-0000003") == "second"


def test_a_failed_rename_of_a_rewrite_puts_the_checkpoint_back(accelerator, tmp_path, monkeypatch):
    _write(accelerator, tmp_path, "first")
    with monkeypatch.context() as patch:
        _kill_on_replace(patch, ".tmp-step-", OSError(28, "No space left on device"))
        with pytest.raises(CheckpointError, match="No space left.*earlier checkpoints are intact"):
            _write(accelerator, tmp_path, "second")
    assert _entries(tmp_path) == ["step-0000003"] and _note(tmp_path / "checkpoints" / "step-0000003") == "first"


def test_a_rewrite_over_an_earlier_rewrites_leftover_copy(accelerator, tmp_path):
    _write(accelerator, tmp_path, "first")
    shutil.copytree(tmp_path / "checkpoints" / "step-0000003", tmp_path / "checkpoints" / ".replaced-step-0000003")
    _write(accelerator, tmp_path, "second")
    assert _entries(tmp_path) == ["step-0000003"] and _note(tmp_path / "checkpoints" / "step-0000003") == "second"


def test_a_kill_while_removing_an_old_checkpoint_never_lists_a_half_removed_one(accelerator, tmp_path, monkeypatch):
    _write(accelerator, tmp_path, "at 3", step=3, keep=1)
    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if os.path.basename(path).endswith("0000003"):  # one of its files gone, then the kill
            os.unlink(min(e.path for e in os.scandir(path) if e.is_file() and e.name != "run.json"))
            raise _Killed()
        return real_rmtree(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint.shutil, "rmtree", rmtree)
        with pytest.raises(_Killed):
            _write(accelerator, tmp_path, "at 6", step=6, keep=1)
    listed = checkpoint_dirs(tmp_path)
    assert [p.name for p in listed] == ["step-0000006"] and all(verify_checkpoint(p) is None for p in listed)
    prepare_run_folder(tmp_path, resume=True, overwrite=False, steps=6)
    assert _entries(tmp_path) == ["step-0000006"]


def test_resume_after_a_kill_between_the_renames_continues_from_the_recovered_checkpoint(tmp_path):
    data = make_images()
    fit(tmp_path, data, steps=3)
    root = tmp_path / "checkpoints"
    (root / "step-0000003" / "kept").write_text("the first run's checkpoint")
    # What a kill between the renames of a rewrite of step 3 leaves.
    os.replace(root / "step-0000003", root / ".replaced-step-0000003")
    (root / ".tmp-step-0000003").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer, _ = fit(tmp_path, data, steps=6, resume=True)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any("recovered checkpoint step-0000003" in m for m in messages)
    assert not any("started a new run" in m for m in messages)  # resumed, not restarted
    assert (root / "step-0000003" / "kept").read_text() == "the first run's checkpoint"
    assert [h["step"] for h in trainer.history] == [1, 2, 3, 4, 5, 6]
    assert _entries(tmp_path) == ["step-0000003", "step-0000006"]
