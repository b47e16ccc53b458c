"""Which limited-data regularisers should ``cgan`` run with? A sweep on the validation split.

``cgan`` has two regularisers for small training sets, both off by default: ``diversity_weight``
(the mode-seeking term on the generator) and ``lecam_weight`` (LeCam on the discriminator). Too
little and the samples of a class stay alike (a within-class diversity ratio near 0.55 of real
data at Fashion-MNIST 50/class); too much and they stop looking like their class (one seed at
``diversity_weight=1``, ``lecam_weight=0.3`` reached a diversity ratio of 1.5 while a real-data
teacher's agreement fell from 97% to 79%). This script picks the weights without the test set,
so that ``downstream.py`` can then measure that one setting in the cell.

For every seed it draws the cell as ``downstream.py`` does (``protocol.draw_cell``) and carves the
same validation split of the subset (``validation_split(subset, 0.2, seed=seed)``). For every
setting of the grid (default: ``diversity_weight`` 0, 0.05, 0.1, 0.2, 0.5, each with
``lecam_weight`` 0 and 0.3; (0, 0) is the default ``cgan``) it trains ``cgan`` on the *fit* part
only (``downstream.train_generator``: ``--gen-steps``, batch 64, the seed, no checkpoints) and
scores 100 free samples per class on images that are not test images:

- **diversity ratio**: within-class pairwise distances of the samples over those of the held-out
  real images (real training images outside the subset; ``metrics.diversity_ratio``, pixels,
  median over classes; 1 = as spread out as real data);
- **novelty ratio**: distance to the nearest *fit* image, over that of the held-out images
  (``metrics.novelty_ratio``; well below 1 = near copies of the training images);
- **teacher agreement**: the share of the samples that a teacher labels as their class
  (``metrics.class_consistency``'s mean over classes), the teacher being the real + classic
  classifier of ``downstream.py``'s arm (a) trained on the fit part at the cell's convergence
  budget (``convergence_<dataset>_<budget>.json``). Its accuracy on the validation part is
  recorded, to say how far to trust it.

**The rule.** Among the settings whose median teacher agreement over the seeds is at least 0.90,
the one whose median diversity ratio is nearest 1 (ties: the earlier in the grid). When none
qualifies, the default ``cgan`` (0, 0), and the file says so. The choice is recorded with the
source spec to pass to ``downstream.py`` (``cgan[diversity_weight=0.1,lecam_weight=0.3]:free``;
plain ``cgan:free`` for the default). Test accuracy plays no part in it.

One 20% split on every budget: at 10/class and lt100 ``downstream.py`` averages folds for its
choices, but here the split only decides what the generator and the teacher train on; the
scores are taken on the held-out images, which are many.

Writes ``benchmarks/results/cgan_regularisers_<dataset>_<budget>.json`` after every setting. A
rerun skips the (setting, seed) pairs the file holds, so the sweep resumes after a kill or grows
by seeds and settings; a file of other settings (steps, budget of the teacher) is refused. One
process per file: it is not locked.

    OMP_NUM_THREADS=1 python benchmarks/cgan_regularisers.py --dataset fashion-mnist --budget 50pc --seeds 0
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import time
from pathlib import Path

import torch
from downstream import convergence_epochs, format_source, parse_source, train_generator
from harness import RESULTS, git_commit, machine, write_json
from protocol import CELLS, draw_cell, load_split

import augmentgen
from augmentgen.metrics import (
    diversity_ratio,
    evaluate_accuracy,
    novelty_ratio,
    per_class_accuracy,
    sample_uint8_per_class,
    train_classifier,
    validation_split,
)

FAMILY = "cgan"
#: (diversity_weight, lecam_weight) pairs of the default grid; (0, 0) is the default cgan.
DEFAULT_GRID = [(d, lecam) for d in (0.0, 0.05, 0.1, 0.2, 0.5) for lecam in (0.0, 0.3)]
MIN_AGREEMENT = 0.90  # a setting whose rows a teacher calls their class less often is not eligible
ROWS_PER_CLASS = 100  # free samples scored per class (as downstream.py's row coverage)
VALIDATION_FRACTION = 0.2  # downstream.py's split
CLASSIFIER = dict(width=16, batch_size=128)  # downstream.py's defaults, for the teacher


# --------------------------------------------------------------------------- settings
def setting_spec(diversity_weight: float, lecam_weight: float) -> str:
    """The ``downstream.py`` source spec of a setting, as it records the arm (defaults dropped)."""
    spec = f"{FAMILY}[diversity_weight={diversity_weight!r},lecam_weight={lecam_weight!r}]:free"
    return format_source(*parse_source(spec))


def parse_grid(text: str) -> list[tuple[float, float]]:
    """``0:0,0.1:0.3`` -> [(0.0, 0.0), (0.1, 0.3)]: DIVERSITY:LECAM pairs; a ``ValueError`` says
    which pair is wrong (not two numbers, or a value ``CGANConfig`` refuses)."""
    grid = []
    for pair in (p.strip() for p in text.split(",") if p.strip()):
        try:
            diversity, lecam = (float(x) for x in pair.split(":"))
        except ValueError:
            raise ValueError(f"--grid: {pair!r} is not DIVERSITY_WEIGHT:LECAM_WEIGHT (e.g. 0.1:0.3)") from None
        try:  # CGANConfig's checks (finite, >= 0), with the field named
            setting_spec(diversity, lecam)
        except ValueError as exc:
            raise ValueError(f"--grid: {pair!r}: {exc}") from None
        grid.append((diversity, lecam))
    if not grid:
        raise ValueError("--grid is empty")
    return list(dict.fromkeys(grid))


# --------------------------------------------------------------------------- scoring
def train_teacher(fit, val, seed: int, args) -> tuple[torch.nn.Module, dict]:
    """Arm (a)'s classifier (real + classic augmentation) on the fit part, at the cell's budget;
    its validation accuracy says how far its agreement can be trusted."""
    t0 = time.perf_counter()
    teacher = train_classifier(fit, seed=seed, augment="classic", epochs=args.epochs, min_steps=args.min_steps,
                               num_classes=fit.num_classes, **CLASSIFIER)
    return teacher, {"val_accuracy": evaluate_accuracy(teacher, val), "n_fit": len(fit), "n_val": len(val),
                     "seconds": round(time.perf_counter() - t0, 1)}


def score(generator, teacher, fit, heldout, seed: int) -> dict:
    """Diversity and novelty ratios and teacher agreement of the same free samples."""
    k = fit.num_classes
    samples = sample_uint8_per_class(generator, ROWS_PER_CLASS, seed=seed)
    common = dict(num_classes=k, seed=seed)
    diversity = diversity_ratio(samples.images, samples.labels, heldout.images, heldout.labels, **common)
    novelty = novelty_ratio(samples.images, samples.labels, fit.images, fit.labels,
                            heldout.images, heldout.labels, **common)
    # What class_consistency(generator, teacher, ROWS_PER_CLASS, seed=seed) computes, on these rows.
    agreement = per_class_accuracy(teacher, samples, num_classes=k)
    return {"diversity_ratio": diversity["median"], "novelty_ratio": novelty["median"],
            "teacher_agreement": statistics.fmean(agreement), "diversity_per_class": diversity["per_class"],
            "agreement_per_class": agreement}


def measure(setting: tuple[float, float], cell_parts: dict, seed: int, args) -> dict:
    """One (setting, seed): ``cgan`` trained on the fit part with the setting, then scored."""
    diversity_weight, lecam_weight = setting
    spec = setting_spec(diversity_weight, lecam_weight)
    t0 = time.perf_counter()
    generator = train_generator(FAMILY, cell_parts["fit"], steps=args.gen_steps, seed=seed,
                                options=parse_source(spec)[3])
    trained = time.perf_counter()
    figures = score(generator, cell_parts["teacher"], cell_parts["fit"], cell_parts["heldout"], seed)
    return {"spec": spec, "diversity_weight": diversity_weight, "lecam_weight": lecam_weight, "seed": seed,
            **figures, "gen_train_seconds": round(trained - t0, 1),
            "seconds": round(time.perf_counter() - t0, 1)}


# --------------------------------------------------------------------------- the choice
def summarise(runs: list[dict], grid: list[tuple[float, float]], seeds: list[int]) -> dict:
    """Medians over seeds per setting, and the setting the rule picks (see the module docstring)."""
    settings = {}
    for diversity_weight, lecam_weight in grid:
        spec = setting_spec(diversity_weight, lecam_weight)
        mine = [r for r in runs if r["spec"] == spec]
        settings[spec] = {"diversity_weight": diversity_weight, "lecam_weight": lecam_weight,
                          "seeds": sorted(r["seed"] for r in mine),
                          **{key: statistics.median(r[key] for r in mine) if mine else None
                             for key in ("diversity_ratio", "novelty_ratio", "teacher_agreement")}}
    measured = {s: v for s, v in settings.items() if v["seeds"]}
    eligible = [s for s, v in measured.items() if v["teacher_agreement"] >= MIN_AGREEMENT]
    complete = all(set(v["seeds"]) >= set(seeds) for v in settings.values())
    if eligible:  # min() keeps the first of equals: the earlier setting of the grid
        spec = min(eligible, key=lambda s: abs(measured[s]["diversity_ratio"] - 1.0))
        note = (f"median teacher agreement >= {MIN_AGREEMENT:.2f} and median diversity ratio nearest 1 "
                f"among {len(eligible)} of {len(measured)} settings measured")
    else:
        spec = setting_spec(0.0, 0.0)
        note = (f"no setting measured reached a median teacher agreement of {MIN_AGREEMENT:.2f}: "
                "the default cgan, with neither regulariser")
    if not complete:
        note += "; provisional: some settings lack some seeds"
    chosen = {"spec": spec, "qualified": bool(eligible), "complete": complete, "note": note,
              **{k: (settings.get(spec) or {}).get(k) for k in ("diversity_weight", "lecam_weight", "seeds",
                                                                "diversity_ratio", "teacher_agreement")}}
    if spec not in settings:  # the default, outside a --grid that left it out
        chosen.update(diversity_weight=0.0, lecam_weight=0.0)
    return {"settings": settings, "chosen": chosen}


# --------------------------------------------------------------------------- the results file
class SweepFile:
    """The sweep's JSON: protocol check, resume, atomic saves."""

    def __init__(self, path: Path, protocol: dict, fresh: bool):
        self.path = path
        self.results = {**protocol, "seeds": [], "grid": [], "commands": [], "teachers": {}, "runs": []}
        if path.exists() and not fresh:
            previous = json.loads(path.read_text())
            changed = {k: (previous.get(k), v) for k, v in protocol.items() if previous.get(k) != v}
            if changed:
                raise SystemExit(f"{path} was measured with other settings ({changed}); pass --fresh or --out")
            self.results.update({k: previous[k] for k in ("seeds", "grid", "commands", "teachers", "runs")})

    def has(self, spec: str, seed: int) -> bool:
        return any(r["spec"] == spec and r["seed"] == seed for r in self.results["runs"])

    def add_run(self, seeds: list[int], grid: list[tuple[float, float]], command: str) -> None:
        r = self.results
        r["seeds"] = sorted(set(r["seeds"]) | set(seeds))
        r["grid"] = [list(g) for g in dict.fromkeys([tuple(g) for g in r["grid"]] + grid)]
        r["commands"] = list(dict.fromkeys(r["commands"] + [command]))

    def put(self, run: dict) -> None:
        self.results["runs"].append(run)
        self.save()

    def save(self) -> None:
        r = self.results
        r.update(summarise(r["runs"], [tuple(g) for g in r["grid"]], r["seeds"]))
        write_json(self.path, r)


