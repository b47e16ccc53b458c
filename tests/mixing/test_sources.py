"""Row sources: the anchored VariationSource (vary / interpolate / extrapolate) and its controls,
and the free GeneratorSource and PoolSource that SyntheticMix wraps a bare generator or pool in."""

from __future__ import annotations

import re
import tempfile

import numpy as np
import pytest
import torch

from augmentgen.data import LabelledImages
from augmentgen.errors import ConfigError, DataError
from augmentgen.mixing import (
    FreeSource,
    GeneratorSource,
    PixelMixSource,
    PoolSource,
    RealRowSource,
    SyntheticMix,
    SyntheticPool,
    VariationSource,
)
from augmentgen.mixing.sources import same_class_partners, slerp
from augmentgen.models import build_config, build_generator
from augmentgen.training import Trainer, TrainingConfig
from tests.conftest import assert_later_batches_make_no_host_sync

MODES = ("vary", "interpolate", "extrapolate")
TINY_ENCODER = {"encoder_width": 8, "decoder_width": 8, "latent_dim": 8}


def shifted_squares(n_per_class: int = 24, num_classes: int = 3, seed: int = 0) -> LabelledImages:
    """Class c: a bright bar in row band c at a random horizontal place, so that two images of a
    class differ and an image's own variation can be told from a free sample of its class."""
    rng = np.random.default_rng(seed)
    n = n_per_class * num_classes
    images = rng.integers(0, 30, size=(n, 1, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(num_classes), n_per_class)
    for i, c in enumerate(labels):
        x = int(rng.integers(0, 20))
        images[i, 0, c * 9: c * 9 + 9, x: x + 8] = 230
    return LabelledImages(images, labels, [f"class{c}" for c in range(num_classes)], source="synthetic")


@pytest.fixture(scope="module")
def data() -> LabelledImages:
    return shifted_squares()


@pytest.fixture(scope="module")
def trained_ae(data):
    config = build_config("ae", num_classes=3, **TINY_ENCODER)
    training = TrainingConfig(steps=150, batch_size=24, seed=0, checkpoint_every=0, sample_every=0,
                              log_every=150)
    with tempfile.TemporaryDirectory() as tmp:
        return Trainer(config, training, tmp).fit(data).eval()


@pytest.fixture(scope="module", params=["aae", "vae", "ae", "aegan"])
def encoder_gen(request):
    torch.manual_seed(0)
    return build_generator(build_config(request.param, num_classes=3, **TINY_ENCODER)).eval()


def signed(data: LabelledImages, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    images = data.images[:n].float() / 127.5 - 1
    return images, data.labels[:n].clone()


@pytest.mark.parametrize("mode", MODES)
def test_appended_rows_keep_their_real_rows_labels_and_the_batch_range(encoder_gen, data, mode):
    images, labels = signed(data)
    unit = (images + 1) / 2  # a ToTensor batch in [0, 1]
    mix = SyntheticMix(VariationSource(encoder_gen, mode), 0.5, mode="append", output_range=(0, 1), seed=0)
    out, targets, mask = mix(unit, labels, return_mask=True)
    n = round(0.5 * len(labels))
    assert out.shape == (len(labels) + n, 1, 28, 28) and mask.sum() == n
    assert torch.equal(out[: len(labels)], unit) and torch.equal(targets[: len(labels)], labels)
    assert out[len(labels):].min() >= 0 and out[len(labels):].max() <= 1
    # Each synthetic row's label is a label of the batch (its anchor's), never a drawn one.
    anchors_rng = torch.Generator().manual_seed(0)
    expected_rows = torch.randint(len(labels), (n,), generator=anchors_rng)
    assert torch.equal(targets[len(labels):], labels[expected_rows])


@pytest.mark.parametrize("mode", MODES)
def test_variations_are_seeded(encoder_gen, data, mode):
    images, labels = signed(data)
    outs = [SyntheticMix(VariationSource(encoder_gen, mode), 1.0, mode="append", seed=seed)(images, labels)[0]
            for seed in (3, 3, 4)]
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_same_class_partners_are_other_rows_of_the_class():
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 2, 2, 0, 3])
    anchors = torch.arange(len(labels)).repeat(50)
    partners = same_class_partners(labels, anchors, rng=torch.Generator().manual_seed(0))
    assert torch.equal(labels[partners], labels[anchors])
    single = labels[anchors] == 3  # class 3 has one row: it is its own partner
    assert torch.equal(partners[single], anchors[single])
    assert (partners[~single] != anchors[~single]).all()
    # Every other row of a class is drawn: class 0 has rows 0, 2, 5, 8.
    assert set(partners[anchors == 0].tolist()) == {2, 5, 8}


