"""ConditionalGenerator.sample / sample_per_class: every label form is accepted cleanly or refused
with a message that names the problem, the accepted forms and the class names."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from augmentgen.errors import ConfigError, DataError
from augmentgen.models.base import ConditionalGenerator, GeneratorConfig

NAMES = ["T-shirt/top", "Trouser", "Bag"]


class LabelEcho(ConditionalGenerator):
    """Image ``i`` is filled with its label / 10, so a test reads back which class was sampled."""

    def __init__(self):
        super().__init__(GeneratorConfig(num_classes=3, image_size=28, latent_dim=2, class_names=NAMES))
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device

    def generate(self, labels, noise):
        return labels.float().div(10).view(-1, 1, 1, 1).expand(-1, 1, 28, 28)


def sampled_classes(images: torch.Tensor) -> list[int]:
    return images[:, 0, 0, 0].mul(10).round().long().tolist()


@pytest.fixture(scope="module")
def gen():
    return LabelEcho()


@pytest.mark.parametrize("labels, expected", [
    (["Bag"], [2]),
    (["Bag", "T-shirt/top", 1], [2, 0, 1]),
    (("Trouser", np.int64(2)), [1, 2]),
    ([torch.tensor(2), 0], [2, 0]),
    (np.array(["Bag", "Trouser"]), [2, 1]),
    (np.array([0, 2], dtype=np.int32), [0, 2]),
    (torch.tensor([1, 1], dtype=torch.uint8), [1, 1]),
    ([], []),
])
def test_accepted_label_forms(gen, labels, expected):
    assert sampled_classes(gen.sample(labels)) == expected


def test_tensor_fast_path_is_unchanged(gen):
    labels = torch.tensor([2, 0, 1])
    assert torch.equal(gen.check_labels(labels), labels)


@pytest.mark.parametrize("labels, problem, fix", [
    ("Bag", "single str 'Bag', not a sequence", r"pass \['Bag'\] for one image"),
    (3, "single int 3, not a sequence", r"sample_per_class\(n\)"),
    (["bag"], "'bag' is not a class name", "did you mean 'Bag'"),
    (["Sneaker"], "'Sneaker' is not a class name", "its classes are 'T-shirt/top', 'Trouser', 'Bag'"),
    ([0.0, 1.0], r"labels\[0\] is the float 0.0", "class indices"),
    (torch.tensor([0.0, 1.0]), "dtype torch.float32", r"labels.long\(\)"),
    (np.array([True, False]), "dtype torch.bool", "class names"),
    ([True], r"labels\[0\] is the bool True", "class names"),
    (torch.tensor([[0], [1]]), r"shape \(2, 1\)", "flatten"),
    (torch.eye(3), r"shape \(3, 3\)", r"argmax\(1\)"),
    ([3], r"labels \[3\] are outside \[0, 2\]: this generator has 3 classes",
     r"'Bag'\); pass class indices in \[0, 2\] or class names"),
    (torch.tensor([-1, 0]), r"labels \[-1\] are outside \[0, 2\]",
     r"class indices start at 0: drop the rows labelled \[-1\]"),
    ([[0, 1]], r"labels\[0\] is the list", "1-D integer tensor"),
    (None, "single NoneType None", "class indices"),
])
def test_refused_label_forms_name_problem_then_fix(gen, labels, problem, fix):
    with pytest.raises(DataError) as info:
        gen.sample(labels)
    message = str(info.value)
    assert re.search(problem, message), message
    assert re.search(fix, message), message
    assert "Traceback" not in message


@pytest.mark.parametrize("n", [0, -5, 2.5, True, "3"])
def test_sample_per_class_refuses_non_positive_counts(gen, n):
    with pytest.raises(ConfigError, match="per_class must be a positive int"):
        gen.sample_per_class(n)


def test_sample_per_class_and_batch_size(gen):
    images, labels = gen.sample_per_class(2)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2] and sampled_classes(images) == labels.tolist()
    assert sampled_classes(gen.sample(["Bag"] * 5, batch_size=2)) == [2] * 5
    for bad in (0, -1, 1.5):
        with pytest.raises(ConfigError, match="batch_size must be a positive int"):
            gen.sample([0], batch_size=bad)


def test_the_mixers_label_check_is_the_same_on_the_cpu(gen):
    # Inside labels_checked_on_device (the mixer's step) labels on an accelerator are checked by a
    # device-side assert; on the CPU the check and its DataError are those of a direct call.
    from augmentgen.models.base import labels_checked_on_device

    with labels_checked_on_device():
        assert sampled_classes(gen.sample(torch.tensor([2, 0]))) == [2, 0]
        with pytest.raises(DataError, match=r"labels \[3\] are outside \[0, 2\]"):
            gen.sample(torch.tensor([0, 3]))
        with pytest.raises(DataError, match=r"labels \[-1\] are outside \[0, 2\]"):
            gen.check_labels(torch.tensor([-1]))
    with pytest.raises(DataError, match=r"labels \[3\] are outside \[0, 2\]"):  # and after the block
        gen.sample([3])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_mixers_label_check_makes_no_host_sync_on_cuda():
    from augmentgen.models.base import labels_checked_on_device

    cuda_gen = LabelEcho().cuda()
    labels = torch.tensor([2, 0, 1], device="cuda")
    cuda_gen.check_labels(labels)  # CUDA's lazy start-up outside the sync check
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with labels_checked_on_device():
            checked = cuda_gen.check_labels(labels)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(checked, labels)
    # A direct call keeps its DataError on CUDA (one sync per call).
    with pytest.raises(DataError, match=r"labels \[3\] are outside \[0, 2\]"):
        cuda_gen.check_labels(torch.tensor([3], device="cuda"))
