"""Does a generator that has seen the validation images inflate its rows' validation score?

``downstream.py`` trains each seed's generator on the whole subset, then chooses on a validation
split carved from that subset: B or B + the generator's rows (the guarded figure), the variation
mode, the method. ``augmentgen eval`` does the same with the user's generator, trained on all of
the user's training data. The validation images are held out from the classifiers, not from the
generator: a generator that reproduces what it was trained on can put the validation images, or
near copies of them, into the rows a candidate trains on, and score that candidate too high.

Per seed this measures one fixed candidate's validation score (``--mode``, plain method) twice,
paired (the same splits, classifier seed and batch order): with the protocol's generator
(trained on the subset, validation images included: ``leaked``; ``recorded`` is the cell's own
score of it, where its arm scored that candidate) and with generators trained on each split's
fit part only (``clean``: the validation images unseen), beside B's score on the same splits
(B as the cell chose it). The leak is
``leaked - clean`` (mean over seeds with its 95% interval); ``guard_flips`` counts the seeds
where "mix only where validation beats B" decides otherwise with the clean generator. The test
set is never read. Writes ``benchmarks/results/validation_leak_<dataset>_<budget>.json``, after
every seed (a rerun resumes)::

    OMP_NUM_THREADS=1 python benchmarks/validation_leak.py --dataset fashion-mnist --budget 50pc \\
        --sources aae:variation,cgan:free --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from downstream import Arms, _candidate_label, baseline_options, parse_args, parse_source, train_generator
from harness import RESULTS, cpu_identity, git_commit, machine, write_json
from protocol import draw_cell, load_split

from augmentgen.metrics import paired_difference


def candidate_for(kind: str, mode: str) -> dict | None:
    """The candidate measured: a fixed variation ``mode`` (``vary`` or ``vary@0.5``), never the one
    the cell's arm chose, whose score would carry the choice's own luck (the best of three draws)
    into ``leaked`` and not into ``clean``; None for free samples."""
    if kind == "free":
        return None
    name, _, strength = mode.partition("@")
    return {"mode": name, **({"strength": float(strength)} if strength else {})}


def recorded_score(arm: dict | None, candidate: dict | None) -> float | None:
    """The cell's own validation score of ``candidate`` on top of B (a rerun of ``leaked`` on the
    machine and commit the arm ran on), where its arm scored it."""
    scores = (arm or {}).get("mode_selection") or (arm or {}).get("method_selection") or {}
    return scores.get(_candidate_label((candidate, "plain")))


def score_candidate(arms, generators: list, kind: str, candidate: dict | None, best: str, label: str) -> float:
    """The mean validation score of B + the rows of ``generators[i]`` on split ``i`` (plain method)."""
    def options(fit, i):
        mix = arms.candidate_mix(generators[i], kind, False, (candidate, "plain"), fit, None)
        return {"synthetic_mix": mix, **baseline_options(best, arms.k)}
    return arms.validate(options, label=label)


def measure(arms, spec: str, best: str, b_score: float, candidate: dict | None) -> dict:
    """One seed's leaked and clean scores of ``spec``'s candidate on top of ``best``."""
    family, kind, _, options, _ = parse_source(spec)
    t0 = time.perf_counter()
    seen, _ = arms.train_generator(family, options)  # the protocol's: trained on the whole subset
    leaked = score_candidate(arms, [seen] * len(arms.splits), kind, candidate, best, f"{spec} leaked")
    unseen = [train_generator(family, fit, steps=arms.gen_steps, seed=arms.seed, options=options)
              for fit, _ in arms.splits]  # one per split, on its fit part only
    clean = score_candidate(arms, unseen, kind, candidate, best, f"{spec} clean")
    return {**(candidate or {}), "leaked": leaked, "clean": clean, "b": b_score,
            "mixes_leaked": leaked > b_score, "mixes_clean": clean > b_score,
            "seconds": round(time.perf_counter() - t0, 1)}


def summarise(rows: list[dict]) -> dict:
    """Per source: the leak (leaked - clean) over seeds, each side against B, and the guard's flips."""
    summary = {}
    for spec in dict.fromkeys(spec for row in rows for spec in row["sources"]):
        got = [row["sources"][spec] for row in rows if spec in row["sources"]]
        summary[spec] = {
            "leak": paired_difference([g["leaked"] for g in got], [g["clean"] for g in got]),
            "leaked_vs_b": paired_difference([g["leaked"] for g in got], [g["b"] for g in got]),
            "clean_vs_b": paired_difference([g["clean"] for g in got], [g["b"] for g in got]),
            "guard_flips": sum(g["mixes_leaked"] != g["mixes_clean"] for g in got),
            "seeds": [row["seed"] for row in rows if spec in row["sources"]],
        }
    return summary


