"""Putting synthetic samples into training pipelines.

- :class:`SyntheticMix` / :func:`augment_loader`: batch level, on the classifier's device;
  :class:`TeacherFilter`: the teacher filter the mixer, the pool and the shard writer share.
- Row sources: :class:`GeneratorSource` (a generator sampled in the step) and :class:`PoolSource`
  (a :class:`SyntheticPool`'s bank), made from classes alone (:class:`FreeSource`);
  :class:`VariationSource`, rows made from the batch's real rows (vary / interpolate /
  extrapolate their codes), with its controls :class:`RealRowSource` and :class:`PixelMixSource`.
- :class:`TeacherLabels` / :func:`weighted_cross_entropy`: a teacher's soft targets and a lower
  loss weight for synthetic rows (``SyntheticMix(teacher=..., filter_threshold=..., soft_labels=...)``).
- :class:`SyntheticPool`: a shared-memory bank for per-sample transforms in DataLoader workers.
- :func:`synthesize` and friends: Hugging Face ``datasets`` (imported on first use);
  :func:`synthesize_variations` makes the rows from the user's own images.
- :func:`write_samples`: export to a grid, an ImageFolder, ``.npz`` or a saved HF dataset.
- :func:`write_shards`: synthesis at scale, Parquet shards from one process or many, resumable
  (``augmentgen sample --format parquet``); ``datasets.load_dataset("parquet", data_dir=out)`` reads them.
- :func:`write_variation_shards`: the same for a bank of variations of the training set, each row
  made from a real image and recording its index (``augmentgen sample --variations-of DATA``).
"""

from __future__ import annotations

from typing import Any

from .batch import SyntheticMix
from .counts import allocate_counts
from .export import write_samples
from .filter import TeacherFilter
from .free_sources import FreeSource, GeneratorSource, PoolSource
from .loader import AugmentedLoader, augment_loader
from .pool import SyntheticPool
from .shard_manifest import completed_shards
from .shards import shard_seed, write_shards
from .sources import AnchoredSource, PixelMixSource, RealRowSource, VariationSource
from .teacher import TeacherLabels, weighted_cross_entropy
from .variation_shards import write_variation_shards

_HF_NAMES = {"synthesize", "synthesize_iterable", "synthesize_variations", "mark_real", "add_synthetic",
             "synthetic_transform", "balance_counts"}

__all__ = ["AnchoredSource", "AugmentedLoader", "FreeSource", "GeneratorSource", "PixelMixSource", "PoolSource",
           "RealRowSource", "SyntheticMix", "SyntheticPool", "TeacherFilter", "TeacherLabels", "VariationSource",
           "allocate_counts", "augment_loader", "completed_shards", "shard_seed", "weighted_cross_entropy",
           "write_samples", "write_shards", "write_variation_shards", *sorted(_HF_NAMES)]


def __getattr__(name: str) -> Any:
    # datasets takes a while to import; only HF users pay for it.
    if name in _HF_NAMES:
        from . import hf

        return getattr(hf, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
