"""Sampling speed of the default ``ddpm`` against the default ``cgan``, side by side in one process.

Both models are built with their default configs (10 classes, 28x28 gray) and seeded random
weights: the cost of sampling does not depend on training. Each gets one small warm-up call;
then ``generator.sample`` of ``--num-images`` labels (classes in turn) with ``batch_size
--batch-size`` and a seeded ``torch.Generator`` is timed with ``time.perf_counter``. The ``cgan``
is timed before and after the ``ddpm`` (it takes well under a second), so a change in background
load during the run shows as a gap between its two figures. The ``ddpm`` runs its config's
sampler: ``sampling_steps`` DPM-Solver++ steps, each one UNet forward of the conditional and
unconditional batch together (``guidance_scale`` != 1), i.e. 2 x batch images per forward.

Writes ``benchmarks/results/ddpm_sampling_speed.json`` (atomically) with the figures, the
settings, the machine, the torch and diffusers versions, the git commit and the command. Usage
(the CPU is shared with other jobs, so niced and on one thread)::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/ddpm_speed.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from harness import RESULTS, git_commit, machine, write_json

from augmentgen.models import build_config, build_generator


def time_sampling(generator, labels: torch.Tensor, batch_size: int, seed: int) -> dict:
    """Seconds and images/s of one seeded ``sample`` call over ``labels``."""
    rng = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    images = generator.sample(labels, generator=rng, batch_size=batch_size)
    seconds = time.perf_counter() - start
    assert images.shape[0] == len(labels) and torch.isfinite(images).all()
    return {"seconds": round(seconds, 3), "images_per_second": round(len(labels) / seconds, 2)}


def uncommitted_changes() -> bool | None:
    """Whether the checkout differs from its commit (the ddpm family may not be committed yet)."""
    try:
        return bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                   text=True, check=True, cwd=Path(__file__).resolve().parent).stdout.strip()
                    or subprocess.run(["git", "ls-files", "--error-unmatch", "augmentgen/families/ddpm.py"],
                                      capture_output=True, cwd=Path(__file__).resolve().parents[1]).returncode)
    except (OSError, subprocess.CalledProcessError):
        return None


def build(name: str, seed: int):
    torch.manual_seed(seed)  # the same random weights on every run
    return build_generator(build_config(name, num_classes=10)).eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "ddpm_sampling_speed.json")
    args = parser.parse_args(argv)

    import diffusers  # already imported by building the ddpm; here for its version

    labels = torch.arange(args.num_images) % 10
    ddpm, cgan = build("ddpm", args.seed), build("cgan", args.seed)
    for generator in (cgan, ddpm):  # warm-up: first-call allocations and kernel selection
        generator.sample(labels[:8], generator=torch.Generator().manual_seed(args.seed))
    results = {"cgan_before": time_sampling(cgan, labels, args.batch_size, args.seed),
               "ddpm": time_sampling(ddpm, labels, args.batch_size, args.seed),
               "cgan_after": time_sampling(cgan, labels, args.batch_size, args.seed)}
    cgan_best = max(results["cgan_before"]["images_per_second"], results["cgan_after"]["images_per_second"])
    results["cgan_over_ddpm_speed_ratio"] = round(cgan_best / results["ddpm"]["images_per_second"], 1)

    c = ddpm.config
    payload = {
        "benchmark": "ddpm vs cgan sampling speed (default configs, random weights)",
        "results": results,
        "settings": {
            "num_images": args.num_images, "batch_size": args.batch_size, "seed": args.seed, "dtype": "float32",
            "image_shape": list(ddpm.image_shape), "num_classes": 10,
            "ddpm": {"sampling_steps": c.sampling_steps, "guidance_scale": c.guidance_scale,
                     "solver_order": c.solver_order, "block_out_channels": list(c.block_out_channels),
                     "layers_per_block": c.layers_per_block, "unet_forwards": c.sampling_steps,
                     "images_per_forward": 2 * args.batch_size if c.guidance_scale not in (0, 1) else args.batch_size,
                     "parameters": sum(p.numel() for p in ddpm.parameters())},
            "cgan": {"parameters": sum(p.numel() for p in cgan.parameters())},
        },
        "machine": machine("cpu"),
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__},
        "git_commit": git_commit(),
        "uncommitted_changes": uncommitted_changes(),
        "command": " ".join(["python", *sys.argv]),
    }
    write_json(args.out, payload)
    print(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
