"""Paired statistics for downstream comparisons: the figures every augmentgen table reports.

A downstream figure compares arms that share everything but the thing measured (the same real
subset, generator, initialisation and batch order for a seed), so the right summary is the
distribution of the per-seed *differences*: :func:`paired_difference` gives their mean, a
Student-t confidence interval and how many seeds were positive. :func:`oracle_share` reads a
gain against the gain of twice the real data. :func:`paired_gain_z` reads one candidate's gain
over another on the same validation images in standard errors: how a choice made on a few
hundred images tells a gain from noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from ..errors import ConfigError

# Two-sided 95% Student-t quantiles t(0.975, df) for df = 1..30 (standard tables, 3 decimals).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (a 95% two-sided interval).

    Exact to the table's 3 decimals up to 30 degrees of freedom; beyond, the Cornish-Fisher
    expansion around the normal quantile (error below 1e-3).
    """
    if df < 1:
        raise ConfigError(f"a t interval needs at least 1 degree of freedom (2 seeds), got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def paired_difference(treated: Sequence[float], control: Sequence[float]) -> dict:
    """Mean of the paired differences ``treated[i] - control[i]`` with its 95% t interval.

    Args:
        treated, control: one figure per seed, in the same seed order (e.g. the mixed arm's and
            the classic arm's test accuracy).

    Returns:
        ``{"mean", "std", "ci95": [low, high] (None for one seed), "n", "n_positive",
        "differences"}``; ``std`` is the sample standard deviation of the differences.
    """
    if len(treated) != len(control):
        raise ConfigError(f"paired figures need one value per seed on both sides, got "
                          f"{len(treated)} and {len(control)}")
    if not treated:
        raise ConfigError("no seeds to compare")
    differences = [float(t) - float(c) for t, c in zip(treated, control)]
    n = len(differences)
    mean = statistics.fmean(differences)
    std = statistics.stdev(differences) if n > 1 else None
    ci = None
    if n > 1:
        half = t_quantile_975(n - 1) * std / math.sqrt(n)
        ci = [mean - half, mean + half]
    return {"mean": mean, "std": std, "ci95": ci, "n": n,
            "n_positive": sum(d > 0 for d in differences), "differences": differences}


def paired_gain_z(correct, baseline_correct, labels=None) -> dict:
    """How far a candidate beats a baseline scored on the same images, in standard errors.

    Per image, ``d = correct - baseline_correct`` (1: only the candidate is right, -1: only the
    baseline). The gain is the score difference, ``sum(w * d)``, with ``w = 1 / N`` (accuracy) or,
    with ``labels``, ``w = 1 / (K * n_c)`` (mean per-class accuracy over the ``K`` classes present,
    ``n_c`` images of the image's class). Its standard error, were the two equally good, is
    ``sqrt(sum(w**2 * d**2))``: for accuracy, ``z = (b - c) / sqrt(b + c)`` with ``b`` and ``c``
    the images only one of them gets right, McNemar's test. Images both get right or both wrong
    say nothing about which is better, so a one-image lead among a few disagreements is z < 1.

    Args:
        correct, baseline_correct: per image, whether each classifier got it right (bool or 0/1
            tensors or sequences of one length).
        labels: the images' classes, for the class-balanced score; None for accuracy.

    Returns:
        ``{"gain", "se", "z"}`` (floats; ``z`` is 0 where the two agree on every image).
    """
    import torch

    correct, baseline = (torch.as_tensor(c).flatten().double() for c in (correct, baseline_correct))
    if correct.shape != baseline.shape or not len(correct):
        raise ConfigError(f"paired_gain_z needs one result per image on both sides, got {len(correct)} and "
                          f"{len(baseline)}")
    if labels is None:
        weights = torch.full_like(correct, 1.0 / len(correct))
    else:
        labels = torch.as_tensor(labels).flatten().long()
        if labels.shape != correct.shape:
            raise ConfigError(f"paired_gain_z needs one label per image, got {len(labels)} for {len(correct)}")
        counts = torch.bincount(labels).double()
        weights = 1.0 / (counts[labels] * int((counts > 0).sum()))
    d = correct - baseline
    gain, se = float((weights * d).sum()), float((weights.square() * d.square()).sum().sqrt())
    return {"gain": gain, "se": se, "z": gain / se if se > 0 else 0.0}


def oracle_share(delta: float, oracle_gain: float) -> float | None:
    """``delta / oracle_gain``: the share of "twice the real data" that synthetic data recovers.

    None when the oracle gain is not positive (more real data did not help, so there is
    nothing to recover and the ratio would mislead).
    """
    if oracle_gain is None or delta is None or oracle_gain <= 0:
        return None
    return float(delta) / float(oracle_gain)


def format_interval(summary: dict, *, scale: float = 100.0, unit: str = "pts") -> str:
    """``"+1.2 [+0.3, +2.1] pts, 4/5 seeds > 0"`` from :func:`paired_difference`'s dict."""
    mean = f"{scale * summary['mean']:+.1f}"
    if summary["ci95"] is None:
        return f"{mean} {unit} (one seed: no interval)"
    low, high = (f"{scale * v:+.1f}" for v in summary["ci95"])
    return f"{mean} [{low}, {high}] {unit}, {summary['n_positive']}/{summary['n']} seeds > 0"


__all__ = ["format_interval", "oracle_share", "paired_difference", "paired_gain_z", "t_quantile_975"]
