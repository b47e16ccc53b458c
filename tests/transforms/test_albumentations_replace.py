"""AlbumentationsReplaceWithSynthetic in A.Compose, with the label as a keyword target."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
A = pytest.importorskip("albumentations")

from augmentgen.errors import ConfigError, DataError  # noqa: E402
from augmentgen.mixing import SyntheticPool  # noqa: E402
from augmentgen.models import build_config, build_generator  # noqa: E402
from augmentgen.transforms import AlbumentationsReplaceWithSynthetic  # noqa: E402
from tests.conftest import send_to_worker  # noqa: E402


@pytest.fixture(scope="module")
def pool():
    torch.manual_seed(0)
    g = build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8))
    return SyntheticPool(g, per_class=4, seed=0)


def bank_hwc(pool, label):
    return [pool.images[label, i].permute(1, 2, 0).numpy() for i in range(pool.per_class)]


@pytest.mark.parametrize("shape,dtype", [((28, 28, 1), np.uint8), ((28, 28, 3), np.uint8),
                                         ((28, 28, 1), np.float32)])
def test_compose_end_to_end(pool, shape, dtype):
    image = np.full(shape, 3, dtype=dtype) if dtype == np.uint8 else np.full(shape, 0.01, dtype)
    original = image.copy()
    compose = A.Compose([AlbumentationsReplaceWithSynthetic(pool, p=1.0), A.HorizontalFlip(p=0.0)],
                        seed=0)
    out = compose(image=image, label=2)
    assert out["label"] == 2 and out["image"].dtype == dtype and out["image"].shape == shape
    assert np.array_equal(image, original)
    got = out["image"][..., :1]
    if dtype == np.float32:
        got = np.round(got * 255).astype(np.uint8)
    assert any(np.array_equal(got, b) for b in bank_hwc(pool, 2))


def test_probability_and_pickle(pool):
    image = np.zeros((28, 28, 1), np.uint8)
    t = AlbumentationsReplaceWithSynthetic(pool, p=0.0)
    assert np.array_equal(A.Compose([t])(image=image, label=1)["image"], image)
    clone = send_to_worker(A.Compose([AlbumentationsReplaceWithSynthetic(pool, p=1.0)]))
    out = clone(image=image, label=1)["image"]
    assert any(np.array_equal(out, b) for b in bank_hwc(pool, 1))


def test_errors(pool):
    compose = A.Compose([AlbumentationsReplaceWithSynthetic(pool, p=1.0)])
    with pytest.raises(ValueError, match="label"):
        compose(image=np.zeros((28, 28, 1), np.uint8))
    with pytest.raises(DataError, match="Resize"):
        compose(image=np.zeros((32, 32, 1), np.uint8), label=0)
    with pytest.raises(DataError, match="out of range"):
        compose(image=np.zeros((28, 28, 1), np.uint8), label=5)


def test_docstring_example_runs(pool):
    from tests.transforms.test_synthetic_dataset import _example

    namespace = {"A": A, "AlbumentationsReplaceWithSynthetic": AlbumentationsReplaceWithSynthetic, "pool": pool,
                 "image_hwc_uint8": np.full((28, 28, 1), 9, np.uint8)}
    exec(_example(AlbumentationsReplaceWithSynthetic), namespace)
    assert namespace["out"]["image"].shape == (28, 28, 1) and namespace["out"]["image"].dtype == np.uint8


@pytest.mark.parametrize("image,error,problem", [
    (np.full((28, 28, 1), -2.0, np.float32), DataError, r"float images must be in \[0, 1\].*before A.Normalize"),
    (np.full((28, 28, 1), 200.0, np.float32), DataError, r"got values in \[200, 200\].*A.ToFloat\(max_value=255\)"),
    (np.full((28, 28, 1), 40000, np.uint16), DataError, r"images must be uint8 or float in \[0, 1\].*got uint16"),
])
def test_an_image_outside_the_banks_range_is_refused(pool, image, error, problem):
    # The bank's 8-bit image was put, as it was, into a normalised, 0-255 float or 16-bit pipeline.
    with pytest.raises(error, match=problem):
        A.Compose([AlbumentationsReplaceWithSynthetic(pool, p=1.0)], seed=0)(image=image, label=1)


@pytest.mark.parametrize("p", [2, -0.1, "0.5"])
def test_p_outside_0_1_is_a_config_error(pool, p):
    with pytest.raises(ConfigError, match=rf"p must be a probability in \[0, 1\], got {p!r}"):
        AlbumentationsReplaceWithSynthetic(pool, p=p)
