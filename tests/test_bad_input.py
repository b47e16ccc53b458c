"""Issue 28: bad input gets one clear error naming the problem and the fix, no traceback, and
nothing saved before is changed.

One table of kinds of bad input. The CLI cases run ``augmentgen.cli.main`` (a few run
``python -m augmentgen`` in a subprocess, the honest check that no traceback reaches the user)
and check the exit code, that stderr is one ``augmentgen: error:`` line naming the problem and
the fix, and that no ``Traceback`` is printed. The Python API cases check that the exception is
one of :mod:`augmentgen.errors`' classes whose first line names the problem and the fix. Every
case, CLI or API, runs beside one finished tiny run, its exports and data files, and checks that
not one of their bytes changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import augmentgen
from augmentgen.cli import main
from augmentgen.errors import AugmentgenError, CheckpointError, ConfigError, DataError, UnknownFamilyError
from tests.conftest import make_images

REPO = Path(__file__).resolve().parents[1]
AAE = str(REPO / "pretrained" / "aae-fashion-mnist")  # a zoo encoder model: variations need an encoder
TINY = ["--set", "generator_width=8", "--set", "discriminator_width=8", "--set", "latent_dim=16"]


def train_args(out: str, *extra: str) -> list[str]:
    """The finished run's own command (2 steps, a checkpoint each), plus ``extra``."""
    return ["train", "--data", "fashion-mnist-small", "--per-class", "2", "--out", out, "--steps", "2",
            "--batch-size", "6", "--sample-every", "0", "--grid-per-class", "2", "--checkpoint-every", "1",
            *TINY, *extra]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> SimpleNamespace:
    """What a user has saved before the bad command: a finished run, three exports, data files."""
    root = tmp_path_factory.mktemp("saved")
    s = SimpleNamespace(root=root, run=root / "run", export=root / "export", npz=root / "samples.npz",
                        grid=root / "grid.png", data=root / "data.npz", garbage=root / "garbage.npz",
                        nan=root / "nan.npz", split=root / "split", evaluated=root / "evaluated",
                        empty=root / "empty.npz")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2 steps: the mode-collapse warning is expected
        assert main(train_args(str(s.run))) == 0
    s.generator = augmentgen.from_pretrained(s.run, device="cpu")
    s.aae = augmentgen.from_pretrained(AAE, device="cpu")
    for out, form in ((s.export, "imagefolder"), (s.npz, "npz"), (s.grid, "grid")):
        augmentgen.write_samples(s.generator, 1, out, form)
    data = make_images(n_per_class=4)
    np.savez(s.data, images=data.images.numpy(), labels=data.labels.numpy(), classes=np.array(data.class_names))
    s.garbage.write_bytes(b"these bytes are not an .npz file")
    s.evaluated.mkdir()
    (s.evaluated / "eval.json").write_text('{"an": "earlier report"}')
    np.savez(s.nan, images=np.full((4, 28, 28), np.nan, np.float32), labels=np.array([0, 1, 0, 1]))
    np.savez(s.empty, images=np.zeros((0, 28, 28), np.uint8), labels=np.zeros(0, np.int64))
    s.dangling = root / "dangling"
    s.dangling.symlink_to(root / "removed")  # a link to a folder that is gone
    for split in ("train", "val"):
        (s.split / split / "cat").mkdir(parents=True)
        Image.new("L", (28, 28), 10).save(s.split / split / "cat" / "0.png")
    return s


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path (a new or removed file shows too)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ the table
@dataclass(frozen=True)
class Case:
    """One kind of bad input: CLI arguments (``{run}``-style placeholders) or a Python call.

    ``problem`` and ``fix`` are phrases the first line of the message must contain; ``error`` is
    the exception class of an API case; ``subprocess`` runs a CLI case as ``python -m augmentgen``.
    """

    id: str
    problem: str
    fix: str
    argv: tuple[str, ...] = ()
    call: Callable | None = None
    error: type[AugmentgenError] = AugmentgenError
    subprocess: bool = False


def cli(id, argv, problem, fix, subprocess=False):
    return Case(id, problem, fix, argv=tuple(argv), subprocess=subprocess)


def api(id, call, error, problem, fix):
    return Case(id, problem, fix, call=call, error=error)


RUN = "{run}"
NEW = "{new}"  # a path under the test's own tmp_path, free to be written

