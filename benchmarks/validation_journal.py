"""Validation scores of finished runs kept on disk, so that an arm killed at a session's end resumes
at its next validation run instead of its first.

Choosing an arm's mode, strength or method trains one classifier per candidate and split (a
`ddpm:variation@bank` arm of the long-tailed cell: three strengths on three folds, each with its
own bank of variations, two hours and more on this CPU); a lane killed mid-arm lost them all, as
the results file keeps whole arms only. Each run is seeded on its own (the classifier, the mixer,
the bank), so a score read back is the one the run would give again.

A journal holds the scores of one seed's arms under one context: the cell (dataset, budget, the
subset's sha256), the seed, the protocol's settings, the generator steps and bank size, torch's
version, every file of the package and the benchmark scripts, and the shipped zoo's files (the
weights ``init_from`` starts from), so that a journal written by other code, weights or settings
is never read. Within it a score is found by the arm, B, the candidate and the split, with which
validation images the run got right (the guard's paired test, ``downstream.z_guard_says_mix``).

Journals live in the campaign folder (``generator_cache.campaign_dir()``,
``benchmarks/campaign/validation-scores``), which is committed with the results: this machine
starts empty every session, so a seed longer than one session (a long-tailed ``ddpm`` seed: about
four hours) resumes in the next only from what the repository holds, run from a worktree of the
same commit (the context holds every file's source). ``--no-validation-journal`` turns it off.
Written atomically after each run.
"""

from __future__ import annotations

import json

import torch
from generator_cache import BENCHMARKS, PACKAGE, campaign_dir, files_sha256, key_name
from harness import locked

from augmentgen._io import atomic_write_bytes
from augmentgen.hub.zoo import pretrained_dir


def source_sha256() -> str:
    """sha256 over the paths and contents of every file of the package and every benchmark script."""
    package = [p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return files_sha256([*package, *BENCHMARKS.glob("*.py")], BENCHMARKS.parent)


def zoo_sha256() -> str:
    """sha256 over the shipped zoo's files (``pretrained/``), whose weights ``init_from`` starts from."""
    zoo = pretrained_dir()
    return files_sha256([p for p in zoo.rglob("*") if p.is_file()] if zoo.is_dir() else [], zoo)


class ValidationJournal:
    """The validation scores of one seed's runs in ``context`` (a dict of what decides them).

    ``get(key, split)`` is a finished run's score or None, ``get_correct(key, split)`` its images
    right (``"0110..."``, in the split's order) or None; ``put(key, split, score, correct)`` records
    one. ``enabled=False``: nothing is read or written.
    """

    def __init__(self, context: dict, *, enabled: bool = True):
        code = {"torch": torch.__version__, "source_sha256": source_sha256(), "zoo_sha256": zoo_sha256()}
        self.context = json.loads(json.dumps({**context, **code}, sort_keys=True, default=str))
        self.path = campaign_dir() / "validation-scores" / f"{key_name(self.context)}.json"
        self.enabled = enabled
        self.scores: dict[str, float] = {}
        self.correct: dict[str, str] = {}
        if enabled and self.path.is_file():
            record = json.loads(self.path.read_text())
            if record["context"] == self.context:  # a 24-digit name that collides reads nothing
                self.scores, self.correct = record["scores"], record.get("correct", {})

    def get(self, key: str, split: int) -> float | None:
        return self.scores.get(f"{key} | split {split}") if self.enabled else None

    def get_correct(self, key: str, split: int) -> str | None:
        return self.correct.get(f"{key} | split {split}") if self.enabled else None

    def put(self, key: str, split: int, score: float, correct: str | None = None) -> None:
        """Record a finished run's score (and ``correct``, its validation images right). Two lanes of
        one commit running other arms of the same cell and seed share this file: the write takes a
        lock and keeps what the other wrote."""
        if not self.enabled:
            return
        self.scores[f"{key} | split {split}"] = float(score)
        if correct is not None:
            self.correct[f"{key} | split {split}"] = correct
        with locked(self.path):
            if self.path.is_file():
                record = json.loads(self.path.read_text())
                if record["context"] == self.context:
                    self.scores = {**record["scores"], **self.scores}
                    self.correct = {**record.get("correct", {}), **self.correct}
            record = {"context": self.context, "scores": self.scores, "correct": self.correct}
            atomic_write_bytes(self.path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
