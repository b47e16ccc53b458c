"""What the campaign folder holds, and the removal of a finished cell's entries.

The campaign folder (``generator_cache.campaign_dir()``, ``benchmarks/campaign``) keeps what a seed
longer than one session needs in the next: validation journals, generators slow to train and banks
slow to sample. An entry is of use until its cell is complete; then the commit that completes the
cell removes the cell's entries (git history keeps them)::

    python benchmarks/campaign.py                                    # one line per entry
    python benchmarks/campaign.py --remove fashion-mnist lt100       # what would go
    python benchmarks/campaign.py --remove fashion-mnist lt100 --yes # and removes it
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from generator_cache import campaign_dir, cell_name


@dataclass
class Entry:
    """One journal (a file), generator or bank (a folder) of the campaign folder."""

    path: Path
    cell: str
    what: str

    @property
    def size(self) -> int:
        files = self.path.rglob("*") if self.path.is_dir() else [self.path]
        return sum(f.stat().st_size for f in files if f.is_file())


def entries(root: Path) -> list[Entry]:
    """Every journal, bank and generator under ``root``, with the cell it belongs to."""
    found = []
    for path in sorted((root / "validation-scores").glob("*.json")):
        record = json.loads(path.read_text())
        context = record["context"]
        found.append(Entry(path, cell_name(context["dataset"], context["budget"]),
                           f"journal seed {context['seed']}: {len(record['scores'])} validation runs"))
    described = {
        "banks": lambda key, record: (f"bank of {key['generator']['family']} seed {key['seed']}, "
                                      f"{key['per_class']} a class, {record['fill_seconds']:.0f} s to sample"),
        "generators": lambda key, record: (f"{key['family']} seed {key['seed']}, {key['steps']} steps, "
                                           f"{record['train_seconds']:.0f} s to train")}
    for folder, describe in described.items():
        for path in sorted((root / folder).glob("*/entry.json")):
            record = json.loads(path.read_text())
            found.append(Entry(path.parent, record.get("cell", "unknown cell"),
                               f"{describe(record['key'], record)} at {str(record['commit'])[:10]}"))
    return found


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--remove", nargs=2, metavar=("DATASET", "BUDGET"),
                   help="the entries of one cell (a dry run that lists them, unless --yes)")
    p.add_argument("--yes", action="store_true", help="with --remove: remove them")
    args = p.parse_args(argv)
    if args.yes and not args.remove:
        p.error("--yes removes the entries --remove DATASET BUDGET names; pass the cell")
    root = campaign_dir()
    found = entries(root) if root.is_dir() else []
    if args.remove:
        cell = cell_name(*args.remove)
        found = [e for e in found if e.cell == cell]
        if not found:
            raise SystemExit(f"the campaign folder {root} holds no entry of the cell {cell!r}")
    for entry in found:
        print(f"{entry.cell:24} {entry.size / 1e6:7.2f} MB  {entry.what}  ({entry.path.relative_to(root)})")
    print(f"{len(found)} entries, {sum(e.size for e in found) / 1e6:.2f} MB in {root}")
    if args.remove and not args.yes:
        print("a dry run: pass --yes to remove them")
    elif args.remove:
        for entry in found:
            shutil.rmtree(entry.path) if entry.path.is_dir() else entry.path.unlink()
        print(f"removed {len(found)} entries of {cell}")


if __name__ == "__main__":
    main()
