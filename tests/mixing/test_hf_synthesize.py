"""synthesize / add_synthetic / synthetic_transform / synthesize_iterable with HF datasets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

datasets = pytest.importorskip("datasets")

from augmentgen.data import LabelledImages  # noqa: E402
from augmentgen.errors import ConfigError, DataError  # noqa: E402
from augmentgen.mixing import RealRowSource, SyntheticPool, VariationSource  # noqa: E402
from augmentgen.mixing.hf import (  # noqa: E402
    add_synthetic,
    balance_counts,
    mark_real,
    synthesize,
    synthesize_iterable,
    synthesize_variations,
    synthetic_transform,
)
from augmentgen.models import build_config, build_generator  # noqa: E402

NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    return build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8,
                                        class_names=NAMES))


def user_dataset(counts=(4, 2, 1), column="img", label="fine", size=28):
    labels = np.repeat(np.arange(3), counts)
    images = [np.full((size, size), 5 * i, np.uint8) for i in range(len(labels))]
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


# ---------------------------------------------------------------- synthesize_variations
@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return build_generator(build_config("vae", num_classes=3, encoder_width=8, decoder_width=8, latent_dim=8,
                                        class_names=NAMES)).eval()


def distinct_dataset(counts=(4, 2, 1), seed=0):
    """user_dataset's columns with a different random image in every row, so a copy names its row."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), counts)[rng.permutation(sum(counts))]  # not sorted by class
    images = list(rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8))
    features = datasets.Features({"img": datasets.Image(), "fine": datasets.ClassLabel(names=NAMES)})
    return datasets.Dataset.from_dict({"img": images, "fine": labels.tolist()}, features=features)


def pixels(dataset, column="img"):
    return np.stack([np.array(image) for image in dataset[column]])


