"""Paired statistics: known inputs give the textbook figures."""

from __future__ import annotations

import math

import pytest

from augmentgen.errors import ConfigError
from augmentgen.metrics import format_interval, oracle_share, paired_difference, paired_gain_z, t_quantile_975


def test_t_quantiles_match_the_tables():
    assert t_quantile_975(1) == 12.706
    assert t_quantile_975(4) == 2.776  # 5 seeds
    assert t_quantile_975(30) == 2.042
    assert t_quantile_975(40) == pytest.approx(2.021, abs=1e-3)
    assert t_quantile_975(120) == pytest.approx(1.980, abs=1e-3)
    with pytest.raises(ConfigError):
        t_quantile_975(0)


def test_paired_difference_on_known_inputs():
    treated = [0.80, 0.82, 0.79, 0.85, 0.81]
    control = [0.78, 0.80, 0.80, 0.82, 0.79]
    s = paired_difference(treated, control)
    d = [0.02, 0.02, -0.01, 0.03, 0.02]
    mean = sum(d) / 5
    std = math.sqrt(sum((x - mean) ** 2 for x in d) / 4)
    half = 2.776 * std / math.sqrt(5)
    assert s["mean"] == pytest.approx(0.016)
    assert s["std"] == pytest.approx(std)
    assert s["ci95"] == pytest.approx([mean - half, mean + half])
    assert s["n"] == 5 and s["n_positive"] == 4
    assert s["differences"] == pytest.approx(d)
    assert format_interval(s) == "+1.6 [-0.3, +3.5] pts, 4/5 seeds > 0"


def test_pairing_removes_the_shared_seed_effect():
    """Arms that move together across seeds: unpaired spreads are large, the paired one is 0."""
    control = [0.70, 0.80, 0.75, 0.85, 0.78]
    treated = [c + 0.01 for c in control]
    s = paired_difference(treated, control)
    assert s["std"] == pytest.approx(0.0, abs=1e-12)
    assert s["ci95"] == pytest.approx([0.01, 0.01])


def test_one_seed_has_no_interval_and_mismatches_are_errors():
    s = paired_difference([0.8], [0.7])
    assert s["ci95"] is None and s["std"] is None and s["n_positive"] == 1
    assert "one seed" in format_interval(s)
    with pytest.raises(ConfigError):
        paired_difference([0.8, 0.7], [0.7])
    with pytest.raises(ConfigError):
        paired_difference([], [])


def test_oracle_share():
    assert oracle_share(0.01, 0.04) == pytest.approx(0.25)
    assert oracle_share(-0.01, 0.04) == pytest.approx(-0.25)
    assert oracle_share(0.01, 0.0) is None and oracle_share(0.01, -0.01) is None


def test_paired_gain_z_is_mcnemars_z_for_accuracy():
    # 10 images: 4 only the candidate gets right, 1 only the baseline, 5 both.
    candidate = [1, 1, 1, 1, 0, 1, 1, 1, 1, 1]
    baseline = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    result = paired_gain_z(candidate, baseline)
    assert result["gain"] == pytest.approx(0.3)  # 9/10 - 6/10
    assert result["se"] == pytest.approx(math.sqrt(5) / 10)
    assert result["z"] == pytest.approx((4 - 1) / math.sqrt(4 + 1))
    # A one-image lead among five disagreements (3 won, 2 lost): z = 1 / sqrt(5), well under 1.
    assert paired_gain_z([1, 1, 1, 0, 0], [0, 0, 0, 1, 1])["z"] == pytest.approx(1 / math.sqrt(5))
    assert paired_gain_z([1, 0, 1], [1, 0, 1]) == {"gain": 0.0, "se": 0.0, "z": 0.0}


def test_paired_gain_z_weights_images_by_class_for_the_balanced_score():
    import torch

    # Class 0 has one image, class 1 four: mean per-class accuracy weighs the lone image 1/2 and
    # each of the four 1/8.
    labels = torch.tensor([0, 1, 1, 1, 1])
    candidate = torch.tensor([True, True, True, True, False])
    baseline = torch.tensor([False, True, True, True, True])
    result = paired_gain_z(candidate, baseline, labels)
    assert result["gain"] == pytest.approx((1.0 - 0.0) / 2 + (0.75 - 1.0) / 2)
    assert result["se"] == pytest.approx(math.sqrt(0.5**2 + 0.125**2))
    assert result["z"] == pytest.approx(0.375 / math.sqrt(0.265625))
    with pytest.raises(ConfigError, match="one result per image"):
        paired_gain_z([1, 0], [1])
    with pytest.raises(ConfigError, match="one label per image"):
        paired_gain_z([1, 0], [1, 1], labels=[0])
