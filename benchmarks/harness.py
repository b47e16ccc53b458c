"""Shared pieces of the benchmark scripts: provenance (machine, versions, commit), CUDA sync, and
writing results to ``benchmarks/results/`` (atomically: a kill mid-write leaves the previous file
whole, which is what lets the long benchmarks resume from their files).

The scripts run as ``python benchmarks/<name>.py``, so this module is importable beside them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import subprocess
from collections.abc import Iterator
from pathlib import Path

import torch

from augmentgen._io import atomic_write_bytes


def git_commit() -> str | None:
    """The checkout's HEAD commit, or None outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def cpu_identity() -> str:
    """The CPU as /proc/cpuinfo names it (model name, family, model, stepping) and the instruction
    set torch's kernels use: two CPUs that differ here may round a trained network differently,
    so a figure measured on one moves on the other (benchmarks/README.md, known limits)."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:  # not Linux
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    detail = ", ".join(f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields)
    return f"{name}{f' ({detail})' if detail else ''}, {torch.backends.cpu.get_cpu_capability()}"


def machine(device: torch.device | str = "cpu") -> dict:
    """Platform, CPU (:func:`cpu_identity`) and count, torch threads and version, and the GPU's
    name on CUDA."""
    device = torch.device(device)
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu_identity(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


RESULTS = Path(__file__).resolve().parent / "results"


def write_json(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` as indented JSON to ``path``, atomically (the folder is created)."""
    atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode())
    return Path(path)


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (through ``<path>.lock`` beside it) inside the block:
    lanes that read, merge and rewrite one results file take it so that neither loses the other's
    entries."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def write(name: str, payload: dict) -> Path:
    """Write ``payload`` to ``benchmarks/results/<name>.json`` (:func:`write_json`)."""
    return write_json(RESULTS / f"{name}.json", payload)


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work so timings cover it; a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
