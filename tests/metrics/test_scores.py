"""Classifier-based scores on fake generators with known answers."""

from __future__ import annotations

import pytest
import torch

from augmentgen.errors import ConfigError, DataError
from augmentgen.metrics import (
    class_consistency,
    classification_accuracy_score,
    downstream_gain,
    train_classifier,
    validation_folds,
    validation_split,
)
from augmentgen.metrics.scores import method_options
from tests.conftest import make_images
from tests.metrics.fakes import RealImagesGenerator

FAST = dict(steps=40, batch_size=24, width=8)


@pytest.fixture(scope="module")
def split():
    return make_images(n_per_class=16, num_classes=3, seed=0), make_images(n_per_class=12, num_classes=3, seed=1)


@pytest.fixture(scope="module")
def real_classifier(split):
    return train_classifier(split[0], seed=0, augment="none", **FAST)


def test_class_consistency_of_right_and_wrong_class_generators(split, real_classifier):
    train, _ = split
    right = class_consistency(RealImagesGenerator(train), real_classifier, 20)
    wrong = class_consistency(RealImagesGenerator(train, shift=1), real_classifier, 20)
    assert right["mean"] > 0.9 and min(right["per_class"].values()) > 0.8
    assert wrong["mean"] < 0.1
    assert list(right["per_class"]) == train.class_names


def test_cas_of_a_perfect_generator_is_close_to_the_real_classifier(split):
    train, test = split
    perfect = classification_accuracy_score(RealImagesGenerator(train), test, real_data=train,
                                            per_class=16, seed=0, augment="none", **FAST)
    wrong = classification_accuracy_score(RealImagesGenerator(train, shift=1), test,
                                          per_class=16, seed=0, augment="none", **FAST)
    assert perfect["acc_real"] > 0.9
    assert abs(perfect["cas"] - perfect["acc_real"]) < 0.1
    assert wrong["cas"] < 0.1 and wrong["acc_real"] is None
    assert len(perfect["cas_per_class"]) == 3


def test_validation_split_is_stratified_disjoint_and_seeded():
    data = make_images(n_per_class=10, num_classes=3)
    fit, val = validation_split(data, 0.2, seed=0)
    assert fit.class_counts == [8, 8, 8] and val.class_counts == [2, 2, 2]
    again_fit, _ = validation_split(data, 0.2, seed=0)
    assert torch.equal(fit.images, again_fit.images)
    rows = torch.cat([fit.images, val.images]).flatten(1)
    assert len(torch.unique(rows, dim=0)) == len(data)
    with pytest.raises(DataError):
        validation_split(make_images(n_per_class=1, num_classes=2))


def test_validation_folds_put_every_image_in_exactly_one_stratified_fold():
    data = make_images(n_per_class=10, num_classes=3)
    folds = validation_folds(data, 5, seed=0)
    assert len(folds) == 5
    for fit, val in folds:
        assert fit.class_counts == [8, 8, 8] and val.class_counts == [2, 2, 2]
        assert len(torch.unique(torch.cat([fit.images, val.images]).flatten(1), dim=0)) == len(data)
    vals = torch.cat([val.images for _, val in folds]).flatten(1)
    assert len(torch.unique(vals, dim=0)) == len(data)  # each image validates exactly once
    again = validation_folds(data, 5, seed=0)
    other = validation_folds(data, 5, seed=1)
    assert torch.equal(folds[0][1].images, again[0][1].images)
    assert not torch.equal(folds[0][1].images, other[0][1].images)


def test_validation_folds_refuse_too_few_images_or_folds():
    with pytest.raises(DataError, match="at least 5 images"):
        validation_folds(make_images(n_per_class=4, num_classes=2), 5)
    with pytest.raises(ConfigError, match="at least 2"):
        validation_folds(make_images(n_per_class=4, num_classes=2), 1)


