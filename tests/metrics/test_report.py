"""evaluate_generator: every metric in one report, each real-data classifier trained once."""

from __future__ import annotations

import pytest

import augmentgen.metrics.report as report_module
import augmentgen.metrics.scores as scores_module
from augmentgen.metrics import downstream_gain
from augmentgen.metrics.report import evaluate_generator, format_report
from tests.conftest import make_images
from tests.metrics.fakes import RealImagesGenerator

STEPS = 20


@pytest.fixture(scope="module")
def split():
    return make_images(n_per_class=16, num_classes=3, seed=0), make_images(n_per_class=12, num_classes=3, seed=1)


def test_reference_classifier_serves_as_the_real_arms(split, monkeypatch):
    train, test = split
    trained = []
    original = scores_module.train_classifier

    def counting(*args, **kwargs):
        trained.append(kwargs.get("synthetic_mix") is not None)
        return original(*args, **kwargs)

    monkeypatch.setattr(scores_module, "train_classifier", counting)
    monkeypatch.setattr(report_module, "train_classifier", counting)
    generator = RealImagesGenerator(train, shift=1)
    report = evaluate_generator(generator, train, test, steps=STEPS, n_per_class=10)

    # reference, CAS on synthetic, two ratio candidates, mixed arm, no-augmentation arm
    assert len(trained) == 6 and sum(trained) == 3
    assert report["cas"]["acc_real"] == report["reference_accuracy"]
    assert report["downstream"]["acc_real_classic"] == report["reference_accuracy"]

    # Reusing the reference changes no figure: the arm trained on its own gives the same numbers.
    monkeypatch.setattr(scores_module, "train_classifier", original)
    alone = downstream_gain(generator, train, test, steps=STEPS, seed=0)
    for key in ("acc_real_classic", "acc_mixed", "acc_real_noaug", "ratio", "delta"):
        assert report["downstream"][key] == alone[key], key
    assert "downstream gain" in format_report(report)
