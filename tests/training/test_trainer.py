import errno
import json
import os

import pytest
import torch

from augmentgen.errors import CheckpointError, DataError, TrainingDivergedError
from augmentgen.families.gan import GANStep
from augmentgen.hub import load_generator
from augmentgen.models import build_config
from augmentgen.training import Trainer, TrainingConfig
from tests.conftest import TINY_GAN, make_images


def tiny_config(data, **overrides):
    return build_config("cgan", num_classes=data.num_classes, class_names=data.class_names,
                        **{**TINY_GAN, **overrides})


def tiny_training(**overrides):
    values = dict(steps=6, batch_size=8, checkpoint_every=3, sample_every=3, samples_per_class=2,
                  log_every=1, seed=0)
    return TrainingConfig(**{**values, **overrides})


def test_fit_writes_weights_config_grid_and_summary(tmp_path, tiny_data):
    generator = Trainer(tiny_config(tiny_data), tiny_training(), tmp_path).fit(tiny_data)
    for name in ("model.safetensors", "config.json", "samples.png", "training.json",
                 "samples/step-0000003.png", "checkpoints/step-0000003"):
        assert (tmp_path / name).exists(), name
    summary = json.loads((tmp_path / "training.json").read_text())
    assert summary["steps"] == 6 and summary["images_per_second"] > 0
    assert [h["step"] for h in summary["history"]] == [1, 2, 3, 4, 5, 6]
    loaded = load_generator(tmp_path)
    labels = torch.tensor([0, 1, 2, 2])
    seed = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    torch.testing.assert_close(loaded.sample(labels, generator=seed()),
                               generator.sample(labels, generator=seed()))


def test_training_lowers_the_class_loss_on_separable_data(tmp_path):
    data = make_images(n_per_class=16)
    config = tiny_config(data, diffaugment="", learning_rate=1e-3)
    trainer = Trainer(config, tiny_training(steps=40, checkpoint_every=0, sample_every=0), tmp_path)
    trainer.fit(data)
    first = sum(h["d_class_loss"] for h in trainer.history[:10]) / 10
    last = sum(h["d_class_loss"] for h in trainer.history[-10:]) / 10
    assert last < 0.5 * first


class Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, tiny_data, monkeypatch):
    full = Trainer(tiny_config(tiny_data), tiny_training(), tmp_path / "full").fit(tiny_data)

    calls = {"n": 0}
    original = GANStep.__call__

    def crash_at_step_5(self, *args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise Interrupt
        return original(self, *args)

    monkeypatch.setattr(GANStep, "__call__", crash_at_step_5)
    with pytest.raises(Interrupt):
        Trainer(tiny_config(tiny_data), tiny_training(), tmp_path / "cut").fit(tiny_data)
    monkeypatch.setattr(GANStep, "__call__", original)
    assert not (tmp_path / "cut" / "model.safetensors").exists()

    resumed = Trainer(tiny_config(tiny_data), tiny_training(), tmp_path / "cut").fit(tiny_data, resume=True)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_existing_checkpoints_are_not_overwritten_without_resume(tmp_path, tiny_data):
    Trainer(tiny_config(tiny_data), tiny_training(), tmp_path).fit(tiny_data)
    with pytest.raises(CheckpointError, match="resume"):
        Trainer(tiny_config(tiny_data), tiny_training(), tmp_path).fit(tiny_data)


def test_resume_without_checkpoints_is_an_error(tmp_path, tiny_data):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        Trainer(tiny_config(tiny_data), tiny_training(), tmp_path).fit(tiny_data, resume=True)


def _nan_at(step_number, monkeypatch, times=1):
    calls = {"n": 0, "nans": 0}
    original = GANStep.__call__

    def step(self, *args):
        calls["n"] += 1
        losses = original(self, *args)
        if calls["n"] == step_number and calls["nans"] < times:
            calls["nans"] += 1
            losses["g_loss"] = torch.tensor(float("nan"))
        return losses

    monkeypatch.setattr(GANStep, "__call__", step)


def test_divergence_stops_with_the_step_and_loss(tmp_path, tiny_data, monkeypatch):
    _nan_at(4, monkeypatch)
    with pytest.raises(TrainingDivergedError, match=r"step 4.*g_loss=nan"):
        Trainer(tiny_config(tiny_data), tiny_training(), tmp_path).fit(tiny_data)
    assert (tmp_path / "checkpoints" / "step-0000003").is_dir()  # the last good one survives


def test_divergence_rollback_lowers_lr_and_finishes(tmp_path, tiny_data, monkeypatch):
    _nan_at(5, monkeypatch)
    trainer = Trainer(tiny_config(tiny_data), tiny_training(on_divergence="rollback"), tmp_path)
    with pytest.warns(UserWarning, match="rolled back to step 3"):
        trainer.fit(tiny_data)
    assert trainer.progress.lr_scale == 0.5 and trainer.progress.step == 6
    assert (tmp_path / "model.safetensors").exists()


def test_resume_after_a_rollback_keeps_the_once_halved_learning_rates(tmp_path, tiny_data, monkeypatch):
    # Issue 16: a checkpoint written after a rollback already holds the halved rates (and
    # lr_scale=0.5); resuming from it must not halve them a second time.
    config = tiny_training(steps=9, sample_every=0, on_divergence="rollback")
    original = GANStep.__call__
    lrs = lambda step: [g["lr"] for opt in step.optimizers() for g in opt.param_groups]  # noqa: E731
    calls, seen = {"n": 0}, {}

    def nan_at_5(self, *args):
        calls["n"] += 1
        seen.setdefault("initial", lrs(self))
        losses = original(self, *args)
        if calls["n"] == 5:  # step 5 diverges: back to the step-3 checkpoint, rates x0.5
            losses["g_loss"] = torch.tensor(float("nan"))
        return losses

    monkeypatch.setattr(GANStep, "__call__", nan_at_5)
    with pytest.warns(UserWarning, match="rolled back to step 3"):
        full = Trainer(tiny_config(tiny_data), config, tmp_path / "full").fit(tiny_data)

    def nan_at_5_then_crash(self, *args):
        if calls["n"] == 9:  # step 8: after the rollback and the step-6 checkpoint
            seen["before"] = lrs(self)
            raise Interrupt
        return nan_at_5(self, *args)

    calls["n"] = 0
    monkeypatch.setattr(GANStep, "__call__", nan_at_5_then_crash)
    with pytest.warns(UserWarning, match="rolled back to step 3"), pytest.raises(Interrupt):
        Trainer(tiny_config(tiny_data), config, tmp_path / "cut").fit(tiny_data)
    assert seen["before"] == [lr * 0.5 for lr in seen["initial"]]

    def record(self, *args):
        seen.setdefault("resumed", lrs(self))
        return original(self, *args)

    monkeypatch.setattr(GANStep, "__call__", record)
    trainer = Trainer(tiny_config(tiny_data), config, tmp_path / "cut")
    resumed = trainer.fit(tiny_data, resume=True)
    assert seen["resumed"] == seen["before"]  # halved once, not twice
    assert trainer.progress.lr_scale == 0.5
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_disk_full_during_checkpoint_keeps_the_previous_one(tmp_path, tiny_data, monkeypatch):
    trainer = Trainer(tiny_config(tiny_data), tiny_training(steps=7), tmp_path)
    original = trainer.accelerator.save_state
    calls = {"n": 0}

    def save_state(path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(path)

    monkeypatch.setattr(trainer.accelerator, "save_state", save_state)
    with pytest.raises(CheckpointError, match="No space left"):
        trainer.fit(tiny_data)
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert checkpoints == ["step-0000003"]  # no half-written step-6, no temp folder


def test_data_that_does_not_fit_the_model_is_refused(tmp_path, tiny_data):
    rgb = make_images(channels=3)
    with pytest.raises(DataError, match="in_channels"):
        Trainer(tiny_config(tiny_data), tiny_training(), tmp_path).fit(rgb)


def test_plain_dataloader_of_float_batches(tmp_path, tiny_data):
    dataset = torch.utils.data.TensorDataset(tiny_data.to_float(), tiny_data.labels)
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=True, drop_last=True)
    Trainer(tiny_config(tiny_data), tiny_training(steps=4), tmp_path).fit(loader)
    assert (tmp_path / "model.safetensors").exists()


def test_ema_warms_up_then_follows_the_configured_decay():
    from augmentgen.training.trainer import ema_with_warmup

    update = ema_with_warmup(0.999)
    average, current = [torch.zeros(3)], [torch.ones(3)]
    update(average, current, torch.tensor(0))
    # First update weights the new value by 1 - 1/10: short runs are not stuck at the init.
    torch.testing.assert_close(average[0], torch.full((3,), 0.9))
    average = [torch.zeros(3)]
    update(average, current, torch.tensor(100_000))
    torch.testing.assert_close(average[0], torch.full((3,), 0.001))
    counts = [torch.tensor(3)]
    update(counts, [torch.tensor(7)], torch.tensor(5))
    assert counts[0].item() == 7


@pytest.mark.parametrize("error", [errno.EACCES, errno.EROFS, errno.ENOSPC])
def test_unwritable_output_when_saving_the_final_model_keeps_what_was_saved(tmp_path, tiny_data, monkeypatch, error):
    # Running as root ignores chmod, so the read-only / full filesystem is simulated at the write.
    Trainer(tiny_config(tiny_data), tiny_training(steps=4), tmp_path).fit(tiny_data)  # checkpoint at 3
    before = (tmp_path / "model.safetensors").read_bytes()

    def failing_fdopen(*args, **kwargs):
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr("augmentgen.hub.serialization.os.fdopen", failing_fdopen)
    trainer = Trainer(tiny_config(tiny_data), tiny_training(steps=6), tmp_path)
    with pytest.raises(CheckpointError, match=os.strerror(error)):
        trainer.fit(tiny_data, resume=True)
    assert (tmp_path / "model.safetensors").read_bytes() == before  # the old model, whole
    assert not list(tmp_path.glob(".model.safetensors.*"))  # no temporary file left behind
    assert load_generator(tmp_path).num_classes == 3