def test_downstream_gain_runs_every_arm_and_chooses_the_ratio_on_validation(split):
    train, test = split
    report = downstream_gain(RealImagesGenerator(train), train, test, seed=0,
                             candidate_ratios=(0.25, 0.75), baselines="none", **FAST)
    assert set(report["ratio_selection"]) == {0.25, 0.75}
    assert report["ratio"] in (0.25, 0.75)
    assert report["delta"] == pytest.approx(report["acc_mixed"] - report["acc_real_classic"])
    for key in ("acc_real_classic", "acc_mixed", "acc_real_noaug"):
        assert report[key] > 0.85, (key, report[key])
    fixed = downstream_gain(RealImagesGenerator(train, shift=1), train, test, seed=0, ratio=1.0,
                            mode="replace", include_noaug=False, baselines="none", **FAST)
    # Every training row replaced by an image of the wrong class: the classifier learns nothing
    # useful (chance level or below, 3 classes) and the gain is strongly negative.
    assert fixed["ratio_selection"] is None and fixed["acc_mixed"] < 0.4 and fixed["delta"] < -0.5
    assert fixed["mode"] == "replace" and report["mode"] == "append"


def test_ratio_zero_lets_validation_decide_against_mixing(split):
    train, test = split
    wrong = RealImagesGenerator(train, shift=1)  # synthetic rows of the wrong class only hurt
    report = downstream_gain(wrong, train, test, seed=0, candidate_ratios=(0.0, 1.0), mode="replace",
                             include_noaug=False, baselines="none", **FAST)
    assert report["ratio_selection"][0.0] > report["ratio_selection"][1.0]
    assert report["ratio"] == 0.0 and report["delta"] == 0.0
    assert report["acc_mixed"] == report["acc_real_classic"]


def test_methods_are_chosen_on_validation_and_none_wins_against_a_wrong_generator(split):
    train, test = split
    wrong = RealImagesGenerator(train, shift=1)  # every synthetic row of the wrong class
    report = downstream_gain(wrong, train, test, seed=0, candidate_ratios=(0.0, 1.0),
                             methods=("plain", "filter", "soft"), mode="replace", include_noaug=False,
                             baselines="none", **FAST)
    assert set(report["selection"]) == {"none@0", "soft-control@0", "plain@1", "filter@1", "soft@1"}
    # Wrong rows replacing every real row ruin the classifier; the teacher filter rejects them all
    # (its replace arm keeps the real rows), so it can only tie with no synthetic data.
    assert report["selection"]["plain@1"] < report["selection"]["none@0"] - 0.3
    assert report["selection"]["filter@1"] == pytest.approx(report["selection"]["none@0"], abs=0.1)
    assert report["method"] in ("none", "soft-control")
    assert report["verdict"].startswith("do not mix. Best baseline on the validation split: classic")
    assert report["ratio_selection"] == {0.0: report["selection"]["none@0"], 1.0: report["selection"]["plain@1"]}


def test_a_soft_label_method_is_credited_against_the_same_teacher_on_real_rows(split):
    train, test = split
    report = downstream_gain(RealImagesGenerator(train), train, test, seed=0, ratio=0.5, methods=("soft",),
                             include_noaug=False, baselines="none", **FAST)
    assert report["method"] == "soft" and report["selection"] is None
    assert report["acc_teacher_control"] is not None
    assert report["delta_vs_control"] == pytest.approx(report["acc_mixed"] - report["acc_teacher_control"])
    with pytest.raises(ConfigError, match="unknown mixing method"):
        downstream_gain(RealImagesGenerator(train), train, test, methods=("sharpen",), **FAST)
    with pytest.raises(ConfigError, match="exactly one method"):
        downstream_gain(RealImagesGenerator(train), train, test, ratio=0.5, methods=("plain", "soft"), **FAST)


