"""The pretrained zoo: generators trained by this project, shipped in the ``pretrained/`` folder.

``augmentgen/<name>`` resolves to ``pretrained/<name>/`` when that folder is present, so the zoo
loads offline from a source checkout. The folder is found through ``$AUGMENTGEN_PRETRAINED_DIR``,
else beside the package (``<checkout>/pretrained``, which an editable install sees).
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import metadata_load

from .card import CARD_NAME
from .serialization import CONFIG_NAME, WEIGHTS_NAME

ZOO_NAMESPACE = "augmentgen"
PRETRAINED_DIR_ENV = "AUGMENTGEN_PRETRAINED_DIR"


def pretrained_dir() -> Path:
    """The folder holding the shipped zoo (it may not exist, e.g. in a wheel install)."""
    env = os.environ.get(PRETRAINED_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "pretrained"


def _is_model_folder(path: Path) -> bool:
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def zoo_ids() -> list[str]:
    """The ids of the shipped zoo models, sorted, without reading their cards (for suggestions)."""
    root = pretrained_dir()
    if not root.is_dir():
        return []
    return sorted(f"{ZOO_NAMESPACE}/{p.name}" for p in root.iterdir() if p.is_dir() and _is_model_folder(p))


def list_pretrained() -> dict[str, str]:
    """The shipped pretrained generators, ``{"augmentgen/<name>": one-line description}``.

    Each id loads with :func:`augmentgen.from_pretrained`. Empty when no zoo folder is present.
    """
    root = pretrained_dir()
    if not root.is_dir():
        return {}
    out = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and _is_model_folder(p)):
        description = ""
        if (folder / CARD_NAME).is_file():
            try:
                description = str((metadata_load(folder / CARD_NAME) or {}).get("description") or "")
            except Exception:  # a hand-edited card with broken YAML still lists the model
                description = ""
        out[f"{ZOO_NAMESPACE}/{folder.name}"] = description or "(no description in its model card)"
    return out


def resolve_shipped(repo_id: str) -> Path | None:
    """``pretrained/<name>`` for ``augmentgen/<name>`` when that folder is shipped, else None."""
    namespace, _, name = repo_id.partition("/")
    if namespace != ZOO_NAMESPACE or not name or "/" in name or name in (".", ".."):
        return None
    folder = pretrained_dir() / name
    return folder if _is_model_folder(folder) else None
