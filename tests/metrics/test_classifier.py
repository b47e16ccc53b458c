"""The reference classifier: it learns, is seeded, augments in batch, and extracts features."""

from __future__ import annotations

import pytest
import torch

from augmentgen.errors import ConfigError, DataError
from augmentgen.metrics import (
    ClassifierFeatures,
    ReferenceClassifier,
    classic_augment,
    evaluate_accuracy,
    features,
    predict,
    train_classifier,
)
from tests.conftest import make_images


@pytest.fixture(scope="module")
def separable():
    return make_images(n_per_class=16, num_classes=3, seed=0), make_images(n_per_class=10, num_classes=3, seed=1)


def test_learns_a_separable_task_and_is_seeded(separable):
    train, test = separable
    model = train_classifier(train, steps=30, batch_size=24, seed=0, width=8, augment="none")
    assert not model.training
    assert evaluate_accuracy(model, test) >= 0.9
    again = train_classifier(train, steps=30, batch_size=24, seed=0, width=8, augment="none")
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_accepts_pairs_and_synthetic_mix_rewrites_every_batch(separable):
    train, _ = separable
    calls = []

    def mix(images, labels):
        assert images.dtype == torch.float32 and images.min() >= -1 and images.max() <= 1
        calls.append(len(labels))
        return images, labels

    train_classifier((train.images, train.labels), steps=5, batch_size=8, seed=0, width=4,
                     augment="classic", synthetic_mix=mix)
    assert calls == [8] * 5


def test_untrained_accuracy_is_near_chance(separable):
    _, test = separable
    torch.manual_seed(0)
    model = ReferenceClassifier(3, width=4).eval()
    assert evaluate_accuracy(model, test) < 0.7


def test_channels_last_is_the_same_network_in_a_faster_layout(separable):
    train, _ = separable
    images = train.to_float()
    torch.manual_seed(0)
    default = ReferenceClassifier(3, width=16).eval()
    torch.manual_seed(0)
    nchw = ReferenceClassifier(3, width=16, memory_format=torch.contiguous_format).eval()
    def first_block_conv(model):  # the stem's (w, 1, 3, 3) weight is contiguous in both layouts
        return next(m for m in model.stages.modules() if isinstance(m, torch.nn.Conv2d)).weight

    conv = first_block_conv(default)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert first_block_conv(nchw).is_contiguous()
    # The same weights from the same seed, so the same function up to float rounding.
    for a, b in zip(default.state_dict().values(), nchw.state_dict().values()):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(default(images), nchw(images), atol=1e-5, rtol=1e-4)
    assert first_block_conv(default.to("cpu")).is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ConfigError, match="memory_format must be torch.channels_last, torch.contiguous_format or None"):
        ReferenceClassifier(3, width=4, memory_format=torch.preserve_format)


def test_a_width_whose_shortcut_oneDNN_mishandles_in_channels_last_stays_nchw(separable, monkeypatch):
    # A ResNet-8 of width 4 aborted with heap corruption in its first backward in channels_last
    # (oneDNN's strided 1x1 convolution with fewer input channels than its SIMD block).
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    narrow = ReferenceClassifier(3, width=4)
    assert narrow.memory_format == torch.contiguous_format
    assert all(m.weight.is_contiguous() for m in narrow.modules() if isinstance(m, torch.nn.Conv2d))
    assert ReferenceClassifier(3, width=8).memory_format == torch.channels_last  # a full AVX2 block
    with pytest.raises(ConfigError, match=r"unsafe at width 4 on this CPU: oneDNN's strided 1x1 convolution "
                                          r"\(stages.0.shortcut.0\) corrupts memory .* fewer than 8 input channels"):
        ReferenceClassifier(3, width=4, memory_format=torch.channels_last)
    train, _ = separable
    model = train_classifier(train, steps=3, batch_size=8, seed=0, width=4)  # trains, in NCHW
    assert model.memory_format == torch.contiguous_format
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert ReferenceClassifier(3, width=8).memory_format == torch.contiguous_format


def test_classic_augment_shifts_whole_pixels_and_flips():
    images = torch.linspace(-1, 1, 2 * 28 * 28).reshape(2, 1, 28, 28)
    gen = torch.Generator().manual_seed(0)
    out = classic_augment(images, hflip=True, affine=False, generator=gen)
    assert out.shape == images.shape and out.min() >= -1 - 1e-5 and out.max() <= 1 + 1e-5
    # A pure shift/flip copies pixel values: every output pixel is an input pixel or black fill.
    values = torch.cat([images.flatten(), torch.tensor([-1.0])])
    dist = (out.flatten()[:, None] - values[None]).abs().min(dim=1).values
    assert dist.max() < 1e-4
    same = classic_augment(images, hflip=True, affine=False, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, same)
    rotated = classic_augment(images, hflip=False, affine=True, generator=gen)
    assert not torch.allclose(rotated, images)