def test_interpolation_partners_share_the_class(trained_ae, data):
    """Interpolating with a partner of the same class stays in that class: for the bar images the
    bar stays in the class's row band."""
    images, labels = signed(data)
    source = VariationSource(trained_ae, "interpolate", weight_range=(0.5, 0.5))
    anchors = torch.arange(len(labels))
    rows = source.rows(images, labels, anchors, rng=torch.Generator().manual_seed(0))
    band_energy = torch.stack([rows[:, 0, c * 9: c * 9 + 9].mean(dim=(1, 2)) for c in range(3)], dim=1)
    assert (band_energy.argmax(dim=1) == labels).float().mean() >= 0.9


def test_variations_sit_nearer_their_real_row_than_free_samples(trained_ae, data):
    images, labels = signed(data)
    anchors = torch.arange(len(labels))
    rng = torch.Generator().manual_seed(0)
    free = trained_ae.sample(labels, generator=rng)
    free_distance = (free - images).flatten(1).norm(dim=1).mean()
    for mode in MODES:
        rows = VariationSource(trained_ae, mode).rows(images, labels, anchors, rng=rng)
        distance = (rows - images).flatten(1).norm(dim=1).mean()
        assert distance < 0.8 * free_distance, mode


def test_one_batched_encode_and_decode_per_call(trained_ae, data, monkeypatch):
    """No per-row Python: interpolating 72 rows encodes once (both rows of every pair) and decodes once."""
    images, labels = signed(data)
    calls = {"encode": 0, "decode": 0}
    for name in calls:
        original = getattr(trained_ae, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(trained_ae, name, counted)
    VariationSource(trained_ae, "interpolate").rows(images, labels, torch.arange(len(labels)))
    assert calls == {"encode": 1, "decode": 1}


def test_slerp_keeps_the_norm_of_equal_norm_codes():
    a, b = torch.randn(64, 8), torch.randn(64, 8)
    b = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)
    mid = slerp(a, b, torch.full((64,), 0.5))
    assert torch.allclose(mid.norm(dim=1), a.norm(dim=1), rtol=1e-4)
    assert torch.allclose(slerp(a, b, torch.zeros(64)), a, atol=1e-5)
    assert torch.allclose(slerp(a, a, torch.full((64,), 0.3)), a, atol=1e-5)  # parallel: linear


