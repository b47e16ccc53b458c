"""SyntheticPool: bank contents, shared memory, refresh, DataLoader workers (fork and spawn), batched
take(), the bank's device and teacher filtering at fill time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from augmentgen.errors import ConfigError, DataError
from augmentgen.mixing import SyntheticMix, SyntheticPool
from augmentgen.models import build_config, build_generator
from augmentgen.transforms import ReplaceWithSynthetic
from tests.conftest import send_to_worker
from tests.metrics.fakes import SquareTeacher, WrongClassGenerator


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
    with pytest.raises(DataError, match=r"labels \[3\] are outside \[0, 2\]: this pool holds 3 classes; pass class "
                                        "indices of its classes"):
        pool.draw(torch.tensor([3]))
    for wrong, message in [(1.5, r"integer class indices, got dtype torch.float32.*labels.long\(\) if they are whole"),
                           (torch.tensor([0.0, 1.0]), r"integer class indices, got dtype torch.float32"),
                           (torch.tensor([True, False]), r"integer class indices, got dtype torch.bool; a mask"),
                           ("0", r"class indices, got the str '0', which torch cannot read.*map them to class "
                                 "indices")]:  # were truncated or crashed
        with pytest.raises(DataError, match=f"labels must be {message}"):
            pool.draw(wrong)
    assert pool.draw(np.array([0, 2])).shape == (2, 1, 28, 28)
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


# --------------------------------------------------------------------------- take(): batches
def test_take_draws_distinct_bank_images_per_class_then_wraps(gen):
    pool = SyntheticPool(gen, per_class=6, seed=0)
    labels = torch.tensor([2, 0, 2, 2, 0, 2, 2, 2])  # class 2 needs 6: every bank image once
    rng = torch.Generator().manual_seed(0)
    taken = pool.take(labels, generator=rng)
    assert taken.shape == (8, 1, 28, 28) and taken.dtype == torch.uint8
    match = (pool.images[labels].unsqueeze(2) == taken.unsqueeze(1).unsqueeze(1)).flatten(3).all(-1)
    positions = match[:, :, 0].float().argmax(1)
    assert match.any(1).all()
    assert sorted(positions[labels == 2].tolist()) == list(range(6))
    assert len(set(positions[labels == 0].tolist())) == 2
    # Seeded: the same stream gives the same rows; the result is a copy, not a view of the bank.
    assert torch.equal(pool.take(labels, generator=torch.Generator().manual_seed(0)), taken)
    bank = pool.images.clone()
    taken.zero_()
    assert torch.equal(pool.images, bank)
    # More rows than the bank holds: the order wraps around, every row still of its class.
    many = pool.take(torch.ones(13, dtype=torch.long), generator=rng)
    assert all(any(torch.equal(row, pool.images[1, i]) for i in range(6)) for row in many)
    assert pool.take(torch.empty(0, dtype=torch.long)).shape == (0, 1, 28, 28)
    with pytest.raises(DataError, match=r"labels \[3\] are outside \[0, 2\]: this pool holds 3 classes"):
        pool.take(torch.tensor([0, 3]))
    with pytest.raises(DataError, match=r"labels must be integer class indices, got dtype torch.float32"):
        pool.take(torch.tensor([0.0, 2.0]))  # was truncated to classes silently


def test_take_uses_every_bank_image_equally_often_and_varies_between_calls():
    from augmentgen.mixing.pool import SyntheticPool as Pool

    pool = Pool.__new__(Pool)  # a bare bank: positions written as pixel values
    pool.num_classes, pool.per_class = 2, 12
    pool.images = torch.arange(12, dtype=torch.uint8).view(1, 12, 1, 1, 1).repeat(2, 1, 1, 1, 1)
    rng = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 5 + [1] * 12)
    draws = torch.stack([pool.take(labels, generator=rng).flatten() for _ in range(3000)])
    assert all(len(set(row[:5].tolist())) == 5 for row in draws[:50])  # distinct within a call
    assert all(sorted(row[5:].tolist()) == list(range(12)) for row in draws[:50])  # all, then wraps
    first = torch.bincount(draws[:, 0].long(), minlength=12).float()
    assert first.min() > 0.75 * 3000 / 12 and first.max() < 1.25 * 3000 / 12  # uniform start
    pairs = {tuple(row[:2].tolist()) for row in draws}  # the second row is not tied to the first
    assert len(pairs) > 12 * 3


def test_bank_on_a_given_device_is_the_same_bank(gen):
    shared = SyntheticPool(gen, per_class=3, seed=4)
    placed = SyntheticPool(gen, per_class=3, seed=4, device="cpu")
    assert torch.equal(placed.images, shared.images) and placed.images.device == torch.device("cpu")
    assert shared.images.is_shared() and not placed.images.is_shared()  # only the default is for workers
    assert placed.distinct_counts.tolist() == [3, 3, 3] and placed.acceptance_rates().isnan().all()


# --------------------------------------------------------------------------- teacher filter at fill time
def shown_class(teacher, bank):
    """The class each bank image (K, N, C, H, W) uint8 shows, by the teacher."""
    teacher.eval()
    with torch.no_grad():
        return teacher(bank.flatten(0, 1).float() / 127.5 - 1).argmax(1).view(bank.shape[:2])


def test_teacher_filter_keeps_only_accepted_images(tiny_data):
    gen = WrongClassGenerator(tiny_data, [0.0, 0.5, 0.0])  # half of class 1's samples show class 2
    teacher = SquareTeacher()
    pool = SyntheticPool(gen, per_class=8, batch_size=10, seed=0, teacher=teacher, filter_threshold=0.5)
    assert teacher.training  # the filter ran it in eval mode, then restored its mode
    classes = torch.arange(3).view(3, 1).expand(3, 8)
    assert torch.equal(shown_class(teacher, pool.images), classes)  # no wrong-class image in the bank
    assert pool.distinct_counts.tolist() == [8, 8, 8]
    rates = pool.acceptance_rates()
    assert rates[0] == 1.0 and rates[2] == 1.0 and 0.2 < rates[1] < 0.8
    # The mix from this pool only ever outputs accepted images, at no filtering cost in the step.
    images, labels = tiny_data.to_float(), tiny_data.labels
    out, out_labels, mask = SyntheticMix(pool, 1.0, seed=0)(images, labels, return_mask=True)
    assert torch.equal(shown_class(teacher, ((out[mask] + 1) * 127.5).round().to(torch.uint8)[None])[0],
                       out_labels[mask])
    assert "filter_threshold=0.5" in repr(pool)
    copy = send_to_worker(pool)
    assert copy.teacher is None and torch.equal(copy.images, pool.images)


def test_teacher_filter_short_class_repeats_its_accepted_images(tiny_data):
    gen = WrongClassGenerator(tiny_data, [0.0, 0.5, 0.0])  # about 4 of class 1's 8 candidates pass
    teacher = SquareTeacher()
    with pytest.warns(UserWarning, match=r"'class1' \(\d distinct of 8\)"):
        pool = SyntheticPool(gen, per_class=8, seed=1, teacher=teacher, filter_threshold=0.5,
                             oversample=1, max_rounds=1)
    distinct = int(pool.distinct_counts[1])
    assert 0 < distinct < 8 and pool.distinct_counts[0] == 8
    assert (shown_class(teacher, pool.images)[1] == 1).all()  # repeats, never a rejected candidate
    assert torch.equal(pool.images[1, distinct:], pool.images[1, torch.arange(8 - distinct) % distinct])


def test_teacher_filter_with_no_accepted_image_fails_and_keeps_the_bank(tiny_data):
    gen = WrongClassGenerator(tiny_data, [0.0, 0.0, 0.0])
    pool = SyntheticPool(gen, per_class=4, seed=0, teacher=SquareTeacher(), filter_threshold=0.5)
    bank = pool.images.clone()
    gen.wrong[1] = 1.0  # class 1 now never shows class 1
    with pytest.raises(DataError, match=r"no candidate of class 'class1' \(0 of \d+ candidates\).*lower filter_threshold"):
        pool.refresh()
    assert torch.equal(pool.images, bank) and pool.refreshes == 1


def test_teacher_filter_config_errors(gen, tiny_data):
    with pytest.raises(ConfigError, match="filter_threshold needs a teacher"):
        SyntheticPool(gen, per_class=2, filter_threshold=0.5)
    with pytest.raises(ConfigError, match="teacher is given but unused"):
        SyntheticPool(gen, per_class=2, teacher=SquareTeacher())
    with pytest.raises(ConfigError, match=r"filter_threshold must be a probability in \[0, 1\]"):
        SyntheticPool(gen, per_class=2, teacher=SquareTeacher(), filter_threshold=1.5)
    with pytest.raises(ConfigError, match="oversample must be an int >= 1"):
        SyntheticPool(gen, per_class=2, teacher=SquareTeacher(), filter_threshold=0.5, oversample=0)
    with pytest.raises(ConfigError, match=r"teacher.to\('cpu'\)"):
        SyntheticPool(gen, per_class=2, teacher=SquareTeacher().to("meta"), filter_threshold=0.5)


@pytest.mark.parametrize("refresh_every", ["2", 1.5, 0, True])
def test_refresh_every_must_be_a_positive_int(gen, refresh_every):
    with pytest.raises(ConfigError, match=r"refresh_every must be a positive number of epochs \(an int >= 1, or "
                                          rf"None to keep the bank\), got {refresh_every!r}"):
        SyntheticPool(gen, per_class=2, refresh_every=refresh_every)


def test_a_bank_device_that_is_not_a_device_is_a_config_error(gen):
    with pytest.raises(ConfigError, match=r"device 'gpu' is not a device; use 'cpu', 'cuda', 'cuda:N' or 'mps'"):
        SyntheticPool(gen, per_class=2, device="gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_bank_device_this_machine_lacks_is_a_config_error(gen):
    # the bank is filled at once: "RuntimeError: Found no NVIDIA driver on your system"
    with pytest.raises(ConfigError, match=r"^device 'cuda': no CUDA GPU is available here .*; use 'cpu'$"):
        SyntheticPool(gen, per_class=2, device="cuda")


# ---------------------------------------------------------------- progress
def test_the_first_fill_shows_a_bar_and_refreshes_only_when_asked(gen, bars, monkeypatch):
    import sys

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # as in a terminal
    pool = SyntheticPool(gen, per_class=3, batch_size=4, seed=0, refresh_every=1)  # progress=None
    assert [(bar.desc, bar.total, bar.updates, bar.disable) for bar in bars] == [("pool", 9, [4, 4, 1], False)]
    pool.step_epoch()  # a refresh inside a training loop: no bar by default, even in a terminal
    assert bars[1].disable and bars[1].updates == []
    pool.progress = True  # asked for: every fill shows one
    pool.refresh()
    assert not bars[2].disable and bars[2].n == 9
    quiet = SyntheticPool(gen, per_class=3, batch_size=4, seed=0, progress=False)
    assert bars[3].disable and bars[3].updates == []
    assert torch.equal(quiet.images, SyntheticPool(gen, per_class=3, batch_size=4, seed=0).images)
    monkeypatch.setenv("RANK", "1")  # another rank of a launched job: never a bar
    SyntheticPool(gen, per_class=3, seed=0, progress=True)
    assert bars[-1].disable and bars[-1].updates == []


def test_a_ddpm_pool_moves_its_bar_within_a_batch(bars, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    torch.manual_seed(0)
    ddpm = build_generator(build_config("ddpm", num_classes=3, unet_width=8, channel_multipliers=[1, 2],
                                        sampling_steps=3))
    pool = SyntheticPool(ddpm, per_class=2, seed=0, progress=True)  # one batch of 6 images
    assert bars[0].updates == [2, 2, 2]  # a third of the batch at each of the 3 steps
    expected = ddpm.sample(torch.arange(3).repeat_interleave(2), generator=torch.Generator().manual_seed(0))
    assert torch.equal(pool.images.flatten(0, 1), expected.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8))


def test_a_teacher_filtered_fill_counts_its_candidates(tiny_data, bars, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    gen = WrongClassGenerator(tiny_data, [0.0, 0.5, 0.0])
    pool = SyntheticPool(gen, per_class=8, batch_size=10, seed=0, teacher=SquareTeacher(), filter_threshold=0.5,
                         progress=True)
    (bar,) = bars
    assert bar.total is None and bar.unit == "candidate"  # the rounds stop when the bank is full
    assert bar.n == int(pool.candidate_counts.sum()) > len(pool)


@pytest.mark.parametrize("arguments,problem", [
    ({"batch_size": -1}, "batch_size must be an int >= 1, got -1"),  # filled nothing: the bank was uninitialised memory
    ({"batch_size": 0}, "batch_size must be an int >= 1, got 0"),
    ({"batch_size": 2.5}, "batch_size must be an int >= 1, got 2.5"),
    ({"per_class": "10"}, "per_class must be an int >= 1, got '10'"),
    ({"per_class": 2.5}, "per_class must be an int >= 1, got 2.5"),
])
def test_bank_sizes_must_be_positive_ints(gen, arguments, problem):
    with pytest.raises(ConfigError, match=problem):
        SyntheticPool(gen, **{"per_class": 4, **arguments})


@pytest.mark.parametrize("first", ["runs/cgan", 4])
def test_a_pool_takes_a_generator_first(gen, first):
    with pytest.raises(ConfigError, match=r"SyntheticPool takes a generator first .*SyntheticPool\(generator, per_class\)"):
        SyntheticPool(first, gen) if first == 4 else SyntheticPool(first, 4)


def test_head_is_a_smaller_bank_sharing_memory_that_mixes_and_refuses_to_refresh(gen):
    pool = SyntheticPool(gen, per_class=6, seed=0)
    head = pool.head(4)
    assert head.images.shape == (3, 4, 1, 28, 28) and len(head) == 12 and head.per_class == 4
    assert torch.equal(head.images, pool.images[:, :4])
    assert head.images.untyped_storage().data_ptr() == pool.images.untyped_storage().data_ptr()  # a view
    assert head.generator is None and head.distinct_counts.tolist() == [4, 4, 4]
    # take() draws only the head's rows: eight rows of one class are its four images, twice each.
    taken = head.take(torch.zeros(8, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    assert sorted(int(i) for i in _bank_positions(pool, 0, taken)) == [0, 0, 1, 1, 2, 2, 3, 3]
    images, labels = SyntheticMix(head, 0.5, mode="append", seed=0)(torch.zeros(4, 1, 28, 28), torch.zeros(4).long())
    assert images.shape[0] == 6 and labels.shape == (6,)
    assert send_to_worker(head).per_class == 4
    with pytest.raises(DataError, match="head"):
        head.refresh()
    assert torch.equal(pool.head(6).images, pool.images)


def _bank_positions(pool, c, taken):
    """Where each taken image sits in class ``c``'s bank (they are distinct images)."""
    flat = pool.images[c].flatten(1)
    return [int((flat == row.flatten()).all(1).nonzero()[0]) for row in taken]


