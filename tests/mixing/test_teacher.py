"""SyntheticMix with a teacher: filtering, per-class floor, soft labels; TeacherLabels; weighted_cross_entropy."""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from augmentgen.errors import ConfigError, DataError
from augmentgen.mixing import SyntheticMix, TeacherLabels, augment_loader, weighted_cross_entropy
from tests.conftest import make_images
from tests.metrics.fakes import RealImagesGenerator, SquareTeacher, WrongClassGenerator

K = 3


@pytest.fixture(scope="module")
def data():
    return make_images(n_per_class=8)


@pytest.fixture(scope="module")
def real(data):
    return data.to_float(), data.labels  # a real batch in [-1, 1], 8 rows per class


@pytest.fixture
def teacher():
    return SquareTeacher()


def eval_logits(teacher, images):
    was = [(m, m.training) for m in teacher.modules()]
    teacher.eval()
    with torch.no_grad():
        out = teacher(images)
    for m, mode in was:
        m.training = mode
    return out


def predicted(teacher, images):
    return eval_logits(teacher, images).argmax(1)


# --------------------------------------------------------------------------- filtering
@pytest.mark.parametrize("label_dtype", [torch.long, torch.int32])
def test_filter_drops_exactly_the_classes_the_teacher_rejects_append(data, real, teacher, label_dtype):
    # Class 1 always comes out as class 2: the teacher rejects all of it, accepts all of 0 and 2.
    gen = WrongClassGenerator(data, [0.0, 1.0, 0.0])
    images, labels = real[0][:12], real[1][:12].to(label_dtype)
    mix = SyntheticMix(gen, 1.0, mode="append", balance="uniform", seed=0, teacher=teacher,
                       filter_threshold=0.5)  # 4 rows per class wanted
    out, out_labels, mask = mix(images, labels, return_mask=True)
    assert out.shape == (20, 1, 28, 28) and out.dtype == images.dtype and out.device == images.device
    assert out_labels.shape == (20,) and out_labels.dtype == label_dtype and mask.dtype == torch.bool
    assert mask.tolist() == [False] * 12 + [True] * 8
    assert torch.equal(out[:12], images) and torch.equal(out_labels[:12], labels)
    assert torch.bincount(out_labels[mask].long(), minlength=K).tolist() == [4, 0, 4]
    assert torch.equal(predicted(teacher, out[mask]), out_labels[mask].long())
    # oversample=4: 16 candidates per class in round 1; class 1's 4 empty rows get 16 more in round 2.
    assert mix.candidate_counts.tolist() == [16, 32, 16]
    assert mix.accepted_counts.tolist() == [16, 0, 16]
    assert mix.acceptance_rates().tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_filter_replace_keeps_real_rows_of_rejected_classes(data, real, teacher, dtype):
    gen = WrongClassGenerator(data, [0.0, 1.0, 0.0])
    images, labels = real
    images = ((images + 1) * 127.5).round().to(torch.uint8) if dtype == torch.uint8 else images
    mix = SyntheticMix(gen, 0.5, mode="replace", seed=1, teacher=teacher, filter_threshold=0.5)  # balance=None
    out, out_labels, mask = mix(images, labels, return_mask=True)
    assert out.shape == images.shape and out.dtype == dtype and mask.shape == (24,)
    assert torch.equal(out_labels, labels)  # balance=None keeps every label
    assert torch.equal(out[~mask], images[~mask])
    assert torch.equal(out[labels == 1], images[labels == 1]) and not mask[labels == 1].any()
    assert 0 < int(mask.sum()) < 12  # the 12 replaced rows minus those of class 1
    assert torch.equal(predicted(teacher, out[mask].float() / 127.5 - 1 if dtype == torch.uint8 else out[mask]),
                       labels[mask])
    assert mix.acceptance_rates()[1] == 0.0


def test_a_wholly_wrong_generator_adds_nothing(data, real, teacher):
    gen = RealImagesGenerator(data, shift=1)
    images, labels = real
    out, out_labels, mask = SyntheticMix(gen, 0.5, mode="append", seed=0, teacher=teacher,
                                         filter_threshold=0.5)(images, labels, return_mask=True)
    assert torch.equal(out, images) and torch.equal(out_labels, labels) and not mask.any()
    out, out_labels, mask = SyntheticMix(gen, 1.0, mode="replace", seed=0, teacher=teacher,
                                         filter_threshold=0.5)(images, labels, return_mask=True)
    assert torch.equal(out, images) and torch.equal(out_labels, labels) and not mask.any()


