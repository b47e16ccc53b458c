"""synthesize / add_synthetic / synthetic_transform / synthesize_iterable with HF datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

datasets = pytest.importorskip("datasets")

from augmentgen.errors import ConfigError, DataError  # noqa: E402
from augmentgen.mixing import SyntheticPool  # noqa: E402
from augmentgen.mixing.hf import (  # noqa: E402
    add_synthetic,
    balance_counts,
    mark_real,
    synthesize,
    synthesize_iterable,
    synthetic_transform,
)
from augmentgen.models import build_config, build_generator  # noqa: E402

NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    return build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8,
                                        class_names=NAMES))


def user_dataset(counts=(4, 2, 1), column="img", label="fine"):
    labels = np.repeat(np.arange(3), counts)
    images = [np.full((28, 28), 5 * i, np.uint8) for i in range(len(labels))]
    features = datasets.Features({column: datasets.Image(), label: datasets.ClassLabel(names=NAMES)})
    return datasets.Dataset.from_dict({column: images, label: labels.tolist()}, features=features)


def test_default_features_and_counts(gen):
    ds = synthesize(gen, per_class=2, seed=0)
    assert ds.features["label"].names == NAMES
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds["label"] == [0, 0, 1, 1, 2, 2] and all(ds["synthetic"])
    assert ds[0]["image"].size == (28, 28) and ds[0]["image"].mode == "L"
    ds2 = synthesize(gen, per_class={"c": 3, 0: 1}, seed=0)
    assert ds2["label"] == [0, 2, 2, 2]


def test_like_user_dataset_concatenates(gen):
    real = user_dataset()
    syn = synthesize(gen, per_class=2, like=real, seed=0)
    assert list(syn.features) == ["img", "fine", "synthetic"]
    both = datasets.concatenate_datasets([mark_real(real), syn])
    assert len(both) == 7 + 6 and both["synthetic"] == [False] * 7 + [True] * 6
    assert both.features["fine"].names == NAMES
    # The synthetic rows decode to the generator's samples (same seed -> same pixels).
    labels = torch.arange(3).repeat_interleave(2)
    expected = gen.sample(labels, generator=torch.Generator().manual_seed(0))
    expected = expected.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)[:, 0].numpy()
    assert np.array_equal(np.stack([np.array(im) for im in syn["img"]]), expected)


def test_balance_tops_up_to_majority(gen):
    real = user_dataset(counts=(4, 2, 1))
    assert balance_counts(real["fine"], 3) == [0, 2, 3]
    both = add_synthetic(real, gen, per_class="balance")
    assert np.bincount(both["fine"], minlength=3).tolist() == [4, 4, 4]
    with pytest.raises(DataError, match="like="):
        synthesize(gen, per_class="balance")


def test_seed_determinism(gen):
    a, b = synthesize(gen, 2, seed=1), synthesize(gen, 2, seed=1)
    c = synthesize(gen, 2, seed=2)
    arr = lambda d: np.stack([np.array(im) for im in d["image"]])  # noqa: E731
    assert np.array_equal(arr(a), arr(b)) and not np.array_equal(arr(a), arr(c))


def test_clear_errors_when_features_cannot_match(gen):
    wrong_classes = datasets.Dataset.from_dict(
        {"image": [np.zeros((28, 28), np.uint8)], "label": [0]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["x", "y"])}))
    with pytest.raises(DataError, match="2 classes"):
        synthesize(gen, 1, like=wrong_classes)
    plain_int = datasets.Dataset.from_dict({"image": [np.zeros((28, 28), np.uint8)], "label": [0]})
    with pytest.raises(DataError, match="ClassLabel"):
        synthesize(gen, 1, like=plain_int)
    extra = user_dataset().add_column("id", list(range(7)))
    with pytest.raises(DataError, match=r"remove_columns\(\['id'\]\)"):
        synthesize(gen, 1, like=extra)


def test_with_transform_helper(gen):
    pool = SyntheticPool(gen, per_class=3, seed=0)
    real = user_dataset()
    view = real.with_transform(synthetic_transform(pool, p=1.0, image_column="img", label_column="fine", seed=0))
    rows = view[:7]
    assert set(rows) == {"img", "fine"} and rows["fine"] == real["fine"]
    for image, label in zip(rows["img"], rows["fine"]):
        assert any(np.array_equal(np.array(image), pool.images[label, i, 0].numpy()) for i in range(3))
    untouched = real.with_transform(synthetic_transform(pool, p=0.0, image_column="img", label_column="fine"))
    assert np.array_equal(np.array(untouched[0]["img"]), np.array(real[0]["img"]))


def test_iterable_dataset_path(gen):
    stream = synthesize_iterable(gen, num_samples=5, batch_size=2, seed=0, balance={"b": 1.0})
    rows = list(stream)
    assert len(rows) == 5 and all(r["label"] == 1 and r["synthetic"] for r in rows)
    assert rows[0]["image"].size == (28, 28)
    real = user_dataset().to_iterable_dataset()
    mixed = datasets.interleave_datasets(
        [mark_real(real), synthesize_iterable(gen, like=user_dataset(), num_samples=3, seed=0)])
    assert sum(r["synthetic"] for r in mixed) == 3


def test_temperature_passes_through_synthesize(gen):
    arr = lambda d: np.stack([np.array(im) for im in d["image"]])  # noqa: E731
    assert np.array_equal(arr(synthesize(gen, 3, seed=0, temperature=[1, 1, 1])), arr(synthesize(gen, 3, seed=0)))
    cold = arr(synthesize(gen, 3, seed=0, temperature=0.0)).reshape(3, 3, 28, 28)
    assert all(np.array_equal(cold[k, i], cold[k, 0]) for k in range(3) for i in range(3))
    assert not np.array_equal(cold[0, 0], cold[1, 0])
    both = add_synthetic(user_dataset(), gen, per_class=2, temperature=0.0)
    synthetic = arr(both.filter(lambda row: row["synthetic"]).rename_column("img", "image"))
    assert np.array_equal(synthetic.reshape(3, 2, 28, 28)[:, 0], cold[:, 0])
    rows = list(synthesize_iterable(gen, num_samples=4, batch_size=2, seed=0, balance={"c": 1.0},
                                    temperature=[1.0, 1.0, 0.0]))
    assert all(np.array_equal(np.array(r["image"]), cold[2, 0]) for r in rows)
    with pytest.raises(ConfigError, match="temperature"):
        synthesize(gen, 1, temperature=-0.1)
    with pytest.raises(ConfigError, match="4 values"):
        synthesize_iterable(gen, temperature=[1, 1, 1, 1])  # checked when made, not when read


@pytest.mark.parametrize("per_class, match", [
    (-5, "per_class must be an int >= 1, got -5"),
    (0, "per_class must be an int >= 1, got 0"),
    (True, "per_class must be an int >= 1, a"),
    (2.5, "per_class must be an int >= 1, a"),
    ("balanced", "per_class must be an int >= 1, a .* or 'balance'"),
    ({"a": -1}, r"per_class\['a'\] must be an int >= 0, got -1"),
    ({"z": 2}, r"per_class key 'z' is neither a class index in \[0, 2\] nor one of the class names"),
    ({5: 2}, "per_class key 5 is neither"),
    ({"a": 0, 1: 0}, "asks for no images at all"),
])
def test_bad_counts_are_config_errors(gen, per_class, match):
    with pytest.raises(ConfigError, match=match):
        synthesize(gen, per_class)


def test_bad_stream_and_transform_arguments_are_config_errors(gen):
    for kwargs, match in (({"num_samples": 0}, "num_samples must be an int >= 1"),
                          ({"num_samples": -3}, "num_samples must be an int >= 1"),
                          ({"batch_size": 0}, "batch_size must be an int >= 1"),
                          ({"balance": {"a": -1.0}}, r"balance\['a'\] must be a finite weight >= 0"),
                          ({"balance": {"a": float("nan")}}, "finite weight"),
                          ({"balance": {"zz": 1.0}}, "balance key 'zz' is neither"),
                          ({"balance": {"a": 0, "b": 0}}, "every class weight 0")):
        with pytest.raises(ConfigError, match=match):
            synthesize_iterable(gen, **kwargs)
    with pytest.raises(ConfigError, match="batch_size must be an int >= 1"):
        synthesize(gen, 2, batch_size=0)
    with pytest.raises(ConfigError, match=r"p must be a probability in \[0, 1\]"):
        synthetic_transform(SyntheticPool(gen, per_class=2, seed=0), p=-0.1)
    rows = list(synthesize_iterable(gen, num_samples=4, balance={"c": 1.0}, batch_size=2))
    assert [row["label"] for row in rows] == [2, 2, 2, 2]
