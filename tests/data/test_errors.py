"""The data layer's refusals: each names the problem first, then the fix, as one DataError or
ConfigError (the CLI prints it as one line), and never suggests unpickling a file."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from augmentgen.data import balanced_subset, load_data, long_tailed_subset, per_class_subset
from augmentgen.errors import ConfigError, DataError
from tests.conftest import make_images


def load_error(source, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_data(source, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------ .npz
@pytest.mark.parametrize("write, problem", [
    (lambda p: np.savez(p, images=np.array([{"a": 1}] * 4, dtype=object), labels=[0, 1, 0, 1]),
     "its array 'images' is unreadable (it holds pickled Python objects"),
    (lambda p: np.savez(p, images=np.zeros((4, 28, 28), np.uint8), labels=[0, 1, 0, 1],
                        classes=np.array(["a", None], dtype=object)),
     "its array 'classes' is unreadable (it holds pickled Python objects"),
    (lambda p: p.write_bytes(pickle.dumps({"images": 1})), "it holds pickled Python objects"),
    (lambda p: np.save(open(p, "wb"), np.zeros((4, 28, 28), np.uint8)), "it is a single .npy array"),
    (lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"), "not a valid images/labels .npz file"),
    (lambda p: p.write_text("images,labels\n"), "neither an .npz (zip) archive nor an .npy array; its first "
                                                  "bytes are 69 6d 61 67 65 73 2c 6c"),
    (lambda p: p.write_bytes(b""), "(the file is empty)"),
    (lambda p: np.savez(p, pictures=np.zeros((4, 28, 28), np.uint8)), "it lacks array(s) ['images', 'labels']"),
    (lambda p: np.savez(p, images=np.zeros((4, 28, 28), np.uint8), labels=np.array(["a", "b", "a", "b"])),
     "its 'labels' array has dtype <U1, not integers"),
])
def test_bad_npz_says_what_was_expected_and_never_suggests_allow_pickle(tmp_path, write, problem):
    path = tmp_path / "data.npz"
    write(path)
    message = load_error(path)
    assert message.startswith(f"{path} is not a valid images/labels .npz file") and problem in message
    assert "expected arrays 'images'" in message and "'labels'" in message
    assert "allow_pickle" not in message


# ------------------------------------------------------------------------------------ non-finite
def test_all_nan_float_images_are_refused_with_counts(tmp_path):
    images = np.full((4, 28, 28), np.nan, np.float32)
    np.savez(tmp_path / "nan.npz", images=images, labels=[0, 1, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "All-NaN slice" RuntimeWarning on the way
        message = load_error(tmp_path / "nan.npz")
    assert message.startswith("4 of 4 float images") and "3136 NaN" in message and "every value NaN" in message


def test_some_infinite_float_images_are_counted(tmp_path):
    images = np.full((5, 28, 28), 0.5, np.float32)
    images[1, 0, 0], images[3, 2, 2], images[3, 2, 3] = np.inf, -np.inf, np.nan
    np.savez(tmp_path / "inf.npz", images=images, labels=[0, 1, 0, 1, 0])
    assert load_error(tmp_path / "inf.npz").startswith("2 of 5 float images in")
    assert "(1 NaN, 2 infinite)" in load_error(tmp_path / "inf.npz")


def test_nan_image_in_a_torch_dataset_names_the_item():
    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.full((1, 28, 28), float("nan") if i == 2 else 0.5), i % 2

    message = load_error(Pairs())
    assert message.startswith("dataset item 2: the float image holds non-finite values (784 NaN")


def test_out_of_range_float_images_say_the_range(tmp_path):
    np.savez(tmp_path / "f.npz", images=np.full((4, 28, 28), 255.0, np.float32), labels=[0, 1, 0, 1])
    assert "got values in [255, 255]" in load_error(tmp_path / "f.npz")


# ------------------------------------------------------------------------------------ Hugging Face
@pytest.fixture
def hf_dataset():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["x", "y"])})
    return datasets.Dataset.from_dict(
        {"img": [Image.new("L", (28, 28), v) for v in (0, 50, 100, 150)], "label": [0, 1, 0, 1]},
        features=features)


def test_hf_id_that_is_not_a_local_folder_says_how_to_save_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = load_error("hf:someone/fashion")
    assert message.startswith("hf:someone/fashion is not a local folder")
    assert "datasets.load_dataset('someone/fashion').save_to_disk(" in message and "never downloads" in message
    (tmp_path / "plain").mkdir()
    assert "is a folder but not a dataset written by save_to_disk" in load_error("hf:plain")


def test_mistyped_hf_columns_list_the_columns(hf_dataset):
    message = load_error(hf_dataset, image_column="image")
    assert message.startswith("image_column='image' is not a column of the dataset")
    assert "['img', 'label']" in message and "did you mean 'img'?" in message
    assert "did you mean 'label'?" in load_error(hf_dataset, label_column="lable")
    assert "cannot find the image column among ['picture', 'label']" in load_error(
        hf_dataset.rename_column("img", "picture"))


def test_string_label_column_says_how_to_encode_it(hf_dataset):
    strings = hf_dataset.cast_column("label", __import__("datasets").Value("string"))
    assert "ds.class_encode_column('label')" in load_error(strings)


def test_unknown_source_suggests_the_close_builtin():
    assert "did you mean 'fashion-mnist-small'?" in load_error("fashion-mnist-smal")


# ------------------------------------------------------------------------------------ subsets
def test_more_images_per_class_than_a_class_has_names_the_class():
    data = make_images(n_per_class=6).subset(torch.arange(6 * 3 - 2))  # class2 keeps 4
    with pytest.raises(DataError) as info:
        balanced_subset(data, 5)
    assert str(info.value).startswith("per_class=5 asks for more images than some classes have: "
                                      "class 2 ('class2') has 4; use per_class=4 or less")
    assert load_data(data, per_class=4).class_counts == [4, 4, 4]
    with pytest.raises(DataError, match=r"class 2 \('class2'\) has 4; lower the counts"):
        per_class_subset(data, [2, 2, 2], offset=3)
    with pytest.raises(DataError, match=r"class 0 \('class0'\) has 6.*lower max_per_class"):
        long_tailed_subset(data, 2.0, max_per_class=7)


def test_a_subset_by_bool_mask_takes_the_rows_it_marks():
    data = make_images(n_per_class=4)  # labels 0 0 0 0 1 1 1 1 2 2 2 2
    mask = torch.arange(len(data)) % 2 == 1
    picked = data.subset(mask)
    assert torch.equal(picked.labels, data.labels[1::2]) and torch.equal(picked.images, data.images[1::2])
    assert torch.equal(data.subset(mask.numpy()).labels, picked.labels)  # a numpy mask too
    assert torch.equal(data.subset([3, 4, 8]).labels, torch.tensor([0, 1, 2]))
    with pytest.raises(DataError, match=r"a bool mask must have one value per row \(12\), got shape \(3,\)"):
        data.subset(torch.tensor([True, True, True]))


@pytest.mark.parametrize("call", [
    lambda d: balanced_subset(d, 0),
    lambda d: balanced_subset(d, -5),
    lambda d: load_data(d, per_class=-5),
    lambda d: per_class_subset(d, [2, -1, 2]),
    lambda d: per_class_subset(d, [2, 0, 2]),
    lambda d: per_class_subset(d, [2, 2, 2], offset=-1),
    lambda d: long_tailed_subset(d, 2.0, max_per_class=0),
])
def test_non_positive_counts_are_config_errors(call):
    with pytest.raises(ConfigError, match="must be an int >="):
        call(make_images(n_per_class=6))


# ------------------------------------------------------------------------------------ class index
def _folder_with_index(root, folders, index):
    for name in folders:
        (root / name).mkdir(parents=True)
        Image.new("L", (28, 28), 10).save(root / name / "0.png")
    (root / "classes.json").write_text(index if isinstance(index, str) else json.dumps(index))


def test_classes_json_restores_order_and_names(tmp_path):
    _folder_with_index(tmp_path, ["b_dir", "a_dir"], {"classes": ["B/1", "A/2"], "folders": ["b_dir", "a_dir"]})
    data = load_data(tmp_path)
    assert data.class_names == ["B/1", "A/2"] and data.class_counts == [1, 1]


@pytest.mark.parametrize("folders, index, problem", [
    (["00_a", "01_b", "02_c"], {"classes": ["a", "b"], "folders": ["00_a", "01_b"]},
     r"folder\(s\) \['02_c'\] are not listed"),
    (["00_a"], {"classes": ["a", "b"], "folders": ["00_a", "01_b"]}, r"listed folder\(s\) \['01_b'\] are missing"),
    (["00_a", "01_b"], "{not json", "is not a valid class index"),
    (["00_a", "01_b"], {"classes": ["a"], "folders": ["00_a", "01_b"]}, "lists 1 classes for 2 folders"),
])
def test_a_folder_edited_after_export_is_refused(tmp_path, folders, index, problem):
    _folder_with_index(tmp_path, folders, index)
    with pytest.raises(DataError, match=problem) as info:
        load_data(tmp_path)
    assert "delete" in str(info.value) and "classes.json" in str(info.value)


def test_channels_and_loader_batch_size_are_config_errors():
    with pytest.raises(ConfigError, match="channels must be 1 .* or 3 .*, got 2"):
        load_data(make_images(), channels=2)
    with pytest.raises(ConfigError, match="batch_size must be a positive int, got 0"):
        make_images().loader(0)
