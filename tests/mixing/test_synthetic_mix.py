"""SyntheticMix and augment_loader: ratios, labels, masks, balancing, dtype/range/layout, seeds."""

from __future__ import annotations

import re

import pytest
import torch

from augmentgen.errors import ConfigError, DataError
from augmentgen.mixing import SyntheticMix, allocate_counts, augment_loader
from augmentgen.models import build_config, build_generator
from tests.conftest import assert_later_batches_make_no_host_sync


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    return build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8))


@pytest.fixture(scope="module")
def gen_rgb32():
    torch.manual_seed(0)
    return build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8,
                                        image_size=32, in_channels=3))


def batch(n=20, channels=1, size=28, dtype=torch.float32, seed=0):
    """Float batches in the generators' [-1, 1] (what the mixer then infers), uint8 in [0, 255]."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, channels, size, size, generator=g)
    images = (images * 255).to(dtype) if dtype == torch.uint8 else (images * 2 - 1).to(dtype)
    labels = torch.randint(0, 3, (n,), generator=g)
    return images, labels


@pytest.mark.parametrize("ratio,n", [(0.0, 0), (0.25, 5), (0.5, 10), (1.0, 20)])
def test_replace_keeps_size_and_labels(gen, ratio, n):
    images, labels = batch()
    out, out_labels, mask = SyntheticMix(gen, ratio, mode="replace", seed=0, output_range=(0, 1))(
        images, labels, return_mask=True)
    assert out.shape == images.shape and mask.dtype == torch.bool
    assert int(mask.sum()) == n
    assert torch.equal(out_labels, labels)  # balance=None: each replaced row keeps its label
    assert torch.equal(out[~mask], images[~mask])
    if n:
        assert not torch.allclose(out[mask], images[mask])


def test_replace_row_gets_image_of_its_class(gen):
    # The synthetic image of a replaced row is exactly the generator's sample for that row's class.
    images, labels = batch()
    mix = SyntheticMix(gen, 0.5, mode="replace", seed=3)
    out, out_labels, mask = mix(images, labels, return_mask=True)
    rows = mask.nonzero().flatten()
    rng = torch.Generator().manual_seed(3)
    chosen = torch.randperm(20, generator=rng)[:10]
    assert set(chosen.tolist()) == set(rows.tolist())
    expected = gen.sample(labels[chosen], generator=rng)
    assert torch.allclose(out[chosen], expected, atol=1e-6)


@pytest.mark.parametrize("ratio,b,n", [(0.5, 20, 10), (0.3, 10, 3), (0.25, 6, 2), (1.5, 4, 6)])
def test_append_adds_round_ratio_rows(gen, ratio, b, n):
    images, labels = batch(b)
    out, out_labels, mask = SyntheticMix(gen, ratio, mode="append", seed=0)(images, labels, return_mask=True)
    assert out.shape[0] == b + n and out_labels.shape[0] == b + n
    assert mask.tolist() == [False] * b + [True] * n
    assert torch.equal(out[:b], images) and torch.equal(out_labels[:b], labels)
    # balance=None copies classes present in the batch
    assert set(out_labels[b:].tolist()) <= set(labels.tolist())


@pytest.mark.parametrize("ratio,b,n", [(0.5, 20, 10), (0.3, 10, 3), (1.5, 4, 6)])
def test_the_default_mode_is_append(gen, ratio, b, n):
    # Equal real exposure by default: the B real rows come out unchanged, round(ratio * B) rows follow.
    images, labels = batch(b)
    mix = SyntheticMix(gen, ratio, seed=0)
    assert mix.mode == "append" and "mode='append'" in repr(mix)
    out, out_labels, mask = mix(images, labels, return_mask=True)
    assert out.shape == (b + n, 1, 28, 28) and out_labels.shape == (b + n,)
    assert mask.tolist() == [False] * b + [True] * n
    assert torch.equal(out[:b], images) and torch.equal(out_labels[:b], labels)
    explicit = SyntheticMix(gen, ratio, mode="append", seed=0)(images, labels, return_mask=True)
    assert all(torch.equal(x, y) for x, y in zip((out, out_labels, mask), explicit))


def test_augment_loader_appends_by_default(gen):
    from torch.utils.data import DataLoader, TensorDataset

    images, labels = torch.rand(24, 1, 28, 28), torch.arange(24) % 3
    wrapped = augment_loader(DataLoader(TensorDataset(images, labels), batch_size=8), gen, 0.5, seed=0)
    assert wrapped.mix.mode == "append"
    batches = list(wrapped)
    assert len(batches) == 3
    for i, (x, y) in enumerate(batches):
        real = slice(8 * i, 8 * i + 8)
        assert x.shape == (12, 1, 28, 28) and y.shape == (12,)
        assert torch.equal(x[:8], images[real]) and torch.equal(y[:8], labels[real])
    # dict batches too: the real rows, then round(0.25 * 8) = 2 appended rows
    out = next(iter(augment_loader([{"image": images[:8], "label": labels[:8]}], gen, 0.25, seed=0)))
    assert out["image"].shape == (10, 1, 28, 28) and out["label"].shape == (10,)
    assert torch.equal(out["image"][:8], images[:8]) and torch.equal(out["label"][:8], labels[:8])


def test_uniform_balance_is_exact(gen):
    images, _ = batch(30)
    labels = torch.zeros(30, dtype=torch.long)
    out, out_labels, mask = SyntheticMix(gen, 0.5, mode="append", balance="uniform", seed=0)(
        images, labels, return_mask=True)
    assert torch.bincount(out_labels[mask], minlength=3).tolist() == [5, 5, 5]


def test_dict_balance_by_index_and_name(gen):
    images, labels = batch(40)
    mix = SyntheticMix(gen, 0.5, mode="replace", balance={0: 3.0, "2": 1.0}, seed=0)
    out, out_labels, mask = mix(images, labels, return_mask=True)
    # replace + balance: the replaced rows take the label of their synthetic image
    assert torch.bincount(out_labels[mask], minlength=3).tolist() == [15, 0, 5]
    assert torch.equal(out_labels[~mask], labels[~mask])


def test_allocate_counts_largest_remainder():
    counts = allocate_counts(10, torch.tensor([1.0, 1.0, 1.0]))
    assert counts.sum() == 10 and sorted(counts.tolist()) == [3, 3, 4]
    assert allocate_counts(7, torch.tensor([0.0, 2.0, 5.0])).tolist() == [0, 2, 5]
    assert allocate_counts(0, torch.tensor([1.0, 1.0])).tolist() == [0, 0]


def test_inverse_frequency_tops_up_to_majority(gen):
    # Real batches: 6 of class 0, 3 of class 1, 1 of class 2; 5 synthetic rows per batch.
    labels = torch.tensor([0] * 6 + [1] * 3 + [2])
    images = torch.rand(10, 1, 28, 28)
    mix = SyntheticMix(gen, 0.5, mode="append", balance="inverse-frequency", seed=0)
    _, out_labels, mask = mix(images, labels, return_mask=True)
    # deficits after the real rows: [0, 3, 5] -> 5 rows split 3:5 by largest remainder
    synthetic = torch.bincount(out_labels[mask], minlength=3).tolist()
    assert synthetic[0] == 0 and sum(synthetic) == 5 and synthetic[2] >= synthetic[1] >= 1
    # Deficit per batch is 3 + 5 = 8 > 5 rows, so totals keep climbing but never overtake class 0.
    for _ in range(5):
        mix(images, labels)
    counts = mix.class_counts.tolist()
    assert counts[0] == 36 and max(counts) == 36 and sum(counts) == 6 * 15


def test_inverse_frequency_fills_exactly_when_rows_suffice(gen):
    labels = torch.tensor([0] * 6 + [1] * 3 + [2])
    images = torch.rand(10, 1, 28, 28)
    mix = SyntheticMix(gen, 1.1, mode="append", balance="inverse-frequency", seed=0)  # 11 rows
    _, out_labels, mask = mix(images, labels, return_mask=True)
    synthetic = torch.bincount(out_labels[mask], minlength=3)
    # deficits [0, 3, 5] filled exactly, the 3 spare rows spread one per class
    assert synthetic.tolist() == [1, 4, 6]
    assert mix.class_counts.tolist() == [7, 7, 7]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.uint8])
def test_dtype_and_range_preserved(gen, dtype):
    images, labels = batch(dtype=torch.float32)
    if dtype == torch.uint8:
        images = (images * 255).to(torch.uint8)
    else:
        images = images.to(dtype)
    out, _, mask = SyntheticMix(gen, 0.5, seed=0, output_range=(0, 1))(images, labels, return_mask=True)
    assert out.dtype == dtype and out.device == images.device
    synthetic = out[mask].float()
    if dtype == torch.uint8:
        assert synthetic.max() > 1  # [0, 255], not [0, 1]
    else:
        assert synthetic.min() >= 0 and synthetic.max() <= 1


def test_mean_std_normalisation_matches_torchvision(gen):
    from torchvision.transforms import v2

    from augmentgen.transforms.functional import from_generator_range

    mean, std = [0.2860], [0.3530]
    fake = torch.rand(2, 1, 28, 28) * 2 - 1
    expected = v2.Normalize(mean, std)((fake + 1) / 2)
    assert torch.allclose(from_generator_range(fake, mean=mean, std=std), expected, atol=1e-6)
    images, labels = batch(10)
    out, _ = SyntheticMix(gen, 1.0, mode="replace", seed=0, mean=mean, std=std)(images, labels)  # every row
    unit = out * std[0] + mean[0]  # back to [0, 1]
    assert unit.min() >= -1e-5 and unit.max() <= 1 + 1e-5
    assert not torch.allclose(out, unit, atol=1e-3)  # normalised, not left in [0, 1]


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_channels_last_preserved(gen_rgb32, mode):
    images = torch.rand(8, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 3, (8,))
    out, _ = SyntheticMix(gen_rgb32, 0.5, mode=mode, seed=0)(images, labels)
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_input_not_modified(gen, mode):
    images, labels = batch()
    before, before_labels = images.clone(), labels.clone()
    SyntheticMix(gen, 1.0, mode=mode, balance="uniform", seed=0)(images, labels)
    assert torch.equal(images, before) and torch.equal(labels, before_labels)


def test_seed_determinism(gen):
    images, labels = batch()
    a = SyntheticMix(gen, 0.5, mode="append", balance="uniform", seed=7)
    b = SyntheticMix(gen, 0.5, mode="append", balance="uniform", seed=7)
    c = SyntheticMix(gen, 0.5, mode="append", balance="uniform", seed=8)
    for _ in range(2):
        (xa, ya), (xb, yb), (xc, _) = a(images, labels), b(images, labels), c(images, labels)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert not torch.equal(xa, xc)


def test_bf16_autocast_runs(gen):
    images, labels = batch()
    out, _ = SyntheticMix(gen, 0.5, seed=0, autocast=True)(images, labels)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("images,match", [
    (torch.rand(4, 3, 28, 28), "channel"),
    (torch.rand(4, 1, 32, 32), "32"),
    (torch.rand(4, 28, 28), r"\(B, C, H, W\)"),
    (torch.randint(0, 3, (4, 1, 28, 28)), "float or uint8"),
])
def test_shape_and_dtype_mismatch_errors(gen, images, match):
    with pytest.raises(DataError, match=match):
        SyntheticMix(gen, 0.5)(images, torch.zeros(4, dtype=torch.long))


def test_label_errors(gen):
    images = torch.rand(4, 1, 28, 28)
    with pytest.raises(DataError, match="CutMix"):
        SyntheticMix(gen)(images, torch.zeros(4, 3))
    with pytest.raises(DataError, match="4 images but 3 labels"):
        SyntheticMix(gen)(images, torch.zeros(3, dtype=torch.long))


def test_device_mismatch_names_fix(gen):
    images = torch.rand(4, 1, 28, 28, device="meta")
    with pytest.raises(DataError, match=r"generator.to\('meta'\)"):
        SyntheticMix(gen)(images, torch.zeros(4, dtype=torch.long, device="meta"))


def test_config_errors(gen):
    with pytest.raises(ConfigError):
        SyntheticMix(gen, 1.5, mode="replace")
    with pytest.raises(ConfigError):
        SyntheticMix(gen, mode="swap")
    with pytest.raises(ConfigError, match="class index"):
        SyntheticMix(gen, balance={"cat": 1.0})
    with pytest.raises(ConfigError, match="prefetch"):
        SyntheticMix(gen, prefetch=True)


def test_augment_loader_wraps_dataloader(gen):
    from torch.utils.data import DataLoader, TensorDataset

    images = torch.rand(24, 1, 28, 28)
    labels = torch.arange(24) % 3
    loader = DataLoader(TensorDataset(images, labels), batch_size=8)
    wrapped = augment_loader(loader, gen, 0.5, mode="append", seed=0)
    assert len(wrapped) == 3
    shapes = [(x.shape[0], y.shape[0]) for x, y in wrapped]
    assert shapes == [(12, 12)] * 3
    # dict batches too
    dict_loader = [{"image": images[:8], "label": labels[:8]}]
    out = next(iter(augment_loader(dict_loader, gen, 0.25, mode="replace", seed=0)))
    assert out["image"].shape == (8, 1, 28, 28) and torch.equal(out["label"], labels[:8])


def test_temperature_passes_through_to_the_generator(gen):
    images, labels = batch()
    default = SyntheticMix(gen, 0.5, mode="append", balance="uniform", seed=4)(images, labels)
    one = SyntheticMix(gen, 0.5, mode="append", balance="uniform", seed=4, temperature=1.0)(images, labels)
    assert torch.equal(one[0], default[0]) and torch.equal(one[1], default[1])  # bit for bit
    # Per class [1, 0, 1]: every synthetic row of class 1 is the decoded prior centre of class 1.
    out, out_labels, mask = SyntheticMix(gen, 1.0, mode="append", balance="uniform", seed=4,
                                         temperature=[1.0, 0.0, 1.0])(images, labels, return_mask=True)
    fake, fake_labels = out[mask], out_labels[mask]
    ones = fake[fake_labels == 1]
    assert len(ones) >= 2 and torch.equal(ones, ones[:1].expand_as(ones))
    # (up to rounding: a 1-row forward and the mixer's range mapping may differ in the last bit)
    torch.testing.assert_close(ones[0], gen.sample([1], temperature=0.0)[0], atol=1e-5, rtol=0)
    assert not torch.equal(fake[fake_labels == 0][0], fake[fake_labels == 0][1])
    assert "temperature=(1.0, 0.0, 1.0)" in repr(SyntheticMix(gen, temperature=[1, 0, 1]))
    wrapped = augment_loader([(images, labels)], gen, 1.0, mode="append", balance="uniform", temperature=0.0)
    assert wrapped.mix.temperature == 0.0
    with pytest.raises(ConfigError, match="temperature"):
        SyntheticMix(gen, temperature=-1.0)
    with pytest.raises(ConfigError, match="2 values but this generator has 3 classes"):
        SyntheticMix(gen, temperature=[0.5, 0.5])


@pytest.mark.parametrize("mode", ["replace", "append"])
@pytest.mark.parametrize("balance", [None, "uniform", "inverse-frequency"])
def test_teacher_options_at_their_defaults_change_nothing(gen, mode, balance):
    # Bit for bit, with the same random draws (the generator state after each call matches too).
    defaults = dict(teacher=None, filter_threshold=None, oversample=4, max_rounds=2, min_acceptance=0.0,
                    soft_labels=False, label_temperature=1.0, soft_label_weight=1.0, soft_real_labels=False)
    plain = SyntheticMix(gen, 0.5, mode=mode, balance=balance, seed=11, output_range=(0, 1))
    explicit = SyntheticMix(gen, 0.5, mode=mode, balance=balance, seed=11, output_range=(0, 1), **defaults)
    for seed in range(3):
        images, labels = batch(seed=seed)
        a, b = plain(images, labels, return_mask=True), explicit(images, labels, return_mask=True)
        assert all(torch.equal(x, y) for x, y in zip(a, b))
        assert a[1].dtype == labels.dtype and a[1].ndim == 1
        assert torch.equal(plain._rng.get_state(), explicit._rng.get_state())
    assert torch.equal(plain.class_counts, explicit.class_counts)
    assert repr(plain) == repr(explicit)


# --------------------------------------------------------------------------- from a SyntheticPool
@pytest.fixture(scope="module")
def pool(gen):
    from augmentgen.mixing import SyntheticPool

    return SyntheticPool(gen, per_class=16, seed=0)


def bank_positions(pool, images_uint8, labels):
    """For each row, the index of the bank image of its class it equals (-1 if none)."""
    bank = pool.images[labels.long()]  # (n, N, C, H, W)
    hits = (bank == images_uint8.unsqueeze(1)).flatten(2).all(-1)  # (n, N)
    return torch.where(hits.any(1), hits.float().argmax(1), -1)


def test_pool_rows_are_bank_images_of_their_class_replace(gen, pool):
    images, labels = batch(40)
    images = (images * 255).to(torch.uint8)
    out, out_labels, mask = SyntheticMix(pool, 0.5, mode="replace", seed=0)(images, labels, return_mask=True)
    assert out.shape == images.shape and out.dtype == torch.uint8 and int(mask.sum()) == 20
    assert torch.equal(out_labels, labels)  # balance=None: each replaced row keeps its label
    assert torch.equal(out[~mask], images[~mask])
    # uint8 batches get the bank's bytes exactly, each from its own class's bank.
    assert (bank_positions(pool, out[mask], out_labels[mask]) >= 0).all()


def test_pool_rows_follow_balance_append(gen, pool):
    images, _ = batch(30)
    labels = torch.zeros(30, dtype=torch.long)
    mix = SyntheticMix(pool, 0.5, mode="append", balance="uniform", seed=0)
    out, out_labels, mask = mix(images, labels, return_mask=True)
    assert mask.tolist() == [False] * 30 + [True] * 15
    assert torch.bincount(out_labels[mask], minlength=3).tolist() == [5, 5, 5]
    dict_mix = SyntheticMix(pool, 0.5, mode="replace", balance={0: 3.0, "2": 1.0}, seed=0)
    _, dict_labels, dict_mask = dict_mix(*batch(40), return_mask=True)
    assert torch.bincount(dict_labels[dict_mask], minlength=3).tolist() == [15, 0, 5]


def test_pool_rows_of_a_class_are_distinct_within_a_batch(gen, pool):
    # 15 rows of class 0 from a bank of 16: all different bank images; 40 rows wrap around the bank.
    images = torch.rand(15, 1, 28, 28)
    labels = torch.zeros(15, dtype=torch.long)
    out, _, mask = SyntheticMix(pool, 1.0, seed=2, output_range=(0, 1))(images, labels, return_mask=True)
    rows = (out[mask] * 255).round().to(torch.uint8)
    positions = bank_positions(pool, rows, labels)
    assert (positions >= 0).all() and len(set(positions.tolist())) == 15
    many = SyntheticMix(pool, 1.0, mode="append", balance={0: 1.0}, seed=2)
    _, _, big_mask = many(torch.rand(40, 1, 28, 28), torch.zeros(40, dtype=torch.long), return_mask=True)
    assert int(big_mask.sum()) == 40


def test_pool_inverse_frequency_tops_up_like_the_generator(gen, pool):
    labels = torch.tensor([0] * 6 + [1] * 3 + [2])
    images = torch.rand(10, 1, 28, 28)
    mix = SyntheticMix(pool, 1.1, mode="append", balance="inverse-frequency", seed=0)
    _, out_labels, mask = mix(images, labels, return_mask=True)
    assert torch.bincount(out_labels[mask], minlength=3).tolist() == [1, 4, 6]
    assert mix.class_counts.tolist() == [7, 7, 7]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.uint8])
def test_pool_rows_obey_dtype_and_range(gen, pool, dtype):
    images, labels = batch(dtype=torch.float32)
    images = (images * 255).to(torch.uint8) if dtype == torch.uint8 else images.to(dtype)
    from_pool = SyntheticMix(pool, 0.5, seed=0, output_range=(0, 1))
    on_the_fly = SyntheticMix(gen, 0.5, seed=0, output_range=(0, 1))
    (out, out_labels, mask), (fly, _, fly_mask) = (m(images, labels, return_mask=True) for m in (from_pool, on_the_fly))
    assert out.dtype == fly.dtype == dtype and out.shape == fly.shape and torch.equal(mask, fly_mask)
    synthetic = out[mask].double()
    if dtype == torch.uint8:
        assert (bank_positions(pool, out[mask], out_labels[mask]) >= 0).all()
    else:
        assert synthetic.min() >= 0 and synthetic.max() <= 1
        # The bank's bytes mapped to (0, 1), i.e. u / 255, up to the dtype's rounding.
        as_bytes = (synthetic * 255).round().to(torch.uint8)
        assert (bank_positions(pool, as_bytes, out_labels[mask]) >= 0).all()
        atol = 1e-2 if dtype == torch.bfloat16 else 1e-6
        torch.testing.assert_close(synthetic, as_bytes.double() / 255, atol=atol, rtol=0)


def test_pool_rows_obey_mean_std_like_generated_rows(gen, pool):
    mean, std = [0.2860], [0.3530]
    images, labels = batch(10)
    out, out_labels, mask = SyntheticMix(pool, 1.0, mode="replace", seed=0, mean=mean, std=std)(
        images, labels, return_mask=True)  # every row
    unit = out * std[0] + mean[0]  # back to [0, 1]
    assert unit.min() >= -1e-5 and unit.max() <= 1 + 1e-5
    as_bytes = (unit * 255).round().to(torch.uint8)
    assert (bank_positions(pool, as_bytes, out_labels) >= 0).all()


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_pool_keeps_channels_last(gen_rgb32, mode):
    from augmentgen.mixing import SyntheticPool

    images = torch.rand(8, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    out, _ = SyntheticMix(SyntheticPool(gen_rgb32, per_class=4, seed=0), 0.5, mode=mode, seed=0)(
        images, torch.randint(0, 3, (8,)))
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()


def test_pool_mix_is_seeded_and_refresh_changes_the_rows(gen):
    from augmentgen.mixing import SyntheticPool

    pool = SyntheticPool(gen, per_class=8, seed=0)
    images, labels = batch()
    a, b, c = (SyntheticMix(pool, 0.5, mode="append", balance="uniform", seed=s) for s in (7, 7, 8))
    for _ in range(2):
        (xa, ya), (xb, yb), (xc, _) = a(images, labels), b(images, labels), c(images, labels)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert not torch.equal(xa, xc)
    # The mixer's own stream: drawing does not touch the pool's fill stream or the global RNG.
    pool_state, global_state = pool._rng.get_state(), torch.get_rng_state()
    SyntheticMix(pool, 0.5, seed=7)(images, labels)
    assert torch.equal(pool._rng.get_state(), pool_state) and torch.equal(torch.get_rng_state(), global_state)
    before, _, mask = SyntheticMix(pool, 0.5, mode="replace", seed=3)(images, labels, return_mask=True)
    old_bank = pool.images.clone()
    pool.refresh()
    after, after_labels, after_mask = SyntheticMix(pool, 0.5, mode="replace", seed=3)(
        images, labels, return_mask=True)
    assert torch.equal(mask, after_mask)  # same seed: the same rows are replaced ...
    assert not torch.equal(before[mask], after[mask])  # ... by images of the new bank
    rows = ((after[after_mask] + 1) * 127.5).round().to(torch.uint8)
    assert (bank_positions(pool, rows, after_labels[after_mask]) >= 0).all()
    assert not torch.equal(pool.images, old_bank)


def test_pool_unpickled_in_a_worker_still_feeds_a_mixer(gen, pool):
    from tests.conftest import send_to_worker

    copy = send_to_worker(pool)
    assert copy.generator is None
    images, labels = batch()
    a = SyntheticMix(pool, 0.5, seed=1)(images, labels)
    b = SyntheticMix(copy, 0.5, seed=1)(images, labels)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_pool_soft_labels_use_the_teacher_on_the_drawn_rows(gen, pool):
    from torch import nn

    from augmentgen.mixing import TeacherLabels

    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 3))
    images, labels = batch()
    mix = SyntheticMix(pool, 0.5, mode="replace", seed=0, output_range=(0, 1), teacher=teacher,
                       soft_labels=True, label_temperature=2.0, soft_label_weight=0.5)
    out, targets, mask = mix(images, labels, return_mask=True)
    hard, hard_labels, hard_mask = SyntheticMix(pool, 0.5, mode="replace", seed=0, output_range=(0, 1))(
        images, labels, return_mask=True)
    assert torch.equal(out, hard) and torch.equal(mask, hard_mask)  # soft labels draw no random numbers
    assert targets.shape == (20, 3) and torch.allclose(targets.sum(1), torch.ones(20))
    expected = TeacherLabels(teacher, 2.0, 0.5, 3, output_range=(0, 1))(out[mask], hard_labels[mask])[1]
    torch.testing.assert_close(targets[mask], expected, atol=1e-5, rtol=0)
    assert torch.equal(targets[~mask].argmax(1), labels[~mask])


@pytest.mark.parametrize("kwargs,match", [
    ({"filter_threshold": 0.5, "teacher": torch.nn.Linear(1, 3)}, r"filter_threshold cannot apply.*SyntheticPool\(generator.*pool.filtered\(teacher"),
    ({"min_acceptance": 0.2}, r"min_acceptance cannot apply.*balance="),
    ({"temperature": 0.5}, r"temperature cannot apply.*SyntheticPool\(generator, temperature="),
    ({"temperature": [1.0, 0.0, 1.0]}, "temperature cannot apply"),
    ({"autocast": True}, r"drop autocast=True"),
    ({"compile": True}, r"drop compile=True"),
    ({"prefetch": True, "balance": "uniform"}, r"drop prefetch=True"),
])
def test_pool_options_that_cannot_apply_name_the_fix(gen, pool, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SyntheticMix(pool, 0.5, **kwargs)


def test_pool_errors_name_the_pool(gen, pool):
    with pytest.raises(DataError, match=r"pool's bank is on cpu.*device='meta'"):
        SyntheticMix(pool)(torch.rand(4, 1, 28, 28, device="meta"), torch.zeros(4, dtype=torch.long, device="meta"))
    with pytest.raises(DataError, match=r"the pool holds \(1, 28, 28\)"):
        SyntheticMix(pool)(torch.rand(4, 3, 28, 28), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ConfigError, match="ConditionalGenerator, a SyntheticPool or a row source"):
        SyntheticMix(torch.nn.Linear(1, 1))


def test_pool_augment_loader_and_repr(gen, pool):
    from torch.utils.data import DataLoader, TensorDataset

    images, labels = torch.rand(24, 1, 28, 28), torch.arange(24) % 3
    wrapped = augment_loader(DataLoader(TensorDataset(images, labels), batch_size=8), pool, 0.5,
                             mode="append", seed=0)
    assert [(x.shape[0], y.shape[0]) for x, y in wrapped] == [(12, 12)] * 3
    mix = SyntheticMix(pool, 0.25)
    assert mix.generator is None and mix.pool is pool and mix.device == torch.device("cpu")
    assert mix.num_classes == 3 and mix.image_shape == (1, 28, 28)
    assert repr(mix).startswith("SyntheticMix(ratio=0.25, mode='append'") and "pool=SyntheticPool(3 classes" in repr(mix)


# --------------------------------------------------------------------------- value range, state
@pytest.mark.parametrize("low, expected", [(0.0, (0.0, 1.0)), (-1.0, (-1.0, 1.0))])
def test_the_value_range_is_read_off_the_first_float_batch(gen, low, expected):
    g = torch.Generator().manual_seed(0)
    images = low + (1 - low) * torch.rand(20, 1, 28, 28, generator=g)
    labels = torch.randint(0, 3, (20,), generator=g)
    mix = SyntheticMix(gen, 0.5, mode="append", seed=0)
    out, _ = mix(images, labels)
    assert mix.output_range == expected
    assert out[20:].min() >= expected[0] and out[20:].max() <= expected[1]
    stated = SyntheticMix(gen, 0.5, mode="append", seed=0, output_range=expected)(images, labels)[0]
    assert torch.equal(out, stated)  # inferring is the same as saying it


def test_a_batch_outside_both_ranges_names_mean_std(gen):
    images = torch.randn(8, 1, 28, 28) * 2  # normalised images
    with pytest.raises(DataError, match=r"neither \[0, 1\].*mean=\.\.\., std=\.\.\."):
        SyntheticMix(gen, 0.5)(images, torch.zeros(8, dtype=torch.long))
    mixed, _ = SyntheticMix(gen, 0.5, mode="replace", mean=[0.5], std=[0.5])(
        images, torch.zeros(8, dtype=torch.long))
    assert mixed.shape == images.shape
    with pytest.raises(ConfigError, match="output_range"):
        SyntheticMix(gen, 0.5, output_range=(1, 0))


def test_the_readme_one_liner_is_right_for_a_totensor_loader(gen):
    """augment_loader on ToTensor-style [0, 1] batches gives synthetic rows in [0, 1], not [-1, 1]."""
    from torch.utils.data import DataLoader, TensorDataset

    data = TensorDataset(torch.rand(32, 1, 28, 28), torch.arange(32) % 3)
    for images, _labels in augment_loader(DataLoader(data, batch_size=16), gen, ratio=0.5):
        assert images.min() >= 0 and images.max() <= 1 and len(images) == 16 + 8  # appended by default


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_a_resumed_mixer_continues_the_same_stream(gen, mode):
    batches = [batch(seed=s) for s in range(5)]
    one_run = SyntheticMix(gen, 0.5, mode=mode, balance="inverse-frequency", seed=7)
    expected = [one_run(*b) for b in batches]
    first = SyntheticMix(gen, 0.5, mode=mode, balance="inverse-frequency", seed=7)
    for b in batches[:3]:
        first(*b)
    state = first.state_dict()
    resumed = SyntheticMix(gen, 0.5, mode=mode, balance="inverse-frequency", seed=123)  # another seed
    resumed.load_state_dict(state)
    for b, (images, labels) in zip(batches[3:], expected[3:]):
        out, targets = resumed(*b)
        assert torch.equal(out, images) and torch.equal(targets, labels)
    assert torch.equal(resumed.class_counts, one_run.class_counts)


@pytest.mark.parametrize("state,problem", [
    ({}, r"load_state_dict takes what SyntheticMix.state_dict\(\) returned, got a dict without \['rng_state'"),
    (None, r"load_state_dict takes what SyntheticMix.state_dict\(\) returned, got the NoneType"),
    ("model", r"got a dict without|got the"),  # the generator's state_dict, passed by mistake
    ("json", r"must be tensors, as state_dict\(\) returns them; save it with torch.save"),
])
def test_a_state_that_is_not_a_mixers_is_refused_before_anything_changes(gen, state, problem):
    saved = SyntheticMix(gen, 0.5, seed=0).state_dict()
    if isinstance(state, str):
        state = {"model": gen.state_dict(), "json": {**saved, "class_counts": [0, 0, 0]}}[state]
    mix = SyntheticMix(gen, 0.5, seed=7)
    before = mix.state_dict()
    with pytest.raises(ConfigError, match=problem):
        mix.load_state_dict(state)
    assert torch.equal(mix.state_dict()["rng_state"], before["rng_state"])


def test_a_state_of_batches_in_another_range_is_refused_by_a_mixer_given_its_range(gen):
    # The range was silently replaced by the state's: [0, 1] rows appended to [-1, 1] batches.
    inferred = SyntheticMix(gen, 0.5, seed=0)
    inferred(*(lambda images, labels: ((images + 1) / 2, labels))(*batch()))  # reads (0, 1) off the batch
    given = SyntheticMix(gen, 0.5, seed=0, output_range=(-1, 1))
    with pytest.raises(ConfigError, match=r"batches were in \(0.0, 1.0\), but this one was given "
                                          r"output_range=\(-1.0, 1.0\); build it with output_range=\(0.0, 1.0\)"):
        given.load_state_dict(inferred.state_dict())
    assert given.output_range == (-1.0, 1.0)
    free = SyntheticMix(gen, 0.5, seed=0)  # no range stated: the state's is taken, as before
    free.load_state_dict(inferred.state_dict())
    assert free.output_range == (0.0, 1.0)


def test_dict_batches_with_other_keys_name_the_keys(gen):
    batches = [{"pixel_values": torch.rand(4, 1, 28, 28) * 2 - 1, "labels": torch.zeros(4, dtype=torch.long)}]
    with pytest.raises(DataError, match=r"keys \['labels', 'pixel_values'\].*image_key="):
        next(iter(augment_loader(batches, gen, ratio=0.5)))
    out = next(iter(augment_loader(batches, gen, ratio=0.5, mode="replace", image_key="pixel_values",
                                   label_key="labels")))
    assert out["pixel_values"].shape == (4, 1, 28, 28)


# --------------------------------------------------------------------------- per-batch work
def test_add_counts_is_bincount_without_its_sync():
    from augmentgen.mixing.counts import add_counts

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (50,), generator=g)
    weights = torch.randint(0, 2, (50,), generator=g)
    counts = torch.arange(5)
    assert torch.equal(add_counts(counts.clone(), labels), counts + torch.bincount(labels, minlength=5))
    assert torch.equal(add_counts(counts.clone(), labels, weights),
                       counts + torch.bincount(labels, weights, minlength=5).long())
    assert torch.equal(add_counts(counts.clone(), labels[:0]), counts)


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_inverse_frequency_counts_exactly_the_labels_output(gen, mode):
    # replace counts the rows it keeps by weight (0 on the replaced rows), not by a mask index.
    mix = SyntheticMix(gen, 0.5, mode=mode, balance="inverse-frequency", seed=0)
    seen = torch.zeros(3, dtype=torch.long)
    for seed in range(4):
        _, out_labels = mix(*batch(17 + seed, seed=seed))
        seen += torch.bincount(out_labels, minlength=3)
    assert torch.equal(mix.class_counts, seen)


def test_class_weights_move_to_the_device_once(gen):
    from augmentgen.mixing.counts import draw_classes

    mix = SyntheticMix(gen, 0.5, balance={0: 1, 2: 3}, seed=0)
    weights = mix._class_weights
    assert weights.dtype == torch.float64 and weights.device == mix.device
    assert weights.tolist() == [1.0, 0.0, 3.0]
    mix(*batch())
    assert mix._class_weights is weights  # not rebuilt per batch
    # float64 on the device draws exactly what the float32 CPU weights drew.
    counts = torch.zeros(3, dtype=torch.long)
    drawn = [draw_classes(40, w, counts, generator=torch.Generator().manual_seed(1))
             for w in (weights, torch.tensor([1.0, 0.0, 3.0]))]
    assert torch.equal(drawn[0], drawn[1])
    assert SyntheticMix(gen, 0.5, seed=0)._class_weights is None


@pytest.mark.parametrize("n", [0, 1, 7, 10, 99])
def test_allocate_counts_takes_n_as_a_python_int_or_a_tensor_alike(n):
    weights = torch.tensor([1.0, 2.0, 0.0, 4.5])
    as_int = allocate_counts(n, weights, generator=torch.Generator().manual_seed(n))
    for as_tensor in (torch.tensor(n), torch.tensor(float(n), dtype=torch.float64)):
        assert torch.equal(allocate_counts(as_tensor, weights, generator=torch.Generator().manual_seed(n)), as_int)
    assert int(as_int.sum()) == n


def test_a_batch_label_out_of_range_is_still_a_data_error_on_the_cpu(gen):
    # The mixer's step checks labels on an accelerator without a host sync; on the CPU the
    # generator's DataError naming the labels is kept.
    images, labels = batch(8)
    labels[3] = 5
    with pytest.raises(DataError, match=r"labels \[5\] are outside \[0, 2\]: this generator has 3 classes"):
        SyntheticMix(gen, 1.0, mode="replace", seed=0)(images, labels)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("source", ["generator", "pool"])
@pytest.mark.parametrize("mode,balance", [("append", None), ("replace", "inverse-frequency"),
                                          ("append", {0: 1, 2: 3})])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_the_mixers_step_makes_no_host_sync_on_cuda(gen, source, mode, balance, dtype):
    from augmentgen.mixing import SyntheticPool

    cuda_gen = build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8)).cuda()
    what = cuda_gen if source == "generator" else SyntheticPool(cuda_gen, per_class=8, seed=0, device="cuda")
    temperature = {"temperature": (0.5, 1.0, 1.5)} if source == "generator" else {}
    mix = SyntheticMix(what, 0.5, mode=mode, balance=balance, seed=0, output_range=(0, 1),
                       mean=[0.5] if dtype != torch.uint8 else None, std=[0.5] if dtype != torch.uint8 else None,
                       **temperature)
    images, labels = batch(32, dtype=dtype)
    images, labels = images.cuda(), labels.cuda()
    assert_later_batches_make_no_host_sync(mix, images, labels)  # the first: CUDA start-up, the cached tables


def test_the_batch_labels_are_read_once_and_the_generator_checks_them_on_the_device(gen, monkeypatch):
    """One host read of the labels per batch at most: the mixer's own check (the clear DataError of
    a wrong label set, on the first batch; on the CPU every batch, where reading costs no sync);
    the generator is always asked for the sync-free check (labels_checked_on_device), which on an
    accelerator only asserts: its labels are the checked batch's or the mixer's own draws."""
    from augmentgen.mixing import batch as batch_module
    from augmentgen.models.base import _CHECK_ON_DEVICE

    seen, read = [], []
    original = type(gen).check_labels
    monkeypatch.setattr(type(gen), "check_labels", lambda self, labels: seen.append(_CHECK_ON_DEVICE.get())
                        or original(self, labels))
    original_read = batch_module.check_batch_labels
    monkeypatch.setattr(batch_module, "check_batch_labels", lambda labels, source: read.append(len(labels))
                        or original_read(labels, source))
    for balance in (None, "uniform"):  # rows that follow the batch; rows of the mixer's own draws
        seen.clear(), read.clear()
        mix = SyntheticMix(gen, 0.5, balance=balance, seed=0)
        for _ in range(3):
            mix(*batch(8))
        assert seen == [True, True, True] and read == [8, 8, 8]


# ------------------------------------------------------------------ bad input: one clear error each
@pytest.mark.parametrize("mode", ["append", "replace"])
@pytest.mark.parametrize("balance", [None, "uniform", "inverse-frequency", {0: 1, 2: 3}])
def test_batch_labels_outside_the_generators_classes_are_a_data_error_on_the_first_batch(gen, mode, balance):
    # Counting (inverse-frequency) and the class draws ran before the generator's own label check,
    # as an IndexError; with balance="uniform" the labels were passed through silently.
    images, _ = batch(10)
    labels = torch.arange(10)  # classes 0..9 for a 3-class generator
    mix = SyntheticMix(gen, 0.5, mode=mode, balance=balance if mode == "append" or balance is None else "uniform",
                       seed=0)
    with pytest.raises(DataError, match=r"labels \[3, 4, 5, \.\.\., 9\] are outside \[0, 2\]: this generator has 3 classes "
                                        r"\('0', '1', '2'\); use a generator trained on these classes"):
        mix(images, labels)
    assert int(mix.class_counts.sum()) == 0  # refused before anything was counted


def test_a_pools_batch_labels_outside_its_classes_name_the_pool(gen):
    from augmentgen.mixing import SyntheticPool

    pool = SyntheticPool(gen, per_class=4, seed=0)
    images, labels = batch(8)
    labels[0] = 7
    with pytest.raises(DataError, match=r"labels \[7\] are outside \[0, 2\]: the pool holds 3 classes.*"
                                        "build the pool from a generator trained on these classes"):
        SyntheticMix(pool, 0.5, balance="inverse-frequency", seed=0)(images, labels)


def test_negative_batch_labels_name_the_fix(gen):
    images, labels = batch(8)
    labels[2] = -1
    with pytest.raises(DataError, match=r"labels \[-1\] are outside \[0, 2\].*class indices start at 0: drop the rows "
                                        r"labelled \[-1\]"):
        SyntheticMix(gen, 0.5, balance="uniform", seed=0)(images, labels)


def test_batch_labels_of_another_form_are_refused_with_the_fix(gen):
    # A bool mask was taken as classes 0 and 1; one-hot rows are named with their fix.
    images, labels = batch(8)
    mix = SyntheticMix(gen, 0.5, seed=0)
    with pytest.raises(DataError, match=r"labels must be integer class indices, got dtype torch.bool.*mix before "
                                        "one-hot encoding"):
        mix(images, labels == 1)
    with pytest.raises(DataError, match=r"got shape \(8, 3\); one-hot labels\? pass labels.argmax\(1\)"):
        mix(images, torch.nn.functional.one_hot(labels, 3))
    with pytest.raises(DataError, match=r"SyntheticMix takes collated batches: labels a tensor \(B,\)"):
        mix(images, labels.tolist())


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), -1.0, "1", True, None])
def test_balance_weights_must_be_finite_numbers(gen, weight):
    said = re.escape(f"balance weights must be finite numbers >= 0, got {weight!r} for 0")
    with pytest.raises(ConfigError, match=said + r".*balance=\{0: 1\.0, 1: 2\.0\}"):
        SyntheticMix(gen, 0.5, balance={0: weight, 1: 1.0})


def test_balance_keys_are_not_bools(gen):
    with pytest.raises(ConfigError, match=r"balance key True is not a class index in \[0, 2\]"):
        SyntheticMix(gen, 0.5, balance={True: 1.0})


def test_an_infinite_append_ratio_is_refused_when_built(gen):
    with pytest.raises(ConfigError, match=r"ratio must be a finite number.*got inf: give e\.g\. ratio=0\.5"):
        SyntheticMix(gen, float("inf"), mode="append")


@pytest.mark.parametrize("mode", ["append", "replace"])
@pytest.mark.parametrize("soft_labels", [False, True])
def test_an_empty_float_batch_comes_back_as_it_is(gen, mode, soft_labels):
    from tests.metrics.fakes import SquareTeacher

    teacher = {"teacher": SquareTeacher(), "soft_labels": True} if soft_labels else {}
    mix = SyntheticMix(gen, 0.5, mode=mode, balance="uniform" if mode == "append" else None, seed=0, **teacher)
    state = mix._rng.get_state()
    empty, no_labels = torch.empty(0, 1, 28, 28), torch.empty(0, dtype=torch.long)
    out, targets, mask = mix(empty, no_labels, return_mask=True)
    assert out.shape == (0, 1, 28, 28) and out.dtype == torch.float32
    assert targets.shape == ((0, 3) if soft_labels else (0,))
    assert targets.dtype == (torch.float32 if soft_labels else torch.long)
    assert mask.shape == (0,) and mask.dtype == torch.bool
    assert len(mix(empty, no_labels)) == 2
    assert torch.equal(mix._rng.get_state(), state) and int(mix.class_counts.sum()) == 0
    assert mix.output_range is None  # still read off the first batch with rows
    images, labels = batch(8)
    fresh = SyntheticMix(gen, 0.5, mode=mode, balance="uniform" if mode == "append" else None, seed=0, **teacher)
    for a, b in zip(mix(images, labels, return_mask=True), fresh(images, labels, return_mask=True)):
        assert torch.equal(a, b)  # the empty batch changed nothing


@pytest.mark.parametrize("mean,std,match", [
    ([0.5], [0.0], r"std must be > 0 in every channel.*got \[0\.0\]: pass the std given to v2\.Normalize"),
    ([0.5], [-0.2], r"std must be > 0"),
    ([float("nan")], [0.5], r"mean must be finite, got \[nan\]: pass the mean given to v2\.Normalize"),
    ([0.5], [float("inf")], r"std must be finite"),
    ([], [], r"mean must be a number or one number per channel, as given to v2\.Normalize"),
    ("abc", [0.5], r"mean must be a number or one number per channel"),
])
def test_mean_and_std_must_be_finite_with_std_above_zero(gen, mean, std, match):
    with pytest.raises(ConfigError, match=match):
        SyntheticMix(gen, 0.5, mean=mean, std=std)


def test_augment_loader_refuses_a_dataset_of_single_samples(gen):
    from augmentgen.data import LabelledImages

    images, labels = batch(6, dtype=torch.uint8)
    data = LabelledImages(images.numpy(), labels.numpy(), ["a", "b", "c"], source="test")
    with pytest.raises(ConfigError, match=r"augment_loader wraps a DataLoader \(or any iterable\) of collated "
                                          r"\(images, labels\) batches, got a LabelledImages.*"
                                          r"pass train\.loader\(batch_size=64\) or DataLoader"):
        augment_loader(data, gen)
    with pytest.raises(ConfigError, match="got a int: pass DataLoader"):
        augment_loader(3, gen)
    # Any other iterable of single samples: the first one is named, not an AttributeError.
    samples = [(images[i], int(labels[i])) for i in range(6)]
    with pytest.raises(DataError, match=r"got \(Tensor, int\), a single sample: iterate a DataLoader"):
        next(iter(augment_loader(samples, gen)))
    assert len(list(augment_loader(data.loader(batch_size=3), gen, seed=0))) == 2