def _short_filtered_pool(tiny_data) -> SyntheticPool:
    """A teacher-filtered bank of 8 a class whose class 1 ran short (about half its candidates pass)."""
    gen = WrongClassGenerator(tiny_data, [0.0, 0.5, 0.0])
    with pytest.warns(UserWarning, match="ran short"):
        return SyntheticPool(gen, per_class=8, seed=1, teacher=SquareTeacher(), filter_threshold=0.5,
                             oversample=1, max_rounds=1)


def test_head_of_a_short_teacher_filtered_class_counts_only_its_distinct_images(tiny_data):
    pool = _short_filtered_pool(tiny_data)
    distinct = int(pool.distinct_counts[1])
    assert pool.head(2).distinct_counts.tolist() == [2, min(2, distinct), 2]
    assert pool.head(8).distinct_counts.tolist() == [8, distinct, 8]


@pytest.mark.parametrize("per_class, problem", [(0, "per_class must be an int >= 1"), (7, "more images per class"),
                                                (2.5, "per_class must be an int >= 1")])
def test_head_sizes_must_be_within_the_bank(gen, per_class, problem):
    with pytest.raises(ConfigError, match=problem):
        SyntheticPool(gen, per_class=6, seed=0).head(per_class)



def test_filtered_keeps_the_accepted_images_of_a_bank_in_order_without_sampling(tiny_data):
    gen = WrongClassGenerator(tiny_data, [0.0, 0.5, 0.0])  # about half of class 1's samples show class 2
    pool = SyntheticPool(gen, per_class=8, batch_size=10, seed=0)
    before, teacher = pool.images.clone(), SquareTeacher()
    shows = shown_class(teacher, pool.images)
    right = shows[1] == 1
    assert 0 < int(right.sum()) < 8  # the bank has images of both kinds in class 1
    gen.wrong.fill_(1.0)  # a filtered bank that sampled again would hold no right image at all
    teacher.train()  # shown_class left it in eval mode
    kept = pool.filtered(teacher, 0.5, batch_size=5)
    assert teacher.training  # run in eval mode, its mode restored
    assert torch.equal(pool.images, before)  # the bank itself is untouched
    assert kept.images.data_ptr() != pool.images.data_ptr() and kept.images.is_shared()
    n_right = int(right.sum())
    assert kept.distinct_counts.tolist() == [8, n_right, 8]
    assert kept.candidate_counts.tolist() == [8, 8, 8] and kept.accepted_counts.tolist() == [8, n_right, 8]
    assert torch.equal(kept.images[0], before[0]) and torch.equal(kept.images[2], before[2])
    # Class 1: its right images in bank order, then the same again cyclically.
    accepted = before[1][right]
    assert torch.equal(kept.images[1], accepted[torch.arange(8) % n_right])
    assert (shown_class(teacher, kept.images) == torch.arange(3).view(3, 1)).all()
    assert kept.per_class == 8 and kept.generator is None and "filter_threshold=0.5" in repr(kept)
    out, out_labels, mask = SyntheticMix(kept, 1.0, seed=0)(tiny_data.to_float(), tiny_data.labels, return_mask=True)
    assert torch.equal(shown_class(teacher, ((out[mask] + 1) * 127.5).round().to(torch.uint8)[None])[0],
                       out_labels[mask])
    assert torch.equal(send_to_worker(kept).images, kept.images)
    with pytest.raises(DataError, match="no generator"):
        kept.refresh()


