"""Within-class coverage: diversity and novelty ratios on inputs with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from augmentgen.errors import ConfigError, DataError
from augmentgen.metrics import ReferenceClassifier, coverage_report, diversity_ratio, novelty_ratio
from augmentgen.metrics.classifier import as_float_images
from tests.conftest import make_images
from tests.metrics.fakes import RealImagesGenerator

K, D, N = 3, 16, 300  # classes, feature size, rows per class and side


@pytest.fixture(scope="module")
def gaussians():
    """``draw(scale)``: N rows per class from N(mean_c, scale^2 I), class means far apart."""
    g = torch.Generator().manual_seed(0)
    means = 5 * torch.randn(K, D, generator=g)
    labels = torch.arange(K).repeat_interleave(N)

    def draw(scale: float = 1.0) -> torch.Tensor:
        return means[labels] + scale * torch.randn(len(labels), D, generator=g)

    return draw, labels, means


def test_ratios_match_hand_computed_medians_over_distinct_pairs():
    zero = torch.zeros(3, dtype=torch.long)
    # Pairs 1, 3, 2 (median 2) over pairs 2, 6, 4 (median 4); the diagonal's zeros would give 1 / 2.
    samples, reference = torch.tensor([[0.0], [1.0], [3.0]]), torch.tensor([[0.0], [2.0], [6.0]])
    assert diversity_ratio(samples, zero, reference, zero)["per_class"] == [pytest.approx(0.5)]
    # Nearest training rows (0 and 10): samples at 1, 2, 0 (median 1), reference at 4, 3, 3 (median 3).
    train = torch.tensor([[0.0], [10.0]])
    samples, reference = torch.tensor([[1.0], [8.0], [10.0]]), torch.tensor([[4.0], [13.0], [7.0]])
    report = novelty_ratio(samples, zero, train, zero[:2], reference, zero)
    assert report["per_class"] == [pytest.approx(1 / 3)]


def test_identical_samples_within_each_class_have_zero_diversity(gaussians):
    draw, labels, means = gaussians
    report = diversity_ratio(means[labels], labels, draw(), labels)
    assert report["per_class"] == [0.0] * K and report["median"] == 0.0 and report["mean"] == 0.0


def test_samples_from_the_real_distribution_have_diversity_about_one(gaussians):
    draw, labels, _ = gaussians
    report = diversity_ratio(draw(), labels, draw(), labels)
    assert all(abs(r - 1) < 0.1 for r in report["per_class"]) and abs(report["median"] - 1) < 0.05
    reference = draw()
    assert diversity_ratio(reference, labels, reference, labels)["per_class"] == [1.0] * K


def test_samples_shrunk_by_half_around_the_class_mean_have_diversity_one_half(gaussians):
    draw, labels, means = gaussians
    reference = draw()
    # The reference itself shrunk: every pairwise distance halves exactly.
    shrunk = means[labels] + 0.5 * (reference - means[labels])
    assert diversity_ratio(shrunk, labels, reference, labels)["per_class"] == pytest.approx([0.5] * K, abs=1e-5)
    # Fresh draws with half the spread.
    report = diversity_ratio(draw(0.5), labels, reference, labels)
    assert all(abs(r - 0.5) < 0.05 for r in report["per_class"])


def test_copies_of_the_training_set_have_zero_novelty_and_fresh_draws_about_one(gaussians):
    draw, labels, _ = gaussians
    train, reference = draw(), draw()
    copies = novelty_ratio(train.flip(0), labels.flip(0), train, labels, reference, labels)
    assert copies["per_class"] == [0.0] * K and copies["median"] == 0.0
    fresh = novelty_ratio(draw(), labels, train, labels, reference, labels)
    assert all(abs(r - 1) < 0.1 for r in fresh["per_class"]) and abs(fresh["median"] - 1) < 0.05
    # Chunking the queries changes nothing.
    samples = draw()
    assert (novelty_ratio(samples, labels, train, labels, reference, labels, chunk=7)
            == novelty_ratio(samples, labels, train, labels, reference, labels))


def test_subsets_are_seeded_and_bounded(gaussians):
    draw, labels, _ = gaussians
    samples, reference = draw(), draw()
    first = diversity_ratio(samples, labels, reference, labels, max_per_class=50, seed=3)
    assert first == diversity_ratio(samples, labels, reference, labels, max_per_class=50, seed=3)
    assert first != diversity_ratio(samples, labels, reference, labels, max_per_class=50, seed=4)
    assert all(abs(r - 1) < 0.2 for r in first["per_class"])
    # A cap above the class sizes is no subset at all.
    assert (diversity_ratio(samples, labels, reference, labels, max_per_class=N)
            == diversity_ratio(samples, labels, reference, labels, max_per_class=10 * N))


def test_images_are_flattened_and_uint8_goes_to_minus_one_one():
    data = make_images(n_per_class=6, num_classes=3, seed=0)
    other = make_images(n_per_class=6, num_classes=3, seed=1)
    as_rows = lambda d: as_float_images(d.images).flatten(1)  # noqa: E731
    assert (diversity_ratio(data.images, data.labels, other.images, other.labels)
            == diversity_ratio(as_rows(data), data.labels, as_rows(other), other.labels))
    assert (novelty_ratio(data.images, data.labels, data.images, data.labels, other.images, other.labels)
            ["per_class"] == [0.0] * 3)


def test_classes_with_too_few_rows_are_nan_and_left_out_of_the_summary(gaussians):
    draw, labels, _ = gaussians
    keep = (labels != 1) | (torch.arange(len(labels)) == N)  # class 1 keeps a single row
    samples, sample_labels = draw()[keep], labels[keep]
    report = diversity_ratio(samples, sample_labels, draw(), labels)
    assert math.isnan(report["per_class"][1]) and not math.isnan(report["per_class"][0])
    assert report["mean"] == pytest.approx((report["per_class"][0] + report["per_class"][2]) / 2)
    # One row is enough for novelty; no row at all (a 4th class nobody has) is NaN.
    train, reference = draw(), draw()
    novelty = novelty_ratio(samples, sample_labels, train, labels, reference, labels, num_classes=4)
    assert len(novelty["per_class"]) == 4 and not math.isnan(novelty["per_class"][1])
    assert math.isnan(novelty["per_class"][3])
    nothing = diversity_ratio(samples[:0], sample_labels[:0], reference, labels)
    assert all(math.isnan(r) for r in nothing["per_class"]) and math.isnan(nothing["median"])


def test_mismatched_inputs_are_refused(gaussians):
    draw, labels, _ = gaussians
    rows = draw()
    with pytest.raises(DataError, match="rows are shaped"):
        diversity_ratio(rows, labels, rows[:, :4], labels)
    with pytest.raises(DataError, match="labels"):
        diversity_ratio(rows, labels[:-1], rows, labels)
    with pytest.raises(DataError, match="features"):
        diversity_ratio(rows[:, :, None], labels, rows, labels)
    with pytest.raises(DataError, match="out of range"):
        diversity_ratio(rows, labels, rows, labels, num_classes=2)
    with pytest.raises(DataError, match="train rows"):
        novelty_ratio(rows, labels, rows[:, :8], labels, rows, labels)
    with pytest.raises(ConfigError):
        diversity_ratio(rows, labels, rows, labels, max_per_class=1)
    with pytest.raises(ConfigError):
        novelty_ratio(rows, labels, rows, labels, rows, labels, chunk=0)


@pytest.fixture(scope="module")
def split():
    return make_images(n_per_class=12, num_classes=3, seed=0), make_images(n_per_class=10, num_classes=3, seed=1)


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return ReferenceClassifier(3, width=4).eval()


def test_coverage_report_of_copying_and_collapsed_generators(split, classifier):
    train, heldout = split
    keys = ("diversity_pixels", "diversity_features", "novelty_pixels", "novelty_features")
    copying = coverage_report(RealImagesGenerator(train), classifier, train, heldout, per_class=20)
    for key in keys:
        assert len(copying[key]["per_class"]) == 3 and set(copying[key]) == {"per_class", "median", "mean"}
    assert copying["per_class"] == 20 and copying["seed"] == 0
    # The fake generator returns training images: novel by nothing, in both spaces.
    assert copying["novelty_pixels"]["per_class"] == [0.0] * 3
    assert max(copying["novelty_features"]["per_class"]) < 1e-3
    assert copying["diversity_pixels"]["median"] > 0.5
    collapsed = coverage_report(RealImagesGenerator(train, collapsed=True), classifier, train, heldout,
                                per_class=20)
    assert collapsed["diversity_pixels"]["per_class"] == [0.0] * 3
    assert max(collapsed["diversity_features"]["per_class"]) < 1e-3


def test_coverage_report_refuses_mismatched_data(split, classifier):
    train, heldout = split
    generator = RealImagesGenerator(train)
    with pytest.raises(DataError, match="classes"):
        coverage_report(generator, classifier, train, make_images(n_per_class=4, num_classes=4), per_class=4)
    with pytest.raises(DataError, match="images"):
        coverage_report(generator, classifier, train, make_images(n_per_class=4, size=32), per_class=4)
    with pytest.raises(ConfigError):
        coverage_report(generator, classifier, train, heldout, per_class=1)
