"""check_held_out: the test data of an evaluation holds out its training data."""

from __future__ import annotations

import warnings

import pytest
import torch

from augmentgen.data import LabelledImages
from augmentgen.errors import DataError
from augmentgen.metrics.report import evaluate_generator
from augmentgen.metrics.scores import downstream_gain
from augmentgen.metrics.splits import check_held_out
from tests.conftest import make_images
from tests.metrics.fakes import RealImagesGenerator


def _with_copies(test: LabelledImages, train: LabelledImages, n: int) -> LabelledImages:
    images, labels = test.images.clone(), test.labels.clone()
    images[:n], labels[:n] = train.images[:n], train.labels[:n]
    return LabelledImages(images, labels, test.class_names)


def test_a_test_set_holding_the_training_images_is_refused_and_a_few_copies_warned_of():
    train, test = make_images(n_per_class=10, num_classes=3, seed=0), make_images(n_per_class=40, num_classes=3, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_held_out(train, test)  # disjoint: silent
    with pytest.raises(DataError, match=r"30 of the 30 images of test_data are exact copies of training images "
                                        r"\(30 of the 30 training images are among them\): a test on them measures"):
        check_held_out(train, train)
    with pytest.warns(UserWarning, match=r"3 of the 120 images of test_data are exact copies .*not held out"):
        check_held_out(train, _with_copies(test, train, 3))
    with pytest.raises(DataError, match="13 of the 120 images"):  # more than a tenth of the test set
        check_held_out(train, _with_copies(test, train, 13))
    # the training subset drawn from the test images: a few test images, but every training one
    with pytest.raises(DataError, match=r"\(30 of the 30 training images are among them\)"):
        check_held_out(train, LabelledImages(
            torch.cat([test.images, train.images]), torch.cat([test.labels, train.labels]), test.class_names))


def test_evaluations_refuse_their_training_data_as_test_data_before_training():
    train = make_images(n_per_class=10, num_classes=3, seed=0)
    generator = RealImagesGenerator(train)
    for call in (evaluate_generator, downstream_gain):
        with pytest.raises(DataError, match="exact copies of training images"):
            call(generator, train, train, steps=1, progress=None)
