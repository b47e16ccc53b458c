"""One call that answers "does this generator help on my data?": :func:`evaluate_generator`.

It trains the reference classifier on the user's real training data once and reports, on the
real test data: class consistency, CAS next to the real-data accuracy, the downstream gain of
mixing synthetic samples in (ratio picked on a validation split), and feature distances
(FID, KID, precision/recall, density/coverage, per-class FID) on that classifier's features.
``augmentgen eval`` prints :func:`format_report` and writes the JSON and :func:`plot_per_class`.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ..data import LabelledImages
from ..errors import ConfigError, DataError
from ..models.base import ConditionalGenerator
from .classifier import default_device, evaluate_accuracy, train_classifier
from .coverage import coverage_report
from .distances import extractor_description, feature_distances
from .scores import class_consistency, classification_accuracy_score, downstream_gain
from .stats import paired_difference


def evaluate_generator(
    generator: ConditionalGenerator,
    train_data: LabelledImages,
    test_data: LabelledImages,
    *,
    steps: int = 500,
    epochs: float | None = None,
    min_steps: int = 0,
    n_per_class: int = 200,
    seed: int = 0,
    candidate_ratios: Sequence[float] = (0.0, 0.25, 0.5, 1.0),
    methods: Sequence[str] = ("plain",),
    repeats: int = 1,
    device: str | torch.device | None = None,
) -> dict:
    """Every augmentgen metric of ``generator`` on the user's data, as one JSON-ready dict.

    Args:
        generator: the generator to judge (any family).
        train_data: the real data the generator was trained on (or the user's training set).
        test_data: held-out real data; only the final test figures touch it.
        steps: budget of every classifier trained (reference, CAS, each downstream arm).
        epochs: budget every classifier in passes over its own training data instead (at least
            ``min_steps`` steps), as the benchmark protocol does.
        n_per_class: synthetic images per class for consistency, CAS and the distances.
        seed: seeds classifiers, sampling and the validation split.
        candidate_ratios: append ratios (synthetic rows per real row) tried on the validation
            split for the downstream gain; 0 (the default includes it) lets it decide against
            mixing.
        methods: ways of using the synthetic rows tried with every ratio
            (:data:`~augmentgen.metrics.scores.MIXING_METHODS`: ``"plain"``, ``"filter"``,
            ``"soft"``).
        repeats: measure the downstream gain with this many paired seeds (``seed``, ``seed + 1``,
            ...) and report the mean with a 95% t interval: its seed-to-seed spread is often as
            large as the gain itself.
        device: where classifiers train and the generator samples (default: CUDA if available).

    Returns:
        ``{"extractor", "reference_accuracy", "class_consistency", "cas", "downstream",
        "downstream_seeds", "distances", "seconds", ...}``: ``downstream`` is the gain at
        ``seed`` with its per-class figures, ``downstream_seeds`` every seed's ΔAcc with
        :func:`~augmentgen.metrics.paired_difference`'s mean, standard deviation, 95% interval and
        count of positive seeds (None for one seed); see the sub-reports' docstrings for the rest.
    """
    if repeats < 1:
        raise ConfigError(f"repeats must be at least 1, got {repeats}")
    _check_data_matches(generator, train_data, test_data)
    device = torch.device(device) if device is not None else default_device()
    generator = generator.to(device).eval()
    start = time.perf_counter()
    # The reference classifier is also the real-data arm of CAS and of the downstream gain (same
    # data, augmentation, budget and seed), so it is trained once instead of three times.
    budget = dict(steps=steps, epochs=epochs, min_steps=min_steps)
    reference = train_classifier(train_data, seed=seed, device=device, **budget).eval()
    report = {
        "generator": repr(generator),
        "family": generator.family,
        "class_names": generator.class_names,
        "extractor": extractor_description(reference, trained_on=train_data.source, seed=seed, **budget),
        "reference_accuracy": evaluate_accuracy(reference, test_data),
        "class_consistency": class_consistency(generator, reference, n_per_class, seed=seed),
        "cas": classification_accuracy_score(generator, test_data, real_model=reference,
                                             n_per_class=n_per_class, seed=seed, device=device, **budget),
        "downstream": downstream_gain(generator, train_data, test_data, seed=seed, **budget,
                                      candidate_ratios=candidate_ratios, methods=methods, device=device,
                                      real_classic_model=reference),
        "distances": feature_distances(generator, reference, test_data, n_per_class=n_per_class, seed=seed),
        # Held-out real images for the coverage ratios: the test set, as for the distances above
        # (a reported figure, never used to choose anything).
        "coverage": coverage_report(generator, reference, train_data, test_data, n_per_class=n_per_class,
                                    seed=seed),
        "n_train": len(train_data), "n_test": len(test_data), "seed": seed, "steps": steps, "epochs": epochs,
        "device": str(device), "machine": platform.platform(), "torch": torch.__version__,
    }
    gains = [report["downstream"]] + [
        downstream_gain(generator, train_data, test_data, seed=seed + i, **budget,
                        candidate_ratios=candidate_ratios, methods=methods, device=device,
                        include_noaug=False)
        for i in range(1, repeats)
    ]
    report["downstream_seeds"] = _paired_seeds(gains, [seed + i for i in range(repeats)])
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


def _gain(report: dict) -> str:
    seeds = report.get("downstream_seeds")
    if not seeds or seeds.get("delta_ci95") is None:
        return f"{100 * report['downstream']['delta']:+5.1f} pts (one seed: --repeats 5 gives an interval)"
    low, high = seeds["delta_ci95"]
    return (f"{100 * seeds['delta_mean']:+5.1f} pts, 95% interval [{100 * low:+.1f}, {100 * high:+.1f}] "
            f"over {len(seeds['delta'])} paired seeds, {seeds['n_positive']} positive")


def _choice(down: dict) -> str:
    if down["method"] in ("none", "soft-control"):
        return "the validation split chose no synthetic data"
    return f"{down['method']}, ratio {down['ratio']:g}, chosen on the validation split"


def _selection_lines(down: dict) -> list[str]:
    """The validation accuracy of every method and ratio tried, and the verdict."""
    if not down.get("selection"):
        return []
    lines = ["", "validation split (chooses the method; the test set is not used):"]
    chosen = f"{down['method']}@{down['ratio']:g}"  # the choice downstream_gain made, not re-derived
    for name, accuracy in down["selection"].items():
        mark = "  <- chosen" if name == chosen else ""
        lines.append(f"  {name:32s} {100 * accuracy:5.1f}%{mark}")
    if down.get("acc_teacher_control") is not None:
        lines.append(f"  test: teacher soft labels on real rows only {100 * down['acc_teacher_control']:5.1f}%, "
                     f"synthetic rows add {100 * down['delta_vs_control']:+.1f} pts to it")
    return lines + [f"verdict: {down['verdict']}"]


def _number(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.2f}"  # NaN: too few images


def _ratio(summary: dict) -> str:
    """A coverage ratio's median over classes."""
    return _number(summary.get("median"))


def format_report(report: dict) -> str:
    """A plain-text table of :func:`evaluate_generator`'s report, per-class rows included."""
    down, cas, dist, cover = report["downstream"], report["cas"], report["distances"], report["coverage"]
    pct = lambda v: "   -  " if v is None else f"{100 * v:5.1f}%"  # noqa: E731
    lines = [
        f"feature extractor: {report['extractor']['name']} (trained on {report['extractor']['trained_on']}, "
        f"test accuracy {pct(report['reference_accuracy'])})",
        "",
        f"{'metric':34s} value",
        f"{'class consistency':34s} {pct(report['class_consistency']['mean'])}",
        f"{'CAS (train synthetic, test real)':34s} {pct(cas['cas'])}",
        # CAS's real-data arm is the real + classic arm below (one classifier); the no-augmentation
        # arm is shown because classic augmentation can cost accuracy at small budgets.
        f"{'accuracy, real, no augmentation':34s} {pct(down['acc_real_noaug'])}",
        f"{'accuracy, real + classic aug':34s} {pct(down['acc_real_classic'])}",
        f"{'accuracy, real + aug + synthetic':34s} {pct(down['acc_mixed'])} ({_choice(down)})",
        f"{'downstream gain (ΔAcc)':34s} {_gain(report)}",
        f"{'FID (extractor above)':34s} {dist['fid']:.2f}",
        f"{'KID':34s} {dist['kid']:.4f} ± {dist['kid_std']:.4f}",
        f"{'precision / recall':34s} {dist['precision']:.3f} / {dist['recall']:.3f}",
        f"{'density / coverage':34s} {dist['density']:.3f} / {dist['coverage']:.3f}",
        f"{'diversity ratio (pixels / features)':34s} {_ratio(cover['diversity_pixels'])} / "
        f"{_ratio(cover['diversity_features'])}   (1 = as spread as real images of the class)",
        f"{'novelty ratio (pixels / features)':34s} {_ratio(cover['novelty_pixels'])} / "
        f"{_ratio(cover['novelty_features'])}   (0 = copies of training images, 1 = as new as real ones)",
        *_selection_lines(down),
        "",
        f"{'class':20s} {'consist.':>8s} {'CAS':>7s} {'real':>7s} {'+synth':>7s} {'FID':>8s} {'divers.':>8s}",
    ]
    fids = dist.get("per_class_fid") or []
    for i, name in enumerate(report["class_names"]):
        fid = fids[i] if i < len(fids) and fids[i] == fids[i] else None  # NaN: too few images
        lines.append(
            f"{name[:20]:20s} {pct(report['class_consistency']['per_class'][name]):>8s} "
            f"{pct(cas['cas_per_class'][i]):>7s} {pct(down['per_class_real_classic'][i]):>7s} "
            f"{pct(down['per_class_mixed'][i]):>7s} {'-' if fid is None else f'{fid:8.2f}':>8s} "
            f"{_number(cover['diversity_pixels']['per_class'][i]):>8s}"
        )
    return "\n".join(lines)


def plot_per_class(report: dict, path: str | Path) -> Path:
    """A PNG of per-class bars: consistency, CAS, real and real+synthetic test accuracy.

    Drawn with Pillow (no plotting dependency): one group of four bars per class.
    """
    from PIL import Image, ImageDraw

    names = report["class_names"]
    series = [
        ("class consistency", [report["class_consistency"]["per_class"][n] for n in names], (66, 133, 244)),
        ("CAS", report["cas"]["cas_per_class"], (219, 68, 55)),
        ("real + aug", report["downstream"]["per_class_real_classic"], (120, 120, 120)),
        ("real + aug + synthetic", report["downstream"]["per_class_mixed"], (15, 157, 88)),
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
            draw.rectangle([label_w, y, label_w + int(plot_w * float(values[i])), y + bar_h - 1], fill=colour)
            y += bar_h
        y += group_gap
    for frac in (0.0, 0.5, 1.0):  # scale
        xs = label_w + int(plot_w * frac)
        draw.line([xs, 30, xs, y], fill=(200, 200, 200))
        draw.text((xs - 8, y + 2), f"{int(frac * 100)}%", fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _strict_json(value):
    if isinstance(value, float) and value != value:
        return None  # NaN is not JSON
    if isinstance(value, dict):
        return {str(k): _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def write_report(report: dict, path: str | Path) -> Path:
    """Write the report as strict JSON (NaN, e.g. the FID of a class with one image, as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_strict_json(report), indent=2, allow_nan=False) + "\n")
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


def _paired_seeds(gains: list[dict], seeds: list[int]) -> dict:
    """Every seed's downstream figures with their paired mean difference and 95% interval."""
    paired = paired_difference([g["acc_mixed"] for g in gains], [g["acc_real_classic"] for g in gains])
    return {
        "seeds": seeds,
        "delta": paired["differences"], "acc_real_classic": [g["acc_real_classic"] for g in gains],
        "acc_mixed": [g["acc_mixed"] for g in gains], "ratio": [g["ratio"] for g in gains],
        "method": [g["method"] for g in gains],
        "delta_mean": paired["mean"], "delta_std": paired["std"], "delta_ci95": paired["ci95"],
        "n_positive": paired["n_positive"],
    }
