"""The non-generative baselines: which are trained, the best chosen on validation, the verdict on top."""

from __future__ import annotations

import pytest
import torch

import augmentgen.metrics.scores as scores_module
from augmentgen.data import per_class_subset
from augmentgen.errors import ConfigError
from augmentgen.metrics import downstream_gain, downstream_plan, downstream_verdict, resolve_baselines
from augmentgen.metrics.baselines import check_baselines, imbalance_ratio, mixup_cutmix
from tests.conftest import make_images
from tests.metrics.fakes import FakeBar, RealImagesGenerator

FAST = dict(steps=8, batch_size=16, width=4, include_noaug=False)


@pytest.fixture(scope="module")
def balanced():
    return make_images(n_per_class=10, num_classes=3, seed=0), make_images(n_per_class=6, num_classes=3, seed=1)


@pytest.fixture(scope="module")
def imbalanced():
    full = make_images(n_per_class=24, num_classes=3, seed=2)
    return per_class_subset(full, [24, 8, 4], seed=0)  # 6x between the largest and smallest class


class Spy:
    """Records the options of every classifier downstream_gain trains; the model remembers them."""

    def __init__(self, monkeypatch):
        self.calls, self.original = [], scores_module.train_classifier
        monkeypatch.setattr(scores_module, "train_classifier", self)

    def __call__(self, train_data, **kwargs):
        self.calls.append(kwargs)
        model = self.original(train_data, **kwargs)
        model.options = kwargs
        return model


# --------------------------------------------------------------------------- which baselines
def test_strong_adds_the_long_tail_baselines_only_on_imbalanced_counts():
    assert resolve_baselines("strong", [50] * 10) == ["classic", "mixup-cutmix"]
    assert resolve_baselines("strong", [20, 10, 10]) == ["classic", "mixup-cutmix"]  # exactly 2x: balanced enough
    assert resolve_baselines("strong", [21, 10, 10]) == [
        "classic", "mixup-cutmix", "balanced-sampling", "logit-adjustment"]
    assert resolve_baselines("none", [21, 10, 10]) == ["classic"]
    assert resolve_baselines(None, [5, 5]) == ["classic"]
    assert resolve_baselines("logit-adjustment, mixup-cutmix", [5, 5]) == ["classic", "mixup-cutmix", "logit-adjustment"]
    assert imbalance_ratio([500, 0, 5]) == 100.0  # an empty class does not count


def test_an_unknown_baseline_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="unknown baseline 'mixup'.*'strong', 'none'.*mixup-cutmix"):
        check_baselines("classic,mixup")
    with pytest.raises(ConfigError, match="unknown baseline"):
        resolve_baselines(["cutout"], [5, 5])


def test_mixup_cutmix_takes_class_indices_or_soft_targets_alike():
    images = torch.rand(6, 1, 8, 8) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    outputs = []
    for targets in (labels, torch.nn.functional.one_hot(labels, 3).float()):
        torch.manual_seed(7)  # one RNG stream, as train_classifier seeds it
        outputs.append(mixup_cutmix(3)(images.clone(), targets))
    (mixed, soft), (mixed_again, soft_again) = outputs
    assert torch.equal(mixed, mixed_again) and torch.allclose(soft, soft_again)
    assert soft.shape == (6, 3) and torch.allclose(soft.sum(1), torch.ones(6))


# --------------------------------------------------------------------------- the choice
def test_every_baseline_is_trained_and_the_best_on_validation_becomes_b(balanced, monkeypatch):
    train, test = balanced
    spy = Spy(monkeypatch)
    # Validation prefers MixUp/CutMix (a score by the options of the model, so the choice is known).
    monkeypatch.setattr(scores_module._GainArms, "score",
                        lambda self, model, data: 0.9 if model.options.get("batch_transform") else 0.5)
    report = downstream_gain(RealImagesGenerator(train), train, test, candidate_ratios=(0.0, 0.5), **FAST)

    assert report["baselines"] == ["classic", "mixup-cutmix"]
    assert report["baseline_selection"] == {"classic": 0.5, "mixup-cutmix": 0.9}
    assert report["best_baseline"] == "mixup-cutmix"
    mixed_runs = [c for c in spy.calls if c["synthetic_mix"] is not None]
    # Synthetic rows are tried, and finally trained, on top of B: with its MixUp/CutMix.
    assert mixed_runs and all(c.get("batch_transform") is not None for c in mixed_runs)
    # B alone ties with B + plain rows on validation (0.9 both): ties go to no synthetic rows.
    assert report["method"] == "none" and report["verdict"].startswith("do not mix.")
    # Balanced data: no run resamples or adjusts logits.
    assert not any("sampler" in c or "logit_adjustment" in c for c in spy.calls)
    # fit: classic, mixup-cutmix, mixup-cutmix + plain@0.5; final: classic, mixup-cutmix (no method was
    # chosen, so no control trains)
    assert report["classifier_runs"] == len(spy.calls) == 5 and report["controls"] == {}
    # At most: the same, B + plain@0.5 and its two controls.
    assert downstream_plan(train, candidate_ratios=(0.0, 0.5), include_noaug=False)["classifier_runs"] == 8


