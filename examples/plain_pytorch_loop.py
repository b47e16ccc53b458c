"""A plain PyTorch training loop, plus the one line that adds synthetic data.

Runs on the embedded ``fashion-mnist-small`` dataset (500 training images) in seconds on a CPU:

    python examples/plain_pytorch_loop.py                 # an untrained tiny generator (plumbing only)
    python examples/plain_pytorch_loop.py --model DIR     # a generator saved by `augmentgen train`
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import augmentgen
from augmentgen.mixing import augment_loader
from augmentgen.models import build_config, build_generator


def tiny_classifier(num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, num_classes),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="folder of a saved generator (default: untrained tiny cgan)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)  # seeds the classifier's and the untrained generator's weights

    train = augmentgen.load_data("fashion-mnist-small", split="train")
    test = augmentgen.load_data("fashion-mnist-small", split="test")
    if args.model:
        generator = augmentgen.from_pretrained(args.model)
    else:
        # An untrained generator shows the plumbing; train one with `augmentgen train` for real gains.
        generator = build_generator(build_config("cgan", num_classes=train.num_classes, generator_width=8,
                                                 latent_dim=16, class_names=train.class_names))

    classifier = tiny_classifier(train.num_classes)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=3e-3)
    loader = train.loader(batch_size=64, seed=args.seed)  # uint8 (B, 1, 28, 28) batches

    # ---- the one line that adds synthetic data: half of every batch becomes generated images
    loader = augment_loader(loader, generator, ratio=0.5, seed=args.seed)  # <-- augmentgen

    seen_synthetic = 0
    for epoch in range(args.epochs):
        classifier.train()
        for images, labels in loader:
            # The mixed batch is uint8 like the real one, so the usual preprocessing still applies.
            images = images.float().div(255).sub(0.5).div(0.5)
            loss = nn.functional.cross_entropy(classifier(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen_synthetic += loader.mix.num_synthetic(len(labels))
        print(f"epoch {epoch}: loss {loss.item():.3f}")

    classifier.eval()
    with torch.no_grad():
        logits = classifier(test.images.float().div(255).sub(0.5).div(0.5))
    accuracy = (logits.argmax(1) == test.labels).float().mean().item()
    print(f"synthetic images seen: {seen_synthetic}")
    print(f"test accuracy: {accuracy:.3f}")


if __name__ == "__main__":
    main()