# --------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(CELLS))
    p.add_argument("--budget", default="50pc", help="10pc, 50pc, 200pc (CIFAR-10) or lt100")
    p.add_argument("--seeds", default="0")
    p.add_argument("--grid", help="settings as DIVERSITY_WEIGHT:LECAM_WEIGHT pairs, comma-separated (default: "
                                  "diversity_weight 0, 0.05, 0.1, 0.2, 0.5, each with lecam_weight 0 and 0.3)")
    p.add_argument("--gen-steps", type=int, default=600, help="generator training steps (downstream.py's default)")
    p.add_argument("--epochs", type=float,
                   help="the teacher's budget in epochs of the fit part (default: the cell's convergence file)")
    p.add_argument("--min-steps", type=int, default=100, help="the teacher's least steps (downstream.py's default)")
    p.add_argument("--out", help="JSON path (default: results/cgan_regularisers_<dataset>_<budget>.json)")
    p.add_argument("--fresh", action="store_true", help="overwrite the JSON instead of adding to it")
    args = p.parse_args()
    if args.budget not in CELLS[args.dataset]:
        p.error(f"{args.dataset} has the budgets {CELLS[args.dataset]}, not {args.budget!r}")
    try:
        args.grid = parse_grid(args.grid) if args.grid is not None else DEFAULT_GRID
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        if args.epochs is None:
            args.epochs = convergence_epochs(args.dataset, args.budget)
    except ValueError as exc:
        p.error(str(exc))
    return args


