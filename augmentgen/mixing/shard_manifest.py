"""The files of a synthesis folder besides its shards: manifest, progress, metadata and card.

What :func:`~augmentgen.mixing.write_shards` and :func:`~augmentgen.mixing.write_variation_shards`
record so that a rerun resumes (the run's identity: everything that decides the rows) or is
refused with what differs and how to resume, which shards are complete, and the
``synthesis.json`` and ``README.md`` written last. Every file is written atomically
(:mod:`augmentgen._io`), so a killed run leaves whole files only.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from torch import nn

from .._io import atomic_write_bytes
from .._version import __version__
from ..errors import ConfigError, DataError
from ..hub.serialization import generator_tensors, tensors_sha256
from ..models.base import ConditionalGenerator, Temperature
from ..models.registry import config_to_dict
from .sources import MODE_KNOB

__all__ = ["CARD", "DATA_DIR", "FORMAT", "MANIFEST", "METADATA", "PROGRESS_DIR", "VARIATIONS", "check_folder",
           "completed_shards", "dataset_card", "generator_sha256", "read_json", "run_identity", "synthesis_metadata",
           "variation_identity", "write_json"]

# /2: generator_sha256 is the weights' tensors_sha256 (the augmentgen_sha256 of model.safetensors) and the
# config is its own field; /1 hashed weights and config together in another encoding.
FORMAT = "augmentgen-synthesis/2"
DATA_DIR = "data"
MANIFEST = "manifest.json"
METADATA = "synthesis.json"
PROGRESS_DIR = ".progress"
CARD = "README.md"
SEED_DERIVATION = ("shard (class c, chunk j) draws its noise from torch.Generator().manual_seed(s) with "
                   "s = numpy.random.SeedSequence([seed, c, j]).generate_state(1, numpy.uint64)[0] >> 1")
#: The identity's ``kind`` of a bank of variations of real images (a bank of free samples has none).
VARIATIONS = "variations"
VARIATION_SEED_DERIVATION = (
    "row s of class c is made from the class's real image s mod n_c, the class's images taken in the order "
    "of torch.randperm(N, generator=torch.Generator().manual_seed(seed)) stably sorted by label; shard "
    "(class c, chunk j) draws the source's random numbers from torch.Generator(device).manual_seed(s) with "
    "s = numpy.random.SeedSequence([seed, c, j]).generate_state(1, numpy.uint64)[0] >> 1, batch_size rows a call")

# How a user gives each argument that must match to resume (CLI flag, Python keyword).
_FLAGS = {"generator_sha256": ("--model", "generator"), "per_class": ("--per-class", "per_class"),
          "seed": ("--seed", "seed"), "shard_size": ("--shard-size", "shard_size"),
          "temperature": ("--temperature", "temperature"), "teacher_sha256": (None, "teacher"),
          "filter_threshold": (None, "filter_threshold"), "format": (None, None),
          "per_image": ("--per-image", "per_image"), "batch_size": ("--batch-size", "batch_size"),
          "mode": ("--mode", "mode"), "strength": ("--strength", "strength")}
# Fields whose difference follows from another's: reported only when that one is the same.
_FOLLOWS = {"generator_config": "generator_sha256", "images": "images_sha256", "strength": "mode",
            "weight_range": "mode", "extrapolation_range": "mode"}
_KINDS = {None: "free samples of a generator", VARIATIONS: "variations of real images"}


# --------------------------------------------------------------------------- files
def read_json(path: Path) -> dict:
    """A JSON file of the folder; a DataError saying the folder is not one augmentgen wrote intact."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} ({exc}); it is not a synthesis folder augmentgen wrote intact: "
                        "pick a new --out") from None


def write_json(path: Path, payload: dict) -> None:
    """``payload`` as indented JSON, written atomically."""
    atomic_write_bytes(path, (json.dumps(payload, indent=1) + "\n").encode())


def completed_shards(out: str | os.PathLike) -> dict[str, dict]:
    """The shards of ``out`` that are complete, by name: the manifest's and the ranks' progress."""
    out = Path(out)
    done = dict(read_json(out / MANIFEST).get("done", {})) if (out / MANIFEST).is_file() else {}
    for path in sorted((out / PROGRESS_DIR).glob("rank-*.json")):
        done.update(read_json(path).get("shards", {}))
    return done


# --------------------------------------------------------------------------- identity
def generator_sha256(generator: ConditionalGenerator) -> str:
    """The sha256 of ``generator``'s weights: the ``augmentgen_sha256`` its ``model.safetensors`` records
    (:func:`~augmentgen.hub.serialization.tensors_sha256`)."""
    return tensors_sha256(generator_tensors(generator))


