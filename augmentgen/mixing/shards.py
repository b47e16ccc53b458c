"""Synthesis at scale: a generator's samples as Parquet shards, from one process or many.

:func:`write_shards` fills the grid of ``per_class`` images of every class, ``shard_size`` images
a shard, and writes each shard as one Parquet file in the Hugging Face ``datasets`` format:
``image`` (Image), ``label`` (ClassLabel with the generator's class names), ``synthetic`` (True),
``generator`` (its id) and ``seed`` (the run's seed). Under ``accelerate launch`` or ``torchrun``
each rank takes a disjoint share of the shards, and shard (class ``c``, chunk ``j``) is sampled
from its own seed :func:`shard_seed` (seed, c, j), so the rows are the same for any number of
processes. A rank holds one batch of images at a time (and its shard's noise), whatever
``per_class`` is. A killed run resumes from the shards already complete when rerun with the same
arguments; other arguments into the same folder are refused before anything is written.

Layout of ``out``::

    data/train-CCCCC-JJJJJ.parquet   shard: class C, images [J * shard_size, (J + 1) * shard_size)
    manifest.json                    the run's arguments and the shards done (what resuming reads)
    .progress/rank-RRRRR.json        the shards each rank has finished in the current run
    README.md, synthesis.json        dataset card and metadata, written last by the main rank

(:mod:`~augmentgen.mixing.shard_manifest` writes and checks every file but the shards.)

One writer, :func:`write_bank`, does all of the above for a *row producer*: a function from a
:class:`Shard` to its rows in batches. :func:`write_shards` hands it free samples of a
generator; :func:`~augmentgen.mixing.write_variation_shards` variations of real images.

Load it as one dataset, or stream it straight into a training loop::

    import datasets, torch

    bank = datasets.load_dataset("parquet", data_dir="synth", split="train")
    stream = datasets.load_dataset("parquet", data_dir="synth", split="train", streaming=True)
    stream = stream.shuffle(seed=0, buffer_size=10_000).with_format("torch")
    for batch in torch.utils.data.DataLoader(stream, batch_size=256):
        images, labels = batch["image"], batch["label"]   # uint8 (B, C, H, W), int64 (B,)
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import math
import os
import resource
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._config import check_path
from .._images import to_uint8
from .._io import atomic_path, atomic_write_bytes, check_creatable
from .._processes import progress_bar
from .._seeds import check_seed
from ..errors import ConfigError, DataError
from ..models.base import ConditionalGenerator, Temperature, sampling_chunk, sampling_progress
from .filter import TeacherFilter
from .hf import SYNTHETIC, _to_arrays, synthetic_features
from .shard_manifest import (
    CARD,
    DATA_DIR,
    MANIFEST,
    METADATA,
    PROGRESS_DIR,
    check_folder,
    completed_shards,
    dataset_card,
    read_json,
    run_identity,
    synthesis_metadata,
    write_json,
)
from .sources import check_int_arguments
from .teacher import evaluating

__all__ = ["Batches", "Shard", "assign_shards", "bank_features", "bank_info", "check_int_arguments",
           "completed_shards", "plan_shards", "process_device", "shard_seed", "write_bank", "write_shards"]

#: Rows of one shard, a batch at a time: (columns, candidates made). ``columns`` holds the
#: ``image`` arrays (uint8, as ``datasets.Image`` encodes them) and any per-row column of the
#: bank's features besides ``label`` and ``synthetic``, which the writer adds with the constants.
#: A producer makes each batch inside ``sampling_chunk(candidates)``, which advances the writer's
#: bar (a ddpm's steps move it within the batch).
Batches = Iterator[tuple[dict[str, list], int]]


@dataclasses.dataclass(frozen=True)
class Shard:
    """One Parquet file of the grid: images ``start`` to ``stop - 1`` of class ``label``."""

    label: int
    chunk: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"train-{self.label:05d}-{self.chunk:05d}"

    @property
    def file(self) -> str:
        """Its path relative to the output folder."""
        return f"{DATA_DIR}/{self.name}.parquet"


def plan_shards(num_classes: int, per_class: int, shard_size: int) -> list[Shard]:
    """Every shard of the grid, class by class: ``ceil(per_class / shard_size)`` per class."""
    return [Shard(k, j, j * shard_size, min((j + 1) * shard_size, per_class))
            for k in range(num_classes) for j in range(math.ceil(per_class / shard_size))]


def assign_shards(shards: list[Shard], num_processes: int) -> list[list[Shard]]:
    """Split ``shards`` into ``num_processes`` disjoint shares with about as many images each.

    Largest shard first, to the share with the fewest images so far (ties: the lowest rank); each
    share in grid order. Every rank computes the same split from the same list, with no messages.
    """
    heap = [(0, rank) for rank in range(num_processes)]
    shares: list[list[Shard]] = [[] for _ in range(num_processes)]
    for shard in sorted(shards, key=lambda s: (s.start - s.stop, s.label, s.chunk)):
        images, rank = heapq.heappop(heap)
        shares[rank].append(shard)
        heapq.heappush(heap, (images + shard.stop - shard.start, rank))
    return [sorted(share, key=lambda s: (s.label, s.chunk)) for share in shares]


def shard_seed(seed: int, label: int, chunk: int) -> int:
    """The 63-bit seed of shard (``label``, ``chunk``), derived from the run's ``seed`` alone.

    ``numpy.random.SeedSequence([seed, label, chunk])`` mixes the three numbers, so neighbouring
    shards get unrelated streams and no shard's seed depends on which process samples it.
    """
    return int(np.random.SeedSequence([seed, label, chunk]).generate_state(1, np.uint64)[0]) >> 1


def _state():
    """Accelerate's process state; ``ACCELERATE_USE_CPU=1`` joins CPU ranks into one gloo group."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # Accelerator() reads this flag itself; PartialState() does not, and without it two CPU
    # ranks under torchrun would each see a world of one.
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def process_device() -> torch.device:
    """This process's device: its own GPU under ``accelerate launch`` / ``torchrun``, else the default."""
    return _state().device