def test_filtered_judges_only_the_distinct_images_of_a_short_class(tiny_data):
    pool = _short_filtered_pool(tiny_data)
    distinct = int(pool.distinct_counts[1])
    kept = pool.filtered(SquareTeacher(), 0.5)
    assert kept.candidate_counts.tolist() == [8, distinct, 8] and kept.distinct_counts.tolist() == [8, distinct, 8]
    assert torch.equal(kept.images, pool.images)  # every distinct image was accepted already


def test_filtered_with_no_accepted_image_of_a_class_names_it_and_the_fix(tiny_data):
    pool = SyntheticPool(WrongClassGenerator(tiny_data, [0.0, 1.0, 0.0]), per_class=4, seed=0)
    with pytest.raises(DataError, match=r"no image of class 'class1' \(0 of 4\).*lower filter_threshold"):
        pool.filtered(SquareTeacher(), 0.5)


@pytest.mark.parametrize("teacher, threshold, problem", [
    (SquareTeacher(), None, r"filtered\(\) needs filter_threshold"),
    (SquareTeacher(), 1.5, r"filter_threshold must be a probability in \[0, 1\]"),
    ("teacher.pt", 0.5, "teacher must be an nn.Module"),
])
def test_filtered_checks_its_teacher_and_threshold(gen, teacher, threshold, problem):
    with pytest.raises(ConfigError, match=problem):
        SyntheticPool(gen, per_class=2, seed=0).filtered(teacher, threshold)


