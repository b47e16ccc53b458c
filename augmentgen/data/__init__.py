"""Data layer: every supported source becomes a :class:`LabelledImages` (uint8 N,C,H,W + labels)."""

from .labelled import LabelledImages
from .sources import BUILTIN_DATASETS, load_data
from .subsets import balanced_subset, long_tailed_counts, long_tailed_subset, per_class_subset

__all__ = [
    "BUILTIN_DATASETS",
    "LabelledImages",
    "balanced_subset",
    "load_data",
    "long_tailed_counts",
    "long_tailed_subset",
    "per_class_subset",
]