def test_min_acceptance_floor_drops_a_half_wrong_class(data, real, teacher):
    gen = WrongClassGenerator(data, [0.0, 0.5, 0.0])  # class 1: about half its samples accepted
    images, labels = real[0][:12], real[1][:12]
    kwargs = dict(mode="append", balance="uniform", seed=2, teacher=teacher, filter_threshold=0.5)
    free, floor_low, floor_high = (SyntheticMix(gen, 1.0, min_acceptance=m, **kwargs) for m in (0.0, 0.3, 0.7))
    for _ in range(3):
        for mix, expected in ((free, [4, 4, 4]), (floor_low, [4, 4, 4]), (floor_high, [4, 0, 4])):
            _, out_labels, mask = mix(images, labels, return_mask=True)
            assert torch.bincount(out_labels[mask], minlength=K).tolist() == expected
    rates = floor_high.acceptance_rates()
    assert rates[0] == 1.0 and rates[2] == 1.0 and 0.3 < rates[1] < 0.7
    # A floored class still gets its first-round candidates (16 a call), but no retry round.
    assert floor_high.candidate_counts.tolist() == [48, 48, 48]


def test_max_rounds_and_oversample(data, real, teacher):
    gen = WrongClassGenerator(data, [0.0, 0.5, 0.0])
    images, labels = real[0][:12], real[1][:12]
    kwargs = dict(mode="append", balance="uniform", seed=3, teacher=teacher, filter_threshold=0.5, oversample=1)
    one = SyntheticMix(gen, 1.0, max_rounds=1, **kwargs)
    _, out_labels, mask = one(images, labels, return_mask=True)
    # One candidate per row, one round: class 1 keeps exactly the rows whose candidate was accepted.
    assert one.candidate_counts.tolist() == [4, 4, 4]
    assert torch.bincount(out_labels[mask], minlength=K).tolist() == [4, int(one.accepted_counts[1]), 4]
    assert int(one.accepted_counts[1]) < 4  # (seed 3: some were rejected)
    many = SyntheticMix(gen, 1.0, max_rounds=40, **kwargs)
    _, out_labels, mask = many(images, labels, return_mask=True)
    assert torch.bincount(out_labels[mask], minlength=K).tolist() == [4, 4, 4]
    assert many.accepted_counts.tolist() == [4, 4, 4] and int(many.candidate_counts[1]) > 4


def test_filter_is_deterministic_with_a_seed(data, real, teacher):
    gen = WrongClassGenerator(data, [0.0, 0.5, 0.3])
    images, labels = real
    a, b, c = (SyntheticMix(gen, 0.5, mode=m, balance="uniform", seed=s, teacher=teacher, filter_threshold=0.5)
               for m, s in (("append", 7), ("append", 7), ("append", 8)))
    for _ in range(3):
        ra, rb, rc = (mix(images, labels, return_mask=True) for mix in (a, b, c))
        assert all(torch.equal(x, y) for x, y in zip(ra, rb))
        assert not torch.equal(ra[0][ra[2]], rc[0][rc[2]])
    assert torch.equal(a.candidate_counts, b.candidate_counts) and torch.equal(a.accepted_counts, b.accepted_counts)


def test_teacher_mode_is_restored(data, real, teacher):
    gen = WrongClassGenerator(data, [0.0, 0.5, 0.0])
    mix = SyntheticMix(gen, 0.5, seed=0, teacher=teacher, filter_threshold=0.5, soft_labels=True)
    teacher.train()
    mix(*real)
    assert teacher.training and teacher.dropout.training
    teacher.eval()
    teacher.dropout.train()  # mixed modes come back as they were
    mix(*real)
    assert not teacher.training and teacher.dropout.training


def test_one_host_read_per_call_when_the_first_round_fills(data, real, teacher, monkeypatch):
    # Counts the mixer's own reads of device values (Tensor.tolist called from mixing/batch.py or
    # from the teacher filter it runs, mixing/filter.py).
    reads = []
    tolist = torch.Tensor.tolist
    mine = (os.path.join("mixing", "batch.py"), os.path.join("mixing", "filter.py"))

    def counting(self):
        if sys._getframe(1).f_code.co_filename.endswith(mine):
            reads.append(1)
        return tolist(self)

    monkeypatch.setattr(torch.Tensor, "tolist", counting)
    images, labels = real
    for mode, wrong, expected in (("append", [0.0, 0.0, 0.0], 1), ("replace", [0.0, 0.0, 0.0], 1),
                                  ("append", [0.0, 1.0, 0.0], 2), ("replace", [0.0, 1.0, 0.0], 1)):
        mix = SyntheticMix(WrongClassGenerator(data, wrong), 0.5, mode=mode, balance="uniform", seed=0,
                           teacher=teacher, filter_threshold=0.5)
        reads.clear()
        mix(images, labels)
        assert len(reads) == expected, (mode, wrong)


