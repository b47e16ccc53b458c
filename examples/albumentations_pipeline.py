"""An albumentations pipeline, plus the one transform that adds synthetic data.

Per-sample augmentation runs in DataLoader workers on numpy images; the synthetic images come
from a :class:`augmentgen.SyntheticPool` (sampled once, in large batches, kept in shared memory),
so no model runs in the workers. Runs on the embedded ``fashion-mnist-small`` in seconds:

    python examples/albumentations_pipeline.py [--model DIR] [--num-workers 2]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

import augmentgen  # noqa: E402
from augmentgen.mixing import SyntheticPool  # noqa: E402
from augmentgen.models import build_config, build_generator  # noqa: E402
from augmentgen.transforms import AlbumentationsReplaceWithSynthetic  # noqa: E402


class AlbumentationsDataset(Dataset):
    """(image HWC uint8 numpy, label) pairs through an ``A.Compose`` that sees the label."""

    def __init__(self, data: augmentgen.LabelledImages, transform: A.Compose):
        self.images = data.images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
        self.labels = data.labels.numpy()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        out = self.transform(image=self.images[i], label=int(self.labels[i]))
        image = torch.from_numpy(np.ascontiguousarray(out["image"])).permute(2, 0, 1)
        return image, out["label"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="folder of a saved generator (default: untrained tiny cgan)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    train = augmentgen.load_data("fashion-mnist-small", split="train")
    test = augmentgen.load_data("fashion-mnist-small", split="test")
    if args.model:
        generator = augmentgen.from_pretrained(args.model)
    else:
        generator = build_generator(build_config("cgan", num_classes=train.num_classes, generator_width=8,
                                                 latent_dim=16, class_names=train.class_names))
    pool = SyntheticPool(generator, per_class=64, seed=args.seed)  # 640 images, uint8, shared memory

    transform = A.Compose([
        AlbumentationsReplaceWithSynthetic(pool, p=0.3),  # <-- augmentgen: the one added line
        A.HorizontalFlip(p=0.5),
        A.Affine(translate_px=(-2, 2), p=0.5),
        A.Normalize(mean=0.5, std=0.5),
    ], seed=args.seed)
    loader = DataLoader(AlbumentationsDataset(train, transform), batch_size=64, shuffle=True,
                        num_workers=args.num_workers)

    classifier = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, train.num_classes),
    )
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=3e-3)
    for epoch in range(args.epochs):
        for images, labels in loader:
            loss = nn.functional.cross_entropy(classifier(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.3f}")

    with torch.no_grad():
        logits = classifier(test.images.float().div(255).sub(0.5).div(0.5))
    print(f"test accuracy: {(logits.argmax(1) == test.labels).float().mean().item():.3f}")


if __name__ == "__main__":
    main()
