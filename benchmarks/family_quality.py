"""Class consistency and training time of every family on Fashion-MNIST, 50 per class.

For each family (default config): train on a seeded 50-images-per-class subset of the
Fashion-MNIST training set, then measure with augmentgen's reference classifier
(:func:`augmentgen.metrics.train_classifier`, ResNet-8) trained on the FULL Fashion-MNIST
training set (60,000 images):

* class consistency: the share of samples drawn for class c that the classifier calls c
  (100 per class), per class and averaged;
* the same for ``vary`` (strength 0.5) applied to the 50-per-class training images;
* within-class diversity: mean per-pixel std over the samples of a class (0 = collapse), next to
  the same figure for the real subset;
* training seconds (wall clock of the trainer's loop on this machine).

Writes ``benchmarks/results/family_quality.json`` and ``benchmarks/results/grids/<family>.png``
(one row per class, 8 samples each).

Usage (CPU shared with other jobs, so niced)::

    nice -n 10 .venv/bin/python benchmarks/family_quality.py --steps 300 --seed 0
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from harness import git_commit, write_json

import augmentgen
from augmentgen._images import save_sample_grid
from augmentgen.data import load_data
from augmentgen.metrics import (
    class_consistency,
    evaluate_accuracy,
    per_class_accuracy,
    predict,
    train_classifier,
)
from augmentgen.models import build_config
from augmentgen.training.config import TrainingConfig
from augmentgen.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT.parents[1] / "shared" / "data"


def within_class_spread(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Mean over classes of the mean per-pixel std across that class's images (batched)."""
    flat = images.float().flatten(1)
    onehot = torch.nn.functional.one_hot(labels, num_classes).float()  # (n, k)
    counts = onehot.sum(0).clamp(min=2)
    mean = onehot.T @ flat / counts[:, None]
    var = onehot.T @ flat.square() / counts[:, None] - mean.square()
    return float((var.clamp(min=0) * counts[:, None] / (counts[:, None] - 1)).sqrt().mean())


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default="cgan,aae,vae,aegan,ae")
    p.add_argument("--steps", type=int, default=300, help="training steps per family")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="seeds the subset draw and the training")
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--classifier-steps", type=int, default=400)
    p.add_argument("--samples-per-class", type=int, default=100)
    p.add_argument("--data-dir", default=str(DEFAULT_DATA))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model config field of every family that has it (repeatable)")
    p.add_argument("--out", default=str(ROOT / "results" / "family_quality.json"))
    args = p.parse_args()
    args.family_list = [f.strip() for f in args.families.split(",") if f.strip()]
    known = set().union(*(type(build_config(f)).field_names() for f in args.family_list))
    for override in args.overrides:
        key = override.split("=", 1)[0]
        if "=" not in override or key not in known:
            p.error(f"--set {override}: expected KEY=VALUE with KEY a config field of {', '.join(args.family_list)}")
    return args


def header(args: argparse.Namespace, subset, classifier, test, classifier_seconds: float) -> dict:
    """The results file before any family: the data, the judging classifier, the provenance."""
    return {
        "benchmark": "family_quality",
        "data": f"fashion-mnist train, {args.per_class} per class (seed {args.seed})",
        "classifier": {
            "model": "augmentgen.metrics.ReferenceClassifier (ResNet-8)",
            "trained_on": "full Fashion-MNIST training set (60,000 images)",
            "steps": args.classifier_steps,
            "test_accuracy": evaluate_accuracy(classifier, test),
            "train_seconds": round(classifier_seconds, 1),
        },
        "real_subset_within_class_spread": within_class_spread(
            subset.to_float(), subset.labels, subset.num_classes),
        "real_subset_consistency": float(sum(per_class_accuracy(
            classifier, subset, num_classes=subset.num_classes)) / subset.num_classes),
        "families": {},
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seeds": {"subset": args.seed, "training": args.seed, "classifier": args.seed,
                  "samples": args.seed},
        "machine": f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads, "
                   "CPU shared with other jobs (timings are upper bounds)",
        "torch": torch.__version__,
        "augmentgen": augmentgen.__version__ if hasattr(augmentgen, "__version__") else None,
        "git_commit": git_commit(),
        "overrides": args.overrides,
        "command": "python benchmarks/family_quality.py "
                   f"--steps {args.steps} --seed {args.seed} --classifier-steps {args.classifier_steps} "
                   f"--families {args.families}" + "".join(f" --set {o}" for o in args.overrides),
    }


def measure_family(family: str, args: argparse.Namespace, subset, classifier, grids: Path) -> dict:
    """Train ``family`` on the subset; its samples' consistency and spread, its vary() rows'
    consistency (encoder families), its costs; writes its sample grid."""
    fields = type(build_config(family)).field_names()
    overrides = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.overrides) if k in fields}
    config = build_config(family, num_classes=subset.num_classes, class_names=subset.class_names, **overrides)
    training = TrainingConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                              checkpoint_every=0, sample_every=0, log_every=max(1, args.steps // 10))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, training, tmp)
        t0 = time.perf_counter()
        generator = trainer.fit(subset)
        seconds = time.perf_counter() - t0
    generator.eval()
    consistency = class_consistency(generator, classifier, args.samples_per_class, seed=args.seed)
    g = torch.Generator().manual_seed(args.seed)
    samples, labels = generator.sample_per_class(args.samples_per_class, generator=g)
    vary_consistency = None
    if hasattr(generator, "vary"):  # the encoder families
        varied = generator.vary(subset.to_float(), subset.labels, 0.5, generator=g)
        vary_consistency = float((predict(classifier, varied).cpu() == subset.labels).float().mean())
    grid_images, _ = generator.sample_per_class(8, generator=torch.Generator().manual_seed(args.seed))
    save_sample_grid(grid_images, 8, grids / f"{family}.png")
    return {
        "class_consistency": consistency["mean"],
        "class_consistency_per_class": consistency["per_class"],
        "min_class_consistency": min(consistency["per_class"].values()),
        "vary_class_consistency": vary_consistency,
        "within_class_spread": within_class_spread(samples, labels, generator.num_classes),
        "train_seconds": round(seconds, 1),
        "trainer_loop_seconds": round(trainer.progress.train_seconds, 1),
        "final_losses": trainer.history[-1] if trainer.history else None,
        "config": config.to_dict(),
    }


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    subset = load_data("fashion-mnist", data_dir=args.data_dir, per_class=args.per_class, seed=args.seed)
    full = load_data("fashion-mnist", data_dir=args.data_dir)
    test = load_data("fashion-mnist", data_dir=args.data_dir, split="test")
    t0 = time.perf_counter()
    classifier = train_classifier(full, steps=args.classifier_steps, seed=args.seed).eval()
    results = header(args, subset, classifier, test, time.perf_counter() - t0)
    print(json.dumps(results["classifier"]), flush=True)
    grids = Path(args.out).parent / "grids"  # experiments written elsewhere keep the committed grids
    for family in args.family_list:
        entry = results["families"][family] = measure_family(family, args, subset, classifier, grids)
        print(family, json.dumps({k: v for k, v in entry.items() if k not in ("config", "class_consistency_per_class")}),
              flush=True)
        write_json(args.out, results)  # partial results survive


if __name__ == "__main__":
    main()
