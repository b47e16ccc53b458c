"""SyntheticDataset: synthetic images in stock torchvision datasets, whose transform= sees only the
image; and every example in the transforms' docstrings runs as written."""

from __future__ import annotations

import re

import numpy as np
import PIL.Image
import pytest
import torch
from torch.utils.data import DataLoader, random_split
from torchvision.datasets import FashionMNIST, ImageFolder, VisionDataset
from torchvision.transforms import v2

from augmentgen.errors import ConfigError, DataError
from augmentgen.mixing import SyntheticPool
from augmentgen.models import build_config, build_generator
from augmentgen.transforms import ReplaceWithSynthetic, SyntheticDataset
from tests.conftest import send_to_worker

REAL = 9  # every real pixel; the pool's images are never uniformly 9


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8))


@pytest.fixture(scope="module")
def pool(generator):
    return SyntheticPool(generator, per_class=4, seed=0)


def in_bank(pool, image_uint8_chw, label):
    return any(torch.equal(image_uint8_chw, pool.images[label, i]) for i in range(pool.per_class))


def to_uint8(image):
    return (image * 255).round().to(torch.uint8)


TO_FLOAT = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


@pytest.fixture
def image_root(tmp_path):
    for name in ["cat", "dog", "eel"]:
        (tmp_path / name).mkdir()
        for i in range(2):
            PIL.Image.fromarray(np.full((28, 28), REAL, np.uint8)).save(tmp_path / name / f"{i}.png")
    return tmp_path


def test_transform_of_a_stock_image_folder_gets_no_class_and_says_what_to_do(pool, image_root):
    dataset = ImageFolder(str(image_root), transform=ReplaceWithSynthetic(pool, p=1.0))
    with pytest.raises(DataError, match=r"needs the class but got a bare Image.*SyntheticDataset\(ImageFolder"):
        dataset[0]