@pytest.mark.parametrize("mode", ["vary", "interpolate", "extrapolate"])
def test_variations_keep_the_label_of_the_image_they_name(vae, mode):
    real = distinct_dataset(counts=(4, 2, 1))
    rows = synthesize_variations(VariationSource(vae, mode), real, per_image=2, seed=0, batch_size=5)
    # Every class gets per_image * 4 (the largest class) rows, grouped by class.
    assert len(rows) == 24 and list(rows["fine"]) == [0] * 8 + [1] * 8 + [2] * 8 and all(rows["synthetic"])
    source_index = np.array(rows["source_index"])
    assert np.array_equal(np.array(real["fine"])[source_index], np.array(rows["fine"]))
    # Each class's 8 rows are spread over all of its images: 2 each for 4 images, 4 for 2, 8 for 1.
    for c, n in enumerate((4, 2, 1)):
        used = np.bincount(source_index[np.array(rows["fine"]) == c], minlength=len(real))
        assert sorted(used[used > 0].tolist()) == [8 // n] * n
    assert rows[0]["img"].size == (28, 28) and rows[0]["img"].mode == "L"


def test_source_index_names_the_row_each_image_was_made_from():
    # The control source copies its image: every row must be exactly the dataset row it names.
    real = distinct_dataset(counts=(3, 5, 2))
    rows = synthesize_variations(RealRowSource(3, (1, 28, 28), class_names=NAMES), real, per_image=1, seed=3)
    assert len(rows) == 15
    assert np.array_equal(pixels(rows), pixels(real)[np.array(rows["source_index"])])


def test_features_are_likes_so_the_rows_concatenate(vae):
    real = distinct_dataset()
    rows = synthesize_variations(VariationSource(vae, "vary", strength=0.5), real, per_image=1, seed=0)
    assert rows.features == datasets.Features({**real.features, "synthetic": datasets.Value("bool"),
                                               "source_index": datasets.Value("int64")})
    both = datasets.concatenate_datasets([mark_real(real), rows])
    assert len(both) == 7 + 12 and list(both["synthetic"]) == [False] * 7 + [True] * 12
    assert list(both["source_index"]) == [None] * 7 + list(rows["source_index"]) and both.features["fine"].names == NAMES


def test_seeded_and_the_same_rows_as_the_in_memory_pool(vae):
    real = distinct_dataset()
    source = VariationSource(vae, "interpolate")
    a = synthesize_variations(source, real, per_image=2, seed=1, batch_size=4)
    b = synthesize_variations(source, real, per_image=2, seed=1, batch_size=4)
    c = synthesize_variations(source, real, per_image=2, seed=2, batch_size=4)
    assert np.array_equal(pixels(a), pixels(b)) and list(a["source_index"]) == list(b["source_index"])
    assert not np.array_equal(pixels(a), pixels(c))
    images = torch.as_tensor(pixels(real))[:, None]
    pool = SyntheticPool.from_variations(source, images, torch.tensor(real["fine"]), per_image=2, seed=1,
                                         batch_size=4)
    assert np.array_equal(pixels(a), pool.images.flatten(0, 1)[:, 0].numpy())
    assert list(a["source_index"]) == pool.source_index.flatten().tolist()


def test_labelled_images_give_image_and_label_columns(vae):
    real = distinct_dataset()
    data = LabelledImages(torch.as_tensor(pixels(real))[:, None], real["fine"], NAMES)
    rows = synthesize_variations(VariationSource(vae), data, per_image=1, seed=1, batch_size=4)
    assert list(rows.features) == ["image", "label", "synthetic", "source_index"]
    assert rows.features["label"].names == NAMES and list(rows["label"]) == [0] * 4 + [1] * 4 + [2] * 4
    assert np.array_equal(pixels(rows, "image"),
                          pixels(synthesize_variations(VariationSource(vae), real, per_image=1, seed=1,
                                                       batch_size=4)))


def test_progress_bar_on_request(vae, capsys):
    synthesize_variations(VariationSource(vae), distinct_dataset(), per_image=1, progress=True)
    assert "variations" in capsys.readouterr().err
    synthesize_variations(VariationSource(vae), distinct_dataset(), per_image=1, progress=False)
    assert capsys.readouterr().err == ""


def test_variation_errors_name_the_problem_and_the_fix(vae):
    real, source = distinct_dataset(), VariationSource(vae)
    with pytest.raises(ConfigError, match=r"wrap the generator.*VariationSource\(generator, 'vary'\)"):
        synthesize_variations(vae, real)
    with pytest.raises(ConfigError, match="anchored source such as VariationSource"):
        synthesize_variations(object(), real)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="per_image must be an int >= 1"):
            synthesize_variations(source, real, per_image=bad)
    with pytest.raises(ConfigError, match="batch_size must be an int >= 1"):
        synthesize_variations(source, real, batch_size=0)
    with pytest.raises(DataError, match="the dataset is empty"):
        synthesize_variations(source, real.select([]))
    two_classes = real.cast_column("fine", datasets.ClassLabel(names=["x", "y", "z", "w"]))
    with pytest.raises(DataError, match="has 4 classes.*generator has 3"):
        synthesize_variations(source, two_classes)
    with pytest.raises(DataError, match=r"no image of class 'c'.*all 3 classes"):
        synthesize_variations(source, real.filter(lambda row: row["fine"] != 2))
    big = datasets.Dataset.from_dict({"img": [np.zeros((32, 32), np.uint8)] * 3, "fine": [0, 1, 2]},
                                     features=real.features)
    with pytest.raises(DataError, match=r"takes \(1, 28, 28\) images but the images are \(1, 32, 32\)"):
        synthesize_variations(source, big)
    mixed = datasets.Dataset.from_dict({"img": [np.zeros((28, 28, 3), np.uint8), np.zeros((28, 28), np.uint8),
                                                np.zeros((28, 28), np.uint8)], "fine": [0, 1, 2]},
                                       features=real.features)
    with pytest.raises(DataError, match=r"differ in shape.*cast_column\('img', Image\(mode='L'\)\)"):
        synthesize_variations(source, mixed)
    with pytest.raises(DataError, match="ClassLabel"):
        synthesize_variations(source, real.cast_column("fine", datasets.Value("int64")))
    with pytest.raises(DataError, match=r"pick a split \(ds\['train'\]\)"):
        synthesize_variations(source, datasets.DatasetDict({"train": real}))


