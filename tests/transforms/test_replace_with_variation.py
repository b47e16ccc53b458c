"""The per-sample transforms given an anchored source: the sample's own image, varied with its
label, as the same kind of object (v2, albumentations, SyntheticDataset)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from augmentgen.errors import ConfigError, DataError  # noqa: E402
from augmentgen.mixing import AnchoredSource, SyntheticPool, VariationSource  # noqa: E402
from augmentgen.models import build_config, build_generator  # noqa: E402
from augmentgen.transforms import ReplaceWithSynthetic, SyntheticDataset  # noqa: E402
from augmentgen.transforms.functional import to_uint8  # noqa: E402
from tests.conftest import send_to_worker  # noqa: E402


class Negative(AnchoredSource):
    """Each row: its real row's negative (an exact, noise-free source); remembers the labels it saw."""

    def __init__(self, channels: int = 1):
        self.num_classes, self.image_shape, self.device = 3, (channels, 28, 28), torch.device("cpu")
        self.seen: list[int] = []

    def rows(self, images, labels, anchors, *, rng=None):
        self.seen += labels[anchors].tolist()
        return -images[anchors]


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return build_generator(build_config("vae", num_classes=3, encoder_width=8, decoder_width=8,
                                        latent_dim=8)).eval()


BASE = torch.arange(28 * 28).view(1, 28, 28).remainder(251).to(torch.uint8)


def make_inputs():
    return {
        "pil": PIL.Image.fromarray(BASE[0].numpy()),
        "uint8": BASE.clone(),
        "float": BASE.float() / 255,
        "tv_image": tv_tensors.Image(BASE.clone()),
        "batched_uint8": BASE.expand(2, 1, 28, 28).clone(),
    }


@pytest.mark.parametrize("kind", list(make_inputs()))
def test_v2_varies_the_image_itself_keeping_type_dtype_and_range(kind):
    inpt = make_inputs()[kind]
    snapshot = pickle.dumps(inpt)
    source = Negative()
    image, label = ReplaceWithSynthetic(source, p=1.0)(inpt, 2)
    assert type(image) is type(inpt) and label == 2 and set(source.seen) == {2}
    assert pickle.dumps(inpt) == snapshot  # the input is not changed in place
    if isinstance(inpt, PIL.Image.Image):
        assert image.mode == inpt.mode and image.size == inpt.size
        assert np.array_equal(np.asarray(image), 255 - np.asarray(inpt))
        return
    assert image.dtype == inpt.dtype and image.shape == inpt.shape and image.device == inpt.device
    if inpt.dtype == torch.uint8:
        assert torch.equal(image.as_subclass(torch.Tensor), 255 - inpt.as_subclass(torch.Tensor))
    else:  # float in [0, 1] stays float in [0, 1], unquantised
        assert torch.allclose(image, 1 - inpt, atol=1e-6)


def test_v2_rgb_source_and_dict_samples():
    rgb = BASE.expand(3, -1, -1).clone()
    out = ReplaceWithSynthetic(Negative(channels=3), p=1.0)({"image": rgb, "label": torch.tensor(1), "id": 4})
    assert torch.equal(out["image"], 255 - rgb) and out["id"] == 4 and int(out["label"]) == 1
    pil = PIL.Image.fromarray(rgb.permute(1, 2, 0).numpy())
    image, _ = ReplaceWithSynthetic(Negative(channels=3), p=1.0)(pil, 0)
    assert image.mode == "RGB" and np.array_equal(np.asarray(image), 255 - np.asarray(pil))


