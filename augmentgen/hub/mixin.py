"""``save_pretrained`` / ``push_to_hub`` / ``from_pretrained`` as methods of every generator.

:class:`PretrainedMixin` follows ``huggingface_hub.ModelHubMixin``'s method names and arguments;
:func:`attach_hub_methods` puts its methods on
:class:`~augmentgen.models.base.ConditionalGenerator` (``hub/__init__.py`` says why).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..models.base import ConditionalGenerator
from . import remote, serialization

HUB_METHODS = ("save_pretrained", "push_to_hub", "from_pretrained")


# Not huggingface_hub.PyTorchModelHubMixin: its from_pretrained loads with strict=False, falls back to
# a pickled pytorch_model.bin, and builds `cls` from config.json (dropping unknown keys) rather than
# the family config.json names. We use its pieces instead: snapshot_download, HfApi, ModelCard.
class PretrainedMixin:
    """The hub methods of :class:`~augmentgen.models.base.ConditionalGenerator`, ModelHubMixin style."""

    def save_pretrained(self, save_directory: str | os.PathLike, *, overwrite: bool = False, **kwargs: Any) -> Path:
        """Save as ``config.json`` + ``model.safetensors`` + model card; see :func:`augmentgen.save_pretrained`.

        A folder holding a model with other weights is refused unless ``overwrite=True``.
        """
        return serialization.save_pretrained(self, save_directory, overwrite=overwrite, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any):
        """Upload to the Hugging Face Hub; see :func:`augmentgen.push_to_hub`."""
        return remote.push_to_hub(self, repo_id, **kwargs)

    @classmethod
    def from_pretrained(cls, repo_id_or_dir: str | os.PathLike, revision: str | None = None,
                        device: str | torch.device | None = None, **kwargs: Any) -> ConditionalGenerator:
        """Load a saved generator (folder, zoo id or hub id); it must be of this class.

        Takes :func:`augmentgen.from_pretrained`'s arguments. That function loads any family; this
        method also checks the class, so ``CGAN.from_pretrained(...)`` never returns an ``aae``.

        Raises:
            ConfigError: the saved generator is of another class.
        """
        generator = remote.from_pretrained(repo_id_or_dir, revision=revision, device=device, **kwargs)
        if not isinstance(generator, cls):
            raise ConfigError(f"{repo_id_or_dir} holds a {type(generator).__name__} ({generator.family!r}), "
                              f"not a {cls.__name__}; use augmentgen.from_pretrained to load any family")
        return generator


def attach_hub_methods(cls: type[ConditionalGenerator]) -> None:
    """Give ``cls``, and so every subclass, :class:`PretrainedMixin`'s three methods."""
    for name in HUB_METHODS:
        # Taken from the class __dict__ so from_pretrained stays a classmethod bound to the subclass.
        setattr(cls, name, vars(PretrainedMixin)[name])