# --------------------------------------------------------------------------- soft labels
@pytest.mark.parametrize("mode", ["append", "replace"])
@pytest.mark.parametrize("weight,temperature", [(1.0, 1.0), (0.7, 2.0)])
def test_soft_targets(data, real, teacher, mode, weight, temperature):
    gen = RealImagesGenerator(data)
    images, labels = real
    kwargs = dict(mode=mode, balance="uniform", seed=5)
    teacher.train()  # must not matter: the teacher runs in eval mode (the dropout would show)
    soft = SyntheticMix(gen, 0.5, teacher=teacher, soft_labels=True, label_temperature=temperature,
                        soft_label_weight=weight, **kwargs)
    hard = SyntheticMix(gen, 0.5, **kwargs)
    out, targets, mask = soft(images, labels, return_mask=True)
    hard_out, hard_labels, hard_mask = hard(images, labels, return_mask=True)
    # Soft labels draw no random numbers: same images and rows as without them.
    assert torch.equal(out, hard_out) and torch.equal(mask, hard_mask)
    assert targets.shape == (len(out), K) and targets.dtype == torch.float32
    torch.testing.assert_close(targets.sum(1), torch.ones(len(out)), atol=1e-6, rtol=0)
    assert torch.equal(targets[~mask], F.one_hot(hard_labels[~mask], K).float())
    expected = (weight * torch.softmax(eval_logits(teacher, out[mask]) / temperature, 1)
                + (1 - weight) * F.one_hot(hard_labels[mask], K).float())
    torch.testing.assert_close(targets[mask], expected, atol=1e-5, rtol=0)
    logits = torch.randn(len(out), K, requires_grad=True)
    F.cross_entropy(logits, targets).backward()
    weighted_cross_entropy(logits, targets, mask, 0.5).backward()
    assert torch.isfinite(logits.grad).all()