def test_variation_modes_are_candidates_chosen_on_validation(split):
    from augmentgen.models import build_config, build_generator

    train, test = split
    torch.manual_seed(0)
    ae = build_generator(build_config("ae", num_classes=3, encoder_width=8, decoder_width=8, latent_dim=8)).eval()
    report = downstream_gain(ae, train, test, seed=0, candidate_ratios=(0.0, 0.5),
                             methods=("vary", "interpolate", "extrapolate"), include_noaug=False,
                             baselines="none", **FAST)
    assert set(report["selection"]) == {"none@0", "vary@0.5", "interpolate@0.5", "extrapolate@0.5"}
    assert report["method"] in ("none", "vary", "interpolate", "extrapolate")
    best = max(report["selection"].values())
    assert report["selection"][f"{report['method']}@{report['ratio']:g}"] == best
    cgan = build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8))
    with pytest.raises(ConfigError, match="cannot vary real images"):
        downstream_gain(cgan, train, test, ratio=0.5, methods=("vary",), **FAST)


def test_vary_strength_is_part_of_the_method_name():
    assert method_options("vary") == {"variation": "vary"}
    assert method_options("vary:0.3") == {"variation": "vary", "strength": 0.3}
    for bad in ("vary:", "vary:-1", "vary:strong", "interpolate:0.3", "plain:1", "sharpen"):
        with pytest.raises(ConfigError, match="vary:0.3"):
            method_options(bad)


def record_mixers(monkeypatch) -> list:
    """The ``synthetic_mix`` of every classifier downstream_gain trains, in order (None: no mixer)."""
    from augmentgen.metrics import scores as scores_module

    mixers, original = [], scores_module.train_classifier

    def spy(**kwargs):
        mixers.append(kwargs.get("synthetic_mix"))
        return original(**kwargs)

    monkeypatch.setattr(scores_module, "train_classifier", spy)
    return mixers


def test_vary_strength_candidates_reach_the_variation_source(split, monkeypatch):
    from augmentgen.models import build_config, build_generator

    train, test = split
    mixers = record_mixers(monkeypatch)
    torch.manual_seed(0)
    ae = build_generator(build_config("ae", num_classes=3, encoder_width=8, decoder_width=8, latent_dim=8)).eval()
    report = downstream_gain(ae, train, test, seed=0, candidate_ratios=(0.5,), methods=("vary:0.1", "vary:0.9"),
                             include_noaug=False, baselines="none", controls="none", **FAST)
    assert set(report["selection"]) == {"vary:0.1@0.5", "vary:0.9@0.5"}
    strengths = [m.source.strength for m in mixers if m is not None]
    assert strengths[:2] == [0.1, 0.9]  # the two validation runs, in order
    assert strengths[-1] == float(report["method"].partition(":")[2])  # the final arm: the chosen one


def test_weighted_is_a_loss_weight_for_the_classifier_not_a_mixer_option():
    from augmentgen.metrics.scores import MIXING_METHODS, split_method_options

    assert method_options("weighted") == MIXING_METHODS["weighted"] == {"synthetic_weight": 0.5}
    assert split_method_options("weighted") == ({}, {"synthetic_weight": 0.5})
    assert split_method_options("soft") == (MIXING_METHODS["soft"], {})
    assert split_method_options("vary:0.3") == ({"variation": "vary", "strength": 0.3}, {})
    with pytest.raises(ConfigError, match="vary:0.3"):
        method_options("weighted:0.3")


def test_weighted_is_chosen_on_validation_with_its_weight_in_every_arm(split, monkeypatch):
    from augmentgen.metrics import downstream_plan
    from augmentgen.metrics import scores as scores_module

    train, test = split
    runs, original = [], scores_module.train_classifier

    def spy(**kwargs):
        runs.append((kwargs.get("synthetic_mix") is not None, kwargs.get("synthetic_weight", 1.0)))
        return original(**kwargs)

    monkeypatch.setattr(scores_module, "train_classifier", spy)
    choice = dict(candidate_ratios=(0.5,), methods=("plain", "weighted"), include_noaug=False, baselines="none",
                  controls="none")
    report = downstream_gain(RealImagesGenerator(train), train, test, seed=0, **choice, **FAST)
    assert set(report["selection"]) == {"plain@0.5", "weighted@0.5"}
    assert report["method"] in ("plain", "weighted") and report["ratio"] == 0.5
    assert report["selection"][f"{report['method']}@0.5"] == max(report["selection"].values())
    assert report["classifier_runs"] == len(runs) == downstream_plan(train, **choice)["classifier_runs"] == 4
    # Validation plain, validation weighted (no teacher: no baseline on the fit part), classic, final.
    final_weight = 0.5 if report["method"] == "weighted" else 1.0
    assert runs == [(True, 1.0), (True, 0.5), (False, 1.0), (True, final_weight)]
    runs.clear()
    fixed = downstream_gain(RealImagesGenerator(train), train, test, seed=0, ratio=0.5, methods=("weighted",),
                            include_noaug=False, baselines="none", **FAST)
    assert fixed["method"] == "weighted" and fixed["selection"] is None
    # classic, B + weighted rows, then the two controls: as many rows, weighted the same way
    assert runs == [(False, 1.0), (True, 0.5), (True, 0.5), (True, 0.5)]
    with pytest.raises(ConfigError, match="weighted.*mode='append'"):
        downstream_gain(RealImagesGenerator(train), train, test, ratio=0.5, methods=("weighted",), mode="replace",
                        **FAST)


