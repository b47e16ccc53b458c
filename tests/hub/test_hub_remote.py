"""from_pretrained through a real huggingface_hub download from a hub on 127.0.0.1, offline
errors, the shipped zoo, and push_to_hub's calls."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import metadata_load

import augmentgen.hub.remote as remote
import augmentgen.hub.zoo as zoo
from augmentgen.errors import CheckpointError, ConfigError
from augmentgen.hub import from_pretrained, list_pretrained, push_to_hub, save_pretrained
from tests.hub.conftest import tiny_generator

REPO = "someone/tiny-cgan"


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _repo_cache(cache_dir: Path, repo_id: str) -> Path:
    return Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))


def test_download_from_local_hub_and_load(local_hub, saved_generator, tmp_path):
    generator, folder = saved_generator
    (folder / "pytorch_model.bin").write_bytes(b"pickle bytes that must never be fetched")
    sha = local_hub.add_folder(REPO, folder)
    cache = tmp_path / "cache"
    loaded = from_pretrained(REPO, cache_dir=cache)
    assert _same_weights(generator, loaded) and loaded.config == generator.config
    snapshot = _repo_cache(cache, REPO) / "snapshots" / sha
    assert sorted(p.name for p in snapshot.iterdir()) == ["README.md", "config.json", "model.safetensors", "samples.png"]
    assert not any("pytorch_model.bin" in r for r in local_hub.requests)  # allow_patterns kept it out
    assert any(r.startswith("GET /api/models/someone/tiny-cgan/revision/main") for r in local_hub.requests)

    # Served from the cache afterwards: offline, no request at all.
    from huggingface_hub import constants
    n = len(local_hub.requests)
    constants.HF_HUB_OFFLINE = True  # restored by the fixture's monkeypatch
    assert _same_weights(generator, from_pretrained(REPO, cache_dir=cache))
    assert len(local_hub.requests) == n


def test_revisions_by_branch_and_commit(local_hub, tmp_path):
    first, second = tiny_generator(seed=1), tiny_generator(seed=2)
    save_pretrained(first, tmp_path / "v1", grid=False)
    save_pretrained(second, tmp_path / "v2", grid=False)
    sha1 = local_hub.add_folder(REPO, tmp_path / "v1", revision="v1")
    local_hub.add_folder(REPO, tmp_path / "v2", revision="main")
    assert _same_weights(second, from_pretrained(REPO))
    assert _same_weights(first, from_pretrained(REPO, revision="v1"))
    assert _same_weights(first, from_pretrained(REPO, revision=sha1))


def test_missing_repo_is_one_clear_error_and_leaves_no_cache_entry(local_hub, tmp_path):
    cache = tmp_path / "cache"
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="no model repo 'someone/missing'"):
        from_pretrained("someone/missing", cache_dir=cache)
    assert time.perf_counter() - start < 5  # no retry loop
    assert not _repo_cache(cache, "someone/missing").exists()


def test_missing_revision_is_one_clear_error_and_leaves_no_cache_entry(local_hub, saved_generator, tmp_path):
    _, folder = saved_generator
    local_hub.add_folder(REPO, folder)
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError, match="has no revision 'v9'"):
        from_pretrained(REPO, revision="v9", cache_dir=cache)
    assert not _repo_cache(cache, REPO).exists()


def _scratch_folders(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if ".partial-" in p.name) if cache.is_dir() else []


def _serve_vanishing_weights(local_hub, folder: Path) -> None:
    """Publish ``folder`` as REPO with its weights listed but missing when fetched: downloads fail midway."""
    local_hub.add_files(REPO, {p.name: p.read_bytes() for p in folder.iterdir()})
    sha, served = local_hub.repos[REPO].revisions["main"]

    class Vanishing(dict):
        def __contains__(self, name):  # listed in the tree, missing when fetched
            return name != "model.safetensors" and super().__contains__(name)

    local_hub.repos[REPO].revisions["main"] = (sha, Vanishing(served))


def test_interrupted_download_leaves_no_half_written_entry(local_hub, saved_generator, tmp_path):
    _, folder = saved_generator
    # The tree lists model.safetensors but the file itself is gone: the download fails midway,
    # after config.json and the refs were already written.
    _serve_vanishing_weights(local_hub, folder)
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError):
        from_pretrained(REPO, cache_dir=cache)
    assert not _repo_cache(cache, REPO).exists() and _scratch_folders(cache) == []


def test_a_failed_download_never_removes_another_processes_files(local_hub, saved_generator, tmp_path, monkeypatch):
    _, folder = saved_generator
    _serve_vanishing_weights(local_hub, folder)
    cache = tmp_path / "cache"
    entry = _repo_cache(cache, REPO)
    real_download = remote.snapshot_download

    def download_beside_another_process(*args, **kwargs):
        # Another process starts filling the same cache entry while this one downloads.
        (entry / "blobs").mkdir(parents=True, exist_ok=True)
        (entry / "blobs" / "theirs").write_bytes(b"another process's download")
        return real_download(*args, **kwargs)

    monkeypatch.setattr(remote, "snapshot_download", download_beside_another_process)
    with pytest.raises(CheckpointError):
        from_pretrained(REPO, cache_dir=cache)
    assert (entry / "blobs" / "theirs").read_bytes() == b"another process's download"
    assert sorted(p.name for p in entry.rglob("*")) == ["blobs", "theirs"]  # nothing of this process's
    assert _scratch_folders(cache) == []


def test_a_download_finishing_second_reuses_the_entry_another_process_completed(
        local_hub, saved_generator, tmp_path, monkeypatch):
    generator, folder = saved_generator
    sha = local_hub.add_folder(REPO, folder)
    cache = tmp_path / "cache"
    real_download = remote.snapshot_download

    def download_while_another_process_finishes(*args, **kwargs):
        if Path(kwargs["cache_dir"]) != cache:  # this process's own download, in its scratch folder
            real_download(*args, **{**kwargs, "cache_dir": str(cache)})  # the other one completes the entry first
        return real_download(*args, **kwargs)

    monkeypatch.setattr(remote, "snapshot_download", download_while_another_process_finishes)
    assert _same_weights(generator, from_pretrained(REPO, cache_dir=cache))
    snapshot = _repo_cache(cache, REPO) / "snapshots" / sha
    assert sorted(p.name for p in snapshot.iterdir()) == ["README.md", "config.json", "model.safetensors", "samples.png"]
    assert _scratch_folders(cache) == []


# A child process whose download dies (os._exit, no cleanup, as kill -9) once it has written a file.
_KILLED_DOWNLOAD = """
import os, sys
from pathlib import Path
import augmentgen.hub.remote as remote
def killed(repo_id, *, cache_dir, **kwargs):
    (Path(cache_dir) / "half-downloaded").write_bytes(b"half")
    os._exit(9)
