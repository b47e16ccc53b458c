"""Renamed names keep working for now, each with a FutureWarning (or, on the CLI, one stderr line)
naming the new one: one test per mechanism of ``augmentgen/_deprecation.py``, and one per old name.

When an old name is finally removed, its test here goes with it.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from augmentgen import TrainingConfig
from augmentgen._deprecation import renamed_argument, renamed_message
from augmentgen.cli import main
from augmentgen.errors import ConfigError
from augmentgen.models import build_config, build_generator


@pytest.fixture
def generator():
    torch.manual_seed(0)
    return build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8))


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ the helper
def test_renamed_argument_maps_the_old_keyword_with_a_future_warning():
    @renamed_argument("n_per_class", "per_class")
    def count(items, *, per_class: int = 1):
        """Doc kept."""
        return items * per_class

    with pytest.warns(FutureWarning, match=r"^n_per_class is renamed per_class; use per_class") as record:
        assert count(2, n_per_class=3) == 6
    assert record[0].filename == __file__  # attributed to the caller's line, not the wrapper's
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert count(2, per_class=3) == 6 and count(2) == 2
    assert count.__doc__ == "Doc kept." and count.__name__ == "count"
    with pytest.raises(TypeError, match="got both n_per_class= and per_class=; .* pass only per_class"):
        count(2, n_per_class=3, per_class=3)


def test_the_message_names_the_old_and_the_new_name():
    assert renamed_message("--model", "--family").startswith("--model is renamed --family; use --family")


# ------------------------------------------------------------------ n_per_class -> per_class (a keyword)
def test_n_per_class_still_works_on_sample_per_class_with_a_warning(generator):
    new_images, new_labels = generator.sample_per_class(per_class=2, generator=seeded())
    with pytest.warns(FutureWarning, match="n_per_class is renamed per_class"):
        old_images, old_labels = generator.sample_per_class(n_per_class=2, generator=seeded())
    assert torch.equal(old_images, new_images) and torch.equal(old_labels, new_labels)


def test_n_per_class_still_works_on_the_ddpm_override():
    torch.manual_seed(0)
    ddpm = build_generator(build_config("ddpm", num_classes=2, unet_width=8, channel_multipliers=[1, 2],
                                        sampling_steps=2))
    new_images, _ = ddpm.sample_per_class(1, generator=seeded(), sampling_steps=1)
    with pytest.warns(FutureWarning, match="n_per_class is renamed per_class"):
        images, labels = ddpm.sample_per_class(n_per_class=1, generator=seeded(), sampling_steps=1)
    assert torch.equal(images, new_images) and labels.tolist() == [0, 1]


@pytest.mark.parametrize("name", ["sample_uint8_per_class", "class_consistency", "classification_accuracy_score",
                                  "feature_distances", "coverage_report", "evaluate_generator"])
def test_every_measure_takes_per_class_and_still_n_per_class(name):
    import inspect

    from augmentgen import metrics

    function = getattr(metrics, name, None) or getattr(__import__("augmentgen"), name)
    parameters = inspect.signature(function).parameters
    assert "per_class" in parameters and "n_per_class" not in parameters
    assert getattr(function, "__wrapped__", None) is not None  # the renamed_argument wrapper


def test_n_per_class_on_a_measure_warns_and_gives_the_same_figures(generator):
    from augmentgen.metrics import sample_uint8_per_class

    new = sample_uint8_per_class(generator, per_class=2, seed=1)
    with pytest.warns(FutureWarning, match="n_per_class is renamed per_class"):
        old = sample_uint8_per_class(generator, n_per_class=2, seed=1)
    assert torch.equal(old.images, new.images) and old.class_counts == [2, 2, 2]


def test_feature_distances_old_per_class_switch_is_intra_class_fid(generator):
    """Before the rename, feature_distances' per_class was the intra-class FID switch (a bool);
    a bool still means that, so no call silently changes meaning."""
    from augmentgen.metrics import feature_distances
    from augmentgen.metrics.classifier import ReferenceClassifier
    from tests.conftest import make_images

    data = make_images(n_per_class=4, num_classes=3)
    classifier = ReferenceClassifier(num_classes=3, in_channels=1, image_size=28).eval()
    new = feature_distances(generator, classifier, data, per_class=4, intra_class_fid=False, kid_subsets=2)
    with pytest.warns(FutureWarning) as record:
        old = feature_distances(generator, classifier, data, n_per_class=4, per_class=False, kid_subsets=2)
    messages = sorted(str(w.message) for w in record if w.category is FutureWarning)
    assert messages[0].startswith("n_per_class is renamed per_class")
    assert messages[1].startswith("per_class=False is renamed intra_class_fid")
    same = [key for key in new if not key.startswith("kid")]  # KID draws random subsets
    assert {k: old[k] for k in same} == {k: new[k] for k in same}
    assert old["per_class_fid"] is None and old["n_synthetic"] == 12


def test_reports_write_the_count_as_per_class(generator):
    from augmentgen.metrics import class_consistency, coverage_report
    from augmentgen.metrics.classifier import ReferenceClassifier
    from tests.conftest import make_images

    data = make_images(n_per_class=4, num_classes=3)
    classifier = ReferenceClassifier(num_classes=3, in_channels=1, image_size=28).eval()
    coverage = coverage_report(generator, classifier, data, data, per_class=3)
    assert coverage["per_class"] == 3 and "n_per_class" not in coverage
    # class_consistency's "per_class" is its breakdown by class: its count keeps n_per_class
    consistency = class_consistency(generator, classifier, per_class=3)
    assert set(consistency["per_class"]) == {"0", "1", "2"} and consistency["n_per_class"] == 3


# ------------------------------------------------------------------ samples_per_class -> grid_per_class (a config field)
def test_a_training_config_saved_with_samples_per_class_still_loads():
    saved = TrainingConfig(steps=3).to_dict()  # a training.json "training_config" written before the rename:
    del saved["grid_per_class"]
    saved["samples_per_class"] = 4
    with pytest.warns(FutureWarning, match=r"TrainingConfig\.samples_per_class is renamed grid_per_class"):
        config = TrainingConfig.from_dict(saved)
    assert config == TrainingConfig(steps=3, grid_per_class=4)
    assert "samples_per_class" not in config.to_dict() and config.to_dict()["grid_per_class"] == 4
    with pytest.warns(FutureWarning, match="samples_per_class is renamed grid_per_class"):
        assert TrainingConfig(samples_per_class=4) == TrainingConfig(grid_per_class=4)
    with pytest.warns(FutureWarning, match="samples_per_class is renamed grid_per_class"):
        assert TrainingConfig().replace(samples_per_class=5).grid_per_class == 5
    with pytest.raises(ConfigError, match="got both 'samples_per_class' and 'grid_per_class'"):
        TrainingConfig.from_dict({"samples_per_class": 4, "grid_per_class": 4})
    with pytest.raises(ConfigError, match="grid_per_class must be at least 1"):
        with pytest.warns(FutureWarning):
            TrainingConfig.from_dict({"samples_per_class": 0})


# ------------------------------------------------------------------ the CLI's train --model and --samples-per-class
TINY = ["--set", "generator_width=8", "--set", "discriminator_width=8", "--set", "latent_dim=16"]


def old_train_command(out, *extra):
    """A train command as written before the renames (as an old run's training.json records it)."""
    return ["train", "--model", "cgan", "--data", "fashion-mnist-small", "--per-class", "2", "--out", str(out),
            "--steps", "2", "--batch-size", "6", "--sample-every", "0", "--samples-per-class", "2",
            "--checkpoint-every", "1", *TINY, *extra]


def test_train_model_and_samples_per_class_still_work_with_one_line_each(tmp_path, capsys):
    from augmentgen.hub import load_generator

    out = tmp_path / "run"
    assert main(old_train_command(out, "--set", "loss=bce")) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "is renamed" in line]
    assert lines == ["augmentgen: warning: --model is renamed --family; use --family (--model still works for now "
                     "and will be removed in a future release)",
                     "augmentgen: warning: --samples-per-class is renamed --grid-per-class; use --grid-per-class "
                     "(--samples-per-class still works for now and will be removed in a future release)"]
    assert load_generator(out).family == "cgan"
    assert json.loads((out / "training.json").read_text())["training_config"]["grid_per_class"] == 2
    # the same option under both names is refused, not silently resolved
    assert main(old_train_command(tmp_path / "both", "--family", "aae")) == 2
    assert "--model and --family are the same option" in capsys.readouterr().err


