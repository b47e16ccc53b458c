"""ReplaceWithSynthetic (torchvision v2): type, dtype, pickling, no in-place change, Compose."""

from __future__ import annotations

import pickle

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from augmentgen.errors import ConfigError, DataError
from augmentgen.mixing import SyntheticPool
from augmentgen.models import build_config, build_generator
from augmentgen.transforms import ReplaceWithSynthetic
from augmentgen.transforms import functional as F
from tests.conftest import send_to_worker


@pytest.fixture(scope="module")
def pool():
    torch.manual_seed(0)
    g = build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8))
    return SyntheticPool(g, per_class=4, seed=0)


def in_bank(pool, image_uint8_chw, label):
    return any(torch.equal(image_uint8_chw, pool.images[label, i]) for i in range(pool.per_class))


def make_inputs():
    base = torch.full((1, 28, 28), 7, dtype=torch.uint8)
    return {
        "pil": PIL.Image.fromarray(base[0].numpy()),
        "pil_rgb": PIL.Image.fromarray(base.expand(3, -1, -1).permute(1, 2, 0).numpy().copy()),
        "uint8": base.clone(),
        "float": base.float() / 255,
        "rgb_uint8": base.expand(3, -1, -1).clone(),
        "tv_image": tv_tensors.Image(base.clone()),
    }


def as_uint8(out):
    if isinstance(out, PIL.Image.Image):
        array = np.array(out)
        return torch.from_numpy(array if array.ndim == 3 else array[..., None]).permute(2, 0, 1)[:1]
    out = out.as_subclass(torch.Tensor)
    return (out * 255).round().to(torch.uint8)[:1] if out.is_floating_point() else out[:1]


@pytest.mark.parametrize("kind", list(make_inputs()))
def test_checker_type_dtype_no_inplace_pickle(pool, kind):
    inpt = make_inputs()[kind]
    snapshot = pickle.dumps(inpt)
    transform = ReplaceWithSynthetic(pool, p=1.0)
    image, label = transform(inpt, 2)
    assert type(image) is type(inpt) and label == 2
    if isinstance(inpt, torch.Tensor):
        assert image.dtype == inpt.dtype and image.device == inpt.device and image.shape == inpt.shape
        assert image.data_ptr() != inpt.data_ptr()
    else:
        assert image.mode == inpt.mode and image.size == inpt.size
    assert in_bank(pool, as_uint8(image), 2)
    assert pickle.dumps(inpt) == snapshot  # input untouched
    clone = send_to_worker(transform)
    assert torch.equal(clone.pool.images, pool.images) and clone.p == 1.0
    image2, _ = clone(inpt, 2)
    assert type(image2) is type(inpt)


def test_p_zero_returns_input_and_p_rate(pool):
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    out, _ = ReplaceWithSynthetic(pool, p=0.0)(image, 1)
    assert out is image
    torch.manual_seed(0)
    t = ReplaceWithSynthetic(pool, p=0.3)
    replaced = sum(not torch.equal(t(image, 1)[0], image) for _ in range(400))
    assert 90 <= replaced <= 150  # ~120 expected; binomial sd ~9


def test_dict_sample_and_extra_leaves(pool):
    sample = {"image": torch.zeros(1, 28, 28, dtype=torch.uint8), "label": torch.tensor(1), "index": 5,
              "mask": tv_tensors.Mask(torch.ones(28, 28))}
    out = ReplaceWithSynthetic(pool, p=1.0)(sample)
    assert set(out) == set(sample) and out["index"] == 5 and torch.equal(out["label"], torch.tensor(1))
    assert out["mask"] is sample["mask"]
    assert in_bank(pool, out["image"], 1)


def test_tensor_label_before_image_is_not_replaced(pool):
    sample = {"label": torch.tensor(2), "image": torch.zeros(1, 28, 28, dtype=torch.uint8)}
    out = ReplaceWithSynthetic(pool, p=1.0)(sample)
    assert out["label"] is sample["label"] and in_bank(pool, out["image"], 2)


