"""evaluate_generator: every metric in one report, each real-data classifier trained once."""

from __future__ import annotations

import pytest
import torch

import augmentgen.metrics.report as report_module
import augmentgen.metrics.scores as scores_module
from augmentgen.errors import ConfigError
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
    report = evaluate_generator(generator, train, test, steps=STEPS, per_class=10,
                                candidate_ratios=(0.25, 0.5, 1.0), baselines="none")

    # reference, CAS on synthetic, three ratio candidates, mixed arm, two controls, no-augmentation arm
    assert len(trained) == 9 and sum(trained) == 6 and report["classifier_runs"] == 9
    assert report["cas"]["acc_real"] == report["reference_accuracy"]
    assert report["downstream"]["acc_real_classic"] == report["reference_accuracy"]

    # Reusing the reference changes no figure: the arm trained on its own gives the same numbers.
    monkeypatch.setattr(scores_module, "train_classifier", original)
    alone = downstream_gain(generator, train, test, steps=STEPS, seed=0, candidate_ratios=(0.25, 0.5, 1.0),
                            baselines="none")
    for key in ("acc_real_classic", "acc_mixed", "acc_real_noaug", "ratio", "delta"):
        assert report["downstream"][key] == alone[key], key
    assert "B + synthetic vs B (accuracy): " in format_report(report) and "at one seed" in format_report(report)
    # The controls beside the chosen method: their test accuracy and B + synthetic against each.
    text = format_report(report)
    pixel_mix = 100 * report["downstream"]["controls"]["pixel-mix"]["acc"]
    assert f"{'B + pixel-mix (control: PixelMixSource, no generator)':61s} {pixel_mix:5.1f}%" in text
    assert "B + synthetic vs B + real-rows (control, no generator): " in text
    # Coverage ratios against held-out real images (the test set), per class.
    for key in ("diversity_pixels", "diversity_features", "novelty_pixels", "novelty_features"):
        assert len(report["coverage"][key]["per_class"]) == 3
    assert 0 < report["coverage"]["diversity_pixels"]["median"] < 3
    assert "diversity ratio" in format_report(report) and "novelty ratio" in format_report(report)
    assert report["downstream_seeds"]["delta"] == [report["downstream"]["delta"]]
    assert report["downstream_seeds"]["delta_std"] is None


def test_repeats_measure_the_gain_at_every_seed(split):
    train, test = split
    generator = RealImagesGenerator(train, shift=1)
    report = evaluate_generator(generator, train, test, steps=STEPS, per_class=10, seed=3, repeats=3,
                                baselines="none")
    seeds = report["downstream_seeds"]
    assert seeds["seeds"] == [3, 4, 5] and seeds["delta"][0] == report["downstream"]["delta"]
    for i, seed in enumerate(seeds["seeds"][1:], start=1):
        alone = downstream_gain(generator, train, test, steps=STEPS, seed=seed, include_noaug=False,
                                candidate_ratios=(0.0, 0.25, 0.5, 1.0), baselines="none")  # as evaluate_generator
        assert seeds["delta"][i] == alone["delta"] and seeds["acc_mixed"][i] == alone["acc_mixed"]
    deltas = torch.tensor(seeds["delta"], dtype=torch.float64)
    assert seeds["delta_mean"] == pytest.approx(deltas.mean().item())
    assert seeds["delta_std"] == pytest.approx(deltas.std().item())
    half = 4.303 * deltas.std().item() / 3 ** 0.5  # t(0.975, 2 degrees of freedom)
    assert seeds["delta_ci95"] == pytest.approx([deltas.mean().item() - half, deltas.mean().item() + half])
    assert seeds["n_positive"] == int((deltas > 0).sum())
    assert "over 3 paired seeds" in format_report(report)

    with pytest.raises(ConfigError, match="repeats"):
        evaluate_generator(generator, train, test, steps=STEPS, repeats=0)


def test_the_selection_table_marks_the_choice_once_even_on_ties():
    from augmentgen.metrics.report import format_downstream

    arm = {"acc_real_classic": 0.8, "acc_best_baseline": 0.82, "acc_mixed": 0.84, "acc_real_noaug": None,
           "score_real_classic": 0.8, "score_best_baseline": 0.82, "score_mixed": 0.84}
    down = {**arm, "seed": 0, "metric": "accuracy", "best_baseline": "mixup-cutmix",
            "baseline_selection": {"classic": 0.8, "mixup-cutmix": 0.85},
            "selection": {"none@0": 0.8, "plain@0.25": 0.9, "plain@0.5": 0.9}, "method": "plain", "ratio": 0.25,
            "acc_teacher_control": None}
    lines = format_downstream(down).splitlines()
    assert [line for line in lines if "<- chosen" in line] == [f"    {'plain@0.25':61s}  90.0%  <- chosen"]
    assert [line.split()[0] for line in lines if "<- best baseline B" in line] == ["mixup-cutmix"]
    assert "    B + synthetic: plain at ratio 0.25" in "\n".join(lines)
    assert lines[-1].startswith("verdict: undecided. Best baseline on the validation split: mixup-cutmix.")
    assert "+2.0 pts at one seed" in lines[-1] and "+4.0 pts at one seed" in "\n".join(lines)  # vs B, vs classic
