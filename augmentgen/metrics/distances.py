"""Distances between real and synthetic images in a classifier's feature space.

The Inception weights behind the usual FID cannot be downloaded here, and Inception features of
28-px grayscale digits say little anyway, so every distance is measured on the penultimate layer
of the :class:`~augmentgen.metrics.ReferenceClassifier` trained on the real training data
(:class:`~augmentgen.metrics.ClassifierFeatures`). Figures from different extractors are not
comparable: every report carries the extractor's name and its training details.

* :func:`frechet_distance`: FID with that extractor (the Fréchet distance of
  :mod:`augmentgen._distances`, the one the trainer's snapshot score uses); :func:`kernel_distance`:
  KID through torchmetrics; :func:`per_class_fid`: intra-class FID.
* :func:`precision_recall` (Kynkäänniemi et al. 2019) and :func:`density_coverage` (Naeem et
  al. 2020) on feature tensors, with k-NN radii from batched ``torch.cdist``.
* :func:`feature_distances`: all of the above for a generator against real data.
"""

from __future__ import annotations

import torch
from torch import nn

from .._deprecation import renamed_argument
from .._distances import gaussian_frechet_distance
from ..data.labelled import LabelledImages
from ..errors import DataError
from ..models.base import ConditionalGenerator
from .classifier import ClassifierFeatures, ReferenceClassifier, as_images_and_labels
from .classifier import features as classifier_features


# --------------------------------------------------------------------------- FID / KID
def _feed(metric, images: torch.Tensor, *, real: bool, batch_size: int) -> None:
    for chunk in images.split(batch_size):
        metric.update(chunk, real=real)


def _extractor(feature: nn.Module) -> nn.Module:
    if isinstance(feature, ReferenceClassifier):
        feature = ClassifierFeatures(feature)
    if not hasattr(feature, "num_features"):
        raise DataError("the feature extractor needs a num_features attribute (use ClassifierFeatures)")
    return feature.eval()


def frechet_distance(real_images: torch.Tensor, fake_images: torch.Tensor, feature: nn.Module,
                     *, batch_size: int = 1024) -> float:
    """FID between two image sets (uint8 or float [-1, 1], (N, C, H, W)) on ``feature``'s output.

    ``feature`` is a :class:`ClassifierFeatures` (or a :class:`ReferenceClassifier`, wrapped for
    you), or any module with ``num_features`` that maps a batch of images to (B, num_features).
    Each side needs at least 2 images. Statistics are fitted in float64.
    """
    if len(real_images) < 2 or len(fake_images) < 2:
        raise DataError("FID needs at least 2 images on each side")
    extractor = _extractor(feature)
    with torch.no_grad():
        real, fake = (torch.cat([extractor(chunk) for chunk in images.split(batch_size)])
                      for images in (real_images, fake_images))
    return gaussian_frechet_distance(real, fake)


def kernel_distance(real_images: torch.Tensor, fake_images: torch.Tensor, feature: nn.Module,
                    *, subsets: int = 50, subset_size: int = 1000, batch_size: int = 1024, seed: int = 0
                    ) -> tuple[float, float]:
    """KID (mean, std over ``subsets`` random subsets) on ``feature``'s output.

    ``subset_size`` is capped at the smaller set's size. KID is unbiased, so it can be slightly
    negative for two samples of one distribution. The subsets are drawn with ``seed``, so the same
    images give the same figure (the caller's global random stream is left as it was).
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real_images), len(fake_images))
    if size < 2:
        raise DataError("KID needs at least 2 images on each side")
    metric = KernelInceptionDistance(feature=_extractor(feature), subsets=subsets, subset_size=size)
    _feed(metric, real_images, real=True, batch_size=batch_size)
    _feed(metric, fake_images, real=False, batch_size=batch_size)
    # torchmetrics draws the subsets from the global RNG (torch.randperm on the CPU).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def per_class_fid(real_images: torch.Tensor, real_labels: torch.Tensor, fake_images: torch.Tensor,
                  fake_labels: torch.Tensor, feature: nn.Module, num_classes: int,
                  *, batch_size: int = 1024) -> list[float]:
    """Intra-class FID: FID between the real and synthetic images of each class (NaN where a
    side has fewer than 2 images). One metric per class; the images of a class are batched."""
    real_labels, fake_labels = real_labels.to(real_images.device), fake_labels.to(fake_images.device)
    scores = []
    for c in range(num_classes):
        real_c, fake_c = real_images[real_labels == c], fake_images[fake_labels == c]
        if len(real_c) < 2 or len(fake_c) < 2:
            scores.append(float("nan"))
        else:
            scores.append(frechet_distance(real_c, fake_c, feature, batch_size=batch_size))
    return scores


# --------------------------------------------------------------------------- k-NN metrics
def _pairwise_min_over_chunks(a: torch.Tensor, b: torch.Tensor, chunk: int, fn):
    """Apply ``fn(distances (chunk, len(b)), rows)`` to row chunks of cdist(a, b) and concatenate."""
    return torch.cat([fn(torch.cdist(a[i: i + chunk], b), slice(i, i + chunk))
                      for i in range(0, len(a), chunk)])


def knn_radii(feats: torch.Tensor, k: int, *, chunk: int = 2048) -> torch.Tensor:
    """Distance of each row of ``feats`` (N, D) to its k-th nearest other row (N,)."""
    if len(feats) <= k:
        raise DataError(f"k-NN radii with k={k} need more than {k} points, got {len(feats)}")
    # k + 1 smallest: the point itself (distance 0) comes first.
    return _pairwise_min_over_chunks(
        feats, feats, chunk, lambda d, _: d.topk(k + 1, dim=1, largest=False).values[:, k])


def _share_inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int) -> torch.Tensor:
    """Per point: is it inside at least one ball (centre, radius)?"""
    return _pairwise_min_over_chunks(
        points, centres, chunk, lambda d, _: (d <= radii[None]).any(dim=1))


def precision_recall(real_features: torch.Tensor, fake_features: torch.Tensor, *, k: int = 3,
                     chunk: int = 2048) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) on features (N, D) and (M, D).

    Precision: share of fake points inside the k-NN ball of at least one real point (fidelity).
    Recall: share of real points inside the k-NN ball of at least one fake point (diversity);
    a collapsed generator has recall near 0.
    """
    real, fake = real_features.float(), fake_features.float().to(real_features.device)
    precision = _share_inside(fake, real, knn_radii(real, k, chunk=chunk), chunk).float().mean()
    recall = _share_inside(real, fake, knn_radii(fake, k, chunk=chunk), chunk).float().mean()
    return float(precision), float(recall)