remote.snapshot_download = killed
remote.download(sys.argv[1], cache_dir=sys.argv[2])
"""


class _Killed(BaseException):
    """A kill simulated in this process (which stays alive): no cleanup runs, as none would."""


def _killed(*args, **kwargs):
    raise _Killed()


def test_a_killed_downloads_scratch_folder_is_removed_by_the_next_download(
        local_hub, saved_generator, tmp_path, monkeypatch):
    generator, folder = saved_generator
    local_hub.add_folder(REPO, folder)
    cache = tmp_path / "cache"
    child = subprocess.run([sys.executable, "-c", _KILLED_DOWNLOAD, REPO, str(cache)], capture_output=True,
                           text=True, env={**os.environ, "HF_HUB_OFFLINE": "0"})
    assert child.returncode == 9, child.stderr
    [dead] = _scratch_folders(cache)  # what the kill left
    with monkeypatch.context() as patch:  # this process, killed in-process: a live writer
        patch.setattr(remote, "snapshot_download", _killed)
        patch.setattr(remote.shutil, "rmtree", lambda *args, **kwargs: None)
        with pytest.raises(_Killed):
            remote.download(REPO, cache_dir=cache)
    [live] = set(_scratch_folders(cache)) - {dead}
    assert _same_weights(generator, from_pretrained(REPO, cache_dir=cache))
    assert _scratch_folders(cache) == [live]  # the dead one's removed; the live one is still being filled


def test_pickle_only_repo_is_refused_with_an_explanation(local_hub, saved_generator, tmp_path):
    _, folder = saved_generator
    local_hub.add_files("someone/old-style", {
        "config.json": (folder / "config.json").read_bytes(),
        "pytorch_model.bin": b"\x80\x04 a pickle",
    })
    with pytest.raises(CheckpointError, match=r"\['pytorch_model.bin'\].*safetensors only.*arbitrary code"):
        from_pretrained("someone/old-style", cache_dir=tmp_path / "cache")
    assert not any("pytorch_model.bin" in r and "/resolve/" in r for r in local_hub.requests)


def test_corrupted_download_is_detected(local_hub, saved_generator, tmp_path):
    _, folder = saved_generator
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    data = bytearray(files["model.safetensors"])
    data[-2] ^= 0x01
    files["model.safetensors"] = bytes(data)
    local_hub.add_files(REPO, files)
    with pytest.raises(CheckpointError, match="corrupted"):
        from_pretrained(REPO, cache_dir=tmp_path / "cache")


def test_offline_with_nothing_cached_is_one_clear_fast_error(offline_hub):
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"not in the hub cache.*HF_HUB_OFFLINE=1"):
        from_pretrained("someone/anything")
    assert time.perf_counter() - start < 2
    assert not _repo_cache(offline_hub, "someone/anything").exists()


def test_local_files_only_with_nothing_cached(local_hub, tmp_path):
    with pytest.raises(CheckpointError, match="local_files_only=True"):
        from_pretrained(REPO, local_files_only=True, cache_dir=tmp_path / "cache")
    assert local_hub.requests == []


def test_invalid_repo_id_is_a_clear_error(offline_hub):
    with pytest.raises(CheckpointError, match=r"^no local folder 'bad id with spaces'.*not a valid hub repo id"):
        from_pretrained("bad id with spaces")
    with pytest.raises(CheckpointError, match=r"^no local folder './not/here' \(nothing at .*not/here\)"):
        from_pretrained("./not/here")


# ---------------------------------------------------------------------------------- the zoo
@pytest.fixture
def fake_zoo(tmp_path, monkeypatch):
    root = tmp_path / "pretrained"
    generator = tiny_generator()
    save_pretrained(generator, root / "tiny-mnist", description="a tiny zoo model", grid=False)
    (root / "not-a-model").mkdir()
    monkeypatch.setenv(zoo.PRETRAINED_DIR_ENV, str(root))
    return generator, root


def test_zoo_id_resolves_to_the_shipped_folder_offline(fake_zoo, offline_hub):
    generator, _ = fake_zoo
    assert _same_weights(generator, from_pretrained("augmentgen/tiny-mnist"))
    assert list_pretrained() == {"augmentgen/tiny-mnist": "a tiny zoo model"}
    # Not shipped: goes to the hub, which offline mode refuses clearly.
    with pytest.raises(CheckpointError, match="not in the hub cache"):
        from_pretrained("augmentgen/not-shipped")


def test_zoo_id_with_a_revision_goes_to_the_hub(fake_zoo, local_hub, tmp_path):
    other = tiny_generator(seed=5)
    save_pretrained(other, tmp_path / "hubcopy", grid=False)
    local_hub.add_folder("augmentgen/tiny-mnist", tmp_path / "hubcopy", revision="v2")
    assert _same_weights(other, from_pretrained("augmentgen/tiny-mnist", revision="v2"))


def _load_error(repo_id, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        from_pretrained(repo_id, **kwargs)
    return str(info.value)


def test_mistyped_zoo_id_is_named_before_the_hub_failure(fake_zoo, offline_hub):
    message = _load_error("augmentgen/tiny-mnst")
    assert message.startswith("no local folder 'augmentgen/tiny-mnst' (nothing at ")
    assert ("and no zoo model named 'augmentgen/tiny-mnst'; known zoo ids: augmentgen/tiny-mnist; "
            "did you mean 'augmentgen/tiny-mnist'? As a hub repo: ") in message
    assert message.index("did you mean") < message.index("not in the hub cache")
    # The zoo name without its namespace, as a user might type it.
    assert "did you mean 'augmentgen/tiny-mnist'?" in _load_error("tiny-mnist")


def test_mistyped_local_folder_suggests_the_folder(fake_zoo, offline_hub, tmp_path, monkeypatch):
    save_pretrained(tiny_generator(), tmp_path / "runs" / "final", grid=False)
    monkeypatch.chdir(tmp_path)
    message = _load_error("runs/finl")  # a valid hub id too: reported after the local hint
    assert message.startswith("no local folder 'runs/finl'") and "did you mean 'runs/final'?" in message
    message = _load_error("./runs/exp/finl")  # a path: no hub attempt at all
    assert message.startswith("no local folder './runs/exp/finl'") and "hub" not in message
    assert _same_weights(tiny_generator(), from_pretrained("runs/final"))


def test_mistyped_id_online_names_the_missing_folder_then_the_missing_repo(local_hub, tmp_path):
    message = _load_error("someone/misssing", cache_dir=tmp_path / "cache")
    assert message.startswith("no local folder 'someone/misssing'")
    assert message.endswith("for a local folder, check the path")
    assert "As a hub repo: no model repo 'someone/misssing'" in message


SHIPPED = Path(__file__).resolve().parents[2] / "pretrained"


@pytest.mark.skipif(not (SHIPPED / "cgan-fashion-mnist" / "model.safetensors").exists(),
                    reason="the zoo has not been trained in this checkout")
def test_shipped_zoo_loads_offline_and_is_documented(offline_hub, monkeypatch):
    monkeypatch.delenv(zoo.PRETRAINED_DIR_ENV, raising=False)
    listed = list_pretrained()
    assert {"augmentgen/cgan-mnist", "augmentgen/cgan-fashion-mnist"} <= set(listed)
    assert all(listed.values())
    for repo_id in listed:
        folder = SHIPPED / repo_id.split("/")[1]
        assert sum(p.stat().st_size for p in folder.iterdir()) <= 10 * 2**20
        meta = metadata_load(folder / "README.md")
        assert meta["library_name"] == "augmentgen"
        assert "class_consistency" in (folder / "README.md").read_text()
    generator = from_pretrained("augmentgen/cgan-fashion-mnist")
    assert generator.num_classes == 10 and generator.class_names[0] == "T-shirt/top"
    images = generator.sample(torch.arange(10), generator=torch.Generator().manual_seed(0))
    assert images.shape == (10, 1, 28, 28) and images.abs().max() <= 1


# ---------------------------------------------------------------------------------- push
class FakeApi:
    """Records HfApi calls; keeps a copy of the uploaded folder's files."""

    def __init__(self):
        self.calls = []
        self.uploaded = {}

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        self.uploaded = {p.name: p.read_bytes() for p in Path(kwargs["folder_path"]).iterdir()}
        return "commit-info"