def test_train_help_shows_only_the_new_names(capsys):
    from augmentgen.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    text = train.format_help()
    assert "--family FAMILY" in text and "--grid-per-class" in text
    assert "--model" not in text and "--samples-per-class" not in text
    args = train.parse_args(["--model", "vae", "--samples-per-class", "3"])
    assert args.family == "vae" and args.grid_per_class == 3


def test_an_old_run_folder_resumes_with_its_recorded_command(tmp_path, capsys):
    """A run written before the renames: its training.json has samples_per_class and its command
    --model / --samples-per-class; resuming it with that command is not refused."""
    out = tmp_path / "run"
    assert main(old_train_command(out)) == 0
    summary = json.loads((out / "training.json").read_text())
    config = summary["training_config"]
    config["samples_per_class"] = config.pop("grid_per_class")
    (out / "training.json").write_text(json.dumps(summary))
    with pytest.warns(FutureWarning, match="samples_per_class is renamed grid_per_class"):
        assert TrainingConfig.from_dict(summary["training_config"]).grid_per_class == 2
    capsys.readouterr()
    assert main([*old_train_command(out, "--resume", "--steps", "3")]) == 0
    assert "is renamed" in capsys.readouterr().err
    resumed = json.loads((out / "training.json").read_text())
    assert resumed["steps"] == 3 and resumed["training_config"]["grid_per_class"] == 2


