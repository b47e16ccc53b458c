"""Hugging Face ``datasets``: synthetic rows that concatenate with the user's dataset.

``synthesize(generator, per_class=100, like=train_ds)`` returns a ``datasets.Dataset`` whose
features are ``train_ds``'s (same image and ClassLabel columns) plus a ``synthetic`` bool, so
``concatenate_datasets([mark_real(train_ds), synthetic_ds])`` works; :func:`add_synthetic` does
both in one call. :func:`synthesize_variations` is the same for rows made from the user's own
images by a :class:`~augmentgen.mixing.VariationSource`, each naming its image in ``source_index``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import torch

from .._processes import progress_bar
from .._seeds import seeded_generator
from ..data import LabelledImages
from ..data.labelled import warn_if_class_names_differ
from ..errors import ConfigError, DataError
from ..models.base import ConditionalGenerator, Temperature, check_generator_argument, sampling_progress
from ..transforms.anchored import check_probability
from ..transforms.functional import to_uint8
from .pool import SyntheticPool
from .sources import AnchoredSource
from .variations import check_source, check_variation_inputs

SYNTHETIC = "synthetic"


def _datasets():
    import datasets

    return datasets


def _columns(features) -> tuple[str, str]:
    """(image column, label column) of ``features``: the first Image and the first ClassLabel."""
    ds = _datasets()
    image = next((k for k, f in features.items() if isinstance(f, ds.Image)), None)
    label = next((k for k, f in features.items() if isinstance(f, ds.ClassLabel)), None)
    if image is None or label is None:
        raise DataError(
            f"cannot match features {dict(features)}: synthetic rows need one Image column and one "
            "ClassLabel column; cast yours first, e.g. ds.cast_column('label', "
            "ClassLabel(names=[...])) and ds.cast_column('image', Image())"
        )
    return image, label


def synthetic_features(generator: ConditionalGenerator, like=None):
    """The features of synthetic rows: ``like``'s (a Dataset or Features) plus ``synthetic``.

    Without ``like``: ``image`` (Image), ``label`` (ClassLabel with the generator's class names),
    ``synthetic`` (bool). Raises :class:`DataError` saying why when ``like`` cannot be matched.
    """
    ds = _datasets()
    if like is None:
        return ds.Features({"image": ds.Image(), "label": ds.ClassLabel(names=generator.class_names),
                            SYNTHETIC: ds.Value("bool")})
    features = like if isinstance(like, ds.Features) else getattr(like, "features", None)
    if features is None:
        raise DataError(f"like= must be a datasets.Dataset or datasets.Features, got {type(like).__name__}")
    image_column, label_column = _columns(features)
    class_label = features[label_column]
    if class_label.num_classes != generator.num_classes:
        raise DataError(
            f"the dataset's {label_column!r} has {class_label.num_classes} classes "
            f"({class_label.names[:5]}...) but the generator has {generator.num_classes} "
            f"({generator.class_names[:5]}...); use a generator trained on this dataset's classes"
        )
    warn_if_class_names_differ(generator.class_names, class_label.names, model="the generator",
                               data=f"the dataset's {label_column!r}", stacklevel=3)
    others = [k for k in features if k not in (image_column, label_column, SYNTHETIC)]
    if others:
        raise DataError(
            f"synthetic rows cannot fill the column(s) {others}; drop them first "
            f"(ds.remove_columns({others})) so the features can be aligned"
        )
    if SYNTHETIC in features and features[SYNTHETIC] != ds.Value("bool"):
        raise DataError(f"the dataset already has a {SYNTHETIC!r} column of type {features[SYNTHETIC]}, "
                        "not bool; rename it")
    return ds.Features({image_column: features[image_column], label_column: class_label,
                        SYNTHETIC: ds.Value("bool")})


def balance_counts(labels, num_classes: int) -> list[int]:
    """Images per class that top every class up to the majority count (``per_class="balance"``)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    return (counts.max() - counts).tolist()


def _class_index(generator: ConditionalGenerator, key, what: str) -> int:
    """The class index of a ``{class: value}`` key: an index or a class name."""
    if isinstance(key, str) and key in generator.class_names:
        return generator.class_names.index(key)
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool) and 0 <= key < generator.num_classes:
        return int(key)
    raise ConfigError(f"{what} key {key!r} is neither a class index in [0, {generator.num_classes - 1}] "
                      f"nor one of the class names {generator.class_names}")