def test_from_images_groups_rows_by_class_into_a_bank_that_mixes_cuts_and_filters(gen):
    pool = SyntheticPool(gen, per_class=6, seed=0)
    # The bank as rows in a shuffled order, as a dataset of synthetic rows would hold them.
    rows, labels = pool.images.flatten(0, 1), torch.arange(3).repeat_interleave(6)
    shuffle = torch.randperm(18, generator=torch.Generator().manual_seed(0))
    again = SyntheticPool.from_images(rows[shuffle], labels[shuffle], class_names=gen.class_names)
    assert again.images.is_shared() and (again.per_class, again.num_classes, again.image_shape) == (6, 3, (1, 28, 28))
    for c in range(3):  # each class's rows, in the order they came
        assert torch.equal(again.images[c], rows[shuffle][labels[shuffle] == c])
    assert again.distinct_counts.tolist() == [6, 6, 6] and again.class_names == gen.class_names
    assert SyntheticPool.from_images(rows, labels, per_class=4).images.shape[1] == 4
    # One class short: the smallest class decides the size by default.
    assert SyntheticPool.from_images(rows[:-2], labels[:-2]).per_class == 4
    assert torch.equal(again.head(2).images, again.images[:, :2])
    assert torch.equal(send_to_worker(again).images, again.images)
    images, out_labels = SyntheticMix(again, 0.5, mode="append", seed=0)(torch.zeros(4, 1, 28, 28),
                                                                          torch.zeros(4).long())
    assert images.shape[0] == 6 and out_labels.shape == (6,)
    with pytest.raises(DataError, match=r"no generator to sample from"):
        again.refresh()


