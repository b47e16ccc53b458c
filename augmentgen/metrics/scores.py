"""Scores that ask a classifier whether synthetic data is useful.

* :func:`class_consistency`: the share of class-``c`` samples that a classifier trained on real
  data assigns to ``c``, per class.
* :func:`classification_accuracy_score` (CAS, Ravuri & Vinyals 2019): train the reference
  classifier on synthetic data only and test it on real data, next to the same classifier
  trained on the real data.
* :func:`downstream_gain` (ΔAcc): test accuracy of the reference classifier trained on real data
  plus synthetic data (through :class:`~augmentgen.mixing.SyntheticMix`) minus the same
  classifier, budget and classic augmentation on the real data alone. Synthetic rows are
  appended to each batch by default, so both arms see the same real rows the same number of
  times. The mixing ratio is chosen on a validation split carved from the training data, never
  on the test set.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._images import to_uint8
from ..data.labelled import LabelledImages
from ..errors import ConfigError, DataError
from ..models.base import ConditionalGenerator
from .classifier import (
    ReferenceClassifier,
    as_images_and_labels,
    default_device,
    evaluate_accuracy,
    per_class_accuracy,
    train_classifier,
)


def _seeded(generator: ConditionalGenerator, seed: int) -> torch.Generator:
    return torch.Generator(device=generator.device).manual_seed(seed)


def _as_labelled(data) -> LabelledImages:
    if isinstance(data, LabelledImages):
        return data
    images, labels, _ = as_images_and_labels(data)
    return LabelledImages(images, labels)


def sample_uint8_per_class(generator: ConditionalGenerator, n_per_class: int, *, seed: int = 0,
                           batch_size: int = 1024) -> LabelledImages:
    """``n_per_class`` synthetic images of every class as a uint8 :class:`LabelledImages` on the CPU."""
    if n_per_class < 1:
        raise ConfigError(f"n_per_class must be positive, got {n_per_class}")
    labels = torch.arange(generator.num_classes, device=generator.device).repeat_interleave(n_per_class)
    images = generator.sample(labels, generator=_seeded(generator, seed), batch_size=batch_size)
    return LabelledImages(to_uint8(images).cpu(), labels.cpu(), generator.class_names,
                          source=f"synthetic:{generator.family}")


def class_consistency(generator: ConditionalGenerator, classifier: torch.nn.Module, n_per_class: int = 100,
                      *, seed: int = 0) -> dict:
    """Share of each class's synthetic samples that ``classifier`` assigns to that class.

    Args:
        generator: the conditional generator to check.
        classifier: a classifier trained on real data (e.g. from :func:`train_classifier`).
        n_per_class: samples drawn per class.
        seed: seeds the generator's noise.

    Returns:
        ``{"per_class": {class name: share in [0, 1]}, "mean": mean share, "n_per_class": n}``.
    """
    synthetic = sample_uint8_per_class(generator, n_per_class, seed=seed)
    shares = per_class_accuracy(classifier, synthetic, num_classes=generator.num_classes)
    names = generator.class_names
    return {"per_class": dict(zip(names, shares)), "mean": float(sum(shares) / len(shares)),
            "n_per_class": n_per_class}


def classification_accuracy_score(
    generator: ConditionalGenerator,
    test_data,
    *,
    real_data=None,
    n_per_class: int = 500,
    steps: int = 500,
    epochs: float | None = None,
    min_steps: int = 0,
    batch_size: int = 128,
    seed: int = 0,
    augment: str = "classic",
    width: int = 16,
    device: str | torch.device | None = None,
    real_model: ReferenceClassifier | None = None,
) -> dict:
    """CAS: accuracy on real ``test_data`` of the reference classifier trained on synthetic data only.

    The classifier is trained on a fixed set of ``n_per_class`` synthetic images per class with
    the same budget (``steps``, ``batch_size``, ``augment``) as the real-data classifier, which
    is trained on ``real_data`` when given, so the two figures sit side by side. Pass
    ``real_model`` instead when a classifier with that budget is already trained on the real data.

    Returns:
        ``{"cas", "cas_per_class", "acc_real", "acc_real_per_class", "n_per_class", "steps", "seed"}``
        (``acc_real*`` are None without ``real_data`` or ``real_model``).
    """
    common = dict(steps=steps, epochs=epochs, min_steps=min_steps, batch_size=batch_size, seed=seed,
                  augment=augment, width=width, device=device)
    synthetic = sample_uint8_per_class(generator, n_per_class, seed=seed)
    model = train_classifier(synthetic, **common)
    report = {
        "cas": evaluate_accuracy(model, test_data),
        "cas_per_class": per_class_accuracy(model, test_data, num_classes=generator.num_classes),
        "acc_real": None, "acc_real_per_class": None,
        "n_per_class": n_per_class, "steps": steps, "seed": seed,
    }
    if real_model is None and real_data is not None:
        real_model = train_classifier(real_data, num_classes=generator.num_classes, **common)
    if real_model is not None:
        report["acc_real"] = evaluate_accuracy(real_model, test_data)
        report["acc_real_per_class"] = per_class_accuracy(real_model, test_data,
                                                          num_classes=generator.num_classes)
    return report


# --------------------------------------------------------------------------- downstream gain
def make_synthetic_mix(generator: ConditionalGenerator, ratio: float, *, seed: int,
                       mode: str = "append", balance=None, **options):
    """The batch mixer of arm b: ``SyntheticMix`` adding ``round(ratio * B)`` synthetic rows to each
    batch of B real rows (``mode="append"``, equal real exposure), or replacing a share ``ratio``
    of the rows (``mode="replace"``), with the classes of the batch unless ``balance`` says;
    ``options`` go to ``SyntheticMix`` (``teacher``, ``filter_threshold``, ``soft_labels``, ...)."""
    from ..mixing import SyntheticMix

    return SyntheticMix(generator, ratio, mode=mode, balance=balance, seed=seed, **options)


def validation_split(data: LabelledImages, fraction: float = 0.2, *, seed: int = 0
                     ) -> tuple[LabelledImages, LabelledImages]:
    """A seeded, stratified (train, validation) split: ``fraction`` of every class (at least one
    image, and at least one left for training) goes to validation."""
    if not 0 < fraction < 1:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction}")
    counts = torch.bincount(data.labels, minlength=data.num_classes)
    if int(counts.min()) < 2:
        raise DataError("every class needs at least 2 images to carve a validation split")
    gen = torch.Generator().manual_seed(seed)
    # Rank rows randomly within their class: sort by (label, random key) in one pass.
    keys = data.labels.double() + torch.rand(len(data), generator=gen, dtype=torch.float64) * 0.5
    order = keys.argsort()
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(data)) - starts.repeat_interleave(counts)
    n_val = (counts.double() * fraction).round().long().clamp(1, None).minimum(counts - 1)
    is_val = rank < n_val[data.labels]
    return data.subset(torch.nonzero(~is_val).flatten()), data.subset(torch.nonzero(is_val).flatten())


#: Ways of using synthetic rows that :func:`downstream_gain` can try on the validation split:
#: ``SyntheticMix`` options, the teacher being the real + classic classifier of the same data.
#: ``soft`` is credited against a control arm whose *real* rows get the same teacher targets,
#: so the gain counts only what the synthetic rows add (soft labels alone can help).
#: ``vary`` / ``interpolate`` / ``extrapolate`` make the rows from the batch's real rows
#: (:class:`~augmentgen.mixing.VariationSource`, encoder families only) instead of sampling them.
MIXING_METHODS: dict[str, dict] = {
    "plain": {},
    "filter": {"filter_threshold": 0.5},
    "soft": {"soft_labels": True, "label_temperature": 2.0, "soft_label_weight": 0.5},
    "vary": {"variation": "vary"},
    "interpolate": {"variation": "interpolate"},
    "extrapolate": {"variation": "extrapolate"},
}


def _method_kwargs(method: str) -> dict:
    if method not in MIXING_METHODS:
        raise ConfigError(f"unknown mixing method {method!r}; choose from {sorted(MIXING_METHODS)}")
    return MIXING_METHODS[method]


def _teacher_control(teacher, num_classes: int):
    """The control arm of a soft-label method: the same teacher targets on real rows only."""
    from ..mixing import TeacherLabels

    kw = MIXING_METHODS["soft"]
    return TeacherLabels(teacher, kw["label_temperature"], kw["soft_label_weight"], num_classes)


def _choose(selection: dict[tuple[str, float], float]) -> tuple[str, float]:
    """Best validation accuracy; ties go to no synthetic data, then the smaller ratio, then the
    simpler method (the order of ``MIXING_METHODS``)."""
    order = {m: i for i, m in enumerate(["none", "soft-control", *MIXING_METHODS])}
    return max(sorted(selection, key=lambda k: (k[1], order[k[0]])), key=lambda k: selection[k])


def downstream_gain(
    generator: ConditionalGenerator,
    train_data,
    test_data,
    *,
    steps: int = 500,
    epochs: float | None = None,
    min_steps: int = 0,
    seed: int = 0,
    ratio: float | None = None,
    candidate_ratios: Sequence[float] = (0.25, 0.5, 1.0),
    methods: Sequence[str] = ("plain",),
    mode: str = "append",
    balance=None,
    validation_fraction: float = 0.2,
    batch_size: int = 128,
    width: int = 16,
    include_noaug: bool = True,
    device: str | torch.device | None = None,
    real_classic_model: ReferenceClassifier | None = None,
) -> dict:
    """ΔAcc: does mixing ``generator``'s samples into training improve real test accuracy?

    Arms, all with the same :class:`ReferenceClassifier`, budget, ``batch_size`` and seed (so the
    same initialisation, batch order and augmentation of the real rows):
    ``acc_real_classic`` (real data + classic augmentation), ``acc_mixed`` (the same +
    ``round(ratio * batch_size)`` synthetic rows of the batch's classes appended to every batch
    through ``SyntheticMix``, augmented like the real rows; ``mode="replace"`` replaces rows
    instead, which shows the mixed arm fewer real rows), and ``acc_real_noaug`` (real data, no
    augmentation, for reference). ``delta = acc_mixed - acc_real_classic``; it can be negative,
    and is reported as it is. ``epochs`` budgets every arm in passes over its real training
    data (see :func:`~augmentgen.metrics.classifier_steps`) instead of a fixed ``steps``.

    With ``ratio=None`` every method of ``methods`` (see :data:`MIXING_METHODS`: ``"plain"``,
    ``"filter"`` (teacher filtering), ``"soft"`` (teacher soft labels)) at every ratio of
    ``candidate_ratios`` is tried on a stratified validation split carved from ``train_data``
    (``validation_fraction`` of each class; the classifiers, and the teacher, train on the rest)
    and the best is used; the test set is only touched by the final arms. A candidate ratio of 0
    lets the validation split decide against synthetic data (then ``delta`` is 0 and
    ``verdict`` says so). The teacher of the final arms is the real + classic classifier.
    A ``soft`` choice also reports ``acc_teacher_control`` (the teacher's soft targets on real
    rows only) and ``delta_vs_control``, the part of the gain the synthetic rows caused.
    ``real_classic_model``: a classifier already trained on ``train_data`` with classic
    augmentation and this budget and seed, used as the first arm instead of training it again.

    Returns:
        A dict with ``acc_real_classic``, ``acc_mixed``, ``delta``, ``acc_real_noaug``,
        ``method``, ``ratio``, ``verdict``, ``selection`` (validation accuracy per
        ``"method@ratio"``, or None), ``ratio_selection`` (the ``plain`` method's by ratio, or
        None), the per-class test accuracies of each arm, ``steps``, ``batch_size`` and ``seed``.
    """
    train_data, test_data = _as_labelled(train_data), _as_labelled(test_data)
    if generator.image_shape != train_data.image_shape:
        raise DataError(f"the generator makes {generator.image_shape} images but the data is "
                        f"{train_data.image_shape}")
    if generator.num_classes != train_data.num_classes:
        raise DataError(f"the generator has {generator.num_classes} classes, the data {train_data.num_classes}")
    methods = list(methods)
    for method in methods:
        _method_kwargs(method)
    if ratio is not None and len(methods) != 1:
        raise ConfigError(f"a fixed ratio needs exactly one method, got {methods}")
    device = torch.device(device) if device is not None else default_device()
    original_device = generator.device
    generator.to(device)  # SyntheticMix samples on the batch's device
    arms = _GainArms(generator, seed=seed, mode=mode, balance=balance, steps=steps, epochs=epochs,
                     min_steps=min_steps, batch_size=batch_size, width=width, device=device)
    try:
        selection, method = None, methods[0]
        if ratio is None:
            fit, val = validation_split(train_data, validation_fraction, seed=seed)
            selection = arms.select(fit, val, methods, candidate_ratios)
            method, ratio = _choose(selection)
        report = arms.final(train_data, test_data, method, float(ratio), real_classic_model)
        report["selection"] = None if selection is None else {
            f"{m}@{r:g}": v for (m, r), v in selection.items()}
        report["ratio_selection"] = None if selection is None else {
            r: v for (m, r), v in selection.items() if m in ("plain", "none")} or None
        report["verdict"] = verdict(report)
        if include_noaug:
            plain = arms.train(train_data, augment="none")
            report["acc_real_noaug"] = evaluate_accuracy(plain, test_data)
            report["per_class_real_noaug"] = per_class_accuracy(plain, test_data)
    finally:
        generator.to(original_device)
    return report


class _GainArms:
    """The classifier arms of :func:`downstream_gain`, all with one budget, seed and device."""

    def __init__(self, generator: ConditionalGenerator, *, seed: int, mode: str, balance, **budget):
        self.generator, self.seed, self.mode, self.balance = generator, seed, mode, balance
        self.budget = {**budget, "num_classes": generator.num_classes}

    def train(self, data: LabelledImages, augment: str = "classic", synthetic_mix=None) -> ReferenceClassifier:
        return train_classifier(data, seed=self.seed, augment=augment, synthetic_mix=synthetic_mix,
                                **self.budget)

    def mix(self, method: str, ratio: float, teacher: ReferenceClassifier):
        """The batch mixer of ``method`` at ``ratio``, with ``teacher`` where the method needs one."""
        if method == "soft-control":
            return _teacher_control(teacher, self.generator.num_classes)
        if not ratio or method == "none":
            return None
        kw = dict(_method_kwargs(method))
        if "variation" in kw:  # rows made from the batch's real rows
            from ..mixing import VariationSource

            source = VariationSource(self.generator, kw.pop("variation"))
            return make_synthetic_mix(source, ratio, seed=self.seed, mode=self.mode, balance=self.balance)
        return make_synthetic_mix(self.generator, ratio, seed=self.seed, mode=self.mode, balance=self.balance,
                                  **({**kw, "teacher": teacher} if kw else {}))

    def select(self, fit: LabelledImages, val: LabelledImages, methods: list[str],
               candidate_ratios: Sequence[float]) -> dict[tuple[str, float], float]:
        """Validation accuracy of every (method, ratio) candidate; the teacher trains on ``fit``."""
        needs_teacher = 0 in candidate_ratios or any(m in ("filter", "soft") for m in methods)
        teacher = self.train(fit) if needs_teacher else None
        selection = {}
        if 0 in candidate_ratios:
            selection[("none", 0.0)] = evaluate_accuracy(teacher, val)
            if "soft" in methods:  # soft labels without synthetic rows: no credit to the generator
                control = self.train(fit, synthetic_mix=self.mix("soft-control", 0.0, teacher))
                selection[("soft-control", 0.0)] = evaluate_accuracy(control, val)
        for m in methods:
            for candidate in (float(r) for r in candidate_ratios if r):
                model = self.train(fit, synthetic_mix=self.mix(m, candidate, teacher))
                selection[(m, candidate)] = evaluate_accuracy(model, val)
        return selection

    def final(self, train_data: LabelledImages, test_data: LabelledImages, method: str, ratio: float,
              real: ReferenceClassifier | None) -> dict:
        """The test-set arms of the chosen ``method`` and ``ratio`` (the only use of the test set)."""
        real = real if real is not None else self.train(train_data)
        # Ratio 0 (validation says: do not mix) is the real + classic arm itself.
        mixed = real if method == "none" else self.train(train_data, synthetic_mix=self.mix(method, ratio, real))
        b = self.budget
        report = {
            "acc_real_classic": evaluate_accuracy(real, test_data),
            "acc_mixed": evaluate_accuracy(mixed, test_data),
            "acc_real_noaug": None, "method": method, "ratio": ratio,
            "per_class_real_classic": per_class_accuracy(real, test_data),
            "per_class_mixed": per_class_accuracy(mixed, test_data),
            "per_class_real_noaug": None, "acc_teacher_control": None, "delta_vs_control": None,
            "steps": b["steps"], "epochs": b["epochs"], "mode": self.mode, "batch_size": b["batch_size"],
            "seed": self.seed,
        }
        report["delta"] = report["acc_mixed"] - report["acc_real_classic"]
        if method == "soft":  # the teacher's soft targets on real rows only: what the rows add
            control = self.train(train_data, synthetic_mix=_teacher_control(real, self.generator.num_classes))
            report["acc_teacher_control"] = evaluate_accuracy(control, test_data)
            report["delta_vs_control"] = report["acc_mixed"] - report["acc_teacher_control"]
        return report


def verdict(report: dict) -> str:
    """One plain sentence on a :func:`downstream_gain` report: mix or do not mix."""
    if report["method"] == "none":
        return ("do not use synthetic data for this dataset: on the validation split no method and "
                "ratio beat real data with classic augmentation alone")
    if report["method"] == "soft-control":
        return ("do not use synthetic data for this dataset: on the validation split the teacher's "
                "soft labels on the real rows alone did best (no synthetic rows)")
    chosen = f"{report['method']} at ratio {report['ratio']:g}"
    if report["delta"] <= 0:
        return (f"validation chose {chosen}, but it did not beat classic augmentation on the test "
                f"data ({100 * report['delta']:+.1f} pts): do not rely on it without more seeds")
    return f"use {chosen}: {100 * report['delta']:+.1f} pts on the test data at this seed"


__all__ = [
    "MIXING_METHODS",
    "class_consistency",
    "classification_accuracy_score",
    "downstream_gain",
    "make_synthetic_mix",
    "sample_uint8_per_class",
    "to_uint8",
    "validation_split",
    "verdict",
]
