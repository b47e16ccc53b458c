import json

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator

from augmentgen.errors import ConfigError, UnknownFamilyError
from augmentgen.families.gan import CGANConfig, GANStep, LeCamEMA
from augmentgen.models import available_models, build_config, build_generator, step_class
from augmentgen.models.blocks import ProjectionDiscriminator
from augmentgen.models.diffaugment import diff_augment
from augmentgen.models.losses import gradient_penalty
from augmentgen.training import Trainer, TrainingConfig
from tests.conftest import TINY_GAN


@pytest.mark.parametrize("channels, size", [(1, 28), (3, 32), (1, 64), (3, 64)])
def test_generator_and_discriminator_shapes(channels, size):
    config = build_config("cgan", num_classes=4, in_channels=channels, image_size=size, **TINY_GAN)
    generator = build_generator(config)
    images = generator.sample(torch.tensor([0, 1, 2, 3, 3]))
    assert images.shape == (5, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1
    logits, class_logits = ProjectionDiscriminator(config)(images, torch.tensor([0, 1, 2, 3, 3]))
    assert logits.shape == (5,) and class_logits.shape == (5, 4)


def test_config_validation_and_presets():
    assert build_config("wgan-gp").loss == "wgan-gp"
    assert {"cgan", "wgan-gp"} <= set(available_models())
    with pytest.raises(ConfigError, match="image_size"):
        build_config("cgan", image_size=30)
    with pytest.raises(ConfigError, match="loss"):
        build_config("cgan", loss="least-squares")
    with pytest.raises(ConfigError, match="DiffAugment"):
        build_config("cgan", diffaugment="color,rotate")
    with pytest.raises(ConfigError, match="no field"):
        build_config("cgan", widht=3)
    with pytest.raises(UnknownFamilyError, match="cgan"):
        build_config("stylegan9")


# ---------------------------------------------------------------- issue 21: regularisers
REGULARISERS = {"lecam_weight": "d_lecam", "diversity_weight": "g_diversity", "r1_weight": "d_r1"}
BASE_KEYS = {"d_loss", "g_loss", "d_class_loss", "g_class_loss"}


def test_regulariser_weights_default_to_off_and_round_trip_through_json():
    config = build_config("cgan")
    assert (config.lecam_weight, config.diversity_weight, config.r1_weight) == (0.0, 0.0, 0.0)
    on = build_config("cgan", lecam_weight=0.3, diversity_weight=1, r1_weight=0.5)
    assert on.diversity_weight == 1.0 and isinstance(on.diversity_weight, float)
    assert CGANConfig.from_dict(json.loads(on.to_json())) == on


@pytest.mark.parametrize("field", sorted(REGULARISERS))
@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf")])
def test_regulariser_weights_must_be_finite_and_non_negative(field, value):
    with pytest.raises(ConfigError, match=rf"{field} must be a finite number >= 0.*use 0 to disable"):
        build_config("cgan", **{field: value})


def _step_without_regularisers(self, real_images, labels):
    """``GANStep.__call__`` with the regularisers stripped, kept verbatim as the reference that the
    default (all weights 0) step must reproduce bit for bit (issue 21: weights at 0 cost nothing).

    Issue 17 replaced the earlier reference (commit b3686c0: a no-grad generator forward for every
    discriminator update and a fresh one for the generator update) with the textbook layout below:
    one generator forward with autograd whose fakes serve the last discriminator update (detached)
    and the generator update. That changes the training numbers on purpose, so the reference
    moved with it.
    """
    c, acc = self.config, self.accelerator
    policy = c.diffaugment
    b = real_images.shape[0]

    def d_update(fake_images):
        both = diff_augment(torch.cat([real_images, fake_images]), policy)
        logits, class_logits = self.discriminator(both, torch.cat([labels, labels]))
        real_logits, fake_logits = logits[:b], logits[b:]
        d_adv = self.d_loss_fn(real_logits, fake_logits)
        d_cls = F.cross_entropy(class_logits[:b], labels)
        d_loss = d_adv + c.class_loss_weight * d_cls
        if c.loss == "wgan-gp":
            d_loss = d_loss + c.gradient_penalty * gradient_penalty(
                self.plain_discriminator, real_images, fake_images, labels
            ) + 1e-3 * real_logits.square().mean()
        self.d_opt.zero_grad(set_to_none=True)
        acc.backward(d_loss)
        self.d_opt.step()
        return d_adv, d_cls

    for _ in range(c.discriminator_steps - 1):
        with torch.no_grad():
            fake_images = self.generator(self._noise(b), labels)
        d_update(fake_images)
    fake_images = self.generator(self._noise(b), labels)
    d_adv, d_cls = d_update(fake_images.detach())
    self.plain_discriminator.requires_grad_(False)
    fake_logits, fake_class = self.plain_discriminator(diff_augment(fake_images, policy), labels)
    g_adv = self.g_loss_fn(fake_logits)
    g_cls = F.cross_entropy(fake_class, labels)
    g_loss = g_adv + c.class_loss_weight * g_cls
    self.g_opt.zero_grad(set_to_none=True)
    acc.backward(g_loss)
    self.g_opt.step()
    self.plain_discriminator.requires_grad_(True)
    return {"d_loss": d_adv.detach(), "g_loss": g_adv.detach(),
            "d_class_loss": d_cls.detach(), "g_class_loss": g_cls.detach()}


def _tiny_config(data, **overrides):
    return build_config("cgan", num_classes=data.num_classes, class_names=data.class_names,
                        **{**TINY_GAN, **overrides})


def _tiny_training(**overrides):
    values = dict(steps=5, batch_size=8, checkpoint_every=3, sample_every=0, grid_per_class=2,
                  log_every=1, seed=0)
    return TrainingConfig(**{**values, **overrides})


def _fit_recording_the_step(config, training, output_dir, data, monkeypatch, **fit_kwargs):
    """Train; return (final generator, the step object, the trainer, torch's RNG state after)."""
    steps = []
    prepare = GANStep.prepare

    def recording_prepare(self):
        prepare(self)
        steps.append(self)

    monkeypatch.setattr(GANStep, "prepare", recording_prepare)
    trainer = Trainer(config, training, output_dir)
    generator = trainer.fit(data, **fit_kwargs)
    monkeypatch.setattr(GANStep, "prepare", prepare)
    return generator, steps[-1], trainer, torch.get_rng_state()


def _assert_same_tensors(a: dict, b: dict):
    assert list(a) == list(b)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("overrides", [{}, {"loss": "bce"}, {"loss": "wgan-gp", "discriminator_steps": 2}],
                         ids=["hinge", "bce", "wgan-gp"])
def test_with_every_weight_at_zero_training_is_bit_identical_to_before(tmp_path, tiny_data, monkeypatch, overrides):
    config = _tiny_config(tiny_data, **overrides)
    new = _fit_recording_the_step(config, _tiny_training(), tmp_path / "new", tiny_data, monkeypatch)
    monkeypatch.setattr(GANStep, "__call__", _step_without_regularisers)
    old = _fit_recording_the_step(config, _tiny_training(), tmp_path / "old", tiny_data, monkeypatch)
    (new_ema, new_step, new_trainer, new_rng), (old_ema, old_step, old_trainer, old_rng) = new, old
    _assert_same_tensors(new_ema.state_dict(), old_ema.state_dict())
    _assert_same_tensors(new_step.generator.state_dict(), old_step.generator.state_dict())
    _assert_same_tensors(new_step.discriminator.state_dict(), old_step.discriminator.state_dict())
    assert torch.equal(new_rng, old_rng)  # no extra random draws
    assert new_trainer.history == [{**h, "images_per_second": n["images_per_second"]}
                                   for h, n in zip(old_trainer.history, new_trainer.history)]
    assert set(new_trainer.history[-1]) == BASE_KEYS | {"step", "images_per_second"}
    assert new_step.lecam is None  # nothing extra is checkpointed: the layout is unchanged
    assert sorted(p.name for p in (tmp_path / "new/checkpoints/step-0000003").iterdir()) == \
        sorted(p.name for p in (tmp_path / "old/checkpoints/step-0000003").iterdir())


def _tiny_step(seed=0, **overrides):
    torch.manual_seed(seed)
    config = build_config("cgan", num_classes=3, **TINY_GAN, **overrides)
    step = step_class("cgan")(build_generator(config), Accelerator(cpu=True))
    step.prepare()
    return step


@pytest.mark.parametrize("overrides", [{"lecam_weight": 0.1}, {"diversity_weight": 1.0}, {"r1_weight": 1.0},
                                       {"lecam_weight": 0.1, "diversity_weight": 1.0, "r1_weight": 1.0,
                                        "loss": "wgan-gp", "discriminator_steps": 2},
                                       {"lecam_weight": 0.1, "diversity_weight": 1.0, "r1_weight": 1.0,
                                        "loss": "bce"}],
                         ids=["lecam", "diversity", "r1", "all-wgan-gp", "all-bce"])
def test_each_regulariser_trains_with_finite_losses_and_logs_its_term(tiny_data, overrides):
    step = _tiny_step(**overrides)
    images, labels = tiny_data.to_float()[:9], tiny_data.labels[:9]
    before = {k: v.clone() for k, v in step.plain_discriminator.state_dict().items()}
    history = [step(images, labels) for _ in range(3)]
    expected = BASE_KEYS | {REGULARISERS[k] for k in overrides if k in REGULARISERS}
    for losses in history:
        assert set(losses) == expected
        assert all(torch.isfinite(v) and not v.requires_grad for v in losses.values()), losses
    for name in ("g_diversity", "d_r1"):
        if name in expected:
            assert all(float(h[name]) > 0 for h in history), name
    after = step.plain_discriminator.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    if "lecam_weight" in overrides:
        ema = step.lecam
        assert int(ema.num_updates) == 3 * step.config.discriminator_steps
        assert torch.isfinite(ema.real) and torch.isfinite(ema.fake) and float(ema.real) != float(ema.fake)
    else:
        assert step.lecam is None


def test_lecam_ema_tracks_the_realness_means_of_the_discriminator_updates(tiny_data):
    step = _tiny_step(lecam_weight=0.1)
    images, labels = tiny_data.to_float()[:9], tiny_data.labels[:9]
    seen = []
    forward = step.discriminator.forward

    def recording_forward(x, y):
        out = forward(x, y)
        if torch.is_grad_enabled() and x.shape[0] == 18:  # the D update's cat(real, fake)
            realness = out[0].detach()
            seen.append((float(realness[:9].mean()), float(realness[9:].mean())))
        return out

    step.discriminator.forward = recording_forward
    step(images, labels)
    assert (float(step.lecam.real), float(step.lecam.fake)) == pytest.approx(seen[0])  # the first copies
    step(images, labels)
    expected = [0.99 * a + 0.01 * b for a, b in zip(seen[0], seen[1])]
    assert (float(step.lecam.real), float(step.lecam.fake)) == pytest.approx(expected, rel=1e-5)


def test_diversity_term_generates_a_second_set_from_fresh_noise_for_the_same_labels(tiny_data):
    step = _tiny_step(diversity_weight=1.0, discriminator_steps=1)
    calls = []
    forward = step.generator.forward

    def recording_forward(noise, labels):
        calls.append((noise.clone(), labels.clone(), torch.is_grad_enabled()))
        return forward(noise, labels)

    step.generator.forward = recording_forward
    images, labels = tiny_data.to_float()[:9], tiny_data.labels[:9]
    step(images, labels)
    ((g_noise, g_labels, g_grad),) = calls  # one forward, shared by the D update and the G update
    assert g_grad
    assert torch.equal(g_labels, torch.cat([labels, labels]))  # both halves in one batched forward
    assert not torch.equal(g_noise[:9], g_noise[9:])


@pytest.mark.parametrize("overrides", [{}, {"diversity_weight": 1.0},
                                       {"loss": "wgan-gp", "discriminator_steps": 3, "r1_weight": 1.0}],
                         ids=["hinge", "diversity", "wgan-gp-3"])
def test_one_generator_forward_with_autograd_serves_the_last_d_update_and_the_g_update(tiny_data, overrides):
    # Issue 17: the textbook reuse of one fake batch. Earlier critic updates get their own fakes
    # (fresh noise, no autograd); the last one sees the G update's fakes, detached.
    step = _tiny_step(diffaugment="", **overrides)
    g_calls, d_inputs = [], []
    g_forward, d_forward = step.generator.forward, step.discriminator.forward

    def recording_g(noise, labels):
        out = g_forward(noise, labels)
        g_calls.append((torch.is_grad_enabled(), out))
        return out

    def recording_d(x, y):
        d_training = next(step.plain_discriminator.parameters()).requires_grad  # frozen in the G update
        if d_training and torch.is_grad_enabled() and x.shape[0] == 18:  # a D update's cat(real, fake)
            d_inputs.append(x[9:].clone())
        return d_forward(x, y)

    step.generator.forward, step.discriminator.forward = recording_g, recording_d
    images, labels = tiny_data.to_float()[:9], tiny_data.labels[:9]
    step(images, labels)
    k = step.config.discriminator_steps
    assert [grad for grad, _ in g_calls] == [False] * (k - 1) + [True]
    assert len(d_inputs) == k
    for (_, fakes), seen in zip(g_calls, d_inputs):
        assert torch.equal(seen, fakes[:9].detach())
    assert g_calls[-1][1].requires_grad and not d_inputs[-1].requires_grad


class Interrupt(Exception):
    pass


def _crash_at(call_number, monkeypatch):
    calls = {"n": 0}
    original = GANStep.__call__

    def crashing(self, *args):
        calls["n"] += 1
        if calls["n"] == call_number:
            raise Interrupt
        return original(self, *args)

    monkeypatch.setattr(GANStep, "__call__", crashing)
    return original


def test_lecam_state_survives_a_checkpoint_and_resume(tmp_path, tiny_data, monkeypatch):
    config, training = _tiny_config(tiny_data, lecam_weight=0.5), _tiny_training(steps=6)
    full, full_step, _, _ = _fit_recording_the_step(config, training, tmp_path / "full", tiny_data, monkeypatch)

    original = _crash_at(5, monkeypatch)
    with pytest.raises(Interrupt):
        Trainer(config, training, tmp_path / "cut").fit(tiny_data)
    monkeypatch.setattr(GANStep, "__call__", original)
    # The step-3 checkpoint holds the EMAs (registered before the trainer's own EMA and progress).
    saved = torch.load(tmp_path / "cut/checkpoints/step-0000003/custom_checkpoint_0.pkl", weights_only=True)
    assert set(saved) == {"real", "fake", "num_updates"} and int(saved["num_updates"]) == 3

    resumed, resumed_step, _, _ = _fit_recording_the_step(config, training, tmp_path / "cut", tiny_data,
                                                          monkeypatch, resume=True)
    _assert_same_tensors(full.state_dict(), resumed.state_dict())
    _assert_same_tensors(full_step.discriminator.state_dict(), resumed_step.discriminator.state_dict())
    _assert_same_tensors(full_step.lecam.state_dict(), resumed_step.lecam.state_dict())

    # The check has teeth: resuming with fresh EMAs (the state not restored) gives other weights.
    # (From a second cut run: the first resumed run ended with a checkpoint of its last step.)
    original = _crash_at(5, monkeypatch)
    with pytest.raises(Interrupt):
        Trainer(config, training, tmp_path / "cut2").fit(tiny_data)
    monkeypatch.setattr(GANStep, "__call__", original)
    monkeypatch.setattr(LeCamEMA, "load_state_dict", lambda self, state, **kwargs: None)
    forgetful, _, _, _ = _fit_recording_the_step(config, training, tmp_path / "cut2", tiny_data,
                                                 monkeypatch, resume=True)
    assert any(not torch.equal(a, b) for a, b in zip(full.state_dict().values(), forgetful.state_dict().values()))


def test_resuming_a_run_without_lecam_with_lecam_on_is_refused(tmp_path, tiny_data):
    Trainer(_tiny_config(tiny_data), _tiny_training(steps=4), tmp_path).fit(tiny_data)
    lecam = _tiny_config(tiny_data, lecam_weight=0.1)
    # The run's recorded config differs: refused before any state is loaded, naming the field
    # (so the trainer's EMA state can never land in the LeCam state).
    for training in (_tiny_training(steps=6), _tiny_training(steps=6, ema_decay=0.0)):
        with pytest.raises(ConfigError, match="lecam_weight is 0.0 there but 0.1 now"):
            Trainer(lecam, training, tmp_path).fit(tiny_data, resume=True)