def test_push_generator_uploads_a_loadable_save_pretrained_folder(tmp_path):
    generator, api = tiny_generator(), FakeApi()
    assert push_to_hub(generator, "me/tiny", api=api, private=True, dataset="mnist",
                       metrics={"class_consistency": 0.9}) == "commit-info"
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][2] == {"private": True, "exist_ok": True, "repo_type": "model"}
    upload = api.calls[1][2]
    assert upload["repo_type"] == "model" and upload["revision"] is None and upload["create_pr"] is False
    assert sorted(api.uploaded) == ["README.md", "config.json", "model.safetensors", "samples.png"]
    for name, data in api.uploaded.items():
        (tmp_path / name).write_bytes(data)
    assert _same_weights(generator, from_pretrained(tmp_path))
    card = api.uploaded["README.md"].decode()
    assert 'from_pretrained("me/tiny")' in card and "| class_consistency | 0.9 |" in card


@pytest.mark.parametrize("what", ["generator", "folder"])
def test_push_refuses_overwrite_before_anything_is_sent(saved_generator, what):
    generator, folder = saved_generator
    api = FakeApi()
    with pytest.raises(ConfigError, match="push_to_hub takes no overwrite.*new commit"):
        push_to_hub(generator if what == "generator" else folder, "me/tiny", api=api, overwrite=True)
    assert api.calls == []


