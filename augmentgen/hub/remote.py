"""Loading generators from, and publishing them to, the Hugging Face Hub.

``from_pretrained`` takes a local folder, a shipped zoo id (``augmentgen/<name>``) or a hub repo
id. Only ``config.json``, ``model.safetensors``, ``README.md`` and images are ever downloaded:
pickled weights (``.bin``, ``.pt``, ``.pkl``) can run arbitrary code when loaded, so a repo that
only has those is refused with an explanation instead of being fetched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.base import ConditionalGenerator
from .card import render_model_card
from .serialization import CONFIG_NAME, REFUSED_SUFFIXES, WEIGHTS_NAME, load_generator
from .zoo import resolve_shipped

CARD_NAME = "README.md"
# Everything a published generator consists of; nothing else is downloaded or uploaded.
HUB_FILES = [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, "*.png"]


def from_pretrained(
    repo_id_or_dir: str | os.PathLike,
    revision: str | None = None,
    device: str | torch.device | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> ConditionalGenerator:
    """Load a generator of any family from a folder, the shipped zoo, or the Hugging Face Hub.

    Resolution order: an existing local folder; ``augmentgen/<name>`` from the shipped
    ``pretrained/`` zoo when present and no ``revision`` is asked for (works offline); otherwise
    the hub repo ``repo_id_or_dir`` at ``revision``, through the local hub cache. Loading is strict
    (every key, every shape, the config stored with the weights and their sha256 must match).

    Args:
        repo_id_or_dir: a folder written by :func:`save_pretrained` or a hub repo id.
        revision: a branch, tag or commit of the hub repo (``None``: ``main``).
        device: where to put the generator (default: CPU).
        cache_dir: the hub cache folder (default: ``$HF_HUB_CACHE``).
        token: a hub token for private repos (default: the logged-in one).
        local_files_only: only use the cache, never the network (also implied by
            ``HF_HUB_OFFLINE=1``).

    Raises:
        CheckpointError: nothing loadable there (missing, offline and not cached, unknown
            revision, pickle-only repo, corrupted or mismatched files), with the reason.
    """
    path = Path(repo_id_or_dir).expanduser()
    if path.is_dir():
        if revision is not None:
            raise CheckpointError(f"{path} is a local folder; revision={revision!r} only applies to hub repos")
        return load_generator(path, device=device)
    if path.is_file():
        raise CheckpointError(f"{path} is a file; pass the folder that holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    repo_id = str(repo_id_or_dir)
    if path.exists() or repo_id.startswith((".", "/", "~")) or repo_id.count("/") > 1 or os.sep + os.sep in repo_id:
        raise CheckpointError(f"no saved generator folder at {path}")
    if revision is None and (shipped := resolve_shipped(repo_id)) is not None:
        return load_generator(shipped, device=device)
    folder = download(repo_id, revision=revision, cache_dir=cache_dir, token=token,
                      local_files_only=local_files_only)
    return load_generator(folder, device=device)


def download(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> Path:
    """Fetch a generator's files from the hub into the cache and return the snapshot folder.

    A failed first download removes the repo's cache entry it started, so a later call (or an
    offline one) never sees a half-written snapshot.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.file_download import repo_folder_name

    from .. import __version__

    cache = Path(cache_dir or constants.HF_HUB_CACHE).expanduser()
    where = f"{repo_id}" + (f" at revision {revision!r}" if revision else "")
    try:
        storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    except HFValidationError as exc:
        raise CheckpointError(f"{repo_id!r} is neither a local folder nor a valid hub repo id ({exc})") from exc
    fresh = not storage.exists()
    try:
        folder = Path(snapshot_download(
            repo_id, revision=revision, cache_dir=str(cache), token=token,
            local_files_only=local_files_only, allow_patterns=HUB_FILES,
            library_name="augmentgen", library_version=__version__,
        ))
    except BaseException as exc:
        if fresh and storage.exists():  # never leave a half-written entry behind
            shutil.rmtree(storage, ignore_errors=True)
        if isinstance(exc, HFValidationError):
            raise CheckpointError(f"{repo_id!r} is neither a local folder nor a valid hub repo id ({exc})") from exc
        if isinstance(exc, RevisionNotFoundError):
            raise CheckpointError(f"{repo_id} has no revision {revision!r} (branch, tag or commit) on "
                                  f"{constants.ENDPOINT}") from exc
        if isinstance(exc, RepositoryNotFoundError):
            raise CheckpointError(
                f"no model repo {repo_id!r} on {constants.ENDPOINT} (or it is private or gated: log in "
                "with `hf auth login` or pass token=); for a local folder, check the path"
            ) from exc
        if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
            if local_files_only or constants.is_offline_mode():
                raise CheckpointError(
                    f"{where} is not in the hub cache ({cache}) and downloads are off "
                    "(HF_HUB_OFFLINE=1 or local_files_only=True); download it once online, or pass a local folder"
                ) from exc
            raise CheckpointError(
                f"could not reach {constants.ENDPOINT} to download {where}, and it is not in the hub cache "
                f"({cache}); check the connection, or pass a local folder"
            ) from exc
        if isinstance(exc, HfHubHTTPError):
            raise CheckpointError(f"the hub refused to serve {where}: {exc}") from exc
        raise
    if not (folder / WEIGHTS_NAME).is_file():
        refused = _pickled_files(repo_id, revision, token)
        if refused:
            raise CheckpointError(
                f"{where} has {refused} but no {WEIGHTS_NAME}; augmentgen loads safetensors only, "
                "because pickle files can run arbitrary code when loaded. Ask the author to publish "
                "safetensors weights (augmentgen.push_to_hub does)"
            )
        raise CheckpointError(f"{where} has no {WEIGHTS_NAME}; it is not an augmentgen generator repo")
    return folder


