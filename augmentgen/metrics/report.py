"""One call that answers "does this generator help on my data?": :func:`evaluate_generator`.

It trains the reference classifier on the user's real training data once and reports, on the
real test data: class consistency, CAS next to the real-data accuracy, the downstream gain of
mixing synthetic samples in against the best non-generative baseline (both chosen on a
validation split) with its verdict, and feature distances (FID, KID, precision/recall,
density/coverage, per-class FID) on that classifier's features. :func:`evaluation_plan` says
beforehand how many classifiers that trains. ``augmentgen eval`` prints :func:`format_report`
and writes the JSON and :func:`plot_per_class`.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .._deprecation import renamed_argument
from .._io import atomic_path, atomic_write_bytes
from ..data import LabelledImages
from ..errors import DataError
from ..models.base import ConditionalGenerator
from .bank_store import discard_banks
from .baselines import BASELINES
from .classifier import evaluate_accuracy, train_classifier
from .controls import CONTROLS, DEFAULT_CONTROLS
from .coverage import coverage_report
from .decision import downstream_verdict
from .distances import extractor_description, feature_distances
from .eval_checkpoint import EvalCheckpoint, as_json_values, eval_identity
from .scores import (
    DEFAULT_MIN_VALIDATION_Z,
    _as_labelled,
    _check_choices,
    _check_count,
    _check_device,
    _check_generator,
    _check_run,
    _check_seed,
    check_bank_per_image,
    class_consistency,
    classification_accuracy_score,
    downstream_gain,
    downstream_plan,
    resolve_methods,
    sample_uint8_per_class,
)
from .splits import check_held_out, check_splittable
from .stats import format_interval


@renamed_argument("n_per_class", "per_class")
def evaluate_generator(
    generator: ConditionalGenerator,
    train_data: LabelledImages,
    test_data: LabelledImages,
    *,
    steps: int = 500,
    epochs: float | None = None,
    min_steps: int = 0,
    per_class: int = 200,
    seed: int = 0,
    candidate_ratios: Sequence[float] = (0.0, 0.25, 0.5, 1.0),
    methods: str | Sequence[str] = "auto",
    baselines: str | Sequence[str] | None = "strong",
    controls: str | Sequence[str] | None = DEFAULT_CONTROLS,
    metric: str = "auto",
    balance="auto",
    repeats: int = 1,
    device: str | torch.device | None = None,
    progress=None,
    bank_per_image: int | str | None = "auto",
    checkpoint_file: str | os.PathLike | None = None,
    min_validation_z: float = DEFAULT_MIN_VALIDATION_Z,
) -> dict:
    """Every augmentgen metric of ``generator`` on the user's data, as one JSON-ready dict.

    Args:
        generator: the generator to judge (any family).
        train_data: the real data the generator was trained on (or the user's training set): a
            :class:`~augmentgen.data.LabelledImages` or an ``(images, labels)`` pair.
        test_data: held-out real data, as ``train_data``; only the final test figures touch it.
        steps: budget of every classifier trained (reference, CAS, each downstream arm).
        epochs: budget every classifier in passes over its own training data instead (at least
            ``min_steps`` steps), as the benchmark protocol does.
        per_class: synthetic images per class for consistency, CAS, the distances and coverage.
        seed: seeds classifiers, sampling and the validation split.
        candidate_ratios: append ratios (synthetic rows per real row) tried on the validation
            split for the downstream gain; 0 (the default includes it) lets it decide against
            mixing.
        methods: ways of using the synthetic rows tried with every ratio
            (:data:`~augmentgen.metrics.methods.MIXING_METHODS`: ``"plain"``, ``"filter"``,
            ``"soft"``, ``"weighted"`` (synthetic rows at loss weight 0.5), and ``"vary"`` (or
            ``"vary:<strength>"``) / ``"interpolate"`` / ``"extrapolate"`` for generators that
            make rows from real images). ``"auto"`` (the default): ``plain`` and, where the
            family makes rows from real images (the encoder families, ``ddpm``), ``vary``.
        baselines: what a user would do without a generator, each trained and the best chosen on
            the validation split before the synthetic methods are tried on top of it:
            ``"strong"`` (classic augmentation and MixUp/CutMix, plus class-balanced resampling
            and logit adjustment on imbalanced data), ``"none"`` (classic augmentation alone),
            or names from :data:`~augmentgen.metrics.baselines.BASELINES`.
        controls: rows made without a generator, trained beside the chosen synthetic method with
            as many rows a step (:data:`~augmentgen.metrics.controls.CONTROLS`: ``"real-rows"``,
            ``"pixel-mix"``; ``"none"`` skips them): the verdict says mix only when the
            generator's rows beat them too.
        metric: what chooses and what the verdict compares: ``"auto"`` (mean per-class accuracy
            on imbalanced training data, else accuracy), ``"accuracy"`` or ``"balanced"``.
        balance: which classes the synthetic rows take (``SyntheticMix``'s ``balance``):
            ``"auto"`` gives them to the classes shown least (``"inverse-frequency"``) on
            imbalanced training data, else to the batch's classes; ``None``, ``"uniform"``,
            ``"inverse-frequency"`` or a ``{class: weight}`` dict force one.
        repeats: measure the downstream gain with this many paired seeds (``seed``, ``seed + 1``,
            ...) and report the mean with a 95% t interval: its seed-to-seed spread is often as
            large as the gain itself.
        device: where classifiers train and the generator samples (default: CUDA if available).
        progress: a tqdm bar advanced once per classifier trained (:func:`evaluation_plan` gives
            its total); its postfix names the phase, sampling included. For a bar of the images
            sampled, wrap the call in ``with augmentgen.models.sampling_progress(images_bar):``.
        bank_per_image: ``"auto"`` (the family's ``default_bank_per_image``: a bank of 4 for
            ``ddpm``, live sampling for the others), None (rows sampled live at every training step
            of a synthetic arm) or K: each synthetic arm draws from a bank filled once from the data
            it trains on (see :func:`~augmentgen.metrics.downstream_gain`), the way to evaluate a
            slow sampler.
        checkpoint_file: a JSON file that keeps every finished seed (written after the first seed's
            report and after each later seed), so that an evaluation killed after hours loses one
            seed at most: called again with the same generator, data and settings, it trains only
            the seeds the file lacks (with a larger ``repeats``, it adds seeds to a finished
            evaluation); a file of another evaluation is refused, naming what differs (see
            :mod:`~augmentgen.metrics.eval_checkpoint`). Resumed or not, the figures are the same.
            The banks of the seed under way are kept beside it (``eval.checkpoint.json`` ->
            ``eval.checkpoint.banks/``, :func:`bank_folder_of`) until the seed's figures are saved,
            so a seed killed half-way does not sample them again.
        min_validation_z: the synthetic rows are mixed only where they beat the best candidate
            without a generator by more than this many standard errors on the validation images
            (see :func:`~augmentgen.metrics.downstream_gain`); 0 mixes on any lead.

    Returns:
        ``{"extractor", "reference_accuracy", "class_consistency", "cas", "downstream",
        "downstream_seeds", "verdict", "decision", "distances", "seconds", ...}``: ``downstream``
        is the report of :func:`~augmentgen.metrics.downstream_gain` at ``seed`` with its
        per-class figures; ``downstream_seeds`` is :func:`~augmentgen.metrics.decision.downstream_verdict`
        over every seed (each seed's best baseline, method, ratio and ΔAcc vs the best baseline,
        their mean, standard deviation, 95% interval (None for one seed) and count of positive
        seeds, the same against classic augmentation alone, the decision and its sentence);
        ``verdict`` and ``decision`` repeat its last two; see the sub-reports' docstrings for the rest.

    Raises:
        ConfigError: an argument that is not one of the choices above (the arguments out of order, an
            unknown method, baseline, control, metric or balance, a variation method on a generator
            without an encoder, ratios, counts, a budget, a progress bar or a seed of the wrong kind, a
            device that is not one or absent here), before any classifier trains.
        ConfigError: also a ``bank_per_image`` that is not ``"auto"``, None or an int >= 1.
        CheckpointError: a ``checkpoint_file`` written by another evaluation, or not intact.
        DataError: data that is not images and labels, whose shape or classes differ from the generator's,
            or with a class of fewer than 2 training images (the validation split needs 2).
    """
    # Every argument is checked before the first classifier trains (minutes each at the default budget).
    _check_generator(generator, "evaluate_generator")
    train_data, test_data = _as_labelled(train_data), _as_labelled(test_data)  # (images, labels) too
    _check_count("repeats", repeats, "paired seeds of the downstream gain")
    _check_count("per_class", per_class, "synthetic images of each class")
    _check_data_matches(generator, train_data, test_data)
    seed = _check_seed(seed)  # numpy's ints too, as an int torch takes
    budget = dict(steps=steps, epochs=epochs, min_steps=min_steps)
    choice = dict(candidate_ratios=candidate_ratios, methods=resolve_methods(methods, generator),
                  baselines=baselines, controls=controls,
                  metric=metric, balance=balance, device=_check_device(device), progress=progress,
                  bank_per_image=check_bank_per_image(bank_per_image, generator), min_validation_z=min_validation_z)
    _check_choice_and_budget(generator, train_data, choice, budget)
    check_held_out(train_data, test_data)
    saved = None if checkpoint_file is None else EvalCheckpoint(checkpoint_file, eval_identity(
        generator, train_data, test_data, _settings(seed, per_class, budget, choice)))
    # A seed's banks are kept beside the checkpoint until its figures are saved (a ddpm's take
    # most of a seed on a CPU): a seed killed half-way reads them back.
    choice["bank_folder"] = None if checkpoint_file is None else bank_folder_of(checkpoint_file)
    start = time.perf_counter()
    resumed = [] if saved is None else [s for s in saved.seeds if seed <= s < seed + repeats]
    report = _first_seed(generator, train_data, test_data, seed, per_class, budget, choice, saved)
    gains = [report["downstream"]] + [_later_seed(generator, train_data, test_data, seed + i, budget, choice, saved)
                                      for i in range(1, repeats)]
    report["resumed_seeds"] = resumed
    report["downstream_seeds"] = downstream_verdict(gains)
    report["verdict"], report["decision"] = report["downstream_seeds"]["verdict"], report["downstream_seeds"]["decision"]
    report["classifier_runs"] = 2 + sum(g["classifier_runs"] for g in gains)
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


#: How :func:`downstream_gain` draws banks, recorded in a checkpoint's identity: one bank of free
#: samples whose head the validation candidates draw, ``filter`` keeping what its teacher accepts.
BANK_SCHEME = "one free bank; filter: filtered()"


def bank_folder_of(checkpoint_file: str | os.PathLike) -> Path:
    """Where an evaluation with ``checkpoint_file`` keeps the banks of the seed under way:
    ``eval.checkpoint.json`` -> ``eval.checkpoint.banks`` beside it."""
    checkpoint_file = Path(checkpoint_file)
    return checkpoint_file.with_name(checkpoint_file.stem + ".banks")


def _settings(seed: int, per_class: int, budget: dict, choice: dict) -> dict:
    """Every setting that decides a figure of the evaluation (``repeats`` only adds seeds)."""
    return {"seed": seed, "per_class": per_class, **budget, "device": str(choice["device"]),
            **{key: choice[key] for key in ("candidate_ratios", "methods", "baselines", "controls", "metric",
                                            "balance", "bank_per_image", "min_validation_z")},
            # How banks are drawn: files of an earlier scheme (a bank a validation candidate, a
            # filtered bank of its own) lack it and are refused rather than mixed with this one.
            "bank_scheme": None if choice["bank_per_image"] is None else BANK_SCHEME}


def _first_seed(generator, train_data, test_data, seed: int, per_class: int, budget: dict, choice: dict,
                saved: EvalCheckpoint | None) -> dict:
    """The report's figures at the first seed: read from ``saved`` where it holds them (the bar
    advanced by the classifiers they took), else measured and saved."""
    progress = choice["progress"]
    if saved is not None and saved.first is not None:
        _resumed(progress, seed, 2 + saved.first["downstream"]["classifier_runs"], saved.path)
        return saved.first
    report = as_json_values(_one_seed_report(generator, train_data, test_data, seed, per_class, budget, choice))
    if saved is not None:
        saved.save_first(report)
        discard_banks(choice["bank_folder"], seed)
    return report


def _later_seed(generator, train_data, test_data, seed: int, budget: dict, choice: dict,
                saved: EvalCheckpoint | None) -> dict:
    """The downstream gain at a later seed, read from ``saved`` where it holds it, else measured and saved."""
    gain = None if saved is None else saved.gain(seed)
    if gain is not None:
        _resumed(choice["progress"], seed, gain["classifier_runs"], saved.path)
        return gain
    gain = as_json_values(downstream_gain(generator, train_data, test_data, seed=seed, **budget, **choice,
                                          include_noaug=False))
    if saved is not None:
        saved.save_gain(seed, gain)
        discard_banks(choice["bank_folder"], seed)
    return gain


def _resumed(progress, seed: int, runs: int, path: Path) -> None:
    if progress is not None:
        progress.set_postfix_str(f"seed {seed}: read from {path.name}", refresh=True)
        progress.update(runs)


def _check_choice_and_budget(generator, train_data: LabelledImages, choice: dict, budget: dict) -> None:
    """The choice's options and the classifiers' budget, as :func:`downstream_gain` will take them."""
    _check_choices(generator, train_data.class_counts, ratio=None, mode="append",
                   **{k: choice[k] for k in ("candidate_ratios", "methods", "baselines", "controls", "metric",
                                             "balance", "min_validation_z")})
    _check_run(choice["progress"], **budget)


def _one_seed_report(generator, train_data: LabelledImages, test_data: LabelledImages, seed: int, per_class: int,
                     budget: dict, choice: dict) -> dict:
    """The report's figures at ``seed``: the reference classifier, the synthetic images' scores and
    the first downstream gain."""
    progress, device = choice["progress"], choice["device"]
    generator = generator.to(device).eval()
    # The reference classifier is also the real-data arm of CAS and of the downstream gain (same
    # data, augmentation, budget and seed), so it is trained once instead of three times.
    reference = _counted_run(progress, "reference classifier (classic)",
                             lambda: train_classifier(train_data, seed=seed, device=device, **budget).eval())
    # One seeded set of synthetic images serves consistency, CAS, the distances and coverage (each
    # sampled the same set on its own before): the same figures, a quarter of the sampling.
    synthetic = _sampling(progress, f"sampling {per_class * generator.num_classes} synthetic images "
                                    "(consistency, CAS, distances, coverage)",
                          lambda: sample_uint8_per_class(generator, per_class, seed=seed))
    report = {
        "generator": repr(generator),
        "family": generator.family,
        "class_names": generator.class_names,
        "extractor": extractor_description(reference, trained_on=train_data.source, seed=seed, **budget),
        "reference_accuracy": evaluate_accuracy(reference, test_data),
        "class_consistency": class_consistency(generator, reference, per_class, seed=seed, synthetic=synthetic),
        "cas": _counted_run(progress, "CAS: trained on synthetic images only", lambda: classification_accuracy_score(
            generator, test_data, real_model=reference, per_class=per_class, seed=seed, device=device,
            synthetic=synthetic, **budget)),
        "downstream": downstream_gain(generator, train_data, test_data, seed=seed, **budget, **choice,
                                      real_classic_model=reference),
        "distances": feature_distances(generator, reference, test_data, per_class=per_class, seed=seed,
                                       synthetic=synthetic),
        # Held-out real images for the coverage ratios: the test set, as for the distances above
        # (a reported figure, never used to choose anything).
        "coverage": coverage_report(generator, reference, train_data, test_data, per_class=per_class,
                                    seed=seed, synthetic=synthetic),
        "n_train": len(train_data), "n_test": len(test_data), "seed": seed, "steps": budget["steps"],
        "epochs": budget["epochs"],
        "bank_per_image": choice["bank_per_image"],
        "device": str(device), "machine": platform.platform(), "torch": torch.__version__,
    }
    return report


def _sampling(progress, what: str, sample):
    """A sampling phase, named beside the progress bar (it trains no classifier, so the bar's count
    stays; the bar's elapsed time keeps moving)."""
    if progress is not None:
        progress.set_postfix_str(what, refresh=True)
    return sample()


def _counted_run(progress, what: str, train):
    """One classifier run outside :func:`downstream_gain`, counted on the progress bar."""
    if progress is not None:
        progress.set_postfix_str(what, refresh=True)
    result = train()
    if progress is not None:
        progress.update(1)
    return result


def evaluation_plan(train_data, *, candidate_ratios: Sequence[float] = (0.0, 0.25, 0.5, 1.0),
                    methods: str | Sequence[str] = "auto", baselines: str | Sequence[str] | None = "strong",
                    controls: str | Sequence[str] | None = DEFAULT_CONTROLS, metric: str = "auto",
                    repeats: int = 1, bank_per_image: int | str | None = "auto", generator=None,
                    min_validation_z: float = DEFAULT_MIN_VALIDATION_Z) -> dict:
    """What :func:`evaluate_generator` will train, before it trains anything: the
    :func:`~augmentgen.metrics.scores.downstream_plan` of the first seed, plus ``"classifier_runs"``
    (at most this many classifiers in all, each with the full budget: the reference, CAS, and
    the downstream arms of every seed) and ``"classifier_runs_classic_only"`` (the same with
    ``baselines="none"``) and ``"bank_fills"`` (with ``bank_per_image``: at most this many banks of
    synthetic rows filled, each sampled once, over every seed; 0 without). The defaults are
    :func:`evaluate_generator`'s; ``generator``, the one to be evaluated, resolves their ``"auto"``
    as it does (without it, pass ``methods`` and ``bank_per_image``). ``min_validation_z`` trains
    nothing more or less (the plan counts the most runs) and comes back as it is."""
    _check_count("repeats", repeats, "paired seeds of the downstream gain")
    bank_per_image = check_bank_per_image(bank_per_image, generator)
    methods = resolve_methods(methods, generator)
    counts = train_data.class_counts if hasattr(train_data, "class_counts") else list(train_data)
    check_splittable(counts, class_names=getattr(train_data, "class_names", None))  # every seed chooses on a split
    common = dict(candidate_ratios=candidate_ratios, methods=methods, metric=metric, controls=controls,
                  bank_per_image=bank_per_image)
    first = downstream_plan(train_data, baselines=baselines, reuse_classic=True, **common)
    later = downstream_plan(train_data, baselines=baselines, include_noaug=False, **common)
    total = lambda key: 2 + first[key] + (repeats - 1) * later[key]  # noqa: E731
    return {**first, "repeats": repeats, "classifier_runs": total("classifier_runs"),
            "classifier_runs_classic_only": total("classifier_runs_classic_only"),
            "bank_fills": repeats * first["bank_fills"], "min_validation_z": min_validation_z}


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def _difference(summary: dict) -> str:
    """A paired difference: one seed's value, or the mean with its interval."""
    if summary["ci95"] is None:
        return f"{100 * summary['mean']:+.1f} pts at one seed (not evidence: --repeats 5 gives an interval)"
    return format_interval(summary)


def format_downstream(down: dict, seeds: dict | None = None) -> str:
    """The downstream part of a report as text: the validation choices (best baseline, then the
    synthetic methods on top of it), the test accuracies of the final arms, the paired
    differences and the verdict. ``down``: one :func:`~augmentgen.metrics.downstream_gain` report;
    ``seeds``: :func:`~augmentgen.metrics.decision.downstream_verdict` over every seed (default:
    ``down``'s seed alone)."""
    seeds = seeds or downstream_verdict([down])
    best, metric = down["best_baseline"], down["metric"]
    lines = [f"downstream: does the generator beat the best baseline? (choices on a validation split of the "
             f"training data, by {metric}; the test set is used once per final arm)"]
    if down.get("baseline_selection"):
        lines.append(f"  validation, baselines without a generator ({metric}):")
        for name, score in down["baseline_selection"].items():
            mark = "  <- best baseline B" if name == best else ""
            lines.append(f"    {name:18s} {BASELINES[name]:42s} {_pct(score)}{mark}")
    if down.get("selection"):
        lines.append(f"  validation, synthetic methods on top of B = {best} ({metric}):")
        chosen = f"{down['method']}@{down['ratio']:g}"  # the choice downstream_gain made, not re-derived
        for name, score in down["selection"].items():
            label = f"{name} (B alone)" if name == "none@0" else name
            lines.append(f"    {label:61s} {_pct(score)}{'  <- chosen' if name == chosen else ''}")
    if down.get("validation_margin"):
        lines.append(_margin_line(down["validation_margin"]))
    chosen = ("no synthetic rows" if down["method"] in ("none", "soft-control")
              else f"{down['method']} at ratio {down['ratio']:g}")
    lines.append(f"  test accuracy (seed {down['seed']}):")
    if down.get("acc_real_noaug") is not None:
        lines.append(f"    {'real, no augmentation':61s} {_pct(down['acc_real_noaug'])}")
    lines += [f"    {'classic augmentation':61s} {_pct(down['acc_real_classic'])}",
              f"    {'best baseline B: ' + best:61s} {_pct(down['acc_best_baseline'])}",
              f"    {'B + synthetic: ' + chosen:61s} {_pct(down['acc_mixed'])}"]
    if down.get("acc_teacher_control") is not None:
        lines.append(f"    {'B + teacher soft labels on real rows only (control)':61s} "
                     f"{_pct(down['acc_teacher_control'])}")
    for name, arm in (down.get("controls") or {}).items():
        lines.append(f"    {f'B + {name} (control: {CONTROLS[name][1].__name__}, no generator)':61s} {_pct(arm['acc'])}")
    n = len(seeds["seeds"])
    over = "" if n == 1 else f", over {n} paired seeds {seeds['seeds']}"
    vs_best = {"mean": seeds["delta_mean"], "ci95": seeds["delta_ci95"], "n": n, "n_positive": seeds["n_positive"]}
    lines += [f"  B + synthetic vs B ({metric}{over}): {_difference(vs_best)}",
              f"  B + synthetic vs classic augmentation alone: {_difference(seeds['delta_vs_classic'])}"]
    for name, summary in (seeds.get("delta_vs_controls") or {}).items():
        lines.append(f"  B + synthetic vs B + {name} (control, no generator): {_difference(summary)}")
    if n > 1:
        lines.append(f"  chosen per seed: B {seeds['best_baseline']}, method "
                     f"{[f'{m}@{r:g}' for m, r in zip(seeds['method'], seeds['ratio'])]}")
    return "\n".join([*lines, f"verdict: {seeds['verdict']}"])


def _margin_line(margin: dict) -> str:
    """The guard of the validation choice: how far the best synthetic candidate led, in standard errors."""
    outcome = (f"not more than {margin['min_z']:g}, so it is not mixed" if margin["held_back"]
               else f"more than {margin['min_z']:g}, so it is mixed")
    return (f"  {margin['candidate']} leads {margin['against']} by {100 * margin['gain']:+.1f} pts on the same "
            f"validation images, z = {margin['z']:.2f} standard errors: {outcome} (--min-validation-z)")


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"  # NaN / None: too few images


def _ratio(summary: dict) -> str:
    """A coverage ratio's median over classes."""
    return _number(summary.get("median"))


def format_report(report: dict) -> str:
    """A plain-text table of :func:`evaluate_generator`'s report, per-class rows included."""
    down, cas, dist, cover = report["downstream"], report["cas"], report["distances"], report["coverage"]
    pct = _pct
    lines = [
        f"feature extractor: {report['extractor']['name']} (trained on {report['extractor']['trained_on']}, "
        f"test accuracy {pct(report['reference_accuracy'])})",
        "",
        f"{'metric':34s} value",
        f"{'class consistency':34s} {pct(report['class_consistency']['mean'])}",
        f"{'CAS (train synthetic, test real)':34s} {pct(cas['cas'])}",
        f"{'accuracy, real + classic aug':34s} {pct(down['acc_real_classic'])}",
        f"{'FID (extractor above)':34s} {_number(dist['fid'])}",
        f"{'KID':34s} {_number(dist['kid'], 4)} ± {_number(dist['kid_std'], 4)}",
        f"{'precision / recall':34s} {_number(dist['precision'], 3)} / {_number(dist['recall'], 3)}",
        f"{'density / coverage':34s} {_number(dist['density'], 3)} / {_number(dist['coverage'], 3)}",
        f"{'diversity ratio (pixels / features)':34s} {_ratio(cover['diversity_pixels'])} / "
        f"{_ratio(cover['diversity_features'])}   (1 = as spread as real images of the class)",
        f"{'novelty ratio (pixels / features)':34s} {_ratio(cover['novelty_pixels'])} / "
        f"{_ratio(cover['novelty_features'])}   (0 = copies of training images, 1 = as new as real ones)",
        "",
        format_downstream(down, report.get("downstream_seeds")),
        "",
        f"{'class':20s} {'consist.':>8s} {'CAS':>7s} {'classic':>7s} {'B':>7s} {'B+synth':>7s} {'FID':>8s} "
        f"{'divers.':>8s}",
    ]
    fids = dist.get("per_class_fid") or []
    for i, name in enumerate(report["class_names"]):
        fid = fids[i] if i < len(fids) and fids[i] == fids[i] else None  # NaN: too few images
        lines.append(
            f"{name[:20]:20s} {pct(report['class_consistency']['per_class'][name]):>8s} "
            f"{pct(cas['cas_per_class'][i]):>7s} {pct(down['per_class_real_classic'][i]):>7s} "
            f"{pct(down['per_class_best_baseline'][i]):>7s} {pct(down['per_class_mixed'][i]):>7s} {'-' if fid is None else f'{fid:8.2f}':>8s} "
            f"{_number(cover['diversity_pixels']['per_class'][i]):>8s}"
        )
    return "\n".join(lines)


def plot_per_class(report: dict, path: str | Path) -> Path:
    """A PNG of per-class bars: consistency, CAS, and the test accuracy of classic augmentation,
    of the best baseline B (when it is not classic augmentation) and of B + synthetic rows.

    Drawn with Pillow (no plotting dependency): one group of bars per class.
    """
    from PIL import Image, ImageDraw

    names, down = report["class_names"], report["downstream"]
    series = [
        ("class consistency", [report["class_consistency"]["per_class"][n] for n in names], (66, 133, 244)),
        ("CAS", report["cas"]["cas_per_class"], (219, 68, 55)),
        ("classic", down["per_class_real_classic"], (120, 120, 120)),
        *([(f"B: {down['best_baseline']}", down["per_class_best_baseline"], (244, 180, 0))]
          if down["best_baseline"] != "classic" else []),
        ("B + synthetic", down["per_class_mixed"], (15, 157, 88)),
    ]
    label_w, bar_h, group_gap, plot_w = 150, 6, 10, 400
    height = 40 + len(names) * (len(series) * bar_h + group_gap) + 20
    image = Image.new("RGB", (label_w + plot_w + 20, height), "white")
    draw = ImageDraw.Draw(image)
    x = label_w
    for label, _, colour in series:  # legend
        draw.rectangle([x, 8, x + 10, 18], fill=colour)
        draw.text((x + 14, 6), label, fill="black")
        x += 14 + int(draw.textlength(label)) + 16
    y = 32
    for i, name in enumerate(names):
        draw.text((4, y + len(series) * bar_h / 2 - 6), name[:22], fill="black")
        for _, values, colour in series:
            value = values[i] if values[i] is not None else 0.0  # None: NaN in the report (too few images)
            draw.rectangle([label_w, y, label_w + int(plot_w * float(value)), y + bar_h - 1], fill=colour)
            y += bar_h
        y += group_gap
    for frac in (0.0, 0.5, 1.0):  # scale
        xs = label_w + int(plot_w * frac)
        draw.line([xs, 30, xs, y], fill=(200, 200, 200))
        draw.text((xs - 8, y + 2), f"{int(frac * 100)}%", fill="black")
    path = Path(path).expanduser()
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def write_report(report: dict, path: str | Path) -> Path:
    """Write the report as strict JSON (NaN, e.g. the FID of a class with one image, as null:
    :func:`~augmentgen.metrics.eval_checkpoint.as_json_values`)."""
    path = Path(path).expanduser()
    atomic_write_bytes(path, (json.dumps(as_json_values(report), indent=2, allow_nan=False) + "\n").encode())
    return path


def _check_data_matches(generator: ConditionalGenerator, train_data: LabelledImages,
                        test_data: LabelledImages) -> None:
    if generator.image_shape != train_data.image_shape or generator.image_shape != test_data.image_shape:
        raise DataError(
            f"the generator makes {generator.image_shape} images, the training data is "
            f"{train_data.image_shape} and the test data {test_data.image_shape}; "
            "pass channels= to load_data or use a generator trained on this data"
        )
    if not generator.num_classes == train_data.num_classes == test_data.num_classes:
        raise DataError(f"class counts differ: generator {generator.num_classes}, training data "
                        f"{train_data.num_classes}, test data {test_data.num_classes}")
