"""The finished seeds of an evaluation, kept on disk so that a killed one loses one seed at most.

:func:`~augmentgen.metrics.evaluate_generator` with ``checkpoint_file=`` writes the file after
the first seed's report and after every further seed's downstream gain (atomically, so a kill
leaves the last whole file). A later call with the same generator, data and settings reads it and
trains only the seeds it lacks; a call with more ``repeats`` adds seeds to a finished one. The
file records the evaluation's identity (the generator's weights and both datasets' sha256, every
setting that decides a figure, the augmentgen version), and a call that differs in any of them is
refused, naming what differs: the figures of two evaluations are never mixed.

Every figure is stored as the report's JSON holds it, and a run that was never interrupted uses
those same JSON values, so resumed and uninterrupted evaluations give the same report.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .._io import atomic_write_bytes
from .._version import __version__
from ..data import LabelledImages
from ..errors import CheckpointError
from ..hub.serialization import generator_tensors, tensors_sha256
from ..models.base import ConditionalGenerator
from ..models.registry import config_to_dict

__all__ = ["EVAL_CHECKPOINT_FORMAT", "EvalCheckpoint", "as_json_values", "eval_identity"]

EVAL_CHECKPOINT_FORMAT = "augmentgen-eval-checkpoint/1"
#: Settings added to the identity after files were written, and the value those files' seeds were
#: decided with (before the guard, any validation lead mixed: ``min_validation_z`` 0; banks were
#: drawn by an earlier scheme, which ``None`` stands for, so a file with banks is refused).
IDENTITY_DEFAULTS = {"min_validation_z": 0.0, "bank_scheme": None}


def as_json_values(value):
    """``value`` as a JSON file gives it back: NaN (e.g. the FID of a class of one image) as None,
    tuples as lists, dict keys as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): as_json_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json_values(v) for v in value]
    return value


def data_sha256(data: LabelledImages) -> str:
    """sha256 of labelled images: their pixels and labels (what a resumed evaluation and the
    benchmarks' generator cache check the data by)."""
    return tensors_sha256({"images": data.images, "labels": data.labels})


def eval_identity(generator: ConditionalGenerator, train_data: LabelledImages, test_data: LabelledImages,
                  settings: dict) -> dict:
    """What a resumed evaluation must repeat: the generator's weights, both datasets, ``settings``
    (everything that decides a figure: budget, choices, seed, device) and the augmentgen version."""
    identity = {"format": EVAL_CHECKPOINT_FORMAT, "augmentgen": __version__,
                "generator_sha256": tensors_sha256(generator_tensors(generator)),
                "generator_config": config_to_dict(generator.config),
                "train_data_sha256": data_sha256(train_data), "test_data_sha256": data_sha256(test_data),
                **settings}
    return json.loads(json.dumps(as_json_values(identity), default=str))


class EvalCheckpoint:
    """The evaluation's file: the first seed's report and the downstream gain of each later seed.

    Args:
        path: the JSON file; read if it exists (and refused if another evaluation wrote it).
        identity: :func:`eval_identity` of this evaluation.
    """

    def __init__(self, path: str | os.PathLike, identity: dict):
        self.path, self.identity = Path(path).expanduser(), identity
        self.first: dict | None = None
        self.gains: dict[str, dict] = {}
        if self.path.exists():
            self._read()

    def _read(self) -> None:
        try:
            saved = json.loads(self.path.read_text())
            old = {**IDENTITY_DEFAULTS, **saved["identity"]}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"cannot read the evaluation checkpoint {self.path} ({exc}); it is not a file "
                                  "augmentgen wrote intact. Delete it to start the evaluation over") from None
        differs = [key for key in sorted(set(old) | set(self.identity)) if old.get(key) != self.identity.get(key)]
        if differs:
            said = "; ".join(f"{key}: {_short(old.get(key))} there, {_short(self.identity.get(key))} here"
                             for key in differs)
            raise CheckpointError(f"{self.path} holds the finished seeds of another evaluation ({said}); nothing "
                                  "was computed. Pass the same generator, data and settings to resume it, or "
                                  "delete the file (augmentgen eval: --overwrite) to start over")
        self.first, self.gains = saved.get("first"), dict(saved.get("gains", {}))

    @property
    def seeds(self) -> list[int]:
        """The seeds whose figures the file holds."""
        return _seeds(self.first, self.gains)

    @staticmethod
    def saved_seeds(path: str | os.PathLike) -> list[int]:
        """The seeds a checkpoint file holds, read without checking whose it is (for a start-up
        summary; resuming checks it); [] where it is absent or unreadable."""
        try:
            saved = json.loads(Path(path).expanduser().read_text())
            return _seeds(saved.get("first"), saved.get("gains", {}))
        except (OSError, ValueError, TypeError, AttributeError, KeyError):
            return []

    def gain(self, seed: int) -> dict | None:
        """The downstream gain of ``seed``, if the file holds it."""
        if self.first is not None and self.first["seed"] == seed:
            return self.first["downstream"]
        return self.gains.get(str(seed))

    def save_first(self, report: dict) -> None:
        self.first = report
        self._write()

    def save_gain(self, seed: int, gain: dict) -> None:
        self.gains[str(seed)] = gain
        self._write()

    def _write(self) -> None:
        payload = {"identity": self.identity, "first": self.first, "gains": self.gains}
        atomic_write_bytes(self.path, (json.dumps(payload, allow_nan=False) + "\n").encode())


def _seeds(first: dict | None, gains: dict) -> list[int]:
    return sorted(([] if first is None else [first["seed"]]) + [int(seed) for seed in gains])


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."