def test_image_folder_wrapped(pool, image_root):
    real = ImageFolder(str(image_root), transform=TO_FLOAT, target_transform=lambda t: t * 10)
    dataset = SyntheticDataset(real, pool, p=1.0)
    images, labels = next(iter(DataLoader(dataset, batch_size=6)))
    # The dataset's own transforms ran after the replacement: float images (RGB, as ImageFolder's
    # loader converts every file to RGB), mapped targets.
    assert images.shape == (6, 3, 28, 28) and images.dtype == torch.float32
    assert labels.tolist() == [0, 0, 10, 10, 20, 20]
    assert all(in_bank(pool, to_uint8(image[:1]), label // 10) for image, label in zip(images, labels))
    assert real.transform is TO_FLOAT and real[0][0].dtype == torch.float32  # the user's dataset untouched
    assert dataset.classes == ["cat", "dog", "eel"] and len(dataset) == 6
    untouched = SyntheticDataset(real, pool, p=0.0)
    assert torch.equal(untouched[0][0], real[0][0])


def test_image_folder_with_pil_output_and_later_transform_assignment(pool, image_root):
    real = ImageFolder(str(image_root))
    real.transform = v2.RandomHorizontalFlip(p=1.0)  # set after construction: real.transforms is stale
    image, label = SyntheticDataset(real, pool, p=1.0)[5]
    flipped = torch.from_numpy(np.array(image)[..., 0])[None].flip(-1)
    assert isinstance(image, PIL.Image.Image) and label == 2 and in_bank(pool, flipped, 2)


def _write_fashion_mnist_raw(root, n=6):
    """The four idx files torchvision's FashionMNIST reads, tiny; nothing is downloaded."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        images = (2051).to_bytes(4, "big") + n.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(images + bytes([REAL]) * (n * 28 * 28))
        labels = (2049).to_bytes(4, "big") + n.to_bytes(4, "big") + bytes(i % 3 for i in range(n))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(labels)


def test_stock_fashion_mnist_and_a_random_split(pool, tmp_path):
    _write_fashion_mnist_raw(tmp_path)
    real = FashionMNIST(str(tmp_path), train=True, transform=TO_FLOAT, download=False)
    train, _ = random_split(real, [4, 2], generator=torch.Generator().manual_seed(0))
    for dataset in (SyntheticDataset(real, pool, p=1.0), SyntheticDataset(train, pool, p=1.0)):
        for image, label in (dataset[i] for i in range(len(dataset))):
            assert image.dtype == torch.float32 and in_bank(pool, to_uint8(image), label)
    with pytest.raises(TypeError):  # the old docstring's example: FashionMNIST takes no transforms=
        FashionMNIST(str(tmp_path), transforms=ReplaceWithSynthetic(pool))


class FashionStyle(VisionDataset):
    """A FashionMNIST-like VisionDataset: uint8 data, PIL images, transform / target_transform."""

    classes = ["a", "b", "c"]

    def __init__(self, transform=None, target_transform=None, transforms=None):
        super().__init__(root=None, transform=transform, target_transform=target_transform, transforms=transforms)
        self.data = torch.full((6, 28, 28), REAL, dtype=torch.uint8)
        self.targets = torch.arange(6) % 3

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        image, target = PIL.Image.fromarray(self.data[i].numpy(), mode="L"), int(self.targets[i])
        if self.transforms is not None:
            return self.transforms(image, target)
        return image, target


def test_vision_dataset_style_in_spawned_workers(pool):
    dataset = SyntheticDataset(FashionStyle(transform=TO_FLOAT), pool, p=1.0)
    clone = send_to_worker(dataset)  # what a spawned DataLoader worker receives
    assert torch.equal(clone.pool.images, pool.images) and clone.p == 1.0
    image, label = clone[4]
    assert label == 1 and image.dtype == torch.float32 and in_bank(pool, to_uint8(image), 1)
    # A VisionDataset that calls self.transforms(image, target) takes ReplaceWithSynthetic as is.
    direct = FashionStyle(transforms=v2.Compose([ReplaceWithSynthetic(pool, p=1.0), TO_FLOAT]))
    image, label = direct[2]
    assert label == 2 and in_bank(pool, to_uint8(image), 2)


def test_rate_and_errors(pool, generator, image_root):
    torch.manual_seed(0)
    dataset = SyntheticDataset(FashionStyle(transform=v2.PILToTensor()), pool, p=0.3)
    replaced = sum(not bool((dataset[i % 6][0] == REAL).all()) for i in range(300))
    assert 60 <= replaced <= 120  # ~90 expected; binomial sd ~8
    with pytest.raises(ConfigError, match=r"SyntheticPool is needed.*SyntheticPool\(generator"):
        SyntheticDataset(ImageFolder(str(image_root)), generator)
    with pytest.raises(ConfigError, match="SyntheticPool is needed"):
        ReplaceWithSynthetic(generator)
    with pytest.raises(ConfigError, match="probability"):
        SyntheticDataset(ImageFolder(str(image_root)), pool, p=1.5)


def _example(obj) -> str:
    """The code of ``obj``'s ``Example::`` docstring block, dedented."""
    import textwrap

    block = re.search(r"Example::\n\n((?:\s{8}.*\n|\n)+)", obj.__doc__)
    assert block, f"{obj.__name__} has no Example:: block"
    return textwrap.dedent(block.group(1))


def test_docstring_examples_run(generator, pool, image_root):
    namespace = {"torch": torch, "v2": v2, "ImageFolder": ImageFolder, "DataLoader": DataLoader,
                 "SyntheticPool": SyntheticPool, "generator": generator, "root": str(image_root),
                 "SyntheticDataset": SyntheticDataset}
    exec(_example(SyntheticDataset), namespace)
    assert namespace["images"].shape == (4, 3, 28, 28)
    namespace = {"torch": torch, "v2": v2, "ReplaceWithSynthetic": ReplaceWithSynthetic, "pool": pool,
                 "pil_image": PIL.Image.fromarray(np.full((28, 28), REAL, np.uint8))}
    exec(_example(ReplaceWithSynthetic), namespace)
    assert namespace["label"] == 2 and namespace["sample"]["label"] == 2