def test_controls_train_beside_the_chosen_method_with_as_many_rows_made_without_a_generator(split, monkeypatch):
    from augmentgen.mixing import PixelMixSource, RealRowSource

    train, test = split
    mixers = record_mixers(monkeypatch)
    report = downstream_gain(RealImagesGenerator(train), train, test, seed=3, ratio=0.5, include_noaug=False,
                             baselines="none", **FAST)
    assert report["classifier_runs"] == len(mixers) == 4  # classic, B + plain@0.5, then the two controls
    mixed, real_rows, pixel_mix = mixers[1:]
    assert isinstance(real_rows.source, RealRowSource) and isinstance(pixel_mix.source, PixelMixSource)
    for control in (real_rows, pixel_mix):  # the same number of rows a step, drawn the same way
        assert (control.ratio, control.mode, control.balance) == (mixed.ratio, mixed.mode, mixed.balance)
    assert list(report["controls"]) == ["real-rows", "pixel-mix"]
    for arm in report["controls"].values():
        assert arm["delta"] == pytest.approx(report["score_mixed"] - arm["score"])
        assert arm["score"] == arm["acc"] and len(arm["per_class"]) == 3  # balanced data: accuracy
    # Copies of the real rows teach what the real rows teach: near the mixed arm of a perfect generator.
    assert report["controls"]["real-rows"]["acc"] > 0.85
    mixers.clear()
    one = downstream_gain(RealImagesGenerator(train), train, test, seed=3, ratio=0.5, include_noaug=False,
                          baselines="none", controls=["pixel-mix"], **FAST)
    assert list(one["controls"]) == ["pixel-mix"] and len(mixers) == 3
    assert one["controls"]["pixel-mix"] == report["controls"]["pixel-mix"]  # paired: the same arm at the same seed
    with pytest.raises(ConfigError, match="unknown control 'mixup': choose from real-rows, pixel-mix"):
        downstream_gain(RealImagesGenerator(train), train, test, ratio=0.5, controls=["mixup"], **FAST)


def test_a_mixing_method_that_is_no_string_is_refused():
    from augmentgen.metrics.methods import method_options

    with pytest.raises(ConfigError, match=r"a mixing method is a name like 'plain' or 'vary:0.3', got None"):
        method_options(None)


def test_downstream_gain_warns_when_the_generator_names_its_classes_otherwise(monkeypatch):
    """Labels pair by index: a generator trained on other classes is named before anything trains."""
    import augmentgen.metrics.scores as scores_module
    from augmentgen.models import build_config, build_generator

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(scores_module, "train_classifier", stop)
    data = make_images(n_per_class=4, num_classes=2)  # classes class0, class1
    cgan = build_generator(build_config("cgan", num_classes=2, class_names=["0", "1"], generator_width=8,
                                        latent_dim=8))
    with pytest.warns(UserWarning, match=r"the generator names its classes otherwise than train_data \(0: '0' vs "
                                         r"'class0'; 1: '1' vs 'class1'\)"), pytest.raises(Stop):
        scores_module.downstream_gain(cgan, data, make_images(n_per_class=4, num_classes=2, seed=1),
                                      baselines="none", steps=1)


