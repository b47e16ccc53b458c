import errno
import json
import math
import os
import sys

import pytest
import torch

from augmentgen.errors import CheckpointError, DataError, TrainingDivergedError
from augmentgen.families.gan import GANStep
from augmentgen.hub import load_generator
from augmentgen.models import build_config, build_generator, step_class
from augmentgen.training import Trainer, TrainingConfig
from tests.conftest import TINY_GAN, make_images


def tiny_config(data, **overrides):
    return build_config("cgan", num_classes=data.num_classes, class_names=data.class_names,
                        **{**TINY_GAN, **overrides})


def tiny_training(**overrides):
    values = dict(steps=6, batch_size=8, checkpoint_every=3, sample_every=3, grid_per_class=2,
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


def test_accelerates_own_rotation_would_lose_the_last_checkpoint_on_a_failed_save(tmp_path, monkeypatch):
    """Why the trainer rotates checkpoints itself (see Trainer.save_checkpoint): with
    ProjectConfiguration(automatic_checkpoint_naming=True, total_limit=1), Accelerator.save_state
    deletes the previous checkpoint before it writes the next, so a save that fails (disk full)
    leaves no complete checkpoint; the test above shows ours keeps the previous one."""
    import accelerate.accelerator
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    acc = Accelerator(cpu=True, project_config=ProjectConfiguration(
        project_dir=str(tmp_path), automatic_checkpoint_naming=True, total_limit=1))
    model, optimizer = acc.prepare(torch.nn.Linear(2, 2), torch.optim.SGD(torch.nn.Linear(2, 2).parameters()))
    acc.save_state()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint_0"]

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(accelerate.accelerator, "save_accelerator_state", disk_full)
    with pytest.raises(OSError):
        acc.save_state()
    left = sorted((tmp_path / "checkpoints").iterdir())
    assert [p.name for p in left] == ["checkpoint_1"]  # checkpoint_0 is gone ...
    assert not any(p.name.startswith("random_states") for p in left[0].iterdir())  # ... and _1 is partial


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

    import augmentgen.hub.serialization as serialization

    real_write = serialization.atomic_write_bytes

    def failing_mkstemp(*args, **kwargs):
        raise OSError(error, os.strerror(error))

    def write_on_a_failing_disk(path, data):  # the saved model's writes only, through the real helper
        with monkeypatch.context() as m:
            m.setattr("augmentgen._io.tempfile.mkstemp", failing_mkstemp)
            return real_write(path, data)

    monkeypatch.setattr(serialization, "atomic_write_bytes", write_on_a_failing_disk)
    trainer = Trainer(tiny_config(tiny_data), tiny_training(steps=6), tmp_path)
    with pytest.raises(CheckpointError, match=os.strerror(error)):
        trainer.fit(tiny_data, resume=True)
    assert (tmp_path / "model.safetensors").read_bytes() == before  # the old model, whole
    assert not list(tmp_path.glob(".model.safetensors.*"))  # no temporary file left behind
    assert load_generator(tmp_path).num_classes == 3


# ---------------------------------------------------------------- issue 17: the fast path
def _perturb(generator, seed):
    """Move every parameter and the batch-norm statistics, as a training step would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    generator.train()
    generator.sample(torch.tensor([0, 1, 2, 0]), generator=g)  # batch-norm buffers move only in a forward
    generator(torch.randn(4, generator.config.latent_dim, generator=g), torch.tensor([0, 1, 2, 1]))


def test_ema_equals_the_averaged_model_reference_update():
    from torch.optim.swa_utils import AveragedModel

    from augmentgen.training.trainer import GeneratorEMA, ema_with_warmup

    torch.manual_seed(0)
    generator = build_generator(build_config("cgan", num_classes=3, **TINY_GAN))
    reference = AveragedModel(generator, multi_avg_fn=ema_with_warmup(0.9), use_buffers=True)
    ema = GeneratorEMA(generator, 0.9)
    assert list(ema.state_dict()) == list(reference.state_dict())  # checkpoints written before load
    for seed in range(6):  # the first update copies; then the warm-up 1 - 2/11, 1 - 3/12, ... up to 1 - 0.9
        _perturb(generator, seed)
        reference.update_parameters(generator)
        ema.update(generator)
        for (name, a), b in zip(reference.state_dict().items(), ema.state_dict().values()):
            if a.is_floating_point():
                torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=name)
            else:
                assert torch.equal(a, b), name
    restored = GeneratorEMA(generator, 0.9)
    restored.load_state_dict(reference.state_dict())  # an AveragedModel checkpoint resumes the count
    _perturb(generator, 99)
    reference.update_parameters(generator)
    restored.update(generator)
    for (name, a), b in zip(reference.state_dict().items(), restored.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=name)


HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__")


def test_a_training_step_never_reads_a_tensor_back_to_the_host(tmp_path, tiny_data, monkeypatch):
    # No .item() / bool() / float() in the step, the EMA update or the bookkeeping: on a GPU each
    # would wait for the device. The losses are read once per log_every steps, in one transfer.
    reads = {"step": 0, "other": 0}
    inside = {"step": False}
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            # Not counted: torch.optim's own reads of its step counters, which it keeps in host
            # memory on purpose (unless capturable or fused), so reading them waits for nothing.
            caller = sys._getframe(1).f_code.co_filename
            if "torch/optim/" not in caller.replace(os.sep, "/"):
                reads["step" if inside["step"] else "other"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    train_step = Trainer._train_step

    def watched(self, *args):
        inside["step"] = True
        try:
            return train_step(self, *args)
        finally:
            inside["step"] = False

    monkeypatch.setattr(Trainer, "_train_step", watched)
    read_losses = Trainer._read_losses
    checks = []
    monkeypatch.setattr(Trainer, "_read_losses", lambda self, pending, g: checks.append(len(pending))
                        or read_losses(self, pending, g))
    config = tiny_config(tiny_data, lecam_weight=0.1, r1_weight=1.0, diversity_weight=1.0)
    trainer = Trainer(config, tiny_training(steps=8, log_every=4, checkpoint_every=0, sample_every=0), tmp_path)
    trainer.fit(tiny_data)
    assert reads["step"] == 0
    assert checks == [4, 4]
    assert [h["step"] for h in trainer.history] == [4, 8]


def test_a_divergence_between_checks_is_reported_with_its_first_step(tmp_path, tiny_data, monkeypatch):
    _nan_at(2, monkeypatch)
    with pytest.raises(TrainingDivergedError, match=r"diverged at step 2: .*g_loss=nan"):
        Trainer(tiny_config(tiny_data), tiny_training(log_every=5, checkpoint_every=0, sample_every=0),
                tmp_path).fit(tiny_data)


def test_a_divergence_before_the_first_checkpoint_says_to_checkpoint_sooner(tmp_path, tiny_data, monkeypatch):
    # on_divergence="rollback" is already set: the error must not advise it again.
    _nan_at(2, monkeypatch)
    with pytest.raises(TrainingDivergedError, match=r"diverged at step 2: .*checkpoint sooner \(checkpoint_every=6\)"):
        Trainer(tiny_config(tiny_data), tiny_training(steps=8, log_every=2, checkpoint_every=6, sample_every=0,
                                                      on_divergence="rollback"), tmp_path).fit(tiny_data)


def test_a_divergence_between_checks_rolls_back_to_a_checkpoint_written_before_it(tmp_path, tiny_data, monkeypatch):
    # NaN at step 4, read at the step-5 log: the step-3 checkpoint was checked before it was
    # written, and no checkpoint is written from an unchecked state.
    _nan_at(4, monkeypatch)
    trainer = Trainer(tiny_config(tiny_data), tiny_training(steps=8, log_every=5, sample_every=0,
                                                            on_divergence="rollback"), tmp_path)
    with pytest.warns(UserWarning, match=r"non-finite at step 4 .*rolled back to step 3"):
        trainer.fit(tiny_data)
    assert trainer.progress.lr_scale == 0.5 and trainer.progress.step == 8
    assert [h["step"] for h in trainer.history] == [5, 8]  # the step-5 entry is the replayed one


def _old_aae_step(self, real_images, labels):
    """``AAEStep.__call__`` before issue 17, verbatim: a no-grad encode for the discriminator,
    then the autoencoder forward."""
    from augmentgen.models.losses import bce_discriminator_loss, bce_generator_loss
    from augmentgen.models.regularizers import reconstruction_loss

    c, g = self.config, self.plain_generator
    b = real_images.shape[0]
    with torch.no_grad():
        codes = g.encode(real_images, labels)[0]
        prior = g.sample_noise(b)
    logits = self.discriminator(torch.cat([prior, codes]), torch.cat([labels, labels]))
    d_loss = bce_discriminator_loss(logits[:b], logits[b:])
    self.d_opt.zero_grad(set_to_none=True)
    self.accelerator.backward(d_loss)
    self.d_opt.step()
    self.plain_discriminator.requires_grad_(False)
    _, out, penalties = self.autoencode(real_images, labels)
    rec = reconstruction_loss(out.reconstruction, real_images, c.reconstruction_loss)
    adv = bce_generator_loss(self.plain_discriminator(out.mean, labels))
    self.update(rec + c.adversarial_weight * adv + sum(penalties.values()))
    self.plain_discriminator.requires_grad_(True)
    return {"rec_loss": rec.detach(), "d_loss": d_loss.detach(), "encoder_adv_loss": adv.detach(),
            **{k: v.detach() for k, v in penalties.items()}}


def _tiny_encoder_step(family, **overrides):
    from accelerate import Accelerator

    torch.manual_seed(0)
    extra = {"aae": {"discriminator_hidden": 16}, "aegan": {"discriminator_width": 8}}[family]
    config = build_config(family, num_classes=3, encoder_width=8, decoder_width=8, latent_dim=8,
                          **extra, **overrides)
    step = step_class(family)(build_generator(config), Accelerator(cpu=True))
    step.prepare()
    return step


@pytest.mark.parametrize("overrides", [{}, {"contractive_weight": 0.1}, {"prior": "mixture"}],
                         ids=["default", "contractive", "mixture"])
def test_aae_one_encode_per_step_trains_exactly_like_the_two_encode_step(tiny_data, overrides):
    # The discriminator's codes are the forward's own (detached): the encoder is deterministic,
    # so they are the numbers a second, no-grad encode gave, and the draws come in the same order.
    images, labels = tiny_data.to_float(), tiny_data.labels
    runs = []
    for call in (step_class("aae").__call__, _old_aae_step):
        step = _tiny_encoder_step("aae", **overrides)
        losses = [{k: float(v) for k, v in call(step, images, labels).items()} for _ in range(4)]
        runs.append((losses, step.plain_generator.state_dict(), step.plain_discriminator.state_dict(),
                     torch.get_rng_state()))
    (new_losses, new_g, new_d, new_rng), (old_losses, old_g, old_d, old_rng) = runs
    assert new_losses == old_losses
    for new, old in ((new_g, old_g), (new_d, old_d)):
        for name in new:
            torch.testing.assert_close(new[name], old[name], rtol=0, atol=0, msg=name)
    assert torch.equal(new_rng, old_rng)


@pytest.mark.parametrize("family", ["aae", "aegan"])
def test_encoder_families_encode_and_decode_once_per_step(tiny_data, family):
    step = _tiny_encoder_step(family)
    calls = {"encoder": 0, "decoder": 0}
    for part in calls:
        module = getattr(step.plain_generator, part)
        forward = module.forward

        def counting(*args, _part=part, _forward=forward, **kwargs):
            calls[_part] += 1
            return _forward(*args, **kwargs)

        module.forward = counting
    for _ in range(3):
        step(tiny_data.to_float(), tiny_data.labels)
    assert calls == {"encoder": 3, "decoder": 3}  # aegan's prior samples share the decoder call


def test_speed_options_round_trip_through_json_and_are_validated():
    from augmentgen.errors import ConfigError

    defaults = TrainingConfig()
    assert (defaults.compile, defaults.channels_last, defaults.optimizer_kernel) == (False, True, "default")
    config = TrainingConfig(compile=True, channels_last=False, optimizer_kernel="fused")
    assert TrainingConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ConfigError, match="optimizer_kernel"):
        TrainingConfig.from_dict({"optimizer_kernel": "apex"})
    with pytest.raises(ConfigError, match="compile must be true or false"):
        TrainingConfig.from_dict({"compile": "yes"})


def test_speed_options_reach_the_trainer_from_the_cli(tmp_path, monkeypatch):
    from augmentgen import cli

    seen = {}

    class Saved:
        class_names = ["a"]

    def train(model, data, output_dir, **kwargs):
        seen.update(kwargs)
        return Saved()

    monkeypatch.setattr("augmentgen.api.train", train)
    assert cli.main(["train", "--out", str(tmp_path), "--compile", "--no-channels-last",
                     "--optimizer-kernel", "foreach"]) == 0
    assert (seen["compile"], seen["channels_last"], seen["optimizer_kernel"]) == (True, False, "foreach")
    assert TrainingConfig.from_dict({k: seen[k] for k in TrainingConfig.field_names()}).compile is True
    cli.main(["train", "--out", str(tmp_path)])
    defaults = TrainingConfig()
    assert (seen["compile"], seen["channels_last"], seen["optimizer_kernel"]) == \
        (defaults.compile, defaults.channels_last, defaults.optimizer_kernel)


def _fit_tiny(tmp_path, data, **training):
    trainer = Trainer(tiny_config(data, diffaugment=""),
                      tiny_training(**{"steps": 3, "checkpoint_every": 0, "sample_every": 0, **training}), tmp_path)
    return trainer, trainer.fit(data)


@pytest.mark.parametrize("kernel", ["foreach", "fused"])
def test_optimizer_kernel_switches_the_adam_implementation_and_trains_alike(tmp_path, tiny_data, kernel):
    reference_trainer, reference = _fit_tiny(tmp_path / "default", tiny_data)
    trainer, generator = _fit_tiny(tmp_path / kernel, tiny_data, optimizer_kernel=kernel)
    for opt in trainer.step.optimizers():
        assert all(group[kernel] for group in opt.param_groups)
        assert not any(group["foreach" if kernel == "fused" else "fused"] for group in opt.param_groups)
    if kernel == "foreach":  # the same arithmetic, batched
        for (name, a), b in zip(reference.state_dict().items(), generator.state_dict().values()):
            torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
    else:
        _assert_trained_alike(reference_trainer, reference, trainer, generator)


def _assert_trained_alike(reference_trainer, reference, trainer, generator):
    """Same losses to 1e-4; weights within 2e-3. Other rounding is amplified by Adam, which
    normalises near-zero gradients (the conv biases before batch norm) to lr-sized moves whose
    sign it can flip: 3 steps at lr 2e-4."""
    for old, new in zip(reference_trainer.history, trainer.history, strict=True):
        assert {k: v for k, v in new.items() if k.endswith("loss")} == pytest.approx(
            {k: v for k, v in old.items() if k.endswith("loss")}, rel=1e-4)
    for (name, a), b in zip(reference.state_dict().items(), generator.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=2e-3, msg=name)


def test_channels_last_trains_alike_and_saves_contiguous_weights(tmp_path, tiny_data):
    reference_trainer, contiguous = _fit_tiny(tmp_path / "contiguous", tiny_data, channels_last=False)
    trainer, generator = _fit_tiny(tmp_path / "channels_last", tiny_data, channels_last=True)
    conv = trainer.step.plain_discriminator.features.net[2].parametrizations.weight.original  # 8 -> 16 ch
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert all(t.is_contiguous() for t in generator.state_dict().values())
    _assert_trained_alike(reference_trainer, contiguous, trainer, generator)
    loaded = load_generator(tmp_path / "channels_last")
    assert all(torch.equal(t, loaded.state_dict()[k]) for k, t in generator.state_dict().items())


def test_compile_with_the_contractive_penalty_is_refused_before_training(tmp_path, tiny_data):
    from augmentgen.errors import ConfigError

    config = build_config("ae", num_classes=3, class_names=tiny_data.class_names, encoder_width=8,
                          decoder_width=8, contractive_weight=0.1)
    with pytest.raises(ConfigError, match="contractive_weight"):
        Trainer(config, tiny_training(compile=True), tmp_path).fit(tiny_data)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@pytest.fixture
def fresh_accelerate_state():
    # Accelerate keeps one process-wide state whose mixed precision cannot change once set.
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_bf16_autocast_on_cpu_trains_and_keeps_fp32_weights(tmp_path, tiny_data, fresh_accelerate_state):
    trainer, generator = _fit_tiny(tmp_path, tiny_data, mixed_precision="bf16", steps=2)
    assert trainer.accelerator.mixed_precision == "bf16"
    assert all(math.isfinite(v) for h in trainer.history for v in h.values())
    assert {t.dtype for t in generator.state_dict().values() if t.is_floating_point()} == {torch.float32}
    assert load_generator(tmp_path).sample(torch.tensor([0, 1])).dtype == torch.float32


@pytest.mark.slow
def test_compile_trains_like_eager(tmp_path, tiny_data):
    # Inductor compiles the generator and discriminator (minutes on a 2-core CPU, hence slow);
    # kernels fuse differently, so close, not equal.
    eager_trainer, eager = _fit_tiny(tmp_path / "eager", tiny_data, steps=2)
    trainer, compiled = _fit_tiny(tmp_path / "compiled", tiny_data, steps=2, compile=True)
    assert type(trainer.step.generator).__name__ == "OptimizedModule"
    assert type(compiled).__name__ == "CGANGenerator"  # the saved and returned one is eager
    _assert_trained_alike(eager_trainer, eager, trainer, compiled)


def test_a_batch_size_above_the_data_size_says_that_every_step_takes_all_of_it(tmp_path):
    data = make_images(n_per_class=2)  # 6 images
    with pytest.warns(UserWarning, match=r"batch_size=64 is more than the 6 training images: every step trains "
                                         r"on all 6 of them; pass --batch-size 6 or less"):
        Trainer(tiny_config(data), tiny_training(steps=1, batch_size=64, checkpoint_every=0, sample_every=0),
                tmp_path).fit(data)
