"""What a user would do anyway, without a generator: the baselines synthetic data is judged against.

Synthetic rows are worth using only if they beat the best thing a user can do with the real images
alone. :func:`~augmentgen.metrics.downstream_gain` trains these non-generative arms with the same
classifier, budget and seed, chooses the best one on a validation split (the *best baseline*,
B), then tries the synthetic methods on top of B. Every baseline keeps classic augmentation:

* ``classic``: real images + classic augmentation (pad-and-crop; flips, or small rotations and
  scaling for digits). Always trained: every report shows it.
* ``mixup-cutmix``: classic + torchvision v2 ``MixUp`` or ``CutMix``, a random choice per batch,
  α = 1 (torchvision's default), on hard or soft targets.
* ``balanced-sampling``: classic + class-balanced resampling (every batch drawn with replacement,
  each class equally likely).
* ``logit-adjustment``: classic + the logit-adjusted loss (Menon et al. 2021) with τ = 1.

``"strong"`` (the default of ``augmentgen eval``) is ``classic`` and ``mixup-cutmix``, plus
``balanced-sampling`` and ``logit-adjustment`` when the training data is imbalanced (its class
counts differ by more than :data:`IMBALANCE_RATIO` times). ``"none"`` is ``classic`` alone: the
comparison before the baselines were added. ``benchmarks/downstream.py`` (protocol v3) trains the
same arms under the letters a, f, g and h (:data:`BENCHMARK_LETTERS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import ConfigError

#: Every baseline by name, with what it is (the text reports print).
BASELINES: dict[str, str] = {
    "classic": "real + classic augmentation",
    "mixup-cutmix": "classic + MixUp/CutMix (alpha 1)",
    "balanced-sampling": "classic + class-balanced resampling",
    "logit-adjustment": "classic + logit-adjusted loss (tau 1)",
}

#: The letters of the same arms in ``benchmarks/downstream.py`` and its results files.
BENCHMARK_LETTERS: dict[str, str] = {"a": "classic", "f": "mixup-cutmix", "g": "balanced-sampling",
                                     "h": "logit-adjustment"}

#: Training data whose largest class has more than this many times the images of its smallest
#: is imbalanced: ``"strong"`` then adds the two long-tail baselines, and the choices are made on
#: the mean per-class accuracy.
IMBALANCE_RATIO = 2.0

_STRONG = ("classic", "mixup-cutmix")
_LONG_TAIL = ("balanced-sampling", "logit-adjustment")


def imbalance_ratio(class_counts: Sequence[int]) -> float:
    """Images of the largest class over images of the smallest non-empty one (1.0: balanced)."""
    present = [int(c) for c in class_counts if int(c) > 0]
    if not present:
        raise ConfigError("no class has any image")
    return max(present) / min(present)


def is_imbalanced(class_counts: Sequence[int]) -> bool:
    """Whether the class counts differ by more than :data:`IMBALANCE_RATIO` times."""
    return imbalance_ratio(class_counts) > IMBALANCE_RATIO


def check_baselines(spec: str | Sequence[str] | None) -> str | list[str]:
    """``spec`` checked without the data: ``"strong"``, ``"none"``, or a list of names from
    :data:`BASELINES` (a comma-separated string works too). Raises :class:`ConfigError` naming the
    choices for anything else."""
    if spec is None:
        return "none"
    if not isinstance(spec, Iterable):
        raise ConfigError(f"baselines takes 'strong', 'none' or a list of names from {list(BASELINES)}, got the "
                          f"{type(spec).__name__} {spec!r}")
    if isinstance(spec, str):
        if spec.strip() in ("strong", "none"):
            return spec.strip()
        spec = spec.split(",")
    # a name given twice is one candidate (it would train twice for the same score)
    names = list(dict.fromkeys(str(name).strip() for name in spec if str(name).strip()))
    unknown = [name for name in names if name not in BASELINES]
    if unknown:
        raise ConfigError(f"unknown baseline {', '.join(map(repr, unknown))}; baselines are 'strong', 'none' or "
                          f"names from {list(BASELINES)}")
    return names


def resolve_baselines(spec: str | Sequence[str] | None, class_counts: Sequence[int]) -> list[str]:
    """The baselines to train on data with ``class_counts``: ``classic`` first, then the others in
    the order of :data:`BASELINES`. ``"strong"`` adds the long-tail pair only on imbalanced data;
    a list is taken as given (``classic`` is added when missing)."""
    spec = check_baselines(spec)
    if spec == "none":
        return ["classic"]
    if spec == "strong":
        wanted = set(_STRONG) | (set(_LONG_TAIL) if is_imbalanced(class_counts) else set())
    else:
        wanted = {"classic", *spec}
    return [name for name in BASELINES if name in wanted]


def mixup_cutmix(num_classes: int, alpha: float = 1.0):
    """torchvision v2 ``MixUp`` or ``CutMix`` (a random choice per batch) for K classes: a
    ``batch_transform`` of :func:`~augmentgen.metrics.train_classifier`. It takes class indices (B,)
    or soft targets (B, K) and returns soft targets (B, K)."""
    from torchvision.transforms import v2

    return v2.RandomChoice([v2.MixUp(alpha=alpha, num_classes=num_classes),
                            v2.CutMix(alpha=alpha, num_classes=num_classes)])


def baseline_options(name: str, num_classes: int) -> dict:
    """The :func:`~augmentgen.metrics.train_classifier` options of baseline ``name`` (classic
    augmentation is the caller's ``augment="classic"``)."""
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; choose from {list(BASELINES)}")
    if name == "mixup-cutmix":
        return {"batch_transform": mixup_cutmix(num_classes)}
    return {"classic": {}, "balanced-sampling": {"sampler": "class-balanced"},
            "logit-adjustment": {"logit_adjustment": 1.0}}[name]


__all__ = [
    "BASELINES",
    "BENCHMARK_LETTERS",
    "IMBALANCE_RATIO",
    "baseline_options",
    "check_baselines",
    "imbalance_ratio",
    "is_imbalanced",
    "mixup_cutmix",
    "resolve_baselines",
]
