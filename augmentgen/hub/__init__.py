"""Saving, loading and (later) sharing generators."""

from .serialization import CONFIG_NAME, WEIGHTS_NAME, load_generator, save_generator


def from_pretrained(path, *, device=None):
    """Load any saved generator (any family) from its folder; the family is read from config.json."""
    return load_generator(path, device=device)


def save_pretrained(generator, directory, **metadata):
    """Save ``generator`` as ``config.json`` + ``model.safetensors`` in ``directory``."""
    return save_generator(generator, directory, metadata={k: str(v) for k, v in metadata.items()})


__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "from_pretrained", "load_generator", "save_generator", "save_pretrained"]