def density_coverage(real_features: torch.Tensor, fake_features: torch.Tensor, *, k: int = 5,
                     chunk: int = 2048) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) on features (N, D) and (M, D).

    Density: mean number of real k-NN balls containing each fake point, divided by k (about 1
    when the two distributions match; above 1 when fakes crowd dense real regions). Coverage:
    share of real points whose k-NN ball contains at least one fake point.
    """
    real, fake = real_features.float(), fake_features.float().to(real_features.device)
    radii = knn_radii(real, k, chunk=chunk)
    # Per fake point: how many real balls contain it.
    inside = _pairwise_min_over_chunks(fake, real, chunk, lambda d, _: (d <= radii[None]).sum(dim=1))
    density = inside.double().sum() / (k * len(fake))
    nearest_fake = _pairwise_min_over_chunks(real, fake, chunk, lambda d, _: d.min(dim=1).values)
    coverage = (nearest_fake <= radii).float().mean()
    return float(density), float(coverage)


# --------------------------------------------------------------------------- all together
def extractor_description(classifier: ReferenceClassifier, **details) -> dict:
    """What reports print about the feature extractor, so figures are never compared across extractors."""
    feature = ClassifierFeatures(classifier)
    return {"name": feature.name, "num_features": feature.num_features, "width": classifier.width,
            "in_channels": classifier.in_channels, "image_size": classifier.image_size, **details}


# per_class was the intra-class FID switch before it became the count (n_per_class): a bool
# passed as per_class still means the switch, renamed intra_class_fid.
@renamed_argument("per_class", "intra_class_fid", only_if=lambda value: isinstance(value, bool))
@renamed_argument("n_per_class", "per_class")
def feature_distances(
    generator: ConditionalGenerator,
    classifier: ReferenceClassifier,
    real_data,
    *,
    per_class: int = 200,
    seed: int = 0,
    k_precision: int = 3,
    k_density: int = 5,
    intra_class_fid: bool = True,
    kid_subsets: int = 50,
    synthetic: LabelledImages | None = None,
) -> dict:
    """FID, KID, precision/recall, density/coverage and intra-class FID of ``generator`` against
    ``real_data`` (a :class:`LabelledImages` or (images, labels)), on ``classifier``'s features.

    ``per_class`` synthetic images are drawn per class (seeded by ``seed``); ``intra_class_fid``
    adds the FID of each class (``"per_class_fid"``). ``synthetic``: the images to measure instead
    of sampling them, ``per_class`` images of every class of the generator
    (:func:`~augmentgen.metrics.scores.synthetic_set`), e.g. one set shared by several metrics.
    """
    from .scores import synthetic_set

    real_images, real_labels, _ = as_images_and_labels(real_data)
    synthetic = synthetic_set(generator, per_class, seed=seed, synthetic=synthetic, call="feature_distances")
    feature = ClassifierFeatures(classifier)
    real_f = classifier_features(classifier, real_images)
    fake_f = classifier_features(classifier, synthetic.images)
    precision, recall = precision_recall(real_f, fake_f, k=k_precision)
    density, coverage = density_coverage(real_f, fake_f, k=k_density)
    kid_mean, kid_std = kernel_distance(real_images, synthetic.images, feature, subsets=kid_subsets, seed=seed)
    report = {
        "fid": frechet_distance(real_images, synthetic.images, feature),
        "kid": kid_mean, "kid_std": kid_std,
        "precision": precision, "recall": recall, "density": density, "coverage": coverage,
        "k_precision_recall": k_precision, "k_density_coverage": k_density,
        "n_real": len(real_images), "n_synthetic": len(synthetic), "seed": seed,
        "per_class_fid": None,
    }
    if intra_class_fid:
        report["per_class_fid"] = per_class_fid(real_images, real_labels, synthetic.images, synthetic.labels,
                                                feature, generator.num_classes)
    return report
