"""Scores that ask a classifier whether synthetic data is useful.

* :func:`class_consistency`: the share of class-``c`` samples that a classifier trained on real
  data assigns to ``c``, per class.
* :func:`classification_accuracy_score` (CAS, Ravuri & Vinyals 2019): train the reference
  classifier on synthetic data only and test it on real data, next to the same classifier
  trained on the real data.
* :func:`downstream_gain` (ΔAcc): does mixing synthetic rows in beat the best a user can do
  without a generator? The best non-generative baseline B (classic augmentation, MixUp/CutMix,
  and on imbalanced data class-balanced resampling and logit adjustment: :mod:`.baselines`) and
  the best synthetic method on top of it are chosen on a validation split carved from the
  training data, never on the test set; the test set then gives B + synthetic minus B, with the
  same classifier, budget and seed. Synthetic rows are appended to each batch by default, so
  both arms see the same real rows the same number of times. :func:`downstream_plan` says
  beforehand how many classifiers that takes.

Beside it: the validation split and folds (:mod:`.splits`), the mixing methods it can try
(:mod:`.methods`), and :func:`~.decision.downstream_verdict`, which turns one or several seeds into a
decision (:mod:`.decision`); their names stay importable from here.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from collections.abc import Collection, Mapping, Sequence

import torch

from .._config import check_flag, check_path
from .._deprecation import renamed_argument
from .._devices import check_device
from .._images import to_uint8
from .._io import check_writable
from .._seeds import check_seed
from ..data.labelled import LabelledImages, warn_if_class_names_differ
from ..errors import ConfigError, DataError
from ..models.base import ConditionalGenerator, check_generator_argument
from .baselines import baseline_options, imbalance_ratio, is_imbalanced, resolve_baselines
from .classifier import (
    ReferenceClassifier,
    as_images_and_labels,
    check_budget,
    default_device,
    evaluate_accuracy,
    per_class_accuracy,
    predict,
    train_classifier,
)
from .classifier import check_count as _check_count
from .controls import DEFAULT_CONTROLS, control_source, resolve_controls
from .decision import downstream_verdict, verdict  # re-exported
from .methods import CLASSIFIER_OPTIONS, MIXING_METHODS, method_options, split_method_options  # re-exported
from .splits import (  # re-exported
    beats,
    best_candidate,
    check_held_out,
    check_splittable,
    validation_folds,
    validation_split,
)
from .stats import paired_gain_z


def _seeded(generator: ConditionalGenerator, seed: int) -> torch.Generator:
    return torch.Generator(device=generator.device).manual_seed(seed)


def _as_labelled(data) -> LabelledImages:
    if isinstance(data, LabelledImages):
        return data
    images, labels, _ = as_images_and_labels(data)
    return LabelledImages(images, labels)


@renamed_argument("n_per_class", "per_class")
def sample_uint8_per_class(generator: ConditionalGenerator, per_class: int, *, seed: int = 0,
                           batch_size: int = 1024) -> LabelledImages:
    """``per_class`` synthetic images of every class as a uint8 :class:`LabelledImages` on the CPU."""
    _check_count("per_class", per_class, "synthetic images of each class")
    labels = torch.arange(generator.num_classes, device=generator.device).repeat_interleave(per_class)
    images = generator.sample(labels, generator=_seeded(generator, seed), batch_size=batch_size)
    return LabelledImages(to_uint8(images).cpu(), labels.cpu(), generator.class_names,
                          source=f"synthetic:{generator.family}")


def synthetic_set(generator: ConditionalGenerator, per_class: int, *, seed: int = 0, synthetic=None,
                  call: str = "synthetic") -> LabelledImages:
    """The synthetic images a metric measures: ``synthetic`` when given (checked), else
    :func:`sample_uint8_per_class` ``(generator, per_class, seed=seed)``.

    ``synthetic`` lets several metrics share one sampled set (:func:`~augmentgen.metrics.report.evaluate_generator`
    samples once for consistency, CAS, the distances and coverage): a :class:`LabelledImages` (or
    ``(images uint8, labels)``) of the generator's image shape and classes, with ``per_class`` images of
    every class, as ``sample_uint8_per_class(generator, per_class, seed=seed)`` returns it.

    Raises:
        DataError: ``synthetic`` is not images and labels, or its image shape or classes differ from the generator's.
        ConfigError: ``synthetic`` does not hold ``per_class`` images of every class.
    """
    if synthetic is None:
        return sample_uint8_per_class(generator, per_class, seed=seed)
    _check_count("per_class", per_class, "synthetic images of each class")
    synthetic = _as_labelled(synthetic)
    if synthetic.image_shape != tuple(generator.image_shape):
        raise DataError(f"{call}: synthetic holds {synthetic.image_shape} images but the generator makes "
                        f"{tuple(generator.image_shape)}; pass the generator's own samples "
                        "(sample_uint8_per_class(generator, per_class, seed=seed))")
    if synthetic.num_classes != generator.num_classes:
        raise DataError(f"{call}: synthetic has {synthetic.num_classes} classes, the generator "
                        f"{generator.num_classes}")
    counts = synthetic.class_counts
    if any(count != per_class for count in counts):
        fix = f"pass per_class={counts[0]}" if len(set(counts)) == 1 else \
            "pass sample_uint8_per_class(generator, per_class, seed=seed)"
        raise ConfigError(f"{call}: synthetic holds {counts} images per class but per_class={per_class}; {fix}")
    return synthetic


@renamed_argument("n_per_class", "per_class")
def class_consistency(generator: ConditionalGenerator, classifier: torch.nn.Module, per_class: int = 100,
                      *, seed: int = 0, synthetic: LabelledImages | None = None) -> dict:
    """Share of each class's synthetic samples that ``classifier`` assigns to that class.

    Args:
        generator: the conditional generator to check.
        classifier: a classifier trained on real data (e.g. from :func:`train_classifier`).
        per_class: samples drawn per class.
        seed: seeds the generator's noise.
        synthetic: the images to check instead of sampling them: ``per_class`` images of every
            class of the generator (see :func:`synthetic_set`), e.g. one set shared by several metrics.

    Returns:
        ``{"per_class": {class name: share in [0, 1]}, "mean": mean share, "n_per_class": n}``
        (here ``"per_class"`` is the breakdown by class, so the count keeps the key ``n_per_class``).
    """
    synthetic = synthetic_set(generator, per_class, seed=seed, synthetic=synthetic, call="class_consistency")
    shares = per_class_accuracy(classifier, synthetic, num_classes=generator.num_classes)
    names = generator.class_names
    return {"per_class": dict(zip(names, shares)), "mean": float(sum(shares) / len(shares)),
            "n_per_class": per_class}


@renamed_argument("n_per_class", "per_class")
def classification_accuracy_score(
    generator: ConditionalGenerator,
    test_data,
    *,
    real_data=None,
    per_class: int = 500,
    steps: int = 500,
    epochs: float | None = None,
    min_steps: int = 0,
    batch_size: int = 128,
    seed: int = 0,
    augment: str = "classic",
    width: int = 16,
    device: str | torch.device | None = None,
    real_model: ReferenceClassifier | None = None,
    synthetic: LabelledImages | None = None,
) -> dict:
    """CAS: accuracy on real ``test_data`` of the reference classifier trained on synthetic data only.

    The classifier is trained on a fixed set of ``per_class`` synthetic images per class with
    the same budget (``steps``, ``batch_size``, ``augment``) as the real-data classifier, which
    is trained on ``real_data`` when given, so the two figures sit side by side. Pass
    ``real_model`` instead when a classifier with that budget is already trained on the real data.
    ``synthetic``: the training set instead of sampling it, ``per_class`` images of every class of
    the generator (see :func:`synthetic_set`), e.g. one set shared by several metrics.

    Returns:
        ``{"cas", "cas_per_class", "acc_real", "acc_real_per_class", "per_class", "steps", "seed"}``
        (``acc_real*`` are None without ``real_data`` or ``real_model``).
    """
    common = dict(steps=steps, epochs=epochs, min_steps=min_steps, batch_size=batch_size, seed=seed,
                  augment=augment, width=width, device=device)
    synthetic = synthetic_set(generator, per_class, seed=seed, synthetic=synthetic,
                              call="classification_accuracy_score")
    model = train_classifier(synthetic, **common)
    report = {
        "cas": evaluate_accuracy(model, test_data),
        "cas_per_class": per_class_accuracy(model, test_data, num_classes=generator.num_classes),
        "acc_real": None, "acc_real_per_class": None,
        "per_class": per_class, "steps": steps, "seed": seed,
    }
    if real_model is None and real_data is not None:
        real_model = train_classifier(real_data, num_classes=generator.num_classes, **common)
    if real_model is not None:
        report["acc_real"] = evaluate_accuracy(real_model, test_data)
        report["acc_real_per_class"] = per_class_accuracy(real_model, test_data,
                                                          num_classes=generator.num_classes)
    return report


# --------------------------------------------------------------------------- downstream gain
@renamed_argument("generator", "source")
def make_synthetic_mix(source, ratio: float, *, seed: int, mode: str = "append", balance=None, **options):
    """The batch mixer of arm b: ``SyntheticMix`` of ``source`` (a generator, a pool or a row
    source, as ``SyntheticMix`` takes) adding ``round(ratio * B)`` synthetic rows to each
    batch of B real rows (``mode="append"``, equal real exposure), or replacing a share ``ratio``
    of the rows (``mode="replace"``), with the classes of the batch unless ``balance`` says;
    ``options`` go to ``SyntheticMix`` (``teacher``, ``filter_threshold``, ``soft_labels``, ...)."""
    from ..mixing import SyntheticMix

    return SyntheticMix(source, ratio, mode=mode, balance=balance, seed=seed, **options)


def _teacher_control(teacher, num_classes: int):
    """The control arm of a soft-label method: the same teacher targets on real rows only."""
    from ..mixing import TeacherLabels

    kw = MIXING_METHODS["soft"]
    return TeacherLabels(teacher, kw["label_temperature"], kw["soft_label_weight"], num_classes)


def _choose(selection: dict[tuple[str, float], float]) -> tuple[str, float]:
    """Best validation accuracy; ties go to no synthetic data, then the smaller ratio, then the
    simpler method (the order of ``MIXING_METHODS``)."""
    order = {m: i for i, m in enumerate(["none", "soft-control", *MIXING_METHODS])}
    rank = lambda k: (k[1], order[k[0].partition(":")[0]], k[0])  # noqa: E731  vary:0.3 ranks as vary
    return best_candidate(sorted(selection, key=rank), selection.__getitem__)


#: The candidates of a validation choice that use no generator: B alone, and B with its teacher's
#: soft labels on the real rows.
NO_GENERATOR = ("none", "soft-control")
#: A synthetic candidate is mixed only when it beats B on the validation images by more than this
#: many standard errors (:func:`~augmentgen.metrics.stats.paired_gain_z`): a one-image lead among a
#: few disagreements is not enough. Fixed before it was measured, not fitted to any result; 0 mixes
#: on any lead.
DEFAULT_MIN_VALIDATION_Z = 1.0


def _guard(selection: dict[tuple[str, float], float], correct: dict[tuple[str, float], torch.Tensor],
           labels: torch.Tensor | None, min_z: float) -> tuple[str, float, dict | None]:
    """The validation choice (:func:`_choose`), kept to the best candidate without a generator
    (B alone, or B with soft labels) unless the synthetic one beats it by ``min_z`` standard errors
    on the same images (``correct``: per candidate, which validation images it got right; ``labels``
    for the class-balanced score). Returns ``(method, ratio, margin)``, ``margin`` (None where no
    synthetic candidate won) holding the winner, what it was held against, its gain, se and z, and
    whether it was ``held_back`` (z not above ``min_z``)."""
    method, ratio = _choose(selection)
    plain = {k: v for k, v in selection.items() if k[0] in NO_GENERATOR}
    if method in NO_GENERATOR or not plain:  # no ratio 0 among the candidates: the user asked to mix
        return method, ratio, None
    against = _choose(plain)
    margin = paired_gain_z(correct[(method, ratio)], correct[against], labels)
    margin = {"candidate": f"{method}@{ratio:g}", "against": f"{against[0]}@{against[1]:g}",
              **margin, "min_z": min_z, "held_back": not beats(margin["z"], min_z)}
    return (*(against if margin["held_back"] else (method, ratio)), margin)


# --------------------------------------------------------------------------- what will be trained
METRICS = {"accuracy": "accuracy", "balanced": "mean per-class accuracy"}


def _resolve_metric(metric: str, class_counts: Sequence[int]) -> str:
    """``"auto"``: mean per-class accuracy on imbalanced training data (its validation split is as
    imbalanced, so accuracy would favour the common classes), else accuracy."""
    if metric == "auto":
        return METRICS["balanced" if is_imbalanced(class_counts) else "accuracy"]
    if metric not in METRICS:
        raise ConfigError(f"metric must be 'auto', 'accuracy' or 'balanced' (mean per-class accuracy), got {metric!r}")
    return METRICS[metric]


def _resolve_balance(balance, class_counts: Sequence[int]):
    """``"auto"``: the synthetic rows go to the classes the mixer has shown least
    (``"inverse-frequency"``) on imbalanced training data, where extra rows matter most for the
    rare classes, else they follow the batch's classes (``None``); anything else is
    ``SyntheticMix``'s ``balance`` as it is."""
    if balance == "auto":
        return "inverse-frequency" if is_imbalanced(class_counts) else None
    return balance


