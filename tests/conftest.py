"""Shared fixtures: tiny datasets and configs so every test runs in seconds on a CPU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from augmentgen.data import LabelledImages

# Real datasets live beside the checkout (../shared/data), never downloaded.
SHARED_DATA = Path(os.environ.get("AUGMENTGEN_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _benchmark_state_in_tmp(tmp_path_factory, monkeypatch):
    """The benchmarks keep generators and validation scores in the user cache and in the
    repository's campaign folder: a test writes to neither."""
    root = tmp_path_factory.mktemp("benchmark-state")
    monkeypatch.setenv("AUGMENTGEN_BENCH_CACHE", str(root / "cache"))
    monkeypatch.setenv("AUGMENTGEN_BENCH_CAMPAIGN", str(root / "campaign"))


def requires_shared_data(name: str):
    return pytest.mark.skipif(not (SHARED_DATA / name).is_dir(),
                              reason=f"{SHARED_DATA / name} not present")


def make_images(n_per_class: int = 8, num_classes: int = 3, channels: int = 1, size: int = 28,
                seed: int = 0) -> LabelledImages:
    """Synthetic, class-separable images: class c is a bright square at a class-specific spot."""
    rng = np.random.default_rng(seed)
    n = n_per_class * num_classes
    images = rng.integers(0, 40, size=(n, channels, size, size), dtype=np.uint8)
    labels = np.repeat(np.arange(num_classes), n_per_class)
    step = size // num_classes
    for i, c in enumerate(labels):
        images[i, :, c * step: c * step + step, 4: size - 4] = 220
    return LabelledImages(images, labels, [f"class{c}" for c in range(num_classes)], source="synthetic")


def assert_later_batches_make_no_host_sync(mix, images, labels, batches: int = 2) -> None:
    """``mix``'s first call may read back from the GPU (CUDA's lazy start-up, the first batch's
    label checks); the ``batches`` calls after it must not (``set_sync_debug_mode("error")``)."""
    import torch

    mix(images, labels)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(batches):
            mix(images, labels, return_mask=True)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


def send_to_worker(obj):
    """What a spawned DataLoader worker receives: the object through ForkingPickler, as DataLoader sends it."""
    from multiprocessing.reduction import ForkingPickler

    return ForkingPickler.loads(ForkingPickler.dumps(obj))


@pytest.fixture
def sigint_delivered():
    """Ctrl-C reaches this process even when the suite runs as a background job (``make test &``),
    where the shell starts it with SIGINT ignored and the trainer rightly leaves it ignored."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def sigint_not_ignored() -> None:
    """``preexec_fn`` of a subprocess that must receive Ctrl-C, whatever this process inherited."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def tiny_data() -> LabelledImages:
    return make_images()


TINY_GAN = {"generator_width": 8, "discriminator_width": 8, "latent_dim": 16}


class RecordingBar:
    """A stand-in for a tqdm bar: records its settings and every ``update``; hidden (``disable``)
    by tqdm's own rule, so that ``disable=None`` means hidden unless stderr is a terminal."""

    def __init__(self, *args, total=None, desc=None, unit="it", disable=False, **kwargs):
        import sys

        self.total, self.desc, self.unit = total, desc, unit
        self.disable = (not sys.stderr.isatty()) if disable is None else disable
        self.updates: list[float] = []

    def update(self, n=1) -> None:
        self.updates.append(n)

    @property
    def n(self) -> float:
        return sum(self.updates)

    def close(self) -> None:
        pass

    def __enter__(self) -> RecordingBar:
        return self

    def __exit__(self, *exc_info) -> None:
        pass


@pytest.fixture
def bars(monkeypatch) -> list[RecordingBar]:
    """Every bar the library makes in the test (``tqdm.auto.tqdm``, which ``progress_bar`` reads
    at each call), as a :class:`RecordingBar`, in order. Import ``datasets`` before asking for
    it: ``datasets`` subclasses ``tqdm.auto.tqdm`` when first imported."""
    import tqdm.auto

    made: list[RecordingBar] = []

    class Recorded(RecordingBar):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorded)
    return made