def _pickled_files(repo_id: str, revision: str | None, token) -> list[str]:
    """Names of pickle-format weight files in the repo (best effort; [] when it cannot tell)."""
    from huggingface_hub import HfApi

    try:
        files = HfApi(token=token).list_repo_files(repo_id, revision=revision)
    except Exception:  # offline or refused: the caller still reports the missing safetensors
        return []
    return sorted(f for f in files if f.endswith(REFUSED_SUFFIXES))


def push_to_hub(
    generator_or_dir: ConditionalGenerator | str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload augmentgen generator",
    create_pr: bool = False,
    api: Any = None,
    **card: Any,
):
    """Publish a generator (or a folder written by :func:`save_pretrained`) to the hub.

    The repo is created if needed, and exactly the generator's files are uploaded:
    ``config.json``, ``model.safetensors``, the ``README.md`` card and top-level PNGs, never a
    training run's checkpoints. A folder is loaded (strictly) before anything is sent, so a
    corrupted generator is never published.

    Args:
        generator_or_dir: a generator, or a folder holding one.
        repo_id: ``"user/name"`` on the hub.
        private: create the repo private (only used when it does not exist yet).
        token: a hub token (default: the logged-in one).
        revision: the branch to push to (created from ``main`` if missing).
        commit_message: the commit's message.
        create_pr: open a pull request instead of committing to the branch.
        api: a ``huggingface_hub.HfApi``-like object (default: ``HfApi(token=token)``).
        **card: :func:`save_pretrained` card arguments (``dataset``, ``metrics``, ...) used when a
            card is written here (a generator, or a folder without ``README.md``).

    Returns:
        The ``CommitInfo`` of the upload (its ``commit_url``, ``oid``, ...).
    """
    from .serialization import save_pretrained

    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="augmentgen-push-") as tmp:
        staging = Path(tmp)
        if isinstance(generator_or_dir, ConditionalGenerator):
            save_pretrained(generator_or_dir, staging, repo_id=repo_id, **card)
        else:
            source = Path(generator_or_dir)
            generator = load_generator(source)  # refuse to publish anything that would not load
            for pattern in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, "*.png"):
                for f in source.glob(pattern):
                    shutil.copy2(f, staging / f.name)
            if not (staging / CARD_NAME).exists():
                (staging / CARD_NAME).write_text(render_model_card(generator, repo_id=repo_id, **card))
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision is not None:
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
            return api.upload_folder(
                repo_id=repo_id, folder_path=str(staging), repo_type="model", revision=revision,
                commit_message=commit_message, create_pr=create_pr,
            )
        except OSError as exc:  # huggingface_hub's HTTP errors and offline mode are OSErrors
            raise CheckpointError(f"could not push to {repo_id}: {exc}") from exc
