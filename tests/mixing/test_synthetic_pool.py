"""SyntheticPool: bank contents, shared memory, refresh, DataLoader workers (fork and spawn)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from augmentgen.errors import ConfigError, DataError
from augmentgen.mixing import SyntheticPool
from augmentgen.models import build_config, build_generator
from augmentgen.transforms import ReplaceWithSynthetic
from tests.conftest import send_to_worker


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    return build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8))


def test_bank_shape_dtype_shared_and_per_class(gen):
    pool = SyntheticPool(gen, per_class=5, batch_size=4, seed=0)  # batch_size < bank: several passes
    assert pool.images.shape == (3, 5, 1, 28, 28) and pool.images.dtype == torch.uint8
    assert pool.images.is_shared() and len(pool) == 15
    # The bank equals the generator's own samples, class by class, in the same seeded order.
    rng = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(5)
    expected = torch.cat([gen.sample(chunk, generator=rng) for chunk in labels.split(4)])
    expected = expected.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(pool.images.view(15, 1, 28, 28), expected)


def test_draw_copies_and_checks(gen):
    pool = SyntheticPool(gen, per_class=4, seed=0)
    drawn = pool.draw(torch.tensor([2, 2, 0]), generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (3, 1, 28, 28)
    bank = pool.images.clone()
    drawn.zero_()
    assert torch.equal(pool.images, bank)
    single = pool.draw(1)
    assert single.shape == (1, 28, 28)
    assert any(torch.equal(single, pool.images[1, i]) for i in range(4))
    with pytest.raises(DataError, match="in \\[0, 2\\]"):
        pool.draw(torch.tensor([3]))
    with pytest.raises(ConfigError):
        SyntheticPool(gen, per_class=0)


def test_refresh_in_place_and_every_k_epochs(gen):
    pool = SyntheticPool(gen, per_class=3, seed=0, refresh_every=2)
    storage = pool.images.untyped_storage().data_ptr()
    before = pool.images.clone()
    assert pool.step_epoch() is False and torch.equal(pool.images, before)
    assert pool.step_epoch() is True and not torch.equal(pool.images, before)
    assert pool.images.untyped_storage().data_ptr() == storage and pool.refreshes == 2


def test_pickle_drops_generator(gen):
    pool = SyntheticPool(gen, per_class=2, seed=0)
    copy = send_to_worker(pool)
    assert copy.generator is None and torch.equal(copy.images, pool.images)
    with pytest.raises(DataError, match="main process"):
        copy.refresh()


class Labelled(Dataset):
    def __init__(self, n=12):
        self.images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
        self.labels = torch.arange(n) % 3
        self.transform = None

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i], int(self.labels[i]))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_workers_read_the_shared_bank(gen, context):
    pool = SyntheticPool(gen, per_class=4, seed=0)
    data = Labelled()
    data.transform = ReplaceWithSynthetic(pool, p=1.0)
    loader = DataLoader(data, batch_size=4, num_workers=2, multiprocessing_context=context,
                        persistent_workers=True)
    # Every image is replaced by a bank image of its own class.
    def check():
        for images, labels in loader:
            for image, label in zip(images, labels):
                assert any(torch.equal(image, pool.images[label, i]) for i in range(4))
    check()
    # Persistent workers see a refresh because the bank is rewritten in shared memory.
    pool.refresh()
    check()


def test_temperature_zero_pool_holds_one_image_per_class(gen):
    pool = SyntheticPool(gen, per_class=4, seed=0, temperature=0.0)
    for k in range(3):
        assert torch.equal(pool.images[k], pool.images[k, :1].expand_as(pool.images[k]))
    assert not torch.equal(pool.images[0, 0], pool.images[1, 0])
    # Per class: only class 1 collapses; class 0 is the default pool's, image for image.
    mixed = SyntheticPool(gen, per_class=4, seed=0, temperature=[1.0, 0.0, 2.0])
    assert torch.equal(mixed.images[0], SyntheticPool(gen, per_class=4, seed=0).images[0])
    assert torch.equal(mixed.images[1], pool.images[1])
    assert send_to_worker(mixed).temperature == (1.0, 0.0, 2.0)
    mixed.refresh()  # refreshes keep the temperature
    assert torch.equal(mixed.images[1], pool.images[1])
    with pytest.raises(ConfigError, match="temperature"):
        SyntheticPool(gen, per_class=2, temperature=[1.0, float("nan"), 1.0])
