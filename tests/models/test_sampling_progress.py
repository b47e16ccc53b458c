"""sampling_progress: a bar that sampling advances by images (a ddpm's steps within a batch),
without changing a sample; and progress_bar, the rule of who shows one."""

from __future__ import annotations

import pytest
import torch

from augmentgen._processes import progress_bar
from augmentgen.errors import ConfigError
from augmentgen.models import build_config, build_generator, sampling_progress
from augmentgen.models.base import report_sampling_fraction, sampling_chunk
from tests.conftest import RecordingBar

TINY = {"cgan": {"generator_width": 8, "latent_dim": 8},
        "ddpm": {"unet_width": 8, "channel_multipliers": [1, 2], "sampling_steps": 3}}
LABELS = torch.tensor([0, 1, 2, 0, 1, 2, 0])


@pytest.fixture(scope="module", params=sorted(TINY))
def generator(request):
    torch.manual_seed(0)
    return build_generator(build_config(request.param, num_classes=3, **TINY[request.param])).eval()


def seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_a_bar_counts_every_image_and_changes_no_sample(generator):
    plain = generator.sample(LABELS, generator=seeded(), batch_size=3)
    bar = RecordingBar()
    with sampling_progress(bar):
        counted = generator.sample(LABELS, generator=seeded(), batch_size=3)
    assert torch.equal(plain, counted)  # bit-identical: the bar draws no random number, moves no tensor
    assert bar.n == pytest.approx(len(LABELS)) and all(isinstance(n, int) and n > 0 for n in bar.updates)
    if generator.family == "cgan":
        assert bar.updates == [3, 3, 1]  # one update per chunk


def test_a_ddpm_moves_the_bar_within_a_batch(generator):
    if generator.family != "ddpm":
        pytest.skip("only an iterative family reports its steps")
    bar = RecordingBar()
    with sampling_progress(bar):
        generator.sample(torch.tensor([0, 1, 2, 0, 1, 2]), generator=seeded())  # one chunk of 6
    assert bar.updates == [2, 2, 2]  # a third of the batch at each of the 3 steps
    bar = RecordingBar()
    with sampling_progress(bar):  # SDEdit denoises too: vary counts its images the same way
        generator.vary(torch.zeros(5, 1, 28, 28), [0, 1, 2, 0, 1], 0.5, batch_size=2, generator=seeded())
    assert bar.n == 5


def test_nothing_is_counted_without_a_bar_or_with_a_hidden_one(generator):
    outside = RecordingBar()
    report_sampling_fraction(0.5)  # no block: nothing to advance, no error
    with sampling_chunk(4):
        report_sampling_fraction(1.0)
    with sampling_progress(None) as bar:
        assert bar is None
        generator.sample(LABELS, generator=seeded())
    hidden = RecordingBar(disable=True)  # a disabled tqdm: not worth counting for
    with sampling_progress(hidden):
        generator.sample(LABELS, generator=seeded())
    assert outside.updates == hidden.updates == []


def test_an_error_leaves_the_bar_at_the_images_made(generator, monkeypatch):
    calls, generate = [], type(generator).generate

    def failing_second_chunk(labels, noise):
        calls.append(len(labels))
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return generate(generator, labels, noise)

    monkeypatch.setattr(generator, "generate", failing_second_chunk)
    bar = RecordingBar()
    with sampling_progress(bar), pytest.raises(RuntimeError, match="out of memory"):
        generator.sample(LABELS, generator=seeded(), batch_size=3)
    assert bar.n == 3  # the first chunk; the failed one is not completed
    monkeypatch.undo()
    generator.sample(LABELS, generator=seeded())  # after the block, nothing is counted any more
    assert bar.n == 3


def test_nested_chunks_count_once():
    bar = RecordingBar()
    with sampling_progress(bar):
        with sampling_chunk(10):
            with sampling_chunk(4):
                report_sampling_fraction(0.5)
            assert bar.n == 4  # the inner chunk completed
            report_sampling_fraction(0.8)  # of the outer chunk: 8 of 10
            assert bar.n == 8
        with sampling_chunk(3):
            pass
    assert bar.n == 13 and bar.updates == [2, 2, 4, 2, 3]


def test_nested_blocks_advance_every_enclosing_bar(generator):
    """A pool fill (its own bar, often hidden) inside `augmentgen eval`'s `sampled` block."""
    outer, inner = RecordingBar(), RecordingBar()
    with sampling_progress(outer):
        generator.sample(LABELS[:2], generator=seeded())
        with sampling_progress(RecordingBar(disable=True)):  # a hidden inner bar hides nothing
            generator.sample(LABELS[:3], generator=seeded())
        with sampling_progress(inner):
            generator.sample(LABELS, generator=seeded(), batch_size=3)
        generator.sample(LABELS[:1], generator=seeded())
    assert outer.n == 2 + 3 + len(LABELS) + 1 and inner.n == len(LABELS)
    generator.sample(LABELS, generator=seeded())  # after the blocks, nothing is counted
    assert outer.n == 13 and inner.n == 7


def test_progress_bar_shows_on_the_main_process_only_and_as_asked(bars, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert not progress_bar(True, total=3, desc="x").disable
    assert progress_bar(False, total=3, desc="x").disable
    assert progress_bar(None, total=3, desc="x").disable  # stderr is not a terminal under pytest
    monkeypatch.setenv("RANK", "1")  # another rank of a launched job
    assert progress_bar(True, total=3, desc="x").disable
    with pytest.raises(ConfigError, match="progress must be True, False or None"):
        progress_bar("yes", total=3, desc="x")