def test_a_dataset_whose_classes_carry_other_names_is_named_in_a_warning():
    import datasets

    from augmentgen.mixing.hf import synthetic_features

    generator = type("G", (), {"num_classes": 2, "class_names": ["0", "1"]})()
    same = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["0", "1"])})
    other = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "1"])})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        synthetic_features(generator, same)
    with pytest.warns(UserWarning, match=r"the generator names its classes otherwise than the dataset's 'label' "
                                         r"\(0: '0' vs 'cat'\)"):
        synthetic_features(generator, other)


def test_synthesize_shows_a_bar_of_the_images_sampled(gen, bars, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    shown = synthesize(gen, per_class={"a": 3, "c": 2}, batch_size=4, progress=True)
    assert [(bar.desc, bar.total, bar.updates, bar.disable) for bar in bars] == [("synthesize", 5, [4, 1], False)]
    hidden = synthesize(gen, per_class={"a": 3, "c": 2}, batch_size=4, progress=False)
    assert bars[1].disable and bars[1].updates == []
    assert np.array_equal(np.stack(shown["image"]), np.stack(hidden["image"]))  # the bar changes no row
    synthesize(gen, per_class=1)  # the default: only when stderr is a terminal (it is not here)
    assert bars[2].disable and bars[2].updates == []
    add_synthetic(user_dataset(), gen, per_class="balance", progress=True)  # (4, 2, 1): 0 + 2 + 3 rows
    assert bars[3].total == 5 and bars[3].n == 5
    list(synthesize_iterable(gen, num_samples=3))  # a stream, maybe endless: no bar
    assert len(bars) == 4


def test_synthesize_names_its_argument_order_for_a_non_generator():
    from augmentgen.mixing.hf import synthesize

    with pytest.raises(ConfigError, match=r"synthesize takes a generator first .*got the NoneType"):
        synthesize(None, 2)


def test_a_stream_of_a_non_generator_or_of_list_weights_is_refused_when_made(gen):
    with pytest.raises(ConfigError, match=r"synthesize_iterable takes a generator first .*got the int 3"):
        synthesize_iterable(3)
    with pytest.raises(ConfigError, match=r"balance must be a \{class: weight\} dict .*got \[1, 2, 3\]"):
        synthesize_iterable(gen, balance=[1, 2, 3])


@pytest.mark.parametrize("data,fix", [("list", "other data mixes in batches instead: SyntheticMix"),
                                      ("dict", r"pick a split first, mark_real\(ds\['train'\]\)")])
def test_mark_real_of_something_else_names_what_it_takes(data, fix):
    data = {"list": [1, 2], "dict": datasets.DatasetDict({"train": user_dataset()})}[data]
    with pytest.raises(DataError, match=rf"mark_real takes a datasets.Dataset or IterableDataset, got \w+; {fix}"):
        mark_real(data)


def test_synthetic_transform_of_a_generator_or_a_bad_seed_fails_when_made(gen):
    # A generator failed only when the first row was read (AttributeError: no attribute 'draw').
    with pytest.raises(ConfigError, match=r"synthetic_transform takes a SyntheticPool, got CGANGenerator.*"
                                          r"SyntheticPool\(generator, per_class=256\)"):
        synthetic_transform(gen, p=0.5)
    with pytest.raises(ConfigError, match=r"seed must be an int >= 0 \(or None for fresh randomness\), got '0'"):
        synthetic_transform(SyntheticPool(gen, per_class=2, seed=0), p=0.5, seed="0")


def test_rows_of_another_size_than_the_dataset_are_named(gen):
    """A 28 px generator and a 32 px dataset: a warning when the rows are made, an error when a
    transform would put a 28 px image among 32 px rows."""
    real = user_dataset(size=32)
    with pytest.warns(UserWarning, match=r"makes 28x28 images but the dataset's 'img' images are 32x32"):
        add_synthetic(real, gen, per_class=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        synthesize(gen, per_class=1, like=user_dataset())  # the same size: nothing to say
    view = real.with_transform(synthetic_transform(SyntheticPool(gen, per_class=2, seed=0), p=1.0,
                                                   image_column="img", label_column="fine", seed=0))
    with pytest.raises(DataError, match=r"pool images are 28x28 but row 0's 'img' is 32x32: resize"):
        view[:2]
