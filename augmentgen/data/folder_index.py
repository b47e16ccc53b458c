"""The class index of an image folder: which sub-folder is which class, in which order.

An ImageFolder has no class order of its own: torchvision's ``ImageFolder`` and
``datasets.load_dataset("imagefolder")`` number the sub-folders in sorted order, and a folder
name cannot hold every class name (``"T-shirt/top"``). So the folders augmentgen writes are named
``<index>_<name>`` with a zero-padded index (``00_T-shirt_top``): sorting them gives the class
order in every reader. ``classes.json`` beside them keeps the original names, which
:func:`~augmentgen.data.load_data` restores.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from ..errors import DataError

CLASSES_FILE = "classes.json"
INDEX_FORMAT = "augmentgen-imagefolder"  # classes.json's "format": marks a folder augmentgen wrote


def safe_folder_name(name: str) -> str:
    """A file-system-safe form of a class name (``"T-shirt/top"`` -> ``"T-shirt_top"``)."""
    # Trailing dots and spaces are dropped because Windows strips them, merging two names.
    return re.sub(r"[^\w.\- ]", "_", name).strip().rstrip(". ")[:100] or "_"


def class_folder_names(class_names: Sequence[str]) -> list[str]:
    """One sub-folder name per class, ``<index>_<safe name>``, that sorts in class order.

    The index prefix keeps two names that sanitise alike (``"a/b"``, ``"a_b"``) apart and makes
    ``sorted()`` (what torchvision and ``datasets`` use) give the class order.
    """
    width = max(2, len(str(len(class_names) - 1)))
    return [f"{i:0{width}d}_{safe_folder_name(str(name))}" for i, name in enumerate(class_names)]


def write_class_index(root: Path, class_names: Sequence[str], folders: Sequence[str]) -> None:
    """Write ``root/classes.json``: the class names and their folders, in class order."""
    index = {"format": INDEX_FORMAT, "classes": [str(n) for n in class_names], "folders": list(folders)}
    (root / CLASSES_FILE).write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def read_class_index(root: Path, subfolders: Sequence[str]) -> tuple[list[str], list[str]] | None:
    """(folders, class names) in class order from ``root/classes.json``, or None without one.

    Raises:
        DataError: the file is unreadable, or its folders are not exactly ``subfolders``
            (the folder was edited after it was written, so the index could mislabel images).
    """
    path = root / CLASSES_FILE
    if not path.is_file():
        return None
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        folders, names = list(index["folders"]), [str(n) for n in index["classes"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a valid class index ({exc}); it should hold "
                        '{"classes": [names...], "folders": [folders...]}: fix it, or delete it to '
                        "number the sub-folders in sorted order") from None
    if len(folders) != len(names) or len(set(folders)) != len(folders):
        raise DataError(f"{path} lists {len(names)} classes for {len(folders)} folders (or a folder twice); "
                        "fix it, or delete it to number the sub-folders in sorted order")
    missing, extra = sorted(set(folders) - set(subfolders)), sorted(set(subfolders) - set(folders))
    if missing or extra:
        found = "; ".join(part for part in (missing and f"listed folder(s) {missing} are missing",
                                            extra and f"folder(s) {extra} are not listed") if part)
        raise DataError(
            f"{root} does not match its {CLASSES_FILE} ({found}): the folder was changed after it was "
            f"written. Restore it, or delete {path} to number the sub-folders in sorted order")
    return folders, names
