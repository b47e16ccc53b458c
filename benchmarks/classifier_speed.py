"""Training-step time of the reference classifier (ResNet-8) in channels_last against NCHW.

Every downstream arm trains this network, so its step time sets what a measurement campaign
costs on a CPU. For each shape (Fashion-MNIST 1x28x28 and CIFAR-10 3x32x32 at width 16, and
1x28x28 at width 64, the protocol's stronger classifier) both layouts are built from the same
seed and given the same random batch of ``--batch-size`` images; after ``--warmup`` steps, one
timed block of ``--steps`` AdamW steps (forward, cross-entropy, backward, step) per layout, the
layouts alternating over ``--repeats`` rounds so that a change in background load reaches both.
The figure is each layout's median over the rounds, and the speed-up NCHW / channels_last.

Also recorded: the two layouts' losses after the same steps, which differ only by float
rounding (the same weights and batch; oneDNN picks other kernels).

Writes ``benchmarks/results/classifier_speed.json`` (atomically) with the figures, settings,
machine, torch version, git commit and command. Usage (the CPU is shared with other jobs, so one
thread, as the benchmark lanes run)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/classifier_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from harness import RESULTS, git_commit, machine, write_json

from augmentgen.metrics import ReferenceClassifier

SHAPES = {  # name: (channels, size, width)
    "fashion-mnist, width 16": (1, 28, 16),
    "cifar10, width 16": (3, 32, 16),
    "fashion-mnist, width 64": (1, 28, 64),
}
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def build(channels: int, size: int, width: int, memory_format, seed: int):
    """The classifier and its optimizer, the weights drawn from ``seed`` (the same for both layouts)."""
    torch.manual_seed(seed)
    model = ReferenceClassifier(10, channels, size, width, memory_format=memory_format).train()
    return model, torch.optim.AdamW(model.parameters(), lr=3e-3)


def train_steps(model, optimizer, images: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
    """Run ``steps`` optimizer steps on the batch; the last loss."""
    for _ in range(steps):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return loss.item()


def measure_shape(channels: int, size: int, width: int, args) -> dict:
    """Median seconds per step of each layout over alternating rounds, and the speed-up."""
    batch = torch.Generator().manual_seed(args.seed)
    images = torch.rand(args.batch_size, channels, size, size, generator=batch) * 2 - 1
    labels = torch.randint(0, 10, (args.batch_size,), generator=batch)
    runs = {name: build(channels, size, width, fmt, args.seed) for name, fmt in LAYOUTS.items()}
    losses = {name: train_steps(*run, images, labels, args.warmup) for name, run in runs.items()}
    per_step = {name: [] for name in LAYOUTS}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            losses[name] = train_steps(*run, images, labels, args.steps)
            per_step[name].append((time.perf_counter() - start) / args.steps)
    median = {name: statistics.median(times) for name, times in per_step.items()}
    return {
        "seconds_per_step": {name: round(value, 4) for name, value in median.items()},
        "all_rounds": {name: [round(t, 4) for t in times] for name, times in per_step.items()},
        "speedup_nchw_over_channels_last": round(median["nchw"] / median["channels_last"], 2),
        "final_loss": {name: round(value, 6) for name, value in losses.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round and layout")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds per shape")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "classifier_speed.json")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]  # other jobs on the CPU slow both layouts alike; recorded
    results = {}
    for name, shape in SHAPES.items():
        results[name] = measure_shape(*shape, args)
        print(f"{name}: {results[name]['seconds_per_step']} s/step, "
              f"x{results[name]['speedup_nchw_over_channels_last']} in channels_last", flush=True)
    payload = {
        "benchmark": "reference classifier training step, channels_last vs NCHW (AdamW, cross-entropy)",
        "results": results,
        "settings": {"batch_size": args.batch_size, "steps_per_round": args.steps, "warmup": args.warmup,
                     "repeats": args.repeats, "seed": args.seed, "dtype": "float32", "num_classes": 10,
                     "shapes": {name: dict(zip(("channels", "size", "width"), s)) for name, s in SHAPES.items()}},
        "machine": machine("cpu"),
        "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "git_commit": git_commit(),
        "command": " ".join(["python", *sys.argv]),
    }
    write_json(args.out, payload)
    print(json.dumps({k: v["speedup_nchw_over_channels_last"] for k, v in results.items()}))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