@pytest.mark.parametrize("images, labels, options, problem", [
    (torch.zeros(6, 1, 8, 8), torch.arange(3).repeat(2), {}, r"uint8 images shaped \(N, C, H, W\), got dtype torch.float32"),
    (torch.zeros(3, 2, 1, 8, 8, dtype=torch.uint8), torch.arange(3), {}, r"shape \(3, 2, 1, 8, 8\)"),
    ("bank.safetensors", torch.arange(3), {}, "got str"),
    (torch.zeros(6, 1, 8, 8, dtype=torch.uint8), torch.arange(3), {}, "got 6 images but 3 labels"),
    (torch.zeros(6, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 0, 0, 2, 2, 2]), {},
     r"rows of every class: class '1' has 0"),
    (torch.zeros(6, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 0, 0, 1, 1, 2]), {"per_class": 2},
     r"needs 2 rows of every class: class '2' has 1; pass per_class="),
    (torch.zeros(6, 1, 8, 8, dtype=torch.uint8), torch.arange(3).repeat(2), {"class_names": ["a", "b"]},
     r"class_names has 2 names"),
    (torch.zeros(6, 1, 8, 8, dtype=torch.uint8), torch.arange(3).repeat(2), {"per_class": 0},
     "per_class must be an int >= 1"),
    (torch.zeros(6, 1, 8, 8).numpy(), torch.arange(3).repeat(2), {}, r"got ndarray; .*torch.from_numpy\(array\)"),
    (torch.zeros(6, 8, 8, dtype=torch.uint8), torch.arange(3).repeat(2), {}, r"shape \(6, 8, 8\); .*images\[:, None\]"),
    (torch.zeros(6, 1, 8, 8), torch.arange(3).repeat(2), {}, r"\(images \* 255\).round\(\).to\(torch.uint8\)"),
    (torch.zeros(0, 1, 8, 8, dtype=torch.uint8), torch.zeros(0, dtype=torch.long), {}, r"got no images \(N = 0\)"),
])
def test_from_images_refuses_what_makes_no_bank(images, labels, options, problem):
    with pytest.raises((DataError, ConfigError), match=problem):
        SyntheticPool.from_images(images, labels, **options)


