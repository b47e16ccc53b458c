"""``LabelledImages``: what it refuses, and that each refusal says how to make the data it takes."""

import numpy as np
import pytest
import torch

from augmentgen.data import LabelledImages
from augmentgen.errors import DataError

IMAGES = np.zeros((4, 1, 28, 28), np.uint8)


@pytest.mark.parametrize("class_names, message", [
    ("ab", r"class_names must be a list of strings, one per class, got the str 'ab'; for one class pass \['ab'\]"),
    ({0: "a", 1: "b"}, r"class_names must be a list of strings, one per class, got the dict"),
    ([3, 7], r"class_names must be non-empty strings, got 3 among \[3, 7\]; pass e.g. \[str\(n\) for n"),
    (["a", ""], r"class_names must be non-empty strings, got '' among"),
    (["a", "a"], r"class_names repeats \['a'\]: two classes of one name cannot be told apart"),
])
def test_class_names_that_are_not_distinct_strings_are_refused(class_names, message):
    """A string was read as one name per character ('ab' as ['a', 'b']), a dict as its keys."""
    with pytest.raises(DataError, match=message):
        LabelledImages(IMAGES, [0, 1, 0, 1], class_names)


def test_numpy_class_names_are_kept_as_plain_strings():
    names = LabelledImages(IMAGES, [0, 1, 0, 1], np.array(["a", "b"])).class_names
    assert names == ["a", "b"] and all(type(n) is str for n in names)


@pytest.mark.parametrize("labels, message", [
    (["cat", "dog", "cat", "dog"], r"labels must be integer class indices, got <U3 values like \['cat', 'dog', "
                                   r"'cat'\]; encode them: names, labels = np.unique\(labels, return_inverse=True\)"),
    (np.array([0, 1, None, 1], dtype=object), r"1 of 4 labels are missing \(None\); drop those images first"),
    (np.eye(2)[[0, 1, 0, 1]], r"labels must be 1-D, one class index per image, got shape \(4, 2\); one-hot "
                              r"labels\? pass labels.argmax\(1\)"),
    ([[0], [1], [0], [1]], r"got shape \(4, 1\); pass labels.reshape\(-1\)"),
    ([1, 2, 1, 2], r"the labels \[1, 2\] leave class\(es\) \[0\] without images: labels must number the classes "
                   r"0..K-1, each with images; renumber them"),
])
def test_labels_of_the_wrong_form_say_how_to_make_class_indices(labels, message):
    with pytest.raises(DataError, match=message):
        LabelledImages(IMAGES, labels)


@pytest.mark.parametrize("images, message", [
    ([torch.zeros(1, 28, 28, dtype=torch.uint8)] * 4, r"got a list of arrays; stack them first: torch.stack"),
    (torch.zeros(4, 28, 28, 3, dtype=torch.uint8), r"got \(4, 28, 28, 3\): channels-last\? pass "
                                                   r"images.permute\(0, 3, 1, 2\)"),
    (torch.zeros(4, 1, 28, 28), r"got dtype torch.float32 \(floats in \[0, 1\]: \(images \* 255\).round\(\)"),
])
def test_images_of_the_wrong_form_say_how_to_make_a_uint8_nchw_tensor(images, message):
    with pytest.raises(DataError, match=message):
        LabelledImages(images, [0, 1, 0, 1])


def test_a_single_class_is_named():
    with pytest.raises(DataError, match=r"the dataset has a single class \('train'\)"):
        LabelledImages(IMAGES, [0, 0, 0, 0], ["train"])
    # where the images came from is named, and what a second class looks like in an image folder
    with pytest.raises(DataError, match=r"the dataset \(photos/\) has a single class \('cat'\); .* one sub-folder "
                                        r"of images per class"):
        LabelledImages(IMAGES, [0, 0, 0, 0], ["cat"], source="photos/")
