"""save_pretrained into a folder that already holds something: another model is refused unless
``overwrite``, the same weights are saved again, and bad arguments change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from augmentgen.errors import CheckpointError, ConfigError
from augmentgen.hub import WEIGHTS_NAME, from_pretrained, load_generator, save_generator, save_pretrained
from augmentgen.models import build_config
from augmentgen.training import Trainer, TrainingConfig
from tests.conftest import TINY_GAN, make_images
from tests.hub.conftest import tiny_generator

OLD_COMMAND = "augmentgen train --family cgan --steps 7 --seed 1"


def trained_folder(folder, generator):
    """``folder`` as the trainer leaves it: weights with its metadata, config, grid and training.json."""
    save_generator(generator, folder, metadata={"steps": "7"})
    (folder / "samples.png").write_bytes(b"the old model's grid")
    (folder / "training.json").write_text(json.dumps({"steps": 7, "command": OLD_COMMAND}))
    return folder


def snapshot(folder):
    """Every file under ``folder`` and its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def same_weights(a, b):
    own, other = a.state_dict(), b.state_dict()
    return own.keys() == other.keys() and all(torch.equal(own[k], other[k]) for k in own)


def weights_metadata(folder):
    with safe_open(str(folder / WEIGHTS_NAME), framework="pt") as f:
        return f.metadata()


def test_another_model_is_refused_and_nothing_changes(tmp_path):
    first, second = tiny_generator(seed=0), tiny_generator(seed=1)
    folder = trained_folder(tmp_path / "run", first)
    before = snapshot(folder)
    with pytest.raises(CheckpointError, match=r"already holds another model.*nothing was changed.*overwrite=True"):
        save_pretrained(second, folder)
    with pytest.raises(CheckpointError, match="already holds another model"):
        second.save_pretrained(folder, grid=False)  # the generator method refuses the same way
    assert snapshot(folder) == before
    assert same_weights(load_generator(folder), first)


def test_unreadable_weights_are_refused_without_overwrite(tmp_path):
    (tmp_path / WEIGHTS_NAME).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="weights that cannot be read.*overwrite=True"):
        save_pretrained(tiny_generator(), tmp_path, grid=False)
    assert (tmp_path / WEIGHTS_NAME).read_bytes() == b"not safetensors"
    save_pretrained(tiny_generator(), tmp_path, grid=False, overwrite=True)
    assert same_weights(from_pretrained(tmp_path), tiny_generator())


def test_the_same_weights_are_saved_again_with_what_the_trainer_recorded(tmp_path):
    generator = tiny_generator()
    folder = trained_folder(tmp_path / "run", generator)
    save_pretrained(load_generator(folder), folder, dataset="synthetic")  # a loaded copy: the same weights
    generator.save_pretrained(folder)  # and the method, as after training
    assert same_weights(from_pretrained(folder), generator)
    assert weights_metadata(folder)["steps"] == "7"
    card = (folder / "README.md").read_text()
    assert OLD_COMMAND in card and "Steps: 7" in card
    assert json.loads((folder / "training.json").read_text())["command"] == OLD_COMMAND


def test_overwrite_replaces_the_model_and_drops_its_training_summary(tmp_path):
    first, second = tiny_generator(seed=0), tiny_generator(seed=1)
    folder = trained_folder(tmp_path / "run", first)
    save_pretrained(second, folder, overwrite=True)
    assert same_weights(from_pretrained(folder), second)
    assert not (folder / "training.json").exists()
    assert "steps" not in weights_metadata(folder)  # the trainer's record was of the replaced weights
    card = (folder / "README.md").read_text()
    assert OLD_COMMAND not in card and "Not recorded." in card
    assert (folder / "samples.png").read_bytes() != b"the old model's grid"
    second.save_pretrained(folder)  # saving it again later does not bring the old record back either
    assert OLD_COMMAND not in (folder / "README.md").read_text()


def test_overwrite_quotes_a_training_summary_passed_for_the_new_model(tmp_path):
    folder = trained_folder(tmp_path / "run", tiny_generator(seed=0))
    tiny_generator(seed=1).save_pretrained(folder, grid=False, overwrite=True,
                                           training={"steps": 3, "command": "augmentgen train --steps 3"})
    card = (folder / "README.md").read_text()
    assert "augmentgen train --steps 3" in card and OLD_COMMAND not in card


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("grid", ["missing", "not-png", "folder", "number"])
def test_a_bad_grid_leaves_the_folder_untouched(tmp_path, grid, overwrite):
    folder = trained_folder(tmp_path / "run", tiny_generator(seed=0))
    (tmp_path / "grid.jpg").write_bytes(b"jpeg")
    (tmp_path / "grids.png").mkdir()
    bad = {"missing": tmp_path / "nope.png", "not-png": tmp_path / "grid.jpg", "folder": tmp_path / "grids.png",
           "number": 5}[grid]
    error = CheckpointError if grid in ("missing", "folder") else ConfigError
    before = snapshot(folder)
    with pytest.raises(error, match="grid"):  # another model, so overwrite=True would replace it
        save_pretrained(tiny_generator(seed=1), folder, grid=bad, overwrite=overwrite)
    assert snapshot(folder) == before


