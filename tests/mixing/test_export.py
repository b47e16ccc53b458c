"""write_samples: grid, imagefolder, npz and hf outputs, readable by augmentgen.load_data."""

from __future__ import annotations

import pytest
import torch

from augmentgen.data import load_data
from augmentgen.errors import ConfigError
from augmentgen.mixing import write_samples
from augmentgen.models import build_config, build_generator


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    return build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8,
                                        class_names=["T-shirt/top", "b", "c"]))


def test_npz_round_trip(gen, tmp_path):
    path = write_samples(gen, 2, tmp_path / "s.npz", "npz", seed=0)
    data = load_data(str(path))
    assert data.class_counts == [2, 2, 2] and data.class_names == ["T-shirt/top", "b", "c"]
    expected = gen.sample(torch.arange(3).repeat_interleave(2), generator=torch.Generator().manual_seed(0))
    assert torch.equal(data.images, expected.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8))


def test_imagefolder_and_grid(gen, tmp_path):
    out = write_samples(gen, 2, tmp_path / "folder", "imagefolder")
    assert sorted(p.name for p in out.iterdir()) == ["T-shirt_top", "b", "c"]
    assert load_data(str(out)).class_counts == [2, 2, 2]
    grid = write_samples(gen, 2, tmp_path / "grid.png", "grid")
    from PIL import Image
    with Image.open(grid) as im:
        assert im.size == (2 * 30 + 2, 3 * 30 + 2)


def test_hf(gen, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = write_samples(gen, 2, tmp_path / "hf", "hf")
    ds = datasets.load_from_disk(str(out))
    assert ds["label"] == [0, 0, 1, 1, 2, 2] and ds.features["label"].names[0] == "T-shirt/top"


def test_bad_format(gen, tmp_path):
    with pytest.raises(ConfigError, match="format"):
        write_samples(gen, 2, tmp_path / "x", "zip")


def test_temperature_passes_through_write_samples(gen, tmp_path):
    rng = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    to_uint8 = lambda x: x.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)  # noqa: E731
    labels = torch.arange(3).repeat_interleave(2)
    for temperature in (0.0, [2.0, 0.0, 0.5]):
        data = load_data(str(write_samples(gen, 2, tmp_path / "t.npz", "npz", temperature=temperature)))
        assert torch.equal(data.images, to_uint8(gen.sample(labels, generator=rng(), temperature=temperature)))
    assert torch.equal(data.images[2], data.images[3])  # class 1 at temperature 0
    assert write_samples(gen, 2, tmp_path / "g.png", "grid", temperature=0.5).stat().st_size > 0
    with pytest.raises(ConfigError, match="temperature"):
        write_samples(gen, 2, tmp_path / "bad.npz", "npz", temperature=[1.0, 1.0])
    assert not (tmp_path / "bad.npz").exists()
