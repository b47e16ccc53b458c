"""Merge a downstream results file measured elsewhere (another git worktree, another machine) into ours.

A campaign runs its lanes from git worktrees, each writing its own copy of a cell's file
(``downstream.py`` merges lanes that share one file; worktrees do not). This copies into TARGET the
seeds and arms that only SOURCE holds, refuses files of different protocols or subsets, keeps
TARGET's arm where both hold one (and says where the two differ; an arm that SOURCE holds with the
validation ``downstream.py --validate-measured`` added to it, and otherwise as TARGET holds it, is
taken), then saves TARGET the way
``downstream.py`` does: atomically, under its lock, with the summary recomputed::

    python benchmarks/merge_results.py ../lane/benchmarks/results/downstream_v3_cifar10_200pc.json
    python benchmarks/merge_results.py SOURCE TARGET     # TARGET: results/<SOURCE's name> by default
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from downstream import PROVENANCE_FIELDS, ResultsFile, validation_settled
from harness import RESULTS

#: Fields of a file that are not its protocol: what ``ResultsFile`` fills and updates.
RUN_FIELDS = {"seeds", "sources", "commands", "per_seed", "summary", "gen_steps", *PROVENANCE_FIELDS}


def merge(source: Path, target: Path) -> list[str]:
    """Add SOURCE's seeds and arms that TARGET lacks; return what was added and what differed."""
    theirs = json.loads(source.read_text())
    protocol = {k: v for k, v in theirs.items() if k not in RUN_FIELDS}
    try:
        file = ResultsFile(target, protocol, fresh=False)
    except SystemExit as exc:  # its wording is downstream.py's (--fresh / --out): say what this script does
        raise SystemExit(f"not merged: {str(exc).split('; pass')[0]}; {source} was measured under another "
                         "protocol than it") from None
    added, differing = [], []
    for row in theirs["per_seed"]:
        seed, arms = row["seed"], row.get("arms", {})
        ours = file.rows.get(seed)
        if ours is None:
            file.put_row({k: v for k, v in row.items() if k != "arms"}, save=False)
            ours = file.rows[seed]
        elif ours["class_counts"] != row["class_counts"]:
            raise SystemExit(f"seed {seed}: {source} drew class counts {row['class_counts']}, {target} "
                             f"{ours['class_counts']}: not the same subset, not merged")
        for key, arm in arms.items():
            if key not in ours["arms"]:
                file.put_cell(seed, key, arm, save=False)
                added.append(f"seed {seed} {key}: {arm.get('acc')}")
            elif adds_validation(ours["arms"][key], arm):
                file.put_cell(seed, key, arm, save=False)
                what = "why no validation could be added" if "validation_refused" in arm else "its validation"
                added.append(f"seed {seed} {key}: {what} (downstream.py --validate-measured)")
            elif ours["arms"][key].get("acc") != arm.get("acc"):
                differing.append(f"seed {seed} {key}: kept {ours['arms'][key].get('acc')}, theirs {arm.get('acc')}")
    for command in theirs.get("commands", []):
        if command not in file.results["commands"]:
            file.results["commands"].append(command)
    for key in PROVENANCE_FIELDS:  # a target that lost them (merged before they were kept) gets theirs
        if key not in file.results and key in theirs:
            file.results[key] = theirs[key]
    file.results["seeds"] = sorted(set(file.results["seeds"]) | set(theirs["seeds"]))
    file.results["sources"] = list(dict.fromkeys(file.results["sources"] + theirs["sources"]))
    file.save()  # once, for every arm added (and when none was: the summary by this version's rules)
    return [f"added {a}" for a in added] + [f"differs (TARGET's kept) {d}" for d in differing]


def adds_validation(ours: dict, theirs: dict) -> bool:
    """Whether THEIRS is OURS plus what ``downstream.py --validate-measured`` added to it: every
    field of ours unchanged, and a validation score ours lacks, or why none could be added
    (``validation_refused``: the generator trained again was not the measured one)."""
    return (not validation_settled(ours) and validation_settled(theirs)
            and all(k in theirs and theirs[k] == v for k, v in ours.items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path, nargs="?")
    args = p.parse_args()
    target = args.target or RESULTS / args.source.name
    if not target.exists():
        raise SystemExit(f"{target} does not exist: copy {args.source} there instead")
    for line in merge(args.source, target) or ["nothing to add"]:
        print(line)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
