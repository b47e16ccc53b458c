"""Trained benchmark generators kept on disk, so that a lane killed at a session's end resumes its
seed without training the generator again (a ``ddpm`` of 5000 steps takes over an hour here).

A generator is found again only by everything that decides its weights: the family, its
options, the training steps, the seed, the subset's images and labels (sha256), the weights it
starts from (``init_from``'s sha256), torch's version, and the source of the code that trains it
(the benchmark's training function, the family's own module, the package modules
``augmentgen/{models,training}``, ``augmentgen/hub`` where ``init_from`` loads weights through it,
``augmentgen/data/labelled.py`` whose loader orders the batches, and the foundation modules
``augmentgen/_*.py``), so an entry made by other training code is never used. The modules that
load and subsample data are left out: what they decide is the data, whose sha256 the key holds,
and a change to one (a clearer refusal) would otherwise discard every generator of the campaign.

Training is seeded, so a generator read back is the one training would make again; an arm that
used one records ``generator_cache`` (the commit it was trained at and its training seconds).

Two folders hold entries. This machine may start a session empty: only what the repository
holds is sure to survive a session's end, so a generator that took at least ``KEEP_IN_CAMPAIGN_SECONDS`` to
train (a ``ddpm`` of 5000 steps: 80 minutes; 2.5 MB of weights) is kept in the campaign folder
(``benchmarks/campaign/generators``, ``$AUGMENTGEN_BENCH_CAMPAIGN`` to move it), which is
committed with the seeds' results, and the quick ones (a ``cgan`` of 600 steps: 4 minutes) in the
user cache (``$AUGMENTGEN_BENCH_CACHE``, default ``~/.cache/augmentgen/benchmark-generators``).
Lanes in worktrees point ``$AUGMENTGEN_BENCH_CAMPAIGN`` at main's checkout, so what they keep is
ready to commit there. Both folders are read; ``--no-generator-cache`` turns the cache off.
Entries are written atomically (``save_generator``, then ``entry.json`` last).

A training under way checkpoints in the user cache (``training_dir``: every twentieth of its
steps, by the key's name), and a lane killed mid-training resumes from there where the machine
kept its cache: the trainer resumes exactly, so the generator is the uninterrupted one.

A bank of free samples is kept the same way (``cached_bank``, under ``banks/`` of either folder):
a ``ddpm``'s bank for the long-tailed cell (5,000 images) takes over half an hour to sample here,
and a lane killed before its seed is done used to sample it again. It is found again by its
generator's key, its size, seed and batch size, and the source of the code that samples it (the
family's module, ``augmentgen/models``, the pool and its filter, the foundation modules); it is
stored by ``SyntheticPool.save`` (safetensors), never pickled.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from harness import git_commit

from augmentgen._io import atomic_write_bytes
from augmentgen.hub.serialization import WEIGHTS_NAME, load_generator, save_generator
from augmentgen.hub.zoo import resolve_shipped
from augmentgen.metrics.eval_checkpoint import data_sha256
from augmentgen.mixing import SyntheticPool
from augmentgen.models import build_config

BENCHMARKS = Path(__file__).resolve().parent
PACKAGE = BENCHMARKS.parent / "augmentgen"
#: The package parts whose source decides a trained generator's weights (folders or files),
#: besides the family's own module (families never import one another) and, for a generator that
#: starts from pretrained weights, the hub that loads them.
TRAINING_CODE = ("families/__init__.py", "models", "training", "data/labelled.py")
#: The package parts whose source decides a bank's images once its generator's weights are fixed,
#: besides the family's own module and the foundation modules.
SAMPLING_CODE = ("models", "mixing/pool.py", "mixing/filter.py")
#: A bank entry's file (``SyntheticPool.save``: safetensors).
BANK_FILE = "bank.safetensors"
#: A generator whose training took at least this many seconds is kept in the campaign folder,
#: which the repository holds, rather than in the user cache, which a session's end empties.
KEEP_IN_CAMPAIGN_SECONDS = 900.0


def cell_name(dataset: str, budget: str) -> str:
    """How the campaign folder names a cell ("fashion-mnist lt100"): in generator entries, in
    ``campaign.py``'s listing and in its ``--remove``."""
    return f"{dataset} {budget}"