def test_v2_is_seeded_by_torchs_stream_and_uses_the_label(vae):
    x = BASE.clone()
    transform = ReplaceWithSynthetic(VariationSource(vae, "vary", strength=0.5), p=1.0)
    outs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        outs.append(transform(x, 2)[0])
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    # The variation is the generator's own vary of this image with its label, at the drawn seed.
    torch.manual_seed(0)
    torch.rand(())  # replace or not
    seed = int(torch.randint(2**62, ()))
    expected = vae.vary(x[None], [2], 0.5, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(outs[0], to_uint8(expected)[0])
    assert "source=VariationSource(VAEGenerator, mode='vary'" in repr(transform)


def test_v2_probability_and_pickle(vae):
    x = BASE.clone()
    out, _ = ReplaceWithSynthetic(Negative(), p=0.0)(x, 1)
    assert out is x
    clone = send_to_worker(ReplaceWithSynthetic(VariationSource(vae), p=1.0))
    assert clone.pool is None and isinstance(clone.source, VariationSource)
    assert clone(x, 1)[0].shape == x.shape


def test_v2_errors_name_the_fix(vae):
    t = ReplaceWithSynthetic(Negative(), p=1.0)
    with pytest.raises(DataError, match=r"\(1, 28, 28\) images but the sample is \(1, 32, 32\).*Resize"):
        t(torch.zeros(1, 32, 32, dtype=torch.uint8), 0)
    with pytest.raises(DataError, match=r"\(3, 28, 28\).*channel"):
        t(torch.zeros(3, 28, 28, dtype=torch.uint8), 0)
    with pytest.raises(DataError, match=r"\[0, 1\].*before v2.Normalize"):
        t(torch.full((1, 28, 28), -0.5), 0)
    with pytest.raises(DataError, match="out of range for a 3-class source"):
        t(torch.zeros(1, 28, 28, dtype=torch.uint8), 3)
    with pytest.raises(DataError, match="mode 'RGBA'"):
        t(PIL.Image.new("RGBA", (28, 28)), 0)
    with pytest.raises(ConfigError, match=r"sees one.*SyntheticPool.from_variations"):
        ReplaceWithSynthetic(VariationSource(vae, "interpolate"))
    with pytest.raises(ConfigError, match=r"SyntheticPool is needed.*VariationSource\(generator, 'vary'\)"):
        ReplaceWithSynthetic(vae)


def test_synthetic_dataset_varies_the_raw_image_then_runs_the_datasets_transform():
    class Tiny(torch.utils.data.Dataset):
        def __init__(self):
            self.transform = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])

        def __len__(self):
            return 3

        def __getitem__(self, i):
            image = PIL.Image.fromarray(BASE[0].numpy())
            return (self.transform(image) if self.transform else image), i

    source = Negative()
    dataset = SyntheticDataset(Tiny(), source, p=1.0)
    image, label = dataset[2]
    assert label == 2 and source.seen == [2] and dataset.source is source and dataset.pool is None
    assert torch.allclose(image, (255 - BASE).float() / 255)
    assert "source=" in repr(dataset)


# --------------------------------------------------------------------------- albumentations
@pytest.fixture(scope="module")
def A():
    return pytest.importorskip("albumentations")


@pytest.mark.parametrize("shape,dtype", [((28, 28, 1), np.uint8), ((28, 28), np.uint8),
                                         ((28, 28, 1), np.float32)])
def test_albumentations_varies_the_image_itself(A, shape, dtype):
    from augmentgen.transforms import AlbumentationsReplaceWithSynthetic

    image = BASE[0].numpy().reshape(shape).copy()
    if dtype == np.float32:
        image = image.astype(np.float32) / 255
    original = image.copy()
    source = Negative()
    out = A.Compose([AlbumentationsReplaceWithSynthetic(source, p=1.0)], seed=0)(image=image, label=1)
    assert out["label"] == 1 and source.seen == [1] and np.array_equal(image, original)
    assert out["image"].dtype == dtype and out["image"].shape == shape
    expected = 255 - original if dtype == np.uint8 else 1 - original
    assert np.allclose(out["image"], expected, atol=1e-6)


def test_albumentations_is_seeded_by_the_compose_and_pickles(A, vae):
    from augmentgen.transforms import AlbumentationsReplaceWithSynthetic

    image = BASE[0].numpy()[..., None].copy()
    make = lambda seed: A.Compose([AlbumentationsReplaceWithSynthetic(VariationSource(vae), p=1.0)],  # noqa: E731
                                  seed=seed)
    outs = [make(seed)(image=image, label=0)["image"] for seed in (0, 0, 1)]
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])
    clone = send_to_worker(make(0))
    assert clone(image=image, label=0)["image"].shape == image.shape
    transform = AlbumentationsReplaceWithSynthetic(VariationSource(vae))
    assert isinstance(transform.get_transform_init_args()["pool"], VariationSource)
    with pytest.raises(DataError, match="out of range for a 3-class source"):
        A.Compose([transform.__class__(VariationSource(vae), p=1.0)])(image=image, label=5)
    with pytest.raises(DataError, match="Resize"):
        A.Compose([transform.__class__(VariationSource(vae), p=1.0)])(image=np.zeros((32, 32, 1), np.uint8),
                                                                      label=0)


def test_a_bank_of_variations_serves_the_same_transforms(vae):
    images = BASE.expand(6, 1, 28, 28).clone()
    pool = SyntheticPool.from_variations(VariationSource(vae), images, torch.arange(6) % 3, per_image=2, seed=0)
    image, label = ReplaceWithSynthetic(pool, p=1.0)(BASE.clone(), 1)
    assert label == 1 and bool((pool.images[1] == image).flatten(1).all(1).any())