def _planned_runs(n_baselines: int, methods: Sequence[str], candidate_ratios: Sequence[float],
                  ratio: float | None, include_noaug: bool, reuse_classic: bool, n_controls: int = 0) -> int:
    """The most classifiers one :func:`downstream_gain` call trains (a run is skipped when
    validation chooses the classic baseline or no synthetic rows; the controls train only beside a
    chosen synthetic method)."""
    selecting = ratio is None
    runs = n_baselines if _baselines_on_fit(n_baselines, methods, candidate_ratios, selecting) else 0
    if selecting:
        runs += int(0 in candidate_ratios and "soft" in methods)
        runs += len(methods) * len([r for r in candidate_ratios if r])
    # final arms: classic, the best baseline, B + synthetic, the soft control, the controls, no augmentation
    return runs + (not reuse_classic) + (n_baselines > 1) + 1 + ("soft" in methods) + n_controls + include_noaug


def _baselines_on_fit(n_baselines: int, methods: Sequence[str], candidate_ratios: Sequence[float],
                      selecting: bool) -> bool:
    """Whether the baselines train on the validation split's training part: to choose between
    several, or as the "no synthetic rows" candidate and the teacher of ``filter`` / ``soft``."""
    return n_baselines > 1 or (selecting and (0 in candidate_ratios or any(m in ("filter", "soft") for m in methods)))


