"""The verdict of :func:`~augmentgen.metrics.downstream_gain`: one or several seeds' reports
turned into a decision (mix, do not mix, undecided) and one plain sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError
from .controls import CONTROLS, describe_control
from .stats import format_interval, paired_difference


def _counted(values: list[str]) -> str:
    """``"a"`` for one seed or when every seed agrees; ``"a (3 seeds), b (2 seeds)"`` otherwise."""
    if len(set(values)) == 1:
        return values[0] + ("" if len(values) == 1 else " at every seed")
    counts = {v: values.count(v) for v in dict.fromkeys(values)}
    return ", ".join(f"{v} ({n} seed{'s' * (n > 1)})" for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _held_back(reports: Sequence[dict]) -> str:
    """``" by more than 1 standard error (a smaller lead was held back, at 2 seeds)"`` where the guard of
    :func:`~augmentgen.metrics.downstream_gain` kept B against a synthetic candidate's lead."""
    margins = [r.get("validation_margin") for r in reports]
    held = [m for m in margins if m and m["held_back"]]
    if not held:
        return ""
    z = held[0]["min_z"]
    leads = (f"z = {held[0]['z']:.2f}" if len(reports) == 1
             else f"at {len(held)} seed{'s' * (len(held) > 1)}")
    return f" by more than {z:g} standard error{'s' * (z != 1)} (a smaller lead was held back, {leads})"


def _pts(value: float) -> str:
    return f"{100 * value:+.1f} pts"


def _control_differences(reports: Sequence[dict]) -> dict[str, dict]:
    """Per control: B + synthetic minus the control (:func:`paired_difference`) over the seeds that
    trained it (those where validation chose a synthetic method), with ``"seeds"`` added."""
    names = dict.fromkeys(name for r in reports for name in (r.get("controls") or {}))
    differences = {}
    for name in names:
        rows = [r for r in reports if name in (r.get("controls") or {})]
        differences[name] = {**paired_difference([r["score_mixed"] for r in rows],
                                                 [r["controls"][name]["score"] for r in rows]),
                             "seeds": [r["seed"] for r in rows]}
    return differences


def _not_beaten(controls: dict[str, dict]) -> list[str]:
    """The controls that B + synthetic is not shown to beat: an interval that includes 0, or one seed."""
    return [name for name, d in controls.items() if d["ci95"] is None or d["ci95"][0] <= 0]


def _versus_controls(controls: dict[str, dict]) -> str:
    """``"vs pixel-mix (same-class MixUp ...), no generator: +0.4 pts at one seed"`` for each control."""
    return "; ".join(f"vs {describe_control(name)}, no generator: "
                     + (f"{100 * d['mean']:+.1f} pts at one seed" if d["ci95"] is None else format_interval(d))
                     for name, d in controls.items())


def downstream_verdict(reports: Sequence[dict]) -> dict:
    """The decision over one or several seeds' :func:`downstream_gain` reports (paired: each
    seed's B + synthetic against the same seed's B).

    ``decision`` is ``"mix"`` only when several seeds give a 95% interval of ``delta`` above 0;
    ``"do not mix"`` when validation chose no synthetic rows at every seed, or the test
    difference is not above 0 (mean at or below 0, or an interval that includes 0), or B +
    synthetic is not shown to beat a control the reports carry (as many rows made without a
    generator, :mod:`augmentgen.metrics.controls`: then the sentence names the row source that is
    not shown to be beaten); and ``"undecided"`` for one positive seed (one seed is not evidence:
    the text says do not mix until several seeds show it).

    Returns:
        ``{"seeds", "best_baseline", "method", "ratio", "metric", "delta", "delta_mean",
        "delta_std", "delta_ci95", "n_positive", "acc_real_classic", "acc_best_baseline",
        "acc_mixed", "delta_vs_classic"`` (:func:`~augmentgen.metrics.paired_difference` of
        B + synthetic against classic augmentation alone)``, "delta_vs_controls"`` (per control:
        B + synthetic minus the control over the seeds that trained it, with their ``"seeds"``)``,
        "decision", "verdict"}``.
    """
    if not reports:
        raise ConfigError("no seeds to judge")
    n, metric = len(reports), reports[0]["metric"]
    paired = paired_difference([r["score_mixed"] for r in reports], [r["score_best_baseline"] for r in reports])
    vs_classic = paired_difference([r["score_mixed"] for r in reports], [r["score_real_classic"] for r in reports])
    vs_controls = _control_differences(reports)
    baseline = "Best baseline on the validation split: " + _counted([r["best_baseline"] for r in reports])
    chosen = [r for r in reports if r["method"] not in ("none", "soft-control")]
    picks = _counted(["none (B alone)" if r["method"] in ("none", "soft-control") else f"{r['method']} at ratio "
                      f"{r['ratio']:g}" for r in reports])
    on_test = (f"On the test data, B + synthetic vs B ({metric}): "
               + (_pts(paired["mean"]) + " at one seed" if n == 1 else format_interval(paired)))
    if not chosen:
        decision = "do not mix"
        soft = sum(r["method"] == "soft-control" for r in reports)
        reason = [baseline, "No synthetic method on top of it beat it on the validation split"
                  + _held_back(reports) + ("" if n == 1 else f" ({n} of {n} seeds)")
                  + ("" if not soft else f"; teacher soft labels on the real rows alone did best at {soft} of {n}, "
                     "which needs no generator")]
    else:
        if paired["mean"] <= 0:
            decision, tail = "do not mix", "it does not beat the best baseline"
        elif n == 1:
            decision, tail = "undecided", ("one seed is not evidence: do not mix until 5 paired seeds "
                                           "(augmentgen eval --repeats 5) give an interval above 0")
        elif paired["ci95"][0] <= 0:
            decision, tail = "do not mix", "the interval includes 0, so it is not shown to beat the best baseline"
        elif _not_beaten(vs_controls):
            sources = " or ".join(f"{CONTROLS[name][1].__name__} ({name})" for name in _not_beaten(vs_controls))
            decision, tail = "do not mix", (f"the interval is above 0 over {n} paired seeds, but it is not shown to "
                                            f"beat as many rows made without the generator: mix in {sources} instead")
        else:
            decision, tail = "mix", f"the interval is above 0 over {n} paired seeds"
        reason = [baseline, f"Best synthetic method on top of it: {picks}", f"{on_test}: {tail}"]
        if vs_controls:
            reason.append(f"B + synthetic {_versus_controls(vs_controls)}")
    return {
        "seeds": [r["seed"] for r in reports], "best_baseline": [r["best_baseline"] for r in reports],
        "method": [r["method"] for r in reports], "ratio": [r["ratio"] for r in reports], "metric": metric,
        "delta": paired["differences"], "delta_mean": paired["mean"], "delta_std": paired["std"],
        "delta_ci95": paired["ci95"], "n_positive": paired["n_positive"],
        "acc_real_classic": [r["acc_real_classic"] for r in reports],
        "acc_best_baseline": [r["acc_best_baseline"] for r in reports],
        "acc_mixed": [r["acc_mixed"] for r in reports], "delta_vs_classic": vs_classic,
        "delta_vs_controls": vs_controls,
        "decision": decision, "verdict": ". ".join([decision, *reason]) + ".",
    }


def verdict(report: dict) -> str:
    """The verdict of one seed's :func:`downstream_gain` report (see :func:`downstream_verdict`)."""
    return downstream_verdict([report])["verdict"]


__all__ = ["downstream_verdict", "verdict"]