def test_compose_end_to_end_with_dataset(pool):
    from torchvision.datasets import VisionDataset

    class Tiny(VisionDataset):
        def __init__(self, transforms):
            super().__init__(root=None, transforms=transforms)
            self.images = [PIL.Image.fromarray(np.full((28, 28), 9, np.uint8)) for _ in range(6)]

        def __len__(self):
            return 6

        def __getitem__(self, i):
            return self.transforms(self.images[i], i % 3)

    transform = v2.Compose([
        ReplaceWithSynthetic(pool, p=1.0),
        v2.ToImage(),
        v2.RandomHorizontalFlip(p=0.0),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([0.5], [0.5]),
    ])
    loader = torch.utils.data.DataLoader(Tiny(transform), batch_size=6)
    images, labels = next(iter(loader))
    assert images.shape == (6, 1, 28, 28) and images.dtype == torch.float32
    assert labels.tolist() == [0, 1, 2, 0, 1, 2]
    for image, label in zip(images, labels):
        assert in_bank(pool, ((image * 0.5 + 0.5) * 255).round().to(torch.uint8), label)


def test_errors(pool):
    t = ReplaceWithSynthetic(pool, p=1.0)
    with pytest.raises(DataError, match="needs the class"):
        t(torch.zeros(1, 28, 28))
    with pytest.raises(DataError, match="Resize"):
        t(torch.zeros(1, 32, 32), 0)
    with pytest.raises(DataError, match="out of range"):
        t(torch.zeros(1, 28, 28), 7)
    with pytest.raises(DataError, match="integer"):
        t(torch.zeros(1, 28, 28), 0.5)
    with pytest.raises(ConfigError):
        ReplaceWithSynthetic(pool, p=2)


def test_functional():
    fake = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)
    assert F.to_uint8(fake).flatten().tolist() == [0, 128, 255]
    assert F.from_generator_range(fake, output_range=(0, 1)).flatten().tolist() == [0.0, 0.5, 1.0]
    assert F.from_generator_range(fake, output_range=(0, 255)).flatten().tolist() == [0.0, 127.5, 255.0]
    out = F.from_generator_range(fake, mean=[0.5, 0.5, 0.0], std=[0.5, 0.5, 2.0])
    assert out.flatten().tolist() == [-1.0, 0.0, 0.5]
    assert F.from_generator_range(fake, dtype=torch.uint8).dtype == torch.uint8
    with pytest.raises(DataError, match="2 values"):
        F.from_generator_range(fake, mean=[0.5, 0.5], std=[0.5, 0.5])
    gray = torch.zeros(1, 4, 4, dtype=torch.uint8)
    assert F.match_channels(gray, 3).shape == (3, 4, 4)
    with pytest.raises(DataError, match="channels"):
        F.match_channels(torch.zeros(3, 4, 4), 1)


@pytest.mark.parametrize("image,problem", [
    (torch.full((1, 28, 28), -1.2), r"got values in \[-1.2, -1.2\]: put this transform before v2.Normalize"),
    (torch.full((1, 28, 28), 200.0), r"got values in \[200, 200\]: put this transform before v2.Normalize"),
])
def test_a_float_image_outside_0_1_is_refused_not_given_a_0_1_replacement(pool, image, problem):
    # A normalised (or 0-255 float) sample got a pool image in [0, 1]: silently out of its range.
    with pytest.raises(DataError, match=r"float images must be in \[0, 1\] .*" + problem):
        ReplaceWithSynthetic(pool, p=1.0)(image, 1)


def test_an_image_tensor_without_channels_is_a_clear_error(pool):
    with pytest.raises(DataError, match=r"image tensors are \(C, H, W\), got shape \(28, 28\).*image\[None\]"):
        ReplaceWithSynthetic(pool, p=1.0)(torch.rand(28, 28), 1)