def test_extrapolation_moves_away_from_the_partner(trained_ae, data):
    images, labels = signed(data)
    g = trained_ae
    anchors = torch.arange(len(labels))
    rows = VariationSource(g, "extrapolate", extrapolation_range=(1.0, 1.0)).rows(
        images, labels, anchors, rng=torch.Generator().manual_seed(5))
    partners = same_class_partners(labels, anchors, rng=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        z_i, z_j = g.encode(images, labels)[0], g.encode(images[partners], labels)[0]
        expected = g.decode(2 * z_i - z_j, labels)
    assert torch.allclose(rows, expected, atol=1e-5)


def test_real_row_control_appends_real_rows_of_the_batch(data):
    images, labels = signed(data)
    mix = SyntheticMix(RealRowSource(3, (1, 28, 28)), 0.5, mode="append", balance="uniform", seed=0)
    out, targets = mix(images, labels)
    extra, extra_labels = out[len(labels):], targets[len(labels):]
    assert torch.equal(torch.bincount(extra_labels, minlength=3), torch.tensor([12, 12, 12]))
    matches = (extra[:, None] - images[None]).flatten(2).abs().amax(dim=2) < 1e-6  # (extra, batch)
    assert matches.any(dim=1).all()
    assert (labels[matches.float().argmax(dim=1)] == extra_labels).all()


def test_pixel_mix_control_blends_two_rows_of_one_class(data):
    images, labels = signed(data)
    source = PixelMixSource(3, (1, 28, 28), weight_range=(0.5, 0.5))
    anchors = torch.arange(len(labels))
    rows = source.rows(images, labels, anchors, rng=torch.Generator().manual_seed(1))
    partners = same_class_partners(labels, anchors, rng=torch.Generator().manual_seed(1))
    assert torch.allclose(rows, 0.5 * images + 0.5 * images[partners])


def test_inverse_frequency_balance_tops_up_rare_classes_from_their_rows(data):
    images, labels = signed(data)
    keep = torch.cat([torch.arange(0, 24), torch.arange(24, 28), torch.arange(48, 50)])  # 24 / 4 / 2
    mix = SyntheticMix(RealRowSource(3, (1, 28, 28)), 1.0, mode="append", balance="inverse-frequency", seed=0)
    _, targets = mix(images[keep], labels[keep])
    extra = torch.bincount(targets[len(keep):], minlength=3)
    assert extra[0] == 0 and extra[1] + extra[2] == len(keep)
    assert torch.equal(mix.class_counts, torch.bincount(targets, minlength=3))


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "replace", "balance": "uniform"}, "cannot rebalance"),
    ({"temperature": 0.5}, "temperature does not apply"),
    ({"prefetch": True}, "drop prefetch"),
])
def test_options_that_cannot_apply_name_the_fix(encoder_gen, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SyntheticMix(VariationSource(encoder_gen), 0.5, **kwargs)


def test_source_errors_name_the_problem(encoder_gen):
    cgan = build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8))
    with pytest.raises(ConfigError, match="cannot vary real images"):
        VariationSource(cgan)
    with pytest.raises(ConfigError, match="mode must be one of"):
        VariationSource(encoder_gen, "blend")
    with pytest.raises(ConfigError, match="strength"):
        VariationSource(encoder_gen, strength=float("nan"))
    with pytest.raises(ConfigError, match=r"^strength must be a finite number >= 0 .*, got True$"):
        VariationSource(encoder_gen, strength=True)  # was taken as 1.0
    assert VariationSource(encoder_gen, strength=np.float32(0.5)).strength == 0.5  # was "must be a finite number"
    with pytest.raises(ConfigError, match="weight_range"):
        VariationSource(encoder_gen, "interpolate", weight_range=(0.8, 0.2))
    with pytest.raises(ConfigError, match="num_classes"):
        RealRowSource(1, (1, 28, 28))
    with pytest.raises(DataError, match=r"class_names must be a list of strings, one per class, got the str 'abc'"):
        RealRowSource(3, (1, 28, 28), class_names="abc")  # list("abc") would have been three names


def test_replace_mode_varies_rows_in_place(encoder_gen, data):
    images, labels = signed(data)
    out, targets, mask = SyntheticMix(VariationSource(encoder_gen), 0.25, mode="replace", seed=0)(
        images, labels, return_mask=True)
    assert out.shape == images.shape and torch.equal(targets, labels)
    assert mask.sum() == round(0.25 * len(labels))
    assert torch.equal(out[~mask], images[~mask]) and not torch.equal(out[mask], images[mask])


# --------------------------------------------------------------------------- free sources
@pytest.fixture(scope="module")
def cgan():
    torch.manual_seed(0)
    return build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8)).eval()


def same_output(a: SyntheticMix, b: SyntheticMix, images: torch.Tensor, labels: torch.Tensor, calls: int = 2) -> bool:
    """Whether two mixers give bit-identical batches, labels and masks over ``calls`` calls."""
    for _ in range(calls):
        for x, y in zip(a(images, labels, return_mask=True), b(images, labels, return_mask=True)):
            if not torch.equal(x, y):
                return False
    return True


@pytest.mark.parametrize("mode,balance,temperature", [
    ("replace", None, 1.0), ("append", "uniform", 0.7), ("append", "inverse-frequency", [0.5, 1.0, 1.5]),
    ("replace", {0: 1, 2: 3}, 1.0)])
def test_a_generator_source_mixes_exactly_like_the_bare_generator(cgan, data, mode, balance, temperature):
    images, labels = signed(data, 20)
    bare = SyntheticMix(cgan, 0.5, mode=mode, balance=balance, temperature=temperature, seed=3)
    wrapped = SyntheticMix(GeneratorSource(cgan, temperature), 0.5, mode=mode, balance=balance, seed=3)
    assert same_output(bare, wrapped, images, labels)
    assert wrapped.generator is cgan and wrapped.pool is None and wrapped.anchored is None
    assert isinstance(bare.source, GeneratorSource) and bare.source.generator is cgan
    assert repr(bare) == repr(wrapped) and wrapped.temperature == bare.temperature
    assert (wrapped.num_classes, wrapped.class_names, wrapped.image_shape, wrapped.device) == (
        bare.num_classes, bare.class_names, bare.image_shape, bare.device)