def test_the_real_choice_is_the_best_validation_score(balanced):
    train, test = balanced
    report = downstream_gain(RealImagesGenerator(train), train, test, candidate_ratios=(0.0, 0.5), **FAST)
    selection = report["baseline_selection"]
    assert report["best_baseline"] == max(selection, key=selection.get)  # ties: the earlier one, classic
    assert report["selection"]["none@0"] == selection[report["best_baseline"]]  # "none" is B alone
    assert report["delta"] == pytest.approx(report["score_mixed"] - report["score_best_baseline"])
    assert report["delta_vs_classic"] == pytest.approx(report["score_mixed"] - report["score_real_classic"])


def test_imbalanced_data_switches_on_resampling_and_logit_adjustment(imbalanced, balanced, monkeypatch):
    _, test = balanced
    spy = Spy(monkeypatch)
    report = downstream_gain(RealImagesGenerator(imbalanced), imbalanced, test, ratio=0.5, **FAST)
    assert report["baselines"] == ["classic", "mixup-cutmix", "balanced-sampling", "logit-adjustment"]
    assert set(report["baseline_selection"]) == set(report["baselines"])
    fit_runs = spy.calls[:4]  # the four baselines on the validation split's training part
    assert [c.get("sampler", "epochs") for c in fit_runs] == ["epochs", "epochs", "class-balanced", "epochs"]
    assert [c.get("logit_adjustment", 0.0) for c in fit_runs] == [0.0, 0.0, 0.0, 1.0]
    # Choices and the verdict read the mean per-class accuracy: its validation split is imbalanced too.
    assert report["metric"] == "mean per-class accuracy"
    assert report["score_mixed"] == pytest.approx(sum(report["per_class_mixed"]) / 3)
    # balance="auto": the synthetic rows go to the classes shown least, where they matter most.
    mixers = [c["synthetic_mix"] for c in spy.calls if c.get("synthetic_mix") is not None]
    assert report["balance"] == "inverse-frequency"
    assert mixers and all(m.balance == "inverse-frequency" for m in mixers)
    balanced_report = downstream_plan(balanced[0])
    assert balanced_report["baselines"] == ["classic", "mixup-cutmix"] and balanced_report["metric"] == "accuracy"


def test_baselines_none_is_the_classic_comparison_and_the_bar_ends_at_the_runs_done(balanced):
    train, test = balanced
    plan = downstream_plan(train, baselines="none", candidate_ratios=(0.5,), include_noaug=False)
    # plain@0.5 on the fit split (the only candidate), then the final classic and mixed arms and the two controls
    assert plan["classifier_runs"] == plan["classifier_runs_classic_only"] == 5
    assert plan["controls"] == ["real-rows", "pixel-mix"]
    bar = FakeBar(plan["classifier_runs"])
    report = downstream_gain(RealImagesGenerator(train), train, test, baselines="none", candidate_ratios=(0.5,),
                             progress=bar, **FAST)
    assert report["baselines"] == ["classic"] and report["baseline_selection"] is None
    assert report["balance"] is None  # balanced data: the rows follow the batch's classes
    assert report["best_baseline"] == "classic" and report["acc_best_baseline"] == report["acc_real_classic"]
    assert bar.n == bar.total == report["classifier_runs"]
    assert bar.postfix[0] == "validation: classic + plain@0.5" and bar.postfix[-1].startswith("final:")


# --------------------------------------------------------------------------- the verdict
def seed_report(seed, delta, *, method="plain", best="mixup-cutmix", vs_classic=None):
    """The fields downstream_verdict reads, for a seed whose B scores 0.8."""
    return {"seed": seed, "metric": "accuracy", "best_baseline": best, "method": method, "ratio": 0.25,
            "score_best_baseline": 0.8, "score_mixed": 0.8 + delta, "score_real_classic": 0.8 + (vs_classic or 0),
            "acc_best_baseline": 0.8, "acc_mixed": 0.8 + delta, "acc_real_classic": 0.8}


