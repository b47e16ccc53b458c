"""Each family's training step; importing this package registers them."""

from . import gan  # noqa: F401