def b_score(arms, row: dict, best: str) -> float:
    """B's validation score on this machine (the cell recorded it on another run's)."""
    if "b" not in row:
        row["b"] = arms.validate(lambda fit, i: baseline_options(best, arms.k), label=f"({best})")
    return row["b"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False,
                                epilog="Other options are downstream.py's (--epochs, --gen-steps, --min-steps, ...): "
                                       "the cell's own settings by default.")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--budget", default="50pc")
    p.add_argument("--sources", default="aae:variation", help="comma-separated <family>:free / <family>:variation")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--mode", default="vary", help="the variation candidate measured (vary, interpolate, "
                                                   "extrapolate, vary@<strength>); free sources have none")
    p.add_argument("--out", help="JSON path (default: results/validation_leak_<dataset>_<budget>.json)")
    args, passed_on = p.parse_known_args()
    command = "python benchmarks/validation_leak.py " + " ".join(sys.argv[1:])
    seeds, specs = [int(s) for s in args.seeds.split(",")], args.sources.split(",")
    cell_file = RESULTS / f"downstream_v3_{args.dataset}_{args.budget}.json"
    cell = {row["seed"]: row for row in json.loads(cell_file.read_text())["per_seed"]}
    # The cell's own settings (classifier budget, generator steps, splits), as downstream.py reads them.
    sys.argv = ["downstream.py", "--dataset", args.dataset, "--budget", args.budget, "--sources", args.sources,
                *passed_on]
    cell_args = parse_args()
    out = Path(args.out or RESULTS / f"validation_leak_{args.dataset}_{args.budget}.json")
    results = open_results(out, args, cell_args, command)
    rows = {r["seed"]: r for r in results["per_seed"]}
    full = load_split(args.dataset)
    for seed in seeds:
        if "best_baseline" not in cell.get(seed, {}):
            raise SystemExit(f"{cell_file.name} has no seed {seed} with a chosen baseline: run downstream.py first")
        best = cell[seed]["best_baseline"]
        row = rows.setdefault(seed, {"seed": seed, "best_baseline": best, "sources": {}})
        arms = Arms(draw_cell(full, args.dataset, args.budget, seed), None, seed, cell_args)
        for spec in (s for s in specs if s not in row["sources"]):
            candidate = candidate_for(parse_source(spec)[1], args.mode)
            got = measure(arms, spec, best, b_score(arms, row, best), candidate)
            row["sources"][spec] = {**got, "recorded": recorded_score(cell[seed]["arms"].get(spec), candidate),
                                    "git_commit": git_commit(), "cpu": cpu_identity()}
            print(f"seed {seed} {spec}: leaked {got['leaked']:.4f}, clean {got['clean']:.4f}, B {got['b']:.4f}",
                  flush=True)
            results["per_seed"] = sorted(rows.values(), key=lambda r: r["seed"])
            results["summary"] = summarise(results["per_seed"])
            write_json(out, results)
    for spec, got in summarise(list(rows.values())).items():
        leak, ci = got["leak"], got["leak"]["ci95"]
        interval = f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else ""
        print(f"{spec}: leaked - clean {leak['mean']:+.4f}{interval} ({leak['n_positive']}/{leak['n']} seeds "
              f"positive); the guard decides otherwise at {got['guard_flips']} of {leak['n']} seeds")


def open_results(out: Path, args, cell_args, command: str) -> dict:
    """The results file to add to: a new one, or the one at ``out`` if it was measured with the
    same settings (a file of other settings is refused)."""
    settings = {"benchmark": "validation_leak", "dataset": args.dataset, "budget": args.budget,
                "gen_steps": cell_args.gen_steps, "clf_epochs": cell_args.epochs, "clf_min_steps": cell_args.min_steps,
                "clf_width": cell_args.clf_width, "selection_folds": cell_args.selection_folds,
                "ratio": cell_args.ratio, "method": "plain", "mode": args.mode}
    results = json.loads(out.read_text()) if out.exists() else {**settings, "per_seed": [], "commands": []}
    differing = {k: (results.get(k), v) for k, v in settings.items() if results.get(k) != v}
    if differing:
        raise SystemExit(f"{out} was measured with other settings {differing} (recorded, asked): pass --out "
                         "for another file")
    results["commands"] = list(dict.fromkeys([*results["commands"], command]))
    results["machine"] = machine()
    return results


if __name__ == "__main__":
    main()
