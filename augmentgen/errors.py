"""The library's own exceptions. Everything augmentgen raises on bad input is one of these.

They subclass the built-in exception a caller would otherwise expect (``ValueError`` for bad
values, ``OSError`` for files), so ``except ValueError`` keeps working.
"""


class AugmentgenError(Exception):
    """Base class of every error augmentgen raises on purpose."""


class ConfigError(AugmentgenError, ValueError):
    """A config value or a config file is invalid (unknown field, wrong type, out of range)."""


class DataError(AugmentgenError, ValueError):
    """The training or mixing data is unusable (shapes, labels, classes, unreadable files)."""


class CheckpointError(AugmentgenError, OSError):
    """A saved generator or checkpoint is missing, corrupted, or does not match its config."""


class UnknownFamilyError(ConfigError):
    """A model family name that no module registered."""


class TrainingDivergedError(AugmentgenError, RuntimeError):
    """A loss or a weight became NaN or infinite during training."""