# --------------------------------------------------------------------------- checks
def _check_arguments(generator, per_class, seed, shard_size, batch_size, teacher,
                     filter_threshold) -> TeacherFilter | None:
    """Refuse bad arguments before anything is written; the teacher filter, if one is asked for."""
    if not isinstance(generator, ConditionalGenerator):
        raise ConfigError(f"generator must be a ConditionalGenerator, got {type(generator).__name__}")
    check_int_arguments(per_class=(per_class, 1), shard_size=(shard_size, 1), batch_size=(batch_size, 1))
    check_seed(seed, use="every shard's rows are sampled from it")
    if (teacher is None) != (filter_threshold is None):
        raise ConfigError("teacher filtering needs both teacher=<a classifier returning logits, on the "
                          "generator's device> and filter_threshold=<a probability in [0, 1]>; give both or neither")
    if teacher is None:
        return None
    # One round of one candidate per row: the bank keeps the accepted ones among per_class candidates.
    return TeacherFilter(teacher, filter_threshold, 1, 1, num_classes=generator.num_classes,
                         device=generator.device)


def _check_world(state) -> None:
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != state.num_processes:
        raise ConfigError(
            f"{launched} processes were launched but each sees a world of {state.num_processes}, so every one "
            "would write every shard: on a machine without GPUs set ACCELERATE_USE_CPU=1 (ACCELERATE_USE_CPU=1 "
            f"accelerate launch --multi_gpu --num_processes {launched} -m augmentgen sample ...)")


