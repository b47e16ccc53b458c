"""Faults that need real processes: ``kill -9`` mid-run, and 2-rank (gloo) training through the CLI.

Each run is a fresh ``python -m augmentgen train`` subprocess, the way a user runs it: forking
the test process itself (``debug_launcher``) deadlocks once the suite has used OpenMP threads.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from tests.conftest import TINY_GAN, make_images

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
       "TQDM_DISABLE": "1"}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    data = make_images(n_per_class=8)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, images=data.images.numpy(), labels=data.labels.numpy(), classes=np.array(data.class_names))
    return path


def train_command(data_file: Path, out: Path, *extra: str, launcher: list[str] | None = None) -> list[str]:
    model_set = [f"--set={k}={v}" for k, v in TINY_GAN.items()]
    prefix = launcher or [sys.executable, "-m"]
    return [*prefix, "augmentgen", "train", "--data", str(data_file), "--out", str(out),
            "--batch-size", "8", "--log-every", "1", "--sample-every", "1000", "--grid-per-class", "2", "--seed", "0",
            *model_set, *extra]


def run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_kill_9_mid_training_then_resume_equals_an_uninterrupted_run(tmp_path, data_file):
    steps = ["--steps", "60", "--checkpoint-every", "10"]
    run(train_command(data_file, tmp_path / "straight", *steps))

    killed = tmp_path / "killed"
    process = subprocess.Popen(train_command(data_file, killed, *steps), env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = killed / "checkpoints"
    deadline = time.monotonic() + 180
    # Kill as soon as the second checkpoint is complete (renamed into place), well before the end.
    while time.monotonic() < deadline and not (checkpoints / "step-0000020").is_dir():
        assert process.poll() is None, "training ended before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "model.safetensors").exists()
    survivors = sorted(p.name for p in checkpoints.iterdir() if p.name.startswith("step-"))
    assert survivors and survivors[-1] >= "step-0000020"

    run(train_command(data_file, killed, *steps, "--resume"))
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(killed / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert (straight[name] == resumed[name]).all(), name


def test_two_processes_write_once_resume_and_count_steps_like_one(tmp_path, data_file):
    two_ranks = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    # ACCELERATE_USE_CPU makes Accelerate join the two gloo ranks instead of running twice alone.
    env_two = {**ENV, "ACCELERATE_USE_CPU": "1"}
    out = tmp_path / "two"
    first = subprocess.run(train_command(data_file, out, "--steps", "3", "--checkpoint-every", "2",
                                         launcher=two_ranks), capture_output=True, text=True, timeout=240, env=env_two)
    assert first.returncode == 0, first.stderr[-3000:]
    # As if stopped after the step-2 checkpoint, before the end (the last step is checkpointed too).
    (out / "model.safetensors").unlink()
    shutil.rmtree(out / "checkpoints" / "step-0000003")
    second = subprocess.run(train_command(data_file, out, "--steps", "5", "--checkpoint-every", "2", "--resume",
                                          launcher=two_ranks), capture_output=True, text=True, timeout=240, env=env_two)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads((out / "training.json").read_text())
    assert summary["num_processes"] == 2 and summary["steps"] == 5
    assert second.stdout.count("weights:") == 1  # reported by the main process only
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000004", "step-0000005"]

    one = tmp_path / "one"
    run(train_command(data_file, one, "--steps", "5", "--checkpoint-every", "2"))
    single = json.loads((one / "training.json").read_text())
    assert single["num_processes"] == 1
    # The resumed run logs steps 3..5 (1..2 belong to the first run), each step once across ranks.
    assert [h["step"] for h in single["history"]] == [1, 2, 3, 4, 5]
    assert [h["step"] for h in summary["history"]] == [1, 2, 3, 4, 5]  # resumed: steps 1-2 from the checkpoint
