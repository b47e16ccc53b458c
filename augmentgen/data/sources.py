"""Turning what users have into :class:`LabelledImages`.

``load_data`` accepts a built-in dataset name, an ImageFolder directory, an ``.npz`` file, a
Hugging Face dataset (object, ``load_from_disk`` folder, or ``hf:<path>``), any torch
``Dataset`` of (image, label) pairs, or a :class:`LabelledImages`. Nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
import os
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .labelled import LabelledImages
from .subsets import balanced_subset, long_tailed_subset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]

BUILTIN_DATASETS = {
    "fashion-mnist-small": "50 Fashion-MNIST training images per class (+1000 test), shipped in the package",
    "mnist": "MNIST from its original idx .gz files in --data-dir",
    "fashion-mnist": "Fashion-MNIST from its original idx .gz files in --data-dir",
    "cifar10": "CIFAR-10 from train.npz / test.npz in --data-dir",
}

DATA_DIR_ENV = "AUGMENTGEN_DATA_DIR"


def load_data(
    source: Any,
    *,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    per_class: int | None = None,
    imbalance: float | None = None,
    seed: int = 0,
    image_column: str | None = None,
    label_column: str | None = None,
    channels: int | None = None,
) -> LabelledImages:
    """Load labelled images from ``source`` and optionally take a seeded low-data subset.

    Args:
        source: a built-in name (``"fashion-mnist-small"``, ``"mnist"``, ``"fashion-mnist"``,
            ``"cifar10"``), a path to an ImageFolder directory, an ``.npz`` file (arrays
            ``images``, ``labels``, optional ``classes``) or a saved HF dataset (``hf:<path>``
            or a ``load_from_disk`` folder); or an object: :class:`LabelledImages`, a
            ``datasets.Dataset``, or a torch ``Dataset`` of (image, label).
        split: ``"train"`` or ``"test"`` for built-in datasets.
        data_dir: folder of the built-in datasets' files (``<data_dir>/mnist/...``); defaults
            to the ``AUGMENTGEN_DATA_DIR`` environment variable.
        per_class: keep at most this many images per class (seeded, class-balanced).
        imbalance: keep a long-tailed subset: class ``c`` keeps ``n_max * imbalance^(-c/(C-1))``
            images, so the rarest class has ``imbalance`` times fewer than the commonest.
        seed: seed of the subset draws.
        image_column, label_column: HF dataset column names when not ``image``/``img`` and
            ``label``/``labels``.
        channels: convert images to this many channels (1 or 3) instead of refusing mixed
            grayscale and RGB input.
    """
    data = _load_source(source, split=split, data_dir=data_dir, image_column=image_column,
                        label_column=label_column, channels=channels)
    if imbalance is not None:
        data = long_tailed_subset(data, imbalance, max_per_class=per_class, seed=seed)
    elif per_class is not None:
        data = balanced_subset(data, per_class, seed=seed)
    return data


def _load_source(source, *, split, data_dir, image_column, label_column, channels) -> LabelledImages:
    if isinstance(source, LabelledImages):
        return source
    if _is_hf_dataset(source):
        return from_hf_dataset(source, image_column=image_column, label_column=label_column,
                               channels=channels)
    if isinstance(source, torch.utils.data.Dataset):
        return from_torch_dataset(source, channels=channels)
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(f"cannot read data from a {type(source).__name__}; see load_data's docstring")
    spec = str(source)
    if spec in BUILTIN_DATASETS:
        return load_builtin(spec, split=split, data_dir=data_dir)
    if spec.startswith("hf:"):
        return from_hf_disk(spec[3:], image_column=image_column, label_column=label_column,
                            channels=channels)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(
            f"no data at {spec!r}: not a built-in dataset ({', '.join(BUILTIN_DATASETS)}), "
            "and no such file or folder"
        )
    if path.is_file() and path.suffix == ".npz":
        return from_npz(path, channels=channels)
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "state.json").exists()
                          or (path / "dataset_dict.json").exists()):
        return from_hf_disk(path, image_column=image_column, label_column=label_column,
                            channels=channels)
    if path.is_dir() and any((path / "data").glob("*.parquet")):
        return from_parquet_folder(path, image_column=image_column, label_column=label_column,
                                   channels=channels)
    if path.is_dir():
        return from_image_folder(path, channels=channels)
    raise DataError(f"cannot read {spec!r}: expected a folder, an .npz file, or hf:<path>")


# ----------------------------------------------------------------- array conversion
def images_to_uint8_nchw(images: np.ndarray, *, what: str = "images", channels: int | None = None) -> np.ndarray:
    """Normalise an image array to uint8 (N, C, H, W).

    Accepts (N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3}; uint8, or floats in
    [0, 1] (scaled to 0-255).
    """
    images = np.asarray(images)
    if images.dtype == object:
        raise DataError(f"{what} have different sizes; resize them to one size first")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4:
        if images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):
            images = images.transpose(0, 3, 1, 2)
        elif images.shape[1] not in (1, 3):
            raise DataError(f"{what}: cannot find a channel axis of size 1 or 3 in shape {images.shape}")
    else:
        raise DataError(f"{what} must be (N, H, W), (N, H, W, C) or (N, C, H, W); got {images.shape}")
    if images.dtype != np.uint8:
        if np.issubdtype(images.dtype, np.floating):
            if images.size and (np.nanmin(images) < 0 or np.nanmax(images) > 1 or np.isnan(images).any()):
                raise DataError(f"float {what} must be in [0, 1]; got values outside it")
            images = np.round(images * 255).astype(np.uint8)
        elif np.issubdtype(images.dtype, np.integer):
            if images.size and (images.min() < 0 or images.max() > 255):
                raise DataError(f"integer {what} must be in [0, 255]")
            images = images.astype(np.uint8)
        else:
            raise DataError(f"{what} have unsupported dtype {images.dtype}")
    if channels is not None and images.shape[1] != channels:
        images = _convert_channels(images, channels)
    return np.ascontiguousarray(images)


def _convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    if channels == 3 and images.shape[1] == 1:
        return np.repeat(images, 3, axis=1)
    if channels == 1 and images.shape[1] == 3:
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)[None, :, None, None]
        return np.round((images * weights).sum(axis=1, keepdims=True)).astype(np.uint8)
    raise DataError(f"channels must be 1 or 3, got {channels}")


def _image_to_hwc(image, channels: int | None) -> np.ndarray:
    """One PIL / numpy / tensor image to a uint8 HWC array."""
    from PIL import Image

    if isinstance(image, Image.Image):
        if channels == 1:
            image = image.convert("L")
        elif channels == 3 or image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        arr = np.asarray(image)
    elif isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 3 and t.shape[0] in (1, 3):
            t = t.permute(1, 2, 0)
        arr = t.numpy()
    else:
        arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise DataError(f"an image has shape {arr.shape}; expected (H, W), (H, W, C) or (C, H, W)")
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise DataError("float images must be in [0, 1] (e.g. torchvision's ToTensor output)")
        arr = np.round(arr * 255).astype(np.uint8)
    return arr.astype(np.uint8, copy=False)


def _stack_images(arrays: list[np.ndarray], *, what: str, channels: int | None) -> np.ndarray:
    shapes = {a.shape[:2] for a in arrays}
    if len(shapes) > 1:
        raise DataError(f"{what} have different sizes {sorted(shapes)[:4]}; resize them to one size first")
    chans = {a.shape[2] for a in arrays}
    if channels is None and len(chans) > 1:
        raise DataError(
            f"{what} mix grayscale and RGB images; pass channels=1 or channels=3 to convert them"
        )
    if channels is not None:
        arrays = [a if a.shape[2] == channels else _convert_channels(a.transpose(2, 0, 1)[None], channels)[0].transpose(1, 2, 0) for a in arrays]
    return np.stack(arrays).transpose(0, 3, 1, 2)


# ----------------------------------------------------------------- sources
def from_npz(path: str | os.PathLike, *, channels: int | None = None) -> LabelledImages:
    """An ``.npz`` with ``images``, ``labels`` and optionally ``classes`` (no pickle is loaded)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"images", "labels"} - set(archive.files)
            if missing:
                raise DataError(f"{path} lacks array(s) {sorted(missing)}; it has {archive.files}")
            images, labels = archive["images"], archive["labels"]
            classes = [str(c) for c in archive["classes"]] if "classes" in archive.files else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        # np.load raises any of these for truncated, empty or non-npz files.
        raise DataError(f"cannot read {path} as an .npz file: {exc or type(exc).__name__}") from exc
    images = images_to_uint8_nchw(images, what=f"images in {path}", channels=channels)
    return LabelledImages(images, labels, classes, source=str(path))


