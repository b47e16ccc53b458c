"""Synthesis at scale: ``augmentgen sample --format parquet`` on 1 and 2 processes, images/s and peak RSS.

The default 28x28 ``cgan`` (``build_config("cgan")``, 10 classes, random weights: speed does not
depend on training) is saved to a temporary folder and sampled by the CLI exactly as a user runs
it, with the CLI's default shard and batch sizes:

- 1 process: ``python -m augmentgen sample --model M --per-class N --format parquet --out DIR``;
- 2 processes: ``ACCELERATE_USE_CPU=1 python -m torch.distributed.run --standalone
  --nproc_per_node 2 -m augmentgen sample ...`` (two gloo ranks; ``accelerate launch --cpu``
  would run one);

each with ``OMP_NUM_THREADS=1`` per rank. The figures come from the bank's own
``synthesis.json`` (generation time between the ranks' first and last barrier, peak RSS per
rank from ``ru_maxrss``) and from the wall time of the whole command (imports and model loading
included). Two smaller 1-process runs (``--images`` / 10, and 10 images) show that the peak RSS
does not grow with the number of images. The 1- and 2-process banks are compared row by row
(label and PNG bytes, up to row order).

The whole benchmark must fit ``--budget-s`` (default 600 s): after the 1-process run of
``--images`` / 10 images, the images/s measured there sizes the rest, and if ``--images`` would
not fit, fewer are made and the JSON says so (``images_reduced_from``).

    TQDM_DISABLE=1 nice -n 10 .venv/bin/python benchmarks/synthesis_scale.py
    TQDM_DISABLE=1 nice -n 10 .venv/bin/python benchmarks/synthesis_scale.py --images 1000000 --budget-s 3600

Writes benchmarks/results/synthesis_scale.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from harness import git_commit, machine, write

import augmentgen
from augmentgen.models import build_config, build_generator

CLASSES = 10  # build_config("cgan")'s default


def run_cli(model: Path, out: Path, per_class: int, processes: int, seed: int) -> dict:
    """One ``augmentgen sample --format parquet`` command; its figures from the bank's synthesis.json."""
    sample = ["augmentgen", "sample", "--model", str(model), "--per-class", str(per_class), "--format", "parquet",
              "--out", str(out), "--seed", str(seed)]
    if processes == 1:
        command = [sys.executable, "-m", *sample]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                   str(processes), "-m", *sample]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1", "TQDM_DISABLE": "1",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    load_before = os.getloadavg()
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{result.stderr[-3000:]}")
    run = json.loads((out / "synthesis.json").read_text())["last_run"]
    figures = {
        "processes": processes, "images": run["images_generated"], "per_class": per_class,
        "images_per_second": run["images_per_second"], "generation_s": run["seconds"],
        "wall_s": wall, "images_per_second_wall": run["images_generated"] / wall,
        "peak_rss_mib_per_rank": [r["peak_rss_mib"] for r in run["ranks"]],
        "images_per_rank": [r["images_generated"] for r in run["ranks"]],
        "shards_per_rank": [len(r["shards"]) for r in run["ranks"]],
        "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
        "command": "OMP_NUM_THREADS=1 ACCELERATE_USE_CPU=1 " + shlex.join(command),
    }
    print(f"{processes} process(es), {figures['images']} images: {figures['images_per_second']:.0f} images/s "
          f"generating ({figures['images_per_second_wall']:.0f} over the {wall:.0f} s command), peak RSS per rank "
          f"{', '.join(f'{m:.0f}' for m in figures['peak_rss_mib_per_rank'])} MiB", flush=True)
    return figures


def content_digest(out: Path) -> str:
    """sha256 of the bank's rows (label, PNG bytes) sorted: equal digests, equal content up to row order."""
    import pyarrow.parquet as pq

    rows = []
    for path in sorted((out / "data").glob("*.parquet")):
        table = pq.read_table(path, columns=["label", "image"])
        rows += zip(table.column("label").to_pylist(), (i["bytes"] for i in table.column("image").to_pylist()))
    digest = hashlib.sha256()
    for label, png in sorted(rows):
        digest.update(label.to_bytes(4, "little") + hashlib.sha256(png).digest())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000, help="images per run (all classes)")
    parser.add_argument("--budget-s", type=float, default=600, help="the most the whole benchmark may take")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default=None, help="where the banks go (default: a temporary folder)")
    args = parser.parse_args()
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    generator = build_generator(build_config("cgan"))
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        tmp = Path(tmp)
        augmentgen.save_pretrained(generator, tmp / "model")
        baseline = run_cli(tmp / "model", tmp / "tiny", 1, 1, args.seed)
        small = run_cli(tmp / "model", tmp / "small", args.images // (10 * CLASSES), 1, args.seed)
        # What is left of the budget for one 1-process and one 2-process run of N images each,
        # assuming (pessimistically) no speed-up from the second process.
        left = args.budget_s - (time.perf_counter() - started)
        startup = small["wall_s"] - small["generation_s"]
        affordable = int(max(left / 2 - startup, 0) * small["images_per_second"] * 0.85)
        per_class = max(min(args.images, affordable) // CLASSES, 1)
        one = run_cli(tmp / "model", tmp / "one", per_class, 1, args.seed)
        two = run_cli(tmp / "model", tmp / "two", per_class, 2, args.seed)
        identical = content_digest(tmp / "one") == content_digest(tmp / "two")
    images = per_class * CLASSES
    payload = {
        "benchmark": "synthesis_scale",
        "description": "augmentgen sample --format parquet (Parquet shards) of the default 28x28 cgan, random weights, "
                       "1 process vs 2 gloo ranks on this CPU, OMP_NUM_THREADS=1 per rank; default --shard-size "
                       "4096 and --batch-size 1024",
        "settings": vars(args),
        "images": images,
        "images_reduced_from": args.images if images < args.images else None,
        "reduced_because": (f"{args.images} images per run would not fit the {args.budget_s:.0f} s budget at the "
                            f"{small['images_per_second']:.0f} images/s measured first" if images < args.images else None),
        "figures": {"1_process": one, "2_processes": two,
                    "speedup_2_vs_1": two["images_per_second"] / one["images_per_second"],
                    "peak_rss_scaling_1_process": {"10_images": baseline["peak_rss_mib_per_rank"][0],
                                                   f"{small['images']}_images": small["peak_rss_mib_per_rank"][0],
                                                   f"{one['images']}_images": one["peak_rss_mib_per_rank"][0]}},
        "runs": {"baseline_10_images": baseline, "small": small},
        "identical_content_1_vs_2_processes": identical,
        "generator": repr(generator),
        "seeds": {"weights": args.seed, "sampling": args.seed},
        "machine": machine("cpu"),
        "versions": {"torch": torch.__version__, "augmentgen": augmentgen.__version__,
                     **{name: __import__(name).__version__ for name in ("datasets", "pyarrow", "accelerate")}},
        "git_commit": git_commit(),
        "command_line": shlex.join([sys.executable, *sys.argv]),
        "benchmark_seconds": time.perf_counter() - started,
    }
    path = write("synthesis_scale", payload)
    print(f"{images} images: 1 process {one['images_per_second']:.0f} images/s, 2 processes "
          f"{two['images_per_second']:.0f} images/s (x{payload['figures']['speedup_2_vs_1']:.2f}); same rows: "
          f"{identical}" + (f"; reduced from {args.images}" if images < args.images else ""))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