def test_a_method_or_baseline_named_twice_is_one_candidate_trained_once(split, monkeypatch):
    from augmentgen.metrics import downstream_plan
    from augmentgen.metrics import scores as scores_module

    train, test = split
    runs, original = [], scores_module.train_classifier

    def spy(**kwargs):
        runs.append(kwargs.get("synthetic_mix") is not None)
        return original(**kwargs)

    monkeypatch.setattr(scores_module, "train_classifier", spy)
    once = dict(candidate_ratios=(0.5,), methods=("plain",), include_noaug=False, baselines="none", controls="none")
    twice = {**once, "methods": ("plain", "plain")}
    assert downstream_plan(train, **twice)["classifier_runs"] == downstream_plan(train, **once)["classifier_runs"]
    report = downstream_gain(RealImagesGenerator(train), train, test, seed=0, **twice, **FAST)
    assert report["classifier_runs"] == len(runs) == downstream_plan(train, **once)["classifier_runs"]
    assert downstream_plan(train, baselines="classic,classic", controls="none")["baselines"] == ["classic"]


def test_a_tie_in_validation_score_goes_to_the_simpler_choice_whatever_the_float_noise():
    """93 of 100 validation images right, averaged over folds in another order: 0.9299999833 for B
    and 0.9299999952 for its rows (MNIST 10/class, seed 0). The last bits decided "mix"."""
    from augmentgen.metrics.scores import _choose
    from augmentgen.metrics.splits import beats, best_candidate, comparable_score

    assert _choose({("none", 0.0): 0.9299999833106994, ("plain", 0.5): 0.9299999952316285}) == ("none", 0.0)
    assert _choose({("none", 0.0): 0.93, ("plain", 0.5): 0.931}) == ("plain", 0.5)  # a real difference wins
    assert comparable_score(0.9299999833106994) == comparable_score(0.9299999952316285) == 0.93
    assert best_candidate(["b", "rows"], {"b": 0.9299999833106994, "rows": 0.9299999952316285}.get) == "b"
    assert not beats(0.9299999952316285, 0.9299999833106994) and beats(0.94, 0.93)


def _hits(won: int, lost: int, both: int = 90) -> tuple[torch.Tensor, torch.Tensor]:
    """Which of the validation images a candidate and B got right: ``won`` only the candidate,
    ``lost`` only B, ``both`` both (the rest of 100 neither)."""
    candidate = torch.zeros(100, dtype=torch.bool)
    baseline = torch.zeros(100, dtype=torch.bool)
    candidate[:won] = True
    baseline[won:won + lost] = True
    candidate[won + lost:won + lost + both] = baseline[won + lost:won + lost + both] = True
    return candidate, baseline


def test_the_guard_keeps_b_against_a_lead_of_one_image_among_several_disagreements():
    """MNIST 10/class, seed 4: a cgan's rows scored 95 of 100 validation images against B's 94 and
    were mixed; they lost 1.89 points on the test set. Three won and two lost (the fewest its folds'
    scores allow) is z = 0.45."""
    from augmentgen.metrics.scores import DEFAULT_MIN_VALIDATION_Z, _guard

    candidate, baseline = _hits(won=3, lost=2)
    selection = {("none", 0.0): 0.92, ("plain", 0.5): 0.93}
    correct = {("none", 0.0): baseline, ("plain", 0.5): candidate}
    method, ratio, margin = _guard(selection, correct, None, DEFAULT_MIN_VALIDATION_Z)
    assert (method, ratio) == ("none", 0.0) and DEFAULT_MIN_VALIDATION_Z == 1.0
    assert margin["held_back"] and margin["candidate"] == "plain@0.5" and margin["against"] == "none@0"
    assert margin["z"] == pytest.approx(1 / 5**0.5) and margin["gain"] == pytest.approx(0.01)
    # 0 mixes on any lead, as the choice did before the guard.
    assert _guard(selection, correct, None, 0.0)[:2] == ("plain", 0.5)
    # Six won, none lost: z = 2.45, mixed.
    candidate, baseline = _hits(won=6, lost=0)
    correct = {("none", 0.0): baseline, ("plain", 0.5): candidate}
    method, ratio, margin = _guard({("none", 0.0): 0.90, ("plain", 0.5): 0.96}, correct, None, 1.0)
    assert (method, ratio) == ("plain", 0.5) and not margin["held_back"] and margin["z"] == pytest.approx(6**0.5)
    # One won, none lost is z = 1 exactly: not more than 1, so not mixed.
    candidate, baseline = _hits(won=1, lost=0)
    correct = {("none", 0.0): baseline, ("plain", 0.5): candidate}
    assert _guard({("none", 0.0): 0.90, ("plain", 0.5): 0.91}, correct, None, 1.0)[0] == "none"


