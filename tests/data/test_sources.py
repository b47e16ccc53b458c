import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from augmentgen.data import LabelledImages, load_data, long_tailed_counts
from augmentgen.errors import DataError
from tests.conftest import SHARED_DATA, make_images, requires_shared_data


def test_embedded_dataset_is_balanced_and_shaped():
    train = load_data("fashion-mnist-small")
    test = load_data("fashion-mnist-small", split="test")
    assert train.image_shape == (1, 28, 28) and train.images.dtype == torch.uint8
    assert train.class_counts == [50] * 10 and test.class_counts == [100] * 10
    assert train.class_names[0] == "T-shirt/top" and train.num_classes == 10


def test_npz_round_trip_hwc_and_classes(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=images, labels=np.array([0, 1, 2, 0, 1, 2]),
             classes=np.array(["a", "b", "c"]))
    data = load_data(tmp_path / "d.npz")
    assert data.image_shape == (3, 32, 32) and data.class_names == ["a", "b", "c"]
    assert torch.equal(data.images[1].permute(1, 2, 0), torch.from_numpy(images[1]))


def test_npz_float_images_in_unit_range_are_scaled(tmp_path):
    np.savez(tmp_path / "f.npz", images=np.ones((4, 28, 28), np.float32), labels=[0, 1, 0, 1])
    assert int(load_data(tmp_path / "f.npz").images.max()) == 255


def _write_folder(root, sizes=((28, 28),), modes=("L",)):
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i, (size, mode) in enumerate(zip(sizes * 2, modes * 2)):
            Image.new(mode, size, color=100 if mode == "L" else (100, 0, 0)).save(root / c / f"{i}.png")


def test_image_folder(tmp_path):
    _write_folder(tmp_path)
    data = load_data(tmp_path)
    assert data.class_names == ["cat", "dog"] and data.image_shape == (1, 28, 28)
    assert data.class_counts == [2, 2]


def test_image_folder_mixed_sizes_is_an_error(tmp_path):
    _write_folder(tmp_path, sizes=((28, 28), (32, 32)), modes=("L", "L"))
    with pytest.raises(DataError, match="different sizes"):
        load_data(tmp_path)


def test_image_folder_mixed_gray_and_rgb(tmp_path):
    _write_folder(tmp_path, sizes=((28, 28), (28, 28)), modes=("L", "RGB"))
    with pytest.raises(DataError, match="grayscale and RGB"):
        load_data(tmp_path)
    assert load_data(tmp_path, channels=3).image_shape == (3, 28, 28)


def test_unreadable_image_names_the_file(tmp_path):
    _write_folder(tmp_path)
    (tmp_path / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        load_data(tmp_path)


def test_torch_dataset_with_pil_and_float_tensors():
    class Pairs(torch.utils.data.Dataset):
        classes = ["a", "b"]

        def __len__(self):
            return 4

        def __getitem__(self, i):
            img = Image.new("L", (28, 28), 10 * i) if i % 2 else torch.full((1, 28, 28), 0.5)
            return img, i % 2

    data = load_data(Pairs())
    assert data.image_shape == (1, 28, 28) and data.class_names == ["a", "b"]
    assert int(data.images[0, 0, 0, 0]) == 128


def test_hf_dataset_columns_detected_and_from_disk(tmp_path):
    import datasets

    features = datasets.Features({"img": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["x", "y"])})
    ds = datasets.Dataset.from_dict(
        {"img": [Image.new("L", (28, 28), v) for v in (0, 50, 100, 150)], "label": [0, 1, 0, 1]},
        features=features,
    )
    data = load_data(ds)
    assert data.class_names == ["x", "y"] and data.class_counts == [2, 2]
    ds.save_to_disk(str(tmp_path / "hf"))
    assert len(load_data(f"hf:{tmp_path / 'hf'}")) == 4
    with pytest.raises(DataError, match="image_column"):
        load_data(ds.rename_column("img", "picture"))


@pytest.mark.parametrize(
    "labels, message",
    [([0.5, 1, 0, 1], "non-integer"), ([-1, 1, 0, 1], ">= 0"), ([0, 0, 0, 0], "single class")],
)
def test_bad_labels(labels, message):
    with pytest.raises(DataError, match=message):
        LabelledImages(np.zeros((4, 1, 28, 28), np.uint8), np.array(labels))


def test_empty_class_is_named():
    with pytest.raises(DataError, match="'c'"):
        LabelledImages(np.zeros((4, 1, 28, 28), np.uint8), [0, 1, 0, 1], ["a", "b", "c"])


def test_unknown_source_lists_builtins():
    with pytest.raises(DataError, match="fashion-mnist-small"):
        load_data("no-such-dataset")