def test_save_and_load_give_the_bank_back_with_its_counts(tiny_data, tmp_path):
    pool = _short_filtered_pool(tiny_data)
    path = pool.save(tmp_path / "banks" / "bank.safetensors")
    assert path.is_file() and not list(path.parent.glob("*.tmp"))  # written whole, through a temporary file
    again = SyntheticPool.load(path)
    assert torch.equal(again.images, pool.images) and again.images.is_shared()
    assert torch.equal(again.distinct_counts, pool.distinct_counts) and again.class_names == pool.class_names
    assert again.filter_threshold == 0.5 and again.source_index is None and again.variation is None
    with pytest.raises(DataError, match="no generator to sample from"):
        again.refresh()


def test_load_refuses_what_save_did_not_write(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(DataError, match=r"no saved SyntheticPool at .*missing.safetensors: write one with pool.save"):
        SyntheticPool.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="is not a safetensors file"):
        SyntheticPool.load(tmp_path / "junk.safetensors")
    save_file({"weight": torch.zeros(2)}, tmp_path / "model.safetensors")
    with pytest.raises(DataError, match=r"is not a SyntheticPool that pool.save\(\) wrote \(format None"):
        SyntheticPool.load(tmp_path / "model.safetensors")


def test_save_never_replaces_a_file_without_overwrite(tiny_data, tmp_path):
    pool, other = (SyntheticPool.from_images(torch.full((4, 1, 8, 8), v, dtype=torch.uint8), torch.arange(2).repeat(2))
                   for v in (1, 2))
    path = pool.save(tmp_path / "bank.safetensors")
    with pytest.raises(DataError, match=r"bank.safetensors already exists; nothing was changed.*overwrite=True"):
        other.save(path)
    assert torch.equal(SyntheticPool.load(path).images, pool.images)  # the first bank, untouched
    assert other.save(path, overwrite=True) == path  # an earlier bank is replaced only when asked
    assert torch.equal(SyntheticPool.load(path).images, other.images)


