"""``augmentgen models``: the model families and presets, one line each."""

from __future__ import annotations


def _models(args) -> int:
    from ..models import available_models

    for name, description in available_models().items():
        print(f"{name:12s} {description}")
    return 0
