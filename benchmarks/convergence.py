"""How long must the classifier train? The classic arm's accuracy against its budget, per cell.

The downstream protocol budgets every classifier in epochs of its real training data. This sweep
trains the real + classic arm of a cell at several budgets (epochs E, 2E, 4E, ...) and picks the
smallest E at which doubling adds less than ``--threshold`` points, judged on real training
images *outside* the subset (``protocol.draw_cell``'s held-out set) and averaged over the seeds,
so the test set plays no part in the choice. Test accuracy is recorded beside it, as the curve
the README shows. Writes ``benchmarks/results/convergence_<dataset>_<budget>.json``, which
``downstream.py`` reads as its default budget.

    OMP_NUM_THREADS=1 python benchmarks/convergence.py --dataset fashion-mnist --budget 50pc
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from harness import RESULTS, git_commit, machine, write_json
from protocol import draw_cell, load_split

from augmentgen.metrics import classifier_steps, evaluate_accuracy, train_classifier


def choose_epochs(epochs: list[float], accuracy: dict[float, float], threshold: float) -> float:
    """The smallest budget E whose doubling (the next budget in the list) adds < ``threshold``;
    the largest budget when none does (the file then says ``converged: false``)."""
    for small, large in zip(epochs, epochs[1:]):
        if accuracy[large] - accuracy[small] < threshold:
            return small
    return epochs[-1]


def summarise(args, rows: list[dict], epochs: list[float], seeds: list[int], settings: dict, cell, test) -> dict:
    """The sweep's JSON from the points measured so far (budgets without a point yet are left out)."""
    rows.sort(key=lambda r: (r["seed"], r["epochs"]))
    measured = [e for e in epochs if any(r["epochs"] == e for r in rows)]
    mean = {split: {e: statistics.fmean(r[split] for r in rows if r["epochs"] == e) for e in measured}
            for split in ("heldout", "test")}
    chosen = choose_epochs(measured, mean["heldout"], args.threshold / 100)
    complete = len(rows) == len(epochs) * len(seeds)
    return {
        "benchmark": "convergence", "dataset": args.dataset, "budget": args.budget,
        "n_real": len(cell.subset), "n_heldout": len(cell.heldout), "n_test": len(test),
        "classifier": f"ReferenceClassifier (ResNet-8, width {args.width}), real + classic augmentation",
        "settings": settings, "batch_size": args.batch_size, "min_steps": args.min_steps, "seeds": seeds,
        "threshold_points": args.threshold, "epochs_tried": epochs, "complete": complete,
        "mean_heldout": {str(e): v for e, v in mean["heldout"].items()},
        "mean_test": {str(e): v for e, v in mean["test"].items()},
        "chosen_epochs": chosen,
        "converged": chosen != epochs[-1] or len(epochs) == 1,
        "rows": rows, "machine": machine(), "git_commit": git_commit(),
        "command": "python benchmarks/convergence.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
    }


def save(out: Path, result: dict) -> None:
    """Atomic write: a kill mid-write leaves the previous file whole."""
    write_json(out, result)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, choices=["mnist", "fashion-mnist", "cifar10"])
    p.add_argument("--budget", required=True, help="10pc, 50pc, 200pc or lt100")
    p.add_argument("--epochs", default="25,50,100,200", help="budgets tried, each twice the last")
    p.add_argument("--min-steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--threshold", type=float, default=0.3, help="points that a doubling must add")
    p.add_argument("--out")
    args = p.parse_args()
    epochs = sorted(float(e) for e in args.epochs.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    full, test = load_split(args.dataset), load_split(args.dataset, "test")
    out = Path(args.out or RESULTS / f"convergence_{args.dataset}_{args.budget}.json")
    settings = {"batch_size": args.batch_size, "min_steps": args.min_steps, "width": args.width}
    rows = []
    if out.exists():  # resume or extend: keep the (seed, budget) points measured with these settings
        previous = json.loads(out.read_text())
        if {k: previous.get("settings", {}).get(k) for k in settings} == settings:
            rows = [r for r in previous["rows"] if r["seed"] in seeds and r["epochs"] in epochs]
    done = {(r["seed"], r["epochs"]) for r in rows}
    for seed in seeds:
        cell = draw_cell(full, args.dataset, args.budget, seed)
        for e in epochs:
            if (seed, e) in done:
                continue
            t0 = time.perf_counter()
            model = train_classifier(cell.subset, epochs=e, min_steps=args.min_steps, batch_size=args.batch_size,
                                     width=args.width, seed=seed, num_classes=full.num_classes)
            rows.append({
                "seed": seed, "epochs": e,
                "steps": classifier_steps(len(cell.subset), args.batch_size, epochs=e, min_steps=args.min_steps),
                "heldout": evaluate_accuracy(model, cell.heldout), "test": evaluate_accuracy(model, test),
                "seconds": round(time.perf_counter() - t0, 1),
            })
            print(json.dumps(rows[-1]), flush=True)
            # Saved after every point, so that a killed sweep resumes where it stopped.
            result = summarise(args, rows, epochs, seeds, settings, cell, test)
            save(out, result)
    result = summarise(args, rows, epochs, seeds, settings, draw_cell(full, args.dataset, args.budget, seeds[-1]), test)
    save(out, result)
    chosen = result["chosen_epochs"]
    mean = {"heldout": {float(e): v for e, v in result["mean_heldout"].items()}}
    print(f"chosen: {chosen:g} epochs (held-out accuracy by budget: "
          + ", ".join(f"{e:g}: {100 * v:.2f}%" for e, v in mean["heldout"].items()) + f"); wrote {out}")


if __name__ == "__main__":
    main()