def cache_dir() -> Path:
    """The user cache: generators quick to train again (``$AUGMENTGEN_BENCH_CACHE``)."""
    return Path(os.environ.get("AUGMENTGEN_BENCH_CACHE", Path.home() / ".cache" / "augmentgen" /
                               "benchmark-generators"))


def campaign_dir() -> Path:
    """The campaign folder, committed with the results: validation scores and the generators slow
    to train again (``$AUGMENTGEN_BENCH_CAMPAIGN``, default ``benchmarks/campaign``)."""
    return Path(os.environ.get("AUGMENTGEN_BENCH_CAMPAIGN", BENCHMARKS / "campaign"))


def training_dir(key: dict) -> Path:
    """Where the training of the generator of ``key`` checkpoints while it runs (the user
    cache's ``training/``), so a lane killed mid-training resumes it (``downstream.train_generator``
    removes the folder once the model is trained). Named by the whole key, so other code, data or
    options never resume it; a folder left by code since changed is never read again."""
    return cache_dir() / "training" / key_name(key)


def files_sha256(files, root: Path, *, prefix: bytes = b"") -> str:
    """sha256 over ``prefix`` and the paths (relative to ``root``) and contents of ``files``, in
    sorted order: what the cache and the validation journal key their code by."""
    digest = hashlib.sha256(prefix + b"\0")
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def key_name(key: dict) -> str:
    """The file or folder name of a key: 24 hex digits of its JSON's sha256 (the key itself is
    stored inside and compared on reading, so a collision reads nothing)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]


def training_code_sha256(train_fn: Callable, family: str, *, pretrained: bool = False) -> str:
    """sha256 over ``train_fn``'s source and the paths and contents of the modules that train a
    generator of ``family``: its own module and the shared ones (with ``pretrained``, the hub)."""
    parts = (*TRAINING_CODE, "hub") if pretrained else TRAINING_CODE
    files = [p for part in parts
             for p in ((PACKAGE / part).rglob("*.py") if (PACKAGE / part).is_dir() else [PACKAGE / part])]
    return files_sha256([*files, family_module(family), *PACKAGE.glob("_*.py")], PACKAGE,
                        prefix=inspect.getsource(train_fn).encode())


def family_module(family: str) -> Path:
    """``family``'s own module under :data:`PACKAGE` (``cgan`` -> ``families/gan.py``): the file
    its config class is defined in."""
    return PACKAGE / "families" / Path(inspect.getsourcefile(type(build_config(family)))).name


def init_weights_sha256(options: dict) -> str | None:
    """sha256 of the weights an ``init_from`` option starts from (a shipped zoo id or a folder),
    None without one: the same id may name other weights after the zoo is retrained."""
    if "init_from" not in options:
        return None
    name = str(options["init_from"])
    folder = resolve_shipped(name) or Path(name)
    return hashlib.sha256((folder / WEIGHTS_NAME).read_bytes()).hexdigest()


def entry_key(family: str, options: dict, steps: int, seed: int, data, *, train_fn: Callable) -> dict:
    """What decides the generator's weights, as the entry records it; ``train_fn`` is the
    benchmark's function that trains it (its batch size and settings are part of the key)."""
    return {"family": family, "options": options, "steps": steps, "seed": seed,
            "data_sha256": data_sha256(data),
            "init_weights_sha256": init_weights_sha256(options), "torch": torch.__version__,
            "training_code_sha256": training_code_sha256(train_fn, family, pretrained="init_from" in options)}


