"""Per-sample transforms that put synthetic images into data pipelines.

``ReplaceWithSynthetic`` is a torchvision transforms v2 transform;
``AlbumentationsReplaceWithSynthetic`` is the albumentations 2.x equivalent, imported on first
use so that ``import augmentgen`` does not pay albumentations' import time.
"""

from __future__ import annotations

from typing import Any

from . import functional
from .v2 import ReplaceWithSynthetic

__all__ = ["AlbumentationsReplaceWithSynthetic", "ReplaceWithSynthetic", "functional"]


def __getattr__(name: str) -> Any:
    if name == "AlbumentationsReplaceWithSynthetic":
        from .albumentations import AlbumentationsReplaceWithSynthetic

        return AlbumentationsReplaceWithSynthetic
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
