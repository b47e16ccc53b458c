"""write_samples: grid, imagefolder, npz and hf outputs, readable by augmentgen.load_data."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import augmentgen.mixing.export as export
from augmentgen.data import load_data
from augmentgen.errors import ConfigError, DataError
from augmentgen.mixing import write_samples
from augmentgen.models import build_config, build_generator


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    return build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8,
                                        class_names=["T-shirt/top", "b", "c"]))


def test_npz_round_trip(gen, tmp_path):
    path = write_samples(gen, 2, tmp_path / "s.npz", "npz", seed=0)
    data = load_data(str(path))
    assert data.class_counts == [2, 2, 2] and data.class_names == ["T-shirt/top", "b", "c"]
    expected = gen.sample(torch.arange(3).repeat_interleave(2), generator=torch.Generator().manual_seed(0))
    assert torch.equal(data.images, expected.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8))


def test_imagefolder_and_grid(gen, tmp_path):
    out = write_samples(gen, 2, tmp_path / "folder", "imagefolder")
    assert sorted(p.name for p in out.iterdir()) == ["00_T-shirt_top", "01_b", "02_c", "classes.json"]
    assert load_data(str(out)).class_counts == [2, 2, 2]
    grid = write_samples(gen, 2, tmp_path / "grid.png", "grid")
    from PIL import Image
    with Image.open(grid) as im:
        assert im.size == (2 * 30 + 2, 3 * 30 + 2)


@pytest.fixture(scope="module")
def unsorted_gen():
    """Class names whose alphabetical order is not the class order, two of which sanitise alike."""
    torch.manual_seed(1)
    return build_generator(build_config("cgan", num_classes=4, generator_width=8, latent_dim=8,
                                        class_names=["T-shirt/top", "Bag", "a/b", "a_b"]))


def test_imagefolder_round_trip_keeps_class_order_and_names(unsorted_gen, tmp_path):
    folder = write_samples(unsorted_gen, 2, tmp_path / "folder", "imagefolder", seed=3)
    npz = write_samples(unsorted_gen, 2, tmp_path / "same.npz", "npz", seed=3)
    data, reference = load_data(folder), load_data(npz)
    assert data.class_names == reference.class_names == ["T-shirt/top", "Bag", "a/b", "a_b"]
    assert torch.equal(data.labels, reference.labels) and torch.equal(data.images, reference.images)
    # Readers that ignore classes.json number the sorted folders: the index prefix makes that
    # the generator's class order too, and "a/b" / "a_b" stay two classes.
    from torchvision.datasets import ImageFolder

    assert ImageFolder(str(folder)).class_to_idx == {"00_T-shirt_top": 0, "01_Bag": 1, "02_a_b": 2, "03_a_b": 3}
    datasets = pytest.importorskip("datasets")
    hf = datasets.load_dataset("imagefolder", data_dir=str(folder), split="train")
    assert hf.features["label"].names == ["00_T-shirt_top", "01_Bag", "02_a_b", "03_a_b"]


def test_dot_class_names_stay_inside_the_folder(tmp_path):
    torch.manual_seed(0)
    g = build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8,
                                     class_names=["..", ".hidden", "x"]))
    out = write_samples(g, 1, tmp_path / "out" / "folder", "imagefolder")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["folder"]
    assert load_data(out).class_names == ["..", ".hidden", "x"]


def _no_partial_left(parent):
    return not [p.name for p in parent.iterdir() if ".partial-" in p.name]


def test_export_into_a_non_empty_folder_is_refused_before_sampling(gen, tmp_path, monkeypatch):
    out = tmp_path / "synth"
    out.mkdir()
    (out / "old.png").write_bytes(b"the user's earlier file")
    monkeypatch.setattr(type(gen), "sample", lambda *a, **k: pytest.fail("sampled before refusing"))
    for format in ("imagefolder", "hf"):
        with pytest.raises(DataError, match=rf"{out} already exists and is not empty.*overwrite=True"):
            write_samples(gen, 2, out, format)
    assert [p.name for p in out.iterdir()] == ["old.png"] and _no_partial_left(tmp_path)
    # overwrite=True replaces only an earlier export, never a folder augmentgen did not write.
    with pytest.raises(DataError, match="not an earlier imagefolder export"):
        write_samples(gen, 2, out, "imagefolder", overwrite=True)
    assert (out / "old.png").read_bytes() == b"the user's earlier file"


def test_second_export_is_refused_and_overwrite_replaces_the_first_whole(gen, tmp_path):
    out = write_samples(gen, 3, tmp_path / "synth", "imagefolder", seed=0)
    with pytest.raises(DataError, match="already exists"):
        write_samples(gen, 2, out, "imagefolder", seed=1)
    assert load_data(out).class_counts == [3, 3, 3]
    write_samples(gen, 2, out, "imagefolder", seed=1, overwrite=True)
    assert load_data(out).class_counts == [2, 2, 2]  # nothing left over from the first export
    assert torch.equal(load_data(out).images, load_data(write_samples(gen, 2, tmp_path / "s.npz", "npz",
                                                                     seed=1)).images)
    assert _no_partial_left(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_data(write_samples(gen, 1, empty, "imagefolder")).class_counts == [1, 1, 1]


def test_npz_and_hf_are_not_replaced_silently(gen, tmp_path):
    first = write_samples(gen, 2, tmp_path / "s", "npz", seed=0)
    assert first == tmp_path / "s.npz"
    with pytest.raises(DataError, match=r"s.npz already exists.*overwrite=True"):
        write_samples(gen, 2, tmp_path / "s.npz", "npz", seed=1)
    before = load_data(first).images
    write_samples(gen, 2, first, "npz", seed=1, overwrite=True)
    assert not torch.equal(load_data(first).images, before)
    pytest.importorskip("datasets")
    hf = write_samples(gen, 1, tmp_path / "hf", "hf")
    with pytest.raises(DataError, match="already exists"):
        write_samples(gen, 1, hf, "hf")
    assert load_data(f"hf:{write_samples(gen, 2, hf, 'hf', overwrite=True)}").class_counts == [2, 2, 2]
    assert _no_partial_left(tmp_path)


def test_a_crash_mid_export_leaves_no_partial_folder(gen, tmp_path, monkeypatch):
    from PIL import Image

    saved = []

    def failing_save(self, path, *args, **kwargs):
        saved.append(path)
        if len(saved) == 4:
            raise OSError("disk full")
        return original(self, path, *args, **kwargs)

    original = Image.Image.save
    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_samples(gen, 2, tmp_path / "synth", "imagefolder")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its hidden partial sibling


@pytest.mark.parametrize("kwargs, match", [
    ({"per_class": 0}, "per_class must be a positive int"),
    ({"per_class": -5}, "per_class must be a positive int"),
    ({"per_class": 2.5}, "per_class must be a positive int"),
    ({"per_class": 2, "batch_size": 0}, "batch_size must be a positive int"),
])
def test_counts_are_checked_before_anything_is_written(gen, tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        write_samples(gen, out=tmp_path / "x", format="imagefolder", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_hf(gen, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = write_samples(gen, 2, tmp_path / "hf", "hf")
    ds = datasets.load_from_disk(str(out))
    assert ds["label"] == [0, 0, 1, 1, 2, 2] and ds.features["label"].names[0] == "T-shirt/top"


def test_bad_format(gen, tmp_path):
    with pytest.raises(ConfigError, match="format"):
        write_samples(gen, 2, tmp_path / "x", "zip")


def test_temperature_passes_through_write_samples(gen, tmp_path):
    rng = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    to_uint8 = lambda x: x.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)  # noqa: E731
    labels = torch.arange(3).repeat_interleave(2)
    for temperature in (0.0, [2.0, 0.0, 0.5]):
        data = load_data(str(write_samples(gen, 2, tmp_path / "t.npz", "npz", temperature=temperature,
                                           overwrite=True)))
        assert torch.equal(data.images, to_uint8(gen.sample(labels, generator=rng(), temperature=temperature)))
    assert torch.equal(data.images[2], data.images[3])  # class 1 at temperature 0
    assert write_samples(gen, 2, tmp_path / "g.png", "grid", temperature=0.5).stat().st_size > 0
    with pytest.raises(ConfigError, match="temperature"):
        write_samples(gen, 2, tmp_path / "bad.npz", "npz", temperature=[1.0, 1.0])
    assert not (tmp_path / "bad.npz").exists()


def _refuse_sampling(gen, monkeypatch):
    monkeypatch.setattr(type(gen), "sample", lambda *a, **k: pytest.fail("sampled before refusing"))


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_an_existing_grid_is_replaced_only_with_overwrite_and_only_a_png(gen, tmp_path, monkeypatch):
    grid = write_samples(gen, 2, tmp_path / "grid.png", "grid", seed=0)
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"the user's notes, under a .png name")
    before = grid.read_bytes()
    with monkeypatch.context() as patch:
        _refuse_sampling(gen, patch)
        with pytest.raises(DataError, match=r"grid.png already exists.*overwrite=True"):
            write_samples(gen, 2, grid, "grid", seed=1)
        with pytest.raises(DataError, match="notes.png is not a PNG file.*remove it yourself"):
            write_samples(gen, 2, notes, "grid", overwrite=True)
    assert grid.read_bytes() == before and notes.read_bytes() == b"the user's notes, under a .png name"
    assert write_samples(gen, 2, grid, "grid", seed=1, overwrite=True) == grid
    assert grid.read_bytes() != before and sorted(p.name for p in tmp_path.iterdir()) == ["grid.png", "notes.png"]


def test_a_grid_onto_a_folder_is_a_config_error_before_sampling(gen, tmp_path, monkeypatch):
    from augmentgen._images import save_sample_grid

    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("kept")
    _refuse_sampling(gen, monkeypatch)
    for folder in (full, tmp_path / "empty"):
        folder.mkdir(exist_ok=True)
        for overwrite in (False, True):
            with pytest.raises(ConfigError, match=r"is a folder, but format='grid' writes one PNG file.*"
                                                  r"grid.png.*format='imagefolder'"):
                write_samples(gen, 2, folder, "grid", overwrite=overwrite)
    assert _files(tmp_path) == {"full/mine.txt": b"kept"} and (tmp_path / "empty").is_dir()
    with pytest.raises(ConfigError, match="is a folder, but a sample grid is one PNG file"):
        save_sample_grid(torch.zeros(1, 1, 4, 4), 1, full)


def test_a_grid_under_another_image_suffix_is_refused_before_sampling(gen, tmp_path, monkeypatch):
    # A PNG written as samples.jpg would be misnamed; the refusal names the .png path to pass instead.
    _refuse_sampling(gen, monkeypatch)
    for name in ("samples.jpg", "samples.JPEG", "samples.webp"):
        with pytest.raises(ConfigError, match=rf"names a \w+ image, but format='grid' writes a PNG.*"
                                              rf"{tmp_path / 'samples.png'}"):
            write_samples(gen, 2, tmp_path / name, "grid")
    assert _files(tmp_path) == {}


def _users_image_folder(root):
    """An ImageFolder a user made by hand, with a classes.json of their own (no augmentgen format)."""
    from PIL import Image

    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        Image.new("L", (4, 4), 7).save(root / name / "0.png")
    (root / "classes.json").write_text('{"classes": ["cat", "dog"], "folders": ["cat", "dog"]}')


def test_overwrite_replaces_only_an_export_augmentgen_wrote(gen, tmp_path, monkeypatch):
    import numpy as np

    datasets = pytest.importorskip("datasets")
    from augmentgen.mixing import synthesize

    text, same_features = tmp_path / "text", tmp_path / "same_features"
    datasets.Dataset.from_dict({"text": ["a user's", "own rows"]}).save_to_disk(str(text))
    synthesize(gen, 1).save_to_disk(str(same_features))  # exactly the export's columns, but saved by the user
    _users_image_folder(tmp_path / "photos")
    np.savez(tmp_path / "mine.npz", images=np.zeros((2, 1, 4, 4), np.uint8), labels=np.array([0, 1]),
             classes=np.array(["a", "b"]))  # the layout load_data documents
    before = _files(tmp_path)
    _refuse_sampling(gen, monkeypatch)
    for out, format in ((text, "hf"), (same_features, "hf"), (tmp_path / "photos", "imagefolder"),
                        (tmp_path / "mine.npz", "npz")):
        with pytest.raises(DataError, match=rf"not an earlier {format} export .*augmentgen did not write it, so "
                                            "overwrite=True will not delete it; choose another"):
            write_samples(gen, 1, out, format, overwrite=True)
    assert _files(tmp_path) == before and _no_partial_left(tmp_path)


def test_overwrite_keeps_an_export_that_holds_files_it_did_not_write(gen, tmp_path, monkeypatch):
    # Once, `augmentgen train --out synth` into an export, then `sample --overwrite --out synth`,
    # deleted the trained model with the export: only the mark was checked.
    pytest.importorskip("datasets")
    folder = write_samples(gen, 1, tmp_path / "synth", "imagefolder")
    hf = write_samples(gen, 1, tmp_path / "hf", "hf")
    (folder / "model.safetensors").write_bytes(b"a model trained into the export")
    (hf / "notes.txt").write_text("mine")
    before = _files(tmp_path)
    _refuse_sampling(gen, monkeypatch)
    for out, format, added in ((folder, "imagefolder", "['model.safetensors']"), (hf, "hf", "['notes.txt']")):
        with pytest.raises(DataError, match=rf"is an earlier {format} export, but it also holds {re.escape(added)}, "
                                            "which the export did not write .*overwrite=True will not replace"):
            write_samples(gen, 1, out, format, overwrite=True)
    assert _files(tmp_path) == before and _no_partial_left(tmp_path)


def test_an_out_under_a_file_is_refused_before_sampling(gen, tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("kept")
    _refuse_sampling(gen, monkeypatch)
    for format in ("grid", "imagefolder", "npz", "hf"):
        for out in (tmp_path / "notes.txt" / "out", tmp_path / "notes.txt" / "a" / "b"):
            with pytest.raises(ConfigError, match=r"cannot be created: .*notes.txt is a file, not a folder; "
                                                  "choose another path"):
                write_samples(gen, 1, out, format, overwrite=True)
    assert _files(tmp_path) == {"notes.txt": b"kept"}


def test_a_failed_final_rename_puts_the_earlier_export_back(gen, tmp_path, monkeypatch):
    """overwrite=True moves the earlier export aside before renaming the new one into place; if that
    rename fails, the earlier export is restored, not deleted with the scratch folder."""
    import augmentgen.mixing.export as export

    out = write_samples(gen, 3, tmp_path / "synth", "imagefolder", seed=0)
    before = _files(out)
    real_replace = export.os.replace

    def failing_replace(src, dst):
        if ".partial-" in str(src) and Path(src).name == out.name:  # the new export, not the old one back
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(export.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        write_samples(gen, 2, out, "imagefolder", seed=1, overwrite=True)
    assert _files(out) == before and _no_partial_left(tmp_path)


# ---------------------------------------------------------------- killed exports and their scratch folders
# A child process that exports to argv[1] and dies (os._exit, no cleanup, as kill -9) at argv[2]:
# "writing" the images, or "renaming" the new export into place after overwrite=True moved the earlier
# one aside.
_KILLED_EXPORT = """
import os, sys
from pathlib import Path
import torch
from augmentgen.mixing import export, write_samples
from augmentgen.models import build_config, build_generator
out, when = Path(sys.argv[1]), sys.argv[2]
torch.manual_seed(0)
gen = build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8,
                                   class_names=["T-shirt/top", "b", "c"]))
