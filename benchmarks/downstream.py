"""Does synthetic data help? The benchmark protocol of augmentgen, one dataset and budget per run.

For every seed (it draws the real subset and seeds every training):

- the generator of each family is trained on that subset only, once, and serves arms b and c;
- arms, all the same classifier (``augmentgen.metrics.ReferenceClassifier``, a ResNet-8 of
  width 16) with the same number of steps and batch size:
  (a) real + classic augmentation (random crop by padding; flips for clothing and objects,
      small rotations/scaling for digits), (b) arm a + synthetic rows through ``SyntheticMix``
  (``replace``; ``balance="inverse-frequency"`` on long-tailed data) with the ratio chosen on
  a validation split carved from the subset (20% of each class), (c) synthetic only (CAS, the
  same augmentation), (d) real without augmentation;
- for long-tailed data also the accuracy on the five rarest classes.

Writes ``benchmarks/results/downstream_<dataset>_<budget>.json`` after every cell (partial
results survive an interruption), with per-seed figures, mean ± std and ΔAcc = b - a. A run
adds to an existing file of the same protocol: seeds and families already measured are kept and
skipped, so a cell can be extended (more seeds, another family) or resumed; ``--remeasure``
measures the given families again (after one of their defaults changed); ``--fresh`` starts
over. Every row and cell records the git commit it was measured at. Saves take a file lock and
fold this run's rows into the file as it is on disk, so two parts of the same dataset and
budget (say, two families in two lanes) can run side by side.

    nice .venv/bin/python benchmarks/downstream.py --dataset fashion-mnist --per-class 50 \\
        --families cgan,aae --seeds 0,1,2
    nice .venv/bin/python benchmarks/downstream.py --dataset fashion-mnist --imbalance 100 --max-per-class 500
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from harness import git_commit

import augmentgen
from augmentgen.data import load_data
from augmentgen.data.subsets import long_tailed_subset
from augmentgen.metrics import evaluate_accuracy, per_class_accuracy, train_classifier, validation_split
from augmentgen.metrics.scores import sample_uint8_per_class
from augmentgen.mixing import SyntheticMix
from augmentgen.models import build_config
from augmentgen.training import Trainer, TrainingConfig

ROOT = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("AUGMENTGEN_DATA_DIR", ROOT.parents[1] / "shared" / "data"))


def mean_std(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def rarest_accuracy(per_class: list[float], counts: list[int], k: int = 5) -> float:
    rarest = sorted(range(len(counts)), key=lambda c: counts[c])[:k]
    return statistics.fmean(per_class[c] for c in rarest)


def fill_legacy_provenance(data: dict) -> dict:
    """Files written before per-row provenance hold one commit and one command for the whole
    file: copy them into every row and cell, so that merging keeps them."""
    for row in data["per_seed"]:
        row.setdefault("git_commit", data.get("git_commit"))
        for cell in row["families"].values():
            cell.setdefault("git_commit", data.get("git_commit"))
    data.setdefault("commands", [data["command"]] if data.get("command") else [])
    return data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist", choices=["mnist", "fashion-mnist", "cifar10"])
    p.add_argument("--per-class", type=int, help="real images per class (balanced budget)")
    p.add_argument("--all", action="store_true", help="the whole training set (CIFAR-10's shared 4000 images)")
    p.add_argument("--imbalance", type=float, help="long-tailed budget: majority / minority ratio")
    p.add_argument("--max-per-class", type=int, default=500, help="majority count of the long-tailed budget")
    p.add_argument("--families", default="cgan,aae")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--gen-steps", type=int, default=600)
    p.add_argument("--gen-batch-size", type=int, default=64)
    p.add_argument("--clf-steps", type=int, default=300)
    p.add_argument("--clf-batch-size", type=int, default=128)
    p.add_argument("--ratios", default="0.25,0.5", help="mixing ratios tried on the validation split")
    p.add_argument("--out", help="JSON path (default: benchmarks/results/downstream_<dataset>_<budget>.json)")
    p.add_argument("--fresh", action="store_true", help="overwrite the JSON instead of adding to it")
    p.add_argument("--remeasure", action="store_true",
                   help="measure --families again for --seeds even where the JSON has them (after a default changed)")
    args = p.parse_args()
    if sum((args.per_class is not None, args.imbalance is not None, args.all)) != 1:
        p.error("give exactly one of --per-class, --imbalance or --all")

    budget = "all" if args.all else f"{args.per_class}pc" if args.per_class else f"lt{args.imbalance:g}"
    out = Path(args.out or ROOT / "results" / f"downstream_{args.dataset}_{budget}.json")
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    ratios = [float(r) for r in args.ratios.split(",")]
    full = load_data(args.dataset, data_dir=DATA_DIR)
    test = load_data(args.dataset, data_dir=DATA_DIR, split="test")
    commit = git_commit()
    command = "python benchmarks/downstream.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if v is not None and v is not False and k not in ("out", "fresh", "remeasure", "all")
        and not (k == "max_per_class" and args.imbalance is None))  # only long-tailed runs use it
    command += "".join(f" --{flag}" for flag in ("all", "remeasure") if getattr(args, flag))
    protocol = {
        "benchmark": "downstream",
        "dataset": args.dataset, "budget": budget, "n_test": len(test),
        "classifier": "augmentgen.metrics.ReferenceClassifier (ResNet-8, width 16), AdamW lr 3e-3, cosine",
        "clf_steps": args.clf_steps, "clf_batch_size": args.clf_batch_size,
        "gen_steps": args.gen_steps, "gen_batch_size": args.gen_batch_size,
        "ratios_tried": ratios,
    }
    results = {**protocol, "seeds": [], "families": [], "commands": [], "per_seed": [], "summary": {}}
    if out.exists() and not args.fresh:
        previous = json.loads(out.read_text())
        changed = {k: (previous.get(k), v) for k, v in protocol.items() if previous.get(k) != v}
        if changed:
            p.error(f"{out} holds another protocol ({changed}); pass --fresh to overwrite or --out")
        fill_legacy_provenance(previous)
        results.update({k: previous[k] for k in ("seeds", "families", "per_seed", "commands")})
    results["seeds"] = sorted(set(results["seeds"]) | set(seeds))
    results["families"] = list(dict.fromkeys(results["families"] + families))
    results["commands"].append(command)
    results.update({
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}",
        "torch": torch.__version__, "augmentgen": augmentgen.__version__,
    })
    rows_by_seed = {row["seed"]: row for row in results["per_seed"]}  # the rows this run writes into
    measured: list[tuple[int, str | None]] = []  # (seed, None) for real arms, (seed, family) for a cell
    merge_disk = not args.fresh
    common = dict(steps=args.clf_steps, batch_size=args.clf_batch_size, num_classes=full.num_classes)
    long_tailed = args.imbalance is not None

    def merge_from_disk() -> None:
        """Fold what this run measured into the file as it is now: another run of the same
        dataset and budget (another lane, other seeds or families) may have written to it."""
        disk = fill_legacy_provenance(json.loads(out.read_text()))
        disk_rows = {row["seed"]: row for row in disk["per_seed"]}
        for seed, family in measured:
            mine = rows_by_seed[seed]
            if seed not in disk_rows:
                disk_rows[seed] = {**mine, "families": {}}
            if family is not None:
                disk_rows[seed]["families"][family] = mine["families"][family]
        results["per_seed"] = sorted(disk_rows.values(), key=lambda r: r["seed"])
        results["seeds"] = sorted(set(disk["seeds"]) | set(results["seeds"]))
        results["families"] = list(dict.fromkeys(disk["families"] + results["families"]))
        results["commands"] = list(dict.fromkeys(disk.get("commands", []) + results["commands"]))

    def save() -> None:
        nonlocal merge_disk
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out.with_suffix(".json.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if merge_disk and out.exists():
                merge_from_disk()
            merge_disk = True
            write_summary_and_file()

    def write_summary_and_file() -> None:
        summary = {}
        rows = results["per_seed"]
        for arm in ("real_noaug", "real_classic"):
            summary[arm] = mean_std([r[arm] for r in rows])
        for family in results["families"]:
            cells = [r["families"][family] for r in rows if family in r["families"]]
            summary[family] = {key: mean_std([c[key] for c in cells])
                               for key in ("acc_mixed", "delta", "cas", "gen_train_seconds")}
            if long_tailed:
                summary[family]["rarest5_mixed"] = mean_std([c["rarest5_mixed"] for c in cells])
        if long_tailed:
            summary["rarest5_real_classic"] = mean_std([r["rarest5_real_classic"] for r in rows])
        results["summary"] = summary
        partial = out.with_suffix(".json.partial")
        partial.write_text(json.dumps(results, indent=2) + "\n")
        partial.replace(out)  # a kill mid-write leaves the previous file whole

    for seed in seeds:
        if long_tailed:
            subset = long_tailed_subset(full, args.imbalance, max_per_class=args.max_per_class, seed=seed)
        elif args.all:
            subset = full  # the seed still varies the validation split and every training
        else:
            subset = load_data(full, per_class=args.per_class, seed=seed)
        counts = subset.class_counts
        row = rows_by_seed.get(seed)
        if row is None:
            t0 = time.perf_counter()
            real = train_classifier(subset, seed=seed, augment="classic", **common)
            plain = train_classifier(subset, seed=seed, augment="none", **common)
            row = {
                "seed": seed, "class_counts": counts, "git_commit": commit,
                "real_classic": evaluate_accuracy(real, test), "real_noaug": evaluate_accuracy(plain, test),
                "real_classic_per_class": per_class_accuracy(real, test),
                "real_arms_seconds": round(time.perf_counter() - t0, 1), "families": {},
            }
            if long_tailed:
                row["rarest5_real_classic"] = rarest_accuracy(row["real_classic_per_class"], counts)
            results["per_seed"].append(row)
            results["per_seed"].sort(key=lambda r: r["seed"])
            rows_by_seed[seed] = row
            measured.append((seed, None))
            save()
        elif row["class_counts"] != counts:
            raise SystemExit(f"seed {seed}: the stored subset has counts {row['class_counts']}, "
                             f"this run drew {counts}; the data or the subset draw changed, pass --fresh")
        print(f"seed {seed}: real+classic {row['real_classic']:.4f}, real {row['real_noaug']:.4f}", flush=True)
        todo = [f for f in families if args.remeasure or f not in row["families"]]
        if not todo:
            continue
        fit, val = validation_split(subset, 0.2, seed=seed)

        for family in todo:
            config = build_config(family, num_classes=subset.num_classes, class_names=subset.class_names,
                                  image_size=subset.image_shape[1], in_channels=subset.image_shape[0])
            training = TrainingConfig(steps=args.gen_steps, batch_size=args.gen_batch_size, seed=seed,
                                      checkpoint_every=0, sample_every=0, log_every=max(1, args.gen_steps // 10))
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                generator = Trainer(config, training, tmp).fit(subset).eval()
            gen_seconds = time.perf_counter() - t0
            balance = "inverse-frequency" if long_tailed else None

            def mix(ratio: float, generator=generator, balance=balance, seed=seed) -> SyntheticMix:
                return SyntheticMix(generator, ratio, mode="replace", balance=balance, seed=seed)

            selection = {r: evaluate_accuracy(train_classifier(fit, seed=seed, synthetic_mix=mix(r), **common), val)
                         for r in ratios}
            ratio = max(sorted(selection), key=lambda r: selection[r])  # ties: less synthetic data
            mixed = train_classifier(subset, seed=seed, synthetic_mix=mix(ratio), **common)
            # CAS: as many synthetic images per class as the largest real class, same budget.
            synthetic = sample_uint8_per_class(generator, max(counts), seed=seed)
            cas_model = train_classifier(synthetic, seed=seed, **common)
            cell = {
                "ratio": ratio, "ratio_selection": selection,
                "acc_mixed": evaluate_accuracy(mixed, test),
                "cas": evaluate_accuracy(cas_model, test),
                "mixed_per_class": per_class_accuracy(mixed, test),
                "gen_train_seconds": round(gen_seconds, 1), "git_commit": commit,
                "cell_seconds": round(time.perf_counter() - t0, 1),
            }
            cell["delta"] = cell["acc_mixed"] - row["real_classic"]
            if long_tailed:
                cell["rarest5_mixed"] = rarest_accuracy(cell["mixed_per_class"], counts)
            row["families"][family] = cell
            measured.append((seed, family))
            print(f"seed {seed} {family}: mixed {cell['acc_mixed']:.4f} (ratio {ratio}), "
                  f"ΔAcc {cell['delta']:+.4f}, CAS {cell['cas']:.4f}, {cell['cell_seconds']} s", flush=True)
            save()
        save()
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
