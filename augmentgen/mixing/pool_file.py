"""A :class:`~augmentgen.mixing.SyntheticPool`'s bank on disk: one safetensors file, never a pickle.

A slow sampler's bank is work a user would lose (a ``ddpm``'s takes up to an hour on a CPU), so
a file is written atomically and never over another file without ``overwrite=True``, and even
then only over a bank this module wrote: a path mistyped onto a model's ``model.safetensors`` is
refused, not replaced.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_tensors

from .._config import check_flag, check_path
from .._io import atomic_write_bytes, check_creatable
from ..errors import ConfigError, DataError

#: Suffixes of pickled or NumPy files: a bank saved under one would be opened with the wrong reader.
_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".npy", ".npz")

#: What :func:`write_pool_file` writes into its file's metadata, checked by :func:`read_pool_file`.
POOL_FORMAT = "augmentgen-pool/1"


def write_pool_file(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str], *,
                    overwrite: bool = False) -> Path:
    """Write ``tensors`` and ``metadata`` (its ``format`` added) to ``path`` atomically; return the path.

    Raises:
        ConfigError: ``path`` is not a path, is a folder, or a folder above it is a file.
        DataError: ``path`` exists and ``overwrite`` is False, or it is not a bank written here.
    """
    check_flag(overwrite, "overwrite")
    check_path(path, "path", empty="would write a file named after nothing in the current folder",
               example="a file path such as 'bank.safetensors'")
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, but pool.save writes one file; pass a file path like "
                          f"{path / 'bank.safetensors'}")
    if path.suffix.lower() in _PICKLE_SUFFIXES:  # torch.load would be tried on it, and fail
        raise ConfigError(f"{path} names a {path.suffix} file, but pool.save writes safetensors (never a pickle); "
                          f"pass a .safetensors path like {path.with_suffix('.safetensors')}")
    check_creatable(path)
    if path.exists() or path.is_symlink():
        if saved_format(path) != POOL_FORMAT:  # with or without overwrite: never suggest what would be refused
            raise DataError(f"{path} is not a bank that pool.save() wrote, so overwrite=True will not replace "
                            "it; nothing was changed. Choose another file name, or remove it yourself")
        if not overwrite:
            raise DataError(f"{path} already exists; nothing was changed. Choose another file name, or pass "
                            "overwrite=True to replace the bank it holds")
    atomic_write_bytes(path, save_tensors(tensors, metadata={"format": POOL_FORMAT, **metadata}))
    return path


def read_pool_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of the bank :func:`write_pool_file` wrote to ``path``.

    Raises:
        DataError: no file at ``path``, or not a bank written here.
    """
    check_path(path, "path", empty="names the current folder, not a file",
               example="the file pool.save() wrote, such as 'bank.safetensors'")
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"no saved SyntheticPool at {path}: write one with pool.save({str(path)!r})")
    try:
        with safe_open(path, framework="pt") as file:
            metadata = file.metadata() or {}
            tensors = {name: file.get_tensor(name) for name in file.keys()}
    except (OSError, ValueError, SafetensorError) as exc:
        raise DataError(f"{path} is not a safetensors file ({exc}); load only what pool.save() wrote") from None
    if metadata.get("format") != POOL_FORMAT or "images" not in tensors:
        raise DataError(f"{path} is not a SyntheticPool that pool.save() wrote (format "
                        f"{metadata.get('format')!r}, expected {POOL_FORMAT!r})")
    images = tensors["images"]
    if images.dtype != torch.uint8 or images.ndim != 5 or 0 in images.shape:
        raise DataError(f"{path} holds no bank of uint8 images (classes, per class, C, H, W): got dtype "
                        f"{images.dtype}, shape {tuple(images.shape)}")
    return tensors, metadata


def saved_format(path: Path) -> str | None:
    """The ``format`` in the safetensors header of ``path`` (its metadata only, no tensor is read);
    None for a file that is not safetensors or records none."""
    try:
        with safe_open(path, framework="pt") as file:
            return (file.metadata() or {}).get("format")
    except (OSError, ValueError, SafetensorError):
        return None
