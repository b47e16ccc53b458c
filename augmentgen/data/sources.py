"""Turning what users have into :class:`LabelledImages`.

``load_data`` accepts a built-in dataset name, an ImageFolder directory, an ``.npz`` file, a
Hugging Face dataset (object, ``load_from_disk`` folder, or ``hf:<path>``), any torch
``Dataset`` of (image, label) pairs, or a :class:`LabelledImages`. Nothing is ever downloaded.
"""

from __future__ import annotations

import difflib
import gzip
import os
import warnings
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import read_head
from ..errors import ConfigError, DataError
from .folder_index import read_class_index
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


def missing_data_error(spec: str, option: str | None = None) -> DataError:
    """The refusal of a data path that names nothing: neither a built-in dataset nor a file or
    folder (with the built-in name it is close to, as a typo usually is)."""
    close = difflib.get_close_matches(spec, list(BUILTIN_DATASETS), n=1)
    return DataError(
        f"{option + ': ' if option else ''}no data at {spec!r}: not a built-in dataset "
        f"({', '.join(BUILTIN_DATASETS)}), and no such file or folder"
        + (f"; did you mean {close[0]!r}?" if close else
           "; a Hugging Face dataset is read from a save_to_disk folder given as hf:<folder>"))


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
        per_class: keep exactly this many images of every class (seeded, class-balanced); a
            class with fewer images is a DataError naming it, never a silently smaller subset.
        imbalance: keep a long-tailed subset: class ``c`` keeps ``n_max * imbalance^(-c/(C-1))``
            images, so the rarest class has ``imbalance`` times fewer than the commonest.
        seed: seed of the subset draws.
        image_column, label_column: HF dataset column names when not ``image``/``img`` and
            ``label``/``labels``.
        channels: convert images to this many channels (1 or 3) instead of refusing mixed
            grayscale and RGB input.
    """
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    data = _load_source(source, split=split, data_dir=data_dir, image_column=image_column,
                        label_column=label_column, channels=channels)
    if channels is not None and data.image_shape[0] != channels:  # built-ins and LabelledImages come as they are
        data = LabelledImages(_convert_channels(data.images.numpy(), channels), data.labels, data.class_names,
                              source=data.source)
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
        arrays = (" (for images and labels in arrays or tensors: LabelledImages(images, labels, class_names))"
                  if isinstance(source, (tuple, list, np.ndarray, torch.Tensor)) else "")
        raise DataError(f"cannot read data from a {type(source).__name__}: pass a built-in name "
                        f"({', '.join(BUILTIN_DATASETS)}), an ImageFolder folder, an .npz file, hf:<folder>, a "
                        f"LabelledImages{arrays}, a datasets.Dataset or a torch Dataset of (image, label)")
    spec = str(source)
    if not spec.strip():  # Path("") is the current folder
        raise DataError("the data is an empty path; pass a built-in name (" + ", ".join(BUILTIN_DATASETS)
                        + "), an ImageFolder folder, an .npz file or hf:<folder>")
    if spec in BUILTIN_DATASETS:
        return load_builtin(spec, split=split, data_dir=data_dir)
    if spec.startswith("hf:"):
        if not spec[3:].strip():  # read as a path, it would be the current folder
            raise DataError("hf: names no folder; pass hf:<folder> with the folder save_to_disk wrote")
        return from_hf_disk(spec[3:], image_column=image_column, label_column=label_column,
                            channels=channels)
    path = Path(spec).expanduser()
    if not path.exists():
        raise missing_data_error(spec)
    if path.is_file() and path.suffix.lower() == ".npz":
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
            check_finite(images, what)
            if images.size and (images.min() < 0 or images.max() > 1):
                raise DataError(f"float {what} must be in [0, 1]; got values in [{images.min():g}, "
                                f"{images.max():g}] (scale 0-255 images by 1/255, or pass them as uint8)")
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


def check_finite(images: np.ndarray, what: str = "images") -> None:
    """Refuse float images (N, ...) holding NaN or infinite values, saying how many."""
    finite = np.isfinite(images)
    if finite.all():
        return
    bad_images = int((~finite.reshape(len(images), -1)).any(axis=1).sum())
    nan, inf = int(np.isnan(images).sum()), int(np.isinf(images).sum())
    which = f"{what} holds" if len(images) == 1 else f"{bad_images} of {len(images)} float {what} hold"
    every = ", every value NaN" if nan == images.size else ""
    raise DataError(
        f"{which} non-finite values ({nan} NaN, {inf} infinite{every}); "
        "images must be finite floats in [0, 1] or uint8: check the step that produced them "
        "(a division by zero, a diverged model)")


def _convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    if channels == 3 and images.shape[1] == 1:
        return np.repeat(images, 3, axis=1)
    if channels == 1 and images.shape[1] == 3:
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)[None, :, None, None]
        return np.round((images * weights).sum(axis=1, keepdims=True)).astype(np.uint8)
    raise DataError(f"channels must be 1 or 3, got {channels}")


#: PIL modes of one-channel images: read as grayscale (1 channel), not converted to RGB.
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def _pil_to_array(image, channels: int | None) -> np.ndarray:
    """A PIL image as an HW or HWC array: uint8, or float in [0, 1] for high-bit-depth modes.

    PIL's own ``convert`` clips 16-bit and 32-bit values to 255 (a 16-bit PNG turns almost
    white) and truncates float pixels to 0, so those modes are scaled here instead.
    """
    if image.mode.startswith("I;16"):
        arr = np.asarray(image).astype(np.float32) / 65535.0  # the full 16-bit range to [0, 1]
    elif image.mode == "I":  # 32-bit integers: PIL's mode for 16-bit PNGs in some versions
        arr = np.asarray(image)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DataError(f"a 32-bit integer image holds values in [{arr.min()}, {arr.max()}], outside the 16-bit "
                            "range this reader scales to 0-255; save it as 8- or 16-bit")
        arr = arr.astype(np.float32) / 65535.0
    elif image.mode == "F":
        arr = np.asarray(image)  # float pixels: checked to be in [0, 1] and scaled by _image_to_hwc
    elif image.mode in _GRAY_MODES:
        arr = np.asarray(image.convert("L"))  # 1-bit, and gray with alpha: the gray channel
    else:
        arr = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    if channels is not None and (arr.ndim == 2) != (channels == 1):
        arr = np.asarray(image.convert("L" if channels == 1 else "RGB")) if arr.dtype == np.uint8 else (
            arr.mean(axis=2) if channels == 1 else np.repeat(arr[:, :, None], 3, axis=2))
    return arr


def _image_to_hwc(image, channels: int | None) -> np.ndarray:
    """One PIL / numpy / tensor image to a uint8 HWC array."""
    from PIL import Image

    if isinstance(image, Image.Image):
        arr = _pil_to_array(image, channels)
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
        check_finite(arr[None], "the float image")
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
NPZ_LAYOUT = ("arrays 'images' (uint8 0-255, or floats in [0, 1]; shaped (N, H, W), (N, H, W, C) or "
              "(N, C, H, W)), 'labels' (N integers) and optionally 'classes' (N class names as strings), "
              "as np.savez(path, images=..., labels=..., classes=...) writes them")


_PICKLE_OPCODE = b"\x80"  # every pickle from protocol 2 on opens with PROTO


def _npz_reason(exc: BaseException, head: bytes | None = None) -> str:
    """numpy's reason for refusing a file, without its advice to allow pickles (augmentgen never unpickles).

    numpy calls anything that is neither a zip archive nor a ``.npy`` array "pickled data"; ``head``
    (the file's first bytes) tells a real pickle from, say, a text or image file under an .npz name.
    """
    if head == b"":
        return "the file is empty"
    text = str(exc) or type(exc).__name__
    if "pickle" not in text.lower():
        return text
    if head is not None and not head.startswith(_PICKLE_OPCODE):
        return f"it is neither an .npz (zip) archive nor an .npy array; its first bytes are {head[:8].hex(' ')}"
    return "it holds pickled Python objects, which augmentgen never loads because they can run code"


def _read_npz(path) -> dict[str, np.ndarray]:
    """The ``images``, ``labels`` and ``classes`` arrays of an ``.npz``; DataError for anything else."""
    bad = f"{path} is not a valid images/labels .npz file"
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        # np.load raises any of these for truncated, empty, pickled or non-npz files.
        raise DataError(f"{bad} ({_npz_reason(exc, read_head(path, 8))}); expected {NPZ_LAYOUT}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a lone .npy array under an .npz name
        raise DataError(f"{bad} (it is a single .npy array of shape {np.shape(archive)}); expected {NPZ_LAYOUT}")
    with archive:
        missing = {"images", "labels"} - set(archive.files)
        if missing:
            raise DataError(f"{bad} (it lacks array(s) {sorted(missing)}; it has {archive.files}); "
                            f"expected {NPZ_LAYOUT}")
        arrays = {}
        for key in ("images", "labels", "classes"):
            if key not in archive.files:
                continue
            try:
                arrays[key] = archive[key]
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
                raise DataError(f"{bad}: its array {key!r} is unreadable ({_npz_reason(exc)}); "
                                f"expected {NPZ_LAYOUT}") from None
    # Whole-number float labels are accepted (LabelledImages checks them); strings are not labels.
    for key, kinds, what in (("labels", "iufb", "integers"), ("classes", "US", "strings")):
        if key in arrays and arrays[key].size and arrays[key].dtype.kind not in kinds:
            raise DataError(f"{bad}: its {key!r} array has dtype {arrays[key].dtype}, not {what}; "
                            f"expected {NPZ_LAYOUT}")
    if "classes" in arrays and arrays["classes"].ndim != 1:  # np.array("ab") is one 0-d string
        raise DataError(f"{bad}: its 'classes' array has shape {arrays['classes'].shape}, not one name per class; "
                        f"expected {NPZ_LAYOUT}")
    return arrays


def from_npz(path: str | os.PathLike, *, channels: int | None = None) -> LabelledImages:
    """An ``.npz`` with ``images``, ``labels`` and optionally ``classes`` (no pickle is loaded)."""
    arrays = _read_npz(path)
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
    images = images_to_uint8_nchw(arrays["images"], what=f"images in {path}", channels=channels)
    return LabelledImages(images, arrays["labels"], classes, source=str(path))


def from_image_folder(root: str | os.PathLike, *, channels: int | None = None) -> LabelledImages:
    """A folder with one sub-folder of images per class (torchvision's ImageFolder layout).

    Classes are numbered in sorted folder order, as torchvision does, unless the folder has a
    ``classes.json`` (what :func:`~augmentgen.mixing.write_samples` writes): then its class order
    and original names (``"T-shirt/top"`` for ``00_T-shirt_top``) are used.
    """
    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets.folder import make_dataset

    root = Path(root)
    if (root / "model.safetensors").is_file():  # a run or save_pretrained folder, e.g. --data runs/aae
        raise DataError(f"{root} holds a saved generator (model.safetensors), not labelled images: pass it as the "
                        "model (--model, from_pretrained) and the images it was trained on as the data")
    # torchvision's find_classes would also take hidden folders (.ipynb_checkpoints) as classes.
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root} has no class sub-folders (expected {root}/<class>/<image>.png)")
    runs = [name for name in folders if (root / name / "model.safetensors").is_file()]
    if runs:  # e.g. --data runs: its sample grids would otherwise be read as one class each
        raise DataError(f"{root} is a folder of saved generators ({root / runs[0]} holds model.safetensors), not "
                        f"of class folders of images: pass one of them as the model (--model {root / runs[0]}, "
                        "from_pretrained) and the images it was trained on as the data")
    index = read_class_index(root, folders)
    folders, classes = index if index is not None else (folders, folders)
    if index is None:
        _warn_if_numbers_sort_as_text(root, folders)
    try:
        samples = make_dataset(str(root), {name: i for i, name in enumerate(folders)},
                               is_valid_file=lambda file: _is_image_file(root, file))
    except FileNotFoundError as exc:  # a class folder without images
        raise DataError(f"{str(exc).strip().rstrip('.')} in {root}; every class folder needs at least one image "
                        f"({', '.join(sorted(IMAGE_SUFFIXES))})") from exc
    arrays = []
    for file, _ in samples:
        try:
            with Image.open(file) as image:
                arrays.append(_image_to_hwc(image, channels))
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"cannot read image {file}: {exc}") from exc
        except DataError as exc:
            raise DataError(f"image {file}: {exc}") from None
    images = _stack_images(arrays, what=f"images in {root}", channels=channels)
    return LabelledImages(images, [label for _, label in samples], classes, source=str(root))


def _is_image_file(root: Path, file: str) -> bool:
    """An image file of a class folder: an image suffix (any case), and neither the file nor a folder
    on its way hidden (macOS writes ``._name.png`` AppleDouble files beside copied images, and
    Jupyter ``.ipynb_checkpoints`` folders; read as images, the first ones fail)."""
    parts = Path(file).relative_to(root).parts
    return Path(file).suffix.lower() in IMAGE_SUFFIXES and not any(p.startswith(".") for p in parts)


def _warn_if_numbers_sort_as_text(root: Path, folders: list[str]) -> None:
    """Class folders named by numbers are numbered in text order, as torchvision does ('10' before
    '2'): say so when that differs from their numeric order, since labels pair with classes by index."""
    if not all(name.isdigit() for name in folders) or folders == sorted(folders, key=int):
        return
    moved = [f"{name!r} is class {i}" for i, name in enumerate(folders) if name != str(i)][:3]
    warnings.warn(f"the class folders of {root} are numbers, numbered in text order as torchvision's ImageFolder "
                  f"does ({', '.join(moved)}): label i is folder {folders!r}[i], not folder 'i'. To keep the "
                  "numbers as labels, zero-pad the folder names (02, 10)", UserWarning, stacklevel=4)


def from_torch_dataset(dataset, *, channels: int | None = None) -> LabelledImages:
    """Any map-style torch ``Dataset`` yielding (image, label) with PIL, numpy or tensor images."""
    arrays, labels = [], []
    for i in range(len(dataset)):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(f"dataset item {i} is a {type(item).__name__}; expected (image, label)")
        try:
            arrays.append(_image_to_hwc(item[0], channels))
        except DataError as exc:
            raise DataError(f"dataset item {i}: {exc}") from None
        labels.append(item[1] if not isinstance(item[1], torch.Tensor) else item[1].item())
    if not arrays:
        raise DataError("the dataset is empty (0 items); pass a dataset with images of every class")
    images = _stack_images(arrays, what="dataset images", channels=channels)
    names = getattr(dataset, "classes", None)
    return LabelledImages(images, np.asarray(labels), names, source=type(dataset).__name__)


def _is_hf_dataset(obj) -> bool:
    return type(obj).__module__.startswith("datasets.") and hasattr(obj, "features")


def from_hf_disk(path, **kwargs) -> LabelledImages:
    """A Hugging Face dataset saved with ``save_to_disk`` (a ``Dataset`` or ``DatasetDict`` folder).

    Only local folders are read: augmentgen never downloads, so a hub id (``hf:user/name``) is
    refused with the ``save_to_disk`` step that makes it local.
    """
    import datasets

    folder = Path(str(path)).expanduser()
    if not folder.is_dir():
        raise DataError(
            f"hf:{path} is not a local folder: augmentgen reads Hugging Face datasets only from disk "
            "and never downloads them. Where the hub is reachable, save it once with "
            f"datasets.load_dataset({str(path)!r}).save_to_disk('some/folder'), then pass "
            "'hf:some/folder' (or load it yourself and pass the Dataset object)")
    try:
        ds = datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"{folder} is a folder but not a dataset written by save_to_disk ({exc}); "
                        "point at the folder save_to_disk wrote, or at one split's folder in it") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise DataError(f"{path} holds splits {list(ds)}; point at one split's folder")
        ds = ds["train"]
    return from_hf_dataset(ds, **kwargs)


def from_parquet_folder(path, **kwargs) -> LabelledImages:
    """A folder of Parquet shards under ``data/`` (what ``augmentgen sample --format parquet`` writes).

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
    for given, role in ((image_column, "image_column"), (label_column, "label_column")):
        if given is not None and given not in columns:
            close = difflib.get_close_matches(given, columns, n=1)
            raise DataError(f"{role}={given!r} is not a column of the dataset; its columns are {columns}"
                            + (f"; did you mean {close[0]!r}?" if close else ""))
    image_column = image_column or next((c for c in ("image", "img") if c in columns), None)
    label_column = label_column or next((c for c in ("label", "labels") if c in columns), None)
    if image_column is None or label_column is None:
        raise DataError(
            f"cannot find the {'image' if image_column is None else 'label'} column among {columns} "
            "(looked for image/img and label/labels); pass image_column=... and label_column=..."
        )
    feature = ds.features[label_column]
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    labels = np.asarray(ds[label_column])
    if labels.dtype.kind == "O" and any(v is None for v in labels.ravel().tolist()):
        missing = sum(v is None for v in labels.ravel().tolist())
        raise DataError(f"{missing} of {len(labels)} rows have no label (None) in the label column {label_column!r}; "
                        f"drop them first: ds = ds.filter(lambda row: row[{label_column!r}] is not None)")
    if labels.dtype.kind not in "iufb":
        raise DataError(f"the label column {label_column!r} holds {feature} values, not class indices; "
                        f"encode it first: ds = ds.class_encode_column({label_column!r})")
    if names is not None and labels.size and (labels == -1).any():  # ClassLabel's mark of an unlabelled row
        raise DataError(f"{int((labels == -1).sum())} of {len(labels)} rows are unlabelled (-1 in the ClassLabel "
                        f"column {label_column!r}, as in a test split without labels); drop them first: "
                        f"ds = ds.filter(lambda row: row[{label_column!r}] != -1)")
    arrays = [_image_to_hwc(img, channels) for img in ds[image_column]]
    if not arrays:
        raise DataError("the Hugging Face dataset is empty")
    images = _stack_images(arrays, what="dataset images", channels=channels)
    return LabelledImages(images, labels, names, source="hf")


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