def _count(value, what: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _per_class_counts(generator: ConditionalGenerator, per_class, like) -> list[int]:
    k = generator.num_classes
    if isinstance(per_class, str) and per_class == "balance":
        if like is None or not hasattr(like, "column_names"):
            raise DataError('per_class="balance" needs like=<your datasets.Dataset> to count its labels')
        _, label_column = _columns(like.features)
        return balance_counts(like[label_column], k)
    if isinstance(per_class, Mapping):
        counts = [0] * k
        for key, n in per_class.items():
            counts[_class_index(generator, key, "per_class")] = _count(n, f"per_class[{key!r}]", minimum=0)
        if not sum(counts):
            raise ConfigError(f"per_class={dict(per_class)} asks for no images at all; "
                              "give some class a count >= 1")
        return counts
    if isinstance(per_class, (int, np.integer)) and not isinstance(per_class, bool):
        return [_count(per_class, "per_class", minimum=1)] * k
    raise ConfigError(f"per_class must be an int >= 1, a {{class: n}} dict or 'balance', got {per_class!r}")


def _to_arrays(images_uint8: torch.Tensor) -> list[np.ndarray]:
    # (N, C, H, W) -> N arrays (H, W) or (H, W, 3), the layouts datasets' Image encodes.
    array = images_uint8.permute(0, 2, 3, 1).cpu().numpy()
    if array.shape[-1] == 1:
        array = array[..., 0]
    return list(array)


def _generate_rows(generator: ConditionalGenerator, labels: torch.Tensor, *, batch_size: int,
                   rng: torch.Generator, temperature: Temperature = 1.0,
                   ) -> Iterator[tuple[list[np.ndarray], list[int]]]:
    for chunk in labels.split(batch_size):
        fake_images = generator.sample(chunk.to(generator.device), generator=rng, batch_size=batch_size,
                                       temperature=temperature)
        yield _to_arrays(to_uint8(fake_images)), chunk.tolist()


def _rng(generator: ConditionalGenerator, seed: int | None) -> torch.Generator:
    return seeded_generator(seed, generator.device)


def synthesize(generator: ConditionalGenerator, per_class: int | Mapping | str = 100, *, like=None,
               seed: int | None = 0, batch_size: int = 1024, temperature: Temperature = 1.0,
               progress: bool | None = None):
    """Sample a ``datasets.Dataset`` of synthetic labelled images.

    Args:
        generator: any :class:`ConditionalGenerator`.
        per_class: images per class: an int, a ``{class index or name: n}`` dict, or
            ``"balance"`` to top every class of ``like`` up to its majority count.
        like: the user's ``datasets.Dataset`` (or its ``Features``): the result gets the same
            image and ClassLabel columns, so ``concatenate_datasets`` accepts both once the user's
            dataset has a ``synthetic`` column (:func:`mark_real`). Without it the columns are
            ``image``, ``label`` (ClassLabel with the generator's class names), ``synthetic``.
        seed: seeds the samples (same seed, same rows); None for fresh randomness.
        batch_size: images generated per forward pass.
        temperature: sampling temperature (:meth:`ConditionalGenerator.sample`): below 1
            concentrates each class's images towards its centre (0: one image per class, repeated),
            above 1 spreads them; one float, or ``num_classes`` floats indexed by class. 1 gives
            exactly the rows made without it.
        progress: a tqdm bar of the images sampled on the main process, advanced within a batch
            by iterative families (``ddpm``); ``None`` shows it when stderr is a terminal.

    Returns:
        A ``datasets.Dataset`` grouped by class, with ``synthetic`` True on every row.
    """
    check_generator_argument(generator, "synthesize", "synthesize(generator, per_class, like=dataset)")
    ds = _datasets()
    temperature = generator.check_temperature(temperature)  # fail before any work
    _count(batch_size, "batch_size", minimum=1)
    features = synthetic_features(generator, like)
    image_column, label_column = _columns(features)
    counts = _per_class_counts(generator, per_class, like)
    _warn_if_sizes_differ(generator, like, image_column)
    labels = torch.repeat_interleave(torch.arange(generator.num_classes), torch.tensor(counts))
    images: list[np.ndarray] = []
    with progress_bar(progress, total=len(labels), desc="synthesize") as bar, sampling_progress(bar):
        for arrays, _ in _generate_rows(generator, labels, batch_size=batch_size, rng=_rng(generator, seed),
                                        temperature=temperature):
            images.extend(arrays)
    return ds.Dataset.from_dict(
        {image_column: images, label_column: labels.tolist(), SYNTHETIC: [True] * len(images)},
        features=features)


def _warn_if_sizes_differ(generator: ConditionalGenerator, like, image_column: str) -> None:
    """Warn when ``like``'s first image (a PIL image) is not the size the generator makes: concatenated,
    the dataset would hold two sizes, which a later resize may intend but a collate fails on. One
    row is decoded, without ``like``'s own transform."""
    import PIL.Image

    if not hasattr(like, "with_format") or not hasattr(like, "__len__") or len(like) == 0:
        return  # Features, or an IterableDataset: nothing to read without consuming it
    first = like.with_format(None)[0][image_column]
    size = generator.image_shape[-1]
    if isinstance(first, PIL.Image.Image) and first.size != (size, size):
        warnings.warn(f"the generator makes {size}x{size} images but the dataset's {image_column!r} images are "
                      f"{first.size[0]}x{first.size[1]} (its first row): the two would sit in one dataset at two "
                      "sizes. Resize every row in your transform (v2.Resize), or use a generator trained at "
                      "the dataset's size", stacklevel=3)


def synthesize_iterable(generator: ConditionalGenerator, *, like=None, num_samples: int | None = None,
                        balance: Mapping | None = None, seed: int | None = 0, batch_size: int = 256,
                        temperature: Temperature = 1.0):
    """A ``datasets.IterableDataset`` that generates synthetic rows on the fly, ``batch_size`` at a time.

    Classes are drawn uniformly (or by ``balance`` weights ``{class: weight}``); the stream is
    endless unless ``num_samples`` is given. Interleave it with a streamed dataset:
    ``datasets.interleave_datasets([mark_real(real_stream), synthetic_stream], probabilities=...)``.
    ``temperature`` is :func:`synthesize`'s (checked here, not when the stream is first read).
    """
    check_generator_argument(generator, "synthesize_iterable", "synthesize_iterable(generator, like=dataset)")
    ds = _datasets()
    temperature = generator.check_temperature(temperature)
    _count(batch_size, "batch_size", minimum=1)
    if num_samples is not None:
        _count(num_samples, "num_samples", minimum=1)
    features = synthetic_features(generator, like)
    image_column, label_column = _columns(features)
    weights_list = _class_weights(generator, balance)

    def rows(seed=seed, num_samples=num_samples):
        rng = _rng(generator, seed)
        draw = torch.Generator().manual_seed(seed) if seed is not None else None
        made = 0
        while num_samples is None or made < num_samples:
            n = batch_size if num_samples is None else min(batch_size, num_samples - made)
            labels = torch.multinomial(torch.tensor(weights_list), n, replacement=True, generator=draw)
            for arrays, classes in _generate_rows(generator, labels, batch_size=batch_size, rng=rng,
                                                  temperature=temperature):
                for array, label in zip(arrays, classes):
                    yield {image_column: array, label_column: label, SYNTHETIC: True}
            made += n

    return ds.IterableDataset.from_generator(rows, features=features)


def _class_weights(generator: ConditionalGenerator, balance: Mapping | None) -> list[float]:
    """Class draw weights of :func:`synthesize_iterable`: uniform, or ``balance``'s (finite, >= 0, not all 0)."""
    if balance is not None and not isinstance(balance, Mapping):
        raise ConfigError(f"balance must be a {{class: weight}} dict (or None for every class alike), got "
                          f"{balance!r:.80}; e.g. balance={{0: 1.0, 1: 2.0}}")
    if not balance:
        return [1.0] * generator.num_classes
    weights = [0.0] * generator.num_classes
    for key, w in balance.items():
        try:
            weight = float(w)
        except (TypeError, ValueError):
            weight = float("nan")
        if isinstance(w, bool) or not (0 <= weight < float("inf")):  # also refuses NaN
            raise ConfigError(f"balance[{key!r}] must be a finite weight >= 0, got {w!r}")
        weights[_class_index(generator, key, "balance")] = weight
    if not sum(weights):
        raise ConfigError(f"balance={dict(balance)} gives every class weight 0; give some class a weight > 0")
    return weights


def mark_real(dataset, value: bool = False):
    """``dataset`` with a ``synthetic`` bool column (False), so it concatenates with synthetic rows."""
    ds = _datasets()
    if not isinstance(dataset, (ds.Dataset, ds.IterableDataset)):
        fix = ("pick a split first, mark_real(ds['train'])" if isinstance(dataset, (ds.DatasetDict, ds.IterableDatasetDict))
               else "other data mixes in batches instead: SyntheticMix or augment_loader")
        raise DataError(f"mark_real takes a datasets.Dataset or IterableDataset, got {type(dataset).__name__}; {fix}")
    if SYNTHETIC in dataset.column_names:
        return dataset
    if isinstance(dataset, ds.IterableDataset):
        features = None
        if dataset.features is not None:  # map() would forget them; state them so casts still work
            features = ds.Features({**dataset.features, SYNTHETIC: ds.Value("bool")})
        return dataset.map(lambda row: {SYNTHETIC: value}, features=features)
    return dataset.add_column(SYNTHETIC, [value] * len(dataset),
                              feature=ds.Value("bool"))


def add_synthetic(dataset, generator: ConditionalGenerator, per_class: int | Mapping | str = 100, *,
                  seed: int | None = 0, batch_size: int = 1024, temperature: Temperature = 1.0,
                  progress: bool | None = None):
    """``dataset`` plus synthetic rows of every class: the one-line HF change.

    Equivalent to ``concatenate_datasets([mark_real(dataset), synthesize(generator, per_class,
    like=dataset)])``. ``per_class="balance"`` tops every class up to the majority count;
    ``temperature`` and ``progress`` are :func:`synthesize`'s.
    """
    ds = _datasets()
    synthetic = synthesize(generator, per_class, like=dataset, seed=seed, batch_size=batch_size,
                           temperature=temperature, progress=progress)
    return ds.concatenate_datasets([mark_real(dataset), synthetic])


def synthesize_variations(source: AnchoredSource, dataset, per_image: int = 4, *, seed: int | None = 0,
                          batch_size: int = 256, progress: bool | None = None):
    """A ``datasets.Dataset`` of rows made from the user's own labelled images, each keeping its label.

    The in-memory counterpart of :func:`~augmentgen.mixing.write_variation_shards`, with the rows
    of :meth:`SyntheticPool.from_variations <augmentgen.mixing.SyntheticPool.from_variations>`:
    every class gets ``per_image * (images in the largest class)`` rows, spread over its images by
    the same rule (:func:`~augmentgen.mixing.variations.class_anchors`), made ``batch_size`` at a
    time on the source's device. With the same seed and ``batch_size`` on the same device the rows
    are the pool's, in the same order. The images are held as float32 on that device meanwhile.

    Args:
        source: what makes the rows: a :class:`~augmentgen.mixing.VariationSource` (``vary``,
            ``interpolate``, ``extrapolate``), or another anchored source such as the control
            :class:`~augmentgen.mixing.RealRowSource`.
        dataset: the real images: a ``datasets.Dataset`` with one Image column and one ClassLabel
            column (and at most a ``synthetic`` one), whose features the result reuses as
            :func:`synthesize`'s ``like`` does, so ``concatenate_datasets([mark_real(dataset),
            rows])`` works (real rows get ``source_index`` None); or a
            :class:`~augmentgen.LabelledImages`, giving ``image`` / ``label`` columns with the
            source's class names. Every class of the source needs an image, shaped like its images.
        per_image: variations per image of the largest class, >= 1.
        seed: seeds which images the rows come from and the rows themselves (same seed, same
            rows); None for fresh randomness.
        batch_size: rows made per call of the source; the source draws its random numbers a call
            at a time, so it is part of what decides the rows.
        progress: a tqdm bar on the main process; ``None`` shows it when stderr is a terminal.

    Returns:
        A ``datasets.Dataset`` grouped by class: ``dataset``'s image and label columns, ``synthetic``
        True, and ``source_index`` (int64), the row of ``dataset`` each row was made from.
    """
    ds = _datasets()
    features, images, labels = _variation_inputs(source, dataset, per_image, batch_size)
    # Checked once, under this function's name; the rows are the pool's, made by its one loop
    # (same seed, batch size and device: the same rows).
    images, labels, counts = check_variation_inputs(source, images, labels, per_image, batch_size,
                                                    caller="synthesize_variations",
                                                    free="synthesize(generator, per_class)")
    pool = SyntheticPool._of_variations(source, images, labels, counts, per_image=per_image, seed=seed,
                                        batch_size=batch_size, refresh_every=None, device=None, progress=progress)
    anchors = pool.source_index.flatten()
    classes = torch.arange(pool.num_classes).repeat_interleave(pool.per_class)  # the bank is grouped by class
    image_column, label_column = _columns(features)
    return ds.Dataset.from_dict(
        {image_column: _to_arrays(pool.images.flatten(0, 1)), label_column: classes.tolist(),
         SYNTHETIC: [True] * len(anchors), "source_index": anchors.tolist()},
        features=features)


def _variation_inputs(source: AnchoredSource, dataset, per_image: int, batch_size: int):
    """(features of the rows, real images, their labels), with every check that needs no image first."""
    ds = _datasets()
    check_source(source, "synthesize_variations", "synthesize(generator, per_class)")
    _count(per_image, "per_image", minimum=1)
    _count(batch_size, "batch_size", minimum=1)
    if not isinstance(dataset, (LabelledImages, ds.Dataset)):
        raise DataError(f"synthesize_variations reads the real images from a datasets.Dataset or a "
                        f"LabelledImages, got {type(dataset).__name__}: pick a split (ds['train']) of a "
                        "DatasetDict, or read other data with augmentgen.load_data(...)")
    like = dataset if isinstance(dataset, ds.Dataset) else None
    features = synthetic_features(source, like)
    if "source_index" in features:
        raise DataError("the dataset already has a 'source_index' column; rename or drop it")
    features = ds.Features({**features, "source_index": ds.Value("int64")})
    if like is None:
        return features, dataset.images, dataset.labels
    if len(dataset) == 0:
        raise DataError("the dataset is empty: every row is made from one of its images; pass your "
                        "training images")
    image_column, label_column = _columns(features)
    # One batched decode to uint8 (N, C, H, W); images of several shapes or modes come back as a list.
    columns = dataset.with_format("torch", columns=[image_column, label_column])[:]
    if not isinstance(columns[image_column], torch.Tensor):
        shapes = sorted({tuple(image.shape) for image in columns[image_column]})
        raise DataError(f"the {image_column!r} images differ in shape (C, H, W): {shapes[:4]}; give them one "
                        f"mode and size, e.g. ds.cast_column({image_column!r}, Image(mode='L')) for "
                        "grayscale and a resize in ds.map")
    return features, columns[image_column], columns[label_column]


def synthetic_transform(pool, p: float = 0.5, *, image_column: str = "image", label_column: str = "label",
                        seed: int | None = None) -> Callable[[dict[str, list]], dict[str, list]]:
    """A function for ``dataset.with_transform(...)`` that replaces images by pool images.

    Each row's image is replaced, with probability ``p``, by a random
    :class:`~augmentgen.mixing.SyntheticPool` image of its class (a PIL image, as the ``Image``
    feature decodes to). The choice is made for the whole batch of rows at once. Use as
    ``train_ds = train_ds.with_transform(synthetic_transform(pool, p=0.3))``; compose your own
    transform after it by calling it first inside yours.
    """
    import PIL.Image

    check_probability(p)
    if not isinstance(pool, SyntheticPool):  # a generator would fail at the first row read, in draw
        raise ConfigError(f"synthetic_transform takes a SyntheticPool, got {type(pool).__name__}: build the bank "
                          "once, pool = SyntheticPool(generator, per_class=256), and pass pool")
    rng = None if seed is None else seeded_generator(seed)

    def transform(batch: dict[str, list]) -> dict[str, list]:
        labels = torch.as_tensor(batch[label_column], dtype=torch.long)
        replace = torch.rand(len(labels), generator=rng) < p
        rows = replace.nonzero().flatten()
        if len(rows):
            drawn = _to_arrays(pool.draw(labels[rows], generator=rng))
            images = list(batch[image_column])
            for row, array in zip(rows.tolist(), drawn):
                old = images[row]
                new = PIL.Image.fromarray(array)
                if isinstance(old, PIL.Image.Image) and old.size != new.size:
                    raise DataError(f"pool images are {new.size[0]}x{new.size[1]} but row {row}'s {image_column!r} "
                                    f"is {old.size[0]}x{old.size[1]}: resize the dataset's images first (in ds.map, "
                                    "or in your transform before calling this one), or use a generator trained "
                                    "at that size")
                images[row] = new.convert(old.mode) if isinstance(old, PIL.Image.Image) and old.mode != new.mode else new
            batch = {**batch, image_column: images}
        return batch

    return transform
