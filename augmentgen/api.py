"""``augmentgen.train``: the one-call Python entry point (the CLI calls the same function)."""

from __future__ import annotations

import os
from typing import Any

from .data import LabelledImages, load_data
from .errors import DataError
from .models import ConditionalGenerator, build_config
from .training import Trainer, TrainingConfig


def model_config_for(model: str, data: LabelledImages, **overrides: Any):
    """The config of ``model`` sized to ``data`` (classes, channels, image size), plus overrides."""
    c, h, w = data.image_shape
    if h != w:
        raise DataError(f"images must be square, got {h}x{w}; resize them first")
    values = {"num_classes": data.num_classes, "class_names": data.class_names,
              "in_channels": c, "image_size": h, **overrides}
    return build_config(model, **values)


def train(
    model: str = "cgan",
    data: Any = "fashion-mnist-small",
    output_dir: str | os.PathLike = "runs/augmentgen",
    *,
    data_dir: str | None = None,
    per_class: int | None = None,
    imbalance: float | None = None,
    resume: bool = False,
    model_config: dict[str, Any] | None = None,
    **training: Any,
) -> ConditionalGenerator:
    """Train generator ``model`` on ``data`` and save it to ``output_dir``.

    Args:
        model: a family or preset name (see :func:`augmentgen.available_models`).
        data: anything :func:`augmentgen.load_data` accepts.
        output_dir: where ``config.json``, ``model.safetensors``, grids and checkpoints go.
        data_dir, per_class, imbalance: passed to :func:`augmentgen.load_data` (the subset is
            drawn with ``seed``).
        resume: continue from the newest checkpoint in ``output_dir``.
        model_config: overrides of the family's config fields (e.g. ``{"loss": "bce"}``).
        **training: :class:`TrainingConfig` fields (``steps``, ``batch_size``, ``seed``, ...),
            among them ``init_from`` to fine-tune a pretrained generator (a folder, a zoo id such as
            ``"augmentgen/cgan-mnist"`` or a hub id; ``model`` must be of its family), with
            ``freeze_discriminator_layers`` and ``transfer_lr_scale``.

    Example::

        # 10 images per class of new classes, starting from the zoo's MNIST cgan
        train("cgan", "my_images/", "runs/few-shot", init_from="augmentgen/cgan-mnist",
              per_class=10, steps=500, transfer_lr_scale=0.5)

    Returns:
        The trained (EMA) generator, in eval mode.
    """
    training_config = TrainingConfig.from_dict(training)
    dataset = load_data(data, data_dir=data_dir, per_class=per_class, imbalance=imbalance,
                        seed=training_config.seed)
    config = model_config_for(model, dataset, **(model_config or {}))
    return Trainer(config, training_config, output_dir).fit(dataset, resume=resume)