@pytest.mark.parametrize("deltas,decision,says", [
    ([0.004], "undecided", "one seed is not evidence: do not mix until 5 paired seeds"),
    ([-0.003], "do not mix", "-0.3 pts at one seed: it does not beat the best baseline"),
    ([0.01, 0.012, 0.008, 0.011, 0.009], "mix", "+1.0 [+0.8, +1.2] pts, 5/5 seeds > 0: the interval is above 0"),
    ([0.02, -0.01, 0.015, -0.012, 0.01], "do not mix", "the interval includes 0, so it is not shown to beat"),
])
def test_the_verdict_names_b_the_method_the_difference_and_the_decision(deltas, decision, says):
    result = downstream_verdict([seed_report(i, d) for i, d in enumerate(deltas)])
    assert result["decision"] == decision
    text = result["verdict"]
    assert text.startswith(decision + ". Best baseline on the validation split: mixup-cutmix")
    assert "Best synthetic method on top of it: plain at ratio 0.25" in text and says in text
    assert result["delta"] == pytest.approx(deltas)


def test_do_not_mix_when_validation_keeps_the_best_baseline_alone():
    result = downstream_verdict([seed_report(0, 0.0, method="none", best="classic"),
                                 seed_report(1, 0.0, method="none", best="mixup-cutmix")])
    assert result["decision"] == "do not mix"
    assert result["verdict"] == ("do not mix. Best baseline on the validation split: classic (1 seed), mixup-cutmix "
                                 "(1 seed). No synthetic method on top of it beat it on the validation split "
                                 "(2 of 2 seeds).")
    # The comparison with classic augmentation alone is kept beside it (the choice of B is noisy).
    mixed = downstream_verdict([seed_report(0, 0.01, vs_classic=0.02), seed_report(1, 0.01, vs_classic=0.02)])
    assert mixed["delta_vs_classic"]["mean"] == pytest.approx(-0.01)


def with_controls(report, **control_deltas):
    """``report`` with the controls trained beside its method, B + synthetic beating each by the delta given."""
    controls = {name.replace("_", "-"): {"score": report["score_mixed"] - d, "acc": report["acc_mixed"] - d,
                                         "delta": d} for name, d in control_deltas.items()}
    return {**report, "controls": controls}


def test_mix_only_when_the_generator_also_beats_the_rows_made_without_it():
    beats_b = [0.01, 0.012, 0.008, 0.011, 0.009]
    both = downstream_verdict([with_controls(seed_report(i, d), real_rows=0.006, pixel_mix=0.004 + i / 1000)
                               for i, d in enumerate(beats_b)])
    assert both["decision"] == "mix"
    assert both["delta_vs_controls"]["pixel-mix"]["mean"] == pytest.approx(0.006)
    assert both["delta_vs_controls"]["real-rows"]["seeds"] == [0, 1, 2, 3, 4]
    assert "B + synthetic vs real-rows (copies of real rows of the batch, re-augmented), no generator: +0.6 [" \
           in both["verdict"]
    # Above B, but same-class pixel MixUp rows do as well: the generator earns nothing.
    tied = downstream_verdict([with_controls(seed_report(i, d), real_rows=0.006, pixel_mix=(-1) ** i * 0.003)
                               for i, d in enumerate(beats_b)])
    assert tied["decision"] == "do not mix"
    assert ("the interval is above 0 over 5 paired seeds, but it is not shown to beat as many rows made without the "
            "generator: mix in PixelMixSource (pixel-mix) instead") in tied["verdict"]
    # One seed: undecided whatever the controls say, with their figure in the sentence.
    one = downstream_verdict([with_controls(seed_report(0, 0.01), pixel_mix=-0.002)])
    assert one["decision"] == "undecided" and "no generator: -0.2 pts at one seed" in one["verdict"]
    # Controls train only where a method was chosen: the others are paired over those seeds alone.
    some = downstream_verdict([with_controls(seed_report(0, 0.01), pixel_mix=0.01),
                               seed_report(1, 0.0, method="none"), with_controls(seed_report(2, 0.02), pixel_mix=0.01)])
    assert some["delta_vs_controls"]["pixel-mix"]["seeds"] == [0, 2]