def protocol_of(args) -> dict:
    """What two runs must share to be written to one file."""
    return {"benchmark": "cgan_regularisers", "family": FAMILY, "dataset": args.dataset, "budget": args.budget,
            "validation_fraction": VALIDATION_FRACTION, "gen_steps": args.gen_steps, "gen_batch_size": 64,
            "teacher": "augmentgen.metrics.ReferenceClassifier (ResNet-8, width 16), real + classic augmentation, "
                       "trained on the fit part", "clf_epochs": args.epochs, "clf_min_steps": args.min_steps,
            "clf_batch_size": CLASSIFIER["batch_size"], "rows_per_class": ROWS_PER_CLASS,
            "min_agreement": MIN_AGREEMENT,
            "rule": f"among settings with median teacher agreement >= {MIN_AGREEMENT:.2f}, the median diversity "
                    "ratio nearest 1 (ties: the earlier in the grid); none: the default (0, 0)"}


def run_seed(file: SweepFile, full, seed: int, args, commit: str | None) -> None:
    """Every setting of ``args.grid`` the file lacks for ``seed``; the teacher is trained once, if needed."""
    todo = [g for g in args.grid if not file.has(setting_spec(*g), seed)]
    if not todo:
        return
    cell = draw_cell(full, args.dataset, args.budget, seed)
    if cell.heldout is None:
        raise SystemExit(f"{args.dataset} {args.budget} has no held-out images to score diversity on")
    fit, val = validation_split(cell.subset, VALIDATION_FRACTION, seed=seed)
    teacher, record = train_teacher(fit, val, seed, args)
    file.results["teachers"][str(seed)] = {**record, "git_commit": commit}
    print(f"seed {seed} teacher: validation accuracy {record['val_accuracy']:.3f}, {record['seconds']} s", flush=True)
    parts = {"fit": fit, "heldout": cell.heldout, "teacher": teacher}
    for setting in todo:
        run = {**measure(setting, parts, seed, args), "git_commit": commit}
        file.put(run)
        print(f"seed {seed} {run['spec']}: diversity {run['diversity_ratio']:.2f}, novelty "
              f"{run['novelty_ratio']:.2f}, teacher agreement {run['teacher_agreement']:.1%}, "
              f"{run['seconds']} s", flush=True)