def run_identity(generator: ConditionalGenerator, per_class: int, seed: int, shard_size: int,
                 temperature: Temperature, teacher: nn.Module | None, filter_threshold: float | None) -> dict:
    """What a rerun must repeat to resume: everything that decides the rows."""
    identity = {
        "format": FORMAT, "generator_sha256": generator_sha256(generator),
        "generator_config": config_to_dict(generator.config), "per_class": per_class, "seed": seed,
        "shard_size": shard_size, "temperature": temperature,
        "teacher_sha256": None if teacher is None else tensors_sha256(teacher.state_dict()),
        "filter_threshold": None if filter_threshold is None else float(filter_threshold),
    }
    return json.loads(json.dumps(identity))  # tuples become lists, as they read back


def variation_identity(generator: ConditionalGenerator, settings: dict, images_sha256: str, images: int,
                       per_image: int, seed: int, shard_size: int, batch_size: int) -> dict:
    """What a rerun of a bank of variations must repeat to resume: everything that decides the rows.

    ``settings``: the source's type name (``source``), ``mode`` and that mode's knob;
    ``images_sha256``: the sha256 of the real images (as the rows are made from them) and labels.
    ``batch_size`` is part of it: the source draws its random numbers a call at a time.
    """
    identity = {
        "format": FORMAT, "kind": VARIATIONS, "generator_sha256": generator_sha256(generator),
        "generator_config": config_to_dict(generator.config), "images_sha256": images_sha256, "images": images,
        **settings, "per_image": per_image, "seed": seed, "shard_size": shard_size, "batch_size": batch_size,
    }
    return json.loads(json.dumps(identity))


def _mismatch(out: Path, manifest: dict, identity: dict) -> str:
    """The refusal of a rerun into ``out`` with other arguments: what differs, and how to resume."""
    old = manifest.get("identity", {})
    if old.get("format") != identity["format"]:
        # An earlier format hashed the generator another way: the hashes cannot be compared.
        return (f"{out} holds a synthesis run written by an earlier augmentgen (format {old.get('format')!r}; this "
                f"version writes {identity['format']!r} and records the generator's weights sha256 in another "
                "encoding), so it cannot check that the shards there come from this generator and will not add "
                f"to them. Nothing was written. Finish that run with the augmentgen version that started it, or "
                f"pass a new --out (or delete {out} first).")
    if old.get("kind") != identity.get("kind"):
        return (f"{out} holds a bank of {_KINDS.get(old.get('kind'), old.get('kind'))}, but this call writes "
                f"{_KINDS[identity.get('kind')]}; the two never share a folder. Nothing was written. Pass a new "
                f"--out (or delete {out} first).")
    changed = [key for key in identity if old.get(key) != identity[key]]
    changed = [key for key in changed if _FOLLOWS.get(key) not in changed]  # one message per cause
    said, fix = [], []
    for key in changed:
        what, how = _difference(key, old, identity, manifest)
        said.append(what)
        fix += [how] if how else []
    return (f"{out} already holds a synthesis run made with other arguments: {'; '.join(said)}. Nothing was "
            f"written. To resume that run, rerun with its arguments ({', '.join(fix)}); to make a different "
            f"bank, pass a new --out (or delete {out} first).")


def _difference(key: str, there: dict, now: dict, manifest: dict) -> tuple[str, str]:
    """What differs in identity field ``key`` between the run in the folder (``there``) and this call
    (``now``), and the fix."""
    old, new = there.get(key), now.get(key)
    flag, keyword = _FLAGS.get(key, (None, key))
    model = f"--model {manifest.get('model') or manifest.get('generator_id')}"
    if key == "images_sha256":
        data = (f"--variations-of {manifest['data']}" if manifest.get("data") else
                "the images and labels it was made from")
        return (f"the real images or labels differ ({there.get('images')} images, sha256 {str(old)[:12]}... there; "
                f"{now.get('images')} images, sha256 {new[:12]}... now)"), data
    if key == "mode" and MODE_KNOB.get(old) in there:
        knob = MODE_KNOB[old]  # the run's knob goes with its mode
        return (f"mode is {old!r} there but {new!r} now",
                f"--mode {old} {_difference(knob, there, {knob: None}, manifest)[1]}")
    if key == "generator_sha256":
        return f"the generator differs (weights sha256 {str(old)[:12]}... there, {new[:12]}... now)", model
    if key == "generator_config":
        old, new = old or {}, new or {}
        fields = ", ".join(f"{name}: {old.get(name)!r} there, {new.get(name)!r} now"
                           for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name))
        return f"the generator's config differs ({fields})", model
    if key == "teacher_sha256":
        return ("the teacher differs" if old and new else
                "a teacher filtered that run but none is given now" if old else
                "no teacher filtered that run but one is given now"), ("the same teacher" if old else "no teacher")
    said = f"{keyword or key} is {old!r} there but {new!r} now"
    if old is None:
        return said, f"no {flag or keyword}"
    if flag:
        return said, f"{flag} {','.join(map(str, old)) if isinstance(old, list) else old}"
    return said, f"{keyword}={old!r}" if keyword else ""


