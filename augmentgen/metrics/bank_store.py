"""Banks of synthetic rows kept on disk while an evaluation runs, so that a killed one does not
sample them again.

A slow sampler's bank is most of a seed's time on a CPU (a ``ddpm`` makes a few images a second,
and :func:`~augmentgen.metrics.downstream_gain` fills a bank of four rows per image of the largest
class). The evaluation checkpoint (:mod:`~augmentgen.metrics.eval_checkpoint`) keeps finished
seeds only, so a kill during a seed used to lose its banks with it. :class:`BankStore` writes each
bank as it is filled (:meth:`~augmentgen.mixing.SyntheticPool.save`: safetensors, atomically) under
a name that is the sha256 of everything that decides its rows (the generator's weights, the seed,
the rows it holds, the images it was made from, its size, the augmentgen version), and reads it
back instead of filling it again. The evaluation discards a seed's banks once the seed's figures
are saved.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from .._version import __version__
from ..hub.serialization import generator_tensors, tensors_sha256
from ..mixing import SyntheticPool
from ..models.base import ConditionalGenerator

__all__ = ["BankStore", "discard_banks"]


class BankStore:
    """The banks of one generator's evaluation in ``folder``, one safetensors file per bank.

    Args:
        folder (str or os.PathLike): where the banks go (created on the first one).
        generator (ConditionalGenerator): whose banks they are; its weights' sha256 is part of
            every bank's name, so another generator's banks are never read.
    """

    def __init__(self, folder: str | os.PathLike, generator: ConditionalGenerator):
        self.folder = Path(folder)
        self.generator_sha256 = tensors_sha256(generator_tensors(generator))

    def path(self, seed: int, what: dict) -> Path:
        """The file of the bank that ``what`` (JSON values: its rows, data, size) describes at ``seed``."""
        key = {"generator_sha256": self.generator_sha256, "augmentgen": __version__, "seed": seed, **what}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return self.folder / f"seed{seed}-{digest}.safetensors"

    def get(self, seed: int, what: dict, fill: Callable[[], SyntheticPool]) -> SyntheticPool:
        """The bank read back where this store holds it, else ``fill()`` and saved before it is used."""
        path = self.path(seed, what)
        if path.is_file():
            return SyntheticPool.load(path)
        bank = fill()
        bank.save(path)
        return bank



def discard_banks(folder: str | os.PathLike, seed: int) -> None:
    """Remove the banks of ``seed`` that a :class:`BankStore` kept in ``folder`` (the seed's figures
    are saved), and the folder once it is empty."""
    folder = Path(folder)
    for path in folder.glob(f"seed{seed}-*.safetensors"):
        path.unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