CLI_CASES = [
    # argument syntax: argparse's own errors, one line each
    cli("train-int-flag-given-a-word", ["train", "--per-class", "abc"], "invalid int value: 'abc'",
        "see `augmentgen train --help`", subprocess=True),
    cli("train-mistyped-flag", ["train", "--stepz", "3"], "unrecognized arguments", "did you mean --steps?"),
    cli("train-abbreviated-flag", ["train", "--chan", "3"], "unrecognized arguments", "did you mean --channels?"),
    cli("train-family-as-a-bare-word", ["train", "cgan", "--steps", "3"], "unrecognized argument: cgan",
        "did you mean `augmentgen train --family cgan`?"),
    cli("eval-model-as-a-bare-word", ["eval", "runs/cgan", "--data", "x"], "unrecognized argument: runs/cgan",
        "did you mean `augmentgen eval --model runs/cgan`?"),
    cli("train-channels-not-1-or-3", ["train", "--channels", "2"], "invalid choice: 2", "choose from 1, 3"),
    cli("sample-missing-required", ["sample", "--per-class", "2"], "arguments are required: --model, --out",
        "see `augmentgen sample --help`"),
    # the model and its config
    cli("train-unknown-model", train_args(NEW, "--family", "cgn"), "--family cgn: unknown model 'cgn'", "available:"),
    cli("train-zero-steps", train_args(NEW, "--steps", "0"), "--steps must be at least 1", "got 0"),
    cli("train-negative-per-class", train_args(NEW, "--per-class", "-3"), "--per-class must be at least 1",
        "pass --per-class N with N >= 1"),
    cli("set-overflowing-float", train_args(NEW, "--set", "learning_rate=1e400"),
        "learning_rate must be a finite number > 0", "(default 0.0002)"),
    cli("set-betas-out-of-range", train_args(NEW, "--set", "betas=[1.5,0.9]"), "two Adam betas in [0, 1)",
        "like [0.0, 0.9]"),
    cli("set-unknown-choice", train_args(NEW, "--set", "loss=hingee"), "loss must be one of", "'hinge'"),
    cli("set-unknown-field", train_args(NEW, "--set", "no_such_field=1"), "has no field 'no_such_field'",
        "known fields"),
    cli("set-without-equals", train_args(NEW, "--set", "loss"), "expected key=value", "got 'loss'"),
    cli("train-unknown-tracker", train_args(NEW, "--log-with", "tensorbored"), "not a tracker Accelerate knows",
        "use one of"),
    cli("train-mistyped-zoo-id", train_args(NEW, "--init-from", "augmentgen/cgan-mnsit"),
        "no zoo model named 'augmentgen/cgan-mnsit'", "did you mean 'augmentgen/cgan-mnist'"),
    # the run folder: refused, and nothing in it changes
    cli("train-into-a-finished-run", train_args(RUN), "already holds a trained model", "Pass --overwrite"),
    cli("resume-with-fewer-steps", train_args(RUN, "--resume", "--steps", "1"), "already at step 2",
        "--resume --steps N"),
    cli("resume-and-overwrite", train_args(RUN, "--resume", "--overwrite"), "contradict each other",
        "pass one of them"),
    cli("resume-with-another-loss", train_args(RUN, "--resume", "--steps", "3", "--set", "loss=bce"),
        "loss is 'hinge' there but 'bce' now", "rerun with --set loss=hinge"),
    cli("resume-with-other-data", train_args(RUN, "--resume", "--steps", "3", "--per-class", "3"),
        "fingerprint", "Nothing was changed"),
    cli("train-out-is-a-file", train_args("{data}"), "is an existing file", "choose a folder path"),
    # the data
    cli("train-missing-data", train_args(NEW, "--data", "{new}/nothing"), "no data at", "hf:<folder>"),
    cli("train-garbage-npz", train_args(NEW, "--data", "{garbage}"), "is not a valid images/labels .npz file",
        "np.savez(path, images=..., labels=...", subprocess=True),
    cli("train-all-nan-images", train_args(NEW, "--data", "{nan}"), "4 of 4 float images", "NaN"),
    cli("train-folder-of-splits", train_args(NEW, "--data", "{split}"), "holds the split folders ['train', 'val']",
        "--data {split}/train"),
    cli("train-folder-of-runs", train_args(NEW, "--data", "{root}"), "is a folder of saved generators",
        "pass one of them as the model (--model {root}/run"),
    cli("train-more-rows-than-data", train_args(NEW, "--per-class", "1000"),
        "asks for more images than some classes have", "use per_class=50 or less"),
    # sampling and exports: refused before sampling, and nothing there changes
    cli("sample-mistyped-model-folder", ["sample", "--model", "{run}x", "--out", "{new}/g.png"], "no local folder",
        "did you mean '{run}'"),
    cli("sample-bad-device", ["sample", "--model", RUN, "--out", "{new}/g.png", "--device", "gpu"],
        "--device 'gpu' is not a device", "use 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    cli("sample-negative-per-class", ["sample", "--model", RUN, "--out", "{new}/g.png", "--per-class", "-5"],
        "--per-class must be at least 1 (images of each class), got -5", "pass --per-class N with N >= 1"),
    cli("sample-zero-batch-size", ["sample", "--model", RUN, "--out", "{new}/s.npz", "--format", "npz",
                                   "--batch-size", "0"], "--batch-size must be at least 1", "pass --batch-size N"),
    cli("sample-bad-temperature", ["sample", "--model", RUN, "--out", "{new}/g.png", "--temperature", "hot"],
        "--temperature takes a float", "like 0.5 or 1,1,0.5"),
    cli("sample-zero-shard-size", ["sample", "--model", RUN, "--out", NEW, "--format", "parquet", "--shard-size", "0"],
        "--shard-size must be at least 1 (images per Parquet file), got 0", "pass --shard-size N with N >= 1"),
    cli("sample-into-an-export", ["sample", "--model", RUN, "--out", "{export}", "--format", "imagefolder"],
        "already exists and is not empty", "pass --overwrite to replace an earlier export", subprocess=True),
    cli("sample-over-an-npz", ["sample", "--model", RUN, "--out", "{npz}", "--format", "npz"],
        "already exists", "pass --overwrite to replace it"),
    cli("sample-over-a-grid", ["sample", "--model", RUN, "--out", "{grid}"], "already exists",
        "pass --overwrite to replace it"),
    cli("sample-grid-into-a-folder", ["sample", "--model", RUN, "--out", "{export}"], "is a folder",
        "pass a file path like grid.png"),
    cli("sample-overwrite-a-run-folder", ["sample", "--model", RUN, "--out", RUN, "--format", "imagefolder",
                                          "--overwrite"], "is not an earlier imagefolder export",
        "remove it yourself"),
    cli("sample-parquet-into-a-run-folder", ["sample", "--model", RUN, "--out", RUN, "--format", "parquet"],
        "not a synthesis run to resume", "pick a new (or empty) --out"),
    cli("sample-parquet-with-overwrite", ["sample", "--model", RUN, "--out", NEW, "--format", "parquet",
                                          "--overwrite"], "--overwrite does not apply to --format parquet",
        "choose a new --out"),
    cli("sample-hf-into-a-run-folder", ["sample", "--model", RUN, "--out", RUN, "--format", "hf"],
        "already exists and is not empty", "pass --overwrite to replace an earlier export"),
    cli("sample-hf-overwrite-a-run-folder", ["sample", "--model", RUN, "--out", RUN, "--format", "hf",
                                             "--overwrite"], "is not an earlier hf export", "remove it yourself"),
    # variations of real images (sample --variations-of): refused before any row is made
    cli("sample-variations-by-a-cgan", ["sample", "--model", RUN, "--variations-of", "fashion-mnist-small",
                                        "--format", "parquet", "--out", NEW],
        "--variations-of with --mode vary: the cgan family cannot vary real images",
        "use an encoder family (aae, vae, ae, aegan)", subprocess=True),
    cli("sample-variations-not-parquet", ["sample", "--model", AAE, "--variations-of", "fashion-mnist-small",
                                          "--out", "{new}/g.png"], "--variations-of writes its bank as Parquet shards only",
        "add --format parquet"),
    cli("sample-variation-option-alone", ["sample", "--model", AAE, "--mode", "vary", "--format", "parquet",
                                          "--out", NEW], "--mode applies to a bank of variations of real images only",
        "add --variations-of DATA --format parquet, or drop --mode"),
    cli("sample-variations-with-per-class", ["sample", "--model", AAE, "--variations-of", "fashion-mnist-small",
                                             "--format", "parquet", "--out", NEW, "--per-class", "3"],
        "--per-class applies to free samples, not to --variations-of", "drop --per-class"),
    cli("sample-variations-zero-per-image", ["sample", "--model", AAE, "--variations-of", "fashion-mnist-small",
                                             "--format", "parquet", "--out", NEW, "--per-image", "0"],
        "--per-image must be at least 1", "pass --per-image N with N >= 1"),
    cli("sample-strength-with-interpolate", ["sample", "--model", AAE, "--variations-of", "fashion-mnist-small",
                                             "--format", "parquet", "--out", NEW, "--mode", "interpolate",
                                             "--strength", "0.3"], "--strength applies to --mode vary",
        "drop --strength"),
    cli("sample-nan-strength", ["sample", "--model", AAE, "--variations-of", "fashion-mnist-small", "--format",
                                "parquet", "--out", NEW, "--strength", "nan"], "--strength must be a finite number >= 0",
        "0 gives reconstructions"),
    cli("sample-variations-of-missing-data", ["sample", "--model", AAE, "--variations-of", "{new}/nothing",
                                              "--format", "parquet", "--out", NEW], "no data at", "hf:<folder>"),
    cli("sample-variations-of-other-classes", ["sample", "--model", AAE, "--variations-of", "{data}", "--format",
                                               "parquet", "--out", NEW], "--variations-of {data} has 3 classes",
        "pass images of the classes and shape it was trained on"),
    cli("sample-variations-out-is-a-file", ["sample", "--model", AAE, "--variations-of", "fashion-mnist-small",
                                            "--format", "parquet", "--out", "{data}", "--per-image", "1"],
        "--out {data} is a file", "pick a new --out"),
    # eval: refused before any classifier is trained
    cli("eval-over-an-earlier-report", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--out",
                                        "{evaluated}"], "already holds an evaluation report (eval.json)",
        "Pass --overwrite to replace it"),
    cli("eval-model-folder-as-data", ["eval", "--model", RUN, "--data", RUN, "--test-data", "fashion-mnist-small",
                                      "--out", NEW], "holds a saved generator (model.safetensors), not labelled images",
        "pass it as the model (--model, from_pretrained)"),
    cli("eval-tested-on-its-training-data", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--test-data",
                                             "fashion-mnist-small", "--out", NEW],
        "500 of the 500 images of --test-data fashion-mnist-small are exact copies of training images",
        "augmentgen eval uses it when --test-data is left out"),
    cli("eval-out-is-a-file", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--out", "{data}"],
        "is an existing file", "choose a folder path"),
    cli("eval-infinite-ratio", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--ratios", "0,inf"],
        "--ratios takes comma-separated finite numbers >= 0", "like 0,0.25,0.5,1"),
    cli("eval-negative-ratio", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--ratios", "-1"],
        "--ratios takes comma-separated finite numbers >= 0", "like 0,0.25,0.5,1"),
    cli("eval-variation-without-encoder", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--out", NEW,
                                           "--methods", "plain,vary"], "--methods vary: the cgan family cannot vary",
        "drop vary from --methods"),
    cli("eval-unknown-method", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--out", NEW,
                                "--methods", "plain,weighed"], "--methods: unknown mixing method 'weighed'",
        "choose from ['extrapolate', 'filter', 'interpolate', 'plain', 'soft', 'vary', 'weighted']"),
    cli("eval-no-methods", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--out", NEW, "--methods", ","],
        "got ','", "--methods takes comma-separated names from ['extrapolate', 'filter'"),
    cli("eval-strength-not-a-number", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--out", NEW,
                                       "--methods", "vary:abc"], "mixing method 'vary:abc'", "like vary:0.3"),
    cli("eval-strength-on-weighted", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--out", NEW,
                                      "--methods", "weighted:0.5"], "mixing method 'weighted:0.5': only vary takes a strength",
        "like vary:0.3"),
    cli("eval-unknown-control", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--out", NEW,
                                 "--controls", "real-rows,mixup"], "got 'real-rows,mixup'",
        "--controls takes none, all, or comma-separated names from real-rows, pixel-mix"),
    cli("eval-zero-samples", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--out", NEW,
                              "--synthetic-per-class", "0"], "--synthetic-per-class must be at least 1",
        "pass --synthetic-per-class N"),
    cli("eval-data-without-test-split", ["eval", "--model", RUN, "--data", "{data}", "--out", NEW],
        "has no test split", "pass --test-data"),
    cli("eval-missing-data", ["eval", "--model", RUN, "--data", "fashion_mnist", "--out", NEW],
        "no data at 'fashion_mnist'", "did you mean 'fashion-mnist'?"),  # was: "has no test split"
    cli("eval-missing-test-data", ["eval", "--model", RUN, "--data", "{data}", "--test-data", "{data}-held-out",
                                   "--out", NEW], "--test-data: no data at", "no such file or folder"),
    cli("eval-data-of-other-classes", ["eval", "--model", RUN, "--data", "{data}", "--test-data", "{data}",
                                       "--out", NEW], "has 3 classes but the generator", "makes 10"),
    # the audit of issue 28's follow-up: each of these ended in a traceback, a silent surprise or a late failure
    cli("eval-nan-ratio", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--ratios", "0,nan"],
        "--ratios takes comma-separated finite numbers >= 0", "like 0,0.25,0.5,1"),
    cli("train-empty-out", train_args(""), "argument --out: the value is empty", "pass a path"),
    cli("eval-empty-test-data", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--test-data", ""],
        "argument --test-data: the value is empty", "pass a path"),
    cli("train-negative-seed", train_args(NEW, "--seed", "-1"), "--seed must be an int >= 0", "got -1; pass one from 0 to 2**32 - 1, like --seed 0", subprocess=True),
    cli("eval-negative-seed", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--per-class", "2",
                               "--seed", "-1", "--out", NEW], "--seed must be an int >= 0", "got -1"),
    cli("eval-one-image-per-class", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--per-class", "1",
                                     "--out", NEW],
        "the validation split needs at least 2 training images of every class, but class 'T-shirt/top' has 1",
        "pass more images of it"),
    cli("sample-npz-name-for-a-grid", ["sample", "--model", RUN, "--out", "{new}/s.npz"],
        "--out {new}/s.npz names an .npz file but --format grid writes one PNG image",
        "pass --format npz, or --out {new}/s.png"),
    cli("sample-png-name-for-npz", ["sample", "--model", RUN, "--out", "{new}/s.png", "--format", "npz"],
        "names one PNG image but --format npz writes an .npz file", "pass --format grid, or --out {new}/s.npz"),
    cli("set-class-count-of-other-data", train_args(NEW, "--set", "num_classes=3"),
        "model_config sets num_classes=3 but the data has num_classes=10", "drop num_classes from model_config (--set)"),
    cli("set-channels-against-channels", train_args(NEW, "--channels", "3", "--set", "in_channels=1"),
        "model_config sets in_channels=1 but the data has in_channels=3", "pass channels= (--channels)"),
    cli("set-class-names-of-another-count", train_args(NEW, "--set", 'class_names=["a", "b"]'),
        "model_config sets class_names to 2 names but the data has 10 classes (T-shirt/top, Trouser",
        "give one name per class of the data, in its order, or drop class_names from model_config (--set)"),
    # the audit of training and data loading: a traceback, and options refused without a hint
    cli("set-a-training-option", train_args(NEW, "--set", "steps=5"), "steps is not a CGANConfig field",
        "pass --steps 5"),
    cli("set-mistyped-field", train_args(NEW, "--set", "latnet_dim=16"), "has no field 'latnet_dim'",
        "did you mean 'latent_dim'?"),
    cli("train-out-behind-a-dangling-link", train_args("{dangling}/run"), "{dangling} is a symbolic link to",
        "which does not exist; create that folder", subprocess=True),
    cli("train-device", train_args(NEW, "--device", "cuda"), "train has no --device",
        "the CPU with ACCELERATE_USE_CPU=1"),
    # the audit of eval, sample --variations-of and loading: accepted, refused late or unclear
    cli("eval-negative-seed-without-subset", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--seed",
                                             "-1", "--out", NEW],
        "--seed must be an int >= 0 (it seeds the subsets, the samples and the classifiers), got -1",
        "like --seed 0"),
    cli("eval-seed-beyond-torch", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--seed",
                                   "99999999999999999999", "--out", NEW], "--seed must be an int >= 0",
        "pass one from 0 to 2**63 - 1"),
    cli("eval-negative-min-steps", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--epochs", "1",
                                    "--min-steps", "-1", "--out", NEW],
        "--min-steps must be at least 0 (the fewest steps of an --epochs budget; 0 sets no floor), got -1",
        "pass --min-steps N with N >= 0"),
    cli("eval-negative-min-validation-z", ["eval", "--model", RUN, "--data", "fashion-mnist-small",
                                           "--min-validation-z", "-1", "--out", NEW],
        "--min-validation-z takes a finite number >= 0", "0 mixes on any lead"),
    cli("eval-nan-min-validation-z", ["eval", "--model", RUN, "--data", "fashion-mnist-small",
                                      "--min-validation-z", "nan", "--out", NEW],
        "--min-validation-z takes a finite number >= 0", "got nan"),
    cli("eval-empty-test-data-file", ["eval", "--model", RUN, "--data", "fashion-mnist-small", "--test-data",
                                      "{empty}", "--out", NEW], "--test-data {empty}: the dataset is empty",
        "pass data with images of every class"),
    cli("sample-negative-seed", ["sample", "--model", RUN, "--out", "{new}/s.png", "--seed", "-1"],
        "--seed must be an int >= 0 (it seeds the noise), got -1", "like --seed 0"),
]