def check_not_a_file(out: Path) -> None:
    """A bank is a folder: refuse an ``out`` that is a file (before any model or data is loaded)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; synthesis writes a folder: pick a new --out")


def check_folder(out: Path, identity: dict) -> dict | None:
    """The manifest of the run ``out`` holds (None for a new or empty folder); refuses any other folder."""
    if (out / MANIFEST).is_file():
        manifest = read_json(out / MANIFEST)
        if manifest.get("identity") != identity:
            raise ConfigError(_mismatch(out, manifest, identity))
        return manifest
    check_not_a_file(out)
    if out.is_dir() and any(not p.name.startswith(f".{MANIFEST}.") for p in out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no {MANIFEST}, so it is not a synthesis run to resume; "
                          "pick a new (or empty) --out so nothing of yours is overwritten")
    return None


# --------------------------------------------------------------------------- metadata
def synthesis_metadata(manifest: dict, features, logs: list[dict], seconds: float, num_processes: int) -> dict:
    """``synthesis.json``: the run's identity, rows and acceptance per class, and the last run's speed per rank."""
    import datasets
    import pyarrow

    identity = manifest["identity"]
    k = len(manifest["class_names"])
    rows, candidates = [0] * k, [0] * k
    for record in manifest["done"].values():
        rows[record["label"]] += record["rows"]
        candidates[record["label"]] += record["candidates"]
    filtering = identity.get("teacher_sha256") is not None
    made = sum(r["candidates"] for log in logs for r in log["shards"].values())
    ranks = [{"rank": log["rank"], "shards": sorted(log["shards"]), "images_generated":
              sum(r["candidates"] for r in log["shards"].values()), "seconds": log["seconds"],
              "peak_rss_mib": log["peak_rss_mib"]} for log in logs]
    return {
        "format": FORMAT, **{key: value for key, value in manifest.items() if key not in ("identity", "complete",
                                                                                          "done")},
        **{key: value for key, value in identity.items() if key != "format"},
        "seed_derivation": VARIATION_SEED_DERIVATION if identity.get("kind") == VARIATIONS else SEED_DERIVATION,
        "rows": sum(rows), "rows_per_class": rows,
        "candidates_per_class": candidates,
        "acceptance_rate": sum(rows) / max(sum(candidates), 1) if filtering else None,
        "acceptance_rate_per_class": [r / c if c else None for r, c in zip(rows, candidates)] if filtering else None,
        "shards": len(manifest["done"]), "features": features.to_dict(),
        "last_run": {"num_processes": num_processes, "seconds": seconds, "images_generated": made,
                     "images_per_second": made / seconds if seconds > 0 else None, "ranks": ranks},
        "versions": {"augmentgen": __version__, "torch": torch.__version__, "datasets": datasets.__version__,
                     "pyarrow": pyarrow.__version__},
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def dataset_card(metadata: dict) -> str:
    """The ``README.md`` that ``datasets.load_dataset`` and the Hub read: what the bank holds, how to load it."""
    about = _variations_text(metadata) if metadata.get("kind") == VARIATIONS else _samples_text(metadata)
    return (
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/*.parquet\n"
        "tags:\n- synthetic\n- augmentgen\n---\n\n"
        f"{about} Details: `{METADATA}`.\n\n"
        "```python\nimport datasets\n\nbank = datasets.load_dataset(\"parquet\", data_dir=\"<this folder>\", "
        "split=\"train\")\n```\n")


def _samples_text(metadata: dict) -> str:
    accepted = ("" if metadata["acceptance_rate"] is None else
                f" A teacher kept {metadata['acceptance_rate']:.1%} of the candidates "
                f"(probability of the class >= {metadata['filter_threshold']}).")
    return (
        f"# Synthetic images from `{metadata['generator_id']}`\n\n"
        f"{metadata['rows']} images of {len(metadata['class_names'])} classes ({', '.join(metadata['class_names'])}), "
        f"{metadata['per_class']} candidates per class, sampled by augmentgen {metadata['versions']['augmentgen']} "
        f"from a `{metadata['family']}` generator (weights sha256 {metadata['generator_sha256']}) with seed "
        f"{metadata['seed']}.{accepted} Every row has `synthetic=True`.")


def _variations_text(metadata: dict) -> str:
    knob = MODE_KNOB.get(metadata["mode"])
    setting = f"mode `{metadata['mode']}`" + (f", {knob} {metadata[knob]}" if knob in metadata else "")
    return (
        f"# Variations of real images by `{metadata['generator_id']}`\n\n"
        f"{metadata['rows']} images of {len(metadata['class_names'])} classes ({', '.join(metadata['class_names'])}), "
        f"{metadata['per_class']} per class ({metadata['per_image']} per image of the largest class), made by "
        f"augmentgen {metadata['versions']['augmentgen']} from {metadata['images']} real images (with their labels: "
        f"sha256 {metadata['images_sha256']}) by `{metadata['made_by']}` ({setting}) of a `{metadata['family']}` "
        f"generator (weights sha256 {metadata['generator_sha256']}) with seed {metadata['seed']}. Each row keeps "
        "the class of the real image it was made from and gives that image's index in `source_index`; every row "
        "has `synthetic=True`.")
