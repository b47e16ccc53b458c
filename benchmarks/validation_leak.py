"""Does a generator that has seen the validation images inflate its rows' validation score?

``downstream.py`` trains each seed's generator on the whole subset, then chooses on a validation
split carved from that subset: B or B + the generator's rows (the guarded figure), the variation
mode, the method. ``augmentgen eval`` does the same with the user's generator, trained on all of
the user's training data. The validation images are held out from the classifiers, not from the
generator: a generator that reproduces what it was trained on can put the validation images, or
near copies of them, into the rows a candidate trains on, and score that candidate too high.

Per seed this measures one fixed candidate's validation score (``--mode``, plain method) three
times, paired (the same splits, classifier seed and batch order), with rows from three generators
per split: the protocol's, trained on the whole subset, validation images included (``leaked``;
``recorded`` is the cell's own score of it, where its arm scored that candidate); one trained on
the split's fit part only (``clean``: the validation images unseen); and one trained on as many
images as the fit part, the validation images among them (``matched``), since the clean generator
also trains on fewer images. ``leak`` = matched - clean is what having seen the validation images
adds at the same size; ``size`` = leaked - matched what the images the clean generator lacks add;
beside B's score on the same splits (B as the cell chose it), ``guard_flips`` counts the seeds
where "mix only where validation beats B" decides otherwise with the clean generator, and
``z_guard_flips`` the same for the guard ``augmentgen eval`` applies (a lead of more than one
standard error over the same validation images: each generator's ``z_<name>`` against B, from
which images each got right; seeds measured before 2026-12-07 have none). The test set is never
read. Writes ``benchmarks/results/validation_leak_<dataset>_<budget>.json``, after
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

import torch
from downstream import (
    Arms,
    _candidate_label,
    baseline_options,
    parse_args,
    parse_source,
    recorded_gain_z,
    train_generator,
)
from generator_cache import cached_generator, cell_name, entry_key
from harness import RESULTS, cpu_identity, git_commit, machine, write_json
from protocol import draw_cell, load_split

from augmentgen.data import LabelledImages
from augmentgen.metrics import paired_difference
from augmentgen.metrics.scores import DEFAULT_MIN_VALIDATION_Z
from augmentgen.metrics.splits import beats
from augmentgen.metrics.stats import format_interval


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
    return arms.validate(options, label=label, journal_key=f"leak {label} on ({best})")


def size_matched(fit, val, seed: int):
    """As many images as ``fit``, class by class, that hold ``val``: ``fit`` less a seeded draw of
    as many of each class's images as ``val`` holds, plus ``val``. A generator trained on it has
    seen the validation images and no more images than the clean one. (``per_class_subset`` draws
    such a subset too, but in another order: the committed scores were drawn this way.)"""
    gen = torch.Generator().manual_seed(seed)
    keep = torch.ones(len(fit), dtype=torch.bool)
    for k, n in enumerate(torch.bincount(val.labels, minlength=fit.num_classes).tolist()):  # classes, not images
        rows = torch.nonzero(fit.labels == k).flatten()
        keep[rows[torch.randperm(len(rows), generator=gen)[:n]]] = False
    kept = fit.subset(torch.nonzero(keep).flatten())
    return LabelledImages(torch.cat([kept.images, val.images]), torch.cat([kept.labels, val.labels]),
                          fit.class_names)


#: The generators a candidate's rows come from, per split ``(fit, val)``: the protocol's, trained
#: on the whole subset (validation images and all); one trained on the fit part only; one trained
#: on as many images as the fit part, the validation images among them (``size_matched``).
GENERATORS = ("leaked", "clean", "matched")


def guard_z(arms, correct: str | None, b_correct: str | None) -> float | None:
    """The lead over B in standard errors (``paired_gain_z``, class-weighted on long-tailed cells)
    from which validation images the candidate and B got right; None where either is unknown."""
    if correct is None or b_correct is None:
        return None
    return recorded_gain_z(correct, b_correct, arms.val_labels, arms.cell.long_tailed)


def measure(arms, spec: str, best: str, b_score: float, candidate: dict | None, done: dict | None = None,
            b_correct: str | None = None) -> dict:
    """One seed's scores of ``spec``'s candidate on top of ``best`` with each of ``GENERATORS``
    (those not already in ``done``, a resumed record), and, with ``b_correct`` (which validation
    images B got right), each one's lead over B in standard errors and the guard's decision."""
    family, kind, _, options, _ = parse_source(spec)
    got = dict(done or {})
    t0 = time.perf_counter()

    def trained(data):  # kept on disk (generator_cache.py): a killed seed resumes without training them again
        def train():  # the seconds decide where the cache keeps it (the campaign folder when slow)
            start = time.perf_counter()
            generator = train_generator(family, data, steps=arms.gen_steps, seed=arms.seed, options=options)
            return generator, round(time.perf_counter() - start, 1), {}

        if not arms.generator_cache:
            return train()[0]
        key = entry_key(family, options or {}, arms.gen_steps, arms.seed, data, train_fn=train_generator)
        return cached_generator(key, train, cell=cell_name(arms.cell.dataset, arms.cell.budget))[0]
    make = {"leaked": lambda: [arms.train_generator(family, options)[0]] * len(arms.splits),
            "clean": lambda: [trained(fit) for fit, _ in arms.splits],
            "matched": lambda: [trained(size_matched(fit, val, arms.seed)) for fit, val in arms.splits]}
    for name in (n for n in GENERATORS if n not in got):
        got[name] = score_candidate(arms, make[name](), kind, candidate, best, f"{spec} {name}")
        got[f"mixes_{name}"] = beats(got[name], b_score)  # a tie keeps B
        z = None if b_correct is None else guard_z(arms, arms.correct.get(f"leak {spec} {name} on ({best})"), b_correct)
        if z is not None:
            got[f"z_{name}"], got[f"z_mixes_{name}"] = z, beats(z, DEFAULT_MIN_VALIDATION_Z)
    seconds = time.perf_counter() - t0 + (done or {}).get("seconds", 0.0)
    return {**(candidate or {}), **got, "b": b_score, "seconds": round(seconds, 1)}


def summarise(rows: list[dict]) -> dict:
    """Per source, over seeds: ``leak``, what having seen the validation images adds at the same
    number of training images (matched - clean); ``size``, what the images left out add (leaked -
    matched); ``total`` (leaked - clean); the protocol's and the clean score against B; and the
    seeds where the guard ("mix where validation beats B") decides otherwise with the clean generator."""
    summary = {}
    for spec in dict.fromkeys(spec for row in rows for spec in row["sources"]):
        got = [row["sources"][spec] for row in rows if spec in row["sources"]]

        def paired(a, b, got=got):
            pairs = [(g[a], g[b]) for g in got if a in g and b in g]
            return paired_difference(*zip(*pairs)) if pairs else None
        z_got = [g for g in got if "z_mixes_leaked" in g and "z_mixes_clean" in g]
        summary[spec] = {
            "leak": paired("matched", "clean"), "size": paired("leaked", "matched"), "total": paired("leaked", "clean"),
            "leaked_vs_b": paired("leaked", "b"), "clean_vs_b": paired("clean", "b"),
            "guard_flips": sum(g["mixes_leaked"] != g["mixes_clean"] for g in got),
            "seeds": [row["seed"] for row in rows if spec in row["sources"]],
            "z_guard_flips": sum(g["z_mixes_leaked"] != g["z_mixes_clean"] for g in z_got),
            "z_guard_seeds": len(z_got),
        }
    return summary


def b_score(arms, row: dict, best: str) -> tuple[float, str | None]:
    """B's validation score on this machine (the cell recorded it on another run's) and which
    validation images it got right (``b_correct``; B is validated again for a seed recorded before
    it was kept, its score left as the record has it)."""
    if "b" not in row or "b_correct" not in row:
        score = arms.validate(lambda fit, i: baseline_options(best, arms.k), label=f"({best})",
                              journal_key=f"baseline ({best})")  # downstream.py's choice of B runs the same
        row.setdefault("b", score)
        row["b_correct"] = arms.correct.get(f"baseline ({best})")
    return row["b"], row["b_correct"]


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
        for spec in specs:
            done = row["sources"].get(spec)
            if done and all(name in done for name in GENERATORS):
                continue
            candidate = candidate_for(parse_source(spec)[1], args.mode)
            b, b_correct = b_score(arms, row, best)
            got = measure(arms, spec, best, b, candidate, done, b_correct)
            row["sources"][spec] = {**got, "recorded": recorded_score(cell[seed]["arms"].get(spec), candidate),
                                    **provenance_of(done), "cpu": cpu_identity()}
            print(f"seed {seed} {spec}: " + ", ".join(f"{n} {got[n]:.4f}" for n in GENERATORS) + f", B {got['b']:.4f}",
                  flush=True)
            results["per_seed"] = sorted(rows.values(), key=lambda r: r["seed"])
            results["summary"] = summarise(results["per_seed"])
            write_json(out, results)
    for spec, got in summarise(list(rows.values())).items():
        print(f"{spec}: seen - unseen at the same size {interval_text(got['leak'])}; leaked - matched "
              f"{interval_text(got['size'])}; the guard decides otherwise at {got['guard_flips']} of "
              f"{len(got['seeds'])} seeds")


def provenance_of(done: dict | None) -> dict:
    """The commits a record was measured with: a resumed one keeps the commits of its earlier scores
    (``git_commits``, oldest first; ``git_commit``, this run's)."""
    earlier = (done or {}).get("git_commits") or ([done["git_commit"]] if (done or {}).get("git_commit") else [])
    now = git_commit()
    return {"git_commit": now, "git_commits": list(dict.fromkeys([*earlier, now]))}


def interval_text(stats: dict | None) -> str:
    return "not measured" if stats is None else format_interval(stats)


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