def test_a_generator_source_filters_and_resumes_like_the_bare_generator(cgan, data):
    images, labels = signed(data, 20)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 3)).eval()
    kwargs = dict(mode="append", balance="uniform", teacher=teacher, filter_threshold=0.3, soft_labels=True)
    bare = SyntheticMix(cgan, 0.5, seed=1, **kwargs)
    wrapped = SyntheticMix(GeneratorSource(cgan), 0.5, seed=1, **kwargs)
    assert same_output(bare, wrapped, images, labels)
    resumed = SyntheticMix(GeneratorSource(cgan), 0.5, seed=99, **kwargs)
    resumed.load_state_dict(bare.state_dict())
    assert same_output(bare, resumed, images, labels)


@pytest.mark.parametrize("mode,balance", [("replace", None), ("append", "uniform"), ("append", "inverse-frequency")])
def test_a_pool_source_mixes_exactly_like_the_bare_pool(cgan, data, mode, balance):
    pool = SyntheticPool(cgan, per_class=8, seed=0)
    images, labels = signed(data, 20)
    bare = SyntheticMix(pool, 0.5, mode=mode, balance=balance, seed=2)
    wrapped = SyntheticMix(PoolSource(pool), 0.5, mode=mode, balance=balance, seed=2)
    assert same_output(bare, wrapped, images, labels)
    uint8 = ((images + 1) * 127.5).round().to(torch.uint8)
    assert same_output(bare, wrapped, uint8, labels)
    assert wrapped.pool is pool and wrapped.generator is None and isinstance(bare.source, PoolSource)
    assert repr(bare) == repr(wrapped)


def test_a_bad_source_is_refused_naming_what_is_accepted(cgan):
    accepted = (r"ConditionalGenerator, a SyntheticPool or a row source \(GeneratorSource, PoolSource, "
                r"VariationSource, RealRowSource, PixelMixSource, or a subclass of FreeSource or AnchoredSource\), "
                r"got Linear")
    with pytest.raises(ConfigError, match=accepted):
        SyntheticMix(torch.nn.Linear(1, 1), 0.5)
    with pytest.raises(ConfigError, match="GeneratorSource needs a ConditionalGenerator, got SyntheticPool"):
        GeneratorSource(SyntheticPool(cgan, per_class=1, seed=0))
    with pytest.raises(ConfigError, match="PoolSource needs a SyntheticPool, got CGANGenerator"):
        PoolSource(cgan)


