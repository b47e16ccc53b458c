"""Saving and loading generators: round trips of every family, strictness, corruption, model cards."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from huggingface_hub import metadata_load
from safetensors import safe_open
from safetensors.torch import save_file

from augmentgen.errors import CheckpointError
from augmentgen.hub import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    atomic_write_bytes,
    from_pretrained,
    load_generator,
    save_generator,
    save_pretrained,
)
from augmentgen.hub.serialization import tensors_sha256
from augmentgen.models import available_models
from tests.hub.conftest import tiny_generator


def _rewrite_weights(folder, mutate, *, fix_sha=True):
    """Rewrite model.safetensors with ``mutate(tensors)`` applied, keeping (or fixing) its metadata."""
    path = folder / WEIGHTS_NAME
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    mutate(tensors)
    if fix_sha:
        meta["augmentgen_sha256"] = tensors_sha256(tensors)
    save_file(tensors, str(path), metadata=meta)


@pytest.mark.parametrize("name", sorted(available_models()))
def test_round_trip_every_family(name, tmp_path):
    generator = tiny_generator(name)
    save_pretrained(generator, tmp_path, grid=False)
    loaded = from_pretrained(tmp_path)
    assert type(loaded) is type(generator)
    assert loaded.config == generator.config and loaded.family == generator.family
    own, back = generator.state_dict(), loaded.state_dict()
    assert own.keys() == back.keys()
    assert all(torch.equal(own[k], back[k]) for k in own)
    labels = torch.arange(generator.num_classes).repeat(2)
    a = generator.sample(labels, generator=torch.Generator().manual_seed(3))
    b = loaded.sample(labels, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_save_generator_keeps_the_trainer_signature(tmp_path):
    generator = tiny_generator()
    path = save_generator(generator, tmp_path, metadata={"steps": "7"})
    assert path == tmp_path / WEIGHTS_NAME
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["steps"] == "7"
    assert load_generator(tmp_path, device="cpu").config == generator.config


def test_files_are_written_with_normal_permissions(tmp_path):
    atomic_write_bytes(tmp_path / "a.txt", b"x")
    mode = stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary left behind


def test_missing_keys_are_an_error(saved_generator):
    _, folder = saved_generator
    removed = sorted(tiny_generator().state_dict())[0]
    _rewrite_weights(folder, lambda t: t.pop(removed))
    with pytest.raises(CheckpointError, match=f"missing keys.*{removed}"):
        from_pretrained(folder)


def test_unexpected_keys_are_an_error(saved_generator):
    _, folder = saved_generator
    _rewrite_weights(folder, lambda t: t.update({"intruder.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match="unexpected keys.*intruder.weight"):
        from_pretrained(folder)


def test_shape_mismatch_is_an_error(saved_generator):
    _, folder = saved_generator
    key = next(k for k, v in tiny_generator().state_dict().items() if v.ndim >= 2)

    def grow(t):
        t[key] = torch.zeros(t[key].shape[0] + 1, *t[key].shape[1:])

    _rewrite_weights(folder, grow)
    with pytest.raises(CheckpointError, match=f"shape mismatches.*{key}"):
        from_pretrained(folder)


def test_config_that_does_not_match_the_weights_is_an_error(saved_generator):
    _, folder = saved_generator
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["latent_dim"] = 32
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not match the config stored with the weights"):
        from_pretrained(folder)


def test_flipped_bit_in_tensor_data_is_detected(saved_generator):
    _, folder = saved_generator
    data = bytearray((folder / WEIGHTS_NAME).read_bytes())
    data[-3] ^= 0x10  # the end of the file is tensor data, not the header
    (folder / WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted: its tensors do not match their stored sha256"):
        from_pretrained(folder)


@pytest.mark.parametrize("cut", ["empty", "half", "header"])
def test_truncated_or_empty_weights_are_an_error(saved_generator, cut):
    _, folder = saved_generator
    data = (folder / WEIGHTS_NAME).read_bytes()
    data = {"empty": b"", "half": data[: len(data) // 2], "header": data[:5]}[cut]
    (folder / WEIGHTS_NAME).write_bytes(data)
    with pytest.raises(CheckpointError, match="not a readable safetensors file.*truncated or corrupted"):
        from_pretrained(folder)


def test_corrupted_config_json_is_an_error(saved_generator):
    _, folder = saved_generator
    (folder / CONFIG_NAME).write_text('{"family": "cgan", ')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        from_pretrained(folder)


def test_a_config_json_that_is_no_object_is_an_error(saved_generator):
    # a JSON list failed in the family registry: "TypeError: cannot convert dictionary update sequence"
    _, folder = saved_generator
    (folder / CONFIG_NAME).write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=r"config.json holds a JSON list, not the object of fields a saved "
                                              r"generator's config is; it was not written by augmentgen"):
        from_pretrained(folder)


def test_a_folder_that_is_no_saved_generator_says_so(saved_generator, tmp_path):
    # an empty folder (or one of other files) was "<folder>/model.safetensors is missing", without the fix
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(CheckpointError, match=rf"^{tmp_path} is not a saved generator: it has neither config.json "
                                              r"nor model.safetensors; pass the folder that save_pretrained or "
                                              r"`augmentgen train --out` wrote$"):
        from_pretrained(tmp_path)
    _, folder = saved_generator
    (folder / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match=r"model.safetensors is missing; a saved generator folder holds "
                                              r"config.json and model.safetensors"):
        from_pretrained(folder)


def test_pickle_weights_are_refused_without_being_opened(saved_generator, monkeypatch):
    _, folder = saved_generator
    (folder / WEIGHTS_NAME).unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04 not really a pickle")

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load must never be called on a downloaded model")

    monkeypatch.setattr(torch, "load", forbidden)
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin.*safetensors only.*arbitrary code"):
        from_pretrained(folder)


def test_missing_folder_and_revision_on_a_folder(saved_generator, tmp_path):
    _, folder = saved_generator
    with pytest.raises(CheckpointError, match="no local folder"):
        from_pretrained(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="is a file; pass the folder"):
        from_pretrained(folder / WEIGHTS_NAME)
    with pytest.raises(CheckpointError, match="only applies to hub repos"):
        from_pretrained(folder, revision="v1")


def test_device_argument_places_the_generator(saved_generator):
    _, folder = saved_generator
    assert from_pretrained(folder, device="cpu").device == torch.device("cpu")


def test_model_card_states_the_facts(tmp_path):
    generator = tiny_generator()
    (tmp_path / "training.json").write_text(json.dumps({
        "steps": 123, "train_seconds": 61.5, "command": "augmentgen train --model cgan --steps 123",
        "training_config": {"batch_size": 32, "seed": 4}}))
    save_pretrained(generator, tmp_path, dataset="mnist", description="tiny digits",
                    metrics={"class_consistency": 0.8125, "fid": 12.5, "_samples_per_class": 100})
    card = (tmp_path / "README.md").read_text()
    meta = metadata_load(tmp_path / "README.md")
    assert meta["library_name"] == "augmentgen"
    assert {"augmentgen", "generative-data-augmentation", "cgan"} <= set(meta["tags"])
    assert meta["license"] == "apache-2.0" and meta["datasets"] == ["ylecun/mnist"]
    assert meta["description"] == "tiny digits"
    for fact in ("Family: `cgan`", "(1, 28, 28)", "`c0`, `c1`, `c2`", "Steps: 123 at batch size 32",
                 "62 s (1.0 min)", "augmentgen train --model cgan --steps 123", "| class_consistency | 0.8125 |",
                 "| fid | 12.5 |", "samples per class = 100", "![samples](samples.png)", "Seed: 4"):
        assert fact in card, fact
    assert (tmp_path / "samples.png").stat().st_size > 100


def test_model_card_explains_every_zoo_metric(tmp_path):
    # The zoo's cards carry these figures; a bare number in a card is a defect.
    metrics = {"class_consistency": 0.9, "classifier_real_test_accuracy": 0.95, "fid": 3.0,
               "fid_real_floor": 0.1, "cas": 0.8}
    save_pretrained(tiny_generator(), tmp_path, grid=False, metrics=metrics)
    rows = [line for line in (tmp_path / "README.md").read_text().splitlines()
            if line.startswith("| ") and line.split("|")[1].strip() in metrics]
    assert len(rows) == len(metrics)
    assert all(line.split("|")[3].strip() for line in rows), rows


def test_model_card_never_invents_figures(tmp_path):
    save_pretrained(tiny_generator(), tmp_path, grid=False)
    card = (tmp_path / "README.md").read_text()
    assert "Not measured yet." in card and "Not recorded." in card
    assert "![samples]" not in card and not (tmp_path / "samples.png").exists()


def test_missing_grid_file_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        save_pretrained(tiny_generator(), tmp_path, grid=tmp_path / "nope.png")
