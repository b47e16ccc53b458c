"""The demo behind `make demo`: train a conditional GAN on the embedded dataset.

It trains on `fashion-mnist-small` (500 Fashion-MNIST images shipped with augmentgen), writes a
sample grid with one row per class, and says where the weights went.

    python examples/demo.py [--steps N] [--out runs/demo]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import augmentgen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    out = Path(args.out)
    resume = (out / "checkpoints").is_dir() and not (out / "model.safetensors").exists()
    if (out / "model.safetensors").exists():
        print(f"{out} already holds a trained generator; delete it to train again")
    else:
        start = time.perf_counter()
        augmentgen.train("cgan", "fashion-mnist-small", out, steps=args.steps, seed=args.seed,
                         sample_every=500, checkpoint_every=500, resume=resume)
        print(f"trained in {time.perf_counter() - start:.0f} s")
    generator = augmentgen.from_pretrained(out)
    print(f"generator: {generator}")
    print(f"weights:   {out / 'model.safetensors'}")
    print(f"samples:   {out / 'samples.png'} (one row per class)")


if __name__ == "__main__":
    main()
