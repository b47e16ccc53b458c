"""Training time to a converged sample grid, for the default ``ddpm`` next to the default ``cgan``.

Each family trains on the same real subset (a cell of ``protocol.py``, one seed) with scored
snapshots every ``--snapshot-every`` steps (``TrainingConfig(snapshot_every=...)``): the score is
the trainer's own best-snapshot criterion, :class:`augmentgen.training.snapshots.TrainingDataScore`
(class consistency x within-class diversity x novelty x realness of the samples, against the
*training* images only).
The benchmark records, per snapshot, the step, the score and the training seconds spent so far
(wall time minus the time spent scoring), and calls the run converged at the first snapshot whose
score is within ``--tolerance`` (relative) of the run's best, provided a later snapshot confirms
it (the best is not the last snapshot, or the last two agree); otherwise it says "not converged".
The grid of that snapshot and of the last one are written next to the JSON.

Writes ``benchmarks/results/time_to_grid_<dataset>_<budget>.json`` after each family (a rerun
skips the families already there). The CPU is shared with other jobs, so run it niced and on one
thread; the seconds are this machine's, under its load at the time::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/time_to_grid.py \
        --families cgan=3000,ddpm=6000 --snapshot-every 250
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from harness import RESULTS, git_commit, machine, write_json
from protocol import CELLS, draw_cell, load_split

import augmentgen
from augmentgen._images import save_sample_grid
from augmentgen.models import build_config
from augmentgen.training import Trainer, TrainingConfig
from augmentgen.training.snapshots import TrainingDataScore


class TimedScore:
    """The default snapshot score, plus the training seconds before each snapshot (scoring time
    taken out) and the snapshot's sample grid."""

    def __init__(self, data, *, seed: int, device, grid_per_class: int = 8):
        self.score = TrainingDataScore(data, seed=seed, device=device)
        self.start, self.scoring, self.grid_per_class, self.seed = time.perf_counter(), 0.0, grid_per_class, seed
        self.records: list[dict] = []
        self.grids: list[torch.Tensor] = []

    def __call__(self, generator) -> dict:
        t0 = time.perf_counter()
        scores = self.score(generator)
        noise = torch.Generator(device=generator.device).manual_seed(self.seed)
        images, _ = generator.sample_per_class(self.grid_per_class, generator=noise)
        self.grids.append(images.cpu())
        self.records.append({**scores, "train_seconds": round(t0 - self.start - self.scoring, 1)})
        self.scoring += time.perf_counter() - t0
        return scores


def converged_at(records: list[dict], tolerance: float) -> int | None:
    """Index of the first snapshot within ``tolerance`` of the best score, if a later snapshot
    confirms the plateau (the best is not the last, or the last two are both within it)."""
    scores = [r["score"] for r in records]
    best = max(scores)
    close = [s >= best * (1 - tolerance) for s in scores]
    confirmed = scores.index(best) < len(scores) - 1 or (len(scores) > 1 and close[-2])
    if not confirmed:
        return None
    return close.index(True)


def train_family(family: str, steps: int, cell, args, out: Path) -> dict:
    subset = cell.subset
    config = build_config(family, num_classes=subset.num_classes, class_names=subset.class_names,
                          image_size=subset.image_shape[1], in_channels=subset.image_shape[0])
    training = TrainingConfig(steps=steps, batch_size=64, seed=args.seed, checkpoint_every=0, sample_every=0,
                              log_every=max(1, steps // 20), snapshot_every=args.snapshot_every)
    timed: dict[str, TimedScore] = {}

    def factory(data):
        timed["score"] = TimedScore(data, seed=args.seed, device=args.device)
        return timed["score"]

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(config, training, tmp, snapshot_scorer=factory).fit(subset)
    score = timed["score"]
    for record, step in zip(score.records, snapshot_steps(steps, args.snapshot_every)):
        record["step"] = step
    index = converged_at(score.records, args.tolerance)
    grids = {}
    for name, i in (("converged", index), ("last", len(score.records) - 1)):
        if i is not None:
            path = out.parent / "grids" / f"{out.stem}_{family}_{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_sample_grid(score.grids[i], 8, path)
            grids[name] = str(path.relative_to(out.parent))
    return {"steps": steps, "snapshots": score.records, "converged": index is not None,
            "converged_step": None if index is None else score.records[index]["step"],
            "converged_train_seconds": None if index is None else score.records[index]["train_seconds"],
            "best_score": max(r["score"] for r in score.records), "grids": grids,
            "wall_seconds": round(time.perf_counter() - t0, 1)}


def snapshot_steps(steps: int, every: int) -> list[int]:
    """The steps the trainer scores: every ``every`` steps, and the last one."""
    return sorted(set(range(every, steps + 1, every)) | {steps})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--families", default="cgan=3000,ddpm=6000", help="family=steps, comma-separated")
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(CELLS))
    p.add_argument("--budget", default="50pc")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snapshot-every", type=int, default=250)
    p.add_argument("--tolerance", type=float, default=0.05, help="relative distance to the best score")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out")
    args = p.parse_args()
    families = dict((f.split("=")[0], int(f.split("=")[1])) for f in args.families.split(","))
    out = Path(args.out or RESULTS / f"time_to_grid_{args.dataset}_{args.budget}.json")
    result = json.loads(out.read_text()) if out.exists() else {
        "benchmark": "training time to a converged sample grid", "dataset": args.dataset, "budget": args.budget,
        "seed": args.seed, "snapshot_every": args.snapshot_every, "tolerance": args.tolerance,
        "score": "TrainingDataScore: class consistency x within-class diversity x novelty (nearest-training-"
                 "image distance against a training image's nearest other one) x realness (feature Frechet "
                 "distance against two halves of the training images), on the training images only",
        "families": {}}
    cell = draw_cell(load_split(args.dataset), args.dataset, args.budget, args.seed)
    for family, steps in families.items():
        if family in result["families"]:
            continue
        result["families"][family] = {**train_family(family, steps, cell, args, out), "git_commit": git_commit()}
        result.update({"machine": machine(args.device), "torch": torch.__version__,
                       "augmentgen": augmentgen.__version__})
        write_json(out, result)
        entry = result["families"][family]
        print(f"{family}: best score {entry['best_score']:.3f}; converged at step {entry['converged_step']} "
              f"after {entry['converged_train_seconds']} s of training" if entry["converged"] else
              f"{family}: not converged in {steps} steps (best score {entry['best_score']:.3f})", flush=True)


if __name__ == "__main__":
    main()