def downstream_plan(train_data, *, baselines: str | Sequence[str] | None = "strong", methods: Sequence[str] = ("plain",),
                    candidate_ratios: Sequence[float] = (0.25, 0.5, 1.0), ratio: float | None = None,
                    metric: str = "auto", include_noaug: bool = True, reuse_classic: bool = False,
                    controls: str | Sequence[str] | None = DEFAULT_CONTROLS, bank_per_image: int | None = None) -> dict:
    """What :func:`downstream_gain` will train with these arguments, before it trains anything.

    ``train_data``: the training data, or its class counts. Returns ``{"baselines"`` (the names
    that will be trained), ``"controls"`` (the controls' names), ``"imbalanced"``,
    ``"imbalance_ratio"``, ``"metric"`` (what chooses and what the verdict compares), ``"classifier_runs"`` (at most this many classifiers, each
    with the full budget), ``"classifier_runs_classic_only"`` (the same with ``baselines="none"``:
    the difference is what the baselines cost), ``"bank_per_image"`` and ``"bank_fills"`` (at most
    this many banks filled, each sampled once: 0 without ``bank_per_image``)``}``.
    """
    counts = train_data.class_counts if hasattr(train_data, "class_counts") else list(train_data)
    _check_ratios(candidate_ratios, ratio, "append")
    names = resolve_baselines(baselines, counts)
    methods = _check_methods(methods, ratio, "append")  # as downstream_gain will take them
    control_names = resolve_controls(controls)
    bank_per_image = check_bank_per_image(bank_per_image)
    shared = dict(methods=methods, candidate_ratios=candidate_ratios, ratio=ratio, include_noaug=include_noaug,
                  reuse_classic=reuse_classic, n_controls=len(control_names))
    return {"baselines": names, "controls": control_names, "imbalanced": is_imbalanced(counts),
            "imbalance_ratio": imbalance_ratio(counts),
            "metric": _resolve_metric(metric, counts),
            "classifier_runs": _planned_runs(len(names), **shared),
            "classifier_runs_classic_only": _planned_runs(1, **shared),
            "methods": list(methods), "bank_per_image": bank_per_image,
            "bank_fills": 0 if bank_per_image is None else _planned_bank_fills(methods, candidate_ratios, ratio)}


def _bank_rows(method: str) -> tuple:
    """What a bank of ``method``'s rows holds, as :meth:`_GainArms.mix` keys it (one teacher):
    ``plain``, ``soft`` and ``weighted`` share the bank of free samples, which ``filter`` filters."""
    kw = split_method_options(method)[0]
    if "variation" in kw:
        return (kw.pop("variation"), *sorted(kw.items()))
    return ("filter",) if "filter_threshold" in kw else ("free",)


def _planned_bank_fills(methods: Sequence[str], candidate_ratios: Sequence[float], ratio: float | None) -> int:
    """The most banks one :func:`downstream_gain` call fills: one per kind of rows among the
    validation candidates, and the final arm's unless it draws free samples, whose one bank the
    validation candidates share with it (:meth:`_GainArms.free_bank`); ``filter`` filters that
    bank, sampling nothing."""
    if ratio is not None:
        return int(bool(ratio))
    if not any(candidate_ratios):
        return 0
    free = _bank_rows("plain")
    kinds = {free if m == "filter" else _bank_rows(m) for m in methods}
    return len(kinds) + int(kinds != {free})


class _Runs:
    """Counts the classifiers trained and moves an optional tqdm bar: one step per classifier,
    its name beside the bar; runs the plan counted but that were not needed leave its total."""

    def __init__(self, progress, planned: int):
        self.progress, self.planned, self.done = progress, planned, 0

    def train(self, what: str, **kwargs) -> ReferenceClassifier:
        if self.progress is not None:
            self.progress.set_postfix_str(what, refresh=True)
        model = train_classifier(**kwargs)
        self.done += 1
        if self.progress is not None:
            self.progress.update(1)
        return model

    def close(self) -> None:
        """Take the runs that were planned but not needed off the bar's total."""
        if self.progress is not None and self.planned > self.done and self.progress.total is not None:
            self.progress.total -= self.planned - self.done
            self.progress.refresh()