def test_soft_targets_with_filter_come_from_the_accepted_image(data, real, teacher):
    gen = WrongClassGenerator(data, [0.0, 0.5, 0.0])
    images, labels = real
    mix = SyntheticMix(gen, 1.0, mode="append", balance="uniform", seed=0, teacher=teacher,
                       filter_threshold=0.5, soft_labels=True, label_temperature=2.0)
    out, targets, mask = mix(images, labels, return_mask=True)
    assert int(mask.sum()) == 24
    expected = torch.softmax(eval_logits(teacher, out[mask]) / 2.0, 1)
    torch.testing.assert_close(targets[mask], expected, atol=1e-5, rtol=0)
    assert (targets[mask].max(1).values > 0.5).all()  # all accepted: the teacher agrees with the class


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_soft_real_labels_match_teacher_labels(data, real, teacher, mode):
    gen = RealImagesGenerator(data)
    images01, labels = (real[0] + 1) / 2, real[1]  # a pipeline in [0, 1]
    mix = SyntheticMix(gen, 0.5, mode=mode, seed=0, output_range=(0, 1), teacher=teacher,
                       soft_labels=True, soft_real_labels=True, label_temperature=2.0, soft_label_weight=0.6)
    out, targets, mask = mix(images01, labels, return_mask=True)
    baseline = TeacherLabels(teacher, 2.0, 0.6, K, output_range=(0, 1))
    same_images, real_targets = baseline(images01, labels)
    assert same_images is images01
    b = len(images01)
    real_rows = ~mask[:b]
    assert torch.equal(targets[:b][real_rows], real_targets[real_rows])  # bit for bit
    # and that is the formula on the images mapped back to [-1, 1]
    expected = 0.6 * torch.softmax(eval_logits(teacher, images01 * 2 - 1) / 2.0, 1) + 0.4 * F.one_hot(labels, K)
    torch.testing.assert_close(real_targets, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(targets.sum(1), torch.ones(len(out)), atol=1e-6, rtol=0)


def test_teacher_labels_input_ranges(real, teacher):
    images, labels = real
    expected = TeacherLabels(teacher, num_classes=K)(images, labels)[1]
    assert torch.equal(expected, torch.softmax(eval_logits(teacher, images), 1))
    as_uint8 = ((images + 1) * 127.5).round().to(torch.uint8)
    torch.testing.assert_close(TeacherLabels(teacher)(as_uint8, labels)[1], expected, atol=1e-5, rtol=0)
    mean, std = [0.3], [0.4]
    normalised = ((images + 1) / 2 - mean[0]) / std[0]
    torch.testing.assert_close(TeacherLabels(teacher, mean=mean, std=std)(normalised, labels)[1], expected,
                               atol=1e-5, rtol=0)
    hard = TeacherLabels(teacher, 5.0, 0.0)(images, labels)[1]
    assert torch.equal(hard, F.one_hot(labels, K).float())


def test_augment_loader_with_soft_labels(data, real, teacher):
    batches = [(real[0][:8], real[1][:8])]
    images, targets = next(iter(augment_loader(batches, RealImagesGenerator(data), 0.5, mode="append",
                                               seed=0, teacher=teacher, soft_labels=True)))
    assert images.shape == (12, 1, 28, 28) and targets.shape == (12, K) and targets.dtype == torch.float32


# --------------------------------------------------------------------------- weighted loss
def test_weighted_cross_entropy_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    targets = torch.tensor([0, 2, 2, 1])
    mask = torch.tensor([False, True, True, False])
    e = math.e
    ce = [math.log(e ** 2 + 2) - 2, math.log(e + 2), math.log(e ** 3 + 2) - 3, math.log(3)]
    expected = (ce[0] + ce[3] + 0.25 * (ce[1] + ce[2])) / (2 + 2 * 0.25)
    assert math.isclose(float(weighted_cross_entropy(logits, targets, mask, 0.25)), expected, rel_tol=1e-6)
    # soft targets: CE = -sum_k t_k log softmax_k
    soft = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.2, 0.0, 0.8], [1 / 3, 1 / 3, 1 / 3]])
    log_p = [[x - math.log(sum(math.exp(v) for v in row)) for x in row] for row in logits.tolist()]
    soft_ce = [-sum(t * lp for t, lp in zip(trow, lrow)) for trow, lrow in zip(soft.tolist(), log_p)]
    expected = (soft_ce[0] + soft_ce[3] + 3.0 * (soft_ce[1] + soft_ce[2])) / (2 + 2 * 3.0)
    assert math.isclose(float(weighted_cross_entropy(logits, soft, mask, 3.0)), expected, rel_tol=1e-6)


def test_weighted_cross_entropy_with_label_smoothing_by_hand():
    """Each row's target becomes (1 - ε) target + ε / K, for class indices and soft targets alike."""
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([False, True, True, False])
    log_p = [[x - math.log(sum(math.exp(v) for v in row)) for x in row] for row in logits.tolist()]
    eps, k = 0.1, 3
    hard = torch.tensor([0, 2, 2, 1])
    soft = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.2, 0.0, 0.8], [1 / 3, 1 / 3, 1 / 3]])
    for targets, rows in ((hard, F.one_hot(hard, k).float().tolist()), (soft, soft.tolist())):
        smoothed = [[(1 - eps) * t + eps / k for t in row] for row in rows]
        ce = [-sum(t * lp for t, lp in zip(trow, lrow)) for trow, lrow in zip(smoothed, log_p)]
        expected = (ce[0] + ce[3] + 0.5 * (ce[1] + ce[2])) / (2 + 2 * 0.5)
        got = weighted_cross_entropy(logits, targets, mask, 0.5, label_smoothing=eps)
        assert math.isclose(float(got), expected, rel_tol=1e-6)
        # Weight 1: F.cross_entropy's own smoothing, up to float rounding.
        torch.testing.assert_close(weighted_cross_entropy(logits, targets, mask, 1.0, label_smoothing=eps),
                                   F.cross_entropy(logits, targets, label_smoothing=eps))
    # The default is no smoothing: the loss of before the argument existed.
    assert torch.equal(weighted_cross_entropy(logits, hard, mask, 0.5),
                       weighted_cross_entropy(logits, hard, mask, 0.5, label_smoothing=0.0))
    for bad in (-0.1, 1.5, True, "0.1"):
        with pytest.raises(ConfigError, match="label_smoothing"):
            weighted_cross_entropy(logits, hard, mask, 0.5, label_smoothing=bad)


