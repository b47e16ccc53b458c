"""A Hugging Face ``datasets`` pipeline, plus the one line that adds synthetic rows.

``add_synthetic`` samples images of every class with the dataset's own features (Image column,
ClassLabel) and a ``synthetic`` flag, and concatenates them; ``per_class="balance"`` instead
tops every class up to the majority count. Runs offline on the embedded ``fashion-mnist-small``:

    python examples/hf_datasets_pipeline.py [--model DIR]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import augmentgen  # noqa: E402
from augmentgen.mixing.hf import add_synthetic  # noqa: E402
from augmentgen.models import build_config, build_generator  # noqa: E402


def as_hf_dataset(data: augmentgen.LabelledImages) -> datasets.Dataset:
    """The embedded data in the form users usually have: an Image column and a ClassLabel."""
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=data.class_names)})
    return datasets.Dataset.from_dict(
        {"image": list(data.images[:, 0].numpy()), "label": data.labels.tolist()}, features=features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="folder of a saved generator (default: untrained tiny cgan)")
    parser.add_argument("--per-class", default="20", help="synthetic images per class, or 'balance'")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    train_ds = as_hf_dataset(augmentgen.load_data("fashion-mnist-small", split="train"))
    test = augmentgen.load_data("fashion-mnist-small", split="test")
    if args.model:
        generator = augmentgen.from_pretrained(args.model)
    else:
        names = train_ds.features["label"].names
        generator = build_generator(build_config("cgan", num_classes=len(names), generator_width=8,
                                                 latent_dim=16, class_names=names))
    per_class = args.per_class if args.per_class == "balance" else int(args.per_class)

    train_ds = add_synthetic(train_ds, generator, per_class=per_class, seed=args.seed)  # <-- augmentgen

    print(f"rows: {len(train_ds)} ({sum(train_ds['synthetic'])} synthetic)")
    loader = torch.utils.data.DataLoader(train_ds.with_format("torch"), batch_size=64, shuffle=True)
    classifier = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, len(generator.class_names)),
    )
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=3e-3)
    for epoch in range(args.epochs):
        for batch in loader:
            images = batch["image"].float().div(255).sub(0.5).div(0.5)  # uint8 CHW from the Image column
            if images.ndim == 3:  # grayscale decodes to (B, H, W)
                images = images[:, None]
            loss = nn.functional.cross_entropy(classifier(images), batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.3f}")

    with torch.no_grad():
        logits = classifier(test.images.float().div(255).sub(0.5).div(0.5))
    print(f"test accuracy: {(logits.argmax(1) == test.labels).float().mean().item():.3f}")


if __name__ == "__main__":
    main()
