"""Starting a run from a pretrained generator (``TrainingConfig.init_from``): issue 19."""

import json

import pytest
import torch
from safetensors import safe_open

from augmentgen.errors import ConfigError, DataError
from augmentgen.families.gan import GANStep
from augmentgen.hub import load_generator, save_pretrained
from augmentgen.models import build_config, build_generator, step_class
from augmentgen.training import Trainer, TrainingConfig
from augmentgen.training.transfer import class_dependent_names, transfer_weights
from tests.conftest import TINY_GAN, make_images

# prior_components == the source's 3 classes: a size that only looks like a class axis.
TINY_AAE = {"encoder_width": 8, "decoder_width": 8, "latent_dim": 8, "prior_components": 3,
            "discriminator_hidden": 16}
TINY = {"cgan": TINY_GAN, "aae": TINY_AAE}


def run_config(family, data, **overrides):
    return build_config(family, num_classes=data.num_classes, class_names=data.class_names,
                        in_channels=data.image_shape[0], image_size=data.image_shape[1],
                        **{**TINY[family], **overrides})


def save_source(path, family="cgan", *, num_classes=3, size=28, channels=1):
    """A saved tiny generator whose every float tensor differs from any fresh initialisation."""
    config = run_config(family, make_images(1, num_classes, channels, size))
    torch.manual_seed(123)
    generator = build_generator(config).eval()
    with torch.no_grad():
        for tensor in generator.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.05 * torch.randn_like(tensor))
    save_pretrained(generator, path, grid=False)
    return path


def training(source, **overrides):
    values = dict(steps=2, batch_size=6, checkpoint_every=0, sample_every=0, grid_per_class=2,
                  log_every=1, seed=0, init_from=str(source))
    return TrainingConfig(**{**values, **overrides})


def no_update(monkeypatch, family):
    """Make every training step a no-op, so the saved weights are the initial ones."""
    monkeypatch.setattr(step_class(family), "__call__", lambda self, images, labels: {"loss": torch.zeros(())})


def states_equal(a, b, names):
    for name in names:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("family", ["cgan", "aae"])
def test_same_classes_copy_every_generator_tensor(family, tmp_path, monkeypatch):
    source = save_source(tmp_path / "source", family)
    data = make_images(n_per_class=2)  # the source's 3 classes, same names
    no_update(monkeypatch, family)
    trainer = Trainer(run_config(family, data), training(source), tmp_path / "run")
    trainer.fit(data)
    src, out = load_generator(source).state_dict(), load_generator(tmp_path / "run").state_dict()
    assert trainer.init_source["copied"] == list(out) and trainer.init_source["same_classes"]
    assert trainer.init_source["reinitialised"] == [] and trainer.init_source["skipped"] == []
    states_equal(out, src, out)


@pytest.mark.parametrize("family", ["cgan", "aae"])
def test_other_class_count_reinitialises_exactly_the_class_tables(family, tmp_path, monkeypatch):
    source = save_source(tmp_path / "source", family, num_classes=3)
    data = make_images(n_per_class=2, num_classes=4)
    config = run_config(family, data)
    no_update(monkeypatch, family)
    trainer = Trainer(config, training(source), tmp_path / "run")
    trainer.fit(data)

    torch.manual_seed(0)  # the run's seed: what a run from scratch starts from
    fresh = build_generator(config).state_dict()
    src, out = load_generator(source).state_dict(), load_generator(tmp_path / "run").state_dict()
    expected = [n for n in out if n.endswith(("embed.weight", "scale.weight", "shift.weight"))]
    report = json.loads((tmp_path / "run" / "training.json").read_text())["init_from"]
    assert report["reinitialised"] == expected == class_dependent_names(build_generator(config))
    assert report["copied"] == [n for n in out if n not in expected] and report["skipped"] == []
    if family == "aae":
        assert "prior_means" in report["copied"] and "encoder.embed.weight" in expected
    states_equal(out, fresh, expected)
    states_equal(out, src, report["copied"])


def test_the_source_id_and_sha256_are_recorded(tmp_path):
    source = save_source(tmp_path / "source")
    data = make_images(n_per_class=2, num_classes=4)
    Trainer(run_config("cgan", data), training(source), tmp_path / "run").fit(data)
    with safe_open(str(source / "model.safetensors"), framework="pt") as f:
        sha = f.metadata()["augmentgen_sha256"]
    summary = json.loads((tmp_path / "run" / "training.json").read_text())
    assert summary["init_from"]["id"] == str(source) and summary["init_from"]["sha256"] == sha
    assert summary["training_config"]["init_from"] == str(source)
    with safe_open(str(tmp_path / "run" / "model.safetensors"), framework="pt") as f:
        meta = f.metadata()
    assert meta["augmentgen_init_from"] == str(source) and meta["augmentgen_init_from_sha256"] == sha
    load_generator(tmp_path / "run")  # the saved model still loads strictly


