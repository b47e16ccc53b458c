"""Issue 28: a user's work is never lost or mixed up (the output folder, resume, Ctrl-C).

Tiny cgan runs of a few steps on synthetic 28x28 images: seconds each on a CPU.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import torch

from augmentgen import _io
from augmentgen._io import check_writable
from augmentgen.errors import CheckpointError, ConfigError, DataError
from augmentgen.families.gan import GANStep
from augmentgen.hub import load_generator
from augmentgen.models import build_config
from augmentgen.training import Trainer, TrainingConfig, TrainingInterrupted
from augmentgen.training.run_folder import default_command
from tests.conftest import TINY_GAN, make_images, sigint_not_ignored


def tiny_config(data, family="cgan", **overrides):
    return build_config(family, num_classes=data.num_classes, class_names=data.class_names,
                        **{**TINY_GAN, **overrides})


def tiny_training(**overrides):
    values = dict(steps=6, batch_size=8, checkpoint_every=3, sample_every=0, grid_per_class=2, log_every=1, seed=0)
    return TrainingConfig(**{**values, **overrides})


def fit(out, data, *, config=None, resume=False, overwrite=False, **training):
    trainer = Trainer(config or tiny_config(data), tiny_training(**training), out)
    return trainer, trainer.fit(data, resume=resume, overwrite=overwrite)


def steps_of(out):
    return sorted(p.name for p in (out / "checkpoints").iterdir())


def assert_same_weights(a, b):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


# ---------------------------------------------------------------- a finished run is never overwritten
def test_a_folder_holding_a_model_is_refused_without_overwrite_or_resume(tmp_path, tiny_data):
    # Today's code only refused folders with checkpoints: a run with checkpoint_every=0 was replaced.
    fit(tmp_path, tiny_data, checkpoint_every=0, steps=2)
    before = (tmp_path / "model.safetensors").read_bytes()
    aae = build_config("aae", num_classes=3, class_names=tiny_data.class_names, encoder_width=8, decoder_width=8)
    with pytest.raises(CheckpointError, match=r"already holds a trained model.*Pass overwrite=True to start over.*resume=True to "
                                              r"continue its run, or choose another output_dir") as info:
        fit(tmp_path, tiny_data, config=aae, steps=2)
    assert "model.safetensors" in str(info.value) and "nothing was changed" in str(info.value)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert load_generator(tmp_path).family == "cgan"


def test_overwrite_clears_the_previous_outputs_and_only_those(tmp_path, tiny_data):
    fit(tmp_path, tiny_data, steps=6, sample_every=3)
    (tmp_path / "eval.json").write_text("{}")  # an evaluation of the old model
    (tmp_path / "notes.txt").write_text("mine")  # not an output of a run
    fit(tmp_path, tiny_data, overwrite=True, steps=2, checkpoint_every=0)
    assert not (tmp_path / "eval.json").exists() and not (tmp_path / "checkpoints").exists()
    assert not (tmp_path / "samples").exists()  # the old run's step grids
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert json.loads((tmp_path / "training.json").read_text())["steps"] == 2


def test_overwrite_removes_the_runs_grids_but_not_a_users_file_beside_them(tmp_path, tiny_data):
    fit(tmp_path, tiny_data, steps=6, sample_every=3)
    (tmp_path / "samples" / "picked.png").write_bytes(b"a grid the user kept")
    (tmp_path / "checkpoints" / "notes.txt").write_text("mine")
    fit(tmp_path, tiny_data, overwrite=True, steps=2, checkpoint_every=0)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["picked.png"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["notes.txt"]


def test_a_users_samples_png_or_samples_file_is_refused_before_training(tmp_path, tiny_data, monkeypatch):
    # A folder with no run: a new run wrote its grid over the user's samples.png, and stopped with a
    # bare FileExistsError at its first step grid when "samples" was a file.
    (tmp_path / "grid" / "samples.png").parent.mkdir()
    (tmp_path / "grid" / "samples.png").write_bytes(b"my own picture")
    (tmp_path / "file" / "samples").parent.mkdir()
    (tmp_path / "file" / "samples").write_text("mine")
    monkeypatch.setattr(GANStep, "__call__", lambda *a: pytest.fail("trained over a user's file"))
    with pytest.raises(CheckpointError, match=r"already holds samples.png.*nothing was changed.*overwrite=True"):
        fit(tmp_path / "grid", tiny_data, steps=2)
    with pytest.raises(CheckpointError, match=r"samples is a file.*nothing was changed.*overwrite=True"):
        fit(tmp_path / "file", tiny_data, steps=2)
    assert (tmp_path / "grid" / "samples.png").read_bytes() == b"my own picture"
    assert sorted(p.name for p in (tmp_path / "grid").iterdir()) == ["samples.png"]
    assert (tmp_path / "file" / "samples").read_text() == "mine"


def test_overwrite_replaces_a_users_samples_png_when_asked(tmp_path, tiny_data):
    (tmp_path / "samples.png").write_bytes(b"my own picture")
    fit(tmp_path, tiny_data, overwrite=True, steps=2, checkpoint_every=0)
    assert (tmp_path / "samples.png").read_bytes()[:4] == b"\x89PNG"


def test_an_output_folder_behind_a_dangling_symbolic_link_is_refused_before_training(tmp_path, tiny_data,
                                                                                      monkeypatch):
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    monkeypatch.setattr(GANStep, "__call__", lambda *a: pytest.fail("trained into an --out it cannot create"))
    for out in (tmp_path / "link", tmp_path / "link" / "run"):
        with pytest.raises(ConfigError, match=r"cannot be created: .*link is a symbolic link to .*gone, which does "
                                              r"not exist; create that folder"):
            fit(out, tiny_data)
    assert not (tmp_path / "gone").exists()


def test_resume_and_overwrite_together_are_refused(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match="contradict each other: resume=True continues .* overwrite=True deletes"):
        fit(tmp_path, tiny_data, resume=True, overwrite=True)


def test_an_output_path_that_is_a_file_or_unwritable_is_refused_before_training(tmp_path, tiny_data, monkeypatch):
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(ConfigError, match="^output_dir .*file is an existing file"):  # train()'s name for it
        fit(file, tiny_data)
    with pytest.raises(ConfigError, match="is a file"):
        check_writable(file / "run")

    def read_only(*args, **kwargs):  # root ignores permission bits: simulate a read-only filesystem
        raise OSError(30, os.strerror(30))

    monkeypatch.setattr("augmentgen._io.tempfile.mkstemp", read_only)
    monkeypatch.setattr(GANStep, "__call__", lambda *a: pytest.fail("trained despite an unwritable --out"))
    with pytest.raises(ConfigError, match="not writable: Read-only file system"):
        fit(tmp_path / "run", tiny_data)


def test_a_home_relative_output_folder_is_written_where_it_was_checked(tmp_path, tiny_data, monkeypatch):
    """``~/run`` in Python (no shell to expand it) is the home folder's ``run``, for the checks and
    the writes alike, not a folder named ``~`` in the working directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    fit("~/run", tiny_data, steps=3)
    assert (tmp_path / "home" / "run" / "model.safetensors").is_file()
    assert not (tmp_path / "~").exists()
    with pytest.raises(CheckpointError, match="home/run already holds a trained model"):  # found, not overwritten
        fit("~/run", tiny_data, steps=3)