@pytest.mark.parametrize("kwargs,match", [
    ({"temperature": 0.5}, r"temperature belongs to the source.*GeneratorSource\(generator, temperature="),
    ({"autocast": True}, r"autocast=True belongs to the source"),
    ({"compile": True}, r"compile=True belongs to the source"),
])
def test_sampling_options_of_a_given_generator_source_name_where_they_go(cgan, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SyntheticMix(GeneratorSource(cgan), 0.5, **kwargs)
    SyntheticMix(cgan, 0.5, **kwargs)  # with the bare generator they are the mixer's to pass on


def test_pool_options_are_refused_for_a_pool_source_as_for_a_pool(cgan):
    pool = SyntheticPool(cgan, per_class=2, seed=0)
    for source in (pool, PoolSource(pool)):
        with pytest.raises(ConfigError, match=r"temperature cannot apply.*SyntheticPool\(generator, temperature="):
            SyntheticMix(source, 0.5, temperature=0.5)


class ClassShade(FreeSource):
    """A toy free source: every row of class k is the flat image of value k / 2 - 1."""

    num_classes, class_names, image_shape, device = 3, None, (1, 28, 28), torch.device("cpu")

    def rows(self, classes, *, rng=None):
        return (classes.float() / 2 - 1).view(-1, 1, 1, 1).expand(-1, *self.image_shape).clone()


def test_a_user_free_source_is_one_small_class(data):
    images, labels = signed(data, 12)
    out, targets, mask = SyntheticMix(ClassShade(), 0.5, mode="append", balance="uniform", seed=0)(
        images, labels, return_mask=True)
    assert mask.sum() == 6 and torch.bincount(targets[mask], minlength=3).tolist() == [2, 2, 2]
    assert torch.equal(out[mask], (targets[mask].float() / 2 - 1).view(-1, 1, 1, 1).expand(-1, 1, 28, 28))


class PoolRowsAsFloats(FreeSource):
    """A pool served the way every uint8 batch was before: rows() in [-1, 1], then to_uint8."""

    def __init__(self, pool: SyntheticPool):
        self.source = PoolSource(pool)
        self.num_classes, self.class_names = pool.num_classes, pool.class_names
        self.image_shape, self.device = pool.image_shape, pool.images.device

    def rows(self, classes, *, rng=None):
        return self.source.rows(classes, rng=rng)


@pytest.mark.parametrize("mode,balance,soft_labels", [
    ("replace", None, False), ("append", "uniform", False), ("replace", "inverse-frequency", False),
    ("append", {0: 1, 2: 3}, True)])
def test_uint8_batches_get_a_pools_bytes_as_the_float_round_trip_gave_them(cgan, data, mode, balance,
                                                                           soft_labels):
    pool = SyntheticPool(cgan, per_class=8, seed=0)
    images, labels = data.images[:20].clone(), data.labels[:20].clone()
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 3)) if soft_labels else None
    kwargs = dict(mode=mode, balance=balance, seed=4, teacher=teacher, soft_labels=soft_labels)
    direct = SyntheticMix(pool, 0.5, **kwargs)
    round_trip = SyntheticMix(PoolRowsAsFloats(pool), 0.5, **kwargs)
    assert same_output(direct, round_trip, images, labels, calls=3)
    channels_last = images.contiguous(memory_format=torch.channels_last)
    out, out_round_trip = direct(channels_last, labels)[0], round_trip(channels_last, labels)[0]
    assert torch.equal(out, out_round_trip) and out.stride() == out_round_trip.stride()
    assert torch.equal(direct.class_counts, round_trip.class_counts)


def test_only_float_batches_map_a_pools_bytes_to_floats(cgan, data, monkeypatch):
    calls = {"rows": 0, "take": 0}
    for name in calls:  # counted on PoolSource itself: its own rows(), not a subclass's
        original = getattr(PoolSource, name)
        monkeypatch.setattr(PoolSource, name, lambda self, *a, _f=original, _n=name, **k:
                            calls.__setitem__(_n, calls[_n] + 1) or _f(self, *a, **k))
    mix = SyntheticMix(PoolSource(SyntheticPool(cgan, per_class=8, seed=0)), 0.5, balance="uniform", seed=0)
    mix(data.images[:10], data.labels[:10])
    assert calls == {"rows": 0, "take": 1}
    mix(*signed(data, 10))
    assert calls == {"rows": 1, "take": 2}


def test_a_subclass_that_changes_a_pools_rows_keeps_them_for_uint8_batches(cgan, data):
    class Inverted(PoolSource):
        def rows(self, classes, *, rng=None):
            return -super().rows(classes, rng=rng)

    pool = SyntheticPool(cgan, per_class=8, seed=0)
    plain, inverted = (SyntheticMix(s, 0.5, balance="uniform", seed=0)(data.images[:10], data.labels[:10])[0]
                       for s in (PoolSource(pool), Inverted(pool)))
    assert torch.equal(inverted[10:], 255 - plain[10:])


def test_every_byte_comes_back_from_the_signed_unit_range():
    # Why a uint8 batch can take the bank's bytes as they are: to_uint8(to_signed_unit(b)) == b
    # for every byte, with the division by 127.5 as the CPU does it and as CUDA does it (times
    # the float32 reciprocal, which can be one ulp off).
    from augmentgen._images import to_signed_unit, to_uint8

    every = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_uint8(to_signed_unit(every)), every)
    reciprocal = torch.tensor(1 / 127.5, dtype=torch.float32)
    assert torch.equal(to_uint8(every.float().mul_(reciprocal).sub_(1.0)), every)


# --------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def tiny_ae():
    torch.manual_seed(0)
    return build_generator(build_config("ae", num_classes=3, **TINY_ENCODER)).eval()


