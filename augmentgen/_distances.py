"""Distances between rows of images or features, shared by the trainer's snapshot score and the
measures (the two are sibling layers, so each distance lives here, once).

Every function takes float rows (N, D) on one device and runs batched ``torch`` on it: no Python
loop over rows or pairs.
"""

from __future__ import annotations

import math

import torch


def median_pairwise_distance(rows: torch.Tensor) -> torch.Tensor:
    """Median Euclidean distance over the distinct pairs of ``rows`` (n >= 2, D), a 0-d tensor
    (the lower median when the number of pairs is even)."""
    # Distances do not move with a translation; moving the origin onto a row keeps cdist's
    # matrix-product path accurate (identical rows become exact zeros, not rounding noise).
    rows = rows - rows[:1]
    i, j = torch.triu_indices(len(rows), len(rows), offset=1, device=rows.device)
    return torch.cdist(rows, rows)[i, j].median()


def nearest_distances(queries: torch.Tensor, bank: torch.Tensor, *, chunk: int = 2048,
                      leave_one_out: bool = False) -> torch.Tensor:
    """Distance of each query row (N, D) to its nearest row of ``bank`` (M, D), shape (N,).

    The nearest row is found by ``torch.cdist`` on chunks of ``chunk`` queries; the distance to it
    is then recomputed directly, so a query equal to a bank row gets exactly 0. With
    ``leave_one_out``, ``queries`` must be ``bank`` itself and each row's own entry is skipped: the
    distance of every bank row to its nearest *other* row (M >= 2), the spread a new draw from the
    bank's distribution would show.
    """
    if leave_one_out and queries is not bank:
        raise ValueError("leave_one_out needs queries to be the bank itself")
    centre = bank.mean(dim=0, keepdim=True)
    queries, bank = queries - centre, bank - centre
    out = []
    for start in range(0, len(queries), chunk):
        block = queries[start: start + chunk]
        distances = torch.cdist(block, bank)
        if leave_one_out:
            own = torch.arange(start, start + len(block), device=block.device)
            distances[torch.arange(len(block), device=block.device), own] = math.inf
        nearest = distances.argmin(dim=1)
        out.append((block - bank[nearest]).norm(dim=1))
    return torch.cat(out) if out else queries.new_empty(0)


def gaussian_frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to feature rows ``a`` (N, D) and ``b`` (M, D):
    ``|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2)``, through symmetric
    eigendecompositions (exact for singular covariances, as few rows give); NaN with fewer than 2
    rows on a side."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    a, b = a.double(), b.double()
    cov_a, cov_b = torch.atleast_2d(torch.cov(a.T)), torch.atleast_2d(torch.cov(b.T))
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = (vectors * values.clamp(min=0).sqrt()) @ vectors.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    distance = (a.mean(0) - b.mean(0)).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return max(0.0, float(distance))