# --------------------------------------------------------------------------- sampling
def _batches(generator: ConditionalGenerator, shard: Shard, *, seed: int, batch_size: int,
             table: torch.Tensor | None, teacher_filter: TeacherFilter | None) -> Batches:
    """The free-sample producer: ``shard``'s accepted images, ``batch_size`` candidates at a time."""
    device = generator.device
    rng = torch.Generator(device=device).manual_seed(shard_seed(seed, shard.label, shard.chunk))
    n = shard.stop - shard.start
    # The whole shard's noise at once (n x latent_dim floats): the rows do not depend on batch_size.
    noise = generator.sample_noise(n, generator=rng)
    labels = torch.full((n,), shard.label, dtype=torch.long, device=device)
    for start in range(0, n, batch_size):
        z, y = noise[start:start + batch_size], labels[start:start + batch_size]
        with evaluating(generator), sampling_chunk(len(y)):
            if table is not None:
                z = generator.scale_noise(z, y, table[y])
            images = generator.generate(y, z).float()
        if teacher_filter is not None:
            images = images[teacher_filter.judge(images, y)[0]]
        yield {"image": _to_arrays(to_uint8(images))}, len(y)


def bank_features(generator: ConditionalGenerator, **columns):
    """The features of a bank's rows: image, label (the generator's class names), synthetic, the
    extra per-row ``columns`` (name=datasets feature), then the constants generator and seed."""
    import datasets

    return datasets.Features({**synthetic_features(generator), **columns, "generator": datasets.Value("string"),
                              "seed": datasets.Value("int64")})


def _write_shard(out: Path, shard: Shard, batches: Batches, features, constants: dict) -> dict:
    """Write ``shard`` to a temporary file beside its final name, then rename it into place."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = features.arrow_schema  # carries the Image / ClassLabel features for load_dataset
    rows = candidates = 0
    with atomic_path(out / shard.file) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for columns, made in batches:
            candidates += made
            n = len(columns["image"])
            if n:
                columns = {**columns, "label": [shard.label] * n, SYNTHETIC: [True] * n,
                           **{key: [value] * n for key, value in constants.items()}}
                writer.write_table(pa.Table.from_pydict(features.encode_batch(columns), schema=schema))
            rows += n
    return {"file": shard.file, "label": shard.label, "chunk": shard.chunk, "rows": rows, "candidates": candidates}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class _RankLog:
    """This rank's progress file, rewritten atomically after every shard it finishes."""

    def __init__(self, out: Path, rank: int):
        self.path = out / PROGRESS_DIR / f"rank-{rank:05d}.json"
        self.rank, self.shards, self.started = rank, {}, time.perf_counter()

    def write(self, name: str | None = None, record: dict | None = None) -> None:
        if name is not None:
            self.shards[name] = record
        write_json(self.path, {"rank": self.rank, "shards": self.shards, "peak_rss_mib": _peak_rss_mib(),
                                 "seconds": time.perf_counter() - self.started})


def _run_rank(out: Path, mine: list[Shard], produce: Callable[[Shard], Batches], *, features, constants, state,
              progress: bool, desc: str) -> None:
    log = _RankLog(out, state.process_index)
    desc = desc if state.num_processes == 1 else f"{desc}, rank 0 of {state.num_processes}"
    # The producers' sampling_chunk calls advance the bar (on the main rank only).
    with progress_bar(progress, total=sum(s.stop - s.start for s in mine), desc=desc) as bar, \
            sampling_progress(bar):
        for shard in mine:
            record = _write_shard(out, shard, produce(shard), features, constants)
            log.write(shard.name, record)
    log.write()  # this run's time and peak memory, also for a rank that had nothing to do


# --------------------------------------------------------------------------- main rank
def _progress_logs(out: Path) -> list[tuple[Path, dict]]:
    return [(path, read_json(path)) for path in sorted((out / PROGRESS_DIR).glob("rank-*.json"))]