def from_image_folder(root: str | os.PathLike, *, channels: int | None = None) -> LabelledImages:
    """A folder with one sub-folder of images per class (torchvision's ImageFolder layout)."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets.folder import make_dataset

    root = Path(root)
    # torchvision's find_classes would also take hidden folders (.ipynb_checkpoints) as classes.
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class sub-folders (expected {root}/<class>/<image>.png)")
    try:
        samples = make_dataset(str(root), {name: i for i, name in enumerate(classes)},
                               extensions=tuple(IMAGE_SUFFIXES))
    except FileNotFoundError as exc:  # a class folder without images
        raise DataError(f"{exc}; every class folder needs at least one image "
                        f"({', '.join(sorted(IMAGE_SUFFIXES))})") from exc
    arrays = []
    for file, _ in samples:
        try:
            with Image.open(file) as image:
                arrays.append(_image_to_hwc(image, channels))
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"cannot read image {file}: {exc}") from exc
    images = _stack_images(arrays, what=f"images in {root}", channels=channels)
    return LabelledImages(images, [label for _, label in samples], classes, source=str(root))


def from_torch_dataset(dataset, *, channels: int | None = None) -> LabelledImages:
    """Any map-style torch ``Dataset`` yielding (image, label) with PIL, numpy or tensor images."""
    arrays, labels = [], []
    for i in range(len(dataset)):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(f"dataset item {i} is a {type(item).__name__}; expected (image, label)")
        arrays.append(_image_to_hwc(item[0], channels))
        labels.append(item[1] if not isinstance(item[1], torch.Tensor) else item[1].item())
    if not arrays:
        raise DataError("the dataset is empty")
    images = _stack_images(arrays, what="dataset images", channels=channels)
    names = getattr(dataset, "classes", None)
    return LabelledImages(images, np.asarray(labels), names, source=type(dataset).__name__)


def _is_hf_dataset(obj) -> bool:
    return type(obj).__module__.startswith("datasets.") and hasattr(obj, "features")


def from_hf_disk(path, **kwargs) -> LabelledImages:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"cannot load a Hugging Face dataset from {path}: {exc}") from exc
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise DataError(f"{path} holds splits {list(ds)}; point at one split's folder")
        ds = ds["train"]
    return from_hf_dataset(ds, **kwargs)


def from_parquet_folder(path, **kwargs) -> LabelledImages:
    """A folder of Parquet shards under ``data/`` (what ``augmentgen sample --format hf`` writes).

    Read as one ``train`` split with ``datasets.load_dataset("parquet", data_dir=...)``; a bank
    still being written (no ``synthesis.json`` beside a ``manifest.json``) is refused, since it
    would silently lack the classes of its unfinished shards.
    """
    import datasets

    path = Path(path)
    if (path / "manifest.json").exists() and not (path / "synthesis.json").exists():
        raise DataError(f"{path} is a synthetic bank that is not complete (no synthesis.json yet); "
                        "rerun the `augmentgen sample` command that started it to finish it")
    try:
        ds = datasets.load_dataset("parquet", data_dir=str(path), split="train")
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"cannot load the Parquet shards in {path}: {exc}") from exc
    return from_hf_dataset(ds, **kwargs)


def from_hf_dataset(ds, *, image_column: str | None = None, label_column: str | None = None,
                    channels: int | None = None) -> LabelledImages:
    """A ``datasets.Dataset`` with an image column and an integer / ClassLabel label column."""
    import datasets

    columns = list(ds.column_names)
    image_column = image_column or next((c for c in ("image", "img") if c in columns), None)
    label_column = label_column or next((c for c in ("label", "labels") if c in columns), None)
    if image_column not in columns or label_column not in columns:
        raise DataError(
            f"cannot find the image and label columns among {columns}; "
            "pass image_column=... and label_column=..."
        )
    feature = ds.features[label_column]
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    arrays = [_image_to_hwc(img, channels) for img in ds[image_column]]
    if not arrays:
        raise DataError("the Hugging Face dataset is empty")
    images = _stack_images(arrays, what="dataset images", channels=channels)
    return LabelledImages(images, np.asarray(ds[label_column]), names, source="hf")


# ----------------------------------------------------------------- built-ins
def default_data_dir(data_dir=None) -> Path:
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        raise DataError(
            f"built-in datasets other than fashion-mnist-small are read from local files: pass "
            f"data_dir=... (--data-dir) or set {DATA_DIR_ENV}; nothing is downloaded"
        )
    return Path(data_dir).expanduser()


def load_builtin(name: str, *, split: str = "train", data_dir=None) -> LabelledImages:
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    if name == "fashion-mnist-small":
        return load_embedded(split)
    root = default_data_dir(data_dir)
    folder = root / name if (root / name).is_dir() else root
    if name in ("mnist", "fashion-mnist"):
        prefix = "train" if split == "train" else "t10k"
        images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", expected_magic=2051)
        labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", expected_magic=2049)
        names = MNIST_CLASSES if name == "mnist" else FASHION_MNIST_CLASSES
        return LabelledImages(images[:, None], labels.astype(np.int64), names,
                              source=f"{name}:{split}")
    if name == "cifar10":
        data = from_npz(folder / f"{split}.npz")
        data.source = f"cifar10:{split}"
        if data.class_names == [str(i) for i in range(10)]:
            data.class_names = list(CIFAR10_CLASSES)
        return data
    raise DataError(f"unknown built-in dataset {name!r}; available: {list(BUILTIN_DATASETS)}")


def read_idx(path: Path, *, expected_magic: int) -> np.ndarray:
    """Read an idx file (plain or .gz): big-endian magic, dims, then uint8 data."""
    if not path.exists():
        raise DataError(f"missing {path}; put the original idx .gz files there (nothing is downloaded)")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise DataError(f"{path} is not an idx file of the expected kind (magic {magic})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: header says {dims}, found {data.size} values")
    return data.reshape(dims).copy()  # frombuffer is read-only; torch wants writable memory


def load_embedded(split: str = "train") -> LabelledImages:
    """The embedded ``fashion-mnist-small`` dataset (see augmentgen/data/embedded/README.md)."""
    ref = resources.files("augmentgen.data") / "embedded" / "fashion_mnist_small.npz"
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as archive:
        images, labels = archive[f"{split}_images"], archive[f"{split}_labels"]
    return LabelledImages(images[:, None], labels.astype(np.int64), FASHION_MNIST_CLASSES,
                          source=f"fashion-mnist-small:{split}")
