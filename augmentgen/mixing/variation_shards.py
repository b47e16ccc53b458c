"""A bank of variations of the training set, offline and at scale: Parquet shards of rows made from real images.

:func:`write_variation_shards` is :meth:`SyntheticPool.from_variations
<augmentgen.mixing.SyntheticPool.from_variations>` written to disk the way
:func:`~augmentgen.mixing.write_shards` writes free samples, by the same writer
(:func:`~augmentgen.mixing.shards.write_bank`): the same folder layout (``data/*.parquet``,
``manifest.json``, ``.progress/``, ``README.md``, ``synthesis.json``), resumable after a kill
with the same arguments, other arguments or other images into the same folder refused before
anything is written, a disjoint share of the shards per rank under ``accelerate launch`` /
``torchrun``, rows that do not depend on the number of processes, atomic shard writes. Every
class gets ``per_image * (images in the largest class)`` rows, spread over the class's real
images by the pool's rule (:func:`~augmentgen.mixing.variations.class_anchors`); each row keeps
its real image's label and gives that image's index in a ``source_index`` column, and the
source's mode and knob (``strength`` for ``vary``) go into ``synthesis.json`` and the card::

    import augmentgen, datasets
    from augmentgen.mixing import VariationSource, write_variation_shards

    train = augmentgen.load_data("fashion-mnist-small")
    generator = augmentgen.from_pretrained("runs/aae")
    write_variation_shards(VariationSource(generator, "vary", strength=0.5), train.images, train.labels,
                           "variations", per_image=8, seed=0)
    bank = datasets.load_dataset("parquet", data_dir="variations", split="train")
    bank[0]["source_index"]   # the index in train.images of the image row 0 was made from

The command line: ``augmentgen sample --model runs/aae --variations-of fashion-mnist-small
--mode vary --strength 0.5 --per-image 8 --format parquet --out variations``.
"""

from __future__ import annotations

import functools
import os

import torch

from .._config import check_path
from .._images import to_signed_unit, to_uint8
from .._seeds import check_seed
from ..errors import ConfigError
from ..hub.serialization import tensors_sha256
from ..models.base import ConditionalGenerator, sampling_chunk
from .hf import _to_arrays
from .shard_manifest import variation_identity
from .shards import (
    Batches,
    Shard,
    bank_features,
    bank_info,
    check_int_arguments,
    plan_shards,
    shard_seed,
    write_bank,
)
from .sources import AnchoredSource
from .teacher import evaluating
from .variations import check_variation_inputs, class_anchors, variation_rows, variation_settings

__all__ = ["write_variation_shards"]