def _start(out: Path, manifest: dict | None, identity: dict, info: dict) -> None:
    """Main rank, before any shard: merge what earlier runs finished into the manifest."""
    if manifest is None:
        out.mkdir(parents=True, exist_ok=True)
        manifest = {"identity": identity, **info, "complete": False, "done": {}}
        write_json(out / MANIFEST, manifest)  # first, so a rerun knows the folder is ours
    (out / DATA_DIR).mkdir(exist_ok=True)
    (out / PROGRESS_DIR).mkdir(exist_ok=True)
    for folder in (out, out / DATA_DIR, out / PROGRESS_DIR):
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)  # half-written by a killed run
    done = {name: record for name, record in completed_shards(out).items() if (out / record["file"]).is_file()}
    write_json(out / MANIFEST, {**manifest, "done": done})
    for path, _ in _progress_logs(out):
        path.unlink()  # merged above


def _finish(out: Path, plan: list[Shard], features, seconds: float, num_processes: int) -> None:
    """Main rank, after every rank: the complete manifest, then the card, then the metadata last."""
    manifest = read_json(out / MANIFEST)
    logs = _progress_logs(out)
    done = dict(manifest["done"])
    for _, log in logs:
        done.update(log["shards"])
    missing = [s.name for s in plan if s.name not in done]
    if missing:
        raise DataError(f"{len(missing)} shard(s) of {out} were not written (e.g. {missing[:3]}); rerun the "
                        "same command to write them")
    manifest = {**manifest, "done": {s.name: done[s.name] for s in plan}, "complete": True}
    write_json(out / MANIFEST, manifest)
    for path, _ in logs:
        path.unlink()
    metadata = synthesis_metadata(manifest, features, [log for _, log in logs], seconds, num_processes)
    if metadata["rows"] == 0:
        warnings.warn(f"the teacher accepted none of the {sum(metadata['candidates_per_class'])} candidates at "
                      f"filter_threshold={metadata.get('filter_threshold')}, so {out} holds no rows (load_dataset "
                      "finds no data): lower the threshold and write to a new folder", stacklevel=3)
    atomic_write_bytes(out / CARD, dataset_card(metadata).encode())
    write_json(out / METADATA, metadata)  # last: once it exists, the bank is complete


# --------------------------------------------------------------------------- entry point
def write_shards(generator: ConditionalGenerator, per_class: int, out: str | os.PathLike, *, seed: int = 0,
                 shard_size: int = 4096, batch_size: int = 1024, temperature: Temperature = 1.0,
                 teacher: nn.Module | None = None, filter_threshold: float | None = None,
                 generator_id: str | None = None, model: str | None = None, progress: bool = True) -> dict:
    """Sample ``per_class`` images of every class into ``out`` as Parquet shards; resumable, multi-process.

    Run it the same way in every process (``accelerate launch`` / ``torchrun``, one or many nodes,
    ``out`` on storage they all see): each rank writes a disjoint share of the shards and the
    main rank writes ``README.md`` and ``synthesis.json`` last. Rerun the same call after a
    crash to resume; a call with other arguments into the same folder raises
    :class:`~augmentgen.errors.ConfigError` saying what differs, before anything is written.

    Args:
        generator: any :class:`ConditionalGenerator`, on this process's device (:func:`process_device`).
        per_class: images per class (candidates per class with a teacher), >= 1.
        out: the output folder: new, empty, or one this function started.
        seed: the run's seed, >= 0; shard (c, j) is sampled from :func:`shard_seed` ``(seed, c, j)``.
        shard_size: images per Parquet file: the unit of resuming and of sharing work.
        batch_size: images per forward pass: what a rank holds in memory. The noise does not
            depend on it, so neither do the rows (up to the forward pass's float rounding, which
            some hardware varies with the batch size).
        temperature: :meth:`ConditionalGenerator.sample`'s sampling temperature.
        teacher, filter_threshold: teacher filtering, as in ``SyntheticMix(teacher=...,
            filter_threshold=...)``: a candidate is kept when the teacher's softmax probability of
            its class is >= ``filter_threshold``, so the bank holds only accepted rows (fewer than
            ``per_class``); the acceptance rates go into ``synthesis.json``. The teacher takes
            float images in ``[-1, 1]`` and returns logits, on the generator's device.
        generator_id: the ``generator`` column; defaults to ``model``, else ``<family>-<sha256[:12]>``.
        model: where the generator came from (the CLI's ``--model``), named in error messages.
        progress: a tqdm bar (images/s) on the main rank, moved within a batch by iterative
            families (``ddpm``, step by step).

    Returns:
        The metadata of ``synthesis.json`` (rows per class, acceptance rates, the last run's
        images/s and peak memory per rank), on every rank; with ``already_complete=True`` added
        when ``out`` was complete before the call (its files are left as they were).

    Example::

        meta = write_shards(generator, 10_000, "synth", shard_size=4096)
        bank = datasets.load_dataset("parquet", data_dir="synth", split="train")
    """
    check_path(out, "out", kind="a folder path", empty="would write the shards into the current folder",
               example="the folder the Parquet shards go in, e.g. 'synth'")
    teacher_filter = _check_arguments(generator, per_class, seed, shard_size, batch_size, teacher, filter_threshold)
    temperature = generator.check_temperature(temperature)
    identity = run_identity(generator, per_class, seed, shard_size, temperature, teacher, filter_threshold)
    produce = functools.partial(_batches, generator, seed=seed, batch_size=batch_size,
                                table=generator.temperature_table(temperature), teacher_filter=teacher_filter)
    return write_bank(out, identity, bank_info(generator, identity, generator_id, model),
                      plan_shards(generator.num_classes, per_class, shard_size), produce,
                      features=bank_features(generator), progress=progress, desc="synthesis")