def test_builtin_without_data_dir_says_how(monkeypatch):
    monkeypatch.delenv("AUGMENTGEN_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="data_dir"):
        load_data("mnist")


def test_per_class_subset_is_seeded_and_balanced():
    data = make_images(n_per_class=20)
    a, b, c = (load_data(data, per_class=5, seed=s) for s in (1, 1, 2))
    assert a.class_counts == [5, 5, 5]
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)


def test_long_tailed_profile():
    assert long_tailed_counts(10, 500, 100) == [500, 300, 180, 108, 65, 39, 23, 14, 8, 5]
    data = make_images(n_per_class=50, num_classes=4)
    assert load_data(data, imbalance=10, per_class=40).class_counts == [40, 19, 9, 4]


def test_loader_gathers_whole_batches():
    data = make_images(n_per_class=10)
    images, labels = next(iter(data.loader(8, seed=0)))
    assert images.shape == (8, 1, 28, 28) and images.dtype == torch.uint8 and labels.shape == (8,)


def test_truncated_idx_file_is_reported(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    header = (2051).to_bytes(4, "big") + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(header + bytes(100))
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write((2049).to_bytes(4, "big") + (10).to_bytes(4, "big") + bytes(10))
    with pytest.raises(DataError, match="truncated"):
        load_data("mnist", data_dir=tmp_path)


@requires_shared_data("mnist")
def test_mnist_from_shared_idx_files():
    data = load_data("mnist", split="test", data_dir=SHARED_DATA)
    assert len(data) == 10000 and data.class_counts[1] == 1135


@requires_shared_data("cifar10")
def test_cifar10_from_shared_npz():
    data = load_data("cifar10", data_dir=SHARED_DATA)
    assert data.image_shape == (3, 32, 32) and data.class_names[0] == "airplane"
    assert data.class_counts == [396, 366, 420, 384, 422, 393, 414, 385, 407, 413]


@requires_shared_data("fashion-mnist")
def test_embedded_subset_matches_original_files():
    full = load_data("fashion-mnist", data_dir=SHARED_DATA)
    small = load_data("fashion-mnist-small")
    index = np.load(__import__("augmentgen").data.sources.resources.files("augmentgen.data")
                    / "embedded" / "fashion_mnist_small.npz")["train_indices"]
    assert torch.equal(full.images[torch.from_numpy(index)], small.images)


def test_per_class_subsets_of_one_seed_are_nested_or_disjoint():
    from augmentgen.data import balanced_subset, per_class_subset
    from tests.conftest import make_images

    data = make_images(n_per_class=20, num_classes=3, seed=0)
    rows = lambda d: {bytes(x.numpy().tobytes()) for x in d.images}  # noqa: E731
    small = per_class_subset(data, [5, 5, 5], seed=4)
    assert torch.equal(small.images, balanced_subset(data, 5, seed=4).images)
    double = per_class_subset(data, [10, 10, 10], seed=4)
    outside = per_class_subset(data, [10, 10, 10], seed=4, offset=[5, 5, 5])
    assert rows(small) < rows(double)
    assert not rows(small) & rows(outside)
    assert double.class_counts == [10, 10, 10] and outside.class_counts == [10, 10, 10]
    with pytest.raises(DataError, match="too few images"):
        per_class_subset(data, [15, 15, 15], seed=4, offset=10)


@pytest.mark.parametrize("source", ["fashion-mnist-small", "labelled"])
def test_channels_convert_built_in_data_and_labelled_images_too(source):
    """``channels=3`` used to be ignored for a built-in name and a LabelledImages: the images came back
    grayscale, and a model sized to them trained on what the caller asked to be RGB."""
    gray = load_data("fashion-mnist-small", per_class=2)
    rgb = load_data(gray if source == "labelled" else source, channels=3, per_class=2)
    assert rgb.image_shape == (3, 28, 28) and torch.equal(rgb.labels, gray.labels)
    assert all(torch.equal(rgb.images[:, c], gray.images[:, 0]) for c in range(3))
    assert load_data(rgb, channels=1).image_shape == (1, 28, 28)


def _two_classes(root, image_a, image_b, name="0.png"):
    for cls, image in (("a", image_a), ("b", image_b)):
        (root / cls).mkdir(parents=True, exist_ok=True)
        image.save(root / cls / name)


def test_a_16_bit_png_is_scaled_to_8_bits_and_stays_grayscale(tmp_path):
    """PIL's own conversion clipped every value above 255, turning the image almost white, in RGB."""
    gray = (np.arange(28 * 28).reshape(28, 28) * 80).astype(np.uint16)  # 0 .. 62640
    _two_classes(tmp_path, Image.fromarray(gray), Image.fromarray(gray))
    data = load_data(tmp_path)
    assert data.image_shape == (1, 28, 28)
    np.testing.assert_array_equal(data.images[0, 0].numpy(), np.round(gray / 65535 * 255).astype(np.uint8))


def test_float_tiff_pixels_in_unit_range_are_scaled_not_truncated(tmp_path):
    half = Image.fromarray(np.full((28, 28), 0.5, np.float32))
    _two_classes(tmp_path, half, half, name="0.tif")
    data = load_data(tmp_path)
    assert data.image_shape == (1, 28, 28) and data.images.unique().tolist() == [128]  # was 0, in RGB


@pytest.mark.parametrize("mode", ["1", "LA"])
def test_one_bit_and_gray_alpha_images_are_grayscale_beside_8_bit_gray_ones(tmp_path, mode):
    _two_classes(tmp_path, Image.new(mode, (28, 28), 1 if mode == "1" else (200, 255)), Image.new("L", (28, 28), 9))
    assert load_data(tmp_path).image_shape == (1, 28, 28)  # was refused as a mix of gray and RGB


def test_hidden_files_in_class_folders_are_not_read_as_images(tmp_path):
    """macOS leaves ``._name.png`` AppleDouble files beside copied images; Jupyter, checkpoint folders."""
    _write_folder(tmp_path)
    (tmp_path / "cat" / "._0.png").write_bytes(b"AppleDouble metadata, not a png")
    (tmp_path / "dog" / ".ipynb_checkpoints").mkdir()
    Image.new("L", (32, 32)).save(tmp_path / "dog" / ".ipynb_checkpoints" / "0.png")
    assert load_data(tmp_path).class_counts == [2, 2]


def test_a_folder_of_training_runs_is_refused_as_data(tmp_path):
    """``--data runs`` (runs/aae, runs/cgan, each with its sample grids) was read as a dataset of one
    class per run and refused only later, for grids that are not square."""
    for run in ("aae", "cgan"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "model.safetensors").write_bytes(b"weights")
        Image.new("L", (62, 32)).save(tmp_path / run / "samples.png")
    with pytest.raises(DataError, match=r"a folder of saved generators .*aae holds model.safetensors.*--model"):
        load_data(tmp_path)


def test_numbered_class_folders_warn_that_they_sort_as_text(tmp_path):
    for name in ("1", "2", "10"):
        (tmp_path / name).mkdir()
        Image.new("L", (28, 28)).save(tmp_path / name / "0.png")
    with pytest.warns(UserWarning, match=r"numbered in text order .*'10' is class 1.*zero-pad the folder names"):
        data = load_data(tmp_path)
    assert data.class_names == ["1", "10", "2"]  # torchvision's order, kept


def test_an_npz_under_an_upper_case_suffix_is_read(tmp_path):
    np.savez(tmp_path / "data.npz", images=np.zeros((4, 28, 28), np.uint8), labels=[0, 1, 0, 1])
    (tmp_path / "data.npz").rename(tmp_path / "DATA.NPZ")
    assert len(load_data(tmp_path / "DATA.NPZ")) == 4  # was "expected a folder, an .npz file"


def test_npz_classes_as_one_string_is_refused(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((4, 28, 28), np.uint8), labels=[0, 1, 0, 1], classes=np.array("ab"))
    with pytest.raises(DataError, match=r"its 'classes' array has shape \(\), not one name per class"):
        load_data(tmp_path / "d.npz")  # was a TypeError: iteration over a 0-d array


def test_hf_rows_without_a_label_are_named_as_missing(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    datasets.Dataset.from_dict({"image": [Image.new("L", (28, 28))] * 3, "label": [0, 1, None]},
                               features=features).save_to_disk(tmp_path / "ds")
    with pytest.raises(DataError, match=r"1 of 3 rows have no label \(None\) in the label column 'label'; drop "
                                        r"them first"):
        load_data(f"hf:{tmp_path / 'ds'}")  # was: "encode it first: ds.class_encode_column"
    with pytest.raises(DataError, match=r"hf: names no folder; pass hf:<folder>"):
        load_data("hf:")  # was read as the current folder


def test_hf_unlabelled_class_label_rows_are_named(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    datasets.Dataset.from_dict({"image": [Image.new("L", (28, 28))] * 3, "label": [0, 1, -1]},
                               features=features).save_to_disk(tmp_path / "ds")
    with pytest.raises(DataError, match=r"1 of 3 rows are unlabelled \(-1 in the ClassLabel column 'label'.*"
                                        r"ds.filter\(lambda row: row\['label'\] != -1\)"):
        load_data(f"hf:{tmp_path / 'ds'}")  # was: "labels must be >= 0"
