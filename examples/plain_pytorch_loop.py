"""A plain PyTorch training loop, plus the lines that add synthetic data.

Runs on the embedded ``fashion-mnist-small`` dataset (500 training images) in seconds on a CPU,
with the shipped zoo generator ``augmentgen/cgan-fashion-mnist`` (offline):

    python examples/plain_pytorch_loop.py                          # the zoo generator
    python examples/plain_pytorch_loop.py --model DIR              # a generator saved by `augmentgen train`
    python examples/plain_pytorch_loop.py --synthetic-weight 0.5   # synthetic rows count half in the loss

Synthetic rows are appended to each batch (``mode="append"``), so the classifier sees every real
image as often as without them; ``return_mask=True`` says which rows are synthetic, for a
weighted loss. With a teacher classifier trained on the real data, ``SyntheticMix(...,
teacher=teacher, soft_labels=True)`` returns (B, K) soft targets instead, which the same
``cross_entropy`` / ``weighted_cross_entropy`` line takes unchanged.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import augmentgen
from augmentgen.mixing import SyntheticMix, weighted_cross_entropy


def tiny_classifier(num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, num_classes),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="augmentgen/cgan-fashion-mnist",
                        help="folder or zoo id of a saved generator")
    parser.add_argument("--synthetic-weight", type=float, default=1.0, help="loss weight of synthetic rows")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)  # seeds the classifier's and the untrained generator's weights

    train = augmentgen.load_data("fashion-mnist-small", split="train")
    test = augmentgen.load_data("fashion-mnist-small", split="test")
    generator = augmentgen.from_pretrained(args.model)

    classifier = tiny_classifier(train.num_classes)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=3e-3)
    loader = train.loader(batch_size=64, seed=args.seed)  # uint8 (B, 1, 28, 28) batches

    # ---- augmentgen: 32 generated images of the batch's classes appended to every 64 real ones
    mix = SyntheticMix(generator, ratio=0.5, mode="append", seed=args.seed)

    seen_synthetic = 0
    for epoch in range(args.epochs):
        classifier.train()
        for images, labels in loader:
            images, labels, synthetic = mix(images, labels, return_mask=True)  # <-- augmentgen
            # The mixed batch is uint8 like the real one, so the usual preprocessing still applies.
            images = images.float().div(255).sub(0.5).div(0.5)
            loss = weighted_cross_entropy(classifier(images), labels, synthetic, args.synthetic_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen_synthetic += synthetic.sum()  # stays on the device: no sync per step
        print(f"epoch {epoch}: loss {loss.item():.3f}")

    classifier.eval()
    with torch.no_grad():
        logits = classifier(test.images.float().div(255).sub(0.5).div(0.5))
    accuracy = (logits.argmax(1) == test.labels).float().mean().item()
    print(f"synthetic images seen: {int(seen_synthetic)}")
    print(f"test accuracy: {accuracy:.3f}")


if __name__ == "__main__":
    main()
