"""Loading generators from, and publishing them to, the Hugging Face Hub.

``from_pretrained`` takes a local folder, a shipped zoo id (``augmentgen/<name>``) or a hub repo
id. Only ``config.json``, ``model.safetensors``, ``README.md`` and images are ever downloaded:
pickled weights (``.bin``, ``.pt``, ``.pkl``) can run arbitrary code when loaded, so a repo that
only has those is refused with an explanation instead of being fetched.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi, constants, snapshot_download
from huggingface_hub import errors as hf_errors
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import validate_repo_id

from .._config import check_path
from .._io import fsync_dir, fsync_tree, make_owned_dir, stale_owned_dirs
from .._version import __version__
from ..errors import CheckpointError, ConfigError
from ..models.base import ConditionalGenerator
from .card import CARD_NAME, render_model_card
from .serialization import CONFIG_NAME, REFUSED_SUFFIXES, WEIGHTS_NAME, load_generator, save_pretrained
from .zoo import resolve_shipped, zoo_ids

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
            revision, pickle-only repo, corrupted or mismatched files), with the reason. When
            the name is neither a local folder nor a zoo model, the message says that first,
            with the known zoo ids and close matches ("did you mean ...?"), then what the hub
            said; a name written as a path (``./runs/x``, ``/abs/x``) never reaches the hub.
    """
    _check_name(repo_id_or_dir)
    path = Path(repo_id_or_dir).expanduser()
    if path.is_dir():
        if revision is not None:
            raise CheckpointError(f"{path} is a local folder; revision={revision!r} only applies to hub repos")
        return load_generator(path, device=device)
    if path.is_file():
        raise CheckpointError(f"{path} is a file; pass the folder that holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    repo_id = str(repo_id_or_dir)
    if path.exists() or repo_id.startswith((".", "/", "~")) or repo_id.count("/") > 1 or os.sep + os.sep in repo_id:
        # Written as a path, so never a hub id: no network attempt, and no network error to report.
        raise CheckpointError(_nothing_named(repo_id, path, zoo=False) + "; pass the folder that "
                              "save_pretrained or `augmentgen train --out` wrote")
    if revision is None and (shipped := resolve_shipped(repo_id)) is not None:
        return load_generator(shipped, device=device)
    try:
        folder = download(repo_id, revision=revision, cache_dir=cache_dir, token=token,
                          local_files_only=local_files_only)
    except _RepoUnavailable as exc:
        # The likelier mistake first (a typo in a folder or zoo name), then what the hub said.
        hint = _nothing_named(repo_id, path)
        raise CheckpointError(f"{hint}{' ' if hint.endswith('?') else '. '}As a hub repo: {exc}") from exc
    return load_generator(folder, device=device)


class _RepoUnavailable(CheckpointError):
    """The hub has no such repo, or it could not be asked: the id may be a mistyped folder or zoo id."""


def _model_folders_beside(path: Path) -> dict[str, str]:
    """Saved generator folders next to where ``path`` points, as the user would type them."""
    parent = path.parent if str(path.parent) not in ("", ".") else Path(".")
    try:
        entries = sorted(parent.iterdir())[:500] if parent.is_dir() else []
    except OSError:
        return {}
    typed_parent = "" if str(path.parent) in ("", ".") else str(path.parent) + "/"
    return {typed_parent + p.name: typed_parent + p.name for p in entries
            if not p.name.startswith(".") and (p / CONFIG_NAME).is_file()}


def _nothing_named(repo_id: str, path: Path, *, zoo: bool = True) -> str:
    """'no local folder X and no zoo model named X; known zoo ids: ...; did you mean ...?'

    With ``zoo=False`` (``repo_id`` is written as a path) the zoo is only named in suggestions.
    """
    ids = zoo_ids()
    candidates = {**{i: i for i in ids}, **{i.split("/", 1)[1]: i for i in ids}, **_model_folders_beside(path)}
    close = difflib.get_close_matches(repo_id, list(candidates), n=3, cutoff=0.6)
    suggestions = list(dict.fromkeys(candidates[c] for c in close))
    guess = f"; did you mean {' or '.join(map(repr, suggestions))}?" if suggestions else ""
    if not zoo:
        return f"no local folder {repo_id!r} (nothing at {path.absolute()}){guess}"
    known = f"known zoo ids: {', '.join(ids)}" if ids else "no pretrained zoo is installed here"
    return (f"no local folder {repo_id!r} (nothing at {path.absolute()}) and no zoo model named "
            f"{repo_id!r}; {known}{guess}")


def download(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> Path:
    """Fetch a generator's files from the hub into the cache and return the snapshot folder.

    Only :data:`HUB_FILES` are fetched. A repo not yet in the cache is downloaded into a scratch
    folder of this process inside the cache and its entry renamed into place once complete, so a
    later call (or an offline one) never sees a half-written entry, and a failed download removes
    only its own files, never those of another process filling the same entry; when another
    process completes the entry first, that entry is used. Scratch folders of killed downloads
    are removed by the next download of the same repo.

    Raises:
        CheckpointError: an invalid id, a missing repo or revision, offline and not cached, or a
            repo without safetensors weights, each with what to do about it.
    """
    try:
        validate_repo_id(repo_id)
    except hf_errors.HFValidationError as exc:
        raise _RepoUnavailable(f"{repo_id!r} is not a valid hub repo id ({exc})") from exc
    cache = Path(cache_dir or constants.HF_HUB_CACHE).expanduser()
    entry = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    for stale in stale_owned_dirs(cache, _scratch_prefix(entry)):
        shutil.rmtree(stale, ignore_errors=True)  # a killed download's (_download_new_entry)
    fetch = functools.partial(
        snapshot_download, repo_id, revision=revision, token=token, local_files_only=local_files_only,
        allow_patterns=HUB_FILES, library_name="augmentgen", library_version=__version__)
    try:
        if entry.exists() or local_files_only or constants.is_offline_mode():
            # Into the shared entry, which huggingface_hub's own file locks guard; a failure
            # removes nothing there (nothing is downloaded offline).
            folder = Path(fetch(cache_dir=str(cache)))
        else:
            folder = _download_new_entry(fetch, cache, entry)
    except Exception as exc:
        error = _download_error(exc, repo_id, revision, cache, local_files_only)
        if error is None:
            raise
        raise error from exc
    if not (folder / WEIGHTS_NAME).is_file():
        raise _no_safetensors_error(repo_id, revision, token)
    return folder


def _check_name(repo_id_or_dir: Any) -> None:
    """A folder path or a hub id, not empty: ``Path("")`` is the current folder, which would be read
    as the model (or refused with a message about the wrong folder)."""
    check_path(repo_id_or_dir, "from_pretrained's model", kind="a model folder or a hub id",
               empty="would read the current folder as the model",
               example="the model's folder (what `augmentgen train --out` or save_pretrained wrote) or a hub id "
                       "such as 'augmentgen/cgan-mnist'")


def _scratch_prefix(entry: Path) -> str:
    """The name start of the scratch folders of ``entry``'s downloads: hidden, and not a cache entry."""
    return f".{entry.name}.partial-"


def _download_new_entry(fetch: Callable[..., str], cache: Path, entry: Path) -> Path:
    """``fetch`` into a scratch folder of this process in ``cache``, then rename its ``entry`` into
    place; the scratch folder goes in any case, and only it: what this process wrote."""
    cache.mkdir(parents=True, exist_ok=True)
    scratch = make_owned_dir(cache, _scratch_prefix(entry))
    try:
        folder = Path(fetch(cache_dir=str(scratch)))
        staged = scratch / entry.name
        fsync_tree(staged)  # on disk before the rename makes it the cache entry
        try:
            # Fails on an entry that another process filled meanwhile; the snapshots' links are
            # relative, so they move with the entry.
            os.rename(staged, entry)
        except OSError:
            if not entry.is_dir():
                raise
            # Another process completed the entry first: use it (downloading only what it lacks).
            return Path(fetch(cache_dir=str(cache)))
        fsync_dir(cache)
        return entry / folder.relative_to(staged)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _where(repo_id: str, revision: str | None) -> str:
    return repo_id + (f" at revision {revision!r}" if revision else "")


def _download_error(exc: BaseException, repo_id: str, revision: str | None, cache: Path,
                    local_files_only: bool) -> CheckpointError | None:
    """The CheckpointError saying why ``snapshot_download`` failed, or None to let ``exc`` through."""
    where, endpoint = _where(repo_id, revision), constants.ENDPOINT
    # Subclasses before their bases: both not-found errors are HfHubHTTPErrors.
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return CheckpointError(f"{repo_id} has no revision {revision!r} (branch, tag or commit) on {endpoint}")
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        return _RepoUnavailable(
            f"no model repo {repo_id!r} on {endpoint} (or it is private or gated: log in "
            "with `hf auth login` or pass token=); for a local folder, check the path")
    if isinstance(exc, (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled)):
        if local_files_only or constants.is_offline_mode():
            return _RepoUnavailable(
                f"{where} is not in the hub cache ({cache}) and downloads are off "
                "(HF_HUB_OFFLINE=1 or local_files_only=True); download it once online, or pass a local folder")
        return _RepoUnavailable(
            f"could not reach {endpoint} to download {where}, and it is not in the hub cache "
            f"({cache}); check the connection, or pass a local folder")
    if isinstance(exc, hf_errors.HfHubHTTPError):
        return CheckpointError(f"the hub refused to serve {where}: {exc}")
    return None


def _no_safetensors_error(repo_id: str, revision: str | None, token: str | bool | None) -> CheckpointError:
    """The error for a repo without ``model.safetensors``, naming its pickle files if it has any."""
    where = _where(repo_id, revision)
    try:
        files = HfApi(token=token).list_repo_files(repo_id, revision=revision)
    except Exception:  # offline or refused: still report the missing safetensors
        files = []
    pickles = sorted(f for f in files if f.endswith(REFUSED_SUFFIXES))
    if pickles:
        return CheckpointError(
            f"{where} has {pickles} but no {WEIGHTS_NAME}; augmentgen loads safetensors only, "
            "because pickle files can run arbitrary code when loaded. Ask the author to publish "
            "safetensors weights (augmentgen.push_to_hub does)")
    return CheckpointError(f"{where} has no {WEIGHTS_NAME}; it is not an augmentgen generator repo")


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
            card is written here (a generator, or a folder without ``README.md``). Not
            ``overwrite``: a push writes no local folder (it stages its files in a new temporary
            one), and the repo's history keeps whatever the new commit replaces.

    Returns:
        The ``CommitInfo`` of the upload (its ``commit_url``, ``oid``, ...).
    """
    if "overwrite" in card:  # save_pretrained's flag: without this, a TypeError for a folder, ignored for a generator
        raise ConfigError("push_to_hub takes no overwrite: it changes no local folder, and on the hub each push is "
                          "a new commit whose history keeps what it replaces; drop the argument")
    _check_repo_id(repo_id)
    api = api if api is not None else HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="augmentgen-push-") as tmp:
        staging = Path(tmp)
        _stage(generator_or_dir, staging, repo_id, card)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision is not None:
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
            return api.upload_folder(
                repo_id=repo_id, folder_path=str(staging), repo_type="model", revision=revision,
                commit_message=commit_message, create_pr=create_pr,
            )
        except _unreachable_errors() as exc:
            raise CheckpointError(f"could not push to {repo_id}: {exc} ({type(exc).__name__}); check the "
                                  "connection and your token (`hf auth login`), then push again") from exc


def _check_repo_id(repo_id: Any) -> None:
    """A hub repo id push_to_hub can create, checked before the generator is staged: huggingface_hub's
    own check raises a ValueError from deep inside the upload."""
    if not isinstance(repo_id, str) or not repo_id.strip():
        raise ConfigError(f"push_to_hub takes the hub repo to push to, like 'your-name/my-generator', got "
                          f"{repo_id!r:.80}")
    try:
        validate_repo_id(repo_id)
    except hf_errors.HFValidationError as exc:
        raise ConfigError(f"{repo_id!r} is not a valid hub repo id ({exc}); pass one like "
                          "'your-name/my-generator'") from None


def _unreachable_errors() -> tuple[type[BaseException], ...]:
    """What huggingface_hub raises when the hub cannot be reached or refuses: OSErrors (its HTTP errors,
    offline mode, a missing token) and its HTTP client's transport errors (no network, a timeout), which
    in the httpx-based clients are not OSErrors."""
    errors: list[type[BaseException]] = [OSError]
    for client in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(client).TransportError)
        except (ImportError, AttributeError):  # the client this huggingface_hub does not use
            pass
    return tuple(errors)


def _stage(generator_or_dir: ConditionalGenerator | str | os.PathLike, staging: Path, repo_id: str,
           card: dict[str, Any]) -> None:
    """Put exactly the files to upload in ``staging``: :data:`HUB_FILES`, a card always among them."""
    if isinstance(generator_or_dir, ConditionalGenerator):
        save_pretrained(generator_or_dir, staging, repo_id=repo_id, **card)
        return
    source = Path(generator_or_dir)
    generator = load_generator(source)  # refuse to publish anything that would not load
    for pattern in HUB_FILES:
        for f in source.glob(pattern):
            shutil.copy2(f, staging / f.name)
    if not (staging / CARD_NAME).exists():
        (staging / CARD_NAME).write_text(render_model_card(generator, repo_id=repo_id, **card), encoding="utf-8")