def test_weighted_cross_entropy_with_weight_one_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(10, 4, generator=g)
    hard = torch.randint(0, 4, (10,), generator=g)
    soft = torch.softmax(torch.randn(10, 4, generator=g), 1)
    mask = torch.rand(10, generator=g) > 0.5
    for targets in (hard, soft):
        torch.testing.assert_close(weighted_cross_entropy(logits, targets, mask, 1.0),
                                   F.cross_entropy(logits, targets))
    # Weight 0 on an all-synthetic batch: a zero loss, not NaN, and gradients flow.
    logits.requires_grad_(True)
    loss = weighted_cross_entropy(logits, hard, torch.ones(10, dtype=torch.bool), 0.0)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))
    with pytest.raises(ConfigError, match="synthetic_weight"):
        weighted_cross_entropy(logits, hard, mask, -0.5)
    with pytest.raises(DataError, match="bool"):
        weighted_cross_entropy(logits, hard, mask.long(), 0.5)


# --------------------------------------------------------------------------- config errors
@pytest.mark.parametrize("kwargs,match", [
    (dict(filter_threshold=0.5), "filter_threshold needs a teacher"),
    (dict(soft_labels=True), "soft_labels=True needs a teacher"),
    (dict(teacher=True, filter_threshold=1.5), "filter_threshold must be"),
    (dict(teacher=True, filter_threshold=-0.1), "filter_threshold must be"),
    (dict(teacher=True, filter_threshold=True), "filter_threshold must be"),
    (dict(teacher=True, soft_labels=True, soft_label_weight=-0.1), "soft_label_weight"),
    (dict(teacher=True, soft_labels=True, soft_label_weight=1.5), "soft_label_weight"),
    (dict(teacher=True, soft_labels=True, label_temperature=0.0), "label_temperature"),
    (dict(teacher=True, filter_threshold=0.5, oversample=0), "oversample"),
    (dict(teacher=True, filter_threshold=0.5, max_rounds=0), "max_rounds"),
    (dict(teacher=True, filter_threshold=0.5, min_acceptance=-0.1), "min_acceptance"),
    (dict(teacher=True, soft_labels=True, min_acceptance=0.5), "min_acceptance needs filter_threshold"),
    (dict(teacher=True, soft_real_labels=True, filter_threshold=0.5), "soft_real_labels=True needs soft_labels"),
    (dict(teacher=True), "unused"),
    (dict(teacher="resnet", soft_labels=True), "nn.Module"),
    (dict(teacher=True, filter_threshold=0.5, balance="uniform", prefetch=True), "prefetch"),
])
def test_config_errors(data, teacher, kwargs, match):
    if kwargs.get("teacher") is True:
        kwargs["teacher"] = teacher
    with pytest.raises(ConfigError, match=match):
        SyntheticMix(RealImagesGenerator(data), 0.5, **kwargs)


def test_teacher_errors(data, real, teacher):
    with pytest.raises(ConfigError, match=r"teacher.to\('cpu'\)"):
        SyntheticMix(RealImagesGenerator(data), teacher=SquareTeacher().to("meta"), soft_labels=True)
    for kwargs, match in ((dict(label_temperature=-1.0), "label_temperature"),
                          (dict(soft_label_weight=2.0), "soft_label_weight"),
                          (dict(num_classes=1), "num_classes"),
                          (dict(output_range=(1, 0)), "output_range")):
        with pytest.raises(ConfigError, match=match):
            TeacherLabels(teacher, **kwargs)
    with pytest.raises(ConfigError, match="nn.Module"):
        TeacherLabels(lambda x: x)
    mix = SyntheticMix(RealImagesGenerator(data), teacher=SquareTeacher(num_classes=2), soft_labels=True)
    with pytest.raises(DataError, match="2 logits per image but there are 3 classes"):
        mix(*real)


@pytest.mark.parametrize("output_range", [None, (1,), "ab", "01", b"01", (1.0, 0.0), (0.0, float("inf"))])
def test_teacher_labels_output_range_is_a_config_error(data, teacher, output_range):
    with pytest.raises(ConfigError, match=r"output_range must be \(low, high\)"):
        TeacherLabels(teacher, output_range=output_range)
    if output_range is None:
        return  # the mixer's default: the range is read off the first batch
    # The mixer shares the check: a string is never read character by character as (0, 1).
    with pytest.raises(ConfigError, match=r"output_range must be \(low, high\)"):
        SyntheticMix(RealImagesGenerator(data), output_range=output_range)


def test_teacher_labels_std_must_be_above_zero(teacher):
    with pytest.raises(ConfigError, match=r"std must be > 0 in every channel.*pass the std given to v2\.Normalize"):
        TeacherLabels(teacher, mean=[0.5], std=[0.0])


