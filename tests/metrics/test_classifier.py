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
