"""Long-tailed data: top the rare classes up with rows made from their own images.

Takes a long-tailed subset of the embedded ``fashion-mnist-small`` (50 images of the commonest
class down to 5 of the rarest: ``load_data(..., imbalance=10)``), trains an ``aae`` on it, and
appends to every batch rows made from that batch's real images of the classes furthest below the
commonest one so far (``balance="inverse-frequency"``): each row keeps its real image's label and
is moved towards a second image of its class in the autoencoder's code (``interpolate``). The
rare classes are seen as often as the common ones, never as copies.

    python examples/long_tailed.py                       # aae rows, 600 generator steps
    python examples/long_tailed.py --source pixel-mix    # the same rows made by same-class MixUp in pixels

On the benchmark suite's long-tailed Fashion-MNIST cell (500 down to 5 per class, 5 seeds) rows
like these added about a point over the best baseline and no more than same-class pixel MixUp,
which needs no generator (``benchmarks/README.md``): try ``--source pixel-mix`` on your data
too, and ``augmentgen eval`` to choose on a validation split. This script is one seed at toy
scale: it shows the calls, not a gain.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from torch import nn

import augmentgen
from augmentgen.mixing import PixelMixSource, SyntheticMix, VariationSource


def tiny_classifier(num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, num_classes),
    )


def row_source(name: str, train, gen_steps: int, seed: int):
    """The rows' maker: an aae's same-class interpolations, or same-class MixUp in pixels."""
    if name == "pixel-mix":
        return PixelMixSource(train.num_classes, train.image_shape, class_names=train.class_names)
    with tempfile.TemporaryDirectory() as run:
        generator = augmentgen.train("aae", train, run, steps=gen_steps, seed=seed, sample_every=0,
                                     checkpoint_every=0)
    return VariationSource(generator, "interpolate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--source", default="aae", choices=["aae", "pixel-mix"])
    parser.add_argument("--imbalance", type=float, default=10.0, help="commonest / rarest class size")
    parser.add_argument("--gen-steps", type=int, default=600, help="aae training steps")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train = augmentgen.load_data("fashion-mnist-small", imbalance=args.imbalance, seed=args.seed)
    test = augmentgen.load_data("fashion-mnist-small", split="test")
    print(f"training images per class: {train.class_counts}")
    source = row_source(args.source, train, args.gen_steps, args.seed)

    torch.manual_seed(args.seed)
    classifier = tiny_classifier(train.num_classes)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=3e-3)
    loader = train.loader(batch_size=64, seed=args.seed)  # uint8 (B, 1, 28, 28) batches

    # ---- augmentgen: 32 rows a batch, given to the classes furthest below the commonest so far
    mix = SyntheticMix(source, ratio=0.5, mode="append", balance="inverse-frequency", output_range=(0, 1),
                       seed=args.seed)
    print(mix)
    made_per_class = torch.zeros(train.num_classes, dtype=torch.long)
    for epoch in range(args.epochs):
        classifier.train()
        for images, labels in loader:
            images = images.float().div(255)  # what ToTensor gives: [0, 1]
            images, labels, made = mix(images, labels, return_mask=True)  # <-- augmentgen
            made_per_class += torch.bincount(labels[made], minlength=train.num_classes)
            loss = nn.functional.cross_entropy(classifier(images.sub(0.5).div(0.5)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.3f}")

    classifier.eval()
    with torch.no_grad():
        predicted = classifier(test.images.float().div(255).sub(0.5).div(0.5)).argmax(1)
    rare = sorted(range(train.num_classes), key=lambda c: train.class_counts[c])[:5]
    correct = predicted == test.labels
    rare_rows = torch.isin(test.labels, torch.tensor(rare))
    print(f"rows made per class: {made_per_class.tolist()} (the rarest five: {[train.class_names[c] for c in rare]})")
    print(f"test accuracy: {correct.float().mean().item():.3f}; on the rarest five classes: "
          f"{correct[rare_rows].float().mean().item():.3f}")


if __name__ == "__main__":
    main()