@pytest.mark.parametrize("make", [RealRowSource, PixelMixSource])
@pytest.mark.parametrize("balance", [None, "uniform", "inverse-frequency"])
def test_batch_labels_outside_a_pixel_sources_classes_name_num_classes(data, make, balance):
    # balance=None accepted them silently; with a balance, counting raised an IndexError.
    images, _ = signed(data, 10)
    mix = SyntheticMix(make(3, (1, 28, 28)), 0.5, balance=balance, seed=0)
    with pytest.raises(DataError, match=rf"labels \[3, 4, 5, \.\.\., 9\] are outside \[0, 2\]: {make.__name__} has "
                                        rf"3 classes.*build {make.__name__}\(num_classes=10, \.\.\.\)"):
        mix(images, torch.arange(10))
    labels = torch.zeros(10, dtype=torch.long)
    labels[4] = -1
    with pytest.raises(DataError, match=r"labels \[-1\] are outside \[0, 2\].*drop the rows labelled \[-1\]"):
        mix(images, labels)


def test_batch_labels_outside_a_variation_sources_classes_are_refused_before_counting(tiny_ae, data):
    images, _ = signed(data, 10)
    mix = SyntheticMix(VariationSource(tiny_ae, "interpolate"), 0.5, balance="uniform", seed=0)
    with pytest.raises(DataError, match=r"labels \[3, 4, 5, \.\.\., 9\] are outside \[0, 2\]: this generator has 3 classes.*"
                                        "use a generator trained on these classes"):
        mix(images, torch.arange(10))


@pytest.mark.parametrize("make", [RealRowSource, PixelMixSource])
def test_pixel_source_shape_and_device_errors_name_the_fix(make):
    for shape in (28, None, (28, 28)):
        with pytest.raises(ConfigError, match=r"image_shape must be \(C, H, W\) of positive ints, e\.g\. "
                                              rf"\(1, 28, 28\), got {re.escape(repr(shape))}$"):
            make(3, shape)
    for device in ("gpu", None):
        with pytest.raises(ConfigError, match=rf"device {re.escape(repr(device))} is not a device; use 'cpu', "
                                              r"'cuda', 'cuda:N' or 'mps'"):
            make(3, (1, 28, 28), device=device)


def test_a_pixel_sources_shape_mismatch_names_the_source_not_a_generator():
    mix = SyntheticMix(RealRowSource(3, (1, 28, 28)), 0.5, seed=0)
    with pytest.raises(DataError, match=r"^RealRowSource was built for \(1, 28, 28\) images but the batch is "
                                        r"\(1, 32, 32\): build it with image_shape=\(1, 32, 32\)$"):
        mix(torch.rand(4, 1, 32, 32), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("mode, kwargs, match", [
    ("interpolate", {"strength": 0.9},
     r"strength applies to mode='vary'; mode='interpolate' takes weight_range=\(low, high\): drop strength"),
    ("extrapolate", {"strength": 0.0}, r"strength applies to mode='vary'; mode='extrapolate' takes "
                                       r"extrapolation_range=\(low, high\): drop strength"),
    ("vary", {"weight_range": (0.1, 0.3)},
     r"weight_range applies to mode='interpolate'; mode='vary' takes strength=\.\.\.: drop weight_range"),
    ("interpolate", {"extrapolation_range": (1.0, 2.0)},
     r"extrapolation_range applies to mode='extrapolate'; mode='interpolate' takes weight_range"),
])
def test_a_setting_of_another_mode_is_refused(tiny_ae, mode, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        VariationSource(tiny_ae, mode, **kwargs)


def test_another_modes_setting_at_its_default_changes_nothing(tiny_ae):
    # What a caller passing every setting whatever the mode gives (the command line's strength=0.5).
    given = VariationSource(tiny_ae, "interpolate", strength=0.5, extrapolation_range=(0.25, 0.75))
    plain = VariationSource(tiny_ae, "interpolate")
    assert repr(given) == repr(plain) == "VariationSource(AEGenerator, mode='interpolate', weight_range=(0.2, 0.8))"
    assert (given.strength, given.weight_range, given.extrapolation_range) == (0.5, (0.2, 0.8), (0.25, 0.75))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("make", [RealRowSource, PixelMixSource])
def test_a_pixel_sources_labels_are_read_back_on_the_first_cuda_batch_only(data, make):
    images, labels = signed(data, 24)
    images, labels = images.cuda(), labels.cuda()
    mix = SyntheticMix(make(3, (1, 28, 28), device="cuda"), 0.5, seed=0, output_range=(-1, 1))
    assert_later_batches_make_no_host_sync(mix, images, labels)  # the first batch's labels are read back
