"""SyntheticPool.from_variations: a bank of variations of the training images, made once in
batches by an anchored source, and everything that draws from a pool drawing from it."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
import torch

from augmentgen.errors import ConfigError, DataError
from augmentgen.mixing import AnchoredSource, RealRowSource, SyntheticMix, SyntheticPool, VariationSource
from augmentgen.models import build_config, build_generator
from augmentgen.training import Trainer, TrainingConfig
from augmentgen.transforms import ReplaceWithSynthetic
from tests.conftest import send_to_worker
from tests.mixing.test_sources import TINY_ENCODER, shifted_squares


@pytest.fixture(scope="module")
def data():
    return shifted_squares(n_per_class=8)


@pytest.fixture(scope="module")
def trained_ae():
    config = build_config("ae", num_classes=3, **TINY_ENCODER)
    training = TrainingConfig(steps=150, batch_size=24, seed=0, checkpoint_every=0, sample_every=0,
                              log_every=150)
    with tempfile.TemporaryDirectory() as tmp:
        return Trainer(config, training, tmp).fit(shifted_squares()).eval()


@pytest.fixture(scope="module")
def untrained_vae():
    torch.manual_seed(0)
    return build_generator(build_config("vae", num_classes=3, **TINY_ENCODER)).eval()


def imbalanced(data):
    """8 / 3 / 5 images of classes 0 / 1 / 2, not sorted by class."""
    keep = torch.cat([torch.arange(0, 8), torch.arange(8, 11), torch.arange(16, 21)])
    order = torch.randperm(len(keep), generator=torch.Generator().manual_seed(0))
    return data.images[keep[order]], data.labels[keep[order]]


def as_signed(bank: torch.Tensor) -> torch.Tensor:
    return bank.float() / 127.5 - 1


@pytest.mark.parametrize("mode", ["vary", "interpolate", "extrapolate"])
def test_rows_keep_their_real_images_class_and_spread_over_its_images(untrained_vae, data, mode):
    images, labels = imbalanced(data)
    pool = SyntheticPool.from_variations(VariationSource(untrained_vae, mode), images, labels, per_image=3,
                                         seed=0, batch_size=10)
    assert pool.per_class == 3 * 8 and pool.images.shape == (3, 24, 1, 28, 28)
    assert pool.images.dtype == torch.uint8 and pool.images.is_shared() and pool.source_index.is_shared()
    # Every row of class c was made from a real image of class c, and from every one of them: the
    # largest class's images get per_image rows each, the others floor or ceil(24 / n) each.
    assert torch.equal(labels[pool.source_index], torch.arange(3).view(3, 1).expand(3, 24))
    for c, n in enumerate([8, 3, 5]):
        made = torch.bincount(pool.source_index[c], minlength=len(labels))[labels == c]
        assert len(made) == n and made.min() >= 24 // n and made.max() <= -(-24 // n)
    assert pool.distinct_counts.tolist() == [24, 24, 24]
    assert pool.variation["mode"] == mode and pool.variation["family"] == "vae"
    assert pool.variation["seed"] == 0 and pool.variation["per_image"] == 3 and pool.variation["images"] == 16


def test_variations_keep_the_class_and_sit_near_their_image(trained_ae, data):
    """vary: each row differs from its real image, but is nearer it than a free sample of the class."""
    pool = SyntheticPool.from_variations(VariationSource(trained_ae, "vary", strength=0.5), data.images,
                                         data.labels, per_image=2, seed=0)
    rows, index = as_signed(pool.images.flatten(0, 1)), pool.source_index.flatten()
    real = data.to_float()[index]
    distance = (rows - real).flatten(1).norm(dim=1)
    free = trained_ae.sample(data.labels[index], generator=torch.Generator().manual_seed(0))
    assert (distance > 0).all()
    assert distance.mean() < 0.6 * (free - real).flatten(1).norm(dim=1).mean()
    # The bar of a class-c image stays in row band c: the label the row keeps is its content's.
    band = torch.stack([rows[:, 0, c * 9: c * 9 + 9].mean(dim=(1, 2)) for c in range(3)], dim=1)
    assert (band.argmax(dim=1) == data.labels[index]).float().mean() >= 0.9


def test_seeded_and_refreshed_in_place(untrained_vae, data):
    source = VariationSource(untrained_vae, "vary")
    make = lambda seed, **kw: SyntheticPool.from_variations(source, data.images, data.labels, per_image=2,  # noqa: E731
                                                            seed=seed, **kw)
    a, b, c = make(3), make(3), make(4)
    assert torch.equal(a.images, b.images) and torch.equal(a.source_index, b.source_index)
    assert not torch.equal(a.images, c.images)
    # No seed: a random one, recorded, which rebuilds the same bank.
    free = make(None)
    assert torch.equal(make(free.variation["seed"]).images, free.images)
    # Refreshes make new variations of the same images, in the same storage.
    pool = make(3, refresh_every=1)
    storage = pool.images.untyped_storage().data_ptr()
    assert pool.step_epoch() is True and pool.refreshes == 2
    assert not torch.equal(pool.images, a.images) and pool.images.untyped_storage().data_ptr() == storage
    assert torch.equal(data.labels[pool.source_index], data.labels[a.source_index])


def test_float_images_in_the_generators_range_give_the_same_bank(untrained_vae, data):
    source = VariationSource(untrained_vae, "vary")
    from_uint8 = SyntheticPool.from_variations(source, data.images, data.labels, seed=0)
    from_float = SyntheticPool.from_variations(source, data.to_float(), data.labels.numpy(), seed=0)
    assert torch.equal(from_uint8.images, from_float.images)


def test_one_call_of_the_source_per_batch():
    class Counting(RealRowSource):
        calls: list[int] = []

        def rows(self, images, labels, anchors, *, rng=None):
            self.calls.append(len(anchors))
            return super().rows(images, labels, anchors, rng=rng)

    images = torch.arange(30, dtype=torch.uint8).view(30, 1, 1, 1).expand(30, 1, 4, 4).contiguous()
    labels = torch.arange(30) % 3
    pool = SyntheticPool.from_variations(Counting(3, (1, 4, 4)), images, labels, per_image=4, seed=0,
                                         batch_size=16)
    assert Counting.calls == [16] * 7 + [8]  # 3 classes x 40 rows, 16 at a time
    # RealRowSource copies the real images: each bank row is exactly the image its index names.
    assert torch.equal(pool.images, images[pool.source_index])


def test_mixer_transforms_and_workers_draw_from_the_bank(untrained_vae, data):
    pool = SyntheticPool.from_variations(VariationSource(untrained_vae, "vary"), data.images, data.labels,
                                         per_image=2, seed=0)
    in_bank = lambda row, label: bool((pool.images[label] == row).flatten(1).all(1).any())  # noqa: E731
    images, labels = data.to_float(), data.labels
    out, targets, mask = SyntheticMix(pool, 0.5, mode="append", seed=0)(images, labels, return_mask=True)
    assert mask.sum() == 12 and torch.equal(out[~mask], images)
    made = ((out[mask] + 1) * 127.5).round().to(torch.uint8)
    assert all(in_bank(row, int(label)) for row, label in zip(made, targets[mask]))
    unit, _ = SyntheticMix(pool, 0.5, mode="append", output_range=(0, 1), seed=0)(images / 2 + 0.5, labels)
    assert unit.min() >= 0 and unit.max() <= 1
    image, label = ReplaceWithSynthetic(pool, p=1.0)(torch.zeros(1, 28, 28, dtype=torch.uint8), 2)
    assert label == 2 and in_bank(image, 2)
    copy = send_to_worker(pool)
    assert copy._variations is None and torch.equal(copy.source_index, pool.source_index)
    assert torch.equal(copy.images, pool.images) and copy.variation == pool.variation
    with pytest.raises(DataError, match="main process"):
        copy.refresh()
    assert "variations of 24 images by VariationSource(VAEGenerator, mode='vary'" in repr(pool)


def test_a_diffusion_familys_sdedit_fills_a_bank(data):
    torch.manual_seed(0)
    ddpm = build_generator(build_config("ddpm", num_classes=3, unet_width=8, sampling_steps=3,
                                        channel_multipliers=[1, 2])).eval()
    pool = SyntheticPool.from_variations(VariationSource(ddpm, "vary", strength=0.5), data.images[::4],
                                         data.labels[::4], per_image=1, seed=0, device="cpu")
    assert pool.images.shape == (3, 2, 1, 28, 28) and not pool.images.is_shared()
    assert torch.equal(data.labels[::4][pool.source_index], torch.arange(3).view(3, 1).expand(3, 2))
    assert pool.variation["family"] == "ddpm" and pool.variation["strength"] == 0.5


def test_progress_bar_on_request(untrained_vae, data, capsys):
    SyntheticPool.from_variations(VariationSource(untrained_vae), data.images, data.labels, progress=True)
    assert "variations" in capsys.readouterr().err
    SyntheticPool.from_variations(VariationSource(untrained_vae), data.images, data.labels, progress=False)
    assert capsys.readouterr().err == ""


def test_a_ddpm_bank_moves_its_bar_within_a_batch_and_refreshes_show_none_by_default(data, bars, monkeypatch):
    import sys

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # as in a terminal
    torch.manual_seed(0)
    ddpm = build_generator(build_config("ddpm", num_classes=3, unet_width=8, sampling_steps=2,
                                        channel_multipliers=[1, 2])).eval()
    # strength 1: each row takes both of the 2 steps; 6 rows, one batch
    pool = SyntheticPool.from_variations(VariationSource(ddpm, "vary", strength=1.0), data.images[::4],
                                         data.labels[::4], per_image=1, seed=0, refresh_every=1)
    assert [(bar.desc, bar.total, bar.updates, bar.disable) for bar in bars] == [("variations", 6, [3, 3], False)]
    pool.step_epoch()  # a refresh inside a training loop draws no bar unless progress=True
    assert bars[1].disable and bars[1].updates == []


def test_errors_name_the_problem_and_the_fix(untrained_vae, data):
    source = VariationSource(untrained_vae)
    images, labels = data.images, data.labels
    build = SyntheticPool.from_variations
    with pytest.raises(ConfigError, match=r"wrap the generator.*VariationSource\(generator, 'vary'\)"):
        build(untrained_vae, images, labels)
    with pytest.raises(ConfigError, match="anchored source"):
        build(object(), images, labels)
    with pytest.raises(ConfigError, match="per_image must be an int >= 1"):
        build(source, images, labels, per_image=0)
    with pytest.raises(ConfigError, match="batch_size must be an int >= 1"):
        build(source, images, labels, batch_size=0)
    with pytest.raises(ConfigError, match="refresh_every"):
        build(source, images, labels, refresh_every=0)
    for refresh_every in ("2", 1.5):
        with pytest.raises(ConfigError, match=r"refresh_every must be a positive number of epochs \(an int >= 1, "
                                              rf"or None to keep the bank\), got {refresh_every!r}"):
            build(source, images, labels, refresh_every=refresh_every)
    for device in ("gpu", "cuda:x"):
        with pytest.raises(ConfigError, match=rf"device '{device}' is not a device; use 'cpu', 'cuda', 'cuda:N' or "
                                              "'mps'"):
            build(source, images, labels, device=device)
    if not torch.cuda.is_available():  # was "RuntimeError: Found no NVIDIA driver on your system"
        with pytest.raises(ConfigError, match=r"device 'cuda': no CUDA GPU is available here .*; use 'cpu'$"):
            build(source, images, labels, device="cuda")
    with pytest.raises(ConfigError, match=r"seed must be an int >= 0 \(or None for fresh randomness\), got -1"):
        build(source, images, labels, seed=-1)  # taken, while write_variation_shards refused it
    with pytest.raises(DataError, match=r"needs the real images.*got shape \(0, 1, 28, 28\)"):
        build(source, images[:0], labels[:0])
    with pytest.raises(DataError, match=r"takes \(1, 28, 28\) images but the images are \(1, 32, 32\).*Resize"):
        build(source, torch.zeros(24, 1, 32, 32, dtype=torch.uint8), labels)
    with pytest.raises(DataError, match=r"24 images but 23 labels"):
        build(source, images, labels[:-1])
    bad = labels.clone()
    bad[0], bad[-1] = 7, 3
    with pytest.raises(DataError, match=r"labels \[3, 7\] are outside \[0, 2\]"):
        build(source, images, bad)
    with pytest.raises(DataError, match=r"labels must be integer class indices, got dtype torch.float32.*labels.long\(\)"):
        build(source, images, labels.float())
    with pytest.raises(DataError, match=r"no image of class '1'.*all 3 classes"):
        build(source, images[labels != 1], labels[labels != 1])
    with pytest.raises(DataError, match=r"float images must be in the generators' \[-1, 1\].*uint8"):
        build(source, images.float(), labels)
    with pytest.warns(UserWarning, match=r"all in \[0, 1\].*images \* 2 - 1"):
        build(source, images.float() / 255, labels)

    class WrongShape(AnchoredSource):
        num_classes, image_shape, device = 3, (1, 28, 28), torch.device("cpu")

        def rows(self, images, labels, anchors, *, rng=None):
            return images[anchors, :, :14]

    with pytest.raises(DataError, match=r"WrongShape.rows returned \(\d+, 1, 14, 28\).*must return"):
        build(WrongShape(), images, labels)


def test_numpy_inputs(untrained_vae, data):
    pool = SyntheticPool.from_variations(VariationSource(untrained_vae), np.asarray(data.images),
                                         np.asarray(data.labels), per_image=1, seed=0)
    assert pool.per_class == 8


def test_docstring_example_runs(untrained_vae, data):
    from tests.transforms.test_synthetic_dataset import _example

    namespace = {"SyntheticPool": SyntheticPool, "VariationSource": VariationSource, "SyntheticMix": SyntheticMix,
                 "generator": untrained_vae, "train": data}
    exec(_example(SyntheticPool.from_variations), namespace)
    rows = namespace["rows_of_image_7"]
    assert len(rows) == 4 and (rows[:, 0] == int(data.labels[7])).all()


def test_head_of_a_bank_of_variations_is_refused(untrained_vae, data):
    pool = SyntheticPool.from_variations(VariationSource(untrained_vae, "vary"), data.images, data.labels,
                                         per_image=1, seed=0)
    with pytest.raises(ConfigError, match=r"variations of the first real images.*from_variations"):
        pool.head(1)


def test_filtering_a_bank_of_variations_is_refused(untrained_vae, data):
    pool = SyntheticPool.from_variations(VariationSource(untrained_vae, "vary"), data.images, data.labels,
                                         per_image=1, seed=0)
    with pytest.raises(ConfigError, match=r"filtered\(\) is for banks of free samples"):
        pool.filtered(torch.nn.Linear(1, 3), 0.5)


def test_a_saved_bank_of_variations_keeps_its_source_index_and_how_it_was_made(untrained_vae, data, tmp_path):
    pool = SyntheticPool.from_variations(VariationSource(untrained_vae, "vary"), data.images, data.labels,
                                         per_image=1, seed=0)
    again = SyntheticPool.load(pool.save(tmp_path / "variations.safetensors"))
    assert torch.equal(again.images, pool.images) and torch.equal(again.source_index, pool.source_index)
    assert again.variation == pool.variation
    with pytest.raises(ConfigError, match="variations of the first real images"):
        again.head(1)  # still a bank of variations
