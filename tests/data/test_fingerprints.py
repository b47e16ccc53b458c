"""Exact copies between image sets, found by fingerprint."""

from __future__ import annotations

import torch

from augmentgen.data.fingerprints import image_fingerprints, shared_images


def copies_in(reference, images):
    return shared_images(images, reference)[0]


def test_copies_are_found_and_near_copies_are_not():
    g = torch.Generator().manual_seed(0)
    reference = torch.randint(0, 256, (50, 1, 28, 28), generator=g, dtype=torch.uint8)
    images = torch.randint(0, 256, (20, 1, 28, 28), generator=g, dtype=torch.uint8)
    images[3], images[7] = reference[10], reference[42]
    images[9] = reference[5]
    images[9, 0, 13, 13] ^= 1  # one pixel off by one: not a copy
    assert copies_in(reference, images).nonzero().flatten().tolist() == [3, 7]
    assert shared_images(images, reference)[1].nonzero().flatten().tolist() == [10, 42]  # the reverse
    # chunks do not change a fingerprint: the same image alone or among 5000 gives the same value
    many = reference[10].expand(5000, 1, 28, 28)
    assert (image_fingerprints(many) == image_fingerprints(reference[10:11])).all()
    assert len(set(image_fingerprints(reference).tolist())) == 50
    # float images are compared by their bytes, not truncated: 0.25 and 0.5 differ
    assert not copies_in(torch.full((1, 1, 2, 2), 0.25), torch.full((1, 1, 2, 2), 0.5)).any()
    assert copies_in(torch.full((1, 1, 2, 2), 0.25), torch.full((1, 1, 2, 2), 0.25)).all()
    # another shape or dtype holds no copy; an empty set none either
    assert not copies_in(reference[:, :, :27], images[:, :, :27].float()).any()
    assert not copies_in(reference, images[:0]).any() and copies_in(reference[:0], images).sum() == 0
