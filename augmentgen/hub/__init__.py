"""Saving, loading and sharing generators: local folders, the shipped zoo and the Hugging Face Hub.

A saved generator is a folder with ``config.json`` (the family's config, which picks the class),
``model.safetensors`` (weights, with a sha256 and the config in its metadata), and, from
:func:`save_pretrained`, a ``README.md`` model card and a ``samples.png`` grid.
"""

from ..models.base import ConditionalGenerator
from .card import render_model_card
from .mixin import PretrainedMixin, attach_hub_methods
from .remote import download, from_pretrained, push_to_hub
from .serialization import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    atomic_write_bytes,
    load_generator,
    save_generator,
    save_pretrained,
)
from .zoo import list_pretrained, pretrained_dir

# gen.save_pretrained / gen.push_to_hub / SomeGenerator.from_pretrained are hub code, but
# ConditionalGenerator lives in the interface layer, which must not import the layer above it.
# So the hub attaches them here; `import augmentgen` always imports the hub, so every generator
# has them.
attach_hub_methods(ConditionalGenerator)

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "PretrainedMixin",
    "atomic_write_bytes",
    "attach_hub_methods",
    "download",
    "from_pretrained",
    "list_pretrained",
    "load_generator",
    "pretrained_dir",
    "push_to_hub",
    "render_model_card",
    "save_generator",
    "save_pretrained",
]