def _vary(s, **options):
    from augmentgen.mixing import VariationSource

    return VariationSource(s.aae, "vary", **options)


def _ten_classes(n_per_class=1):
    return make_images(n_per_class=n_per_class, num_classes=10)


def _hf_images(labels, num_classes=10, mode="L"):
    """A datasets.Dataset of ``labels``' rows, a ClassLabel of ``num_classes`` names."""
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=[f"c{i}" for i in range(num_classes)])})
    return datasets.Dataset.from_dict({"image": [Image.new(mode, (28, 28), 10 * i) for i in range(len(labels))],
                                       "label": list(labels)}, features=features)


def _hf_dataset():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["x", "y"])})
    return datasets.Dataset.from_dict({"img": [Image.new("L", (28, 28), v) for v in (0, 90)], "label": [0, 1]},
                                      features=features)


API_CASES = [
    api("load-garbage-npz", lambda s, t: augmentgen.load_data(s.garbage), DataError,
        "is not a valid images/labels .npz file", "as np.savez(path, images=..."),
    api("load-all-nan-images", lambda s, t: augmentgen.load_data(s.nan), DataError, "4 of 4 float images", "NaN"),
    api("load-hf-hub-id", lambda s, t: augmentgen.load_data("hf:someone/fashion"), DataError,
        "is not a local folder", ".save_to_disk("),
    api("load-mistyped-hf-column", lambda s, t: augmentgen.load_data(_hf_dataset(), image_column="image"),
        DataError, "image_column='image' is not a column", "did you mean 'img'?"),
    api("load-mistyped-builtin", lambda s, t: augmentgen.load_data("fashion-mnist-smal"), DataError,
        "no data at 'fashion-mnist-smal'", "did you mean 'fashion-mnist-small'?"),
    api("load-more-rows-than-data", lambda s, t: augmentgen.load_data(s.data, per_class=100), DataError,
        "asks for more images than some classes have", "use per_class=4 or less"),
    api("load-folder-of-splits", lambda s, t: augmentgen.train("cgan", s.split, t / "out", steps=2), DataError,
        "holds the split folders", "point --data at one split's folder"),
    api("load-mistyped-model-folder", lambda s, t: augmentgen.from_pretrained(f"{s.run}x"), CheckpointError,
        "no local folder", "did you mean"),
    api("load-mistyped-zoo-id", lambda s, t: augmentgen.from_pretrained("augmentgen/cgan-mnsit"), CheckpointError,
        "no zoo model named", "did you mean 'augmentgen/cgan-mnist'"),
    api("sample-one-class-name", lambda s, t: s.generator.sample("Bag"), DataError, "not a sequence",
        "pass ['Bag']"),
    api("sample-mistyped-class-name", lambda s, t: s.generator.sample(["Bagg"]), DataError,
        "'Bagg' is not a class name", "did you mean 'Bag'?"),
    api("sample-one-hot-labels", lambda s, t: s.generator.sample(torch.eye(10)), DataError,
        "labels must be 1-D, one class index per image, got shape (10, 10)", "pass labels.argmax(1)"),
    api("sample-float-labels", lambda s, t: s.generator.sample(torch.tensor([0.0, 1.0])), DataError,
        "labels must be integer class indices, got dtype torch.float32", "use labels.long()"),
    api("sample-zero-per-class", lambda s, t: s.generator.sample_per_class(0), ConfigError,
        "per_class must be a positive int", "got 0"),
    # A truthy string for a flag that deletes or replaces work would do what it denies.
    api("train-overwrite-as-a-string", lambda s, t: augmentgen.train("cgan", "fashion-mnist-small", s.run, steps=2,
                                                                     overwrite="no"), ConfigError,
        "overwrite must be True or False", "got 'no'"),
    api("export-overwrite-as-a-string", lambda s, t: augmentgen.write_samples(s.generator, 1, s.export, "imagefolder",
                                                                              overwrite="False"), ConfigError,
        "overwrite must be True or False", "got 'False'"),
    api("save-overwrite-as-a-string", lambda s, t: augmentgen.save_pretrained(s.generator, s.run, overwrite="no"),
        ConfigError, "overwrite must be True or False", "got 'no'"),
    api("export-into-an-export", lambda s, t: augmentgen.write_samples(s.generator, 1, s.export, "imagefolder"),
        DataError, "already exists and is not empty", "pass overwrite=True"),
    api("export-overwrite-a-run", lambda s, t: augmentgen.write_samples(s.generator, 1, s.run, "imagefolder",
                                                                        overwrite=True),
        DataError, "is not an earlier imagefolder export", "remove it yourself"),
    api("train-over-a-finished-run", lambda s, t: augmentgen.train("cgan", "fashion-mnist-small", s.run, steps=2),
        CheckpointError, "already holds a trained model", "overwrite=True"),
    api("train-unknown-family", lambda s, t: augmentgen.build_config("cgn"), UnknownFamilyError,
        "unknown model 'cgn'", "available:"),
    api("config-nan-learning-rate", lambda s, t: augmentgen.build_config("cgan", learning_rate=float("nan")),
        ConfigError, "learning_rate must be a finite number > 0", "(default 0.0002)"),
    api("config-unknown-training-field", lambda s, t: augmentgen.train("cgan", s.data, t / "out", stepz=3),
        ConfigError, "has no field(s) ['stepz']", "known fields"),
    api("mix-ratio-above-one", lambda s, t: augmentgen.SyntheticMix(s.generator, ratio=2, mode="replace"),
        ConfigError, "ratio must be in [0, 1] for mode='replace'", "(>= 0 for 'append')"),
    api("mix-ratio-a-string", lambda s, t: augmentgen.SyntheticMix(s.generator, ratio="0.5"), ConfigError,
        "ratio must be a number (synthetic rows per real row), got '0.5' of type str", "ratio=0.5"),
    api("mix-both-generator-and-source", lambda s, t: augmentgen.SyntheticMix(generator=s.generator,
                                                                              source=s.generator),
        ConfigError, "got both generator= and source=", "pass only source"),
    api("loader-arguments-swapped", lambda s, t: augmentgen.augment_loader(s.generator, [(torch.zeros(2), None)]),
        ConfigError, "source must be a ConditionalGenerator, a SyntheticPool or a row source", "got list"),
    api("mix-variations-replace-balanced", lambda s, t: augmentgen.SyntheticMix(_vary(s), mode="replace",
                                                                                balance="uniform"),
        ConfigError, "mode='replace' varies rows in place and cannot rebalance classes",
        "use mode='append' with balance=..., or balance=None"),
    api("mix-variations-temperature", lambda s, t: augmentgen.SyntheticMix(_vary(s), temperature=0.5), ConfigError,
        "temperature does not apply to VariationSource", "VariationSource(strength=...) sets how far they move"),
    # variations of real images: synthesize_variations, write_variation_shards, VariationSource
    api("variations-of-a-cgan", lambda s, t: augmentgen.mixing.VariationSource(s.generator, "vary"), ConfigError,
        "the cgan family cannot vary real images", "use an encoder family (aae, vae, ae, aegan) or ddpm"),
    api("variations-mistyped-mode", lambda s, t: augmentgen.mixing.VariationSource(s.aae, "vray"), ConfigError,
        "mode must be one of ('vary', 'interpolate', 'extrapolate')", "got 'vray'"),
    api("variations-given-the-data", lambda s, t: augmentgen.mixing.VariationSource(s.aae, _ten_classes()),
        ConfigError, "second argument is the mode", "it takes no data, it varies the real rows of each batch"),
    api("variations-strength-a-string", lambda s, t: _vary(s, strength="0.5"), ConfigError,
        "strength must be a finite number >= 0", "got '0.5'"),
    api("variations-bare-generator", lambda s, t: augmentgen.synthesize_variations(s.aae, _ten_classes()),
        ConfigError, "makes rows from real images through an anchored source",
        "wrap the generator, VariationSource(generator, 'vary')"),
    api("variations-zero-per-image", lambda s, t: augmentgen.synthesize_variations(_vary(s), _ten_classes(),
                                                                                   per_image=0),
        ConfigError, "per_image must be an int >= 1", "got 0"),
    api("variations-seed-a-string", lambda s, t: augmentgen.synthesize_variations(_vary(s), _ten_classes(),
                                                                                  seed="0"),
        ConfigError, "seed must be an int", "or None for fresh randomness"),
    api("variations-of-a-datasetdict", lambda s, t: augmentgen.synthesize_variations(
        _vary(s), pytest.importorskip("datasets").DatasetDict({"train": _hf_images(range(10))})),
        DataError, "got DatasetDict", "pick a split (ds['train'])"),
    api("variations-of-an-empty-dataset", lambda s, t: augmentgen.synthesize_variations(
        _vary(s), _hf_images(range(10)).select([])), DataError, "the dataset is empty", "pass your training images"),
    api("variations-of-rgb-images", lambda s, t: augmentgen.synthesize_variations(
        _vary(s), _hf_images(range(10), mode="RGB")), DataError,
        "takes (1, 28, 28) images but the images are (3, 28, 28)", "convert them to 1 channel(s) at 28x28"),
    api("variations-missing-classes", lambda s, t: augmentgen.synthesize_variations(_vary(s), _hf_images([0, 1, 2])),
        DataError, "no image of class 'Dress'", "pass images of all 10 classes"),
    api("variations-other-class-count", lambda s, t: augmentgen.synthesize_variations(
        _vary(s), _hf_images([0, 1, 2], num_classes=3)), DataError, "'label' has 3 classes",
        "use a generator trained on this dataset's classes"),
    api("variation-shards-of-labelled-images", lambda s, t: augmentgen.write_variation_shards(
        _vary(s), _ten_classes(), _ten_classes().labels, t / "bank"), DataError,
        "takes images as one tensor (N, C, H, W)", "pass train.images, train.labels"),
    api("variation-shards-float-0-255", lambda s, t: augmentgen.write_variation_shards(
        _vary(s), _ten_classes().images.float(), _ten_classes().labels, t / "bank"), DataError,
        "float images must be in the generators' [-1, 1]", "pass uint8 images in [0, 255]"),
    api("variation-shards-without-generator", lambda s, t: augmentgen.write_variation_shards(
        augmentgen.mixing.RealRowSource(10, (1, 28, 28)), _ten_classes().images, _ten_classes().labels, t / "bank"),
        ConfigError, "RealRowSource has no generator", "pass a VariationSource(generator, mode)"),
    # mixing methods and the loss weight of synthetic rows
    api("gain-methods-a-string", lambda s, t: augmentgen.metrics.downstream_gain(
        s.generator, _ten_classes(), _ten_classes(), methods="plain,weighted"), ConfigError,
        "got the string 'plain,weighted'", "pass methods=['plain', 'weighted']"),
    api("gain-no-methods", lambda s, t: augmentgen.metrics.downstream_gain(
        s.generator, _ten_classes(), _ten_classes(), methods=[]), ConfigError, "methods=[] names no mixing method",
        "pass at least one, like methods=['plain']"),
    api("gain-weighted-replacing-rows", lambda s, t: augmentgen.metrics.downstream_gain(
        s.generator, _ten_classes(), _ten_classes(), methods=["weighted"], mode="replace"), ConfigError,
        "method weighted weights the loss of the rows appended", "needs mode='append', not 'replace'"),
    api("gain-unknown-control", lambda s, t: augmentgen.metrics.downstream_gain(
        s.generator, _ten_classes(), _ten_classes(), controls=["mixup"]), ConfigError,
        "unknown control 'mixup'", "choose from real-rows, pixel-mix, 'all' or 'none'"),
    api("gain-controls-a-string", lambda s, t: augmentgen.metrics.downstream_gain(
        s.generator, _ten_classes(), _ten_classes(), controls="real-rows,pixel-mix"), ConfigError,
        "got the string 'real-rows,pixel-mix'", "pass controls=['real-rows', 'pixel-mix']"),
    api("gain-negative-min-validation-z", lambda s, t: augmentgen.metrics.downstream_gain(
        s.generator, _ten_classes(), _ten_classes(), min_validation_z=-1), ConfigError,
        "min_validation_z takes a finite number >= 0", "0 mixes on any lead"),
    api("classifier-negative-synthetic-weight", lambda s, t: augmentgen.metrics.train_classifier(
        _ten_classes(), steps=1, synthetic_weight=-0.5), ConfigError,
        "synthetic_weight must be a finite number >= 0", "got -0.5"),
    api("classifier-synthetic-weight-without-mix", lambda s, t: augmentgen.metrics.train_classifier(
        _ten_classes(), steps=1, synthetic_weight=0.5), ConfigError, "but there is no synthetic_mix",
        "pass synthetic_mix=SyntheticMix(source, mode='append'), or drop synthetic_weight"),
    api("classifier-synthetic-weight-replacing-rows", lambda s, t: augmentgen.metrics.train_classifier(
        _ten_classes(), steps=1, synthetic_weight=0.5,
        synthetic_mix=augmentgen.SyntheticMix(s.generator, mode="replace")), ConfigError,
        "this synthetic_mix has mode='replace'", "use mode='append'"),
    # the audit of issue 28's follow-up
    api("train-empty-output-dir", lambda s, t: augmentgen.train("cgan", "fashion-mnist-small", "", steps=2),
        ConfigError, "output_dir is an empty path", "pass the run's folder"),
    api("trainer-config-as-a-dict", lambda s, t: augmentgen.Trainer({"family": "cgan"}, None, t / "out"),
        ConfigError, "Trainer takes a model config first", "build_config('cgan', num_classes=10)"),
    api("config-built-directly-wrong-type", lambda s, t: augmentgen.families.gan.CGANConfig(latent_dim="8"),
        ConfigError, "CGANConfig.latent_dim must be an integer", "got '8'"),
    api("load-empty-path", lambda s, t: augmentgen.load_data(""), DataError, "the data is an empty path",
        "pass a built-in name"),
    api("load-a-pair-of-arrays", lambda s, t: augmentgen.load_data((_ten_classes().images, _ten_classes().labels)),
        DataError, "cannot read data from a tuple", "LabelledImages(images, labels, class_names)"),
    api("load-negative-seed", lambda s, t: augmentgen.load_data(s.data, per_class=2, seed=-1), ConfigError,
        "seed must be an int >= 0 (it seeds the subset draws)", "got -1"),
    api("load-imbalance-a-string", lambda s, t: augmentgen.load_data(s.data, imbalance="10"), DataError,
        "imbalance must be a number >= 1", "like imbalance=10"),
    api("sample-generator-a-seed", lambda s, t: s.generator.sample([0], generator=5), ConfigError,
        "generator must be a torch.Generator or None", "torch.Generator(device=model.device).manual_seed(seed)"),
    api("load-model-onto-gpu", lambda s, t: augmentgen.from_pretrained(s.run, device="gpu"), ConfigError,
        "device='gpu' is not a device", "use 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    api("eval-steps-a-string", lambda s, t: augmentgen.evaluate_generator(
        s.generator, _ten_classes(2), _ten_classes(2), steps="3"), ConfigError,
        "steps must be a positive int (optimizer steps of every classifier)", "pass steps=3"),
    api("labelled-class-names-a-string", lambda s, t: augmentgen.LabelledImages(
        _ten_classes().images[:2], [0, 1], "ab"), DataError, "class_names must be a list of strings",
        "for one class pass ['ab']"),
    api("labelled-string-labels", lambda s, t: augmentgen.LabelledImages(_ten_classes().images[:2], ["cat", "dog"]),
        DataError, "labels must be integer class indices", "np.unique(labels, return_inverse=True)"),
    api("labelled-labels-from-one", lambda s, t: augmentgen.LabelledImages(_ten_classes().images[:2], [1, 2]),
        DataError, "leave class(es) [0] without images", "renumber them"),
    api("load-hf-without-folder", lambda s, t: augmentgen.load_data("hf:"), DataError, "hf: names no folder",
        "pass hf:<folder>"),
    api("gain-balance-mistyped", lambda s, t: augmentgen.metrics.downstream_gain(
        s.generator, _ten_classes(2), _ten_classes(2), balance="unifrom"), ConfigError,
        "balance must be None, 'uniform', 'inverse-frequency' or a {class: weight} dict, got 'unifrom'", "or 'auto'"),
]


