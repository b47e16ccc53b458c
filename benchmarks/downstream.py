"""Does synthetic data help, against what a user would do anyway? The downstream protocol (v3).

A cell is a dataset and a budget of real images (``protocol.CELLS``). For every seed (it draws
the real subset and seeds every generator and classifier, so the arms of a seed are paired),
the same classifier (``augmentgen.metrics.ReferenceClassifier``), budgeted in epochs of its own
real training data (``convergence.py`` chooses the budget on held-out training images), batches
of 128 real rows:

1. **Baselines, no generator.** (a) real + classic augmentation; (f) arm a + torchvision v2
   ``MixUp``/``CutMix`` (a random choice per batch, torchvision's default α = 1); on long-tailed
   cells also (g) class-balanced resampling and (h) the logit-adjusted loss (Menon et al. 2021,
   τ = 1); (e) the oracle: arm a on twice the real images. The **best baseline** B is chosen on a
   validation split carved from the subset (20% of each class; mean per-class accuracy on
   long-tailed cells), never on the test set. Where one split leaves too few images to choose on
   (10 per class leave 2), the choice averages stratified folds that score every image once
   (``protocol.SELECTION_FOLDS``, recorded as ``selection_folds``).
2. **Controls on top of B**, ``round(ratio x 128)`` rows *appended* to every batch (equal real
   exposure: the same real rows in the same order, augmented the same way): (r) copies of real
   rows of the batch, re-augmented (more rows per step, no generator); (p) same-class pixel
   MixUp of two real rows at the weights ``interpolate`` uses (whenever a variation source runs).
3. **Synthetic arms on top of B**, the same number of appended rows: ``<family>:free`` (the
   generator's samples of the batch's classes) or ``<family>:variation`` (``VariationSource``:
   rows made from the batch's real rows; the mode, ``vary`` / ``interpolate`` / ``extrapolate``,
   chosen on the validation split, or for a generator without a code to mix (``ddpm``) the
   ``vary`` strength). Each generator trains on the subset only (``--gen-steps``, 600 by default,
   recorded in the arm). A suffix ``@bank`` (``ddpm:variation@bank``) draws the rows from a bank
   made once (``SyntheticPool``; ``SyntheticPool.from_variations`` of the arm's own training
   images, ``--bank-per-image`` rows per image of the largest class) instead of at every step:
   what makes a slow generator affordable, and a different method, so a different arm.
4. **Paired statistics** over seeds: ΔAcc of each synthetic arm against B, against (r) and
   against (a), the oracle gain e − a, as means of per-seed differences with a 95% t interval
   and the number of positive seeds; oracle share = ΔAcc vs B / oracle gain. Long-tailed cells
   add per-class accuracy and the mean of the five rarest classes for every arm.

Writes ``benchmarks/results/downstream_v3_<dataset>_<budget>.json`` after every arm. A run adds
to an existing file of the same protocol (seeds and arms there are kept and skipped), so a cell
can be extended, resumed after a kill, or filled by two lanes at once (saves take a file lock
and merge). The v2 files (``downstream_v2_*``, arms a-e only, made by this script at commit
46e1800) are kept as they are and never averaged with v3 figures.

    OMP_NUM_THREADS=1 python benchmarks/downstream.py --dataset fashion-mnist --budget 50pc \
        --sources aae:variation,cgan:free --seeds 0,1,2
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
from protocol import CELLS, SELECTION_FOLDS, Cell, draw_cell, load_split

import augmentgen
from augmentgen.metrics import (
    baselines,
    classifier_steps,
    diversity_ratio,
    evaluate_accuracy,
    novelty_ratio,
    oracle_share,
    paired_difference,
    per_class_accuracy,
    predict,
    train_classifier,
    validation_folds,
    validation_split,
)
from augmentgen.mixing import PixelMixSource, RealRowSource, SyntheticMix, SyntheticPool, VariationSource
from augmentgen.models import build_config
from augmentgen.models.encoder import EncoderGenerator
from augmentgen.training import Trainer, TrainingConfig

PROTOCOL_VERSION = 3
VARIATION_MODES = ("vary", "interpolate", "extrapolate")
#: ``vary`` strengths tried on validation for a generator with ``vary`` but no code to mix (``ddpm``).
VARY_STRENGTHS = (0.3, 0.5, 0.7)
#: Generator settings an arm records itself (two runs may differ there, never within one arm).
ARM_SETTINGS = ("gen_steps", "bank_per_image")
#: Protocol fields added after files were written, and the value those older files used.
PROTOCOL_DEFAULTS = {"selection_folds": 1}
BASELINE_NAMES = {"a": "classic", "f": "classic + MixUp/CutMix", "g": "classic + class-balanced resampling",
                  "h": "classic + logit-adjusted loss (tau 1)"}


def baseline_options(name: str, num_classes: int) -> dict:
    """``train_classifier`` options of a non-generative arm, by its letter (the library's baselines)."""
    return baselines.baseline_options(baselines.BENCHMARK_LETTERS[name], num_classes)


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


def _paired(rows: list[dict], treated, control) -> dict | None:
    """Paired difference over the rows that have both arms (missing arms are left out, never filled)."""
    pairs = [(treated(r), control(r)) for r in rows]
    pairs = [(t, c) for t, c in pairs if t is not None and c is not None]
    if not pairs:
        return None
    return paired_difference([t for t, _ in pairs], [c for _, c in pairs])


def summarise(results: dict) -> dict:
    """Per-arm means and the paired differences the README's matrix reads."""
    rows, lt = results["per_seed"], results["long_tailed"]
    acc = lambda key: (lambda r: r["arms"].get(key, {}).get("acc"))  # noqa: E731
    rare = lambda key: (lambda r: r["arms"].get(key, {}).get("rarest5"))  # noqa: E731
    best = lambda r: r["arms"].get(r.get("best_baseline"), {}).get("acc")  # noqa: E731
    arms = sorted({key for r in rows for key in r["arms"]})
    summary = {"arms": {key: mean_std([acc(key)(r) for r in rows]) for key in arms},
               "best_baseline_chosen": [r.get("best_baseline") for r in rows],
               "best_baseline": mean_std([best(r) for r in rows]),
               "oracle_gain": _paired(rows, acc("e"), acc("a"))}
    gain = (summary["oracle_gain"] or {}).get("mean")
    for key in arms:
        if key in ("a", "e"):
            continue
        entry = {"vs_best_baseline": _paired(rows, acc(key), best), "vs_a": _paired(rows, acc(key), acc("a"))}
        if ":" in key or key == "p":
            entry["vs_r"] = _paired(rows, acc(key), acc("r"))
        if ":variation" in key:
            entry["vs_p"] = _paired(rows, acc(key), acc("p"))
            entry["modes_chosen"] = [r["arms"][key]["mode"] for r in rows if key in r["arms"]]
        if ":" in key:
            covered = [r["arms"][key]["coverage"] for r in rows if (r["arms"].get(key) or {}).get("coverage")]
            entry["coverage"] = {name: mean_std([c[name] for c in covered])
                                 for name in ("diversity_pixels", "novelty_pixels")} if covered else None
        delta = (entry["vs_best_baseline"] or {}).get("mean")
        entry["oracle_share"] = oracle_share(delta, gain) if delta is not None and gain else None
        if lt:
            entry["rarest5_vs_best_baseline"] = _paired(
                rows, rare(key), lambda r: r["arms"].get(r.get("best_baseline"), {}).get("rarest5"))
        summary[key] = entry
    return summary


# --------------------------------------------------------------------------- arms
class Arms:
    """Trains and scores the arms of one seed with the cell's shared classifier settings."""

    def __init__(self, cell: Cell, test, seed: int, args):
        self.cell, self.test, self.seed = cell, test, seed
        self.k = cell.subset.num_classes
        self.common = dict(epochs=args.epochs, min_steps=args.min_steps, batch_size=args.clf_batch_size,
                           width=args.clf_width, num_classes=self.k)
        self.batch_size, self.ratio, self.gen_steps = args.clf_batch_size, args.ratio, args.gen_steps
        self.bank_per_image = args.bank_per_image
        # (fit, val) pairs a choice is scored on: one 20% split, or stratified folds on tiny cells.
        self.splits = (validation_folds(cell.subset, args.selection_folds, seed=seed) if args.selection_folds > 1
                       else [validation_split(cell.subset, 0.2, seed=seed)])
        self.baselines = ["a", "f", "g", "h"] if cell.long_tailed else ["a", "f"]

    def train(self, data, **kw):
        return train_classifier(data, seed=self.seed, augment="classic", **self.common, **kw)

    def score_val(self, model, val) -> float:
        """Validation score: accuracy, or mean per-class accuracy on long-tailed cells (whose
        validation split is as imbalanced as the subset)."""
        if self.cell.long_tailed:
            return statistics.fmean(per_class_accuracy(model, val, num_classes=self.k))
        return evaluate_accuracy(model, val)

    def validate(self, options) -> float:
        """The mean validation score over the splits of a choice: ``options(fit)`` are the
        ``train_classifier`` options of the candidate trained on ``fit``."""
        return statistics.fmean(self.score_val(self.train(fit, **options(fit)), val) for fit, val in self.splits)

    def test_arm(self, model, t0: float, **extra) -> dict:
        """Test accuracy (the test set's one use), per class, and the rare-five mean."""
        correct = (predict(model, self.test.images).cpu() == self.test.labels).double()  # one pass
        hits = torch.zeros(self.k, dtype=torch.float64).index_add_(0, self.test.labels, correct)
        per_class = (hits / torch.bincount(self.test.labels, minlength=self.k).double()).tolist()
        arm = {"acc": float(correct.mean()), "per_class": per_class, **extra,
               "seconds": round(time.perf_counter() - t0, 1)}
        if self.cell.long_tailed:
            arm["rarest5"] = rarest_accuracy(per_class, self.cell.subset.class_counts)
        return arm

    def choose_baseline(self) -> tuple[str, dict]:
        """The best non-generative arm on the validation split, and every candidate's score."""
        scores = {b: self.validate(lambda fit, b=b: baseline_options(b, self.k)) for b in self.baselines}
        return max(self.baselines, key=lambda b: scores[b]), scores  # ties: the earlier (simpler) arm

    def baseline_arm(self, name: str) -> dict:
        t0 = time.perf_counter()
        data = self.cell.oracle if name == "e" else self.cell.subset
        model = self.train(data, **baseline_options("a" if name == "e" else name, self.k))
        return self.test_arm(model, t0, steps=self.steps(data))

    def steps(self, data) -> int:
        return classifier_steps(len(data), self.batch_size, epochs=self.common["epochs"],
                                min_steps=self.common["min_steps"])

    def mixer(self, source, seed_offset: int = 0) -> SyntheticMix:
        balance = "inverse-frequency" if self.cell.long_tailed else None
        return SyntheticMix(source, self.ratio, mode="append", balance=balance, seed=self.seed + seed_offset)

    def appended_arm(self, best: str, source) -> dict:
        """Arm B + ``source``'s rows appended, on the whole subset, scored on the test set."""
        t0 = time.perf_counter()
        model = self.train(self.cell.subset, synthetic_mix=self.mixer(source), **baseline_options(best, self.k))
        return self.test_arm(model, t0)

    def control(self, key: str, best: str) -> dict:
        shape, names = self.cell.subset.image_shape, self.cell.subset.class_names
        source = (RealRowSource(self.k, shape, class_names=names) if key == "r"
                  else PixelMixSource(self.k, shape, class_names=names))
        return self.appended_arm(best, source)

    def train_generator(self, family: str):
        subset = self.cell.subset
        config = build_config(family, num_classes=subset.num_classes, class_names=subset.class_names,
                              image_size=subset.image_shape[1], in_channels=subset.image_shape[0])
        training = TrainingConfig(steps=self.gen_steps, batch_size=64, seed=self.seed, checkpoint_every=0,
                                  sample_every=0, log_every=max(1, self.gen_steps // 10))
        with tempfile.TemporaryDirectory() as tmp:
            return Trainer(config, training, tmp).fit(subset).eval()

    def rows_from(self, generator, kind: str, candidate: dict | None, data, bank: bool):
        """What an arm draws from: the generator (free) or a variation source, made per step, or,
        with ``bank``, a bank built once from ``data`` (the arm's own training images, so a
        validation run never sees rows made from the validation images)."""
        if kind == "free":
            if not bank:
                return generator
            per_class = self.bank_per_image * max(data.class_counts)
            return SyntheticPool(generator, per_class=per_class, seed=self.seed, batch_size=256)
        source = VariationSource(generator, **candidate)
        if not bank:
            return source
        return SyntheticPool.from_variations(source, data.images, data.labels, per_image=self.bank_per_image,
                                             seed=self.seed, progress=False)

    def variation_candidates(self, generator) -> list[dict]:
        """The variation settings chosen among on validation: the three modes where the generator
        has a code to mix (an encoder family), else ``vary`` at a few strengths (SDEdit of ``ddpm``)."""
        if isinstance(generator, EncoderGenerator):
            return [{"mode": m} for m in VARIATION_MODES]
        return [{"mode": "vary", "strength": s} for s in VARY_STRENGTHS]

    def source_arm(self, spec: str, best: str) -> dict:
        """``family:free`` or ``family:variation`` (``@bank``: from an offline bank) on top of B;
        the variation setting chosen on validation."""
        family, kind, bank = parse_source(spec)
        t0 = time.perf_counter()
        generator = self.train_generator(family)
        settings = {"gen_steps": self.gen_steps, "gen_train_seconds": round(time.perf_counter() - t0, 1),
                    **({"bank_per_image": self.bank_per_image} if bank else {})}
        if kind == "free":
            arm = self.appended_arm(best, self.rows_from(generator, kind, None, self.cell.subset, bank))
            return {**arm, **settings, "coverage": self.row_coverage(generator, None),
                    "seconds": round(time.perf_counter() - t0, 1)}
        candidates = self.variation_candidates(generator)
        selection = [self.validate(lambda fit, c=c: {
            "synthetic_mix": self.mixer(self.rows_from(generator, kind, c, fit, bank)),
            **baseline_options(best, self.k)}) for c in candidates]
        chosen = candidates[max(range(len(candidates)), key=lambda i: selection[i])]  # ties: the first
        arm = self.appended_arm(best, self.rows_from(generator, kind, chosen, self.cell.subset, bank))
        return {**arm, "mode": chosen["mode"], **({"strength": chosen["strength"]} if "strength" in chosen else {}),
                "mode_selection": {_label(c): v for c, v in zip(candidates, selection)},
                **settings, "coverage": self.row_coverage(generator, chosen),
                "seconds": round(time.perf_counter() - t0, 1)}

    def row_coverage(self, generator, candidate: dict | None, rows_per_class: int = 100) -> dict | None:
        """Pixel-space diversity and novelty ratios of the arm's rows (medians over classes):
        free samples, or variations of the subset's images (``rows_per_class`` of the largest
        class), against the held-out real images (``metrics.coverage``; 1 = like new real data)."""
        held, subset = self.cell.heldout, self.cell.subset
        if held is None:
            return None
        if candidate is None:
            bank = SyntheticPool(generator, per_class=rows_per_class, seed=self.seed, batch_size=256)
        else:
            per_image = max(1, -(-rows_per_class // max(subset.class_counts)))
            bank = SyntheticPool.from_variations(VariationSource(generator, **candidate), subset.images,
                                                 subset.labels, per_image=per_image, seed=self.seed,
                                                 progress=False)
        rows = bank.images.flatten(0, 1)
        labels = torch.arange(bank.num_classes).repeat_interleave(bank.per_class)
        common = dict(num_classes=self.k, seed=self.seed)
        diversity = diversity_ratio(rows, labels, held.images, held.labels, **common)
        novelty = novelty_ratio(rows, labels, subset.images, subset.labels, held.images, held.labels, **common)
        return {"diversity_pixels": diversity["median"], "novelty_pixels": novelty["median"],
                "rows_per_class": bank.per_class, "space": "pixels"}


def _label(candidate: dict) -> str:
    """``vary`` or ``vary@0.5``: how a variation candidate is named in the file."""
    return candidate["mode"] + (f"@{candidate['strength']:g}" if "strength" in candidate else "")


def parse_source(spec: str) -> tuple[str, str, bool]:
    """``family:kind[@bank]`` -> (family, kind, bank)."""
    family, rest = spec.split(":")
    kind, _, where = rest.partition("@")
    return family, kind, where == "bank"


# --------------------------------------------------------------------------- the results file
class ResultsFile:
    """The cell's JSON: protocol check, merge with what other lanes wrote, atomic locked saves."""

    def __init__(self, path: Path, protocol: dict, fresh: bool):
        self.path, self.merge_disk = path, not fresh
        self.results = {**protocol, "seeds": [], "sources": [], "commands": [], "per_seed": [], "summary": {}}
        if path.exists() and not fresh:
            previous = json.loads(path.read_text())
            recorded = {k: previous.get(k, PROTOCOL_DEFAULTS.get(k)) for k in protocol}
            changed = {k: (recorded[k], v) for k, v in protocol.items() if recorded[k] != v}
            if changed:
                raise SystemExit(f"{path} holds another protocol ({changed}); pass --fresh or --out")
            self.results.update({k: previous[k] for k in ("seeds", "sources", "per_seed", "commands")})
            if "gen_steps" in previous:  # files from before the steps were recorded per arm
                self.results["gen_steps"] = previous["gen_steps"]
        self.rows = {row["seed"]: row for row in self.results["per_seed"]}
        self.measured: list[tuple[int, str | None]] = []  # (seed, None): the row; (seed, key): an arm

    def add_run(self, seeds: list[int], sources: list[str], command: str) -> None:
        r = self.results
        r["seeds"] = sorted(set(r["seeds"]) | set(seeds))
        r["sources"] = list(dict.fromkeys(r["sources"] + sources))
        r["commands"].append(command)

    def put_row(self, row: dict) -> None:
        self.rows[row["seed"]] = {**row, "arms": {}}
        self.measured.append((row["seed"], None))
        self.save()

    def put_cell(self, seed: int, key: str, arm: dict) -> None:
        self.rows[seed]["arms"][key] = arm
        self.measured.append((seed, key))
        self.save()

    def _merge_from_disk(self) -> None:
        disk = json.loads(self.path.read_text())
        disk_rows = {row["seed"]: row for row in disk["per_seed"]}
        for seed, family in self.measured:
            mine = self.rows[seed]
            if family is None:
                disk_rows[seed] = {**mine, "arms": {**disk_rows.get(seed, {}).get("arms", {}), **mine["arms"]}}
            else:
                disk_rows.setdefault(seed, {**mine, "arms": {}})["arms"][family] = mine["arms"][family]
        self.rows = disk_rows
        r = self.results
        r["seeds"] = sorted(set(disk["seeds"]) | set(r["seeds"]))
        r["sources"] = list(dict.fromkeys(disk["sources"] + r["sources"]))
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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(CELLS))
    p.add_argument("--budget", default="50pc", help="10pc, 50pc, 200pc (CIFAR-10) or lt100")
    p.add_argument("--sources", default="aae:variation",
                   help="synthetic arms, each <family>:free or <family>:variation, comma-separated; a "
                        "suffix @bank draws the rows from an offline bank (SyntheticPool) built once")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--epochs", type=float,
                   help="classifier budget in epochs of the real data (default: the cell's convergence file)")
    p.add_argument("--min-steps", type=int, default=100)
    p.add_argument("--clf-width", type=int, default=16, help="ResNet-8 width (64: the stronger classifier)")
    p.add_argument("--clf-batch-size", type=int, default=128)
    p.add_argument("--gen-steps", type=int, default=600, help="generator training steps (recorded per arm)")
    p.add_argument("--bank-per-image", type=int, default=4,
                   help="@bank arms: rows per real image of the largest class (recorded per arm)")
    p.add_argument("--ratio", type=float, default=0.5, help="appended rows per real row, every appended arm")
    p.add_argument("--selection-folds", type=int,
                   help="validation folds every choice averages (default: protocol.SELECTION_FOLDS of the "
                        "budget; 1 = one 20%% split)")
    p.add_argument("--out", help="JSON path (default: results/downstream_v3_<dataset>_<budget>[_w<width>].json)")
    p.add_argument("--fresh", action="store_true", help="overwrite the JSON instead of adding to it")
    args = p.parse_args()
    if args.budget not in CELLS[args.dataset]:
        p.error(f"{args.dataset} has the budgets {CELLS[args.dataset]}, not {args.budget!r}")
    args.sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    bad = [s for s in args.sources if s.count(":") != 1 or s.split(":")[1] not in
           ("free", "variation", "free@bank", "variation@bank")]
    if bad:
        p.error(f"sources must be <family>:free or <family>:variation, optionally with @bank, got {bad}")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    if args.epochs is None:
        convergence = RESULTS / f"convergence_{args.dataset}_{args.budget}.json"
        if not convergence.exists():
            p.error(f"no --epochs and no {convergence.name}: run benchmarks/convergence.py --dataset "
                    f"{args.dataset} --budget {args.budget} first, or pass --epochs")
        sweep = json.loads(convergence.read_text())
        if not sweep.get("complete", True):
            p.error(f"{convergence.name} is a sweep still under way: finish it (rerun convergence.py, it "
                    "resumes) or pass --epochs")
        args.epochs = float(sweep["chosen_epochs"])
    if args.selection_folds is None:
        args.selection_folds = SELECTION_FOLDS.get(args.budget, 1)
    return args


def protocol_of(args) -> dict:
    return {
        "benchmark": "downstream", "protocol_version": PROTOCOL_VERSION,
        "dataset": args.dataset, "budget": args.budget, "long_tailed": args.budget.startswith("lt"),
        "classifier": f"augmentgen.metrics.ReferenceClassifier (ResNet-8, width {args.clf_width}), "
                      "AdamW lr 3e-3, one-cycle, label smoothing 0.1",
        "clf_epochs": args.epochs, "clf_min_steps": args.min_steps, "clf_width": args.clf_width,
        "clf_batch_size": args.clf_batch_size, "gen_batch_size": 64,
        "appended_ratio": args.ratio, "baselines": BASELINE_NAMES, "selection_folds": args.selection_folds,
        "mixing": "SyntheticMix(mode='append'), equal real exposure; sources on top of the best baseline",
    }


def run_seed(file: ResultsFile, arms: Arms, args, commit: str | None) -> None:
    """Every arm of one seed that the file does not hold yet, saved one by one."""
    seed = arms.seed
    row = file.rows.get(seed)
    if row is not None and row["class_counts"] != arms.cell.subset.class_counts:
        raise SystemExit(f"seed {seed}: the file's subset has counts {row['class_counts']}, this run drew "
                         f"{arms.cell.subset.class_counts}; the data or the draw changed, pass --fresh")
    if row is None:
        t0 = time.perf_counter()
        best, selection = arms.choose_baseline()
        file.put_row({"seed": seed, "class_counts": arms.cell.subset.class_counts, "best_baseline": best,
                      "baseline_selection": selection, "selection_seconds": round(time.perf_counter() - t0, 1),
                      "n_real": len(arms.cell.subset), "git_commit": commit})
        row = file.rows[seed]
    best = row["best_baseline"]
    wanted = arms.baselines + (["e"] if arms.cell.oracle is not None else []) + ["r"]
    wanted += ["p"] if any(":variation" in s for s in args.sources) else []
    for key in wanted + args.sources:
        if key in row["arms"]:
            continue
        if ":" in key:
            check_arm_settings(file, key, {"gen_steps": args.gen_steps, "bank_per_image": args.bank_per_image})
        if key in arms.baselines or key == "e":
            arm = arms.baseline_arm(key)
        elif key in ("r", "p"):
            arm = arms.control(key, best)
        else:
            arm = arms.source_arm(key, best)
        file.put_cell(seed, key, {**arm, "git_commit": commit})
        print(f"seed {seed} {key}: {arm['acc']:.4f}{' (' + arm['mode'] + ')' if 'mode' in arm else ''}, "
              f"{arm['seconds']} s", flush=True)


def check_arm_settings(file: ResultsFile, key: str, settings: dict) -> None:
    """Refuse to add a seed to an arm measured with other generator settings in other seeds."""
    bank = "@bank" in key
    for row in file.rows.values():
        arm = row["arms"].get(key)
        if arm is None:
            continue
        for name in ARM_SETTINGS:
            if name == "bank_per_image" and not bank:
                continue
            recorded = arm.get(name, file.results.get(name))
            if recorded != settings[name]:
                flag = "--" + name.replace("_", "-")
                raise SystemExit(f"arm {key} of seed {row['seed']} was measured with {name}={recorded}; "
                                 f"pass {flag} {recorded} to add seeds to it (or --out for another file)")


def main() -> None:
    args = parse_args()
    suffix = "" if args.clf_width == 16 else f"_w{args.clf_width}"
    out = Path(args.out or RESULTS / f"downstream_v3_{args.dataset}_{args.budget}{suffix}.json")
    file = ResultsFile(out, protocol_of(args), args.fresh)
    command = (f"python benchmarks/downstream.py --dataset {args.dataset} --budget {args.budget} "
               f"--sources {','.join(args.sources)} --seeds {','.join(map(str, args.seeds))} --epochs {args.epochs} "
               f"--min-steps {args.min_steps} --clf-width {args.clf_width} --clf-batch-size {args.clf_batch_size} "
               f"--gen-steps {args.gen_steps} --bank-per-image {args.bank_per_image} --ratio {args.ratio} "
               f"--selection-folds {args.selection_folds}")
    file.add_run(args.seeds, args.sources, command)
    file.results.update({"machine": machine(), "torch": torch.__version__, "augmentgen": augmentgen.__version__})
    commit = git_commit()
    full, test = load_split(args.dataset), load_split(args.dataset, "test")
    file.results["n_test"] = len(test)
    for seed in args.seeds:
        cell = draw_cell(full, args.dataset, args.budget, seed)
        run_seed(file, Arms(cell, test, seed, args), args, commit)
    print(json.dumps(file.results["summary"], indent=2))


if __name__ == "__main__":
    main()
