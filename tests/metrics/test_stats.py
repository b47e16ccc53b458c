"""Paired statistics: known inputs give the textbook figures."""

from __future__ import annotations

import math

import pytest

from augmentgen.errors import ConfigError
from augmentgen.metrics import format_interval, oracle_share, paired_difference, t_quantile_975


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