def test_push_folder_uploads_only_the_generator_files(saved_generator):
    _, folder = saved_generator
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "optimizer.bin").write_bytes(b"accelerate pickle")
    (folder / "training.json").write_text(json.dumps({"steps": 1}))
    api = FakeApi()
    push_to_hub(folder, "me/tiny", api=api, revision="dev", commit_message="v2")
    assert [c[0] for c in api.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert api.calls[1][2]["branch"] == "dev"
    assert api.calls[2][2]["revision"] == "dev" and api.calls[2][2]["commit_message"] == "v2"
    assert sorted(api.uploaded) == ["README.md", "config.json", "model.safetensors", "samples.png"]


def test_push_refuses_a_corrupted_folder(saved_generator):
    _, folder = saved_generator
    (folder / "model.safetensors").write_bytes(b"")
    api = FakeApi()
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        push_to_hub(folder, "me/tiny", api=api)
    assert api.calls == []


def test_push_offline_is_a_clear_error(offline_hub):
    with pytest.raises(CheckpointError, match="could not push to me/tiny"):
        push_to_hub(tiny_generator(), "me/tiny", token="hf_dummy")


@pytest.mark.parametrize("name", [5, None, "", "  "])
def test_a_name_that_is_no_folder_or_id_is_refused_before_anything_is_read(name, tmp_path, monkeypatch):
    # "" read as a path is the current folder: it was read as the model (or refused with a message about it).
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="from_pretrained's model (must be a model folder or a hub id|is an empty path)"):
        from_pretrained(name)


