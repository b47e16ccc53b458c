"""How fast ``SyntheticPool`` fills its bank (images/s) for the default 28x28 and 32x32 generators.

Times ``pool.refresh()`` (sample ``per_class`` x 10 classes in batches of ``--batch-size``,
convert to uint8, write into the shared-memory bank) and reports the median of ``--repeats``
refreshes after one untimed fill. Generators are the default ``cgan`` configs with random weights.

    nice -n 10 python benchmarks/pool_fill_rate.py --per-class 128 --repeats 3
    python benchmarks/pool_fill_rate.py --device cuda --per-class 1024       # on a GPU

Writes benchmarks/results/pool_fill_rate.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from harness import git_commit, machine, sync, write

from augmentgen.mixing import SyntheticPool
from augmentgen.models import build_config, build_generator

CONFIGS = {"28x28x1": {"image_size": 28, "in_channels": 1}, "32x32x3": {"image_size": 32, "in_channels": 3}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--per-class", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    figures = {}
    for name, overrides in CONFIGS.items():
        torch.manual_seed(args.seed)
        generator = build_generator(build_config("cgan", num_classes=10, **overrides)).to(device)
        pool = SyntheticPool(generator, per_class=args.per_class, batch_size=args.batch_size, seed=args.seed)
        seconds = []
        for _ in range(args.repeats):
            sync(device)
            start = time.perf_counter()
            pool.refresh()
            sync(device)
            seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        figures[name] = {"images": len(pool), "refresh_s_median": median, "images_per_s": len(pool) / median,
                         "raw_seconds": seconds, "generator": repr(generator),
                         "bank_mib": pool.images.numel() / 2**20}
        print(f"{name}: {len(pool)} images in {median:.2f} s -> {len(pool) / median:,.0f} images/s", flush=True)
    payload = {
        "benchmark": "pool_fill_rate",
        "settings": vars(args),
        "figures": figures,
        "seeds": {"torch": args.seed, "pool": args.seed},
        "machine": machine(device),
        "torch_version": torch.__version__,
        "git_commit": git_commit(),
    }
    print(f"wrote {write('pool_fill_rate', payload)}")


if __name__ == "__main__":
    main()
