"""evaluate_generator: every metric in one report, each real-data classifier trained once."""

from __future__ import annotations

import json
import os

import pytest
import torch

import augmentgen.metrics.report as report_module
import augmentgen.metrics.scores as scores_module
from augmentgen.errors import ConfigError
from augmentgen.metrics import downstream_gain
from augmentgen.metrics.report import evaluate_generator, format_report
from tests.conftest import make_images
from tests.metrics.fakes import FakeBar, RealImagesGenerator, interrupt_downstream_at

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


def test_the_report_says_how_far_the_rows_led_on_validation_and_whether_they_were_held_back():
    from augmentgen.metrics.report import format_downstream

    arm = {"acc_real_classic": 0.8, "acc_best_baseline": 0.8, "acc_mixed": 0.8, "acc_real_noaug": None,
           "score_real_classic": 0.8, "score_best_baseline": 0.8, "score_mixed": 0.8}
    margin = {"candidate": "plain@0.5", "against": "none@0", "gain": 0.01, "se": 0.0447, "z": 0.2236, "min_z": 1.0,
              "held_back": True}
    down = {**arm, "seed": 0, "metric": "accuracy", "best_baseline": "classic", "baseline_selection": None,
            "selection": {"none@0": 0.94, "plain@0.5": 0.95}, "method": "none", "ratio": 0.0,
            "acc_teacher_control": None, "validation_margin": margin}
    text = format_downstream(down)
    assert ("  plain@0.5 leads none@0 by +1.0 pts on the same validation images, z = 0.22 standard errors: not "
            "more than 1, so it is not mixed (--min-validation-z)") in text
    assert [line for line in text.splitlines() if "<- chosen" in line] == [f"    {'none@0 (B alone)':61s}  94.0%  <- chosen"]
    assert ("verdict: do not mix. Best baseline on the validation split: classic. No synthetic method on top of it "
            "beat it on the validation split by more than 1 standard error (a smaller lead was held back, z = 0.22).") \
        in text
    mixed = format_downstream({**down, "method": "plain", "ratio": 0.5,
                               "validation_margin": {**margin, "z": 2.45, "held_back": False}})
    assert "z = 2.45 standard errors: more than 1, so it is mixed" in mixed


@pytest.fixture(scope="module")
def tiny_cgan():
    from augmentgen.models import build_config, build_generator

    torch.manual_seed(0)
    return build_generator(build_config("cgan", num_classes=3, class_names=[f"class{c}" for c in range(3)],
                                        generator_width=8, latent_dim=8))


def _counting_samples(generator, monkeypatch) -> list[int]:
    """The number of images of every ``generator.sample`` call, in order."""
    calls, original = [], generator.sample

    def sample(labels, *args, **kwargs):
        calls.append(len(labels))
        return original(labels, *args, **kwargs)

    monkeypatch.setattr(generator, "sample", sample)
    return calls