def test_eval_synthetic_per_class_and_its_old_spelling():
    """eval's count of synthetic images per class is --synthetic-per-class (--per-class is the
    training subset); --samples-per-class still parses to it, hidden from the help."""
    from augmentgen.cli import build_parser

    evaluate = build_parser()._subparsers._group_actions[0].choices["eval"]
    assert "--synthetic-per-class" in evaluate.format_help() and "--samples-per-class" not in evaluate.format_help()
    args = evaluate.parse_args(["--model", "m", "--data", "d", "--samples-per-class", "3"])
    assert args.synthetic_per_class == 3 and args.renamed_options == [("--samples-per-class", "--synthetic-per-class")]


def test_train_takes_family_and_its_old_keyword_model(monkeypatch):
    import augmentgen.api as api

    seen = []
    monkeypatch.setattr(api, "_refuse_before_loading", lambda family, *a, **k: seen.append(family) or exit_early())
    with pytest.raises(_Stop):
        api.train(family="vae")
    with pytest.warns(FutureWarning, match="model is renamed family"), pytest.raises(_Stop):
        api.train(model="aae")
    assert seen == ["vae", "aae"]


class _Stop(Exception):
    pass


def exit_early():
    raise _Stop


# ------------------------------------------------------------------ generator -> source (SyntheticMix, augment_loader)
def real_batch(generator, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """A float batch in [0, 1] of the generator's shape, every class present."""
    return torch.rand(n, *generator.image_shape, generator=seeded(1)), torch.arange(n) % generator.num_classes


def same_mixing(first, second, images, labels, calls: int = 2) -> bool:
    """Whether two mixers give the same batches, call after call."""
    for _ in range(calls):
        (a_images, a_labels), (b_images, b_labels) = first(images, labels), second(images, labels)
        if not (torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)):
            return False
    return True


