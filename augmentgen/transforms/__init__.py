"""Per-sample transforms that put synthetic images into data pipelines.

``SyntheticDataset`` wraps a stock torchvision dataset (``ImageFolder``, ``FashionMNIST``, ...),
whose ``transform=`` never sees the class; ``ReplaceWithSynthetic`` is the torchvision
transforms v2 transform it runs, for pipelines that pass (image, class) themselves;
``AlbumentationsReplaceWithSynthetic`` is the albumentations 2.x equivalent, imported on first
use so that ``import augmentgen`` does not pay albumentations' import time.
"""

from __future__ import annotations

from typing import Any

from . import functional
from .dataset import SyntheticDataset
from .v2 import ReplaceWithSynthetic

__all__ = ["AlbumentationsReplaceWithSynthetic", "ReplaceWithSynthetic", "SyntheticDataset", "functional"]


def __getattr__(name: str) -> Any:
    if name == "AlbumentationsReplaceWithSynthetic":
        from .albumentations import AlbumentationsReplaceWithSynthetic

        return AlbumentationsReplaceWithSynthetic
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