def _same(a, b) -> bool:
    """Equal, NaN (a class with too few images) equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and a != a:
        return b != b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_one_sampled_set_serves_consistency_cas_distances_and_coverage(split, tiny_cgan, monkeypatch):
    train, test = split
    options = dict(steps=STEPS, per_class=6, seed=2, candidate_ratios=(0.0, 0.5), baselines="none",
                   controls="none", device="cpu")
    calls = _counting_samples(tiny_cgan, monkeypatch)
    torch.manual_seed(0)  # KID draws its subsets from the global stream
    report = evaluate_generator(tiny_cgan, train, test, **options)
    measured = [n for n in calls if n == 18]
    assert calls[0] == 18 and len(measured) == 1  # once, 6 images of each of 3 classes (it was four times)

    # As before: each metric samples the same seeded set on its own (synthetic= dropped).
    def sampling_alone(metric):
        return lambda *args, synthetic=None, **kwargs: metric(*args, **kwargs)

    for name in ("class_consistency", "classification_accuracy_score", "feature_distances", "coverage_report"):
        monkeypatch.setattr(report_module, name, sampling_alone(getattr(report_module, name)))
    calls.clear()
    torch.manual_seed(0)
    before = evaluate_generator(tiny_cgan, train, test, **options)
    assert len([n for n in calls if n == 18]) == 1 + 4  # its own set (unused here) and the four metrics'
    report.pop("seconds"), before.pop("seconds")
    assert [key for key in report if not _same(report[key], before[key])] == []  # bit-identical


def test_only_the_measured_set_is_sampled_without_synthetic_arms(split, tiny_cgan, monkeypatch):
    train, test = split
    calls = _counting_samples(tiny_cgan, monkeypatch)
    # Ratio 0 only: no downstream arm takes synthetic rows, so the four metrics' set is all that is sampled.
    report = evaluate_generator(tiny_cgan, train, test, steps=2, per_class=5, candidate_ratios=(0.0,),
                                baselines="none", controls="none", device="cpu")
    assert calls == [15] and report["cas"]["per_class"] == 5 and report["distances"]["n_synthetic"] == 15


def test_a_shared_synthetic_set_is_checked_against_the_generator(split, tiny_cgan):
    from augmentgen.data import LabelledImages
    from augmentgen.errors import DataError
    from augmentgen.metrics import (
        class_consistency,
        feature_distances,
        sample_uint8_per_class,
        train_classifier,
    )

    train, test = split
    reference = train_classifier(train, seed=0, steps=2, device="cpu").eval()
    synthetic = sample_uint8_per_class(tiny_cgan, 4, seed=0)
    # The set given is the set measured: the same figures as sampling it with those arguments.
    assert class_consistency(tiny_cgan, reference, 4, synthetic=synthetic) == class_consistency(tiny_cgan, reference, 4)
    with pytest.raises(ConfigError, match=r"synthetic holds \[4, 4, 4\] images per class but per_class=100; "
                                          r"pass per_class=4"):
        class_consistency(tiny_cgan, reference, synthetic=synthetic)
    wrong_shape = LabelledImages(torch.zeros(6, 3, 28, 28, dtype=torch.uint8), torch.arange(3).repeat(2))
    with pytest.raises(DataError, match=r"feature_distances: synthetic holds \(3, 28, 28\) images but the "
                                        r"generator makes \(1, 28, 28\)"):
        feature_distances(tiny_cgan, reference, test, per_class=2, synthetic=wrong_shape)
    two_classes = LabelledImages(synthetic.images[:8], synthetic.labels[:8], ["a", "b"])
    with pytest.raises(DataError, match="synthetic has 2 classes, the generator 3"):
        class_consistency(tiny_cgan, reference, 4, synthetic=two_classes)


def test_a_bank_of_free_samples_is_filled_once_and_validation_draws_its_head(split, monkeypatch):
    from augmentgen.metrics import downstream_plan, validation_split
    from augmentgen.mixing import SyntheticPool

    train, test = split
    generator = RealImagesGenerator(train)
    options = dict(steps=STEPS, seed=0, candidate_ratios=(0.25, 0.5), methods=("plain", "weighted"),
                   baselines="none", controls="none", include_noaug=False)
    calls = _counting_samples(generator, monkeypatch)
    live = downstream_gain(generator, train, test, **options)
    live_calls = len(calls)
    calls.clear()
    heads, real_head = [], SyntheticPool.head
    monkeypatch.setattr(SyntheticPool, "head", lambda pool, n: heads.append(n) or real_head(pool, n))
    banked = downstream_gain(generator, train, test, bank_per_image=2, **options)

    fit, _ = validation_split(train, 0.2, seed=0)
    # One bank of free samples (plain and weighted draw the same ones), sized for the final arm: 2 x
    # the training data's largest class per class, filled once. The four validation candidates draw
    # its head, 2 x the fit part's largest class, the final arm all of it (free samples depend on no
    # real image, so one bank serves both where two were filled). Nothing is sampled in the steps.
    assert calls == [3 * 2 * 16] and banked["bank_fills"] == 1 and banked["bank_per_image"] == 2
    assert heads == [2 * max(fit.class_counts)] * 4
    assert live_calls > 4 * STEPS and live["bank_per_image"] is None and live["bank_fills"] == 0
    assert set(banked["selection"]) == set(live["selection"])
    assert downstream_plan(train, **{k: options[k] for k in ("candidate_ratios", "methods", "baselines")},
                           bank_per_image=2)["bank_fills"] == 1


def test_filter_filters_the_one_bank_of_free_samples_by_each_teacher_sampling_nothing_more(split, monkeypatch):
    from augmentgen.metrics import downstream_plan, validation_split
    from augmentgen.mixing import SyntheticPool

    train, test = split
    generator = RealImagesGenerator(train)
    options = dict(steps=STEPS, seed=0, candidate_ratios=(0.25, 0.5), methods=("plain", "filter"),
                   baselines="none", controls="none", include_noaug=False, bank_per_image=2)
    calls = _counting_samples(generator, monkeypatch)
    filtered, real_filtered = [], SyntheticPool.filtered
    # Recorded, then run at threshold 0 (every image kept): this test's teachers of 20 steps accept
    # too little for every class to keep an image at the method's 0.5.
    monkeypatch.setattr(SyntheticPool, "filtered", lambda pool, teacher, threshold: filtered.append(
        (pool.per_class, id(teacher), threshold)) or real_filtered(pool, teacher, 0.0))
    report = downstream_gain(generator, train, test, **options)
    fit, _ = validation_split(train, 0.2, seed=0)
    # One fill of free samples; the validation candidates at both ratios share one filtered head (B's
    # classifier on the fit part as the teacher) and the final arm, had it chosen filter, filters all of it.
    assert calls == [3 * 2 * 16] and report["bank_fills"] == 1
    assert filtered[0][0] == 2 * max(fit.class_counts) and filtered[0][2] == 0.5
    assert len(filtered) == 1 + (report["method"] == "filter")
    if report["method"] == "filter":
        assert filtered[1][0] == 2 * 16 and filtered[1][1] != filtered[0][1]
    assert report["selection"]["filter@0.25"] is not None and report["selection"]["filter@0.5"] is not None
    assert downstream_plan(train, **{k: options[k] for k in ("candidate_ratios", "methods", "baselines")},
                           bank_per_image=2)["bank_fills"] == 1


def test_a_slow_family_is_evaluated_from_a_bank_unless_told_otherwise(split, monkeypatch):
    from augmentgen.families.ddpm import DDPMGenerator
    from augmentgen.metrics import downstream_plan
    from augmentgen.metrics.report import evaluation_plan

    class SlowSampler(RealImagesGenerator):  # as ddpm declares it: many network passes per image
        default_bank_per_image = 2

    assert DDPMGenerator.default_bank_per_image == 4 and RealImagesGenerator.default_bank_per_image is None
    train, test = split
    generator = SlowSampler(train)
    options = dict(steps=STEPS, seed=0, candidate_ratios=(0.5,), baselines="none", controls="none",
                   include_noaug=False)
    calls = _counting_samples(generator, monkeypatch)
    auto = downstream_gain(generator, train, test, **options)  # bank_per_image="auto", the default
    assert auto["bank_per_image"] == 2 and auto["bank_fills"] >= 1 and len(calls) == auto["bank_fills"]
    calls.clear()
    live = downstream_gain(generator, train, test, bank_per_image=None, **options)
    assert live["bank_per_image"] is None and live["bank_fills"] == 0 and len(calls) > STEPS
    plan = evaluation_plan(train, candidate_ratios=(0.5,), bank_per_image="auto", generator=generator)
    assert plan["bank_per_image"] == 2 and plan["bank_fills"] > 0
    assert evaluation_plan(train, bank_per_image="auto", generator=RealImagesGenerator(train))["bank_fills"] == 0
    with pytest.raises(ConfigError, match="bank_per_image='auto' is the generator's family default: pass generator="):
        downstream_plan(train, bank_per_image="auto")


def test_the_default_candidates_add_rows_made_from_real_images_where_the_family_makes_them(split):
    from augmentgen.metrics.report import evaluation_plan
    from augmentgen.metrics.scores import resolve_methods
    from augmentgen.models import build_config, build_generator

    train, _ = split
    ae = build_generator(build_config("ae", num_classes=3, class_names=train.class_names, encoder_width=8,
                                      decoder_width=8, latent_dim=8))
    assert resolve_methods("auto", ae) == ("plain", "vary")
    assert resolve_methods("auto", RealImagesGenerator(train)) == ("plain",)  # no vary: free samples only
    assert resolve_methods(["soft"], ae) == ["soft"]  # what the user names is kept
    plan = evaluation_plan(train, generator=ae)  # evaluate_generator's defaults, resolved as it resolves them
    assert plan["methods"] == ["plain", "vary"] and plan["bank_per_image"] == ae.default_bank_per_image
    explicit = evaluation_plan(train, methods=["plain", "vary"], bank_per_image=ae.default_bank_per_image)
    assert plan["classifier_runs"] == explicit["classifier_runs"]
    with pytest.raises(ConfigError, match="methods='auto' is the generator's family default: pass generator="):
        evaluation_plan(train, methods="auto", bank_per_image=None)
    with pytest.raises(ConfigError, match="bank_per_image='auto' is the generator's family default: pass generator="):
        evaluation_plan(train)


def test_the_plan_has_the_evaluation_defaults():
    """The plan printed before an evaluation counts what evaluate_generator trains by default."""
    import inspect

    from augmentgen.metrics.report import evaluation_plan

    plan, evaluation = (inspect.signature(f).parameters for f in (evaluation_plan, evaluate_generator))
    shared = set(plan) & set(evaluation) - {"train_data", "generator"}  # the plan's generator is optional
    assert {"methods", "bank_per_image", "candidate_ratios", "baselines", "controls", "repeats"} <= shared
    assert {name: plan[name].default for name in shared} == {name: evaluation[name].default for name in shared}


def test_a_variation_bank_never_sees_the_validation_images(split, monkeypatch):
    from augmentgen.metrics import validation_split
    from augmentgen.mixing import SyntheticPool
    from augmentgen.models import build_config, build_generator

    train, test = split
    ae = build_generator(build_config("ae", num_classes=3, class_names=train.class_names, encoder_width=8,
                                      decoder_width=8, latent_dim=8)).eval()
    made, original = [], SyntheticPool.from_variations.__func__

    def recording(cls, source, images, labels, **kwargs):
        made.append((images.clone(), kwargs["per_image"]))
        return original(cls, source, images, labels, **kwargs)

    monkeypatch.setattr(SyntheticPool, "from_variations", classmethod(recording))
    report = downstream_gain(ae, train, test, steps=4, seed=0, candidate_ratios=(0.5, 1.0), methods=("vary:0.3",),
                             baselines="none", controls="none", include_noaug=False, bank_per_image=1)
    fit, _ = validation_split(train, 0.2, seed=0)
    assert torch.equal(made[0][0], fit.images) and made[0][1] == 1  # one bank for both ratios
    assert len(made) == report["bank_fills"] == 2 and torch.equal(made[1][0], train.images)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_a_bad_bank_size_is_refused_before_any_classifier_trains(split, monkeypatch, bad):
    from augmentgen.metrics import downstream_plan

    train, test = split
    monkeypatch.setattr(scores_module, "train_classifier", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(report_module, "train_classifier", lambda *a, **k: pytest.fail("trained"))
    generator = RealImagesGenerator(train)
    for call in (evaluate_generator, downstream_gain):
        with pytest.raises(ConfigError, match=rf"bank_per_image takes .* an int >= 1 .*got {bad!r}"):
            call(generator, train, test, steps=2, bank_per_image=bad)
    with pytest.raises(ConfigError, match="bank_per_image"):
        downstream_plan(train, bank_per_image=bad)


def test_the_plan_counts_the_bank_fills(split):
    from augmentgen.metrics.report import evaluation_plan

    train, _ = split
    methods = ("plain", "soft", "filter", "vary:0.3", "vary:0.7")
    # Per seed: free samples (plain, soft, and filter, which filters them), two vary strengths, then
    # the final arm's.
    plan = evaluation_plan(train, methods=methods, repeats=2, bank_per_image=3)
    assert plan["bank_fills"] == 2 * 4 and plan["bank_per_image"] == 3
    # Free samples only (plain, soft, weighted, filter): one bank, the final arm's, whose head validation draws.
    for free in (("plain", "soft", "weighted"), ("plain", "filter")):
        assert evaluation_plan(train, methods=free, bank_per_image=3)["bank_fills"] == 1
    assert evaluation_plan(train, methods=methods, bank_per_image=None)["bank_fills"] == 0
    assert evaluation_plan(train, methods=methods, candidate_ratios=(0.0,), bank_per_image=3)["bank_fills"] == 0


def test_the_sampling_phases_are_named_and_counted(split, tiny_cgan):
    from augmentgen.models import sampling_progress
    from tests.conftest import RecordingBar

    train, test = split
    bar, images = FakeBar(100), RecordingBar(total=None, disable=False)
    made, sample = [], type(tiny_cgan).sample

    def counted_sample(labels, *args, **kwargs):
        made.append(len(labels))
        return sample(tiny_cgan, labels, *args, **kwargs)

    with sampling_progress(images), pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiny_cgan, "sample", counted_sample)
        evaluate_generator(tiny_cgan, train, test, steps=2, per_class=4, candidate_ratios=(0.0, 0.5), baselines="none",
                           controls="none", device="cpu", progress=bar, bank_per_image=1)
    assert "sampling 12 synthetic images (consistency, CAS, distances, coverage)" in bar.postfix
    assert bar.postfix.index("reference classifier (classic)") < bar.postfix.index(
        "sampling 12 synthetic images (consistency, CAS, distances, coverage)")
    assert "validation: filling a bank of synthetic rows (free)" in bar.postfix
    # Every image the generator made advanced the images bar: the measured set, then the banks'
    # (inside their own, hidden, bars).
    assert made[0] == 12 and len(made) > 1 and images.n == sum(made)


def _comparable(report: dict) -> str:
    """A report as JSON without what differs between a resumed call and one run through: its time
    and the seeds it read from the checkpoint."""
    import json

    from augmentgen.metrics.eval_checkpoint import as_json_values

    return json.dumps(as_json_values({k: v for k, v in report.items() if k not in ("seconds", "resumed_seeds")}),
                      sort_keys=True)


def test_a_bank_folder_keeps_the_banks_and_a_later_call_reads_them_instead_of_sampling(split, tmp_path,
                                                                                        monkeypatch):
    train, test = split
    generator = RealImagesGenerator(train)
    options = dict(steps=STEPS, seed=0, candidate_ratios=(0.5,), methods=("plain", "weighted"), baselines="none",
                   controls="none", include_noaug=False, bank_per_image=2, bank_folder=tmp_path / "banks")
    calls = _counting_samples(generator, monkeypatch)
    first = downstream_gain(generator, train, test, **options)
    assert calls == [3 * 2 * 16] and first["bank_fills"] == 1
    assert len(list((tmp_path / "banks").glob("seed0-*.safetensors"))) == 1
    calls.clear()
    again = downstream_gain(generator, train, test, **options)
    assert calls == [] and again["bank_fills"] == 0  # read back, not sampled
    assert again["acc_mixed"] == first["acc_mixed"] and again["selection"] == first["selection"]
    # Another seed is another bank.
    downstream_gain(generator, train, test, **{**options, "seed": 1})
    assert len(calls) == 1 and len(list((tmp_path / "banks").glob("*.safetensors"))) == 2
    calls.clear()
    with pytest.raises(ConfigError, match=r"bank_folder must be a folder path or None \(a str or os.PathLike\), "
                                          "got the int 3"):
        downstream_gain(generator, train, test, **{**options, "bank_folder": 3})
    (tmp_path / "notes").write_text("mine")
    with pytest.raises(ConfigError, match="bank_folder .*notes is an existing file, not a folder; pass a folder path"):
        downstream_gain(generator, train, test, **{**options, "bank_folder": tmp_path / "notes"})
    with pytest.raises(ConfigError, match="banks cannot be created: .*notes is a file; choose another folder path"):
        downstream_gain(generator, train, test, **{**options, "bank_folder": tmp_path / "notes" / "banks"})

    def read_only(*args, **kwargs):  # root ignores permission bits: a read-only filesystem
        raise OSError(30, os.strerror(30))

    monkeypatch.setattr("augmentgen._io.tempfile.mkstemp", read_only)
    with pytest.raises(ConfigError, match="bank_folder .*banks is not writable: Read-only file system"):
        downstream_gain(generator, train, test, **options)
    assert calls == []  # refused before any bank was filled


def test_a_seed_killed_after_its_bank_was_filled_reads_it_back_and_its_banks_go_when_it_is_saved(
        split, tmp_path, monkeypatch):
    train, test = split
    generator = RealImagesGenerator(train, shift=1)
    options = dict(steps=STEPS, per_class=10, seed=3, repeats=2, baselines="none", controls="none",
                   candidate_ratios=(0.0, 0.5), bank_per_image=2)
    through = evaluate_generator(generator, train, test, checkpoint_file=tmp_path / "through.json", **options)
    assert not (tmp_path / "through.banks").exists()  # every seed saved: no bank left

    # Killed in seed 4's first classifier that mixes synthetic rows: its bank is filled and kept.
    train_classifier = scores_module.train_classifier

    def killed(*args, **kwargs):
        if kwargs["seed"] == 4 and kwargs.get("synthetic_mix") is not None:
            raise KeyboardInterrupt
        return train_classifier(*args, **kwargs)

    monkeypatch.setattr(scores_module, "train_classifier", killed)
    with pytest.raises(KeyboardInterrupt):
        evaluate_generator(generator, train, test, checkpoint_file=tmp_path / "killed.json", **options)
    monkeypatch.undo()
    kept = sorted(p.name for p in (tmp_path / "killed.banks").iterdir())
    assert kept and all(name.startswith("seed4-") for name in kept)  # seed 3's went when it was saved

    # A file written before this bank scheme (its validation candidates had banks of their own) is
    # refused, naming the setting, rather than mixed with seeds drawn otherwise.
    from augmentgen.errors import CheckpointError

    saved = json.loads((tmp_path / "killed.json").read_text())
    assert saved["identity"]["bank_scheme"] == report_module.BANK_SCHEME
    del saved["identity"]["bank_scheme"]
    (tmp_path / "older.json").write_text(json.dumps(saved))
    with pytest.raises(CheckpointError, match=r"another evaluation \(bank_scheme: null there, one free bank"):
        evaluate_generator(generator, train, test, checkpoint_file=tmp_path / "older.json", **options)

    calls = _counting_samples(generator, monkeypatch)
    resumed = evaluate_generator(generator, train, test, checkpoint_file=tmp_path / "killed.json", **options)
    assert calls == []  # seed 4's bank read back, seed 3 read from the checkpoint
    assert _comparable(resumed) == _comparable(through) and resumed["resumed_seeds"] == [3]
    assert not (tmp_path / "killed.banks").exists()


def test_a_killed_evaluation_resumes_from_its_finished_seeds(split, tmp_path, monkeypatch):
    from augmentgen.errors import CheckpointError

    train, test = split
    generator = RealImagesGenerator(train, shift=1)
    options = dict(steps=STEPS, per_class=10, seed=3, baselines="none", controls="none", candidate_ratios=(0.0, 0.5))
    through = evaluate_generator(generator, train, test, repeats=3, checkpoint_file=tmp_path / "through.json",
                                 **options)
    assert through["resumed_seeds"] == [] and through["downstream_seeds"]["seeds"] == [3, 4, 5]

    # Killed while the third seed trains: the first two are on disk.
    interrupt_downstream_at(monkeypatch, seed=5)
    with pytest.raises(KeyboardInterrupt):
        evaluate_generator(generator, train, test, repeats=3, checkpoint_file=tmp_path / "killed.json", **options)
    monkeypatch.undo()

    # Resumed: only seed 5 trains, and the report is the one of the run that was never killed.
    trained, train_classifier = [], scores_module.train_classifier
    counting = lambda *a, **k: trained.append(k["seed"]) or train_classifier(*a, **k)  # noqa: E731
    monkeypatch.setattr(scores_module, "train_classifier", counting)
    monkeypatch.setattr(report_module, "train_classifier", counting)
    bar = FakeBar(total=None)
    resumed = evaluate_generator(generator, train, test, repeats=3, checkpoint_file=tmp_path / "killed.json",
                                 progress=bar, **options)
    assert resumed["resumed_seeds"] == [3, 4] and set(trained) == {5}
    assert _comparable(resumed) == _comparable(through)
    assert bar.n == resumed["classifier_runs"]  # the seeds read count on the bar as if trained

    # More repeats add seeds to a finished evaluation; the first three are read, not trained again.
    trained.clear()
    more = evaluate_generator(generator, train, test, repeats=4, checkpoint_file=tmp_path / "killed.json", **options)
    assert set(trained) == {6} and more["downstream_seeds"]["delta"][:3] == through["downstream_seeds"]["delta"]

    # Another evaluation's file is refused before anything trains, naming what differs.
    trained.clear()
    with pytest.raises(CheckpointError, match=r"holds the finished seeds of another evaluation \(steps: 20 there, "
                                              r"21 here\); nothing was computed"):
        evaluate_generator(generator, train, test, repeats=3, checkpoint_file=tmp_path / "killed.json",
                           **{**options, "steps": STEPS + 1})
    assert trained == []
    (tmp_path / "torn.json").write_text('{"identity": ')
    with pytest.raises(CheckpointError, match="is not a file augmentgen wrote intact. Delete it"):
        evaluate_generator(generator, train, test, checkpoint_file=tmp_path / "torn.json", **options)

    # A file written before the guard decided its seeds with any lead mixing: it resumes with
    # min_validation_z=0, and the default names that setting as what differs.
    saved = json.loads((tmp_path / "killed.json").read_text())
    assert saved["identity"]["min_validation_z"] == 1.0
    assert saved["identity"]["bank_scheme"] is None  # no bank: a file without the key still resumes
    del saved["identity"]["min_validation_z"], saved["identity"]["bank_scheme"]
    (tmp_path / "older.json").write_text(json.dumps(saved))
    with pytest.raises(CheckpointError, match=r"another evaluation \(min_validation_z: 0.0 there, 1.0 here\)"):
        evaluate_generator(generator, train, test, repeats=3, checkpoint_file=tmp_path / "older.json", **options)
    older = evaluate_generator(generator, train, test, repeats=3, checkpoint_file=tmp_path / "older.json",
                               min_validation_z=0.0, **options)
    assert older["resumed_seeds"] == [3, 4, 5] and trained == []

