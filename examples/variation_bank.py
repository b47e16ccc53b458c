"""A bank of variations of your training images, made once, mixed into every batch.

Trains an ``aae`` on the embedded ``fashion-mnist-small`` dataset (500 images), then runs it once
over the whole training set in batches: ``per_image`` variations of each image, kept per class in
a :class:`~augmentgen.mixing.SyntheticPool`. The training loop only indexes that bank, so the
encoder never runs in the step (what makes slow sources, such as a ``ddpm``'s SDEdit, usable):

    python examples/variation_bank.py                              # vary, 4 per image, 600 aae steps
    python examples/variation_bank.py --mode interpolate --per-image 8
    python examples/variation_bank.py --refresh-every 1            # new variations every epoch

Each row keeps its real image's label; ``pool.source_index`` names that image (to audit the bank
or leave images out) and ``pool.variation`` records how the rows were made.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from torch import nn

import augmentgen
from augmentgen.mixing import SyntheticPool, VariationSource, augment_loader


def tiny_classifier(num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, num_classes),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--mode", default="vary", choices=["vary", "interpolate", "extrapolate"])
    parser.add_argument("--strength", type=float, default=0.5, help="vary's perturbation (code-scale units)")
    parser.add_argument("--per-image", type=int, default=4, help="variations per image (largest class)")
    parser.add_argument("--refresh-every", type=int, default=None, help="new variations every N epochs")
    parser.add_argument("--gen-steps", type=int, default=600, help="aae training steps")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train = augmentgen.load_data("fashion-mnist-small", split="train")
    test = augmentgen.load_data("fashion-mnist-small", split="test")
    with tempfile.TemporaryDirectory() as run:
        generator = augmentgen.train("aae", train, run, steps=args.gen_steps, seed=args.seed,
                                     sample_every=0, checkpoint_every=0)

    # ---- augmentgen: the bank, made once in batches on the generator's device
    source = VariationSource(generator, args.mode, strength=args.strength)
    pool = SyntheticPool.from_variations(source, train.images, train.labels, per_image=args.per_image,
                                         seed=args.seed, refresh_every=args.refresh_every)
    print(pool)
    print(f"real images behind the bank: {pool.source_index.unique().numel()} of {len(train)}")

    torch.manual_seed(args.seed)
    classifier = tiny_classifier(train.num_classes)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=3e-3)
    loader = train.loader(batch_size=64, seed=args.seed)  # uint8 (B, 1, 28, 28) batches
    # ---- augmentgen: 32 bank rows of the batch's classes appended to each batch of 64
    mixed = augment_loader(loader, pool, ratio=0.5, mode="append", seed=args.seed)

    for epoch in range(args.epochs):
        classifier.train()
        rows = 0
        for images, labels in mixed:  # uint8 batches get the bank's bytes
            images = images.float().div(255)  # what ToTensor gives: [0, 1]
            loss = nn.functional.cross_entropy(classifier(images.sub(0.5).div(0.5)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            rows += len(labels)
        pool.step_epoch()  # new variations every --refresh-every epochs (none by default)
        print(f"epoch {epoch}: loss {loss.item():.3f}, rows {rows} ({len(loader) * 64} real)")

    classifier.eval()
    with torch.no_grad():
        logits = classifier(test.images.float().div(255).sub(0.5).div(0.5))
    print(f"test accuracy: {(logits.argmax(1) == test.labels).float().mean().item():.3f}")


if __name__ == "__main__":
    main()
