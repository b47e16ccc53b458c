"""Does synthetic data help? The downstream protocol (v2) of augmentgen, one cell per run.

A cell is a dataset and a budget of real images (``protocol.CELLS``). For every seed (it draws
the real subset and seeds the generator and every classifier, so the arms of a seed are paired):

- the generator of each family is trained on the subset only, once, and serves arms b and c;
- arms, all the same classifier (``augmentgen.metrics.ReferenceClassifier``), budgeted in epochs
  of their own real training data (``convergence.py`` chooses the budget on held-out training
  images), batch 128 real rows:
  (a) real + classic augmentation;
  (b) arm a + ``round(ratio * 128)`` synthetic rows *appended* to every batch (``SyntheticMix``,
      ``mode="append"``; ``balance="inverse-frequency"`` on long-tailed data), so that it sees
      the same real rows as arm a, in the same order, augmented the same way: equal real
      exposure. The ratio is chosen on a validation split carved from the subset (20% a class);
  (c) synthetic only (CAS), as many images per class as the largest real class;
  (d) real without augmentation;
  (e) the oracle: arm a on twice the real data (the subset plus as many other real images per
      class), the gain a perfect generator could at most be expected to match;
- ``--families cgan+filter,cgan+soft`` adds arm b with teacher filtering or teacher soft labels
  (``augmentgen.metrics.scores.MIXING_METHODS``; the teacher is arm a's classifier, or arm a
  trained on the selection split while the ratio is chosen); a soft-label cell also trains the
  control, arm a with the same teacher targets on its real rows, and reports b − control;
- on the full test set: ΔAcc = b − a and the oracle gain e − a, summarised over seeds as the mean
  of the paired differences with a 95% t interval and the number of positive seeds, and the
  oracle share = mean ΔAcc / mean oracle gain. Within-class diversity and novelty of each
  generator's samples (``augmentgen.metrics.coverage_report``) are recorded beside them.

Writes ``benchmarks/results/downstream_v2_<dataset>_<budget>.json`` after every cell. A run adds
to an existing file of the same protocol (seeds and families there are kept and skipped);
``--remeasure`` measures the given families again, ``--fresh`` starts over. Saves take a file
lock and merge into the file on disk, so two lanes (say, two sets of seeds) can fill one cell.

    OMP_NUM_THREADS=1 python benchmarks/downstream.py --dataset fashion-mnist --budget 50pc --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import fcntl
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from harness import RESULTS, git_commit, machine
from protocol import CELLS, Cell, draw_cell, load_split

import augmentgen
from augmentgen.metrics import (
    classifier_steps,
    coverage_report,
    evaluate_accuracy,
    oracle_share,
    paired_difference,
    per_class_accuracy,
    train_classifier,
    validation_split,
)
from augmentgen.metrics.scores import MIXING_METHODS, sample_uint8_per_class
from augmentgen.mixing import SyntheticMix, TeacherLabels
from augmentgen.models import build_config
from augmentgen.training import Trainer, TrainingConfig

PROTOCOL_VERSION = 2


# --------------------------------------------------------------------------- summaries
def mean_std(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def rarest_accuracy(per_class: list[float], counts: list[int], k: int = 5) -> float:
    rarest = sorted(range(len(counts)), key=lambda c: counts[c])[:k]
    return statistics.fmean(per_class[c] for c in rarest)


def summarise(results: dict) -> dict:
    """Paired statistics over the seeds that have each arm (a seed missing a family is left out
    of that family's figures, never filled in)."""
    rows = results["per_seed"]
    summary = {arm: mean_std([r[arm] for r in rows]) for arm in ("real_classic", "real_noaug", "oracle_classic")}
    with_oracle = [r for r in rows if r["oracle_classic"] is not None]
    summary["oracle_gain"] = (paired_difference([r["oracle_classic"] for r in with_oracle],
                                                [r["real_classic"] for r in with_oracle])
                              if with_oracle else None)
    if results["long_tailed"]:
        summary["rarest5_real_classic"] = mean_std([r["rarest5_real_classic"] for r in rows])
    for family in results["families"]:
        paired = [(r, r["families"][family]) for r in rows if family in r["families"]]
        if not paired:
            continue
        delta = paired_difference([c["acc_mixed"] for _, c in paired], [r["real_classic"] for r, _ in paired])
        entry = {
            "delta": delta,
            "acc_mixed": mean_std([c["acc_mixed"] for _, c in paired]),
            "cas": mean_std([c.get("cas") for _, c in paired]),
            "gen_train_seconds": mean_std([c["gen_train_seconds"] for _, c in paired]),
            "ratios_chosen": [c["ratio"] for _, c in paired],
        }
        controls = [(r, c) for r, c in paired if c.get("acc_teacher_control") is not None]
        if controls:  # soft labels: credit only what the synthetic rows add to the same teacher
            entry["delta_vs_control"] = paired_difference([c["acc_mixed"] for _, c in controls],
                                                          [c["acc_teacher_control"] for _, c in controls])
            entry["teacher_control_gain"] = paired_difference([c["acc_teacher_control"] for _, c in controls],
                                                              [r["real_classic"] for r, _ in controls])
        oracle_rows = [(r, c) for r, c in paired if r["oracle_classic"] is not None]
        if oracle_rows:
            gain = statistics.fmean(r["oracle_classic"] - r["real_classic"] for r, _ in oracle_rows)
            entry["oracle_share"] = oracle_share(
                statistics.fmean(c["acc_mixed"] - r["real_classic"] for r, c in oracle_rows), gain)
        for key in ("diversity_pixels", "diversity_features", "novelty_pixels", "novelty_features"):
            entry[key] = mean_std([c["coverage"][key]["median"] for _, c in paired if c.get("coverage")])
        if results["long_tailed"]:
            entry["rarest5_delta"] = paired_difference([c["rarest5_mixed"] for _, c in paired],
                                                       [r["rarest5_real_classic"] for r, _ in paired])
        summary[family] = entry
    return summary


# --------------------------------------------------------------------------- arms
class Arms:
    """Trains and scores the arms of one seed with the cell's shared classifier settings."""

    def __init__(self, cell: Cell, test, seed: int, args):
        self.cell, self.test, self.seed = cell, test, seed
        self.common = dict(epochs=args.epochs, min_steps=args.min_steps, batch_size=args.clf_batch_size,
                           width=args.clf_width, num_classes=cell.subset.num_classes)
        self.batch_size, self.ratios, self.gen_steps = args.clf_batch_size, args.ratios, args.gen_steps
        self._generators: dict = {}
        self._fit_teacher = None

    def steps(self, data) -> int:
        return classifier_steps(len(data), self.batch_size, epochs=self.common["epochs"],
                                min_steps=self.common["min_steps"])

    def train(self, data, **kw):
        return train_classifier(data, seed=self.seed, **self.common, **kw)

    def real_row(self) -> tuple[dict, torch.nn.Module]:
        t0 = time.perf_counter()
        subset, counts = self.cell.subset, self.cell.subset.class_counts
        real = self.train(subset, augment="classic")
        plain = self.train(subset, augment="none")
        oracle = self.train(self.cell.oracle, augment="classic") if self.cell.oracle is not None else None
        row = {
            "seed": self.seed, "class_counts": counts,
            "real_classic": evaluate_accuracy(real, self.test),
            "real_noaug": evaluate_accuracy(plain, self.test),
            "oracle_classic": evaluate_accuracy(oracle, self.test) if oracle is not None else None,
            "real_classic_per_class": per_class_accuracy(real, self.test),
            "oracle_per_class": per_class_accuracy(oracle, self.test) if oracle is not None else None,
            "n_real": len(subset), "n_oracle": len(self.cell.oracle) if oracle is not None else None,
            "steps_real": self.steps(subset),
            "steps_oracle": self.steps(self.cell.oracle) if oracle is not None else None,
            # Arms a, b and d each see steps_real * batch real rows; the oracle twice as many.
            "real_rows_seen": self.steps(subset) * min(self.batch_size, len(subset)),
            "real_arms_seconds": round(time.perf_counter() - t0, 1),
        }
        if self.cell.long_tailed:
            row["rarest5_real_classic"] = rarest_accuracy(row["real_classic_per_class"], counts)
        return row, real

    def train_generator(self, family: str):
        subset = self.cell.subset
        config = build_config(family, num_classes=subset.num_classes, class_names=subset.class_names,
                              image_size=subset.image_shape[1], in_channels=subset.image_shape[0])
        training = TrainingConfig(steps=self.gen_steps, batch_size=64, seed=self.seed, checkpoint_every=0,
                                  sample_every=0, log_every=max(1, self.gen_steps // 10))
        with tempfile.TemporaryDirectory() as tmp:
            return Trainer(config, training, tmp).fit(subset).eval()

    def generator_for(self, family: str):
        """The seed's generator of ``family``, trained once however many methods use it."""
        if family not in self._generators:
            t0 = time.perf_counter()
            self._generators[family] = (self.train_generator(family), round(time.perf_counter() - t0, 1))
        return self._generators[family]

    def fit_teacher(self, fit):
        """The classic arm on the selection split: the teacher of the candidates tried on it."""
        if self._fit_teacher is None:
            self._fit_teacher = self.train(fit, augment="classic")
        return self._fit_teacher

    def family_cell(self, spec: str, real_model, row: dict) -> dict:
        """One family (``cgan``) or one family with a mixing method (``cgan+soft``, see
        ``augmentgen.metrics.scores.MIXING_METHODS``); CAS and coverage belong to the plain cell."""
        t0 = time.perf_counter()
        family, _, method = spec.partition("+")
        method = method or "plain"
        options = MIXING_METHODS[method]
        generator, gen_seconds = self.generator_for(family)
        balance = "inverse-frequency" if self.cell.long_tailed else None

        def mix(ratio: float, teacher) -> SyntheticMix:
            extra = {**options, "teacher": teacher} if options else {}
            return SyntheticMix(generator, ratio, mode="append", balance=balance, seed=self.seed, **extra)

        fit, val = validation_split(self.cell.subset, 0.2, seed=self.seed)
        teacher = self.fit_teacher(fit) if options else None
        selection = {r: evaluate_accuracy(self.train(fit, synthetic_mix=mix(r, teacher)), val) for r in self.ratios}
        ratio = max(sorted(selection), key=lambda r: selection[r])  # ties: less synthetic data
        mixed = self.train(self.cell.subset, synthetic_mix=mix(ratio, real_model))
        cell = {
            "method": method, "ratio": ratio, "ratio_selection": selection,
            "acc_mixed": evaluate_accuracy(mixed, self.test),
            "mixed_per_class": per_class_accuracy(mixed, self.test),
            "gen_train_seconds": gen_seconds,
        }
        if method == "plain":
            counts = self.cell.subset.class_counts
            cas_model = self.train(sample_uint8_per_class(generator, max(counts), seed=self.seed))
            cell["cas"] = evaluate_accuracy(cas_model, self.test)
            cell["coverage"] = (coverage_report(generator, real_model, self.cell.subset, self.cell.heldout,
                                                seed=self.seed) if self.cell.heldout is not None else None)
        if options.get("soft_labels"):  # the control: the same teacher's targets on the real rows only
            control = TeacherLabels(real_model, options["label_temperature"], options["soft_label_weight"],
                                    self.cell.subset.num_classes)
            cell["acc_teacher_control"] = evaluate_accuracy(self.train(self.cell.subset, synthetic_mix=control),
                                                            self.test)
        cell["delta"] = cell["acc_mixed"] - row["real_classic"]
        if self.cell.long_tailed:
            cell["rarest5_mixed"] = rarest_accuracy(cell["mixed_per_class"], self.cell.subset.class_counts)
        cell["cell_seconds"] = round(time.perf_counter() - t0, 1)
        return cell


# --------------------------------------------------------------------------- the results file
class ResultsFile:
    """The cell's JSON: protocol check, merge with what other lanes wrote, atomic locked saves."""

    def __init__(self, path: Path, protocol: dict, fresh: bool):
        self.path, self.merge_disk = path, not fresh
        self.results = {**protocol, "seeds": [], "families": [], "commands": [], "per_seed": [], "summary": {}}
        if path.exists() and not fresh:
            previous = json.loads(path.read_text())
            changed = {k: (previous.get(k), v) for k, v in protocol.items() if previous.get(k) != v}
            if changed:
                raise SystemExit(f"{path} holds another protocol ({changed}); pass --fresh or --out")
            self.results.update({k: previous[k] for k in ("seeds", "families", "per_seed", "commands")})
        self.rows = {row["seed"]: row for row in self.results["per_seed"]}
        self.measured: list[tuple[int, str | None]] = []  # (seed, None): real arms; (seed, family)

    def add_run(self, seeds: list[int], families: list[str], command: str) -> None:
        r = self.results
        r["seeds"] = sorted(set(r["seeds"]) | set(seeds))
        r["families"] = list(dict.fromkeys(r["families"] + families))
        r["commands"].append(command)

    def put_row(self, row: dict) -> None:
        self.rows[row["seed"]] = {**row, "families": {}}
        self.measured.append((row["seed"], None))
        self.save()

    def put_cell(self, seed: int, family: str, cell: dict) -> None:
        self.rows[seed]["families"][family] = cell
        self.measured.append((seed, family))
        self.save()

    def _merge_from_disk(self) -> None:
        disk = json.loads(self.path.read_text())
        disk_rows = {row["seed"]: row for row in disk["per_seed"]}
        for seed, family in self.measured:
            mine = self.rows[seed]
            if family is None:
                disk_rows[seed] = {**mine, "families": {**disk_rows.get(seed, {}).get("families", {}),
                                                        **mine["families"]}}
            else:
                disk_rows.setdefault(seed, {**mine, "families": {}})["families"][family] = mine["families"][family]
        self.rows = disk_rows
        r = self.results
        r["seeds"] = sorted(set(disk["seeds"]) | set(r["seeds"]))
        r["families"] = list(dict.fromkeys(disk["families"] + r["families"]))
        r["commands"] = list(dict.fromkeys(disk.get("commands", []) + r["commands"]))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".json.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.merge_disk and self.path.exists():
                self._merge_from_disk()
            self.merge_disk, self.measured = True, []
            self.results["per_seed"] = sorted(self.rows.values(), key=lambda r: r["seed"])
            self.results["summary"] = summarise(self.results)
            partial = self.path.with_suffix(".json.partial")
            partial.write_text(json.dumps(self.results, indent=2) + "\n")
            partial.replace(self.path)  # a kill mid-write leaves the previous file whole


# --------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(CELLS))
    p.add_argument("--budget", default="50pc", help="10pc, 50pc, 200pc (CIFAR-10) or lt100")
    p.add_argument("--families", default="cgan,aae",
                   help="families, each optionally with a mixing method: cgan,aae,cgan+filter,cgan+soft")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--epochs", type=float,
                   help="classifier budget in epochs of the real data (default: the cell's convergence file)")
    p.add_argument("--min-steps", type=int, default=100)
    p.add_argument("--clf-width", type=int, default=16, help="ResNet-8 width (64: the stronger classifier)")
    p.add_argument("--clf-batch-size", type=int, default=128)
    p.add_argument("--gen-steps", type=int, default=600)
    p.add_argument("--ratios", default="0.25,0.5,1.0", help="append ratios tried on the validation split")
    p.add_argument("--out", help="JSON path (default: results/downstream_v2_<dataset>_<budget>[_w<width>].json)")
    p.add_argument("--fresh", action="store_true", help="overwrite the JSON instead of adding to it")
    p.add_argument("--remeasure", action="store_true", help="measure --families again for --seeds")
    args = p.parse_args()
    if args.budget not in CELLS[args.dataset]:
        p.error(f"{args.dataset} has the budgets {CELLS[args.dataset]}, not {args.budget!r}")
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    bad = [f for f in args.families if f.partition("+")[2] and f.partition("+")[2] not in MIXING_METHODS]
    if bad:
        p.error(f"unknown mixing method in {bad}; methods: {sorted(MIXING_METHODS)}")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.ratios = [float(r) for r in args.ratios.split(",")]
    if args.epochs is None:
        convergence = RESULTS / f"convergence_{args.dataset}_{args.budget}.json"
        if not convergence.exists():
            p.error(f"no --epochs and no {convergence.name}: run benchmarks/convergence.py --dataset "
                    f"{args.dataset} --budget {args.budget} first, or pass --epochs")
        args.epochs = float(json.loads(convergence.read_text())["chosen_epochs"])
    return args


def main() -> None:
    args = parse_args()
    suffix = "" if args.clf_width == 16 else f"_w{args.clf_width}"
    out = Path(args.out or RESULTS / f"downstream_v2_{args.dataset}_{args.budget}{suffix}.json")
    protocol = {
        "benchmark": "downstream", "protocol_version": PROTOCOL_VERSION,
        "dataset": args.dataset, "budget": args.budget, "long_tailed": args.budget.startswith("lt"),
        "classifier": f"augmentgen.metrics.ReferenceClassifier (ResNet-8, width {args.clf_width}), "
                      "AdamW lr 3e-3, one-cycle, label smoothing 0.1",
        "clf_epochs": args.epochs, "clf_min_steps": args.min_steps, "clf_width": args.clf_width,
        "clf_batch_size": args.clf_batch_size, "gen_steps": args.gen_steps, "gen_batch_size": 64,
        "mixing": "SyntheticMix(mode='append'), equal real exposure", "ratios_tried": args.ratios,
    }
    file = ResultsFile(out, protocol, args.fresh)
    command = ("python benchmarks/downstream.py " + " ".join(
        f"--{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items() if v not in (None, False) and k not in ("out", "fresh", "remeasure"))
        + (" --remeasure" if args.remeasure else ""))
    file.add_run(args.seeds, args.families, command)
    file.results.update({"machine": machine(), "torch": torch.__version__, "augmentgen": augmentgen.__version__})
    commit = git_commit()
    full, test = load_split(args.dataset), load_split(args.dataset, "test")
    file.results["n_test"] = len(test)

    for seed in args.seeds:
        cell = draw_cell(full, args.dataset, args.budget, seed)
        arms = Arms(cell, test, seed, args)
        row = file.rows.get(seed)
        todo = [f for f in args.families if args.remeasure or row is None or f not in row["families"]]
        if row is not None and row["class_counts"] != cell.subset.class_counts:
            raise SystemExit(f"seed {seed}: the file's subset has counts {row['class_counts']}, this run drew "
                             f"{cell.subset.class_counts}; the data or the draw changed, pass --fresh")
        if row is None:
            fresh_row, real_model = arms.real_row()
            file.put_row({**fresh_row, "git_commit": commit})
            row = file.rows[seed]
        elif todo:
            # The classic arm is the feature extractor of the coverage figures: train it again
            # (same seed and data, so the same weights) rather than store it.
            real_model = arms.train(cell.subset, augment="classic")
        print(f"seed {seed}: classic {row['real_classic']:.4f}, no aug {row['real_noaug']:.4f}, "
              f"oracle {row['oracle_classic']}", flush=True)
        for family in todo:
            result = arms.family_cell(family, real_model, row)
            file.put_cell(seed, family, {**result, "git_commit": commit})
            extra = "".join(f", {name} {result[key]:.4f}" for key, name in
                            (("cas", "CAS"), ("acc_teacher_control", "teacher control")) if key in result)
            print(f"seed {seed} {family}: mixed {result['acc_mixed']:.4f} (ratio {result['ratio']}), "
                  f"ΔAcc {result['delta']:+.4f}{extra}, {result['cell_seconds']} s", flush=True)
    print(json.dumps(file.results["summary"], indent=2))


if __name__ == "__main__":
    main()
