"""The demo behind `make demo`: does a generator trained on 500 images beat what you would do without one?

1. Trains a small `aae` (encoder and decoder of width 16) on `fashion-mnist-small` (500
   Fashion-MNIST training images shipped with augmentgen, 50 per class) for 90 seconds, and
   writes its sample grid and weights.
2. Asks the question `augmentgen eval` asks, on a validation split carved from the 500 images:
   the best baseline without a generator (classic augmentation, or classic + MixUp/CutMix), then
   the generator's rows on top of it (its free samples, and rows made from each batch's real
   images), or nothing. The chosen arms are then trained on all 500 images and tested once on
   the 1000 embedded test images, and the verdict is printed.
3. Prints what the benchmark suite measured, read now from `benchmarks/results/*.json`.

This is a demo, not evidence: one seed, a small generator and a narrow classifier (a ResNet-8
of width 8; the benchmarks use 16), sized to run in about 6 minutes on a busy 2-core CPU.
`augmentgen eval --repeats 5` measures your own data.

    python examples/demo.py [--gen-time 90s] [--epochs 100] [--width 8] [--methods plain,vary] [--out runs/demo]
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path

from tqdm.auto import tqdm

import augmentgen
from augmentgen.metrics import classifier_steps, downstream_gain, downstream_plan
from augmentgen.metrics.report import format_downstream, write_report
from augmentgen.metrics.stats import format_interval

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"  # report.py, and results/ its JSON files
RESULTS = BENCHMARKS / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--gen-time", default="90s", help="wall time of the generator's training")
    parser.add_argument("--gen-width", type=int, default=16, help="the aae's encoder and decoder width (default 32)")
    parser.add_argument("--gen-steps", type=int, default=600, help="the most generator steps (the benchmarks' 600)")
    parser.add_argument("--epochs", type=float, default=100, help="classifier budget in passes over its real images")
    parser.add_argument("--min-steps", type=int, default=100, help="the fewest steps of a classifier")
    parser.add_argument("--width", type=int, default=8, help="classifier width (the benchmarks use 16)")
    parser.add_argument("--methods", default="plain,vary", help="synthetic methods tried on top of the best baseline")
    parser.add_argument("--ratio", type=float, default=0.5, help="synthetic rows appended per real row")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started, out = time.perf_counter(), Path(args.out)
    train_data = augmentgen.load_data("fashion-mnist-small")
    test_data = augmentgen.load_data("fashion-mnist-small", split="test")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    choice = dict(candidate_ratios=(0.0, args.ratio), methods=methods, baselines="strong")
    plan = downstream_plan(train_data, include_noaug=False, **choice)
    # 100 epochs of the 400-image fit split (validation holds 20%) and of all 500 images: 300 steps either way.
    steps = classifier_steps(len(train_data), 128, epochs=args.epochs, min_steps=args.min_steps)
    print("augmentgen demo: does a generator trained on 500 images beat what you would do without one?\n"
          f"  data:        fashion-mnist-small (embedded): {len(train_data)} training images, "
          f"{train_data.class_counts[0]} per class; {len(test_data)} test images\n"
          f"  generator:   aae of width {args.gen_width}, trained for {args.gen_time} (at most {args.gen_steps} steps) "
          "on the training images\n"
          f"  choice:      on a validation split (20% of each class): the best of {', '.join(plan['baselines'])}; "
          f"then on top of it {' or '.join(methods)} rows ({args.ratio:g} per real row), or none; beside a chosen "
          f"method, as many rows made without a generator ({', '.join(plan['controls'])})\n"
          f"  classifiers: up to {plan['classifier_runs']} runs of a ResNet-8 of width {args.width}, "
          f"{args.epochs:g} epochs (~{steps} steps) each\n"
          "  this is a demo, not evidence: one seed; about 6 minutes on a busy 2-core CPU\n", flush=True)

    # 1. The generator: resumes an interrupted run; a finished one is reused.
    if (out / "model.safetensors").exists():
        print(f"{out} already holds a trained generator; delete it to train again")
    else:
        augmentgen.train("aae", train_data, out, steps=args.gen_steps, time_budget=args.gen_time, seed=args.seed,
                         sample_every=0, checkpoint_every=100, resume=(out / "checkpoints").is_dir(),
                         model_config={"encoder_width": args.gen_width, "decoder_width": args.gen_width})
    generator = augmentgen.from_pretrained(out)
    trained_steps = json.loads((out / "training.json").read_text()).get("steps", "?")
    print(f"generator: {generator.family}, {trained_steps} steps; samples {out / 'samples.png'} (a row per class), "
          f"weights {out / 'model.safetensors'}\n", flush=True)

    # 2. The choice, as `augmentgen eval` makes it, at one seed.
    with tqdm(total=plan["classifier_runs"], unit="classifier", desc="classifiers", dynamic_ncols=True) as bar:
        report = downstream_gain(generator, train_data, test_data, epochs=args.epochs, min_steps=args.min_steps,
                                 width=args.width, seed=args.seed, include_noaug=False, progress=bar, **choice)
    print("\n" + format_downstream(report))
    print("(one seed at demo scale: the difference above is a demonstration, not a measurement)\n")

    # 3. What the benchmark suite measured: each cell's answer, with its seeds.
    print("\n".join(benchmark_lines(RESULTS)))
    written = write_report(report, out / "demo_gain.json")  # atomically, as `augmentgen eval` writes its report
    minutes, seconds = divmod(round(time.perf_counter() - started), 60)
    print(f"\nwrote {written}; total {minutes} min {seconds:02d} s")


# --------------------------------------------------------------------------- the benchmark results
def _seeds(n: int, planned: int) -> str:
    return f"{n} of {planned} seeds" + (": UNDER WAY, a demo until its seeds land" if n < planned else "")


def _cell_line(results: dict, report) -> str | None:
    """A cell's answer, as the README's matrix gives it: its best synthetic arm against the best
    baseline B and against as many rows made without a generator, and the oracle."""
    best = report.best_synthetic_arm(results)
    if best is None:
        return None
    summary, planned = results["summary"], len(results["seeds"])
    entry = summary[best]
    parts = [f"  {report.cell_label(results)} ({_seeds(summary['arms'][best]['n'], planned)}): "
             f"{report.v3_arm_name(best).replace('`', '')}: vs the best baseline B "
             f"{format_interval(entry['vs_best_baseline'])}"]
    for control, what in (("vs_r", "as many copies of real rows"), ("vs_p", "as many same-class pixel MixUp rows")):
        if entry.get(control):  # the controls: rows made without a generator
            parts.append(f"vs {what} (no generator) {format_interval(entry[control])}")
    if entry.get("guard_mixed"):  # what following validation gives: the rows where they beat B there, else B
        parts.append(f"mixed only where validation beats B {format_interval(entry['guarded_vs_best_baseline'])} "
                     f"(mixed at {sum(entry['guard_mixed'])} of {len(entry['guard_mixed'])} seeds)")
    if entry.get("z_guard_mixed"):  # the guard eval applies now: a lead of more than one standard error
        mixed = entry["z_guard_mixed"]
        parts.append(f"mixed only on a validation lead of more than {entry['z_guard_min']:g} standard error "
                     f"{format_interval(entry['z_guarded_vs_best_baseline'])} (mixed at {sum(mixed.values())} of "
                     f"{len(mixed)} seeds that record it)")
    if summary.get("oracle_gain"):
        parts.append(f"twice the real images (the oracle) {format_interval(summary['oracle_gain'])}")
    return "; ".join(parts)


def benchmark_lines(folder: Path) -> list[str]:
    """The suite's answer per cell (protocol v3, the README's matrix): one line each, with its seeds
    (UNDER WAY where fewer seeds than planned are in), read from the results files now."""
    files = sorted(folder.glob("downstream_v3_*.json")) if folder.is_dir() else []
    if not files or not (BENCHMARKS / "report.py").is_file():
        return [f"(no benchmark results in {folder}, or no benchmarks/report.py: see benchmarks/README.md)"]
    if str(BENCHMARKS) not in sys.path:  # report.py: the README's rule for a cell's best arm
        sys.path.insert(0, str(BENCHMARKS))
    import report

    lines = ["what the benchmark suite measured, per cell (read now from benchmarks/results/; the cell's best "
             "synthetic arm, differences paired per seed, mean [95% interval], seeds > 0):"]
    for path in files:
        try:
            line = _cell_line(json.loads(path.read_text()), report)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            line = f"  {path.name}: could not be read ({type(exc).__name__}: {exc})"
        lines += [line] if line else []
    lines.append("  every arm and seed: benchmarks/results/REPORT.md; the protocols and earlier results: "
                 "benchmarks/README.md")
    return [textwrap.fill(line, 110, subsequent_indent="      ", break_on_hyphens=False) if line.startswith("  ") else line for line in lines]


if __name__ == "__main__":
    main()