def bank_info(generator: ConditionalGenerator, identity: dict, generator_id: str | None, model: str | None,
              **more) -> dict:
    """What the manifest records beside the identity: the ``generator`` column's id, where the generator
    came from, its family, class names and image shape, and ``more``."""
    return {"generator_id": generator_id or model or f"{generator.family}-{identity['generator_sha256'][:12]}",
            "model": model, "family": generator.family, "class_names": generator.class_names,
            "image_shape": list(generator.image_shape), **more}


def write_bank(out: str | os.PathLike, identity: dict, info: dict, plan: list[Shard],
               produce: Callable[[Shard], Batches], *, features, progress: bool, desc: str) -> dict:
    """The one writer behind :func:`write_shards` and :func:`~augmentgen.mixing.write_variation_shards`.

    On every rank: refuse ``out`` if it holds another run (``identity`` differs), let the main
    rank start or resume it (``manifest.json`` with ``identity`` and ``info``), write this rank's
    share of the shards of ``plan`` not yet done, each from ``produce(shard)`` (its rows in
    batches; its random numbers from the shard alone, so the rows do not depend on the rank),
    and let the main rank finish (``README.md``, then ``synthesis.json``). Returns the metadata.
    """
    state = _state()
    _check_world(state)
    out = Path(out)
    check_creatable(out)  # a file above out: mkdir would fail with a bare OSError
    manifest = check_folder(out, identity)  # on every rank, before anyone writes
    state.wait_for_everyone()
    if state.is_main_process:
        _start(out, manifest, identity, info)
    state.wait_for_everyone()
    manifest = read_json(out / MANIFEST)
    pending = [s for s in plan if s.name not in manifest["done"]]
    if not pending and (out / METADATA).is_file():
        return {**read_json(out / METADATA), "already_complete": True}  # nothing is rewritten
    started = time.perf_counter()
    _run_rank(out, assign_shards(pending, state.num_processes)[state.process_index], produce, features=features,
              constants={"generator": manifest["generator_id"], "seed": identity["seed"]}, state=state,
              progress=progress, desc=desc)
    state.wait_for_everyone()
    if state.is_main_process:
        _finish(out, plan, features, time.perf_counter() - started, state.num_processes)
    state.wait_for_everyone()
    return read_json(out / METADATA)