# ---------------------------------------------------------------- resume has no holes
def test_the_last_step_is_checkpointed_and_resuming_further_equals_one_longer_run(tmp_path, tiny_data):
    _, straight = fit(tmp_path / "straight", tiny_data, steps=8)
    fit(tmp_path / "extended", tiny_data, steps=5)
    assert steps_of(tmp_path / "extended") == ["step-0000003", "step-0000005"]  # 5 is not a multiple of 3
    trainer, extended = fit(tmp_path / "extended", tiny_data, steps=8, resume=True)
    assert [h["step"] for h in trainer.history] == [1, 2, 3, 4, 5, 6, 7, 8]  # the run's whole history
    assert json.loads((tmp_path / "extended" / "training.json").read_text())["history"] == trainer.history
    assert_same_weights(straight, extended)


def test_resume_never_moves_a_run_backwards(tmp_path, tiny_data):
    fit(tmp_path, tiny_data, steps=6)
    with pytest.raises(ConfigError, match=r"already at step 6.*never moves backwards.*resume=True and steps=N for an N above 6"):
        fit(tmp_path, tiny_data, steps=3, resume=True)
    assert steps_of(tmp_path) == ["step-0000003", "step-0000006"]


@pytest.mark.parametrize("change, message", [
    ({"classes": 4}, r"the class names is \[.*\] there but \[.*\] now"),
    ({"seed": 7}, r"the data's fingerprint is '[0-9a-f]{12}\.\.\.' there but '[0-9a-f]{12}\.\.\.' now"),
    ({"loss": "bce"}, r"loss is 'hinge' there but 'bce' now\. Nothing was changed\. To resume, rerun with "
                      r"--set loss=hinge.*overwrite=True or another output_dir"),
    ({"batch_size": 4}, r"batch_size is 8 there but 4 now.*--batch-size 8"),
    ({"family": "aae"}, r"the model family is 'cgan' there but 'aae' now.*rerun with --family cgan "
                        r"\(in Python augmentgen\.train\('cgan', \.\.\.\)\)"),
    ({"family": "aae", "batch_size": 4}, r"rerun with --family cgan --batch-size 8 \(in Python "
                                         r"augmentgen\.train\('cgan', \.\.\.\) and the same names for the rest\)"),
])
def test_resume_with_other_data_or_another_config_is_refused(tmp_path, tiny_data, change, message):
    fit(tmp_path, tiny_data, steps=3)
    before = steps_of(tmp_path)
    data = make_images(num_classes=change.get("classes", 3), seed=change.get("seed", 0))
    config = tiny_config(data, **({"loss": change["loss"]} if "loss" in change else {}))
    if "family" in change:
        config = build_config("aae", num_classes=3, class_names=data.class_names, encoder_width=8, decoder_width=8)
    error = DataError if "classes" in change or "seed" in change else ConfigError
    with pytest.raises(error, match=message):
        fit(tmp_path, data, config=config, resume=True, steps=6, batch_size=change.get("batch_size", 8))
    assert steps_of(tmp_path) == before


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, tiny_data):
    _, straight = fit(tmp_path / "straight", tiny_data, steps=9)
    out = tmp_path / "cut"
    fit(out, tiny_data, steps=6)
    weights = next((out / "checkpoints" / "step-0000006").glob("model*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # a bit flip in tensor data: safetensors itself would load it silently
    weights.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"step-0000006 is damaged: .*sha256.*resumed from .* step-0000003"):
        trainer, resumed = fit(out, tiny_data, steps=9, resume=True)
    assert [h["step"] for h in trainer.history] == [1, 2, 3, 4, 5, 6, 7, 8, 9]  # step-3's history, then 4-9
    assert_same_weights(straight, resumed)


def test_every_checkpoint_damaged_is_a_clear_error(tmp_path, tiny_data):
    fit(tmp_path, tiny_data, steps=3, keep_checkpoints=1)
    (tmp_path / "checkpoints" / "step-0000003" / "run.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"no checkpoint .* can be loaded.*run.json is unreadable.*overwrite=True or another output_dir"):
        fit(tmp_path, tiny_data, steps=6, resume=True)


def test_resume_after_a_kill_during_the_first_checkpoint_starts_a_new_run(tmp_path, tiny_data):
    partial = tmp_path / "checkpoints" / ".tmp-step-0000003"
    partial.mkdir(parents=True)
    (partial / "model.safetensors").write_bytes(b"half")
    with pytest.raises(CheckpointError, match="resume=True"):  # not silently trained over without a flag
        fit(tmp_path, tiny_data)
    with pytest.warns(UserWarning, match=r"no complete checkpoint.*Removed the partial .tmp-step-0000003 and "
                                         r"started a new run"):
        trainer, _ = fit(tmp_path, tiny_data, resume=True)
    assert [h["step"] for h in trainer.history] == [1, 2, 3, 4, 5, 6]
    assert steps_of(tmp_path) == ["step-0000003", "step-0000006"]


def test_resume_removes_the_partial_model_file_of_a_killed_save(tmp_path, tiny_data, monkeypatch):
    fit(tmp_path, tiny_data, steps=3)
    with monkeypatch.context() as patch:  # the name atomic_path gave a process that no longer runs
        patch.setattr(_io.os, "getpid", lambda: 2**22 + 7)
        partial = tmp_path / f".model.safetensors.{_io._writer_tag()}.k1ll3d00.tmp"
    partial.write_bytes(b"half of the weights")
    (tmp_path / ".keep.tmp").write_text("a user's own hidden file")
    fit(tmp_path, tiny_data, steps=6, resume=True)
    assert not partial.exists() and (tmp_path / ".keep.tmp").exists()
    assert load_generator(tmp_path).family == "cgan"


def test_resume_behind_a_newer_model_is_refused(tmp_path, tiny_data):
    """A resume with checkpoint_every=0 left the model ahead of the checkpoints: another resume would
    restart at the older checkpoint and replace it."""
    fit(tmp_path, tiny_data, steps=3)
    fit(tmp_path, tiny_data, steps=6, resume=True, checkpoint_every=0)
    assert steps_of(tmp_path) == ["step-0000003"]
    before = (tmp_path / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match=r"holds a model trained to step 6, but its newest checkpoint is step 3"
                                              r".*Nothing was changed.*init_from='.*' with another output_dir"):
        fit(tmp_path, tiny_data, steps=9, resume=True)
    assert (tmp_path / "model.safetensors").read_bytes() == before


def test_init_from_the_runs_own_folder_is_refused(tmp_path, tiny_data):
    fit(tmp_path, tiny_data, steps=2, checkpoint_every=0)
    before = (tmp_path / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match=r"is the run's own folder.*would replace the model it starts from"):
        fit(tmp_path, tiny_data, steps=2, checkpoint_every=0, overwrite=True, init_from=str(tmp_path))
    assert (tmp_path / "model.safetensors").read_bytes() == before


# ---------------------------------------------------------------- Ctrl-C
def _sigint_at(step_number, monkeypatch):
    original, calls = GANStep.__call__, {"n": 0}

    def step(self, *args):
        calls["n"] += 1
        losses = original(self, *args)
        if calls["n"] == step_number:  # in the middle of the loop, as a user's Ctrl-C would be
            os.kill(os.getpid(), signal.SIGINT)
        return losses

    monkeypatch.setattr(GANStep, "__call__", step)
    return original


def test_ctrl_c_checkpoints_the_current_step_and_resumes_exactly(tmp_path, tiny_data, monkeypatch, sigint_delivered):
    _, straight = fit(tmp_path / "straight", tiny_data, steps=6)
    handler = signal.getsignal(signal.SIGINT)
    original = _sigint_at(4, monkeypatch)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 4") as info:
        fit(tmp_path / "cut", tiny_data, steps=6)
    assert isinstance(info.value, KeyboardInterrupt) and info.value.step == 4
    assert info.value.checkpoint.name == "step-0000004" and info.value.checkpoint.is_dir()
    assert signal.getsignal(signal.SIGINT) is handler  # restored
    monkeypatch.setattr(GANStep, "__call__", original)
    _, resumed = fit(tmp_path / "cut", tiny_data, steps=6, resume=True)
    assert_same_weights(straight, resumed)


def test_the_recorded_command_is_one_a_user_can_rerun(tmp_path):
    main = str(tmp_path / "site-packages" / "augmentgen" / "__main__.py")  # python -m / accelerate launch -m
    assert default_command([main, "train", "--out", "my run"]) == "augmentgen train --out 'my run'"
    assert default_command(["/usr/bin/augmentgen", "train"]) == "augmentgen train"
    assert default_command(["train.py", "--lr", "1"]) == "python train.py --lr 1"


def test_ctrl_c_in_a_real_process_exits_130_without_a_traceback(tmp_path, tiny_data):
    import subprocess
    import sys

    import numpy as np

    np.savez(tmp_path / "tiny.npz", images=tiny_data.images.numpy(), labels=tiny_data.labels.numpy())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "augmentgen", "train", "--data", str(tmp_path / "tiny.npz"),
               "--out", str(tmp_path / "run"), "--steps", "100000", "--batch-size", "8", "--sample-every", "0",
               "--checkpoint-every", "5", *[f"--set={k}={v}" for k, v in TINY_GAN.items()]]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=sigint_not_ignored)
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "checkpoints" / "step-0000005").is_dir():  # well inside the loop
        assert process.poll() is None and time.monotonic() < deadline, "training ended or never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "augmentgen: interrupted at step" in err
    assert err.strip().splitlines()[-1].endswith("--resume")
    assert any(p.name.startswith("step-") for p in (tmp_path / "run" / "checkpoints").iterdir())