if when == "writing":
    def killed(root, *args):
        root.mkdir()
        (root / "half.png").write_bytes(b"half")
        os._exit(9)
    export._write_image_folder = killed
else:
    replace = os.replace
    def killed_replace(src, dst):
        if Path(dst) == out.absolute():
            os._exit(9)
        replace(src, dst)
    export.os.replace = killed_replace
write_samples(gen, 2, out, "imagefolder", seed=1, overwrite=True)
"""


def _kill_export(out, when):
    child = subprocess.run([sys.executable, "-c", _KILLED_EXPORT, str(out), when], capture_output=True, text=True)
    assert child.returncode == 9, child.stderr


def _scratch_folders(parent):
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name)


def test_a_killed_exports_scratch_folder_is_removed_by_the_next_export_to_that_target(gen, tmp_path):
    out = tmp_path / "synth"
    _kill_export(out, "writing")
    [left] = _scratch_folders(tmp_path)
    assert left.startswith(".synth.partial-")  # what a kill leaves: a hidden folder beside the target
    # The same dead writer's scratch folders of other targets, one whose name starts like this one's.
    for other in (".synth2.partial-abcd1234", ".synth.partial-x.partial-abcd1234"):
        shutil.copytree(tmp_path / left, tmp_path / other)
    write_samples(gen, 2, out, "imagefolder")
    assert load_data(out).class_counts == [2, 2, 2]
    assert _scratch_folders(tmp_path) == [".synth.partial-x.partial-abcd1234", ".synth2.partial-abcd1234"]


def test_an_overwrite_killed_between_its_renames_gets_the_earlier_export_back(gen, tmp_path):
    out = write_samples(gen, 3, tmp_path / "synth", "imagefolder", seed=0)
    before = _files(out)
    _kill_export(out, "renaming")
    assert not out.exists()  # the kill point: the earlier export is only in the scratch folder
    with pytest.warns(UserWarning, match=r"put back the earlier export .*synth"), \
            pytest.raises(DataError, match="already exists"):
        write_samples(gen, 2, out, "imagefolder", seed=1)
    assert _files(out) == before and _no_partial_left(tmp_path)


class _Killed(BaseException):
    """A kill simulated in this process (which stays alive): no cleanup runs, as none would."""


def _killed_in_process(gen, out, monkeypatch):
    def killed(root, *args):
        root.mkdir()
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(export, "_write_image_folder", killed)
        patch.setattr(export.shutil, "rmtree", lambda *args, **kwargs: None)
        with pytest.raises(_Killed):
            write_samples(gen, 1, out, "imagefolder")


def test_scratch_folders_of_live_or_unknown_writers_are_left_with_a_warning(gen, tmp_path, monkeypatch):
    out = tmp_path / "synth"
    with monkeypatch.context() as patch:
        patch.setattr(socket, "gethostname", lambda: "another-host")
        _killed_in_process(gen, out, monkeypatch)  # a writer on another host: its pid means nothing here
    [other_host] = _scratch_folders(tmp_path)
    with pytest.warns(UserWarning, match="cannot be checked from here"):
        _killed_in_process(gen, out, monkeypatch)  # this process: a live writer, still filling it
    [live] = set(_scratch_folders(tmp_path)) - {other_host}
    (tmp_path / ".synth.partial-old12345").mkdir()  # an older version's, with no mark of its writer
    with pytest.warns(UserWarning) as warned:
        write_samples(gen, 1, out, "imagefolder")
    [message] = [str(w.message) for w in warned]
    assert other_host in message and ".synth.partial-old12345" in message and live not in message
    assert "may still be writing them. If none is, remove them yourself" in message
    assert _scratch_folders(tmp_path) == sorted([other_host, live, ".synth.partial-old12345"])


def test_a_grid_is_not_written_over_a_file_that_appeared_while_sampling(gen, tmp_path, monkeypatch):
    out = tmp_path / "grid.png"
    sample = type(gen).sample

    def sample_while_a_user_writes(self, *args, **kwargs):
        out.write_bytes(b"the user's file, saved meanwhile")
        return sample(self, *args, **kwargs)

    monkeypatch.setattr(type(gen), "sample", sample_while_a_user_writes)
    with pytest.raises(DataError, match="grid.png already exists"):
        write_samples(gen, 1, out, "grid")
    assert out.read_bytes() == b"the user's file, saved meanwhile"


def test_an_export_named_like_the_scratch_folders_own_entries_can_be_overwritten(gen, tmp_path):
    for name in ("replaced", "earlier", "new", "owner.json"):
        out = write_samples(gen, 1, tmp_path / name, "imagefolder", seed=0)
        write_samples(gen, 2, out, "imagefolder", seed=1, overwrite=True)
        assert load_data(out).class_counts == [2, 2, 2]
    assert _no_partial_left(tmp_path)


def test_a_failed_final_rename_leaves_an_empty_target_folder_in_place(gen, tmp_path, monkeypatch):
    out = tmp_path / "synth"
    out.mkdir()
    real_replace = export.os.replace

    def failing_replace(src, dst):
        if Path(dst) == out:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(export.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        write_samples(gen, 1, out, "imagefolder")
    assert out.is_dir() and not any(out.iterdir()) and _no_partial_left(tmp_path)


# ---------------------------------------------------------------- progress
@pytest.fixture(scope="module")
def tiny_ddpm():
    torch.manual_seed(0)
    return build_generator(build_config("ddpm", num_classes=3, unet_width=8, channel_multipliers=[1, 2],
                                        sampling_steps=3))


@pytest.mark.parametrize("family", ["cgan", "ddpm"])
def test_write_samples_shows_a_bar_of_the_images_sampled(family, gen, tiny_ddpm, tmp_path, bars, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    model = gen if family == "cgan" else tiny_ddpm
    shown = load_data(str(write_samples(model, 2, tmp_path / "shown.npz", "npz", progress=True)))
    assert [(bar.desc, bar.total, bar.n, bar.disable) for bar in bars] == [("samples", 6, 6, False)]
    if family == "ddpm":
        assert bars[0].updates == [2, 2, 2]  # one batch of 6, a third at each of its 3 steps
    hidden = load_data(str(write_samples(model, 2, tmp_path / "hidden.npz", "npz", progress=False)))
    assert bars[1].disable and bars[1].updates == []
    assert torch.equal(shown.images, hidden.images)  # the bar changes no sample


def test_write_samples_shows_no_bar_off_the_main_process_or_off_a_terminal(gen, tmp_path, bars, monkeypatch):
    monkeypatch.setenv("RANK", "1")  # another rank of a launched job: never a bar
    write_samples(gen, 1, tmp_path / "rank1", "imagefolder", progress=True)
    monkeypatch.delenv("RANK")
    write_samples(gen, 1, tmp_path / "default.png", "grid")  # progress=None: stderr is not a terminal here
    assert [bar.disable for bar in bars] == [True, True] and all(bar.updates == [] for bar in bars)
    with pytest.raises(ConfigError, match="progress must be True, False or None"):
        write_samples(gen, 1, tmp_path / "bad.npz", "npz", progress="yes")


def test_the_hf_format_shows_synthesize_s_bar(gen, tmp_path, request, monkeypatch):
    pytest.importorskip("datasets")
    bars = request.getfixturevalue("bars")  # after datasets' import, which subclasses tqdm
    monkeypatch.delenv("RANK", raising=False)
    write_samples(gen, 2, tmp_path / "hf", "hf", progress=True, batch_size=4)
    assert [(bar.desc, bar.total, bar.updates) for bar in bars] == [("synthesize", 6, [4, 2])]


@pytest.mark.parametrize("kwargs, match", [
    (dict(generator="runs/cgan"), r"write_samples takes a generator first .*call it as write_samples\(generator, "),
    (dict(out=None), r"out must be a path \(a str or os\.PathLike\), got None; pass the path to write the samples at"),
    (dict(out=""), "out is an empty path, which would write into the current folder; pass the path to write"),
    (dict(seed="x"), "seed must be an int"),
])
def test_write_samples_refuses_wrong_arguments_before_any_file(gen, tmp_path, kwargs, match):
    args = dict(generator=gen, per_class=2, out=tmp_path / "x", format="imagefolder")
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        write_samples(args.pop("generator"), args.pop("per_class"), args.pop("out"), args.pop("format"), **args)
    assert list(tmp_path.iterdir()) == []