def _fill(text: str, saved: SimpleNamespace, tmp_path: Path) -> str:
    """``text`` with ``{run}``, ``{export}``, ... replaced by the saved paths and ``{new}`` by a free one."""
    paths = {name: str(value) for name, value in vars(saved).items() if isinstance(value, Path)}
    return text.format(new=str(tmp_path / "new"), **paths)


def _run_cli(argv: list[str], as_subprocess: bool, capsys) -> tuple[int, str]:
    if as_subprocess:
        result = subprocess.run([sys.executable, "-m", "augmentgen", *argv], capture_output=True, text=True,
                                cwd=REPO, timeout=120)
        return result.returncode, result.stderr
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_bad_command_line_gets_one_error_line_and_changes_nothing(case, saved, tmp_path, capsys):
    before = snapshot(saved.root)
    code, err = _run_cli([_fill(arg, saved, tmp_path) for arg in case.argv], case.subprocess, capsys)
    assert "Traceback" not in err
    assert code == 2, err
    first, *rest = err.splitlines() or [""]
    assert first.startswith("augmentgen: error: "), err
    assert _fill(case.problem, saved, tmp_path) in first and _fill(case.fix, saved, tmp_path) in first, first
    assert not rest, f"more than one line: {err}"
    assert snapshot(saved.root) == before


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: c.id)
def test_bad_python_call_raises_an_augmentgen_error_naming_problem_and_fix(case, saved, tmp_path):
    before = snapshot(saved.root)
    with pytest.raises(AugmentgenError) as info:
        case.call(saved, tmp_path)
    assert isinstance(info.value, case.error), repr(info.value)
    first = str(info.value).splitlines()[0]
    assert case.problem in first and case.fix in first, first
    assert snapshot(saved.root) == before


def test_the_table_covers_thirty_kinds_half_through_the_command_line():
    ids = [c.id for c in CLI_CASES + API_CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 30 and len(CLI_CASES) >= len(ids) / 2
    assert sum(c.subprocess for c in CLI_CASES) >= 2