def main() -> None:
    args = parse_args()
    out = Path(args.out or RESULTS / f"cgan_regularisers_{args.dataset}_{args.budget}.json")
    file = SweepFile(out, protocol_of(args), args.fresh)
    grid_text = ",".join(f"{d!r}:{lecam!r}" for d, lecam in args.grid)
    command = shlex.join(["python", "benchmarks/cgan_regularisers.py", "--dataset", args.dataset, "--budget",
                          args.budget, "--seeds", ",".join(map(str, args.seeds)), "--grid", grid_text,
                          "--gen-steps", str(args.gen_steps), "--epochs", str(args.epochs),
                          "--min-steps", str(args.min_steps)])
    file.add_run(args.seeds, args.grid, command)
    file.results.update({"machine": machine(), "torch": torch.__version__, "augmentgen": augmentgen.__version__})
    done = sum(file.has(setting_spec(*g), s) for g in args.grid for s in args.seeds)
    print(f"cgan regularisers on {args.dataset} {args.budget}: seeds {args.seeds}, {args.gen_steps} generator "
          f"steps, teacher {args.epochs:g} epochs; {len(args.grid)} settings, {done} of "
          f"{len(args.grid) * len(args.seeds)} (setting, seed) pairs already in {out}", flush=True)
    for d, lecam in args.grid:
        print(f"  diversity_weight {d:g}, lecam_weight {lecam:g}: {setting_spec(d, lecam)}", flush=True)
    commit = git_commit()
    full = load_split(args.dataset)
    for seed in args.seeds:
        run_seed(file, full, seed, args, commit)
    file.save()  # the run's command and machine, even when every pair was there already
    chosen = file.results["chosen"]
    print(f"chosen: {chosen['spec']} ({chosen['note']})\n"
          f"  python benchmarks/downstream.py --dataset {args.dataset} --budget {args.budget} "
          f"--sources {shlex.quote(chosen['spec'])}", flush=True)


if __name__ == "__main__":
    main()
