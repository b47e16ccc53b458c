"""Model cards: the README.md that :func:`~augmentgen.hub.save_pretrained` writes beside the weights.

The card states what the generator is (family, classes, image shape), what it was trained on and
how (steps, time, the exact command), and how good it measurably is. Figures appear only when
they were passed in or found in the trainer's ``training.json``; the card never invents one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData, constants

from ..errors import ConfigError
from ..models.base import ConditionalGenerator

CARD_NAME = constants.REPOCARD_NAME  # README.md
# huggingface_hub writes the YAML front matter in place of {{ card_data }}; the Markdown is ours.
CARD_TEMPLATE = "---\n{{ card_data }}\n---\n\n{{ body }}"
TAGS = ["augmentgen", "generative-data-augmentation", "conditional-image-generation"]
DEFAULT_LICENSE = "apache-2.0"

# Built-in dataset names -> their Hugging Face Hub dataset ids (for the card's `datasets:` metadata).
HUB_DATASETS = {
    "mnist": "ylecun/mnist",
    "fashion-mnist": "zalando-datasets/fashion_mnist",
    "fashion-mnist-small": "zalando-datasets/fashion_mnist",
    "cifar10": "uoft-cs/cifar10",
}

# What each known metric means, so a number in the card is never left unexplained.
METRIC_DESCRIPTIONS = {
    "class_consistency": "accuracy of a small CNN classifier trained on the real training set, on "
                         "generated images labelled with the class they were asked for (higher is better; "
                         "says nothing about diversity)",
    "classifier_real_test_accuracy": "the same classifier's accuracy on the real test set (the ceiling "
                                     "to read class consistency against)",
    "cas": "classification accuracy score: a classifier trained on generated images only, tested on "
           "real test images (higher is better)",
    "downstream_gain": "test accuracy gained by a classifier when generated images are mixed into its "
                       "training data, in percentage points",
    "fid": "Fréchet distance between real and generated images in the feature space of augmentgen's "
           "feature extractor (lower is better; not comparable to Inception FID)",
    "fid_real_floor": "the same distance between two sets of real images of the same size: the lowest FID "
                      "to expect with this many samples and this feature extractor",
}


def card_metadata(generator: ConditionalGenerator, *, dataset: str | None, license: str,
                  description: str | None, tags: list[str] | None = None) -> ModelCardData:
    """The YAML front matter: library, licence, tags, dataset ids and a one-line description."""
    extra = {"description": description} if description else {}
    return ModelCardData(
        library_name="augmentgen",
        license=license,
        tags=list(dict.fromkeys([*TAGS, generator.family, *(tags or [])])),
        datasets=[HUB_DATASETS[dataset]] if dataset in HUB_DATASETS else None,
        **extra,
    )


def render_model_card(
    generator: ConditionalGenerator,
    *,
    name: str | None = None,
    dataset: str | None = None,
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    description: str | None = None,
    grid: str | None = None,
    license: str = DEFAULT_LICENSE,
    repo_id: str | None = None,
    tags: list[str] | None = None,
) -> str:
    """The model card of ``generator`` as Markdown with YAML front matter.

    Args:
        generator: the generator the card describes.
        name: the card's title (defaults to ``"<family> generator"``).
        dataset: the dataset it was trained on (a built-in name or free text).
        metrics: measured figures, ``{name: value}``; known names (``class_consistency``, ``cas``,
            ``downstream_gain``, ``fid``) are explained in the card. Keys starting with ``_`` are
            notes about how they were measured (e.g. ``_samples_per_class``).
        training: the trainer's ``training.json`` contents (steps, train_seconds, command, ...).
        description: one line saying what this generator is.
        grid: file name of the sample grid image next to the card.
        license: an SPDX-style licence id for the metadata.
        repo_id: how users load it (``from_pretrained(repo_id)``); defaults to the folder.
        tags: extra tags besides ``augmentgen`` and ``generative-data-augmentation``.
    """
    _check_card_arguments(metrics=metrics, training=training, tags=tags)
    metrics = dict(metrics or {})
    training = dict(training or {})
    meta = card_metadata(generator, dataset=dataset, license=license, description=description, tags=tags)
    c, h, w = generator.image_shape
    title = name or f"{generator.family} generator"
    n_params = sum(p.numel() for p in generator.parameters())
    lines = [
        f"# {title}", "",
        description or f"A class-conditional `{generator.family}` image generator made with augmentgen.", "",
        "## Model", "",
        f"- Family: `{generator.family}`",
        f"- Image shape (C, H, W): ({c}, {h}, {w}), pixel values in [-1, 1]",
        f"- Classes ({generator.num_classes}): " + ", ".join(f"`{n}`" for n in generator.class_names),
        f"- Parameters: {n_params:,}",
    ]
    if dataset:
        lines.append(f"- Training data: {training.get('data', dataset)}")
    lines += ["", "## Usage", "", "```python", "import augmentgen", "",
              f'generator = augmentgen.from_pretrained("{repo_id or "path/to/this/folder"}")',
              "images, labels = generator.sample_per_class(100)  # (1000, C, H, W) in [-1, 1] for 10 classes",
              "```", ""]
    lines += _training_section(training)
    lines += _metrics_section(metrics)
    if grid:
        lines += ["## Samples", "", f"One row per class, seed 0: ![samples]({grid})", ""]
    lines += ["## Licence", "", f"`{license}` for the weights and this card. The training data keeps its own licence.", ""]
    return str(ModelCard.from_template(meta, template_str=CARD_TEMPLATE, body="\n".join(lines)))


def _check_card_arguments(*, metrics: Any, training: Any, tags: Any) -> None:
    """The card's structured arguments, before anything is written: a string of tags would be split into
    one tag per letter, and a list of metrics has no names to show."""
    if isinstance(tags, str):
        raise ConfigError(f"tags must be a list of strings, got the string {tags!r}; pass tags=[{tags!r}]")
    if not (tags is None or (isinstance(tags, (list, tuple)) and all(isinstance(t, str) for t in tags))):
        raise ConfigError(f"tags must be a list of strings, got {tags!r:.80}; e.g. tags=['mnist', 'small']")
    if not (metrics is None or isinstance(metrics, Mapping)):
        raise ConfigError(f"metrics must be a {{name: value}} dict, got the {type(metrics).__name__} "
                          f"{metrics!r:.80}; e.g. metrics={{'class_consistency': 0.93}}")
    if not (training is None or isinstance(training, Mapping)):
        raise ConfigError(f"training must be a dict (the trainer's training.json), got the "
                          f"{type(training).__name__} {training!r:.80}; or leave it out")


def _training_section(training: dict[str, Any]) -> list[str]:
    if not training:
        return ["## Training", "", "Not recorded.", ""]
    out = ["## Training", ""]
    cfg = training.get("training_config", {})
    if "steps" in training:
        batch = cfg.get("batch_size")
        out.append(f"- Steps: {training['steps']}" + (f" at batch size {batch}" if batch else ""))
    if "train_seconds" in training:
        secs = float(training["train_seconds"])
        out.append(f"- Training time: {secs:.0f} s ({secs / 60:.1f} min)"
                   + (f" on {training['machine']}" if training.get("machine") else ""))
    if "num_processes" in training:
        out.append(f"- Processes: {training['num_processes']}")
    if cfg.get("seed") is not None:
        out.append(f"- Seed: {cfg['seed']}")
    if training.get("command"):
        out += ["", "Command:", "", "```bash", str(training["command"]), "```"]
    out.append("")
    return out


def _metrics_section(metrics: dict[str, Any]) -> list[str]:
    figures = {k: v for k, v in metrics.items() if not k.startswith("_")}
    if not figures:
        return ["## Measured quality", "", "Not measured yet.", ""]
    out = ["## Measured quality", "", "| metric | value | what it is |", "|---|---|---|"]
    for key, value in figures.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        out.append(f"| {key} | {shown} | {METRIC_DESCRIPTIONS.get(key, '')} |")
    notes = {k[1:]: v for k, v in metrics.items() if k.startswith("_")}
    if notes:
        out += ["", "Measured with " + ", ".join(f"{k.replace('_', ' ')} = {v}" for k, v in notes.items()) + "."]
    out.append("")
    return out


def read_training_summary(directory: str | Path) -> dict[str, Any] | None:
    """The trainer's ``training.json`` in ``directory``, or None when absent or unreadable."""
    path = Path(directory) / "training.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