@pytest.mark.parametrize(("family", "size", "channels", "error", "match"), [
    ("aae", 28, 1, ConfigError, r"family 'aae' but this run's model is of family 'cgan'.*--family aae"),
    ("cgan", 32, 1, DataError, r"32x32 pixels where this run's images are 28x28.*resize"),
    ("cgan", 28, 3, DataError, r"3 channel\(s\) where this run's images have 1.*channels=3"),
])
def test_mismatched_sources_are_refused_before_training(family, size, channels, error, match, tmp_path, monkeypatch):
    source = save_source(tmp_path / "source", family, size=size, channels=channels)
    data = make_images(n_per_class=2)

    def never(self, *args):
        raise AssertionError("training started")

    monkeypatch.setattr(GANStep, "__call__", never)
    with pytest.raises(error, match=match):
        Trainer(run_config("cgan", data), training(source), tmp_path / "run").fit(data)
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_transfer_lr_scale_gives_transferred_parameters_their_own_group(tmp_path):
    source = save_source(tmp_path / "source", num_classes=3)
    data = make_images(n_per_class=2, num_classes=4)
    config = run_config("cgan", data)
    trainer = Trainer(config, training(source, steps=1, transfer_lr_scale=0.1), tmp_path / "run")
    trainer.fit(data)
    step = trainer.step
    params = dict(trainer.accelerator.unwrap_model(step.generator).named_parameters())
    groups = step.g_opt.param_groups
    assert [g["lr"] for g in groups] == pytest.approx([config.learning_rate, 0.1 * config.learning_rate])
    copied = {id(params[n]) for n in trainer.init_source["copied"] if n in params}
    assert {id(p) for p in groups[1]["params"]} == copied
    assert {id(p) for p in groups[0]["params"]} == {id(params[n]) for n in trainer.init_source["reinitialised"]}
    assert all(g["betas"] == tuple(config.betas) for g in groups)
    # The discriminator is not transferred: one group, its usual rate.
    assert [g["lr"] for g in step.d_opt.param_groups] == pytest.approx(
        [config.learning_rate * config.discriminator_lr_scale])

    default = Trainer(config, training(source, steps=1), tmp_path / "default")
    default.fit(data)
    assert len(default.step.g_opt.param_groups) == 1  # today's layout unless asked


def test_resume_with_scaled_groups_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    source = save_source(tmp_path / "source", num_classes=3)
    data = make_images(n_per_class=2, num_classes=4)
    config = run_config("cgan", data)
    cfg = training(source, steps=4, checkpoint_every=2, transfer_lr_scale=0.5)
    full = Trainer(config, cfg, tmp_path / "full").fit(data)

    original, calls = GANStep.__call__, {"n": 0}

    def crash_at_3(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(GANStep, "__call__", crash_at_3)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, cfg, tmp_path / "cut").fit(data)
    monkeypatch.setattr(GANStep, "__call__", original)
    resumed = Trainer(config, cfg, tmp_path / "cut").fit(data, resume=True)
    states_equal(resumed.state_dict(), full.state_dict(), full.state_dict())


def test_freeze_discriminator_layers_freezes_the_first_encoder_blocks(tmp_path):
    source = save_source(tmp_path / "source", "aae", num_classes=3)
    data = make_images(n_per_class=2, num_classes=4)
    trainer = Trainer(run_config("aae", data), training(source, freeze_discriminator_layers=2), tmp_path / "run")
    trainer.fit(data)
    frozen = ["encoder.features.net.0.weight", "encoder.features.net.0.bias",
              "encoder.features.net.2.weight", "encoder.features.net.2.bias"]
    assert trainer.init_source["frozen"] == frozen
    params = dict(trainer.step.plain_generator.named_parameters())
    assert [n for n, p in params.items() if not p.requires_grad] == frozen
    src, out = load_generator(source).state_dict(), load_generator(tmp_path / "run").state_dict()
    states_equal(out, src, frozen)  # unchanged by two steps (and by the EMA)
    for name in ("encoder.features.net.4.weight", "encoder.head.weight", "decoder.to_image.weight"):
        assert not torch.equal(out[name], src[name]), name  # the rest did train


def test_freeze_is_refused_where_there_is_nothing_pretrained_to_freeze(tmp_path):
    data = make_images(n_per_class=2)
    cgan = save_source(tmp_path / "cgan")
    with pytest.raises(ConfigError, match="holds no discriminator"):
        Trainer(run_config("cgan", data), training(cgan, freeze_discriminator_layers=1), tmp_path / "a").fit(data)
    aae = save_source(tmp_path / "aae", "aae")
    with pytest.raises(ConfigError, match="has 3 conv blocks"):
        Trainer(run_config("aae", data), training(aae, freeze_discriminator_layers=4), tmp_path / "b").fit(data)
    for field, value in (("freeze_discriminator_layers", 1), ("transfer_lr_scale", 0.5)):
        with pytest.raises(ConfigError, match="set init_from"):
            TrainingConfig.from_dict({field: value})
    with pytest.raises(ConfigError, match="transfer_lr_scale"):
        TrainingConfig.from_dict({"init_from": str(cgan), "transfer_lr_scale": 0})
    assert not any((tmp_path / d / "model.safetensors").exists() for d in ("a", "b"))


def test_transfer_weights_reports_shape_mismatches_as_skipped():
    data = make_images(n_per_class=1)
    source = build_generator(run_config("cgan", data, generator_width=16))
    target = build_generator(run_config("cgan", data))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    report = transfer_weights(target, source.state_dict(), reinit_class_dependent=False)
    assert report["reinitialised"] == [] and "decoder.embed.weight" in report["copied"]
    assert "decoder.project.weight" in report["skipped"] and "decoder.to_image.bias" in report["copied"]
    assert sorted(report["copied"] + report["skipped"]) == sorted(before)
    for name in report["skipped"]:
        assert torch.equal(target.state_dict()[name], before[name]), name
    dry = transfer_weights(build_generator(run_config("cgan", data)), source.state_dict(),
                           reinit_class_dependent=True, dry_run=True)
    assert "decoder.embed.weight" in dry["reinitialised"]