class UnreachableApi(FakeApi):
    """An HfApi whose first request fails as huggingface_hub's does without a network."""

    def __init__(self, error):
        super().__init__()
        self.error = error

    def create_repo(self, repo_id, **kwargs):
        super().create_repo(repo_id, **kwargs)
        raise self.error


def _transport_error(name: str) -> Exception:
    """The HTTP client's own error (not an OSError): what create_repo raises with no route to the hub."""
    client = next((m for m in ("httpx2", "httpx") if importlib.util.find_spec(m)), None)
    if client is None:
        pytest.skip("huggingface_hub uses no httpx client here")
    return getattr(importlib.import_module(client), name)("[Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize("name", ["ConnectError", "ConnectTimeout"])
def test_push_without_a_network_is_one_clear_error(name):
    api = UnreachableApi(_transport_error(name))
    with pytest.raises(CheckpointError, match=rf"could not push to me/tiny: .*\({name}\); check the connection"):
        push_to_hub(tiny_generator(), "me/tiny", api=api)
    assert [c[0] for c in api.calls] == ["create_repo"]


@pytest.mark.parametrize("repo_id,problem", [("my generator!", "is not a valid hub repo id"),
                                             ("a/b/c", "is not a valid hub repo id"),
                                             ("", "push_to_hub takes the hub repo to push to"),
                                             (None, "push_to_hub takes the hub repo to push to")])
def test_push_to_an_invalid_repo_id_is_refused_before_anything_is_sent(repo_id, problem):
    api = FakeApi()
    with pytest.raises(ConfigError, match=problem + ".*'your-name/my-generator'"):
        push_to_hub(tiny_generator(), repo_id, api=api)
    assert api.calls == []
