"""Coverage of the default ``ddpm``'s samples by guidance scale and training length.

Diffusion models trained on a few hundred images can copy them (Somepalli et al. 2023;
Kadkhodaie et al. 2024), so the novelty ratio is the figure to watch, next to the diversity ratio
and whether the samples are recognisable. One seed's subset of a protocol cell (default
Fashion-MNIST 50/class, 500 images); the ``ddpm`` trains once, and at every ``--snapshot-every``
steps its EMA snapshot samples ``--per-class`` images of every class at each guidance scale of
``--guidance`` (the same noise for every scale), measured against real images of the *training
split* that are not in the subset (the cell's held-out images; the test set is never read):

* class consistency: the share of a class's samples that the reference classifier (ResNet-8 on
  the subset, the protocol's epoch budget) calls that class;
* CAS: the reference classifier trained on the samples alone, accuracy on the held-out images;
* diversity and novelty ratios (:mod:`augmentgen.metrics.coverage`), in pixels and on the
  reference classifier's features: 1 is "as spread" / "as new" as real images of the class,
  a novelty well below 1 means copies of the training images.

``--compare cgan=600`` measures the same figures for another family at a fixed step count (the
downstream protocol's ``cgan``), its samples at its own settings. The training seconds exclude the
measuring. Writes ``benchmarks/results/ddpm_coverage_<dataset>_<budget>.json`` after each family
(a rerun skips the families already there)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ddpm_coverage.py --steps 6000 --snapshot-every 1500 \\
        --guidance 1,2,3 --compare cgan=600
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import torch
from downstream import convergence_epochs
from harness import RESULTS, git_commit, machine, write_json
from protocol import CELLS, draw_cell, load_split
from time_to_grid import snapshot_steps

import augmentgen
from augmentgen.data import LabelledImages
from augmentgen.metrics import (
    diversity_ratio,
    evaluate_accuracy,
    features,
    novelty_ratio,
    per_class_accuracy,
    sample_uint8_per_class,
    train_classifier,
)
from augmentgen.models import build_config
from augmentgen.training import Trainer, TrainingConfig
from augmentgen.training.snapshots import TrainingDataScore


def samples_at(generator, per_class: int, seed: int, guidance: float | None) -> LabelledImages:
    """``per_class`` uint8 samples of every class from seeded noise, at ``guidance`` where it has a meaning."""
    options = contextlib.nullcontext() if guidance is None else generator.sampling_options(guidance_scale=guidance)
    with options:
        return sample_uint8_per_class(generator, per_class, seed=seed, batch_size=256)


def coverage_figures(synthetic: LabelledImages, cell, reference, args) -> dict:
    """Consistency, CAS, and the diversity / novelty ratios in pixels and features of ``synthetic``."""
    k, held, subset = synthetic.num_classes, cell.heldout, cell.subset
    consistency = per_class_accuracy(reference, synthetic, num_classes=k)
    cas_model = train_classifier(synthetic, epochs=args.epochs, min_steps=args.min_steps, seed=args.seed, num_classes=k,
                                 device="cpu")
    figures = {"class_consistency": sum(consistency) / k, "cas": evaluate_accuracy(cas_model, held)}
    spaces = {"pixels": lambda images: images, "features": lambda images: features(reference, images)}
    for space, embed in spaces.items():
        fake, train, real = embed(synthetic.images), embed(subset.images), embed(held.images)
        diversity = diversity_ratio(fake, synthetic.labels, real, held.labels, num_classes=k, seed=args.seed)
        novelty = novelty_ratio(fake, synthetic.labels, train, subset.labels, real, held.labels, num_classes=k,
                                seed=args.seed)
        figures[f"diversity_{space}"], figures[f"novelty_{space}"] = diversity["median"], novelty["median"]
    return figures


class SweepScore:
    """The trainer's snapshot score, plus the coverage figures of every guidance scale at each snapshot
    (the time they take is kept out of the training seconds)."""

    def __init__(self, data, cell, reference, args, guidance: list[float | None], steps: list[int]):
        self.score = TrainingDataScore(data, seed=args.seed, device="cpu")
        self.cell, self.reference, self.args, self.guidance, self.steps = cell, reference, args, guidance, steps
        self.start, self.measuring, self.records = time.perf_counter(), 0.0, []

    def __call__(self, generator) -> dict:
        t0 = time.perf_counter()
        step = self.steps[len(self.records) // len(self.guidance)]  # the trainer scores these steps, in order
        for scale in self.guidance:
            synthetic = samples_at(generator, self.args.per_class, self.args.seed, scale)
            self.records.append({"step": step, "guidance_scale": scale,
                                 "train_seconds": round(t0 - self.start - self.measuring, 1),
                                 **coverage_figures(synthetic, self.cell, self.reference, self.args)})
            print(f"  step {step}, guidance {scale}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in self.records[-1].items() if isinstance(v, float)), flush=True)
        scores = self.score(generator)
        self.measuring += time.perf_counter() - t0
        return scores


def measure_family(family: str, steps: int, every: int, guidance: list[float | None], cell, reference,
                   args) -> dict:
    """Train ``family`` on the cell's subset for ``steps``, measuring at every ``every`` steps."""
    subset = cell.subset
    config = build_config(family, num_classes=subset.num_classes, class_names=subset.class_names,
                          image_size=subset.image_shape[1], in_channels=subset.image_shape[0])
    training = TrainingConfig(steps=steps, batch_size=64, seed=args.seed, checkpoint_every=0, sample_every=0,
                              log_every=max(1, steps // 20), snapshot_every=every)
    holder: dict[str, SweepScore] = {}

    def factory(data):
        holder["score"] = SweepScore(data, cell, reference, args, guidance, snapshot_steps(steps, every))
        return holder["score"]

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(config, training, tmp, snapshot_scorer=factory).fit(subset)
    return {"steps": steps, "snapshot_every": every, "records": holder["score"].records,
            "wall_seconds": round(time.perf_counter() - t0, 1), "git_commit": git_commit()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(CELLS))
    p.add_argument("--budget", default="50pc")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=6000, help="ddpm training steps")
    p.add_argument("--snapshot-every", type=int, default=1500, help="measure the ddpm every N steps")
    p.add_argument("--guidance", default="1,2,3", help="comma-separated classifier-free guidance scales")
    p.add_argument("--per-class", type=int, default=40, help="samples per class and guidance scale")
    p.add_argument("--compare", default="cgan=600", help="family=steps measured once at the end ('' for none)")
    p.add_argument("--epochs", type=float, help="classifier budget (default: the cell's convergence sweep)")
    p.add_argument("--min-steps", type=int, default=200, help="the fewest steps of a classifier")
    p.add_argument("--out")
    args = p.parse_args()
    args.epochs = args.epochs or convergence_epochs(args.dataset, args.budget)
    out = Path(args.out or RESULTS / f"ddpm_coverage_{args.dataset}_{args.budget}.json")
    result = json.loads(out.read_text()) if out.exists() else {
        "benchmark": "coverage of generator samples by guidance scale and training length",
        "dataset": args.dataset, "budget": args.budget, "seed": args.seed, "per_class": args.per_class,
        "reference": "ResNet-8 trained on the subset; heldout: training-split images not in the subset "
                     "(the test set is never read)", "families": {}}
    cell = draw_cell(load_split(args.dataset), args.dataset, args.budget, args.seed)
    reference = train_classifier(cell.subset, epochs=args.epochs, min_steps=args.min_steps, seed=args.seed, device="cpu")
    runs = [("ddpm", args.steps, args.snapshot_every, [float(g) for g in args.guidance.split(",")])]
    for entry in filter(None, args.compare.split(",")):
        family, steps = entry.split("=")
        runs.append((family, int(steps), int(steps), [None]))
    for family, steps, every, guidance in runs:
        if family in result["families"]:
            continue
        print(f"{family}: {steps} steps, measured every {every} at guidance {guidance}", flush=True)
        result["families"][family] = measure_family(family, steps, every, guidance, cell, reference, args)
        result.update({"machine": machine("cpu"), "torch": torch.__version__, "augmentgen": augmentgen.__version__,
                       "classifier_epochs": args.epochs})
        write_json(out, result)


if __name__ == "__main__":
    main()