def test_features_and_torchmetrics_wrapper(separable):
    train, _ = separable
    model = ReferenceClassifier(3, width=4)
    feats = features(model, train.images)
    assert feats.shape == (len(train), model.num_features)
    wrapper = ClassifierFeatures(model).train()
    assert not wrapper.training and wrapper.num_features == 16
    torch.testing.assert_close(wrapper(train.images), feats)
    torch.testing.assert_close(wrapper(train.to_float()), feats)
    assert predict(model, train.images).shape == (len(train),)


def test_bad_arguments_raise():
    data = make_images(4, 2)
    with pytest.raises(ConfigError):
        train_classifier(data, steps=1, augment="heavy")
    with pytest.raises(DataError):
        train_classifier((data.to_float(), data.labels), steps=1)


@pytest.mark.parametrize("seed", [-1, 1.5, True, 2**64])
def test_a_bad_seed_is_refused_before_training(seed):
    # -1 trained, 1.5 and 2**64 failed inside torch ("manual_seed expected a long", "Overflow when unpacking")
    with pytest.raises(ConfigError, match=rf"^seed must be an int >= 0 \(it seeds the initialisation, the batch "
                                          rf"order and the augmentation draws\), got {seed!r}; .* like seed=0$"):
        train_classifier(make_images(4, 2), steps=1, seed=seed)


def test_an_epoch_budget_counts_passes_over_the_real_rows():
    from augmentgen.metrics import classifier_steps

    assert classifier_steps(500, 128, epochs=100) == 300  # 3 full batches an epoch, the tail dropped
    assert classifier_steps(1000, 128, epochs=100) == 700  # twice the data: more than twice the steps
    assert classifier_steps(100, 128, epochs=50, min_steps=100) == 100  # a batch is the whole set
    assert classifier_steps(100, 128, epochs=0.5) == 1
    with pytest.raises(ConfigError):
        classifier_steps(100, 128, epochs=0)


def _recording(log, mix=None):
    """A synthetic_mix that records the real rows it is given, then (optionally) mixes."""
    def record(images, labels):
        log.append(images.clone())
        return mix(images, labels) if mix is not None else (images, labels)
    return record


def test_appended_synthetic_rows_leave_the_real_rows_and_their_order_unchanged(separable):
    """Equal real exposure: the mixed arm sees exactly the real rows of the classic arm, in the
    same order, and every real row is augmented the same way."""
    from augmentgen.mixing import SyntheticMix
    from tests.metrics.fakes import RealImagesGenerator

    train, _ = separable
    common = dict(epochs=4, batch_size=16, seed=3, width=4, augment="classic")
    plain_rows, mixed_rows, augmented = [], [], {}
    train_classifier(train, synthetic_mix=_recording(plain_rows), **common)
    append = SyntheticMix(RealImagesGenerator(train), 0.5, mode="append", seed=3)
    train_classifier(train, synthetic_mix=_recording(mixed_rows, append), **common)
    assert len(plain_rows) == len(mixed_rows) == 4 * (48 // 16)  # 4 epochs of 3 batches
    seen = torch.cat(plain_rows)
    assert len(seen) == 4 * 48  # each of the 48 real images 4 times
    for a, b in zip(plain_rows, mixed_rows):
        assert torch.equal(a, b)

    # The augmentation of the real rows does not depend on the appended rows either.
    import augmentgen.metrics.classifier as classifier_module

    original = classifier_module.classic_augment

    def spy(images, **kw):
        out = original(images, **kw)
        augmented.setdefault(kw["generator"] is not None and len(images), []).append(out)
        return out

    for arm, mix in (("plain", None), ("mixed", SyntheticMix(RealImagesGenerator(train), 0.5, mode="append", seed=3))):
        augmented.clear()
        classifier_module.classic_augment = spy
        try:
            train_classifier(train, synthetic_mix=mix, **common)
        finally:
            classifier_module.classic_augment = original
        if arm == "plain":
            real_plain = list(augmented[16])
        else:
            assert [len(t) for t in augmented[8]] == [8] * 12  # the appended rows, separately
            for a, b in zip(real_plain, augmented[16]):
                assert torch.equal(a, b)


def test_soft_targets_from_the_mixer_train_the_classifier(separable):
    """A synthetic_mix may return (B, K) soft targets (teacher probabilities, as v2 MixUp does)."""
    train, test = separable

    def one_hot(images, labels):
        return images, torch.nn.functional.one_hot(labels, 3).float()

    soft = train_classifier(train, steps=40, batch_size=24, seed=0, width=8, augment="none", synthetic_mix=one_hot)
    hard = train_classifier(train, steps=40, batch_size=24, seed=0, width=8, augment="none")
    # One-hot targets are the same loss as class indices: the same weights up to float error,
    # which 40 Adam steps amplify (up to 2.3e-5 seen on an AVX2 CPU); a different loss moves
    # them far more (targets smoothed by 5% moved a weight by 0.057, measured on that CPU).
    for a, b in zip(soft.state_dict().values(), hard.state_dict().values()):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-3, atol=1e-4)
    assert evaluate_accuracy(soft, test) >= 0.9