def cached_generator(key: dict, train: Callable[[], tuple], *, enabled: bool = True,
                     cell: str | None = None) -> tuple:
    """``(generator, train_seconds, provenance)``: read back where the campaign folder or the
    cache has an entry with ``key``, else ``train()`` (which returns that triple) and saved, in the
    campaign folder when it took at least ``KEEP_IN_CAMPAIGN_SECONDS``; the entry records
    ``cell`` ("fashion-mnist lt100"), by which ``campaign.py`` removes a finished cell's entries.
    A generator read back has ``generator_cache`` in its provenance: the commit and seconds of the
    training that made it."""
    if not enabled:
        return train()
    name = key_name(key)
    for folder in (campaign_dir() / "generators" / name, cache_dir() / name):
        entry = folder / "entry.json"
        if not entry.is_file():
            continue
        record = json.loads(entry.read_text())
        if record["key"] == json.loads(json.dumps(key, default=str)):
            generator = load_generator(folder).eval()
            provenance = {**record["provenance"], "generator_cache": {"trained_at_commit": record["commit"],
                                                                      "train_seconds": record["train_seconds"]}}
            return generator, record["train_seconds"], provenance
    generator, seconds, provenance = train()
    folder = campaign_dir() / "generators" / name if seconds >= KEEP_IN_CAMPAIGN_SECONDS else cache_dir() / name
    save_generator(generator, folder)
    record = {"key": key, "cell": cell, "commit": git_commit(), "train_seconds": seconds, "provenance": provenance}
    atomic_write_bytes(folder / "entry.json", (json.dumps(record, indent=1, default=str) + "\n").encode())
    return generator, seconds, provenance


def bank_key(generator_key: dict, *, per_class: int, seed: int, batch_size: int) -> dict:
    """What decides a bank of free samples' images: its generator (``entry_key``), its size, seed
    and batch size, and the source of the code that samples it."""
    family = generator_key["family"]
    files = [p for part in SAMPLING_CODE
             for p in ((PACKAGE / part).rglob("*.py") if (PACKAGE / part).is_dir() else [PACKAGE / part])]
    return {"generator": generator_key, "per_class": per_class, "seed": seed, "batch_size": batch_size,
            "sampling_code_sha256": files_sha256([*files, family_module(family), *PACKAGE.glob("_*.py")], PACKAGE)}


def cached_bank(key: dict, fill: Callable[[], SyntheticPool], *, enabled: bool = True,
                cell: str | None = None) -> tuple[SyntheticPool, dict]:
    """``(bank, provenance)``: the bank read back where the campaign folder or the cache has an
    entry with ``key`` (``provenance``: ``bank_cache``, the commit and seconds of the fill that made
    it), else ``fill()`` and saved, in the campaign folder when the fill took at least
    ``KEEP_IN_CAMPAIGN_SECONDS``. A bank read back cannot refresh (it has no generator)."""
    if not enabled:
        return fill(), {}
    name = key_name(key)
    for folder in (campaign_dir() / "banks" / name, cache_dir() / "banks" / name):
        entry = folder / "entry.json"
        if not entry.is_file():
            continue
        record = json.loads(entry.read_text())
        if record["key"] == json.loads(json.dumps(key, default=str)):
            return SyntheticPool.load(folder / BANK_FILE), {
                "bank_cache": {"filled_at_commit": record["commit"], "fill_seconds": record["fill_seconds"]}}
    t0 = time.perf_counter()
    bank = fill()
    seconds = round(time.perf_counter() - t0, 1)
    root = campaign_dir() if seconds >= KEEP_IN_CAMPAIGN_SECONDS else cache_dir()
    folder = root / "banks" / name
    bank.save(folder / BANK_FILE, overwrite=True)  # a bank of this key whose entry a kill left unwritten
    record = {"key": key, "cell": cell, "commit": git_commit(), "fill_seconds": seconds}
    atomic_write_bytes(folder / "entry.json", (json.dumps(record, indent=1, default=str) + "\n").encode())
    return bank, {}
