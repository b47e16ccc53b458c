"""The shared image conventions (augmentgen._images)."""

import pytest
import torch
from PIL import Image

from augmentgen._images import save_sample_grid, to_signed_unit, to_uint8
from augmentgen.errors import DataError


def test_uint8_and_signed_unit_map_onto_each_other():
    levels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    unit = to_signed_unit(levels)
    assert unit.dtype == torch.float32 and unit.min() == -1 and unit.max() == 1
    assert torch.equal(to_uint8(unit), levels)
    assert to_uint8(torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0])).tolist() == [0, 0, 128, 255, 255]


def test_float_images_pass_through_and_other_dtypes_are_refused():
    floats = torch.rand(2, 1, 4, 4, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(to_signed_unit(floats), floats.float())
    with pytest.raises(DataError, match="uint8 or float"):
        to_signed_unit(torch.zeros(2, 1, 4, 4, dtype=torch.int32))


def test_the_grid_replaces_an_old_file_and_leaves_no_partial_file(tmp_path):
    path = tmp_path / "grid" / "samples.png"
    path.parent.mkdir()
    path.write_bytes(b"an older grid")
    save_sample_grid(torch.zeros(6, 3, 8, 8), per_row=3, path=path)
    assert [p.name for p in path.parent.iterdir()] == ["samples.png"]
    with Image.open(path) as image:  # 3 columns and 2 rows of 8 px with 2 px padding
        assert image.size == (3 * 10 + 2, 2 * 10 + 2)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    from augmentgen._io import atomic_path, atomic_write_bytes

    path = tmp_path / "a.json"
    atomic_write_bytes(path, b"old")
    with pytest.raises(RuntimeError, match="killed"), atomic_path(path) as tmp:
        tmp.write_bytes(b"half of the new")
        raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
    with atomic_path(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new" and oct(path.stat().st_mode & 0o777) != oct(0o600)