# --------------------------------------------------------------------------- the strong baselines
def test_class_balanced_sampler_draws_every_class_equally_often():
    from augmentgen.metrics.classifier import _balanced_batches

    labels = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)  # long-tailed: 90 / 9 / 1
    rng = torch.Generator().manual_seed(0)
    drawn = torch.cat(list(_balanced_batches(labels, 3, 60, 200, rng)))
    share = torch.bincount(labels[drawn], minlength=3).double() / len(drawn)
    assert torch.allclose(share, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.02)


def test_logit_adjustment_is_tau_log_prior_and_leaves_predictions_plain(separable):
    from augmentgen.metrics.classifier import _logit_adjustment

    labels = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)
    adjustment = _logit_adjustment(labels, 3, 1.0)
    assert torch.allclose(adjustment, torch.tensor([[0.6, 0.3, 0.1]]).log())
    assert _logit_adjustment(labels, 3, 0.0) is None
    train, test = separable
    model = train_classifier(train, steps=30, batch_size=24, seed=0, width=8, augment="none", logit_adjustment=1.0)
    assert evaluate_accuracy(model, test) >= 0.9  # balanced data: the adjustment is a constant shift


def test_batch_transform_runs_last_and_is_seeded_without_touching_the_global_rng(separable):
    from torchvision.transforms import v2

    train, _ = separable
    seen = []

    choice = v2.RandomChoice([v2.MixUp(num_classes=3), v2.CutMix(num_classes=3)])

    def mixup_cutmix(images, labels):
        seen.append(images.clone())
        images, targets = choice(images, labels)
        assert targets.shape == (len(labels), 3)  # soft targets, as v2 returns them
        return images, targets

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    models = [train_classifier(train, steps=4, batch_size=24, seed=0, width=8, batch_transform=mixup_cutmix)
              for _ in range(2)]
    assert torch.equal(torch.random.get_rng_state(), before)
    assert len(seen) == 8
    assert all(torch.equal(a, b) for a, b in zip(seen[:4], seen[4:]))  # augmented before the transform
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="sampler"):
        train_classifier(train, steps=1, sampler="balanced")
    with pytest.raises(ConfigError, match="logit_adjustment"):
        train_classifier(train, steps=1, logit_adjustment=float("nan"))


# --------------------------------------------------------------------------- synthetic loss weight
def _append_shifted(shift: int, soft: bool = False):
    """A mixer appending the batch's first 4 images again (flipped) with labels shifted by ``shift``;
    ``soft``: every target as smoothed one-hot floats (B', 3)."""
    def mix(images, labels):
        images = torch.cat([images, images[:4].flip(-1)])
        labels = torch.cat([labels, (labels[:4] + shift) % 3])
        return images, (torch.nn.functional.one_hot(labels, 3).float() * 0.8 + 0.2 / 3) if soft else labels
    return mix


