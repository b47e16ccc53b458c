"""Training-step overhead of ``SyntheticMix(ratio=0.5)`` on a ResNet-18 classifier step.

One run times the same ResNet-18 (torchvision, ``num_classes=10``, random init) training step at
32x32, batch 256, without and with ``SyntheticMix(ratio=0.5, mode="replace")`` (same batch
size, so the difference is the cost of making 128 synthetic images and writing them into the
batch). The two variants alternate step by step, so background load hits both alike; each
reports the median of ``--steps`` timed steps after ``--warmup`` untimed ones. The generator is
the default 32x32 RGB ``cgan`` (random weights: speed does not depend on training).

    nice -n 10 python benchmarks/mixing_overhead.py --warmup 5 --steps 10
    python benchmarks/mixing_overhead.py --device cuda --warmup 20 --steps 100   # on a GPU

Writes benchmarks/results/mixing_overhead.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision
from harness import git_commit, machine, sync, write
from torch import nn

from augmentgen.mixing import SyntheticMix
from augmentgen.models import build_config, build_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the classifier and generator")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(args.seed)

    classifier = torchvision.models.resnet18(num_classes=10).to(device)
    optimizer = torch.optim.SGD(classifier.parameters(), lr=0.1, momentum=0.9)
    generator = build_generator(build_config("cgan", num_classes=10, image_size=32, in_channels=3)).to(device)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10 normalisation
    mix = SyntheticMix(generator, args.ratio, seed=args.seed, mean=mean, std=std, autocast=args.bf16)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    classifier = classifier.to(memory_format=memory_format)
    data_rng = torch.Generator(device=device).manual_seed(args.seed)

    def real_batch():
        images = torch.randn(args.batch_size, 3, 32, 32, device=device, generator=data_rng)
        labels = torch.randint(0, 10, (args.batch_size,), device=device, generator=data_rng)
        return images.contiguous(memory_format=memory_format), labels

    def step(images, labels, mixing: bool) -> tuple[float, float]:
        sync(device)
        start = time.perf_counter()
        if mixing:
            images, labels = mix(images, labels)
        sync(device)
        mixed = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = nn.functional.cross_entropy(classifier(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(device)
        end = time.perf_counter()
        return end - start, mixed - start

    times = {"baseline": [], "mixed": [], "mix_call": []}
    for i in range(args.warmup + args.steps):
        # Alternate the order too, so neither variant always runs right after the other.
        order = (False, True) if i % 2 == 0 else (True, False)
        for mixing in order:
            total, mix_time = step(*real_batch(), mixing)
            if i >= args.warmup:
                times["mixed" if mixing else "baseline"].append(total)
                if mixing:
                    times["mix_call"].append(mix_time)
        print(f"step {i}: {'warmup' if i < args.warmup else 'timed'}", flush=True)

    baseline, mixed = statistics.median(times["baseline"]), statistics.median(times["mixed"])
    figures = {
        "baseline_step_s_median": baseline,
        "mixed_step_s_median": mixed,
        "mix_call_s_median": statistics.median(times["mix_call"]),
        "overhead_percent": 100.0 * (mixed - baseline) / baseline,
        "synthetic_rows_per_step": mix.num_synthetic(args.batch_size),
    }
    payload = {
        "benchmark": "mixing_overhead",
        "description": "ResNet-18 training step, 32x32, with vs without SyntheticMix (replace), interleaved",
        "settings": vars(args),
        "figures": figures,
        "raw_seconds": times,
        "generator": repr(generator),
        "seeds": {"torch": args.seed, "data": args.seed, "mix": args.seed},
        "machine": machine(device),
        "torch_version": torch.__version__,
        "git_commit": git_commit(),
    }
    path = write("mixing_overhead", payload)
    print(f"baseline step {baseline:.3f} s, with SyntheticMix({args.ratio}) {mixed:.3f} s "
          f"(+{figures['overhead_percent']:.1f}%), mix call alone {figures['mix_call_s_median']:.3f} s")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