def test_a_grid_file_is_copied_beside_the_card(tmp_path):
    (tmp_path / "grid.png").write_bytes(b"png bytes")
    save_pretrained(tiny_generator(), tmp_path / "out", grid=tmp_path / "grid.png")
    assert (tmp_path / "out" / "grid.png").read_bytes() == b"png bytes"
    assert "![samples](grid.png)" in (tmp_path / "out" / "README.md").read_text()


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / "model").write_text("notes")
    with pytest.raises(ConfigError, match="is an existing file, not a folder"):
        save_pretrained(tiny_generator(), tmp_path / "model")
    assert (tmp_path / "model").read_text() == "notes"


def test_a_folder_where_a_file_goes_is_refused_before_writing(tmp_path):
    folder = tmp_path / "out"
    (folder / "samples.png").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"folders named \['samples.png'\]"):
        save_pretrained(tiny_generator(), folder)
    assert sorted(p.name for p in folder.iterdir()) == ["samples.png"]


def test_save_pretrained_into_the_trainers_run_folder(tmp_path):
    data = make_images()
    config = build_config("cgan", num_classes=data.num_classes, class_names=data.class_names, **TINY_GAN)
    training = TrainingConfig(steps=2, batch_size=8, checkpoint_every=0, sample_every=0, grid_per_class=2, seed=0)
    out = tmp_path / "run"
    generator = Trainer(config, training, out, command="augmentgen train --steps 2").fit(data)
    generator.save_pretrained(out, dataset="synthetic")
    assert weights_metadata(out)["steps"] == "2"
    assert "augmentgen train --steps 2" in (out / "README.md").read_text()
    assert same_weights(from_pretrained(out), generator)


@pytest.mark.parametrize("files", [{"README.md": b"# my project\nnotes I wrote\n"},
                                   {"config.json": b'{"another_tool": true}'},
                                   {"samples.png": b"my own picture"}])
def test_files_augmentgen_did_not_write_are_refused_and_kept(tmp_path, files):
    # A user's README, another tool's config or their own picture in the folder was written over.
    folder = tmp_path / "project"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with pytest.raises(CheckpointError, match=rf"holds \['{next(iter(files))}'\], which augmentgen did not write.*"
                                              "nothing was changed.*overwrite=True"):
        save_pretrained(tiny_generator(), folder)
    assert snapshot(folder) == {Path(name): data for name, data in files.items()}
    save_pretrained(tiny_generator(), folder, overwrite=True)  # asked for: replaced
    assert same_weights(from_pretrained(folder), tiny_generator())


def test_a_users_readme_beside_the_same_weights_is_kept(tmp_path):
    # The trainer's run folder writes no card: a README the user added there is theirs.
    generator = tiny_generator()
    folder = trained_folder(tmp_path / "run", generator)
    (folder / "README.md").write_text("# notes on this run\n")
    with pytest.raises(CheckpointError, match=r"holds \['README.md'\], which augmentgen did not write"):
        save_pretrained(generator, folder)
    assert (folder / "README.md").read_text() == "# notes on this run\n"


@pytest.mark.parametrize("directory,problem", [("", "folder is an empty path, which would save into the current folder"),
                                               (None, r"folder must be a folder path \(a str or os\.PathLike\), got None")])
def test_an_empty_or_missing_folder_name_is_refused(tmp_path, monkeypatch, directory, problem):
    # "" is the current folder: the card was written over the README.md of wherever the user stood.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("# the user's repository\n")
    with pytest.raises(ConfigError, match=problem + ".*save_pretrained\\(generator, 'my-generator'\\)"):
        save_pretrained(tiny_generator(), directory)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]


@pytest.mark.parametrize("arguments,error,problem", [
    ({"generator": "runs/cgan"}, ConfigError, "save_pretrained takes a generator first"),
    ({"tags": "mnist"}, ConfigError, r"tags must be a list of strings, got the string 'mnist'; pass tags=\['mnist'\]"),
    ({"metrics": [0.9]}, ConfigError, r"metrics must be a \{name: value\} dict, got the list"),
])
def test_bad_card_arguments_are_refused_before_writing(tmp_path, arguments, error, problem):
    arguments = {"generator": tiny_generator(), "directory": tmp_path / "out", **arguments}
    with pytest.raises(error, match=problem):
        save_pretrained(**arguments)
    assert not (tmp_path / "out").exists()
