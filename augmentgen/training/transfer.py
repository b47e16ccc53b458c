"""Starting a run from a pretrained generator: what is copied, what starts afresh, what is frozen.

Few-shot generation on new classes works far better from a generator pretrained on many images
of other classes than from scratch (Wang et al. 2018, "Transferring GANs: generating images
from limited data"; Mo et al. 2020, "Freeze the Discriminator: a Simple Baseline for
Fine-Tuning GANs"). ``TrainingConfig(init_from=...)`` makes the trainer do that with the
functions here (:func:`load_init_source` and :func:`transfer_from` are what the trainer calls):

- :func:`transfer_weights` copies every tensor of the saved generator whose name and shape match
  the new run's model, and leaves the *class-dependent* ones (:func:`class_dependent_names`) at
  their fresh initialisation when the classes differ.
- :func:`freeze_feature_blocks` is the FreezeD option (``freeze_discriminator_layers``).
- :func:`scale_lr_of` gives the transferred parameters their own optimizer param groups with a
  scaled learning rate (``transfer_lr_scale``).

What a saved generator holds is what :func:`augmentgen.save_pretrained` writes: the generator
module's state dict. For ``cgan`` (and its ``wgan-gp`` preset) that is the generator only; the
discriminator is not saved and always starts from scratch. For the encoder families (``aae``,
``vae``, ``aegan``, ``ae``) it is the encoder *and* the decoder (plus the ``aae``'s prior means
and the ``ae``'s fitted class priors); their training steps' discriminators (the ``aae``'s latent
one, the ``aegan``'s image one) are not saved either.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterable

import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..hub.serialization import generator_tensors, tensors_sha256
from ..models.base import ConditionalGenerator, GeneratorConfig
from ..models.registry import build_generator, step_class
from ..models.step import Blocks


def class_dependent_names(generator: ConditionalGenerator) -> list[str]:
    """Names of ``generator``'s state-dict tensors whose shape depends on its number of classes.

    Found by building the same family with one class more and comparing every tensor's shape:
    a tensor whose shape changes has a class axis (or a size computed from the class count).
    Nothing is guessed from sizes, so a layer that happens to be as wide as the number of
    classes (say ``prior_components == num_classes``) is not mistaken for a class table. In the
    built-in families these are the class embeddings of the decoder (``decoder.embed``) and
    the encoder (``encoder.embed``), the per-class scale and shift tables of every conditional
    batch norm (``decoder.norms.*.scale/shift``, ``decoder.out_norm.scale/shift``) and the
    ``ae``'s fitted per-class priors (``prior_mean``, ``prior_scale_tril``). The discriminators'
    projection embeddings and class heads are class-dependent too, but they are not part of a
    saved generator.

    A family can mark further tensors (ones whose values are per class but whose shape does
    not show it) with a method ``class_dependent_tensors() -> Iterable[str]``; no built-in
    family needs one.

    The probe model is built with the global RNG state saved and restored, so calling this
    does not change the random numbers a run draws afterwards.
    """
    config = generator.config.replace(num_classes=generator.num_classes + 1, class_names=None)
    with torch.random.fork_rng(devices=[]):
        probe = {k: tuple(v.shape) for k, v in build_generator(config).state_dict().items()}
    names = [k for k, v in generator.state_dict().items() if probe.get(k) != tuple(v.shape)]
    marked = getattr(generator, "class_dependent_tensors", None)
    if callable(marked):
        extra = set(marked())
        names += [k for k in generator.state_dict() if k in extra and k not in names]
    return names


def transfer_weights(target: nn.Module, source_state: dict[str, torch.Tensor], *,
                     reinit_class_dependent: bool, class_dependent: Collection[str] | None = None,
                     dry_run: bool = False) -> dict[str, list[str]]:
    """Copy the tensors of ``source_state`` that fit ``target`` into it, in place.

    Every entry of ``target.state_dict()`` (parameters and persistent buffers, e.g. batch norm
    running statistics) falls in exactly one of three lists, in state-dict order:

    - ``"copied"``: the source has a tensor of that name and shape, and it was copied (cast to
      the target's dtype and device). Class-dependent tensors are copied only when
      ``reinit_class_dependent`` is False.
    - ``"reinitialised"``: a class-dependent tensor (see ``class_dependent``) left at the value
      ``target`` was built with, because ``reinit_class_dependent`` is True: its rows belong to
      the source's classes, not the new ones. This is done whether or not the source has a
      tensor of the same shape (same class count, other classes).
    - ``"skipped"``: any other tensor the source lacks or holds in another shape (a different
      width or latent size); it also keeps its fresh initialisation.

    Source tensors that ``target`` does not have are ignored.

    Args:
        target: the freshly initialised module to fill (a generator of the run's config).
        source_state: the pretrained tensors by state-dict name (e.g. a loaded generator's
            ``state_dict()``).
        reinit_class_dependent: leave class-dependent tensors at their initialisation (the
            classes differ) instead of copying them (the classes are the same).
        class_dependent: names of the class-dependent tensors of ``target``; by default
            :func:`class_dependent_names` when ``target`` is a :class:`ConditionalGenerator`,
            else none.
        dry_run: only compute the report, copy nothing (used when resuming a run, whose
            weights come from its checkpoint).

    Returns:
        ``{"copied": [...], "reinitialised": [...], "skipped": [...]}``, lists of tensor names.
    """
    if class_dependent is None:
        class_dependent = class_dependent_names(target) if isinstance(target, ConditionalGenerator) else ()
    class_dependent = set(class_dependent)
    report: dict[str, list[str]] = {"copied": [], "reinitialised": [], "skipped": []}
    own = target.state_dict()  # tensors share storage with the module's parameters and buffers
    with torch.no_grad():
        for name, tensor in own.items():
            if reinit_class_dependent and name in class_dependent:
                report["reinitialised"].append(name)
                continue
            source = source_state.get(name)
            if source is None or tuple(source.shape) != tuple(tensor.shape):
                report["skipped"].append(name)
                continue
            if not dry_run:
                tensor.copy_(source)
            report["copied"].append(name)
    return report


def feature_blocks(generator: ConditionalGenerator) -> Blocks:
    """The conv blocks that ``freeze_discriminator_layers`` counts, first to last.

    The family's training step declares them (:meth:`TrainingStep.freezable_blocks
    <augmentgen.models.step.TrainingStep.freezable_blocks>`): each block is a ``Conv2d`` with
    the layers after it up to the next one (activation, norm), as ``(name, parameter)`` pairs.
    For the encoder families it is the encoder's conv stack (``encoder.features.net``: 3 blocks
    at 28 and 32 px, 4 at 64 px): the encoder is the transferred network that reads real
    images, the part FreezeD keeps fixed in a discriminator. Families that declare none
    (``cgan``, ``ddpm``) raise :class:`ConfigError`: a ``cgan``'s discriminator is not part of a
    saved generator, so there is no pretrained one to freeze.
    """
    blocks = step_class(generator.family).freezable_blocks(generator)
    if blocks is None:
        raise ConfigError(
            f"freeze_discriminator_layers freezes pretrained discriminator layers (FreezeD), but a saved "
            f"{generator.family} generator holds no discriminator: this run's discriminator starts from "
            "scratch, and freezing random layers is not FreezeD. Set freeze_discriminator_layers=0 "
            "(use transfer_lr_scale to slow the transferred generator down instead)"
        )
    return blocks


def freeze_feature_blocks(generator: ConditionalGenerator, n: int, transferred: Iterable[str]) -> list[str]:
    """FreezeD: ``requires_grad=False`` on the first ``n`` :func:`feature_blocks`; their names.

    Frozen parameters get no gradient, so no optimizer changes them (Adam skips parameters
    without a gradient) and DDP does not all-reduce them; the EMA of a constant stays that
    constant, so the saved generator keeps them exactly as transferred. Call this before the
    training step's ``prepare`` (DDP decides what to synchronise when it wraps the model).

    Raises:
        ConfigError: ``n`` is larger than the number of blocks, the family has none (``cgan``),
            or a block to freeze was not transferred (freezing its random init would be useless).
    """
    blocks = feature_blocks(generator)
    if n > len(blocks):
        raise ConfigError(
            f"freeze_discriminator_layers={n} but the {generator.family} encoder has {len(blocks)} conv "
            f"blocks at {generator.config.image_size} px; use a value from 0 to {len(blocks)}"
        )
    names = [name for block in blocks[:n] for name, _ in block]
    transferred = set(transferred)
    missing = [name for name in names if name not in transferred]
    if missing:
        raise ConfigError(
            f"freeze_discriminator_layers={n} would freeze {missing[:3]}, which the pretrained model did not "
            "provide (another width or shape), so they would stay at their random initialisation; make the "
            "encoder's config match the pretrained model's, or freeze fewer layers"
        )
    for block in blocks[:n]:
        for _, parameter in block:
            parameter.requires_grad_(False)
    return names


def scale_lr_of(optimizer: torch.optim.Optimizer, parameters: Iterable[torch.Tensor], factor: float) -> int:
    """Split every param group of ``optimizer`` so that ``parameters`` get ``lr * factor``.

    Each group becomes the group without those parameters (its learning rate unchanged) followed
    by a copy of the group holding them at the scaled rate; a group with none of them is left
    alone and empty groups are dropped. Everything else in a group (betas, weight decay) is kept.
    Call it on a fresh optimizer (no state yet) and the same way before loading a checkpoint into
    it, so that the groups line up. Later rate changes (a divergence rollback halving every
    group) keep the ratio. Returns how many parameters were moved.
    """
    selected = {id(p) for p in parameters}
    groups, moved = [], 0
    for group in optimizer.param_groups:
        keep = [p for p in group["params"] if id(p) not in selected]
        scaled = [p for p in group["params"] if id(p) in selected]
        if not scaled:
            groups.append(group)
            continue
        moved += len(scaled)
        if keep:
            groups.append({**group, "params": keep})
        groups.append({**group, "params": scaled, "lr": group["lr"] * factor})
    optimizer.param_groups[:] = groups
    return moved


def load_init_source(name: str, run: GeneratorConfig) -> ConditionalGenerator:
    """The ``init_from`` generator ``name``, refused unless its family and image shape are those
    of ``run``, this run's model config."""
    from ..hub.remote import from_pretrained

    source = from_pretrained(name)
    family, src = type(run).family, source.config
    if source.family != family:
        raise ConfigError(
            f"init_from={name!r} holds a generator of family {source.family!r} but this run's model is of "
            f"family {family!r}, and weights only transfer within a family: train a {source.family!r} model "
            f"(--family {source.family}), or start from a generator of family {family!r}"
        )
    wrong = []
    if src.in_channels != run.in_channels:
        wrong.append(f"{src.in_channels} channel(s) where this run's images have {run.in_channels} "
                     f"(convert the images, e.g. load_data(..., channels={src.in_channels}))")
    if src.image_size != run.image_size:
        wrong.append(f"{src.image_size}x{src.image_size} pixels where this run's images are "
                     f"{run.image_size}x{run.image_size} (resize them to {src.image_size}x{src.image_size})")
    if wrong:
        raise DataError(
            f"init_from={name!r} makes images with " + " and ".join(wrong) + "; or pick a pretrained "
            f"model with in_channels={run.in_channels} and image_size={run.image_size}"
        )
    return source


def transfer_from(generator: ConditionalGenerator, source: ConditionalGenerator, *, name: str,
                  run: GeneratorConfig, lr_scale: float, dry_run: bool) -> dict:
    """Copy ``source``'s fitting tensors into ``generator`` (:func:`transfer_weights`); return
    what ``training.json`` records of it (the trainer's ``init_source``): the source (``id``,
    ``sha256``, family, classes) and the report. Refuses a source of which nothing fits; warns
    about tensors that start from scratch. ``dry_run``: a resumed run, whose weights come from
    its checkpoint, recomputes only the report."""
    same_classes = source.num_classes == generator.num_classes and source.class_names == generator.class_names
    report = transfer_weights(generator, source.state_dict(), reinit_class_dependent=not same_classes,
                              dry_run=dry_run)
    src, own = source.config.to_dict(), run.to_dict()
    differ = ", ".join(f"{k}={src[k]!r} (this run: {own[k]!r})" for k in sorted(src)
                       if k not in ("num_classes", "class_names") and src[k] != own.get(k))
    if not report["copied"]:
        raise ConfigError(
            f"no tensor of init_from={name!r} fits this run's {generator.family} model (their configs differ "
            f"in {differ or 'nothing but the classes'}); set those config fields to the pretrained model's "
            "values (--set KEY=VALUE, model_config=) to fine-tune it"
        )
    if report["skipped"]:
        warnings.warn(
            f"{len(report['skipped'])} tensor(s) of this run's generator are not in init_from={name!r} or have "
            f"another shape there, and start from scratch: {report['skipped'][:4]}"
            f"{'...' if len(report['skipped']) > 4 else ''}; the configs differ in {differ or 'nothing'}; set "
            "those fields to the pretrained model's values to transfer them",
            stacklevel=3,
        )
    return {
        "id": str(name),
        # The sha256 that load_generator checked against the source's safetensors metadata
        # (``augmentgen_sha256``): the same function of the same tensors.
        "sha256": tensors_sha256(generator_tensors(source)),
        "family": source.family,
        "num_classes": source.num_classes,
        "class_names": source.class_names,
        "same_classes": same_classes,
        "transfer_lr_scale": lr_scale,
        **report,
    }


def scale_transferred_lr(optimizers: Iterable[torch.optim.Optimizer], generator: nn.Module,
                         copied: Iterable[str], factor: float) -> None:
    """:func:`scale_lr_of` for the parameters of ``generator`` named in ``copied``, in every optimizer."""
    params = dict(generator.named_parameters())
    transferred = [params[n] for n in copied if n in params]
    for optimizer in optimizers:
        scale_lr_of(optimizer, transferred, factor)