# --------------------------------------------------------------------------- downstream gain
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
    baselines: str | Sequence[str] | None = "strong",
    controls: str | Sequence[str] | None = DEFAULT_CONTROLS,
    metric: str = "auto",
    mode: str = "append",
    balance="auto",
    validation_fraction: float = 0.2,
    batch_size: int = 128,
    width: int = 16,
    include_noaug: bool = True,
    device: str | torch.device | None = None,
    real_classic_model: ReferenceClassifier | None = None,
    progress=None,
    bank_per_image: int | str | None = "auto",
    min_validation_z: float = DEFAULT_MIN_VALIDATION_Z,
    bank_folder: str | os.PathLike | None = None,
) -> dict:
    """ΔAcc: do ``generator``'s samples improve on the best a user can do without a generator?

    1. **Best baseline.** Every baseline of ``baselines`` (see :mod:`augmentgen.metrics.baselines`:
       ``"strong"`` is classic augmentation and MixUp/CutMix, plus class-balanced resampling and
       logit adjustment on imbalanced data; ``"none"`` is classic augmentation alone) trains on a
       stratified validation split carved from ``train_data`` (``validation_fraction`` of each
       class; the classifiers train on the rest); the best on the validation images is B.
    2. **Synthetic methods on top of B.** With ``ratio=None`` every method of ``methods`` (see
       :data:`MIXING_METHODS`) at every non-zero ratio of ``candidate_ratios`` trains with B's
       options plus ``round(ratio * batch_size)`` synthetic rows appended to every batch
       (``SyntheticMix``; ``mode="replace"`` replaces rows instead, showing fewer real rows), and
       is scored on the same validation images. A candidate ratio of 0 is B alone: validation
       can decide against synthetic data. The teacher of ``filter`` / ``soft`` is B's classifier;
       ``weighted`` needs none: its rows count half a real row in the loss. The best candidate
       is mixed only when it beats the best candidate without a generator (B alone, or B with
       its teacher's soft labels) by more than ``min_validation_z`` standard errors on the same
       validation images (:func:`~augmentgen.metrics.stats.paired_gain_z`; McNemar's z for
       accuracy), else that candidate is kept: a lead of an image or two on a small validation
       split is noise, and mixing on it can cost test accuracy. 0 mixes on any lead.
    3. **Final arms**, the only use of ``test_data``: classic augmentation, B, and B + the chosen
       method, each trained on all of ``train_data``; with ``include_noaug`` also real data
       without augmentation, for reference.
    4. **Controls**, beside a chosen synthetic method: B with as many rows a step made without a
       generator (:mod:`augmentgen.metrics.controls`: ``"real-rows"``, copies of real rows
       re-augmented; ``"pixel-mix"``, same-class MixUp in pixels), trained on all of
       ``train_data`` and tested like the final arms, so the verdict credits the generator only
       with what it adds beyond them. ``controls="none"`` skips them (two fewer classifiers).

    All arms share the :class:`ReferenceClassifier`, budget (``steps``, or ``epochs`` of the
    real data with at least ``min_steps``), ``batch_size`` and seed: the same initialisation,
    batch order and augmentation of the real rows. The choices use ``metric``: ``"auto"`` is
    the mean per-class accuracy when the training data is imbalanced (class counts differing by
    more than 2x), else accuracy; ``"accuracy"`` or ``"balanced"`` force one. ``balance`` says
    which classes the synthetic rows take (``SyntheticMix``'s ``balance``); ``"auto"`` (the
    default) is ``"inverse-frequency"`` on such imbalanced data, else the batch's classes.
    ``real_classic_model``: a classifier already trained on ``train_data`` with classic
    augmentation and this budget and seed, used as the classic arm instead of training it again.
    ``progress``: a tqdm bar (anything with ``update``, ``set_postfix_str`` and ``total``)
    advanced once per classifier; :func:`downstream_plan` says how many to expect.
    ``bank_per_image``: ``"auto"`` (the default) takes the family's
    :attr:`~augmentgen.models.ConditionalGenerator.default_bank_per_image`: a bank of 4 for ``ddpm``,
    whose sampler runs many network passes per image, live sampling for the others. None samples
    every synthetic arm's rows live at each training step. An int K >= 1
    gives each synthetic arm a :class:`~augmentgen.mixing.SyntheticPool` filled once for the data
    that arm trains on (the validation split's training part for a validation candidate, so no row
    is made from a validation image; all of ``train_data`` for a final arm): ``K * (images in its
    largest class)`` free samples per class, or for the variation methods ``K`` variations per image
    of the largest class (:meth:`~augmentgen.mixing.SyntheticPool.from_variations`). Candidates
    that draw the same rows (``plain``, ``soft`` and ``weighted`` at any ratio) share one bank, and
    free samples, which no real image decides, are one bank for the final arm whose head the
    validation candidates draw (:meth:`~augmentgen.mixing.SyntheticPool.head`); ``filter``'s rows
    are the images of that bank (or head) its teacher accepts
    (:meth:`~augmentgen.mixing.SyntheticPool.filtered`), so it samples nothing more.
    :func:`downstream_plan` counts the fills (``"bank_fills"``). ``bank_folder``: each bank is
    saved there as it is filled and read back by a later call with the same generator, seed, data
    and bank size instead of filled again (:class:`~augmentgen.metrics.bank_store.BankStore`), so
    a killed evaluation does not sample its banks again; ``bank_fills`` counts only the banks
    filled. :func:`evaluate_generator` with a ``checkpoint_file`` keeps them beside it.

    Returns:
        A dict with ``best_baseline``, ``baselines`` (the names trained), ``baseline_selection``
        (validation score of each, or None), ``method`` and ``ratio`` (``"none"`` and 0 when
        validation chose B alone), ``selection`` (validation score per ``"method@ratio"`` on top
        of B, ``"none@0"`` being B alone; None with a fixed ``ratio``), ``ratio_selection`` (the
        ``plain`` method's by ratio), ``metric``, test accuracies ``acc_real_classic``,
        ``acc_best_baseline``, ``acc_mixed``, ``acc_real_noaug`` and their ``per_class_*``,
        the same in ``metric`` as ``score_*``, ``delta`` (``score_mixed - score_best_baseline``:
        what the verdict reads; it can be negative and is reported as it is), ``delta_vs_classic``,
        ``controls`` (per control trained: ``{"acc", "score", "per_class", "delta"}``, ``delta``
        being ``score_mixed`` minus the control's score; empty when no synthetic method was chosen),
        ``verdict`` (one seed: never a recommendation to mix), ``classifier_runs``, ``steps``,
        ``batch_size``, ``seed``, ``bank_per_image`` and ``bank_fills`` (banks filled; 0 without a
        bank), ``min_validation_z`` and ``validation_margin`` (None unless a synthetic candidate
        led on validation: ``{"candidate", "against", "gain", "se", "z", "min_z", "held_back"}``);
        a ``soft`` choice adds ``acc_teacher_control`` (the teacher's soft targets on real rows
        only) and ``delta_vs_control``.
    """
    _check_generator(generator, "downstream_gain")
    train_data, test_data = _as_labelled(train_data), _as_labelled(test_data)
    _check_generator_fits(generator, train_data)
    seed = _check_seed(seed)  # numpy's ints too, as an int torch takes
    methods, names, control_names, metric, balance = _check_choices(
        generator, train_data.class_counts, ratio=ratio, candidate_ratios=candidate_ratios,
        methods=methods, baselines=baselines, controls=controls, metric=metric, mode=mode, balance=balance,
        validation_fraction=validation_fraction, min_validation_z=min_validation_z)
    _check_run(progress, include_noaug=include_noaug, real_classic_model=real_classic_model, steps=steps,
               epochs=epochs, min_steps=min_steps, batch_size=batch_size, width=width)
    bank_per_image = check_bank_per_image(bank_per_image, generator)  # "auto": the family's default
    device = _check_device(device)
    check_held_out(train_data, test_data, warn=False)  # evaluate_generator warns of a few copies, once
    runs = _Runs(progress, _planned_runs(len(names), methods, candidate_ratios, ratio, include_noaug,
                                         real_classic_model is not None, len(control_names)))
    original_device = generator.device
    generator.to(device)  # SyntheticMix samples on the batch's device
    arms = _GainArms(generator, runs, seed=seed, mode=mode, balance=balance, metric=metric, controls=control_names,
                     bank_per_image=bank_per_image, final_largest_class=max(train_data.class_counts), steps=steps,
                     epochs=epochs, min_steps=min_steps, batch_size=batch_size, width=width, device=device)
    arms.store = _bank_store(bank_folder, generator, bank_per_image)
    try:
        report = _choose_and_test(arms, train_data, test_data, names, methods, ratio, candidate_ratios,
                                  validation_fraction, real_classic_model, float(min_validation_z))
        report.update(balance=balance, min_validation_z=float(min_validation_z))
        if include_noaug:
            plain = runs.train("final: real, no augmentation", train_data=train_data, augment="none",
                               **arms.common)
            report["acc_real_noaug"] = evaluate_accuracy(plain, test_data)
            report["per_class_real_noaug"] = per_class_accuracy(plain, test_data)
        report["verdict"] = verdict(report)
        report["classifier_runs"] = runs.done
        report["bank_per_image"], report["bank_fills"] = bank_per_image, arms.bank_fills
    finally:
        generator.to(original_device)
        runs.close()
    return report


