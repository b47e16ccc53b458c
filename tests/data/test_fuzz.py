"""Fuzzing the data adapters: whatever arrays a user hands in, the only exceptions are augmentgen's."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from augmentgen.data import LabelledImages, load_data
from augmentgen.errors import AugmentgenError

DTYPES = st.sampled_from([np.uint8, np.int64, np.float32, np.float64, np.bool_, np.int8])
IMAGES = DTYPES.flatmap(lambda dtype: arrays(dtype, array_shapes(min_dims=1, max_dims=5, max_side=6)))
LABELS = st.one_of(
    arrays(np.int64, st.integers(0, 12), elements=st.integers(-3, 12)),
    arrays(np.float32, st.integers(0, 12), elements=st.floats(-2, 12, width=32)),
    st.lists(st.integers(-2, 5), max_size=12),
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(images=IMAGES, labels=LABELS)
def test_labelled_images_from_any_arrays(images, labels):
    try:
        data = LabelledImages(images, labels)
    except AugmentgenError:
        return
    # Accepted: the invariants every consumer relies on hold.
    assert data.images.dtype == torch.uint8 and data.images.ndim == 4
    assert data.labels.dtype == torch.int64 and len(data.labels) == len(data.images)
    assert int(data.labels.min()) >= 0 and int(data.labels.max()) < data.num_classes
    assert min(data.class_counts) >= 1


@SETTINGS
@given(images=IMAGES, labels=LABELS, with_classes=st.booleans(), channels=st.sampled_from([None, 1, 3]))
def test_npz_files_of_any_content(tmp_path_factory, images, labels, with_classes, channels):
    path = tmp_path_factory.mktemp("npz") / "data.npz"
    arrays_ = {"images": images, "labels": np.asarray(labels)}
    if with_classes:
        arrays_["classes"] = np.array(["a", "b", "c"])
    np.savez(path, **arrays_)
    try:
        data = load_data(path, channels=channels)
    except AugmentgenError:
        return
    assert data.images.dtype == torch.uint8 and data.images.shape[1] in (1, 3)
    if channels is not None:
        assert data.images.shape[1] == channels


@SETTINGS
@given(payload=st.binary(max_size=300))
def test_garbage_npz_files_are_data_errors(tmp_path_factory, payload):
    path = tmp_path_factory.mktemp("npz") / "garbage.npz"
    path.write_bytes(payload)
    try:
        load_data(path)
    except AugmentgenError:
        pass