def write_variation_shards(source: AnchoredSource, images: torch.Tensor, labels: torch.Tensor,
                           out: str | os.PathLike, *, per_image: int = 4, seed: int = 0, shard_size: int = 4096,
                           batch_size: int = 256, generator_id: str | None = None, model: str | None = None,
                           data: str | None = None, progress: bool = True) -> dict:
    """Write variations of the real ``images`` into ``out`` as Parquet shards; resumable, multi-process.

    Every class gets ``per_image * (images in the largest class)`` rows, spread over its images by
    :meth:`SyntheticPool.from_variations <augmentgen.mixing.SyntheticPool.from_variations>`'s rule
    (the same images with the same seed on the CPU); shard (class c, chunk j) draws the source's
    random numbers from :func:`~augmentgen.mixing.shard_seed` ``(seed, c, j)``, so the rows are
    the same for any number of processes. Run it the same way in every process; rerun it to
    resume. Other arguments or images into the same folder raise a ConfigError saying what
    differs. Columns: ``image``, ``label`` (ClassLabel), ``synthetic``, ``source_index`` (int64:
    the row's real image in ``images``), ``generator`` and ``seed``.

    Args:
        source: a :class:`~augmentgen.mixing.VariationSource` (or another anchored source with a
            ``generator``, whose weights the manifest records), on this process's device.
        images: the real images (N, C, H, W), uint8 in ``[0, 255]`` or float in ``[-1, 1]``,
            shaped like the generator's; every rank holds them as float32 on the source's device.
        labels: their class indices (N,); every class of the generator needs one image.
        out: the output folder: new, empty, or one this function started with the same arguments.
        per_image: variations per image of the largest class, >= 1.
        seed: the run's seed, >= 0: it orders each class's images and seeds every shard.
        shard_size: rows per Parquet file: the unit of resuming and of sharing work.
        batch_size: rows per call of the source, what a rank holds in memory. The source draws its
            random numbers a call at a time, so it decides the rows: a rerun must repeat it.
        generator_id: the ``generator`` column; defaults to ``model``, else ``<family>-<sha256[:12]>``.
        model, data: where the generator and the images came from (the CLI's ``--model`` and
            ``--variations-of``), recorded and named in error messages.
        progress: a tqdm bar on the main rank.

    Returns:
        ``synthesis.json``'s metadata (rows per class, mode and knob, the images' sha256, speed per
        rank), on every rank; ``already_complete=True`` added when ``out`` was already complete.

    Example::

        meta = write_variation_shards(VariationSource(generator, "vary", strength=0.5), train.images,
                                      train.labels, "variations", per_image=4, shard_size=64)
        bank = datasets.load_dataset("parquet", data_dir="variations", split="train")
        assert all(train.labels[i] == y for i, y in zip(bank["source_index"], bank["label"]))
    """
    check_path(out, "out", kind="a folder path", empty="would write the shards into the current folder",
               example="the folder the Parquet shards go in, e.g. 'variations'")
    images, labels, counts = check_variation_inputs(source, images, labels, per_image, batch_size,
                                                    caller="write_variation_shards",
                                                    free="write_shards(generator, per_class, out)")
    generator = _generator_of(source)
    check_seed(seed, use="it orders each class's images and seeds every shard")
    check_int_arguments(shard_size=(shard_size, 1))
    real, labels = to_signed_unit(images.cpu()).contiguous(), labels.cpu()  # what the rows are made from
    per_class = per_image * int(counts.max())
    identity = variation_identity(generator, _settings(source), tensors_sha256({"images": real, "labels": labels}),
                                  len(labels), per_image, seed, shard_size, batch_size)
    info = bank_info(generator, identity, generator_id, model, data=data, made_by=repr(source),
                     per_class=per_class, images_per_class=counts.tolist())
    anchors = class_anchors(labels, per_class, generator.num_classes, rng=torch.Generator().manual_seed(seed))
    produce = functools.partial(_variation_batches, source, real.to(source.device), labels.to(source.device), anchors,
                                seed=seed, batch_size=batch_size)
    return write_bank(out, identity, info, plan_shards(generator.num_classes, per_class, shard_size), produce,
                      features=_features(generator), progress=progress, desc="variations")


def _generator_of(source: AnchoredSource) -> ConditionalGenerator:
    generator = getattr(source, "generator", None)
    if not isinstance(generator, ConditionalGenerator):
        raise ConfigError(f"write_variation_shards records the weights of the source's generator, so that a rerun "
                          f"resumes only the same bank; {type(source).__name__} has no generator: pass a "
                          "VariationSource(generator, mode) (SyntheticPool.from_variations builds an in-memory "
                          "bank from any anchored source)")
    return generator


def _settings(source: AnchoredSource) -> dict:
    """The source's part of the identity: its type, its mode and that mode's knob."""
    settings = variation_settings(source)
    return {"source": type(source).__name__,
            **{key: value for key, value in settings.items() if key not in ("source", "family")}}


def _features(generator: ConditionalGenerator):
    import datasets

    return bank_features(generator, source_index=datasets.Value("int64"))


def _variation_batches(source: AnchoredSource, real: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor,
                       shard: Shard, *, seed: int, batch_size: int) -> Batches:
    """The variations producer: ``shard``'s rows made from their real images, ``batch_size`` a call."""
    rng = torch.Generator(device=real.device).manual_seed(shard_seed(seed, shard.label, shard.chunk))
    mine = anchors[shard.label, shard.start:shard.stop]
    for start in range(0, len(mine), batch_size):
        chunk = mine[start:start + batch_size]
        with evaluating(source.generator), sampling_chunk(len(chunk)):  # the writer's bar
            rows = variation_rows(source, real, labels, chunk.to(real.device), rng=rng)
        yield {"image": _to_arrays(to_uint8(rows.float())), "source_index": chunk.tolist()}, len(chunk)