@pytest.mark.parametrize("kind", ["generator", "generator source", "pool"])
def test_synthetic_mix_takes_source_and_still_generator(generator, kind):
    from augmentgen.mixing import GeneratorSource, SyntheticMix, SyntheticPool

    source = {"generator": lambda: generator, "generator source": lambda: GeneratorSource(generator),
              "pool": lambda: SyntheticPool(generator, per_class=4, batch_size=12, seed=0)}[kind]()
    images, labels = real_batch(generator)
    new = SyntheticMix(source=source, ratio=0.5, seed=3)
    with pytest.warns(FutureWarning, match=r"^generator is renamed source; use source") as record:
        old = SyntheticMix(generator=source, ratio=0.5, seed=3)
    assert record[0].filename == __file__  # attributed to the caller's line
    assert type(old.source) is type(new.source) and same_mixing(old, new, images, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        positional = SyntheticMix(source, 0.5, seed=3)  # the first positional parameter, unchanged
    assert same_mixing(positional, SyntheticMix(source=source, ratio=0.5, seed=3), images, labels)
    with pytest.raises(TypeError, match=r"got both generator= and source=; .* pass only source"):
        SyntheticMix(generator=source, source=source)


def test_synthetic_mix_generator_attribute_is_still_the_bare_generator(generator):
    """``mix.source`` is the row source; ``mix.generator`` is what it always was, the
    ConditionalGenerator of a generator source (None for other sources): not renamed."""
    from augmentgen.mixing import GeneratorSource, SyntheticMix

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mix = SyntheticMix(generator, 0.5)
        assert isinstance(mix.source, GeneratorSource) and mix.generator is generator


def test_augment_loader_takes_source_and_still_generator(generator):
    from augmentgen.mixing import augment_loader

    images, labels = real_batch(generator)
    loader = [(images, labels), (images, labels)]
    new = list(augment_loader(loader, source=generator, ratio=0.5, seed=3))
    with pytest.warns(FutureWarning, match=r"^generator is renamed source; use source") as record:
        old = list(augment_loader(loader, generator=generator, ratio=0.5, seed=3))
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        positional = list(augment_loader(loader, generator, 0.5, seed=3))  # the second positional parameter
    assert len(new) == len(old) == len(positional) == 2
    for (n_images, n_labels), (o_images, o_labels), (p_images, p_labels) in zip(new, old, positional):
        assert len(n_images) == 9  # 6 real rows and round(0.5 * 6) synthetic ones
        assert torch.equal(o_images, n_images) and torch.equal(o_labels, n_labels)
        assert torch.equal(p_images, n_images) and torch.equal(p_labels, n_labels)
    with pytest.raises(TypeError, match=r"got both generator= and source=; .* pass only source"):
        augment_loader(loader, generator=generator, source=generator)


def test_a_synthetic_mix_state_saved_before_the_rename_still_loads(generator):
    """No key of the state names the source, so the rename leaves it as it was: a state saved by a
    mixer built with ``generator=`` loads into one built with ``source=`` and continues its stream."""
    import io

    from augmentgen.mixing import SyntheticMix

    images, labels = real_batch(generator)
    with pytest.warns(FutureWarning, match="generator is renamed source"):
        before = SyntheticMix(generator=generator, ratio=0.5, seed=3, balance="inverse-frequency")
    before(images, labels)
    buffer = io.BytesIO()
    torch.save(before.state_dict(), buffer)  # as a checkpoint holds it
    state = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    # the keys a state had before the rename
    assert set(state) == {"rng_state", "class_counts", "candidate_counts", "accepted_counts", "output_range"}
    after = SyntheticMix(source=generator, ratio=0.5, seed=99, balance="inverse-frequency")
    after.load_state_dict(state)
    assert same_mixing(before, after, images, labels)


def test_make_synthetic_mix_takes_source_and_still_generator(generator):
    from augmentgen.metrics import make_synthetic_mix

    images, labels = real_batch(generator)
    new = make_synthetic_mix(source=generator, ratio=0.5, seed=3)
    with pytest.warns(FutureWarning, match=r"^generator is renamed source; use source"):
        old = make_synthetic_mix(generator=generator, ratio=0.5, seed=3)
    assert same_mixing(old, new, images, labels)