@pytest.mark.parametrize("weight", [0.5, 1.0])
@pytest.mark.parametrize("num_classes", [K, None])
def test_teacher_labels_refuse_labels_outside_the_teachers_classes(teacher, real, weight, num_classes):
    images, labels = real
    bad = labels.clone()
    bad[:2] = torch.tensor([3, 7])
    labeller = TeacherLabels(teacher, soft_label_weight=weight, num_classes=num_classes)
    with pytest.raises(DataError, match=r"labels \[3, 7\] are outside \[0, 2\]: the teacher gives 3 classes; pass "
                                        r"class indices 0\.\.2 of its classes, or a teacher trained on these classes"):
        labeller(images, bad)
    assert labeller(images, labels)[1].shape == (len(labels), K)


def test_teacher_labels_take_a_tensor_of_images(teacher, real):
    images, labels = real
    with pytest.raises(DataError, match=r"TeacherLabels takes collated batches.*got images as a list: stack them "
                                        r"first \(torch\.stack\(images\)\)"):
        TeacherLabels(teacher)(list(images), labels)


def test_teacher_labels_take_integer_class_indices(teacher, real):
    # A bool mask was taken as classes 0 and 1.
    images, labels = real
    with pytest.raises(DataError, match=r"labels must be integer class indices, got dtype torch.bool; a mask"):
        TeacherLabels(teacher)(images, labels == 1)
    with pytest.raises(DataError, match=r"TeacherLabels takes collated batches, labels a tensor"):
        TeacherLabels(teacher)(images, labels.tolist())
    targets = TeacherLabels(teacher, soft_label_weight=0.0)(images, labels.int())[1]  # int32 as int64
    assert torch.equal(targets.argmax(1), labels)


@pytest.mark.parametrize("targets, match", [
    (torch.zeros(7, dtype=torch.long), r"got int64 \(7,\): give one target per row of logits \(8 rows\)"),
    (torch.zeros(8), r"got float32 \(8,\): use targets\.long\(\)"),
    (torch.zeros(8, dtype=torch.int32), r"got int32 \(8,\): use targets\.long\(\)"),
    (torch.zeros(8, 3, dtype=torch.long), r"got int64 \(8, 3\): use targets\.float\(\) for probabilities"),
    ([0] * 8, r"got list: pass a tensor"),
])
def test_weighted_cross_entropy_names_the_targets_it_takes(targets, match):
    logits, mask = torch.randn(8, K), torch.zeros(8, dtype=torch.bool)
    with pytest.raises(DataError, match=r"targets must be int64 class indices \(8,\) in \[0, 3\) or probabilities "
                                        r"\(8, 3\); " + match):
        weighted_cross_entropy(logits, targets, mask, synthetic_weight=0.5)


def test_weighted_cross_entropy_refuses_targets_outside_the_classes_and_logits_that_are_not_a_tensor():
    logits, mask = torch.randn(8, K), torch.zeros(8, dtype=torch.bool)
    targets = torch.tensor([0, 1, 2, 3, 0, 1, 9, -1])
    with pytest.raises(DataError, match=r"targets \[-1, 3, 9\] are outside \[0, 2\]: the logits have 3 classes"):
        weighted_cross_entropy(logits, targets, mask, synthetic_weight=0.5)
    with pytest.raises(DataError, match=r"logits must be a float tensor \(N, K\), the classifier's output, got list"):
        weighted_cross_entropy(logits.tolist(), targets, mask, synthetic_weight=0.5)
    with pytest.raises(DataError, match=r"logits must be a float tensor \(N, K\).*got int64 \(8, 3\)"):
        weighted_cross_entropy(logits.long(), targets, mask, synthetic_weight=0.5)
    # F.cross_entropy's ignore_index (-100) is still taken.
    weighted_cross_entropy(logits, torch.tensor([0, 1, 2, -100, 0, 1, 2, 0]), mask, synthetic_weight=0.5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_teacher_labels_and_the_loss_check_cuda_batches_without_a_host_sync_after_the_first(real):
    images, labels = (t.cuda() for t in real)
    labeller = TeacherLabels(SquareTeacher().cuda(), soft_label_weight=0.5)
    labeller(images, labels)  # the first call: its labels are checked (one host read)
    logits, mask = torch.randn(len(labels), K, device="cuda"), torch.zeros(len(labels), dtype=torch.bool, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        labeller(images, labels)
        weighted_cross_entropy(logits, labels, mask, 0.5)  # shapes and dtypes only: no range read
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
