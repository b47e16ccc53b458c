"""Training-step overhead of ``SyntheticMix(ratio=0.5)`` on a ResNet-18 classifier step, generated
on the fly and drawn from a ``SyntheticPool``.

One run times the same ResNet-18 (torchvision, ``num_classes=10``, random init) training step at
32x32, batch 256, in three arms: without mixing (baseline), with ``SyntheticMix(generator, 0.5)``
(the generator runs in every step) and with ``SyntheticMix(pool, 0.5)`` (the rows are indexed
from a bank of ``--pool-per-class`` images per class filled beforehand). All arms use
``mode="replace"`` (same batch size, so the difference is the cost of making or fetching 128
synthetic rows and writing them into the batch). The arms take turns step by step, cycling
through all six orders, so background load hits them alike; each reports the median of
``--steps`` timed steps after ``--warmup`` untimed ones, and the paired figure (median over rounds
of arm / baseline in the same round) is reported beside the ratio of medians.

The pool's fill is timed apart: the first fill, then a refresh (``pool.step_epoch()`` with
``refresh_every=1``) every ``--fill-every`` timed rounds, outside any timed step. Its cost per step
is the median fill over ``--epoch-steps`` steps x ``--refresh-every`` epochs (196 steps: a
CIFAR-10 epoch of 50,000 images at batch 256). ``--probe-steps`` > 0 also measures whether a
refill in a background thread would help: ``refresh()`` then that many pool steps, against the
same steps with ``refresh()`` running in a thread beside them.

The generator is the default 32x32 RGB ``cgan`` (random weights: speed does not depend on
training). The CPU run behind ``results/mixing_overhead.json`` (the timed rounds stop after
450 s, so the whole run stays under 10 minutes on the shared 2-core CPU)::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/mixing_overhead.py --warmup 4 --steps 120 \\
        --fill-every 12 --probe-steps 4 --probe-repeats 1 --max-rounds-s 450
    python benchmarks/mixing_overhead.py --device cuda --warmup 20 --steps 100   # on a GPU

Writes benchmarks/results/mixing_overhead.json.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shlex
import statistics
import sys
import threading
import time

import torch
import torchvision
from harness import git_commit, machine, sync, write
from torch import nn

from augmentgen.mixing import SyntheticMix, SyntheticPool
from augmentgen.models.registry import build_config, build_generator

ARMS = ("baseline", "mixed", "pool")  # "mixed": on the fly, the key earlier results used


def command_line() -> str:
    # sys.orig_argv keeps the interpreter and its flags; sys.argv only the script's arguments.
    return shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the classifier and generator")
    parser.add_argument("--pool-per-class", type=int, default=256, help="bank images per class")
    parser.add_argument("--fill-every", type=int, default=12, help="timed rounds between timed refreshes (0: none)")
    parser.add_argument("--epoch-steps", type=int, default=196,
                        help="steps per epoch for the amortised fill cost (196: CIFAR-10 at batch 256)")
    parser.add_argument("--refresh-every", type=int, default=1, help="epochs between refreshes, amortised")
    parser.add_argument("--probe-steps", type=int, default=6,
                        help="pool steps beside a background refresh (0: skip the probe)")
    parser.add_argument("--probe-repeats", type=int, default=2)
    parser.add_argument("--max-rounds-s", type=float, default=None,
                        help="stop the timed rounds after this many seconds (the CPU is shared: keeps the run bounded)")
    return parser.parse_args()


class Bench:
    """The classifier, its optimizer, the generator, both mixers and the pool (its first fill timed),
    and the timed pieces every arm shares: a random real batch, one training step, one refresh."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.device = args, torch.device(args.device)
        torch.manual_seed(args.seed)
        self.classifier = torchvision.models.resnet18(num_classes=10).to(self.device)
        self.optimizer = torch.optim.SGD(self.classifier.parameters(), lr=0.1, momentum=0.9)
        self.generator = build_generator(build_config("cgan", num_classes=10, image_size=32, in_channels=3))
        self.generator = self.generator.to(self.device)
        mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10 normalisation
        # mode="replace", not the default "append": the batch size stays fixed, which is what
        # results/mixing_overhead.json measured (see the docstring).
        self.mix = SyntheticMix(self.generator, args.ratio, mode="replace", seed=args.seed, mean=mean, std=std,
                                autocast=args.bf16)
        sync(self.device)
        start = time.perf_counter()
        # The bank lives where the batches are, so drawing from it needs no host-device copy.
        self.pool = SyntheticPool(self.generator, args.pool_per_class, seed=args.seed + 1, refresh_every=1,
                                  device=None if self.device.type == "cpu" else self.device)
        sync(self.device)
        self.first_fill = time.perf_counter() - start
        self.pool_mix = SyntheticMix(self.pool, args.ratio, mode="replace", seed=args.seed, mean=mean, std=std)
        self.mixers = {"baseline": None, "mixed": self.mix, "pool": self.pool_mix}
        self.memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
        self.classifier = self.classifier.to(memory_format=self.memory_format)
        self.data_rng = torch.Generator(device=self.device).manual_seed(args.seed)

    def real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        size, device = self.args.batch_size, self.device
        images = torch.randn(size, 3, 32, 32, device=device, generator=self.data_rng)
        labels = torch.randint(0, 10, (size,), device=device, generator=self.data_rng)
        return images.contiguous(memory_format=self.memory_format), labels

    def step(self, images, labels, mixer: SyntheticMix | None) -> tuple[float, float]:
        """(the whole step's seconds, the mixer call's seconds)."""
        sync(self.device)
        start = time.perf_counter()
        if mixer is not None:
            images, labels = mixer(images, labels)
        sync(self.device)
        mixed = time.perf_counter()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.args.bf16):
            loss = nn.functional.cross_entropy(self.classifier(images), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        sync(self.device)
        end = time.perf_counter()
        return end - start, mixed - start

    def timed_fill(self) -> float:
        sync(self.device)
        start = time.perf_counter()
        self.pool.step_epoch()  # refresh_every=1: every call refreshes
        sync(self.device)
        return time.perf_counter() - start


def timed_rounds(bench: Bench) -> dict[str, list[float]]:
    """Every arm once a round, cycling through all six orders; the pool's refresh timed apart."""
    args = bench.args
    orders = list(itertools.permutations(ARMS))
    times: dict[str, list[float]] = {"baseline": [], "mixed": [], "pool": [], "mix_call": [], "pool_mix_call": [],
                                     "pool_fill": []}
    rounds_start = time.perf_counter()
    for i in range(args.warmup + args.steps):
        if args.max_rounds_s is not None and i > args.warmup and time.perf_counter() - rounds_start > args.max_rounds_s:
            print(f"stopping after {i - args.warmup} timed rounds (--max-rounds-s {args.max_rounds_s})", flush=True)
            break
        if args.fill_every and i >= args.warmup and (i - args.warmup) % args.fill_every == 0:
            times["pool_fill"].append(bench.timed_fill())
        # Cycle through every order, so no arm always runs right after another.
        for arm in orders[i % len(orders)]:
            total, mix_time = bench.step(*bench.real_batch(), bench.mixers[arm])
            if i >= args.warmup:
                times[arm].append(total)
                if arm != "baseline":
                    times["mix_call" if arm == "mixed" else "pool_mix_call"].append(mix_time)
        print(f"step {i}: {'warmup' if i < args.warmup else 'timed'}", flush=True)
    return times


def background_probe(bench: Bench) -> dict | None:
    """``refresh()`` then ``--probe-steps`` pool steps, against the same with the refresh in a thread."""
    args, device = bench.args, bench.device
    if args.probe_steps <= 0:
        return None
    probe = {"serial_s": [], "background_s": [], "steps": args.probe_steps}
    for r in range(args.probe_repeats):
        for background in ((False, True) if r % 2 == 0 else (True, False)):
            sync(device)
            start = time.perf_counter()
            thread = threading.Thread(target=bench.pool.refresh) if background else None
            if thread is not None:
                thread.start()
            else:
                bench.pool.refresh()
            for _ in range(args.probe_steps):
                bench.step(*bench.real_batch(), bench.pool_mix)
            if thread is not None:
                thread.join()
            sync(device)
            probe["background_s" if background else "serial_s"].append(time.perf_counter() - start)
        print(f"background probe {r}: serial {probe['serial_s'][-1]:.2f} s, "
              f"background {probe['background_s'][-1]:.2f} s", flush=True)
    serial, background = statistics.median(probe["serial_s"]), statistics.median(probe["background_s"])
    probe.update(serial_s_median=serial, background_s_median=background,
                 background_saving_percent=100.0 * (serial - background) / serial)
    return probe


def paired(times: dict, arm: str) -> float:
    """Median over rounds of arm / baseline in the same round, as a percent overhead."""
    return 100.0 * (statistics.median(a / b for a, b in zip(times[arm], times["baseline"])) - 1.0)


def paired_interval(times: dict, arm: str, seed: int, resamples: int = 2000) -> list[float]:
    """Percentile bootstrap over rounds (seeded): how far noise alone moves the paired median."""
    ratios = [a / b for a, b in zip(times[arm], times["baseline"])]
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return [100.0 * (medians[int(0.025 * resamples)] - 1.0), 100.0 * (medians[int(0.975 * resamples) - 1] - 1.0)]


def summarise(bench: Bench, times: dict, fills: list[float], probe: dict | None) -> dict:
    """The figures the JSON and the printout report."""
    args, mix, pool = bench.args, bench.mix, bench.pool
    median = {arm: statistics.median(times[arm]) for arm in ARMS}
    baseline = median["baseline"]
    fill = statistics.median(fills)
    amortised = fill / (args.epoch_steps * args.refresh_every)
    figures = {
        "baseline_step_s_median": baseline,
        "mixed_step_s_median": median["mixed"],
        "mix_call_s_median": statistics.median(times["mix_call"]),
        "mix_call_percent_of_baseline": 100.0 * statistics.median(times["mix_call"]) / baseline,
        "overhead_percent": 100.0 * (median["mixed"] - baseline) / baseline,
        "overhead_percent_paired": paired(times, "mixed"),
        "overhead_percent_paired_95ci": paired_interval(times, "mixed", args.seed),
        "synthetic_rows_per_step": mix.num_synthetic(args.batch_size),
        "timed_rounds": len(times["baseline"]),
        "pool_step_s_median": median["pool"],
        "pool_mix_call_s_median": statistics.median(times["pool_mix_call"]),
        "pool_mix_call_percent_of_baseline": 100.0 * statistics.median(times["pool_mix_call"]) / baseline,
        "pool_overhead_percent": 100.0 * (median["pool"] - baseline) / baseline,
        "pool_overhead_percent_paired": paired(times, "pool"),
        "pool_overhead_percent_paired_95ci": paired_interval(times, "pool", args.seed),
        "pool_images": len(pool),
        "pool_fill_s_median": fill,
        "pool_fill_s_first": bench.first_fill,
        "pool_fill_images_per_s": len(pool) / fill,
        "pool_fill_amortised_s_per_step": amortised,
        "pool_fill_amortised_percent": 100.0 * amortised / baseline,
        "pool_overhead_with_fill_percent": 100.0 * (median["pool"] + amortised - baseline) / baseline,
        "pool_draws_per_bank_image_per_epoch": mix.num_synthetic(args.batch_size) * args.epoch_steps / len(pool),
    }
    if probe is not None:
        figures["background_refill_saving_percent"] = probe["background_saving_percent"]
    return figures


def print_figures(args: argparse.Namespace, figures: dict, fills: list[float], probe: dict | None) -> None:
    f = figures
    print(f"baseline step {f['baseline_step_s_median']:.3f} s; SyntheticMix({args.ratio}) on the fly "
          f"{f['mixed_step_s_median']:.3f} s ({f['overhead_percent']:+.1f}%, paired {f['overhead_percent_paired']:+.1f}% "
          f"[{f['overhead_percent_paired_95ci'][0]:+.1f}, {f['overhead_percent_paired_95ci'][1]:+.1f}]), "
          f"mix call {f['mix_call_s_median']:.3f} s")
    print(f"from a pool of {f['pool_images']} images: {f['pool_step_s_median']:.3f} s ({f['pool_overhead_percent']:+.1f}%, "
          f"paired {f['pool_overhead_percent_paired']:+.1f}% [{f['pool_overhead_percent_paired_95ci'][0]:+.1f}, "
          f"{f['pool_overhead_percent_paired_95ci'][1]:+.1f}]), mix call {f['pool_mix_call_s_median']:.4f} s "
          f"({f['pool_mix_call_percent_of_baseline']:.2f}% of the baseline step)")
    print(f"pool fill {f['pool_fill_s_median']:.2f} s median of {len(fills)} ({f['pool_fill_images_per_s']:.0f} images/s), "
          f"amortised over {args.epoch_steps} steps x {args.refresh_every} epoch(s): "
          f"{f['pool_fill_amortised_s_per_step']:.4f} s/step ({f['pool_fill_amortised_percent']:.1f}%); pool step + fill "
          f"{f['pool_overhead_with_fill_percent']:+.1f}%")
    if probe is not None:
        print(f"background refill probe ({args.probe_steps} steps): serial {probe['serial_s_median']:.2f} s, "
              f"background {probe['background_s_median']:.2f} s ({probe['background_saving_percent']:+.1f}%)")


def main() -> None:
    args = parse_args()
    bench = Bench(args)
    times = timed_rounds(bench)
    probe = background_probe(bench)
    fills = [bench.first_fill, *times["pool_fill"]]
    figures = summarise(bench, times, fills, probe)
    payload = {
        "benchmark": "mixing_overhead",
        "description": ("ResNet-18 training step, 32x32, without SyntheticMix, with SyntheticMix (replace) "
                        "generating on the fly, and with SyntheticMix drawing from a SyntheticPool; interleaved"),
        "settings": vars(args),
        "figures": figures,
        "raw_seconds": {**times, "pool_fill": fills},
        "background_refill_probe": probe,
        "generator": repr(bench.generator),
        "pool": repr(bench.pool),
        "seeds": {"torch": args.seed, "data": args.seed, "mix": args.seed, "pool": args.seed + 1},
        "machine": machine(bench.device),
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "environment": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "nice": os.nice(0)},
        "command": command_line(),
        "git_commit": git_commit(),
    }
    path = write("mixing_overhead", payload)
    print_figures(args, figures, fills, probe)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
