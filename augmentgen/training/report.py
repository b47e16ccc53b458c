"""What the trainer tells its user before training: the summary printed before the first step
(like accelerate's examples), and the error for a model too large to allocate."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

from accelerate import Accelerator

from ..errors import ConfigError
from ..models.base import GeneratorConfig
from .budget import TimeBudget

#: The suffixes of the families' layer-size config fields (``*_width``, ``*_hidden``,
#: ``block_out_channels``): what a failed allocation asks the user to lower.
LAYER_SIZE_SUFFIXES = ("_width", "_hidden", "out_channels")


def describe_steps(config, budget: TimeBudget | None) -> str:
    """The run's length as the summary shows it: ``steps``, or what the time budget does."""
    if budget is None:
        return str(config.steps)
    if budget.resumed_plan:
        return f"{budget.total_steps} (chosen by the run's time budget of {budget.seconds:g} s)"
    bound = f", at most {config.steps}" if config.steps is not None else ""
    return f"as many as fit in {budget.seconds:g} s{bound} (set after a short warm-up)"


def print_summary(model_config: GeneratorConfig, config, accelerator: Accelerator, *, data, described: dict,
                  steps: str, resumed_at: int | None, output_dir: Path) -> None:
    """What is about to be trained, printed once (on the main process) before the first step.

    ``described``: :func:`~augmentgen.training.run_folder.describe_data` of ``data``; ``steps``:
    :func:`describe_steps`; ``resumed_at``: the step a resumed run continues from.
    """
    acc = accelerator
    if not acc.is_main_process:
        return
    names = model_config.class_names or [str(i) for i in range(model_config.num_classes)]
    shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
    source = described["source"] or type(data).__name__
    if str(source).startswith("fashion-mnist-small"):
        source += "  <- the embedded 500-image DEMO set, not your data (pass --data / data=)"
    examples = described["examples"] if described["examples"] is not None else "unknown (an iterable)"
    c, h, w = model_config.image_shape
    precision = "" if acc.mixed_precision == "no" else f", {acc.mixed_precision} mixed precision"
    if acc.mixed_precision == "fp16" and acc.device.type == "cpu":  # Accelerate ignores it there, silently
        precision = ", full precision (fp16 acts on GPUs only; bf16 acts on the CPU)"
    resumed = f" (resuming at step {resumed_at})" if resumed_at is not None else ""
    print("\n".join([
        f"***** augmentgen: training {model_config.family} *****",
        f"  data:       {source}",
        f"  examples:   {examples}",
        f"  classes:    {model_config.num_classes}: {shown}",
        f"  image size: {h}x{w}, {c} channel{'s' if c > 1 else ''}",
        f"  batch size: {config.batch_size} per process x {acc.num_processes} process(es)",
        f"  steps:      {steps}{resumed}",
        f"  device:     {acc.device}{precision}",
        f"  output:     {output_dir}",
    ]), flush=True)


def allocation_error(exc: BaseException, config: GeneratorConfig) -> ConfigError | None:
    """The :class:`ConfigError` to raise when building ``config``'s model failed with ``exc``
    because it could not be allocated (layer sizes far too large); ``None`` for other errors."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not (isinstance(exc, MemoryError) or "alloc" in text.lower() or "overflow" in text.lower()):
        return None
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    widths = {k: v for k, v in config.to_dict().items() if k.endswith(LAYER_SIZE_SUFFIXES)}
    fix = " ".join(shlex.quote(f"--set={k}={json.dumps(defaults[k])}") for k in widths)
    sizes = ", ".join(f"{k}={v}" for k, v in widths.items()) or "its layer sizes"
    return ConfigError(
        f"could not allocate the {config.family} model ({text[:160]}): {sizes} are too large for this "
        f"machine's memory; lower them, e.g. to the defaults with {fix or '--set'} (the same names in "
        "model_config=)"
    )
