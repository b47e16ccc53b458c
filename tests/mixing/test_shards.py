"""Synthesis at scale (``augmentgen sample --format parquet``): Parquet shards from 1 or 2 processes.

The 2-process run and the killed run are fresh ``python -m ...`` subprocesses, the way a user
runs them (as in tests/training/test_processes.py); the reference runs are in-process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import augmentgen
from augmentgen.cli import main
from augmentgen.errors import ConfigError
from augmentgen.mixing import completed_shards, shard_seed, write_shards
from augmentgen.models.registry import build_config, build_generator

datasets = pytest.importorskip("datasets")

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
       "TQDM_DISABLE": "1"}
GRID = ["--per-class", "200", "--shard-size", "8", "--batch-size", "8", "--seed", "0"]  # 3 x 25 shards


def tiny_generator(seed: int = 0):
    torch.manual_seed(seed)
    return build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=16,
                                        class_names=["ant", "bee", "cat"]))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "cgan"
    augmentgen.save_pretrained(tiny_generator(), path)
    return path


def sample(model: Path, out: Path, *extra: str) -> list[str]:
    return ["sample", "--model", str(model), "--format", "parquet", "--out", str(out), *GRID, *extra]


@pytest.fixture(scope="module")
def reference(model, tmp_path_factory) -> Path:
    """One process, in this one, start to end."""
    out = tmp_path_factory.mktemp("reference") / "bank"
    assert main(sample(model, out)) == 0
    return out


def load(out: Path, cache: Path, **kwargs):
    return datasets.load_dataset("parquet", data_dir=str(out), split="train", cache_dir=str(cache), **kwargs)


def rows(out: Path, cache: Path) -> list[tuple[int, bytes]]:
    """Every row as (label, PNG bytes), sorted: the content up to row order."""
    ds = load(out, cache).cast_column("image", datasets.Image(decode=False))
    return sorted(zip(ds["label"], (image["bytes"] for image in ds["image"])))


def test_one_process_bank_loads_as_one_dataset_with_its_features(model, reference, tmp_path):
    ds = load(reference, tmp_path)
    assert len(ds) == 600 and ds.features["label"].names == ["ant", "bee", "cat"]
    assert isinstance(ds.features["image"], datasets.Image)
    assert set(ds["synthetic"]) == {True} and set(ds["generator"]) == {str(model)} and set(ds["seed"]) == {0}
    assert ds[0]["image"].size == (28, 28)
    meta = json.loads((reference / "synthesis.json").read_text())
    assert meta["rows_per_class"] == [200, 200, 200] and meta["shards"] == 75 and meta["acceptance_rate"] is None
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["done"]) == 75 and not list((reference / ".progress").iterdir())
    assert len(datasets.load_dataset(str(reference), split="train", cache_dir=str(tmp_path))) == 600  # the card
    # Each shard has its own stream, derived from the seed alone.
    assert len({shard_seed(0, k, j) for k in range(3) for j in range(25)}) == 75


def test_two_processes_write_disjoint_shards_with_the_same_rows_as_one(model, reference, tmp_path):
    two = tmp_path / "two"
    # `accelerate launch`, as a user runs it on CPU: --multi_gpu with ACCELERATE_USE_CPU gives two
    # joined gloo ranks (--cpu alone would silently run one process).
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "augmentgen", *sample(model, two)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240,
                            env={**ENV, "ACCELERATE_USE_CPU": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("wrote ") == 1  # the main rank reports
    ranks = json.loads((two / "synthesis.json").read_text())["last_run"]["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["shards"] and r["peak_rss_mib"] > 0 for r in ranks)
    assert not set(ranks[0]["shards"]) & set(ranks[1]["shards"])
    assert len(ranks[0]["shards"]) + len(ranks[1]["shards"]) == 75
    assert rows(two, tmp_path) == rows(reference, tmp_path)


def test_kill_9_mid_run_then_rerun_resumes_from_the_complete_shards(model, reference, tmp_path):
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "augmentgen", *sample(model, out)], env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not (out.is_dir() and completed_shards(out)):
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "synthesis.json").exists()
    done = completed_shards(out)
    assert 1 <= len(done) < 75
    kept = {name: (out / r["file"]).stat() for name, r in done.items()}

    assert main(sample(model, out)) == 0
    for name, before in kept.items():  # complete shards are kept, not written again
        after = (out / done[name]["file"]).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), name
    meta = json.loads((out / "synthesis.json").read_text())
    assert meta["last_run"]["images_generated"] == 600 - 8 * len(done)
    assert not list((out / "data").glob(".*"))  # no temporary files left
    assert rows(out, tmp_path) == rows(reference, tmp_path)


def test_rerun_with_other_arguments_is_refused_naming_the_fix(model, reference, tmp_path, capsys):
    files = {p: p.read_bytes() for p in reference.rglob("*") if p.is_file()}
    other = tmp_path / "other"
    augmentgen.save_pretrained(tiny_generator(seed=1), other)
    for args, said, fix in [
        (sample(model, reference, "--seed", "1"), "seed is 0 there but 1 now", "--seed 0"),
        (sample(model, reference, "--per-class", "100"), "per_class is 200 there but 100 now", "--per-class 200"),
        (sample(other, reference), "the generator differs", f"--model {model}"),
    ]:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert said in err and fix in err and "new --out" in err and "Nothing was written" in err, err
    assert {p: p.read_bytes() for p in reference.rglob("*") if p.is_file()} == files
    assert main(sample(model, reference)) == 0  # the same arguments: complete, nothing rewritten
    assert "already complete" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in reference.rglob("*") if p.is_file()} == files
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(sample(model, tmp_path / "mine")) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(sample(model, tmp_path / "x", "--shard-size", "0")) == 2
    assert "shard_size" in capsys.readouterr().err.replace("--shard-size", "shard_size")  # the CLI's or the API's


def test_streaming_the_bank_into_a_training_loop(reference, tmp_path):
    stream = load(reference, tmp_path, streaming=True)
    assert stream.features["label"].names == ["ant", "bee", "cat"]
    batches = 0
    # (No .shuffle(buffer_size=...) here: datasets 5.2 then sleeps 5 s when the iterator shuts down.)
    loader = torch.utils.data.DataLoader(stream.with_format("torch").take(128), batch_size=32)
    for batch in loader:  # what a training loop sees
        images, labels = batch["image"], batch["label"]
        assert images.dtype == torch.uint8 and images.shape == (32, 1, 28, 28)
        assert labels.dtype == torch.int64 and 0 <= labels.min() <= labels.max() <= 2
        batches += 1
    assert batches == 4
    labels = [row["label"] for row in stream.remove_columns("image")]  # every row, without decoding images
    assert torch.bincount(torch.tensor(labels)).tolist() == [200, 200, 200]


def test_teacher_filtering_keeps_the_accepted_rows_of_the_same_candidates(tmp_path):
    generator = tiny_generator()
    torch.manual_seed(2)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 3))
    kwargs = {"seed": 3, "shard_size": 10, "batch_size": 4, "progress": False}
    everything = write_shards(generator, 30, tmp_path / "all", **kwargs)
    meta = write_shards(generator, 30, tmp_path / "kept", teacher=teacher, filter_threshold=0.34, **kwargs)
    assert everything["rows"] == 90 and meta["candidates_per_class"] == [30, 30, 30]
    assert 0 < meta["rows"] < 90 and meta["acceptance_rate"] == pytest.approx(meta["rows"] / 90)
    assert meta["acceptance_rate_per_class"] == [r / 30 for r in meta["rows_per_class"]]
    kept, all_rows = rows(tmp_path / "kept", tmp_path), rows(tmp_path / "all", tmp_path)
    assert len(kept) == meta["rows"] and set(kept) <= set(all_rows)
    with pytest.raises(ConfigError, match="filter_threshold is 0.34 there but 0.5 now"):
        write_shards(generator, 30, tmp_path / "kept", teacher=teacher, filter_threshold=0.5, **kwargs)
    with pytest.raises(ConfigError, match="both"):
        write_shards(generator, 30, tmp_path / "none", filter_threshold=0.5, **kwargs)


def test_load_data_and_train_read_a_finished_bank_and_refuse_an_unfinished_one(reference, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    data = augmentgen.load_data(reference)
    assert len(data) == 600 and data.class_names == ["ant", "bee", "cat"]
    assert data.images.dtype == torch.uint8 and data.images.shape[1:] == (1, 28, 28)
    assert data.labels.bincount().tolist() == [200, 200, 200]
    unfinished = tmp_path / "unfinished"
    (unfinished / "data").mkdir(parents=True)
    for name in ("manifest.json", "data/train-00000-00000.parquet"):
        (unfinished / name).write_bytes((reference / name).read_bytes())
    with pytest.raises(augmentgen.DataError, match="not complete"):
        augmentgen.load_data(unfinished)


def test_a_finished_bank_becomes_a_pool_that_mixes_into_a_torch_batch(reference, tmp_path, monkeypatch):
    from augmentgen.mixing import SyntheticMix, SyntheticPool

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    bank = augmentgen.load_data(reference)
    pool = SyntheticPool.from_images(bank.images, bank.labels, class_names=bank.class_names)
    assert (pool.num_classes, pool.per_class, pool.class_names) == (3, 200, ["ant", "bee", "cat"])
    for c in range(3):
        assert torch.equal(pool.images[c], bank.images[bank.labels == c])
    images, labels = SyntheticMix(pool, 0.5, mode="append", seed=0)(torch.zeros(8, 1, 28, 28), torch.zeros(8).long())
    assert images.shape == (12, 1, 28, 28) and labels.tolist() == [0] * 12


def test_the_weights_hash_of_a_bank_is_the_one_in_model_safetensors(tmp_path):
    from safetensors import safe_open

    generator = tiny_generator()
    augmentgen.save_pretrained(generator, tmp_path / "model")
    with safe_open(str(tmp_path / "model" / "model.safetensors"), framework="pt") as f:
        saved = f.metadata()["augmentgen_sha256"]
    meta = write_shards(generator, 4, tmp_path / "bank", shard_size=4, progress=False)
    manifest = json.loads((tmp_path / "bank" / "manifest.json").read_text())
    assert meta["generator_sha256"] == manifest["identity"]["generator_sha256"] == saved
    assert saved in (tmp_path / "bank" / "README.md").read_text()


def test_a_config_change_and_a_bank_of_the_earlier_format_are_refused(tmp_path):
    generator = tiny_generator()
    write_shards(generator, 4, tmp_path / "bank", shard_size=4, progress=False)
    files = {p: p.read_bytes() for p in (tmp_path / "bank").rglob("*") if p.is_file()}
    renamed = build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=16,
                                           class_names=["ant", "bee", "cow"]))
    renamed.load_state_dict(generator.state_dict())  # the same weights, another config
    with pytest.raises(ConfigError, match=r"the generator's config differs \(class_names: .*'cat'.*'cow'"):
        write_shards(renamed, 4, tmp_path / "bank", shard_size=4, progress=False)
    manifest = json.loads((tmp_path / "bank" / "manifest.json").read_text())
    manifest["identity"]["format"] = "augmentgen-synthesis/1"  # as written before the hash was shared
    (tmp_path / "bank" / "manifest.json").write_text(json.dumps(manifest))
    files[tmp_path / "bank" / "manifest.json"] = (tmp_path / "bank" / "manifest.json").read_bytes()
    with pytest.raises(ConfigError, match=r"earlier augmentgen \(format 'augmentgen-synthesis/1'.*new --out"):
        write_shards(generator, 4, tmp_path / "bank", shard_size=4, progress=False)
    assert {p: p.read_bytes() for p in (tmp_path / "bank").rglob("*") if p.is_file()} == files


def test_a_bank_under_a_file_is_refused_before_anything_is_loaded_or_written(model, tmp_path, capsys):
    from augmentgen.mixing import VariationSource, write_variation_shards
    from tests.mixing.test_sources import TINY_ENCODER, shifted_squares

    (tmp_path / "notes.txt").write_text("kept")
    out = tmp_path / "notes.txt" / "bank"
    with pytest.raises(ConfigError, match=r"bank cannot be created: .*notes.txt is a file, not a folder"):
        write_shards(tiny_generator(), 4, out, shard_size=4, progress=False)
    vae = build_generator(build_config("vae", num_classes=3, class_names=["ant", "bee", "cat"], **TINY_ENCODER))
    real = shifted_squares(n_per_class=2)
    with pytest.raises(ConfigError, match=r"bank cannot be created: .*notes.txt is a file, not a folder"):
        write_variation_shards(VariationSource(vae, "vary"), real.images, real.labels, out, per_image=1,
                               progress=False)
    assert main(sample(tmp_path / "no-such-model", out)) == 2  # refused before the model would fail to load
    assert "notes.txt is a file, not a folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"] and (tmp_path / "notes.txt").read_text() == "kept"


def test_the_bar_counts_every_image_and_a_ddpm_moves_it_within_a_batch(tmp_path, bars, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    write_shards(tiny_generator(), 5, tmp_path / "cgan", shard_size=4, batch_size=3, progress=True)
    assert [(bar.desc, bar.total, bar.updates) for bar in bars] == [("synthesis", 15, [3, 1, 1] * 3)]
    torch.manual_seed(0)
    ddpm = build_generator(build_config("ddpm", num_classes=3, unet_width=8, channel_multipliers=[1, 2],
                                        sampling_steps=3))
    write_shards(ddpm, 2, tmp_path / "shown", shard_size=4, progress=True)
    assert bars[1].updates == [1, 1] * 3  # a shard of 2 images, one batch of 3 steps: 2/3, 4/3, 2
    write_shards(ddpm, 2, tmp_path / "hidden", shard_size=4, progress=False)
    assert bars[2].disable and bars[2].updates == []
    assert rows(tmp_path / "shown", tmp_path / "cache") == rows(tmp_path / "hidden", tmp_path / "cache")


@pytest.mark.parametrize("out, problem", [("", "out is an empty path, which would write the shards into the current"),
                                          (None, r"out must be a folder path \(a str or os\.PathLike\), got None")])
def test_write_shards_refuses_an_empty_or_missing_folder_before_anything_is_written(tmp_path, monkeypatch, out,
                                                                                    problem):
    # "" is the current folder: the manifest and shards would land wherever the user stood.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=problem):
        write_shards(tiny_generator(), 2, out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seed", [-1, 2**64, 1.0, True])
def test_a_bad_seed_is_refused_by_the_one_seed_rule_before_anything_is_written(tmp_path, seed):
    with pytest.raises(ConfigError, match=rf"seed must be an int >= 0 \(every shard's rows are sampled from it\), "
                                          rf"got {seed!r}; pass one from 0 to 2\*\*64 - 1"):
        write_shards(tiny_generator(), 2, tmp_path / "bank", seed=seed, progress=False)
    assert not (tmp_path / "bank").exists()
