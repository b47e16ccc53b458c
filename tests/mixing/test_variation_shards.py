"""A bank of variations of the training set as Parquet shards (``write_variation_shards``,
``augmentgen sample --variations-of DATA --format parquet``).

Everything runs in this process: two ranks are two threads, each with its own accelerate-like
state and one barrier between them (tests/mixing/test_shards.py runs the free-sample writer, the
same writer, under a real ``accelerate launch`` and a real ``kill -9``); a killed run is one
whose source raises in the middle of a shard.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import augmentgen
from augmentgen.cli import main
from augmentgen.errors import ConfigError, DataError
from augmentgen.mixing import (
    RealRowSource,
    SyntheticPool,
    VariationSource,
    completed_shards,
    write_shards,
    write_variation_shards,
)
from augmentgen.mixing import shards as shards_module
from augmentgen.models import build_config, build_generator
from tests.mixing.test_sources import TINY_ENCODER, shifted_squares
from tests.mixing.test_variation_bank import imbalanced
from tests.transforms.test_synthetic_dataset import _example

datasets = pytest.importorskip("datasets")

NAMES = ["ant", "bee", "cat"]
# 8 / 3 / 5 images: 2 x 8 = 16 rows per class, in shards of 5, 5, 5, 1: 12 shards, 48 rows.
KW = {"per_image": 2, "seed": 0, "shard_size": 5, "batch_size": 4, "progress": False}


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return build_generator(build_config("vae", num_classes=3, class_names=NAMES, **TINY_ENCODER)).eval()


@pytest.fixture(scope="module")
def real() -> tuple[torch.Tensor, torch.Tensor]:
    return imbalanced(shifted_squares(n_per_class=8))


def vary(generator) -> VariationSource:
    return VariationSource(generator, "vary", strength=0.5)


@pytest.fixture(scope="module")
def reference(vae, real, tmp_path_factory) -> Path:
    """One process, start to end."""
    out = tmp_path_factory.mktemp("reference") / "bank"
    write_variation_shards(vary(vae), *real, out, **KW)
    return out


def load(out: Path, cache: Path):
    return datasets.load_dataset("parquet", data_dir=str(out), split="train", cache_dir=str(cache))


def rows(out: Path, cache: Path) -> list[tuple[int, int, bytes]]:
    """Every row as (label, source_index, PNG bytes), sorted: the content up to row order."""
    ds = load(out, cache).cast_column("image", datasets.Image(decode=False))
    return sorted(zip(ds["label"], ds["source_index"], (image["bytes"] for image in ds["image"])))


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "data").glob("*.parquet"))}


def files(out: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_every_class_gets_per_image_times_the_largest_class_each_made_from_an_image_of_it(vae, real, reference,
                                                                                         tmp_path):
    images, labels = real
    ds = load(reference, tmp_path)
    assert len(ds) == 48 and ds.features["label"].names == NAMES
    assert ds.features["source_index"] == datasets.Value("int64")
    assert set(ds["synthetic"]) == {True} and set(ds["seed"]) == {0} and ds[0]["image"].size == (28, 28)
    label, index = torch.tensor(ds["label"]), torch.tensor(ds["source_index"])
    assert label.bincount().tolist() == [16, 16, 16]
    assert torch.equal(labels[index], label)  # the label kept is the real image's
    for c, n in enumerate([8, 3, 5]):  # every image of the class, each floor or ceil(16 / n) times
        made = index[label == c].bincount(minlength=len(labels))[labels == c]
        assert len(made) == n and made.min() >= 16 // n and made.max() <= -(-16 // n)
    # The rule of SyntheticPool.from_variations: with the same seed (on the CPU) the same images, slot by slot.
    pool = SyntheticPool.from_variations(vary(vae), images, labels, per_image=2, seed=0)
    assert torch.equal(index.view(3, 16), pool.source_index)
    meta = json.loads((reference / "synthesis.json").read_text())
    assert meta["rows_per_class"] == [16, 16, 16] and meta["shards"] == 12 and meta["per_class"] == 16
    assert (meta["kind"], meta["mode"], meta["strength"], meta["per_image"]) == ("variations", "vary", 0.5, 2)
    assert meta["images"] == 16 and meta["images_per_class"] == [8, 3, 5] and meta["batch_size"] == 4
    assert "randperm" in meta["seed_derivation"] and meta["acceptance_rate"] is None
    card = (reference / "README.md").read_text()
    assert "# Variations of real images" in card and "mode `vary`, strength 0.5" in card and "`source_index`" in card
    assert len(datasets.load_dataset(str(reference), split="train", cache_dir=str(tmp_path))) == 48  # the card


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_rows(vae, real, reference, tmp_path):
    write_variation_shards(vary(vae), *real, tmp_path / "again", **KW)
    assert shard_bytes(tmp_path / "again") == shard_bytes(reference) and len(shard_bytes(reference)) == 12
    write_variation_shards(vary(vae), *real, tmp_path / "seed1", **{**KW, "seed": 1})
    other, same = rows(tmp_path / "seed1", tmp_path), rows(reference, tmp_path)
    assert len(other) == 48 and not {row[2] for row in other} & {row[2] for row in same}
    # Float images in the generators' range are the same images: the same bank.
    write_variation_shards(vary(vae), real[0].float() / 127.5 - 1, real[1], tmp_path / "float", **KW)
    assert shard_bytes(tmp_path / "float") == shard_bytes(reference)


def test_a_killed_run_resumes_from_its_complete_shards_into_the_same_bank(vae, real, reference, tmp_path):
    out, source = tmp_path / "killed", vary(vae)
    made = source.rows
    calls = []

    def killed_at_the_fifth_call(*args, **kwargs):  # shards of 5 rows take 2 calls of 4 and 1
        if len(calls) == 4:
            raise KeyboardInterrupt
        calls.append(1)
        return made(*args, **kwargs)

    source.rows = killed_at_the_fifth_call
    with pytest.raises(KeyboardInterrupt):
        write_variation_shards(source, *real, out, **KW)
    done = completed_shards(out)
    assert sorted(done) == ["train-00000-00000", "train-00000-00001"] and not (out / "synthesis.json").exists()
    kept = {name: (out / record["file"]).stat() for name, record in done.items()}
    (out / "data" / ".train-00000-00002.parquet.x1y2.tmp").write_bytes(b"half a shard")  # as kill -9 leaves it

    meta = write_variation_shards(vary(vae), *real, out, **KW)
    assert meta["last_run"]["images_generated"] == 48 - 10 and meta["rows"] == 48
    for name, before in kept.items():  # complete shards are kept, not written again
        after = (out / done[name]["file"]).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), name
    assert not list((out / "data").glob(".*")) and not list((out / ".progress").iterdir())
    assert shard_bytes(out) == shard_bytes(reference)


def test_other_arguments_other_images_or_free_samples_are_refused_before_anything_is_written(vae, real, reference,
                                                                                           tmp_path):
    images, labels = real
    before = files(reference)
    changed = images.clone()
    changed[0, 0, 0, 0] += 1
    for call, said, fix in [
        (lambda: write_variation_shards(vary(vae), images, labels, reference, **{**KW, "seed": 1}),
         "seed is 0 there but 1 now", "--seed 0"),
        (lambda: write_variation_shards(vary(vae), images, labels, reference, **{**KW, "per_image": 3}),
         "per_image is 2 there but 3 now", "--per-image 2"),
        (lambda: write_variation_shards(VariationSource(vae, "vary", strength=0.2), images, labels, reference, **KW),
         "strength is 0.5 there but 0.2 now", "--strength 0.5"),
        (lambda: write_variation_shards(VariationSource(vae, "interpolate"), images, labels, reference, **KW),
         "mode is 'vary' there but 'interpolate' now", "--mode vary --strength 0.5"),
        (lambda: write_variation_shards(vary(vae), images, labels, reference, **{**KW, "batch_size": 8}),
         "batch_size is 4 there but 8 now", "--batch-size 4"),
        (lambda: write_variation_shards(vary(vae), changed, labels, reference, **KW),
         "the real images or labels differ (16 images, sha256", "the images and labels it was made from"),
    ]:
        with pytest.raises(ConfigError) as refused:
            call()
        message = str(refused.value)
        assert said in message and fix in message and "Nothing was written" in message, message
        assert "weight_range" not in message and message.count(" there") == 1, message  # one cause, once
    with pytest.raises(ConfigError, match="holds a bank of variations of real images, but this call writes free"):
        write_shards(vae, 16, reference, shard_size=5, progress=False)
    write_shards(vae, 2, tmp_path / "free", shard_size=2, progress=False)
    with pytest.raises(ConfigError, match="holds a bank of free samples of a generator, but this call writes var"):
        write_variation_shards(vary(vae), images, labels, tmp_path / "free", **KW)
    assert files(reference) == before
    assert write_variation_shards(vary(vae), images, labels, reference, **KW)["already_complete"] is True
    assert files(reference) == before


def test_bad_sources_and_arguments_name_the_fix(vae, real, tmp_path):
    images, labels = real
    with pytest.raises(ConfigError, match=r"wrap the generator, VariationSource\(generator, 'vary'\), and pass that; write_shards"):
        write_variation_shards(vae, images, labels, tmp_path / "a", **KW)
    with pytest.raises(ConfigError, match="RealRowSource has no generator: pass a VariationSource"):
        write_variation_shards(RealRowSource(3, (1, 28, 28)), images, labels, tmp_path / "a", **KW)
    with pytest.raises(ConfigError, match="seed must be an int >= 0"):
        write_variation_shards(vary(vae), images, labels, tmp_path / "a", **{**KW, "seed": -1})
    with pytest.raises(ConfigError, match=r"seed must be an int >= 0 .*pass one from 0 to 2\*\*64 - 1"):
        write_variation_shards(vary(vae), images, labels, tmp_path / "a", **{**KW, "seed": 2**64})  # one seed rule
    with pytest.raises(ConfigError, match="per_image must be an int >= 1"):
        write_variation_shards(vary(vae), images, labels, tmp_path / "a", **{**KW, "per_image": 0})
    with pytest.raises(DataError, match=r"no image of class 'bee'"):
        write_variation_shards(vary(vae), images[labels != 1], labels[labels != 1], tmp_path / "a", **KW)
    assert not (tmp_path / "a").exists()


def test_two_ranks_write_disjoint_shards_with_the_same_rows_as_one(vae, real, reference, tmp_path, monkeypatch):
    barrier, local = threading.Barrier(2, timeout=120), threading.local()

    class Rank:  # what the writer asks of accelerate's PartialState
        num_processes = 2

        def __init__(self, index: int):
            self.process_index, self.is_main_process = index, index == 0

        def wait_for_everyone(self):
            barrier.wait()

    monkeypatch.setattr(shards_module, "_state", lambda: local.state)
    monkeypatch.setenv("WORLD_SIZE", "2")
    results, errors = {}, []

    def rank(index: int):
        local.state = Rank(index)
        try:
            results[index] = write_variation_shards(vary(vae), *real, tmp_path / "two", **KW)
        except BaseException as exc:  # noqa: BLE001  (reported below, not lost in the thread)
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=rank, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    ranks = results[0]["last_run"]["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["shards"] for r in ranks)
    assert not set(ranks[0]["shards"]) & set(ranks[1]["shards"])
    assert len(ranks[0]["shards"]) + len(ranks[1]["shards"]) == 12 and results[1] == results[0]
    assert shard_bytes(tmp_path / "two") == shard_bytes(reference)
    assert rows(tmp_path / "two", tmp_path) == rows(reference, tmp_path)


def test_docstring_example_runs(vae, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    namespace = {"VariationSource": VariationSource, "write_variation_shards": write_variation_shards,
                 "datasets": datasets, "generator": vae, "train": shifted_squares(n_per_class=4)}
    exec(_example(write_variation_shards), namespace)
    assert namespace["meta"]["rows"] == 3 * 16 and len(namespace["bank"]) == 48


# --------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def saved(vae, real, tmp_path_factory) -> Path:
    """The tiny vae saved as a model folder, and the real images as an .npz, as a user passes them."""
    root = tmp_path_factory.mktemp("cli")
    augmentgen.save_pretrained(vae, root / "vae")
    images, labels = real
    np.savez(root / "train.npz", images=images.numpy(), labels=labels.numpy(), classes=np.array(NAMES))
    return root


def variations(saved: Path, out: Path, *extra: str) -> list[str]:
    return ["sample", "--model", str(saved / "vae"), "--variations-of", str(saved / "train.npz"), "--per-image", "2",
            "--format", "parquet", "--out", str(out), "--shard-size", "5", "--batch-size", "4", *extra]


def test_sample_variations_of_from_the_command_line(saved, reference, tmp_path, capsys):
    out = tmp_path / "bank"
    assert main(variations(saved, out, "--mode", "vary", "--strength", "0.5")) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"augmentgen sample: variations of --variations-of {saved / 'train.npz'} (16 "
                                 "images, 3 classes, 3 to 8 per class) by the vae generator")
    assert "mode vary (strength 0.5): 2 per image of the largest class, 16 rows per class, 48 rows" in printed[0]
    assert printed[1].startswith(f"wrote {out} (parquet: 48 variations of 16 real images of 3 classes in 12 "
                                 "shards; 48 generated now by 1 process(es)")
    assert printed[2] == f"load:  datasets.load_dataset('parquet', data_dir={str(out)!r}, split='train')"
    assert rows(out, tmp_path) == rows(reference, tmp_path)  # the bank the Python call makes
    meta = json.loads((out / "synthesis.json").read_text())
    assert meta["data"] == str(saved / "train.npz") and meta["generator_id"] == str(saved / "vae")
    assert main(variations(saved, out)) == 0  # the defaults are vary at 0.5: the same run, complete
    assert "already complete, nothing generated" in capsys.readouterr().out
    assert main(variations(saved, out, "--mode", "extrapolate")) == 2
    err = capsys.readouterr().err
    assert "mode is 'vary' there but 'extrapolate' now" in err and "--mode vary --strength 0.5" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_command_line_errors_are_one_line_naming_the_fix(saved, tmp_path, capsys):
    torch.manual_seed(0)
    cgan = build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=16))
    augmentgen.save_pretrained(cgan, tmp_path / "cgan")
    npz = str(saved / "train.npz")
    for args, said in [
        (["sample", "--model", str(saved / "vae"), "--variations-of", npz, "--out", str(tmp_path / "g.png")],
         "--variations-of writes its bank as Parquet shards only: add --format parquet"),
        (["sample", "--model", str(tmp_path / "cgan"), "--variations-of", npz, "--format", "parquet", "--out",
          str(tmp_path / "c")], "--variations-of with --mode vary: the cgan family cannot vary real images"),
        (variations(saved, tmp_path / "i", "--mode", "interpolate", "--strength", "0.3"),
         "--strength applies to --mode vary"),
        (variations(saved, tmp_path / "p", "--per-class", "10"), "--per-class applies to free samples"),
        (["sample", "--model", str(saved / "vae"), "--per-image", "2", "--format", "parquet", "--out",
          str(tmp_path / "f")], "--per-image applies to a bank of variations of real images only: add --variations-of"),
    ]:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not [p.name for p in tmp_path.iterdir() if p.name != "cgan"]  # nothing was written
