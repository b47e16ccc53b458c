"""Measuring whether synthetic data helps: the reference classifier, scores and distances.

:func:`downstream_gain` judges a generator against the best non-generative baseline
(:mod:`.baselines`), both chosen on a validation split, and against as many rows made without a
generator (:mod:`.controls`). Every feature-space figure (FID, KID, precision/recall, density/coverage) is measured on the
penultimate layer of :class:`ReferenceClassifier` trained on the real training data; reports
name that extractor (:data:`EXTRACTOR_NAME`) so figures are never compared across extractors.
"""

from .baselines import BASELINES, baseline_options, mixup_cutmix, resolve_baselines
from .classifier import (
    EXTRACTOR_NAME,
    ClassifierFeatures,
    ReferenceClassifier,
    classic_augment,
    classifier_steps,
    evaluate_accuracy,
    features,
    per_class_accuracy,
    predict,
    train_classifier,
)
from .controls import CONTROLS, resolve_controls
from .coverage import coverage_report, diversity_ratio, novelty_ratio
from .decision import downstream_verdict
from .distances import (
    density_coverage,
    feature_distances,
    frechet_distance,
    kernel_distance,
    knn_radii,
    per_class_fid,
    precision_recall,
)
from .scores import (
    class_consistency,
    classification_accuracy_score,
    downstream_gain,
    downstream_plan,
    make_synthetic_mix,
    sample_uint8_per_class,
)
from .splits import validation_folds, validation_split
from .stats import format_interval, oracle_share, paired_difference, paired_gain_z, t_quantile_975

__all__ = [
    "BASELINES",
    "CONTROLS",
    "EXTRACTOR_NAME",
    "ClassifierFeatures",
    "ReferenceClassifier",
    "baseline_options",
    "class_consistency",
    "classic_augment",
    "classification_accuracy_score",
    "classifier_steps",
    "coverage_report",
    "density_coverage",
    "diversity_ratio",
    "downstream_gain",
    "downstream_plan",
    "downstream_verdict",
    "evaluate_accuracy",
    "feature_distances",
    "features",
    "format_interval",
    "frechet_distance",
    "kernel_distance",
    "knn_radii",
    "make_synthetic_mix",
    "mixup_cutmix",
    "novelty_ratio",
    "oracle_share",
    "paired_difference",
    "paired_gain_z",
    "per_class_accuracy",
    "per_class_fid",
    "precision_recall",
    "predict",
    "resolve_baselines",
    "resolve_controls",
    "sample_uint8_per_class",
    "t_quantile_975",
    "train_classifier",
    "validation_folds",
    "validation_split",
]
