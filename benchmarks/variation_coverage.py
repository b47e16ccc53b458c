"""The coverage of a cell's variation rows where its arms predate the coverage record.

The Fashion-MNIST 50/class ``aae:variation`` arms of ``downstream_v3`` were run before the arms
recorded their rows' coverage. This retrains each seed's generator exactly as ``downstream.py``
does (same subset, seed, steps and code path, ``Arms.train_generator``), makes the rows of the
mode that seed's arm chose (read from the cell's file), and measures them as an arm does
(``Arms.row_coverage``: pixel-space diversity against held-out real images, novelty against the
subset; medians over classes). No classifier is trained and no test image is read. Writes
``benchmarks/results/variation_coverage_<dataset>_<budget>_<family>.json``::

    OMP_NUM_THREADS=1 python benchmarks/variation_coverage.py --dataset fashion-mnist --budget 50pc \\
        --family aae --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from downstream import Arms, parse_args
from harness import RESULTS, git_commit, machine, write_json
from protocol import draw_cell, load_split


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--budget", default="50pc")
    p.add_argument("--family", default="aae")
    p.add_argument("--seeds", default="0,1,2,3,4")
    args = p.parse_args()
    command = "python benchmarks/variation_coverage.py " + " ".join(sys.argv[1:])
    seeds = [int(s) for s in args.seeds.split(",")]
    key = f"{args.family}:variation"
    cell_file = RESULTS / f"downstream_v3_{args.dataset}_{args.budget}.json"
    arms_by_seed = {row["seed"]: row["arms"].get(key) for row in json.loads(cell_file.read_text())["per_seed"]}
    # The cell's own settings (classifier budget, generator steps), as downstream.py reads them.
    sys.argv = ["downstream.py", "--dataset", args.dataset, "--budget", args.budget, "--sources", key]
    cell_args = parse_args()
    full = load_split(args.dataset)
    rows = []
    for seed in seeds:
        arm = arms_by_seed.get(seed)
        if not arm or "mode" not in arm:
            raise SystemExit(f"{cell_file.name} has no {key} arm with a chosen mode at seed {seed}")
        t0 = time.perf_counter()
        arms = Arms(draw_cell(full, args.dataset, args.budget, seed), None, seed, cell_args)
        generator, _ = arms.train_generator(args.family)
        candidate = {"mode": arm["mode"], **({"strength": arm["strength"]} if "strength" in arm else {})}
        coverage = arms.row_coverage(generator, candidate)
        rows.append({"seed": seed, **candidate, **coverage, "arm_git_commit": arm.get("git_commit"),
                     "seconds": round(time.perf_counter() - t0, 1)})
        print(f"seed {seed} {key} ({candidate['mode']}): diversity {coverage['diversity_pixels']:.3f}, "
              f"novelty {coverage['novelty_pixels']:.3f}", flush=True)
    mean = {name: statistics.fmean(r[name] for r in rows) for name in ("diversity_pixels", "novelty_pixels")}
    out = RESULTS / f"variation_coverage_{args.dataset}_{args.budget}_{args.family}.json"
    write_json(out, {"benchmark": "variation_coverage", "dataset": args.dataset, "budget": args.budget,
                     "source": key, "gen_steps": cell_args.gen_steps, "seeds": seeds, "rows": rows, "mean": mean,
                     "note": "the generator retrained as downstream.py trains it, with this commit's code; the "
                             "arms' own commits are recorded per seed",
                     "machine": machine(), "git_commit": git_commit(),
                     "command": command})
    print(f"wrote {out}: mean diversity {mean['diversity_pixels']:.3f}, novelty {mean['novelty_pixels']:.3f}")


if __name__ == "__main__":
    main()
