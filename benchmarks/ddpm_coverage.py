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

``--ddpm 'ddpm[learning_rate=1e-3,min_snr_gamma=5]'`` measures a ddpm with other config options
(written as ``downstream.py``'s sources take them) in an entry of the file named so, beside the
default one's. ``--compare cgan=600`` measures the same figures for another family at a fixed
step count (the downstream protocol's ``cgan``), its samples at its own settings. The training
seconds exclude the measuring.

Every snapshot also records the trainer's own snapshot score (``TrainingDataScore``, as
``time_to_grid.py`` does, with its convergence verdict) and an 8-per-class grid; with
``--measure-every`` larger than ``--snapshot-every`` the coverage figures are taken only at its
multiples and the last step, so one training run gives a fine convergence curve and the figures
at a few training lengths (``benchmarks/gpu.sh`` runs it so). The grids of the measured steps go
into one PNG next to the JSON (``grids/``), top to bottom. Writes
``benchmarks/results/ddpm_coverage_<dataset>_<budget>.json`` after each snapshot (an unfinished
family is marked ``"partial": true``) and after each family (a rerun skips the finished families).
With ``--run-dir`` the ``ddpm``'s training checkpoints there at every snapshot and a run killed
before its end (a session's stop) resumes from it with the figures its partial entry holds, so
a training longer than a session goes on where the machine keeps the folder (in the user cache:
its checkpoints hold Accelerate's pickled states, which never go into the repository)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ddpm_coverage.py --steps 6000 --snapshot-every 1500 \\
        --guidance 1,2,3 --compare cgan=600
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import tempfile
import time
from pathlib import Path

import torch
from downstream import TRANSFER_FIELDS, convergence_epochs, format_source, parse_source
from harness import RESULTS, git_commit, locked, machine, write_json
from protocol import CELLS, draw_cell, load_split
from safetensors.torch import load_file as load_tensors
from safetensors.torch import save as save_tensors
from time_to_grid import TimedScore, converged_at, snapshot_steps

import augmentgen
from augmentgen._images import save_sample_grid
from augmentgen._io import atomic_write_bytes
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
from augmentgen.training.checkpoint import checkpoint_dirs, checkpoint_step

#: In ``--run-dir``: every scored snapshot's sample grid so far, which a resumed run's PNG needs.
GRIDS_FILE = "snapshot_grids.safetensors"


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
                                 device=args.device)
    figures = {"class_consistency": sum(consistency) / k, "cas": evaluate_accuracy(cas_model, held)}
    # the features come back on the classifier's device; the ratios are taken on the CPU, beside the labels
    spaces = {"pixels": lambda images: images, "features": lambda images: features(reference, images).cpu()}
    for space, embed in spaces.items():
        fake, train, real = embed(synthetic.images), embed(subset.images), embed(held.images)
        diversity = diversity_ratio(fake, synthetic.labels, real, held.labels, num_classes=k, seed=args.seed)
        novelty = novelty_ratio(fake, synthetic.labels, train, subset.labels, real, held.labels, num_classes=k,
                                seed=args.seed)
        figures[f"diversity_{space}"], figures[f"novelty_{space}"] = diversity["median"], novelty["median"]
    return figures


class SweepScore:
    """The trainer's snapshot score and grid (:class:`time_to_grid.TimedScore`) at each snapshot,
    plus the coverage figures of every guidance scale at the measured ones (multiples of
    ``measure_every`` and the last step); the time they take is kept out of the training seconds."""

    def __init__(self, data, cell, reference, args, guidance: list[float | None], steps: list[int],
                 measure_every: int, progress=None, run_dir: Path | None = None):
        self.timed = TimedScore(data, seed=args.seed, device=args.device)
        self.cell, self.reference, self.args, self.guidance, self.steps = cell, reference, args, guidance, steps
        self.measure_every, self.progress, self.records, self.run_dir = measure_every, progress, [], run_dir

    def measured(self, step: int) -> bool:
        return step % self.measure_every == 0 or step == self.steps[-1]

    def restore(self, entry: dict, step: int, grids: torch.Tensor) -> None:
        """Take up a killed run's figures up to ``step`` (its newest checkpoint) from its partial
        ``entry`` and its snapshots' ``grids`` (N, 8 * classes, C, H, W); the snapshots after it
        are scored again, as the trainer retrains those steps. The training clock goes on from
        the last snapshot's seconds."""
        timed = self.timed
        timed.records = [r for r in entry["snapshots"] if r["step"] <= step]
        self.records = [r for r in entry["records"] if r["step"] <= step]
        if [r["step"] for r in timed.records] != [s for s in self.steps if s <= step] or len(grids) < len(timed.records):
            raise SystemExit(f"the run folder's checkpoint is at step {step}, but the results file's entry has "
                             f"snapshots {[r['step'] for r in entry['snapshots']]} and {len(grids)} grids: they "
                             "are not one run's; pass another --run-dir or --out")
        timed.grids = list(grids[:len(timed.records)])
        timed.start = time.perf_counter() - (timed.records[-1]["train_seconds"] if timed.records else 0.0)

    def __call__(self, generator) -> dict:
        t0 = time.perf_counter()
        timed = self.timed
        step = self.steps[len(timed.records)]  # the trainer scores these steps, in order
        train_seconds = round(t0 - timed.start - timed.scoring, 1)
        if self.measured(step):
            for scale in self.guidance:
                synthetic = samples_at(generator, self.args.per_class, self.args.seed, scale)
                self.records.append({"step": step, "guidance_scale": scale, "train_seconds": train_seconds,
                                     **coverage_figures(synthetic, self.cell, self.reference, self.args)})
                print(f"  step {step}, guidance {scale}: " + ", ".join(
                    f"{k} {v:.3f}" for k, v in self.records[-1].items() if isinstance(v, float)), flush=True)
        timed.scoring += time.perf_counter() - t0  # the measuring is not training either
        scores = timed(generator)
        timed.records[-1]["step"] = step
        if self.run_dir is not None:  # what a resumed run needs beside the results file's entry
            atomic_write_bytes(self.run_dir / GRIDS_FILE, save_tensors({"grids": torch.stack(timed.grids)}))
        print(f"  step {step}: snapshot score {scores['score']:.4f} after {train_seconds} s of training", flush=True)
        if self.progress is not None:
            self.progress(self)
        return scores


def family_entry(sweep: SweepScore, family: str, steps: int, every: int, args, out: Path) -> dict:
    """The JSON entry of a family (``ddpm[...]`` with options) so far: coverage records, snapshot
    scores, convergence, grids."""
    snapshots = sweep.timed.records
    index = converged_at(snapshots, args.tolerance) if snapshots else None
    measured = [i for i, r in enumerate(snapshots) if sweep.measured(r["step"])]
    grids = {}
    if measured:
        slug = re.sub(r"[^\w.-]+", "_", family).strip("_")  # ddpm[learning_rate=0.001] -> ddpm_learning_rate_0.001
        path = out.parent / "grids" / f"{out.stem}_{slug}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_sample_grid(torch.cat([sweep.timed.grids[i] for i in measured]), 8, path)
        grids = {"path": str(path.relative_to(out.parent)), "steps": [snapshots[i]["step"] for i in measured],
                 "layout": "8 samples a row, one row per class, the measured steps top to bottom"}
    return {"steps": steps, "snapshot_every": every, "measure_every": sweep.measure_every,
            "records": sweep.records, "snapshots": snapshots,
            "best_score": max((r["score"] for r in snapshots), default=None),
            "converged": index is not None,
            "converged_step": None if index is None else snapshots[index]["step"],
            "converged_train_seconds": None if index is None else snapshots[index]["train_seconds"],
            "grids": grids, "git_commit": git_commit()}


def measure_family(name: str, steps: int, every: int, guidance: list[float | None], cell, reference,
                   args, *, measure_every: int | None = None, out: Path, progress=None,
                   run_dir: Path | None = None, partial: dict | None = None) -> dict:
    """Train ``name`` (a family, ``ddpm[field=value,...]`` with config options) on the cell's subset
    for ``steps``, scoring a snapshot every ``every`` steps and measuring its coverage every
    ``measure_every`` (default ``every``); ``progress(entry)`` gets the entry so far after each
    snapshot.

    With ``run_dir`` the trainer checkpoints there at every snapshot, and a run killed before its
    end resumes from its newest checkpoint, taking up the figures of ``partial`` (the results
    file's entry it left) up to that step, so a training longer than a session can go on."""
    subset = cell.subset
    family, _, _, options, _ = parse_source(f"{name}:free")
    config = build_config(family, **options, num_classes=subset.num_classes, class_names=subset.class_names,
                          image_size=subset.image_shape[1], in_channels=subset.image_shape[0])
    training = TrainingConfig(steps=steps, batch_size=64, seed=args.seed, checkpoint_every=every if run_dir else 0,
                              sample_every=0, log_every=max(1, steps // 20), snapshot_every=every)
    done = checkpoint_dirs(run_dir) if run_dir is not None and run_dir.is_dir() else []
    resumed_at = checkpoint_step(done[-1]) if done else None
    holder: dict[str, SweepScore] = {}
    t0 = time.perf_counter()

    earlier = (partial or {}) if done else {}  # a resumed run's entry adds up its parts
    resumed = [*earlier.get("resumed_at_steps", []), resumed_at] if done else []

    def entry(sweep: SweepScore) -> dict:
        return {**family_entry(sweep, name, steps, every, args, out),
                "wall_seconds": round(earlier.get("wall_seconds", 0.0) + time.perf_counter() - t0, 1),
                **({"resumed_at_steps": resumed} if resumed else {})}

    def factory(data):
        sweep = holder["score"] = SweepScore(data, cell, reference, args, guidance, snapshot_steps(steps, every),
                                             measure_every or every, (lambda s: progress(entry(s))) if progress else None,
                                             run_dir)
        if done:
            grids_file = run_dir / GRIDS_FILE
            sweep.restore(partial or {"snapshots": [], "records": []}, resumed_at,
                          load_tensors(grids_file)["grids"] if grids_file.exists() else torch.empty(0))
        return sweep

    with contextlib.ExitStack() as stack:
        folder = run_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        Trainer(config, training, folder, snapshot_scorer=factory).fit(subset, resume=bool(done))
    return entry(holder["score"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(CELLS))
    p.add_argument("--budget", default="50pc")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=6000, help="ddpm training steps")
    p.add_argument("--ddpm", default="ddpm", metavar="SPEC",
                   help="the ddpm measured, with config options as downstream.py's sources take them, e.g. "
                        "'ddpm[learning_rate=1e-3,min_snr_gamma=5]'; its entry in the file is named so")
    p.add_argument("--snapshot-every", type=int, default=1500,
                   help="score a snapshot of the ddpm (and save its grid) every N steps")
    p.add_argument("--measure-every", type=int,
                   help="measure the ddpm's coverage every N steps and at the last (default: --snapshot-every)")
    p.add_argument("--tolerance", type=float, default=0.05,
                   help="convergence: relative distance to the best snapshot score (as time_to_grid.py)")
    p.add_argument("--guidance", default="1,2,3", help="comma-separated classifier-free guidance scales")
    p.add_argument("--per-class", type=int, default=40, help="samples per class and guidance scale")
    p.add_argument("--compare", default="cgan=600", help="family=steps measured once at the end ('' for none)")
    p.add_argument("--epochs", type=float, help="classifier budget (default: the cell's convergence sweep)")
    p.add_argument("--min-steps", type=int, default=200, help="the fewest steps of a classifier")
    p.add_argument("--device", default="cpu", help="where the classifiers and the snapshot score run (the "
                   "generators train where Accelerate puts them: CUDA when there is one)")
    p.add_argument("--run-dir", type=Path,
                   help="the ddpm's training folder: checkpointed at every snapshot, and a run killed before its "
                        "end resumes there (with the results file's partial entry), so a training longer than a "
                        "session can go on; keep it in the user cache (Accelerate's pickled states never go into "
                        "the repository); default: a temporary folder, no resume")
    p.add_argument("--out")
    args = p.parse_args()
    if args.measure_every and args.measure_every % args.snapshot_every:
        p.error("--measure-every must be a multiple of --snapshot-every: the coverage is measured at snapshots")
    if args.run_dir is not None and args.run_dir.expanduser().resolve().is_relative_to(RESULTS.parent.parent.resolve()):
        p.error(f"--run-dir {args.run_dir} is inside the repository: its checkpoints hold Accelerate's pickled "
                "states, which are never committed; use a folder in the user cache, e.g. "
                "~/.cache/augmentgen/benchmark-runs/ddpm-coverage-long")
    args.epochs = args.epochs or convergence_epochs(args.dataset, args.budget)
    out = Path(args.out or RESULTS / f"ddpm_coverage_{args.dataset}_{args.budget}.json")
    result = existing_results(out, args) or {
        "benchmark": "coverage of generator samples by guidance scale and training length", **settings_of(args),
        "reference": "ResNet-8 trained on the subset; heldout: training-split images not in the subset "
                     "(the test set is never read)", "families": {}}
    cell = draw_cell(load_split(args.dataset), args.dataset, args.budget, args.seed)
    reference = train_classifier(cell.subset, epochs=args.epochs, min_steps=args.min_steps, seed=args.seed,
                                 device=args.device)
    ddpm = ddpm_name(p, args.ddpm)
    runs = [(ddpm, args.steps, args.snapshot_every, [float(g) for g in args.guidance.split(",")])]
    for entry in filter(None, args.compare.split(",")):
        family, steps = entry.split("=")
        runs.append((family, int(steps), int(steps), [None]))
    result.update({"machine": machine(args.device), "torch": torch.__version__, "augmentgen": augmentgen.__version__})
    for family, steps, every, guidance in runs:
        if family in result["families"] and not result["families"][family].get("partial"):
            continue
        measure_every = (args.measure_every or every) if family == ddpm else every
        print(f"{family}: {steps} steps, snapshot scored every {every}, measured every {measure_every} "
              f"at guidance {guidance}", flush=True)

        def progress(entry, family=family):
            save_family(out, result, family, {**entry, "partial": True})

        resumable = family == ddpm and args.run_dir is not None
        save_family(out, result, family, measure_family(
            family, steps, every, guidance, cell, reference, args, measure_every=measure_every, out=out,
            progress=progress, run_dir=args.run_dir if resumable else None,
            partial=result["families"].get(family) if resumable else None))
        entry = result["families"][family]
        if entry["snapshots"]:
            print(f"{family}: best snapshot score {entry['best_score']:.4f}; " +
                  (f"converged at step {entry['converged_step']}" if entry["converged"] else
                   f"not converged in {steps} steps"), flush=True)


def settings_of(args) -> dict:
    """What every entry of one file shares: a file's figures compare only under these."""
    return {"dataset": args.dataset, "budget": args.budget, "seed": args.seed, "per_class": args.per_class,
            "classifier_epochs": args.epochs}


def existing_results(out: Path, args) -> dict | None:
    """The results already in ``out``, or None; a SystemExit if they were measured under other
    settings (another seed's subset, sample count or classifier budget), which no entry of this
    run could be compared with."""
    if not out.exists():
        return None
    result = json.loads(out.read_text())
    changed = {k: (result.get(k), v) for k, v in settings_of(args).items() if result.get(k) != v}
    if changed:
        raise SystemExit(f"{out} holds figures measured under other settings (recorded, asked: {changed}); "
                         "run with those, or pass --out for a file of its own")
    return result


def save_family(out: Path, result: dict, family: str, entry: dict) -> None:
    """Write ``result`` with ``family``'s ``entry`` to ``out``. Two lanes may measure two settings
    into one file: under the file's lock, the entries another run wrote meanwhile are kept."""
    with locked(out):
        if out.exists():
            # the file's entries are newer than this run's copies of them, except its own family's
            result["families"] = {**result["families"], **json.loads(out.read_text())["families"]}
        result["families"][family] = entry
        write_json(out, result)


def ddpm_name(parser: argparse.ArgumentParser, spec: str) -> str:
    """``--ddpm``'s canonical name (options equal to the defaults dropped, sorted), or a parser error."""
    try:
        family, _, _, options, _ = parse_source(f"{spec}:free")
    except ValueError as exc:
        parser.error(f"--ddpm {spec}: {exc}")
    if family != "ddpm" or set(options) & set(TRANSFER_FIELDS):
        parser.error(f"--ddpm {spec}: expected ddpm[field=value,...] with fields of the ddpm's config")
    return format_source(family, "free", options=options).removesuffix(":free")


if __name__ == "__main__":
    main()