def _parameters(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("soft", [False, True])
def test_synthetic_weight_one_is_the_loss_of_before(separable, soft):
    """Weight 1 keeps F.cross_entropy's mean: seeded results of before the weight existed do not move."""
    train, _ = separable
    common = dict(steps=6, batch_size=12, seed=0, width=4, synthetic_mix=_append_shifted(1, soft))
    default = train_classifier(train, **common)
    for a, b in zip(_parameters(default), _parameters(train_classifier(train, synthetic_weight=1.0, **common))):
        assert torch.equal(a, b)
    # Pinned from the code before synthetic_weight existed (CPU; float32 tolerance).
    pinned = {False: ([0.18299960, 0.07545309, 0.08651594], [-0.05295987, 0.23997545, 0.14141537, -0.12506181]),
              True: ([0.18235737, 0.07596422, 0.08714889], [-0.05355343, 0.23952439, 0.14069371, -0.12539805])}
    bias, weight = pinned[soft]
    torch.testing.assert_close(default.head.bias.detach(), torch.tensor(bias), atol=1e-4, rtol=0)
    torch.testing.assert_close(default.head.weight[0, :4].detach(), torch.tensor(weight), atol=1e-4, rtol=0)


@pytest.mark.parametrize("soft", [False, True])
def test_synthetic_weight_trains_on_the_hand_computed_weighted_loss(separable, soft):
    """Two steps of train_classifier equal two AdamW / one-cycle steps on sum w_i CE_i / sum w_i,
    written out: label smoothing 0.1 on every target, logit adjustment tau log pi, weight 1 on the
    first batch_size rows and 0.25 on the 4 appended ones."""
    from augmentgen.metrics.classifier import ReferenceClassifier as Net

    train, _ = separable
    data = train.subset(torch.tensor(list(range(16)) + list(range(16, 24)) + list(range(32, 36))))  # 16 / 8 / 4
    seen, mix = [], _append_shifted(2, soft)

    def recording(images, labels):
        images, targets = mix(images, labels)
        seen.append((images.clone(), targets.clone()))
        return images, targets

    kw = dict(steps=2, batch_size=10, seed=5, width=4, augment="none", lr=1e-2, logit_adjustment=1.0, device="cpu")
    trained = train_classifier(data, synthetic_mix=recording, synthetic_weight=0.25, **kw)
    plain = train_classifier(data, synthetic_mix=_append_shifted(2, soft), **kw)

    torch.manual_seed(5)  # the initialisation of train_classifier's seed
    model = Net(3, 1, 28, 4).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=2)
    log_prior = torch.tensor([16 / 28, 8 / 28, 4 / 28]).log()
    for images, targets in seen:
        log_p = (model(images) + log_prior).log_softmax(dim=1)
        hard = targets if targets.is_floating_point() else torch.nn.functional.one_hot(targets, 3).float()
        ce = -((0.9 * hard + 0.1 / 3) * log_p).sum(dim=1)
        w = torch.tensor([1.0] * 10 + [0.25] * 4)
        loss = (w * ce).sum() / w.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    for a, b in zip(_parameters(trained), _parameters(model)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert any(not torch.allclose(a, c, rtol=1e-4, atol=1e-6)
               for a, c in zip(_parameters(trained), _parameters(plain)))  # the weight changed the steps


def test_synthetic_weight_zero_leaves_the_appended_targets_out(separable):
    """At weight 0 the appended rows add nothing to the gradient: their labels do not matter
    (their images still enter the batch-norm statistics, so those are kept the same)."""
    train, _ = separable
    common = dict(steps=6, batch_size=12, seed=0, width=4, augment="classic")
    runs = {(shift, weight): _parameters(train_classifier(train, synthetic_mix=_append_shifted(shift),
                                                          synthetic_weight=weight, **common))
            for shift in (1, 2) for weight in (0.0, 0.5)}
    for a, b in zip(runs[1, 0.0], runs[2, 0.0]):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(runs[1, 0.5], runs[2, 0.5]))


def test_synthetic_weight_refuses_what_it_cannot_weight(separable):
    from augmentgen.mixing import SyntheticMix
    from tests.metrics.fakes import RealImagesGenerator

    train, _ = separable
    common = dict(steps=1, batch_size=12, width=4)
    for bad in (float("nan"), float("inf"), -0.5, True, "0.5"):
        with pytest.raises(ConfigError, match="synthetic_weight must be a finite number >= 0"):
            train_classifier(train, synthetic_mix=_append_shifted(1), synthetic_weight=bad, **common)
    with pytest.raises(ConfigError, match="no synthetic_mix"):
        train_classifier(train, synthetic_weight=0.5, **common)
    replace = SyntheticMix(RealImagesGenerator(train), 0.5, mode="replace", seed=0)
    with pytest.raises(ConfigError, match="mode='replace'"):
        train_classifier(train, synthetic_mix=replace, synthetic_weight=0.5, **common)
    train_classifier(train, synthetic_mix=replace, synthetic_weight=1.0, **common)  # weight 1: nothing to weight