def test_the_guard_falls_back_to_the_best_candidate_without_a_generator_and_needs_a_ratio_zero():
    from augmentgen.metrics.scores import _guard

    candidate, baseline = _hits(won=3, lost=2)
    soft = baseline.clone()
    # B with its teacher's soft labels beat B alone: it is what the rows must beat, and the fallback.
    selection = {("none", 0.0): 0.91, ("soft-control", 0.0): 0.92, ("soft", 0.5): 0.93}
    correct = {("none", 0.0): torch.zeros(100, dtype=torch.bool), ("soft-control", 0.0): soft, ("soft", 0.5): candidate}
    method, ratio, margin = _guard(selection, correct, None, 1.0)
    assert (method, ratio) == ("soft-control", 0.0) and margin["against"] == "soft-control@0"
    # No ratio 0 among the candidates: the user asked to mix, and there is nothing to hold against.
    assert _guard({("plain", 0.5): 0.9, ("plain", 1.0): 0.8}, {}, None, 1.0) == ("plain", 0.5, None)
    # B itself won: no margin to read.
    assert _guard({("none", 0.0): 0.95, ("plain", 0.5): 0.9}, {}, None, 1.0) == ("none", 0.0, None)


def test_downstream_gain_records_the_guard_and_its_verdict_names_a_lead_held_back(split, monkeypatch):
    from augmentgen.metrics import scores as scores_module
    from tests.metrics.fakes import SquareTeacher

    class FirstClass(torch.nn.Module):
        """Calls every image class 0: a third of the validation images right."""

        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, images):
            return torch.nn.functional.one_hot(torch.zeros(len(images), dtype=torch.long), 3).float() + self.anchor

    # Known classifiers instead of trained ones: B gets a third right, B + rows every image.
    monkeypatch.setattr(scores_module, "train_classifier", lambda **kw: SquareTeacher() if kw.get("synthetic_mix")
                        else FirstClass())
    train, test = split
    kw = dict(seed=0, candidate_ratios=(0.0, 0.5), include_noaug=False, baselines="none", controls="none", **FAST)
    mixed = downstream_gain(RealImagesGenerator(train), train, test, **kw)
    held = downstream_gain(RealImagesGenerator(train), train, test, min_validation_z=1e9, **kw)
    assert mixed["selection"] == held["selection"] == {"none@0": pytest.approx(1 / 3), "plain@0.5": 1.0}
    # 6 of 9 validation images (3 per class) only the rows' classifier gets right: z = 6 / sqrt(6).
    assert mixed["min_validation_z"] == 1.0 and mixed["method"] == "plain" and mixed["acc_mixed"] == 1.0
    assert mixed["validation_margin"] == {"candidate": "plain@0.5", "against": "none@0", "gain": pytest.approx(2 / 3),
                                          "se": pytest.approx(6**0.5 / 9), "z": pytest.approx(6**0.5), "min_z": 1.0,
                                          "held_back": False}
    assert held["method"] == "none" and held["validation_margin"]["held_back"]
    assert held["acc_mixed"] == held["acc_best_baseline"] == pytest.approx(1 / 3)
    assert "did not beat it on the validation split" not in held["verdict"]
    assert ("No synthetic method on top of it beat it on the validation split by more than 1e+09 standard errors "
            "(a smaller lead was held back, z = 2.45)") in held["verdict"]
