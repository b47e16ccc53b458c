"""Exact-copy detection between image sets: one 64-bit fingerprint per image, computed in chunks.

The evaluation's test data must be held out from its training data; a test set that holds the
training images (the same file passed twice, or the split the subset was drawn from) measures
memory, not generalisation. :func:`shared_images` finds such images without a Python loop per image.
"""

from __future__ import annotations

import torch

__all__ = ["image_fingerprints", "shared_images"]

_CHUNK = 4096  # images a step: bounds the int64 copy at 4096 x pixels x 8 bytes


def image_fingerprints(images: torch.Tensor) -> torch.Tensor:
    """A 64-bit fingerprint (N,) of each image of ``images`` (N, ...), of any dtype: a dot product
    of its bytes with fixed random odd 64-bit weights, in integer arithmetic (wrapping), so equal
    images give equal fingerprints exactly and two different images collide with probability
    about 2^-64."""
    if len(images) == 0:
        return torch.zeros(0, dtype=torch.int64, device=images.device)
    flat = images.reshape(len(images), -1).contiguous().view(torch.uint8)  # bytes: floats are not truncated
    weights = torch.randint(-2 ** 62, 2 ** 62, (flat.shape[1],), generator=torch.Generator().manual_seed(0),
                            dtype=torch.int64).bitwise_or_(1).to(flat.device)
    return torch.cat([(chunk.to(torch.int64) * weights).sum(1) for chunk in flat.split(_CHUNK)])


def shared_images(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bool masks ``(a_in_b, b_in_a)``: which images of ``a`` (N, ...) are exact copies of some
    image of ``b`` (M, ...), and the reverse, from one fingerprint of each image; all False where
    the two differ in image shape or dtype."""
    if a.shape[1:] != b.shape[1:] or a.dtype != b.dtype:
        return (torch.zeros(len(a), dtype=torch.bool, device=a.device),
                torch.zeros(len(b), dtype=torch.bool, device=b.device))
    fa, fb = image_fingerprints(a), image_fingerprints(b).to(a.device)
    return torch.isin(fa, fb), torch.isin(fb, fa).to(b.device)
