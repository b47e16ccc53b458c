"""Bad arguments of evaluate_generator and downstream_gain fail with one augmentgen error that names
the problem and the fix, before any classifier trains (each takes minutes at the default budget)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import augmentgen.metrics.report as report_module
import augmentgen.metrics.scores as scores_module
from augmentgen.data import LabelledImages
from augmentgen.errors import ConfigError, DataError
from augmentgen.metrics import downstream_gain
from augmentgen.metrics.report import evaluate_generator, evaluation_plan
from tests.conftest import make_images
from tests.metrics.fakes import RealImagesGenerator


class Trained(Exception):
    """A classifier started training: the arguments were accepted."""


@pytest.fixture
def no_training(monkeypatch):
    """Every train_classifier the metrics use raises Trained (the tests below expect none to run)."""
    def refuse(*args, **kwargs):
        raise Trained(kwargs.get("train_data", args[0] if args else None))

    monkeypatch.setattr(scores_module, "train_classifier", refuse)
    monkeypatch.setattr(report_module, "train_classifier", refuse)


@pytest.fixture(scope="module")
def split():
    return make_images(n_per_class=8, num_classes=3, seed=0), make_images(n_per_class=4, num_classes=3, seed=1)


@pytest.fixture(scope="module")
def cgan():
    from augmentgen.models import build_config, build_generator

    return build_generator(build_config("cgan", num_classes=3, class_names=[f"class{c}" for c in range(3)],
                                        generator_width=8, latent_dim=8))


BAD_CHOICES = [
    (dict(methods=["plian"]), "unknown mixing method 'plian'"),
    (dict(methods="plain,weighted"), r"got the string 'plain,weighted': pass methods=\['plain', 'weighted'\]"),
    (dict(methods=5), r"methods takes a list of mixing method names, got 5: pass methods=\['plain'\]"),
    (dict(controls=["mixup"]), "unknown control 'mixup': choose from real-rows, pixel-mix"),
    (dict(baselines="strnog"), "unknown baseline 'strnog'; baselines are 'strong', 'none' or names from"),
    (dict(metric="acc"), "metric must be 'auto', 'accuracy' or 'balanced'"),
    (dict(candidate_ratios="0.5"),
     r"candidate_ratios takes a list of numbers >= 0 \(synthetic rows per real row\), got the string '0.5': "
     r"pass candidate_ratios=\[0.5\]"),
    (dict(candidate_ratios="0,0.5"), r"got the string '0,0.5': pass candidate_ratios=\[0.0, 0.5\]"),
    (dict(candidate_ratios=0.5), r"got 0.5: pass candidate_ratios=\[0.5\]"),
    (dict(candidate_ratios=[]), r"candidate_ratios=\[\] names no ratio: pass at least one"),
    (dict(candidate_ratios=[0, -0.5]), r"numbers >= 0 \(synthetic rows per real row\) like \[0, 0.25, 0.5, 1\]; "
                                       r"got -0.5 in \[0, -0.5\]"),
    (dict(candidate_ratios=[math.nan]), r"got nan in \[nan\]"),
    (dict(candidate_ratios=[math.inf]), r"got inf in \[inf\]"),
    (dict(candidate_ratios=["0.5"]), r"got '0.5' in \['0.5'\]"),
    (dict(candidate_ratios=[True]), r"got True in \[True\]"),
    (dict(seed="0"), "seed must be an int .*, got '0'"),
    (dict(seed=1.5), "seed must be an int .*, got 1.5"),
    # a negative seed ran (the subsets refused it), one of 2**64 failed inside torch after training began
    (dict(seed=-1), r"seed must be an int >= 0 \(it seeds the classifiers, the sampling and the validation "
                    r"split\), got -1; pass one from 0 to 2\*\*63 - 1, like seed=0"),
    (dict(seed=2**64), "seed must be an int >= 0 .*, got 18446744073709551616"),
    (dict(device="gpu"), r"device='gpu' is not a device; use 'cpu', 'cuda', 'cuda:N' or 'mps'"),
]


@pytest.mark.parametrize("kwargs, message", BAD_CHOICES)
def test_evaluate_generator_refuses_bad_choices_before_training(split, no_training, kwargs, message):
    train, test = split
    with pytest.raises(ConfigError, match=message):
        evaluate_generator(RealImagesGenerator(train), train, test, steps=1, **kwargs)


@pytest.mark.parametrize("kwargs, message", BAD_CHOICES + [
    (dict(ratio=-1.0), r"ratio takes one of the numbers >= 0 \(synthetic rows per real row\), like ratio=0.5; "
                       "got -1.0"),
    (dict(ratio="0.5"), "ratio takes one of the numbers >= 0 .* got '0.5'"),
    (dict(mode="append-rows"), "mode must be 'append' or 'replace', got 'append-rows'"),
    (dict(mode="replace", candidate_ratios=[0.5, 2.0]),
     r"numbers in \[0, 1\] \(the share of each batch replaced, mode='replace'\) .* got 2.0 in \[0.5, 2.0\]"),
])
def test_downstream_gain_refuses_bad_choices_before_training(split, no_training, kwargs, message):
    train, test = split
    with pytest.raises(ConfigError, match=message):
        downstream_gain(RealImagesGenerator(train), train, test, steps=1, **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(per_class=0), r"per_class must be a positive int \(synthetic images of each class\), got 0; "
                        "pass per_class=N with N >= 1"),
    (dict(per_class=True), "per_class must be a positive int .*, got True"),
    (dict(per_class=2.5), "per_class must be a positive int .*, got 2.5"),
    (dict(repeats=0), r"repeats must be a positive int \(paired seeds of the downstream gain\), got 0"),
    (dict(repeats=2.5), "repeats must be a positive int .*, got 2.5; pass repeats=N with N >= 1"),
    (dict(repeats="3"), "repeats must be a positive int .*, got '3'; pass repeats=3"),
    (dict(repeats=True), "repeats must be a positive int .*, got True"),
])
def test_evaluate_generator_refuses_bad_counts_before_training(split, no_training, kwargs, message):
    train, test = split
    with pytest.raises(ConfigError, match=message):
        evaluate_generator(RealImagesGenerator(train), train, test, steps=1, **kwargs)


@pytest.mark.parametrize("call", [evaluate_generator, downstream_gain])
def test_a_variation_method_needs_a_generator_that_can_vary(split, cgan, no_training, call):
    train, test = split
    with pytest.raises(ConfigError, match=r"methods: vary: the cgan family cannot vary real images \(it has no "
                                          r"encoder or noising chain\).*; or drop 'vary' from methods"):
        call(cgan, train, test, steps=1, methods=["plain", "vary"])


def test_a_numpy_seed_is_taken_as_an_int(split, no_training):
    # np.int64(3) passed the check, then torch's manual_seed refused it: "TypeError: an integer is required"
    train, test = split
    with pytest.raises(Trained):
        downstream_gain(RealImagesGenerator(train), train, test, steps=1, seed=np.int64(3))


@pytest.mark.parametrize("call", [evaluate_generator, downstream_gain])
def test_arguments_in_the_wrong_order_are_named(split, no_training, call):
    train, test = split
    name = call.__name__
    with pytest.raises(ConfigError, match=rf"{name} takes a generator first .*got the LabelledImages .*call it as "
                                          rf"{name}\(generator, train_data, test_data\)"):
        call(train, RealImagesGenerator(train), test, steps=1)


@pytest.mark.filterwarnings("ignore:the generator names its classes otherwise")  # a pair has no class names
@pytest.mark.parametrize("call", [evaluate_generator, downstream_gain])
def test_images_and_labels_pairs_are_data_too(split, no_training, call):
    """A (images, labels) pair passes the checks as downstream_gain always took it: the first
    classifier is reached (here it stops there), for evaluate_generator with the same images."""
    train, test = split
    with pytest.raises(Trained) as trained:
        call(RealImagesGenerator(train), (train.images, train.labels), (test.images, test.labels), steps=1)
    first = trained.value.args[0]
    assert isinstance(first, LabelledImages)
    if call is evaluate_generator:  # the reference classifier; downstream_gain starts on a validation split
        assert torch.equal(first.images, train.images) and torch.equal(first.labels, train.labels)
    with pytest.raises(DataError, match="expected LabelledImages or"):
        call(RealImagesGenerator(train), train.images, test, steps=1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("call", [evaluate_generator, downstream_gain])
def test_a_cuda_device_without_cuda_is_refused_before_training(split, no_training, call):
    train, test = split
    generator = RealImagesGenerator(train)
    with pytest.raises(ConfigError, match=r"device='cuda': no CUDA GPU is available here .*use 'cpu', or device=None"):
        call(generator, train, test, steps=1, device="cuda")
    assert generator.device.type == "cpu"


def test_evaluation_plan_refuses_what_evaluate_generator_refuses(split):
    train, _ = split
    generator = RealImagesGenerator(train)
    with pytest.raises(ConfigError, match=r"got the string '0.5': pass candidate_ratios=\[0.5\]"):
        evaluation_plan(train, candidate_ratios="0.5", generator=generator)
    with pytest.raises(ConfigError, match="repeats must be a positive int .*, got 2.5"):
        evaluation_plan(train, repeats=2.5, generator=generator)


@pytest.mark.parametrize("kwargs, match", [
    (dict(baselines=5), r"baselines takes 'strong', 'none' or a list of names from \[.*\], got the int 5"),
    (dict(controls=5), r"controls takes 'none', 'all' or a list of names from \[.*\], got the int 5"),
])
def test_baselines_and_controls_of_the_wrong_kind_are_config_errors(kwargs, match):
    from augmentgen.metrics.baselines import check_baselines
    from augmentgen.metrics.controls import resolve_controls

    with pytest.raises(ConfigError, match=match):
        check_baselines(kwargs["baselines"]) if "baselines" in kwargs else resolve_controls(kwargs["controls"])


# ----------------------------------------------- the budget and the run's other arguments, of the wrong type or value
BAD_RUN = [
    (dict(baselines=5), r"baselines takes 'strong', 'none' or a list of names from \[.*\], got the int 5"),
    (dict(controls=5), r"controls takes 'none', 'all' or a list of names from \[.*\], got the int 5"),
    (dict(steps="3"), r"steps must be a positive int \(optimizer steps of every classifier\), got '3'; pass steps=3"),
    (dict(steps=0), r"steps must be a positive int .*, got 0; pass steps=N with N >= 1"),
    (dict(steps=2.5), r"steps must be a positive int .*, got 2.5; pass steps=N with N >= 1"),
    (dict(steps=None), r"steps must be a positive int .*, got None; pass steps=N with N >= 1"),
    (dict(steps=True), r"steps must be a positive int .*, got True"),
    (dict(epochs="1"), r"epochs must be a finite number > 0 \(passes over the real training data\), got '1'; "
                       r"or epochs=None to budget every classifier in steps"),
    (dict(epochs=-1), r"epochs must be a finite number > 0 .*, got -1"),
    (dict(epochs=math.nan), r"epochs must be a finite number > 0 .*, got nan"),
    (dict(epochs=1, min_steps="2"), r"min_steps must be an int >= 0 \(the fewest steps of an epochs budget\), "
                                    r"got '2'; pass min_steps=2"),
    (dict(min_steps=-1), r"min_steps must be an int >= 0 .*, got -1; pass min_steps=N with N >= 0"),
    (dict(balance=5), r"balance must be None, 'uniform', 'inverse-frequency' or a \{class: weight\} dict, got 5; "
                      r"or 'auto'"),
    (dict(balance="unifrom"), r"balance must be .*, got 'unifrom'"),
    (dict(balance={7: 1.0}), r"balance key 7 is not a class index in \[0, 2\]"),
    (dict(progress=5), r"progress takes a tqdm bar \(anything with update\(\), set_postfix_str\(\) and total\) or "
                       r"None, got the int 5"),
]


@pytest.mark.parametrize("kwargs, message", BAD_RUN)
def test_evaluate_generator_refuses_a_bad_budget_before_training(split, no_training, kwargs, message):
    train, test = split
    with pytest.raises(ConfigError, match=message):
        evaluate_generator(RealImagesGenerator(train), train, test, **{"steps": 1, **kwargs})


@pytest.mark.parametrize("kwargs, message", BAD_RUN + [
    (dict(batch_size="8"), r"batch_size must be a positive int \(images of each step\), got '8'; pass batch_size=8"),
    (dict(batch_size=0), r"batch_size must be a positive int .*, got 0"),
    (dict(width="8"), r"width must be a positive int \(channels of the classifier's first stage\), got '8'"),
    (dict(width=0), r"width must be a positive int .*, got 0"),
    (dict(validation_fraction="0.2"), r"validation_fraction must be a number in \(0, 1\) \(the share of each "
                                      r"class held out to choose\), got '0.2'; like validation_fraction=0.2"),
    (dict(validation_fraction=1.5), r"validation_fraction must be a number in \(0, 1\) .*, got 1.5"),
    (dict(include_noaug="yes"), r"include_noaug must be True or False, got 'yes'"),
    (dict(real_classic_model=5), r"real_classic_model takes a classifier trained by train_classifier \(a "
                                 r"ReferenceClassifier\) or None, got the int 5"),
])
def test_downstream_gain_refuses_a_bad_budget_before_training(split, no_training, kwargs, message):
    train, test = split
    with pytest.raises(ConfigError, match=message):
        downstream_gain(RealImagesGenerator(train), train, test, **{"steps": 1, **kwargs})


@pytest.mark.parametrize("call", [evaluate_generator, downstream_gain])
def test_a_class_with_one_image_is_refused_before_training(no_training, call):
    """The validation split needs two images of each class: refused before the reference classifier
    (evaluate_generator used to train it and CAS first, then fail)."""
    train = make_images(n_per_class=3, num_classes=3).subset(torch.tensor([0, 1, 2, 3, 4, 5, 6]))  # class 2: one
    test = make_images(n_per_class=2, num_classes=3, seed=1)
    with pytest.raises(DataError, match=r"the validation split needs at least 2 training images of every class, "
                                        r"but class 'class2' has 1; pass more images of it"):
        call(RealImagesGenerator(make_images(n_per_class=2, num_classes=3)), train, test, steps=1)


def test_train_classifier_refuses_a_budget_of_the_wrong_type():
    from augmentgen.metrics import train_classifier

    data = make_images(n_per_class=2, num_classes=3)
    with pytest.raises(ConfigError, match=r"steps must be a positive int .*, got '3'; pass steps=3"):
        train_classifier(data, steps="3")
    with pytest.raises(ConfigError, match=r"batch_size must be a positive int .*, got 0"):
        train_classifier(data, steps=1, batch_size=0)
