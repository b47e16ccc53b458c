"""The downstream protocol's cells: which real images a seed trains on, its oracle and held-out sets.

A cell is a dataset and a budget of real images: ``10pc`` / ``50pc`` (that many per class),
``200pc`` for the shared CIFAR-10 copy (4000 images, 366 to 422 a class), or ``lt100``
(long-tailed, 500 images of the commonest class down to 5). For a seed:

- ``subset``: the real training images every arm sees;
- ``oracle``: twice as many real images per class, drawn from the same seeded permutation, so
  it contains ``subset`` (the arm that says what a perfect generator could add); where a class
  holds fewer (CIFAR-10's copy: 366 automobiles for 2 x 200), all of that class's images, down
  to ``ORACLE_LEAST`` times the subset (the arm records its counts);
- ``heldout``: real training images outside ``subset`` (up to ``heldout_per_class`` a class),
  on which the convergence sweep chooses the classifier budget, never the test set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from augmentgen.data import LabelledImages, load_data, long_tailed_counts, per_class_subset

ROOT = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("AUGMENTGEN_DATA_DIR", ROOT.parents[1] / "shared" / "data"))

#: The budgets the suite measures, per dataset.
CELLS = {
    "mnist": ["10pc", "50pc"],
    "fashion-mnist": ["10pc", "50pc", "lt100"],
    "cifar10": ["200pc"],
}
LONG_TAIL_MAX = 500  # images of the commonest class in the long-tailed budget
#: The oracle's least size, in subsets per class, where the data hold fewer than two: below it
#: the arm would say too little of what twice the data gives, and the cell has no oracle.
ORACLE_LEAST = 1.5
#: Validation folds a choice (best baseline, variation mode) averages, where one 20% split is too
#: few images to choose on: 2 per class at 10/class, 1 of each rare class at lt100. k-fold scores
#: every image once; 3 folds on lt100 because each of its runs is 3x longer. Others: one split.
SELECTION_FOLDS = {"10pc": 5, "lt100": 3}


@dataclass
class Cell:
    dataset: str
    budget: str
    subset: LabelledImages
    oracle: LabelledImages | None
    heldout: LabelledImages | None

    @property
    def long_tailed(self) -> bool:
        return self.budget.startswith("lt")


def budget_counts(budget: str, num_classes: int) -> list[int]:
    """Real images per class of a budget name (``50pc``, ``lt100``)."""
    if budget.endswith("pc"):
        return [int(budget[:-2])] * num_classes
    if budget.startswith("lt"):
        return long_tailed_counts(num_classes, LONG_TAIL_MAX, float(budget[2:]))
    raise ValueError(f"unknown budget {budget!r}: '<N>pc' or 'lt<ratio>'")


def load_split(dataset: str, split: str = "train") -> LabelledImages:
    return load_data(dataset, data_dir=DATA_DIR, split=split)


def draw_cell(full: LabelledImages, dataset: str, budget: str, seed: int, *,
              heldout_per_class: int = 500) -> Cell:
    """The seed's subset, oracle (None if the data has too few images) and held-out images."""
    counts = budget_counts(budget, full.num_classes)
    available = [int(n) for n in full.class_counts]
    subset = per_class_subset(full, counts, seed=seed)
    doubled = [min(2 * n, a) for n, a in zip(counts, available)]
    oracle = (per_class_subset(full, doubled, seed=seed)
              if all(d >= ORACLE_LEAST * n for d, n in zip(doubled, counts)) else None)
    spare = [min(heldout_per_class, a - n) for a, n in zip(available, counts)]
    heldout = per_class_subset(full, spare, seed=seed, offset=counts) if min(spare) > 0 else None
    return Cell(dataset, budget, subset, oracle, heldout)