def test_save_refuses_a_path_that_is_not_a_bank(tmp_path):
    from safetensors.torch import save_file

    pool = SyntheticPool.from_images(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.arange(2).repeat(2))
    weights = tmp_path / "model.safetensors"
    save_file({"weight": torch.ones(2)}, weights)
    with pytest.raises(DataError, match="is not a bank that pool.save\\(\\) wrote, so overwrite=True will not replace"):
        pool.save(weights, overwrite=True)  # a mistyped path onto a model's weights
    with pytest.raises(DataError, match="is not a bank that pool.save"):  # not "pass overwrite=True" first
        pool.save(weights)
    assert weights.read_bytes() == save_bytes_of({"weight": torch.ones(2)})
    with pytest.raises(ConfigError, match=r"is a folder, but pool.save writes one file; pass a file path like"):
        pool.save(tmp_path)
    (tmp_path / "notes").write_text("mine")
    with pytest.raises(ConfigError, match="notes is a file, not a folder"):
        pool.save(tmp_path / "notes" / "bank.safetensors")
    with pytest.raises(ConfigError, match=r"bank.pt names a .pt file, but pool.save writes safetensors .*bank.safetensors"):
        pool.save(tmp_path / "bank.pt")
    with pytest.raises(ConfigError, match="overwrite must be True or False, got 'yes'"):
        pool.save(tmp_path / "bank.safetensors", overwrite="yes")
    with pytest.raises(ConfigError, match="path must be a path"):
        pool.save(None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "notes"]  # nothing written


def save_bytes_of(tensors):
    from safetensors.torch import save

    return save(tensors)
