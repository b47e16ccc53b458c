"""Trained benchmark generators kept on disk, so that a lane killed at a session's end resumes its
seed without training the generator again (a ``ddpm`` of 5000 steps takes over an hour here).

A generator is found again only by everything that decides its weights: the family, its
options, the training steps, the seed, the subset's images and labels (sha256), and the source of
the package modules that train it (``augmentgen/{data,families,models,training}`` and the
foundation modules ``augmentgen/_*.py``), so an entry made by other training code is never used.
Training is seeded, so a generator read back is the one training would make again; an arm that
used one records ``generator_cache`` (the commit it was trained at and its training seconds).

The cache lives outside the worktrees (``$AUGMENTGEN_BENCH_CACHE``, default
``~/.cache/augmentgen/benchmark-generators``), so two lanes share it; ``--no-generator-cache``
turns it off. Entries are written atomically (``save_generator``, then ``entry.json`` last).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from harness import git_commit

from augmentgen._io import atomic_write_bytes
from augmentgen.hub.serialization import load_generator, save_generator, tensors_sha256

PACKAGE = Path(__file__).resolve().parent.parent / "augmentgen"
#: The package parts whose source decides a trained generator's weights.
TRAINING_CODE = ("data", "families", "models", "training")


def cache_dir() -> Path:
    return Path(os.environ.get("AUGMENTGEN_BENCH_CACHE", Path.home() / ".cache" / "augmentgen" /
                               "benchmark-generators"))


def training_code_sha256() -> str:
    """sha256 over the paths and contents of the modules that train a generator."""
    files = sorted([p for part in TRAINING_CODE for p in (PACKAGE / part).rglob("*.py")]
                   + list(PACKAGE.glob("_*.py")))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def entry_key(family: str, options: dict, steps: int, seed: int, data) -> dict:
    """What decides the generator's weights, as the entry records it."""
    return {"family": family, "options": options, "steps": steps, "seed": seed,
            "data_sha256": tensors_sha256({"images": data.images, "labels": data.labels}),
            "training_code_sha256": training_code_sha256()}


def cached_generator(key: dict, train: Callable[[], tuple], *, enabled: bool = True) -> tuple:
    """``(generator, train_seconds, provenance)``: read from the cache where an entry has ``key``,
    else ``train()`` (which returns that triple) and saved. A cached one's provenance gains
    ``generator_cache``: the commit and seconds of the training that made it."""
    if not enabled:
        return train()
    folder = cache_dir() / hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    entry = folder / "entry.json"
    if entry.is_file():
        record = json.loads(entry.read_text())
        if record["key"] == json.loads(json.dumps(key, default=str)):
            generator = load_generator(folder).eval()
            provenance = {**record["provenance"], "generator_cache": {"trained_at_commit": record["commit"],
                                                                      "train_seconds": record["train_seconds"]}}
            return generator, record["train_seconds"], provenance
    generator, seconds, provenance = train()
    save_generator(generator, folder)
    record = {"key": key, "commit": git_commit(), "train_seconds": seconds, "provenance": provenance}
    atomic_write_bytes(entry, (json.dumps(record, indent=1, default=str) + "\n").encode())
    return generator, seconds, provenance
