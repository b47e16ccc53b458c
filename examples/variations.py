"""Rows made from your own images: variations of each batch's real rows through an encoder family.

Trains an ``aae`` on the embedded ``fashion-mnist-small`` dataset (500 images), then appends to
every batch rows made *from that batch's real images*: each keeps its real image's label and
moves it along directions the autoencoder learned (``vary``), towards a second image of the same
class (``interpolate``) or away from it (``extrapolate``):

    python examples/variations.py                          # interpolate, 600 generator steps
    python examples/variations.py --mode vary --strength 0.5
    python examples/variations.py --control                # the same extra rows as plain real copies

The batches here are float in [0, 1] (what ``ToTensor`` gives); ``output_range=(0, 1)`` tells
the mixer, so the made rows come back in that range. ``--control`` appends re-augmentable copies
of real rows instead (``RealRowSource``): a gain is the generator's only if it beats that.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from torch import nn

import augmentgen
from augmentgen.mixing import RealRowSource, SyntheticMix, VariationSource


def tiny_classifier(num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, num_classes),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--mode", default="interpolate", choices=["vary", "interpolate", "extrapolate"])
    parser.add_argument("--strength", type=float, default=0.5, help="vary's perturbation (code-scale units)")
    parser.add_argument("--gen-steps", type=int, default=600, help="aae training steps")
    parser.add_argument("--control", action="store_true", help="append copies of real rows instead")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train = augmentgen.load_data("fashion-mnist-small", split="train")
    test = augmentgen.load_data("fashion-mnist-small", split="test")
    if args.control:
        source = RealRowSource(train.num_classes, train.image_shape, class_names=train.class_names)
    else:
        with tempfile.TemporaryDirectory() as run:
            generator = augmentgen.train("aae", train, run, steps=args.gen_steps, seed=args.seed,
                                         sample_every=0, checkpoint_every=0)
        source = VariationSource(generator, args.mode, strength=args.strength)

    torch.manual_seed(args.seed)
    classifier = tiny_classifier(train.num_classes)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=3e-3)
    loader = train.loader(batch_size=64, seed=args.seed)  # uint8 (B, 1, 28, 28) batches

    # ---- augmentgen: 32 rows made from each batch's 64 real rows, appended to it
    mix = SyntheticMix(source, ratio=0.5, mode="append", output_range=(0, 1), seed=args.seed)
    print(mix)

    seen = 0
    for epoch in range(args.epochs):
        classifier.train()
        for images, labels in loader:
            images = images.float().div(255)  # what ToTensor gives: [0, 1]
            images, labels, made = mix(images, labels, return_mask=True)  # <-- augmentgen
            loss = nn.functional.cross_entropy(classifier(images.sub(0.5).div(0.5)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += made.sum()
        print(f"epoch {epoch}: loss {loss.item():.3f}")

    classifier.eval()
    with torch.no_grad():
        logits = classifier(test.images.float().div(255).sub(0.5).div(0.5))
    print(f"rows made from real rows: {int(seen)}")
    print(f"test accuracy: {(logits.argmax(1) == test.labels).float().mean().item():.3f}")


if __name__ == "__main__":
    main()
