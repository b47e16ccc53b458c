"""Each family's training step; importing this package registers them."""

from . import aae, ae, aegan, gan, vae  # noqa: F401
