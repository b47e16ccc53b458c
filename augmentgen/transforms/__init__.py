"""Per-sample transforms that put synthetic images into data pipelines.

``SyntheticDataset`` wraps a stock torchvision dataset (``ImageFolder``, ``FashionMNIST``, ...),
whose ``transform=`` never sees the class; ``ReplaceWithSynthetic`` is the torchvision
transforms v2 transform it runs, for pipelines that pass (image, class) themselves;
``AlbumentationsReplaceWithSynthetic`` is the albumentations 2.x equivalent.

The three are imported on first use: torchvision's and albumentations' imports take seconds
(torchvision's pulls in ``torch._dynamo``), and ``import augmentgen``, the mixers and the CLI's
``--help`` need only :mod:`.functional`.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import functional

__all__ = ["AlbumentationsReplaceWithSynthetic", "ReplaceWithSynthetic", "SyntheticDataset", "functional"]

_LAZY = {"AlbumentationsReplaceWithSynthetic": ".albumentations", "ReplaceWithSynthetic": ".v2",
         "SyntheticDataset": ".dataset"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