def _bank_store(bank_folder, generator: ConditionalGenerator, bank_per_image: int | None):
    """The :class:`~augmentgen.metrics.bank_store.BankStore` of ``bank_folder`` (None without a
    folder, or without banks to keep)."""
    if bank_folder is None or bank_per_image is None:
        return None
    check_path(bank_folder, "bank_folder", kind="a folder path or None", empty="would keep banks loose in the "
               "current folder", example="a folder for them, such as 'eval.banks', or None to keep none")
    # Refused now, not once a bank (an hour of a ddpm's sampling on a CPU) has been filled.
    check_writable(bank_folder, "bank_folder", fix="pass a folder path (the banks go into it), or None to keep none")
    from .bank_store import BankStore

    return BankStore(bank_folder, generator)


def _check_generator_fits(generator: ConditionalGenerator, train_data: LabelledImages) -> None:
    """The generator makes images of the data's shape and classes (a warning for other class names)."""
    if generator.image_shape != train_data.image_shape:
        raise DataError(f"the generator makes {generator.image_shape} images but the data is "
                        f"{train_data.image_shape}")
    if generator.num_classes != train_data.num_classes:
        raise DataError(f"the generator has {generator.num_classes} classes, the data {train_data.num_classes}")
    warn_if_class_names_differ(generator.class_names, train_data.class_names, model="the generator",
                               data="train_data", stacklevel=3)


def _choose_and_test(arms: _GainArms, train_data: LabelledImages, test_data: LabelledImages, names: list[str],
                     methods: list[str], ratio: float | None, candidate_ratios: Sequence[float],
                     validation_fraction: float, real_classic_model, min_z: float) -> dict:
    """The best baseline and the synthetic method and ratio chosen on a validation split carved from
    ``train_data`` (none where nothing is to choose; a synthetic candidate only by more than
    ``min_z`` standard errors, :func:`_guard`), then the final arms on all of it, tested once."""
    best, best_on_fit, baseline_selection, selection, method = "classic", None, None, None, methods[0]
    margin = None
    selecting = ratio is None
    if _baselines_on_fit(len(names), methods, candidate_ratios, selecting):
        fit, val = validation_split(train_data, validation_fraction, seed=arms.seed)
        best, best_on_fit, baseline_selection = arms.select_baseline(fit, val, names)
    if selecting:
        if best_on_fit is None:  # only plain candidates, classic alone: no baseline on fit needed
            fit, val = validation_split(train_data, validation_fraction, seed=arms.seed)
        selection = arms.select(fit, val, best, best_on_fit, methods, candidate_ratios)
        labels = val.labels if arms.metric == METRICS["balanced"] else None
        method, ratio, margin = _guard(selection, arms.val_correct, labels, min_z)
    report = arms.final(train_data, test_data, best, method, float(ratio), real_classic_model)
    report.update(baselines=names, baseline_selection=baseline_selection, validation_margin=margin)
    report["selection"] = None if selection is None else {f"{m}@{r:g}": v for (m, r), v in selection.items()}
    report["ratio_selection"] = None if selection is None else {
        r: v for (m, r), v in selection.items() if m in ("plain", "none")} or None
    return report


def _check_methods(methods: Sequence[str], ratio: float | None, mode: str) -> list[str]:
    """``methods`` as a list: at least one, every one known, one method for a fixed ratio, and a
    loss weight only on appended rows."""
    if isinstance(methods, str):  # list("weighted") would be the methods 'w', 'e', ...
        raise ConfigError(f"methods takes a list of mixing method names, got the string {methods!r}: "
                          f"pass methods={methods.split(',')!r}")
    if not methods:
        raise ConfigError(f"methods={methods!r} names no mixing method: pass at least one, like methods=['plain'] "
                          "(validation can still choose none: a candidate ratio of 0 is the baseline alone)")
    try:
        methods = list(methods)
    except TypeError:
        raise ConfigError(f"methods takes a list of mixing method names, got {methods!r}: pass methods=['plain'] "
                          f"(names from {sorted(MIXING_METHODS)})") from None
    for method in methods:
        method_options(method)
    methods = list(dict.fromkeys(methods))  # a method given twice is one candidate, trained once
    if ratio is not None and len(methods) != 1:
        raise ConfigError(f"a fixed ratio needs exactly one method, got {methods}")
    weighted = [m for m in methods if split_method_options(m)[1]]
    if weighted and mode == "replace":
        raise ConfigError(f"method {weighted[0]} weights the loss of the rows appended after the real ones; it "
                          "needs mode='append', not 'replace'")
    return methods


# --------------------------------------------------------------------------- argument checks
# Every argument of downstream_gain and evaluate_generator is checked before the first classifier
# trains (each takes minutes at the default budget), so a typo fails in well under a second.
def _check_choices(generator: ConditionalGenerator, class_counts: Sequence[int], *, ratio, candidate_ratios,
                   methods, baselines, controls, metric, mode, balance, validation_fraction=0.2,
                   min_validation_z=DEFAULT_MIN_VALIDATION_Z) -> tuple:
    """The choices of :func:`downstream_gain`, checked without training anything: ``(methods,
    baseline names, control names, metric, balance)`` as it uses them. Data that the validation
    split it will need cannot split is refused here too. (The seed is its callers' first check.)"""
    if mode not in ("append", "replace"):
        raise ConfigError(f"mode must be 'append' or 'replace', got {mode!r}")
    _check_ratios(candidate_ratios, ratio, mode)
    _check_min_validation_z(min_validation_z)
    methods = _check_methods(methods, ratio, mode)
    _check_methods_fit(generator, methods)
    names = resolve_baselines(baselines, class_counts)
    control_names = resolve_controls(controls)
    metric = _resolve_metric(metric, class_counts)
    _check_balance(balance, generator)
    balance = _resolve_balance(balance, class_counts)
    if ratio is None or len(names) > 1:  # choosing a ratio or a baseline: on a validation split
        check_splittable(class_counts, validation_fraction, generator.class_names)
    return methods, names, control_names, metric, balance


