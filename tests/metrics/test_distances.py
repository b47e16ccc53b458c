"""Feature distances: known cases for FID, KID, precision/recall and density/coverage."""

from __future__ import annotations

import math

import pytest
import torch

from augmentgen.metrics import (
    ReferenceClassifier,
    density_coverage,
    feature_distances,
    frechet_distance,
    kernel_distance,
    knn_radii,
    per_class_fid,
    precision_recall,
)
from tests.conftest import make_images
from tests.metrics.fakes import RealImagesGenerator


@pytest.fixture(scope="module")
def extractor():
    torch.manual_seed(0)
    return ReferenceClassifier(3, width=4).eval()


@pytest.fixture(scope="module")
def data():
    return make_images(n_per_class=30, num_classes=3, seed=0)


def test_knn_radii_match_a_brute_force_reference():
    feats = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    d = torch.cdist(feats, feats)
    expected = d.sort(dim=1).values[:, 3]
    torch.testing.assert_close(knn_radii(feats, 3, chunk=7), expected)


def test_identical_features_give_perfect_precision_recall_coverage():
    feats = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    assert precision_recall(feats, feats.clone(), k=3, chunk=64) == (1.0, 1.0)
    density, coverage = density_coverage(feats, feats.clone(), k=5)
    assert coverage == 1.0 and density >= 1.0


def test_same_distribution_is_close_and_far_distribution_is_not():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(500, 4, generator=g), torch.randn(500, 4, generator=g)
    precision, recall = precision_recall(real, fake)
    density, coverage = density_coverage(real, fake)
    assert precision > 0.8 and recall > 0.8 and 0.7 < density < 1.3 and coverage > 0.8
    far = fake + 10
    assert precision_recall(real, far) == (0.0, 0.0)
    assert density_coverage(real, far) == (0.0, 0.0)


def test_collapsed_features_have_no_recall_and_low_coverage():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 4, generator=g)
    collapsed = real[:1].repeat(300, 1) + 1e-4 * torch.randn(300, 4, generator=g)
    precision, recall = precision_recall(real, collapsed)
    _, coverage = density_coverage(real, collapsed)
    assert precision == 1.0  # every sample is realistic ...
    assert recall < 0.05 and coverage < 0.05  # ... but they cover one point of the real data


def test_fid_and_kid_are_zero_for_identical_sets_and_grow_with_difference(data, extractor):
    images = data.images
    assert abs(frechet_distance(images, images.clone(), extractor)) < 1e-3
    kid, _ = kernel_distance(images, images.clone(), extractor, subsets=10)
    assert abs(kid) < 1e-3
    shifted = (images.int() + 120).clamp(max=255).to(torch.uint8)
    assert frechet_distance(images, shifted, extractor) > 1e-2
    assert kernel_distance(images, shifted, extractor, subsets=10)[0] > 1e-3


def test_kid_draws_its_subsets_from_its_seed(data, extractor):
    images = data.images
    shifted = (images.int() + 60).clamp(max=255).to(torch.uint8)
    kwargs = dict(subsets=5, subset_size=len(images) // 2)  # subsets smaller than the sets: the draw matters
    state = torch.random.get_rng_state()
    first = kernel_distance(images, shifted, extractor, seed=1, **kwargs)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's stream is left as it was
    torch.manual_seed(123)  # another global state changes nothing
    assert kernel_distance(images, shifted, extractor, seed=1, **kwargs) == first
    assert kernel_distance(images, shifted, extractor, seed=2, **kwargs) != first


def test_per_class_fid_detects_the_swapped_class(data, extractor):
    labels = data.labels.clone()
    scores = per_class_fid(data.images, data.labels, data.images, labels, extractor, 3)
    assert max(abs(s) for s in scores) < 1e-3
    swapped = labels.clone()
    swapped[labels == 0], swapped[labels == 1] = 1, 0
    scores = per_class_fid(data.images, data.labels, data.images, swapped, extractor, 3)
    # Class 0's "synthetic" images are the real class-1 images: its score is FID(class 0, class 1).
    between = frechet_distance(data.images[labels == 0], data.images[labels == 1], extractor)
    assert scores[0] == pytest.approx(between, rel=1e-3) and between > 100 * abs(scores[2])
    single = per_class_fid(data.images, data.labels, data.images[:1], labels[:1], extractor, 3)
    assert all(math.isnan(s) for s in single)


def test_feature_distances_of_perfect_and_collapsed_generators(data, extractor):
    perfect = feature_distances(RealImagesGenerator(data), extractor, data, per_class=60,
                                kid_subsets=10)
    collapsed = feature_distances(RealImagesGenerator(data, collapsed=True), extractor, data,
                                  per_class=60, kid_subsets=10)
    assert perfect["recall"] > 0.9 and perfect["precision"] > 0.9 and perfect["coverage"] > 0.9
    # One image per class: 3 modes cover only the real points whose k-NN balls hold them.
    assert collapsed["recall"] < 0.1 and collapsed["coverage"] < 0.25
    assert collapsed["fid"] > perfect["fid"]
    assert len(perfect["per_class_fid"]) == 3


def test_fid_matches_torchmetrics_on_the_same_extractor(extractor, data):
    """FID is computed by the package's one Fréchet distance (shared with the snapshot score); it
    gives torchmetrics' FrechetInceptionDistance on the same features."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    from augmentgen.metrics import ClassifierFeatures

    other = make_images(n_per_class=20, num_classes=3, seed=1).images // 2  # darker: a clear distance
    reference = FrechetInceptionDistance(feature=ClassifierFeatures(extractor))
    reference.update(data.images, real=True)
    reference.update(other, real=False)
    expected = float(reference.compute())
    assert expected > 1e-4  # not ~0: the two sets differ
    assert frechet_distance(data.images, other, extractor, batch_size=16) == pytest.approx(expected, rel=1e-6)