def _check_min_validation_z(value) -> None:
    """A finite number >= 0 (standard errors; 0 mixes on any validation lead)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"min_validation_z takes a finite number >= 0 (the standard errors by which synthetic "
                          f"rows must beat the best baseline on validation to be mixed; {DEFAULT_MIN_VALIDATION_Z:g} "
                          f"by default, 0 mixes on any lead), got {value!r}")


def _check_balance(balance, generator: ConditionalGenerator) -> None:
    """``balance`` checked as ``SyntheticMix`` checks it (or ``"auto"``), before the baselines train
    rather than when the first mixer is made after them."""
    from ..mixing.checks import parse_balance

    if isinstance(balance, str) and balance == "auto":
        return
    try:
        parse_balance(balance, generator.num_classes, generator.class_names)
    except ConfigError as exc:
        if isinstance(balance, Mapping):  # the message names the key or weight and the fix
            raise
        raise ConfigError(f"{exc}; or 'auto' (the default: 'inverse-frequency' on imbalanced training data, "
                          "else None)") from None


def _check_run(progress, *, include_noaug: bool = True, real_classic_model=None, **budget) -> None:
    """The classifiers' budget (:func:`~.classifier.check_budget`, as ``train_classifier`` checks
    it), the progress bar and the other arguments of a run that train nothing themselves."""
    check_budget(**budget)
    if progress is not None and not all(hasattr(progress, a) for a in ("update", "set_postfix_str", "total")):
        raise ConfigError("progress takes a tqdm bar (anything with update(), set_postfix_str() and total) or None, "
                          f"got the {type(progress).__name__} {progress!r}")
    check_flag(include_noaug, "include_noaug")
    if real_classic_model is not None and not isinstance(real_classic_model, torch.nn.Module):
        raise ConfigError("real_classic_model takes a classifier trained by train_classifier (a ReferenceClassifier) "
                          f"or None, got the {type(real_classic_model).__name__} {real_classic_model!r}")


def check_bank_per_image(bank_per_image, generator: ConditionalGenerator | None = None) -> int | None:
    """``bank_per_image``: None (rows sampled live at each step), an int >= 1, or ``"auto"``: the
    generator's family's :attr:`~augmentgen.models.ConditionalGenerator.default_bank_per_image`
    (needs ``generator``). Returns the resolved value."""
    if isinstance(bank_per_image, str) and bank_per_image == "auto":
        if generator is None:
            raise ConfigError("bank_per_image='auto' is the generator's family default: pass generator=... to "
                              "resolve it, or an int >= 1 (a bank) or None (rows sampled at every step)")
        return generator.default_bank_per_image
    if bank_per_image is not None and (isinstance(bank_per_image, bool) or not isinstance(bank_per_image, numbers.Integral)
                                       or bank_per_image < 1):
        auto = " or 'auto' (the family's default)" if generator is not None else ""
        raise ConfigError("bank_per_image takes a number of synthetic rows per real image, an int >= 1 (a bank "
                          f"filled once per synthetic arm), None (rows sampled at every step){auto}; got "
                          f"{bank_per_image!r}")
    return None if bank_per_image is None else int(bank_per_image)


def _check_generator(generator, call: str) -> None:
    """The first argument is the generator (arguments passed in another order fail here, not deep inside)."""
    check_generator_argument(generator, call, f"{call}(generator, train_data, test_data)")


def _check_seed(seed) -> int:
    return check_seed(seed, use="it seeds the classifiers, the sampling and the validation split", bits=63)


def _ratio_ok(value, mode: str) -> bool:
    """Whether ``value`` is a finite number >= 0 (and <= 1 when the rows replace real ones)."""
    if isinstance(value, (bool, str, bytes)):
        return False
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and number >= 0 and not (mode == "replace" and number > 1)


def _check_ratios(candidate_ratios, ratio, mode: str) -> None:
    """A fixed ``ratio``, or else ``candidate_ratios``: a non-empty list of finite numbers >= 0 (the
    messages follow ``augmentgen eval --ratios``)."""
    wanted = ("numbers in [0, 1] (the share of each batch replaced, mode='replace')" if mode == "replace"
              else "numbers >= 0 (synthetic rows per real row)")
    if ratio is not None:
        if not _ratio_ok(ratio, mode):
            raise ConfigError(f"ratio takes one of the {wanted}, like ratio=0.5; got {ratio!r}")
        return
    if isinstance(candidate_ratios, (str, bytes)) or not isinstance(candidate_ratios, Collection):
        if isinstance(candidate_ratios, str):
            try:
                fix = [float(r) for r in candidate_ratios.split(",") if r.strip()]
            except ValueError:
                fix = []
        else:
            fix = [candidate_ratios] if _ratio_ok(candidate_ratios, mode) else []
        example = f"pass candidate_ratios={fix!r}" if fix and all(_ratio_ok(r, mode) for r in fix) else \
            "like candidate_ratios=[0, 0.25, 0.5, 1]"
        what = f"the string {candidate_ratios!r}" if isinstance(candidate_ratios, str) else repr(candidate_ratios)
        raise ConfigError(f"candidate_ratios takes a list of {wanted}, got {what}: {example}")
    if len(candidate_ratios) == 0:
        raise ConfigError(f"candidate_ratios={candidate_ratios!r} names no ratio: pass at least one, like "
                          "candidate_ratios=[0, 0.25, 0.5, 1] (0 lets validation choose the baseline alone)")
    bad = [r for r in candidate_ratios if not _ratio_ok(r, mode)]
    if bad:
        raise ConfigError(f"candidate_ratios takes {wanted} like [0, 0.25, 0.5, 1]; got {bad[0]!r} in "
                          f"{candidate_ratios!r}")


def unfit_method(generator: ConditionalGenerator, methods: Sequence[str]) -> tuple[str, ConfigError] | None:
    """The first variation method (``vary``, ``vary:0.3``, ``interpolate``, ``extrapolate``) of
    ``methods`` that ``generator`` cannot run, with the reason; None when it can run them all.
    Callers word the refusal in their own terms (``methods=`` here, ``--methods`` on the CLI)."""
    from ..mixing import VariationSource

    for method in methods:
        options = split_method_options(method)[0]
        if "variation" in options:
            try:
                VariationSource(generator, options.pop("variation"), **options)  # as _GainArms.mix makes it
            except ConfigError as exc:
                return method, exc
    return None


def resolve_methods(methods: str | Sequence[str], generator: ConditionalGenerator | None) -> Sequence[str]:
    """``methods``, with ``"auto"`` as the generator's default candidates: free samples, and rows made
    from real images (``vary``) where the family makes them. The benchmark suite's best synthetic
    arm in every measured cell was such rows, never free samples (``benchmarks/README.md``)."""
    if not (isinstance(methods, str) and methods == "auto"):
        return methods
    if generator is None:
        raise ConfigError("methods='auto' is the generator's family default: pass generator=... to resolve it, "
                          "or a list of methods such as ['plain', 'vary']")
    return ("plain",) if unfit_method(generator, ["vary"]) is not None else ("plain", "vary")


def _check_methods_fit(generator: ConditionalGenerator, methods: list[str]) -> None:
    """A variation method the generator cannot run fails now, not after the baselines trained."""
    unfit = unfit_method(generator, methods)
    if unfit is not None:
        method, exc = unfit
        raise ConfigError(f"methods: {method}: {exc}; or drop {method!r} from methods")


def _check_device(device) -> torch.device:
    """``device`` as a ``torch.device`` (None: CUDA when available), refused when it is malformed
    or absent here, before any model moves (as ``augmentgen --device``)."""
    if device is None:
        return default_device()
    return check_device(device, shown=f"device={device!r}", unset="device=None")


class _GainArms:
    """The classifier arms of :func:`downstream_gain`, all with one budget, seed and device."""

    def __init__(self, generator: ConditionalGenerator, runs: _Runs, *, seed: int, mode: str, balance,
                 metric: str, controls: Sequence[str] = (), bank_per_image: int | None = None,
                 final_largest_class: int = 1, **budget):
        self.generator, self.runs, self.seed, self.mode, self.balance = generator, runs, seed, mode, balance
        self.metric, self.num_classes, self.controls = metric, generator.num_classes, list(controls)
        self.common = {**budget, "seed": seed, "num_classes": generator.num_classes}
        self.bank_per_image, self.bank_fills = bank_per_image, 0
        self.final_largest_class = final_largest_class  # of the training data: sizes the bank of free samples
        self._banks: dict[tuple, object] = {}  # (data, rows) -> SyntheticPool, filled once each
        self.store = None  # a BankStore: banks kept on disk, read back by a later call
        self.val_correct: dict[tuple[str, float], torch.Tensor] = {}  # candidate -> validation images it got right

    def train(self, what: str, data: LabelledImages, baseline: str = "classic", synthetic_mix=None,
              method: str | None = None) -> ReferenceClassifier:
        """The classifier of ``baseline`` (classic augmentation and its options) on ``data``, with
        ``synthetic_mix`` and the ``train_classifier`` options of ``method`` that made it (the loss
        weight of ``weighted``), which go only with a mixer ("none" and "soft-control" have none)."""
        mixing = synthetic_mix is not None and method not in (None, "none", "soft-control")
        options = split_method_options(method)[1] if mixing else {}
        return self.runs.train(what, train_data=data, augment="classic", synthetic_mix=synthetic_mix,
                               **baseline_options(baseline, self.num_classes), **options, **self.common)

    def score_candidate(self, key: tuple[str, float], model: ReferenceClassifier, val: LabelledImages) -> float:
        """``model``'s validation score, keeping which images it got right (the guard's paired test)."""
        self.val_correct[key] = predict(model, val.images).cpu() == val.labels.cpu()
        return self.score(model, val)

    def score(self, model: ReferenceClassifier, data: LabelledImages) -> float:
        """``metric`` of ``model`` on ``data``: accuracy, or the mean over the classes present."""
        if self.metric == METRICS["accuracy"]:
            return evaluate_accuracy(model, data)
        per_class = torch.tensor(per_class_accuracy(model, data, num_classes=self.num_classes))
        return float(per_class[~per_class.isnan()].mean())

    def mix(self, method: str, ratio: float, teacher: ReferenceClassifier | None, data: LabelledImages,
            role: str = "final"):
        """The batch mixer of ``method`` at ``ratio``, with ``teacher`` where the method needs one;
        with a bank, its rows come from a bank filled once from ``data``, the data the arm trains on
        (``role`` names it on the progress bar)."""
        if method == "soft-control":
            return _teacher_control(teacher, self.num_classes)
        if not ratio or method == "none":
            return None
        kw = split_method_options(method)[0]  # the mixer's options; train() takes the classifier's
        mixer = dict(seed=self.seed, mode=self.mode, balance=self.balance)
        if "variation" in kw:  # rows made from the batch's real rows
            from ..mixing import VariationSource

            variation = kw.pop("variation")
            source = VariationSource(self.generator, variation, **kw)  # kw: vary's strength
            if self.bank_per_image is not None:  # made once from the arm's own images
                source = self.bank(data, role, _bank_rows(method), lambda pool: pool.from_variations(
                    source, data.images, data.labels, per_image=self.bank_per_image, seed=self.seed))
            return make_synthetic_mix(source, ratio, **mixer)
        options = {**kw, "teacher": teacher} if kw else {}
        if self.bank_per_image is None:
            return make_synthetic_mix(self.generator, ratio, **mixer, **options)
        per_class = self.bank_per_image * max(data.class_counts)
        source = self.free_bank(role)
        source = source if per_class == source.per_class else source.head(per_class)
        if "filter_threshold" in kw:  # the images of that bank this data's teacher accepts: no new samples
            threshold = options.pop("filter_threshold")
            options.pop("teacher")
            key = (*_bank_rows(method), id(teacher), threshold, per_class)
            source = self.bank(data, role, key, lambda _: source.filtered(teacher, threshold), fills=False)
        return make_synthetic_mix(source, ratio, **mixer, **options)

    def free_bank(self, role: str):
        """The bank of free samples, sized for the final arm (``bank_per_image`` rows per image of
        the training data's largest class) and filled once. Free samples do not depend on the data
        they are mixed into, only the bank's size, so a validation candidate draws the head of this
        bank (:meth:`~augmentgen.mixing.SyntheticPool.head`, cut to its training part's size) and
        the final arm all of it: one fill where a slow sampler used to make two."""
        per_class = self.bank_per_image * self.final_largest_class
        return self.bank(None, role, _bank_rows("plain"),
                         lambda pool: pool(self.generator, per_class=per_class, seed=self.seed))

    def bank(self, data: LabelledImages | None, role: str, rows: tuple, fill, *, fills: bool = True):
        """The bank of ``rows`` made from ``data`` (None: from no data, the free samples), filled
        (``fill(SyntheticPool)``) the first time it is asked for: every candidate drawing the same
        rows from the same data shares it. ``fills``: False where ``fill`` samples nothing (a
        teacher's filter of the free bank), which then does not count as a fill."""
        from ..mixing import SyntheticPool

        key = (id(data), rows)
        if key not in self._banks:
            if self.runs.progress is not None and fills:
                self.runs.progress.set_postfix_str(f"{role}: filling a bank of synthetic rows ({rows[0]})",
                                                   refresh=True)
            try:
                bank, filled = self.kept_bank(data, rows, lambda: fill(SyntheticPool)) if fills else \
                    (fill(SyntheticPool), False)
            except DataError as exc:  # a filtered bank whose teacher accepted no image of a class
                bank, filled = exc, False  # not filtered again for the next ratio
            self._banks[key] = (data, bank)  # data kept: its id stays its own
            self.bank_fills += int(filled)
        bank = self._banks[key][1]
        if isinstance(bank, DataError):
            raise bank
        return bank

    def kept_bank(self, data: LabelledImages | None, rows: tuple, fill) -> tuple[object, bool]:
        """``(bank, filled)``: ``fill()``, or, with a :attr:`store`, the bank it kept for the same
        rows, data and size (saved there when filled here)."""
        if self.store is None:
            return fill(), True
        from .eval_checkpoint import as_json_values, data_sha256

        what = {"rows": as_json_values(rows), "data_sha256": None if data is None else data_sha256(data),
                "bank_per_image": self.bank_per_image, "final_largest_class": self.final_largest_class}
        filled = []
        bank = self.store.get(self.seed, what, lambda: filled.append(True) or fill())
        return bank, bool(filled)

    def select_baseline(self, fit: LabelledImages, val: LabelledImages, names: list[str]
                        ) -> tuple[str, ReferenceClassifier, dict[str, float]]:
        """The best baseline on ``val`` (ties: the earlier, simpler one), its classifier, every score."""
        models = {name: self.train(f"validation: baseline {name}", fit, name) for name in names}
        scores = {name: self.score(model, val) for name, model in models.items()}
        best = best_candidate(names, scores.__getitem__)
        return best, models[best], scores

    def select(self, fit: LabelledImages, val: LabelledImages, best: str, best_on_fit: ReferenceClassifier | None,
               methods: list[str], candidate_ratios: Sequence[float]) -> dict[tuple[str, float], float]:
        """Validation score of every (method, ratio) candidate on top of baseline ``best``, whose
        classifier ``best_on_fit`` is the ratio-0 candidate and the teacher."""
        selection = {}
        if 0 in candidate_ratios:
            selection[("none", 0.0)] = self.score_candidate(("none", 0.0), best_on_fit, val)
            if "soft" in methods:  # soft labels without synthetic rows: no credit to the generator
                control = self.train(f"validation: {best} + teacher soft labels, no synthetic rows", fit, best,
                                     self.mix("soft-control", 0.0, best_on_fit, fit))
                selection[("soft-control", 0.0)] = self.score_candidate(("soft-control", 0.0), control, val)
        for m in methods:
            for candidate in (float(r) for r in candidate_ratios if r):
                try:
                    mix = self.mix(m, candidate, best_on_fit, fit, "validation")
                except DataError as exc:  # only a bank fills here: its teacher refused a whole class
                    warnings.warn(f"downstream_gain: {m}@{candidate:g} is left out of the validation choice: {exc}",
                                  stacklevel=3)
                    continue
                model = self.train(f"validation: {best} + {m}@{candidate:g}", fit, best, mix, m)
                selection[(m, candidate)] = self.score_candidate((m, candidate), model, val)
        return selection

    def final(self, train_data: LabelledImages, test_data: LabelledImages, best: str, method: str, ratio: float,
              classic: ReferenceClassifier | None) -> dict:
        """The test-set arms of baseline ``best`` and ``method`` at ``ratio`` (the only use of the test set)."""
        if classic is None:
            classic = self.train("final: classic", train_data)
        model = classic if best == "classic" else self.train(f"final: {best}", train_data, best)
        # Method "none" (validation says: do not mix) is the best baseline's arm itself.
        mixed = model if method == "none" else self.train(
            f"final: {best} + {method}@{ratio:g}", train_data, best, self.mix(method, ratio, model, train_data),
            method)
        b = self.common
        report = {"metric": self.metric, "best_baseline": best, "method": method, "ratio": ratio,
                  "acc_real_noaug": None, "per_class_real_noaug": None,
                  "acc_teacher_control": None, "delta_vs_control": None, "controls": {}}
        for arm, classifier in (("real_classic", classic), ("best_baseline", model), ("mixed", mixed)):
            report[f"acc_{arm}"] = evaluate_accuracy(classifier, test_data)
            report[f"per_class_{arm}"] = per_class_accuracy(classifier, test_data, num_classes=self.num_classes)
            report[f"score_{arm}"] = self.score(classifier, test_data)
        report["delta"] = report["score_mixed"] - report["score_best_baseline"]
        report["delta_vs_classic"] = report["score_mixed"] - report["score_real_classic"]
        if method == "soft":  # the teacher's soft targets on real rows only: what the rows add
            control = self.train(f"final: {best} + teacher soft labels, no synthetic rows", train_data, best,
                                 _teacher_control(model, self.num_classes))
            report["acc_teacher_control"] = evaluate_accuracy(control, test_data)
            report["delta_vs_control"] = report["acc_mixed"] - report["acc_teacher_control"]
        if method not in ("none", "soft-control"):
            report["controls"] = self.control_arms(train_data, test_data, best, method, ratio, report["score_mixed"])
        report.update(steps=b["steps"], epochs=b["epochs"], mode=self.mode, batch_size=b["batch_size"], seed=self.seed)
        return report

    def control_arms(self, train_data: LabelledImages, test_data: LabelledImages, best: str, method: str,
                     ratio: float, score_mixed: float) -> dict[str, dict]:
        """B with as many rows a step from each control as ``method`` adds at ``ratio``, made without a
        generator (the same mixer settings and classifier options), scored on the test set."""
        arms = {}
        for name in self.controls:
            mix = make_synthetic_mix(control_source(name, train_data, self.common["device"]), ratio, seed=self.seed,
                                     mode=self.mode, balance=self.balance)
            model = self.train(f"final: {best} + {name}@{ratio:g} (control, no generator)", train_data, best, mix,
                               method)
            score = self.score(model, test_data)
            arms[name] = {"acc": evaluate_accuracy(model, test_data), "score": score,
                          "per_class": per_class_accuracy(model, test_data, num_classes=self.num_classes),
                          "delta": score_mixed - score}
        return arms


__all__ = [
    "CLASSIFIER_OPTIONS",
    "DEFAULT_MIN_VALIDATION_Z",
    "METRICS",
    "MIXING_METHODS",
    "method_options",
    "split_method_options",
    "class_consistency",
    "classification_accuracy_score",
    "downstream_gain",
    "downstream_plan",
    "downstream_verdict",
    "make_synthetic_mix",
    "sample_uint8_per_class",
    "synthetic_set",
    "check_bank_per_image",
    "to_uint8",
    "validation_folds",
    "validation_split",
    "verdict",
]
